package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrDataDirInUse is returned by New when another process holds the data
// dir.
var ErrDataDirInUse = errors.New("node: data dir in use")

// dirLock is an exclusive lock on a data dir: flock on <dir>/osprey.lock,
// which also holds the holder's pid so the next one can say who it is.
type dirLock struct{ f *os.File }

// lockDataDir takes the data dir's lock or says which process holds it.
// The lock goes with the process (the kernel drops it), so a crashed
// node's lock never needs cleaning up.
func lockDataDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, "osprey.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("node: lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
				return nil, fmt.Errorf("%w: %s is used by another osprey process (pid %d); stop it or use another --data-dir", ErrDataDirInUse, dir, pid)
			}
			return nil, fmt.Errorf("%w: %s is used by another osprey process; stop it or use another --data-dir", ErrDataDirInUse, dir)
		}
		return nil, fmt.Errorf("node: lock data dir: %w", err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dirLock{f: f}, nil
}

// release drops the lock. The file stays (removing it could race with
// another process locking it).
func (l *dirLock) release() {
	if l != nil && l.f != nil {
		_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
		_ = l.f.Close()
		l.f = nil
	}
}
