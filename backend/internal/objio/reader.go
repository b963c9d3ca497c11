package objio

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/osprey-storage/osprey/backend"
)

// errReaderClosed is returned by Read after Close.
var errReaderClosed = errors.New("objio: body reader closed")

// VerifyingReader streams exactly size bytes from an underlying reader while
// computing their md5. It never reads past size. When the last byte arrives
// it compares the md5 with the expected one (if any) and, on mismatch,
// returns an error *instead of* those final bytes, so a consumer that
// streams to a store never completes the upload. A body that ends early, a
// read error and a cancelled context are reported the same way: Read
// returns an error and the consumer aborts.
//
// The first failure is sticky and available from Err, so a backend can
// report the real cause even when the SDK in between turned it into an
// opaque "request failed".
//
// Read and Close are safe to call from different goroutines (an HTTP
// transport reads request bodies on its own goroutine). Close waits for an
// in-flight Read, after which the underlying reader is never touched again,
// so the caller may reuse it once Put returns.
type VerifyingReader struct {
	ctx  context.Context
	r    io.Reader
	size int64
	want string // expected lowercase hex md5, "" if not given

	mu     sync.Mutex
	n      int64
	h      hash.Hash
	sum    string // set once all size bytes were read and verified
	err    error  // first failure, sticky
	closed bool
}

// NewVerifyingReader returns a reader over the first size bytes of r.
// wantMD5 is the expected lowercase hex md5 of those bytes, or "" to only
// compute it. Reads fail once ctx is done.
func NewVerifyingReader(ctx context.Context, r io.Reader, size int64, wantMD5 string) *VerifyingReader {
	return &VerifyingReader{ctx: ctx, r: r, size: size, want: wantMD5, h: md5.New()}
}

// Read implements io.Reader. See the type documentation for the error
// contract: errors wrap backend.ErrChecksum (md5 mismatch, body shorter than
// size), the context's error, or the underlying reader's error.
func (v *VerifyingReader) Read(p []byte) (int, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case v.closed:
		return 0, errReaderClosed
	case v.err != nil:
		return 0, v.err
	case v.sum != "":
		return 0, io.EOF
	}
	if err := v.ctx.Err(); err != nil {
		v.err = err
		return 0, err
	}
	if rem := v.size - v.n; int64(len(p)) > rem {
		p = p[:rem]
	}
	if len(p) == 0 { // size == 0, or a zero-length p.
		if v.n < v.size {
			return 0, nil
		}
		return 0, v.finishLocked()
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.n == v.size {
		if ferr := v.finishLocked(); ferr != io.EOF {
			return 0, ferr // withhold the tail: the upload must not complete
		}
		return n, nil // the next Read returns io.EOF
	}
	switch {
	case err == io.EOF:
		v.err = fmt.Errorf("%w: body ended after %d of %d bytes: %w", backend.ErrChecksum, v.n, v.size, io.ErrUnexpectedEOF)
		return 0, v.err
	case err != nil:
		v.err = fmt.Errorf("reading body: %w", err)
		return 0, v.err
	}
	return n, nil
}

// finishLocked compares the md5 of all size bytes with the expected one. It
// returns io.EOF when they match (or none was expected) and the sticky
// error otherwise.
func (v *VerifyingReader) finishLocked() error {
	sum := hex.EncodeToString(v.h.Sum(nil))
	if v.want != "" && sum != v.want {
		v.err = fmt.Errorf("%w: md5 of body is %s, expected %s", backend.ErrChecksum, sum, v.want)
		return v.err
	}
	v.sum = sum
	return io.EOF
}

// Err returns the first failure seen by Read, or nil.
func (v *VerifyingReader) Err() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.err
}

// Verify reports whether all size bytes were read and matched the expected
// md5, and returns the md5. For size 0 it needs no Read (a consumer may
// never read an empty body). If fewer bytes were consumed it returns an
// error wrapping backend.ErrChecksum; if Read failed it returns that error.
func (v *VerifyingReader) Verify() (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.err != nil {
		return "", v.err
	}
	if v.sum == "" {
		if v.n < v.size {
			return "", fmt.Errorf("%w: only %d of %d bytes were consumed", backend.ErrChecksum, v.n, v.size)
		}
		if err := v.finishLocked(); err != io.EOF {
			return "", err
		}
	}
	return v.sum, nil
}

// Close stops further reads from the underlying reader. It waits for an
// in-flight Read to return. It does not close the underlying reader.
func (v *VerifyingReader) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.closed = true
	return nil
}

// ContextReadCloser returns rc wrapped so that every Read first checks ctx
// and fails with ctx's error once it is done. Close closes rc.
func ContextReadCloser(ctx context.Context, rc io.ReadCloser) io.ReadCloser {
	return &ctxReadCloser{ctx: ctx, rc: rc}
}

type ctxReadCloser struct {
	ctx context.Context
	rc  io.ReadCloser
}

func (c *ctxReadCloser) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.rc.Read(p)
}

func (c *ctxReadCloser) Close() error { return c.rc.Close() }

// WriteTo passes io.Copy on to the wrapped reader's WriteTo when it has
// one (the local backend's files: sendfile into a socket), after checking
// ctx once; otherwise it copies through Read.
func (c *ctxReadCloser) WriteTo(w io.Writer) (int64, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	if wt, ok := c.rc.(io.WriterTo); ok {
		return wt.WriteTo(w)
	}
	return io.Copy(w, struct{ io.Reader }{c})
}
