package objio

import (
	"context"
	"errors"
	"fmt"
	"hash/crc64"
	"io"

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
