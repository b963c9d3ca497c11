// Package s3mem is an in-memory s3api.Backend: the reference model for the
// S3 front door's tests and for the conformance suite in s3api/s3apitest.
// Object data lives in memory, so it is meant for tests and small
// experiments only.
package s3mem
