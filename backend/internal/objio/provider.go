package objio

import (
	"context"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/osprey-storage/osprey/backend"
)

// CtxReader fails reads once Ctx is done, so a Put stops pulling from a
// slow body when its caller gives up.
type CtxReader struct {
	Ctx context.Context
	R   io.Reader
}

func (c *CtxReader) Read(p []byte) (int, error) {
	if err := c.Ctx.Err(); err != nil {
		return 0, err
	}
	return c.R.Read(p)
}

// BodyError describes a failure to read a Put body of size bytes; prefix
// names the backend ("oss", "cos"). A body that ends early is
// backend.ErrChecksum.
func BodyError(prefix string, ctx context.Context, err error, size int64) error {
	switch {
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return fmt.Errorf("%s: reading body: %w", prefix, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%s: %w: body ended before %d bytes: %w", prefix, backend.ErrChecksum, size, io.ErrUnexpectedEOF)
	default:
		return fmt.Errorf("%s: reading body: %w", prefix, err)
	}
}

var crcTable = crc64.MakeTable(crc64.ECMA)

// ObjectReader is the body a provider backend's Get returns. It translates
// transport failures into backend.ErrUnavailable, detects truncation and,
// when WantCRC is set, checks the CRC-64/ECMA the provider reported for a
// whole-object read.
type ObjectReader struct {
	Prefix   string // backend name for messages ("oss")
	Provider string // provider name for messages ("OSS")
	Ctx      context.Context
	Body     io.ReadCloser
	// Remaining is the number of bytes still expected, -1 if unknown.
	Remaining int64

	crc *crcState
	err error
}

type crcState struct {
	sum  uint64
	want uint64
}

// CheckCRC makes the reader verify the whole body against want.
func (o *ObjectReader) CheckCRC(want uint64) { o.crc = &crcState{want: want} }

func (o *ObjectReader) Read(p []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	if err := o.Ctx.Err(); err != nil {
		o.err = err
		return 0, err
	}
	n, err := o.Body.Read(p)
	if o.crc != nil {
		o.crc.sum = crc64.Update(o.crc.sum, crcTable, p[:n])
	}
	if o.Remaining >= 0 {
		o.Remaining -= int64(n)
	}
	switch {
	case err == io.EOF:
		if o.Remaining > 0 {
			o.err = fmt.Errorf("%s: %w: body ended %d bytes early", o.Prefix, backend.ErrUnavailable, o.Remaining)
			return n, o.err
		}
		if o.crc != nil && o.crc.sum != o.crc.want {
			o.err = fmt.Errorf("%s: %w: crc64 of body is %d, %s reported %d", o.Prefix, backend.ErrChecksum, o.crc.sum, o.Provider, o.crc.want)
			return n, o.err
		}
		o.err = io.EOF
	case err != nil:
		if cerr := o.Ctx.Err(); cerr != nil {
			o.err = fmt.Errorf("%s: reading object: %w", o.Prefix, cerr)
		} else {
			o.err = fmt.Errorf("%s: %w: reading object: %v", o.Prefix, backend.ErrUnavailable, err)
		}
		return n, o.err
	}
	return n, err
}

// Close closes the body; later reads fail.
func (o *ObjectReader) Close() error {
	if o.err == nil {
		o.err = fmt.Errorf("%s: read after close", o.Prefix)
	}
	return o.Body.Close()
}

// InfoFromHeaders builds the ObjectInfo of a HEAD answer from an S3-like
// provider: size from Content-Length, ModTime from Last-Modified, and the
// md5 from the metaHeader the backend stored or, failing that, a plain-md5
// ETag. where names the object for messages ("oss: stat b/k").
func InfoFromHeaders(where, bucket, key string, h http.Header, metaHeader string) (backend.ObjectInfo, error) {
	info := backend.ObjectInfo{Bucket: bucket, Key: key}
	size, err := strconv.ParseInt(h.Get("Content-Length"), 10, 64)
	if err != nil {
		return backend.ObjectInfo{}, fmt.Errorf("%s: %w: bad Content-Length %q", where, backend.ErrUnavailable, h.Get("Content-Length"))
	}
	info.Size = size
	if t, err := http.ParseTime(h.Get("Last-Modified")); err == nil {
		info.ModTime = t
	}
	info.MD5 = MD5FromHeaders(h.Get(metaHeader), h.Get("ETag"))
	return info, nil
}

// MD5FromHeaders returns the recorded md5, or the ETag when it is a plain
// md5 (objects uploaded in one request without server-side encryption).
func MD5FromHeaders(meta, etag string) string {
	if s, err := ParseMD5(meta); err == nil && s != "" {
		return s
	}
	if s, err := ParseMD5(strings.Trim(etag, `"`)); err == nil {
		return s
	}
	return ""
}
