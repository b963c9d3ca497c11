package s3test

import "syscall"

// sysProcAttr makes the kernel kill MinIO if the process that started it
// dies, so a crashed test run leaves no server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
