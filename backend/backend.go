// Package backend defines the small streaming interface every object
// backend (local disk, S3/MinIO, Aliyun OSS, Tencent COS) implements, the
// sentinel errors they translate provider errors into, and shared types.
//
// Implementations live in backend/<name> and expose New(cfg Config)
// (*Backend, error); node wires them explicitly (no init() registry).
// backend/backendtest holds the conformance suite all of them pass.
package backend

import (
	"context"
	"errors"
	"io"
	"time"
)

// Sentinel errors. Implementations wrap them with %w so callers match with
// errors.Is and never see SDK error types.
var (
	// ErrNotFound is returned when the object (or its bucket) does not exist.
	ErrNotFound = errors.New("backend: not found")
	// ErrUnavailable is returned when the backend cannot be reached or
	// answered with a server-side (5xx) error; the call may be retried.
	ErrUnavailable = errors.New("backend: unavailable")
	// ErrAuth is returned when the backend refuses the credentials.
	ErrAuth = errors.New("backend: access denied")
	// ErrInvalid is returned for arguments the backend rejects (bad bucket
	// name, bad range, ...). Retrying the same call will not help.
	ErrInvalid = errors.New("backend: invalid argument")
	// ErrChecksum is returned when the stored bytes do not match the
	// checksum supplied to Put, or the size read differs from the size given.
	ErrChecksum = errors.New("backend: checksum mismatch")
)

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Bucket  string    // logical bucket name (without prefix)
	Key     string    // object key
	Size    int64     // size in bytes
	MD5     string    // lowercase hex md5 of the content when known, else ""
	ModTime time.Time // last modification time as reported by the backend
}

// PutOptions carries optional metadata for Put.
type PutOptions struct {
	// ContentType is stored with the object when the backend supports it.
	ContentType string
	// MD5 is the expected lowercase hex md5 of the whole content, if known.
	// When set, implementations verify it and return ErrChecksum (storing
	// nothing visible) on mismatch.
	MD5 string
}

// Backend is the streaming object-store interface. Every method takes a
// context and must honour its cancellation. Implementations are safe for
// concurrent use.
type Backend interface {
	// Name returns a short description for logs and metrics ("local", "s3").
	Name() string
	// EnsureBucket creates the logical bucket if it does not exist yet.
	EnsureBucket(ctx context.Context, bucket string) error
	// Put stores exactly size bytes read from r under bucket/key, replacing
	// any existing object atomically (readers see the old or the new object,
	// never a partial one). Large objects use multipart uploads with bounded
	// memory. A short read from r is an error and leaves nothing visible.
	Put(ctx context.Context, bucket, key string, r io.Reader, size int64, opts PutOptions) (ObjectInfo, error)
	// Get returns a reader for length bytes starting at offset; length < 0
	// means to the end. The caller MUST Close the reader. Returns ErrNotFound
	// if the object does not exist and ErrInvalid if offset is beyond the end.
	Get(ctx context.Context, bucket, key string, offset, length int64) (io.ReadCloser, error)
	// Stat returns the object's metadata, or ErrNotFound.
	Stat(ctx context.Context, bucket, key string) (ObjectInfo, error)
	// Delete removes the object. Deleting a missing object is not an error.
	Delete(ctx context.Context, bucket, key string) error
	// Check verifies the backend is reachable with the configured
	// credentials; used by /readyz and metrics.
	Check(ctx context.Context) error
	// Close releases resources. It is idempotent.
	Close() error
}
