// Package s3test starts and stops a real MinIO server for tests,
// benchmarks and the chaos harness. It is not a fake: the s3 backend's
// conformance test runs against the real thing.
//
// The binary is found by FindBinary: $OSPREY_MINIO if set, else "minio" on
// PATH, else ${OSPREY_BIN_DIR:-$HOME/.cache/osprey-bin}/minio, which is where
// scripts/minio.sh installs the pinned version (see InstallCommand).
//
// Start launches a server on 127.0.0.1 with a free port and a fresh data
// directory, polls /minio/health/live and /minio/health/ready until it
// answers, a signed ListBuckets succeeds and an unknown access key gets
// InvalidAccessKeyId (IAM initialised), with a deadline, and returns a *Server the caller MUST Close.
// Stop and Restart (same address, same data) let tests simulate an outage.
// StartServer and StartMinIO wrap it for tests: they skip the test when no
// binary exists and close the server at cleanup. The server's output goes to
// a log file in its directory, never to the test output.
package s3test
