package objio

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/osprey-storage/osprey/backend"
)

// AbortTimeout bounds the AbortMultipartUpload sent after a failed Put,
// which runs even when the Put's own context is already done.
const AbortTimeout = 30 * time.Second

// PutTarget is one object of a provider, as Uploader writes it. Every
// request it sends records the object's md5 as user metadata when the md5
// is known.
type PutTarget interface {
	// PutSingle stores body in one request carrying Content-MD5 (raw) and
	// the md5 metadata (sum, hex).
	PutSingle(ctx context.Context, body []byte, raw [md5.Size]byte, sum string) error
	// Initiate starts a multipart upload; sum is the md5 metadata to
	// record, or "" when not known yet.
	Initiate(ctx context.Context, sum string) (MultipartUpload, error)
}

// MultipartUpload is one multipart upload of a PutTarget.
type MultipartUpload interface {
	// UploadPart sends part num (from 1) carrying Content-MD5 (raw).
	UploadPart(ctx context.Context, num int, p []byte, raw [md5.Size]byte) error
	// Complete completes the upload with the parts sent, in order, and
	// returns the object's ETag.
	Complete(ctx context.Context) (etag string, err error)
	// Abort abandons the upload; ctx is one of its own, bounded by
	// AbortTimeout. A failure is only the provider's to log: the Put
	// already returns the error that caused the abort, and lifecycle
	// rules can reap leftover parts.
	Abort(ctx context.Context)
	// RecordMD5 adds the md5 metadata to the completed object of size
	// bytes uploaded without a known md5, conditional on its ETag being
	// etag, so an object replaced concurrently is left alone. A provider
	// may leave it unrecorded (nil) where it cannot copy the object.
	RecordMD5(ctx context.Context, sum, etag string, size int64) error
}

// Uploader is the Put of a provider backend: objects up to PartSize bytes
// are read into memory and sent with one request carrying Content-MD5,
// so the provider verifies them; larger ones go through a multipart
// upload, one part-sized buffer at a time. Nothing becomes visible when
// the body is short or its md5 differs from the expected one: a single
// request is then never sent, and a multipart upload is aborted before
// it completes.
type Uploader struct {
	// Prefix names the backend in messages ("oss").
	Prefix string
	// PartSize is the configured part size.
	PartSize int64
	// MaxParts is the provider's largest part number.
	MaxParts int64
}

// Put writes size bytes of r to t and returns their md5 (hex); want, if
// not "", is the md5 they must have.
func (u Uploader) Put(ctx context.Context, t PutTarget, r io.Reader, size int64, want string) (string, error) {
	r = &CtxReader{Ctx: ctx, R: r}
	if size <= u.PartSize {
		return u.putSingle(ctx, t, r, size, want)
	}
	return u.putMultipart(ctx, t, r, size, want)
}

func (u Uploader) mismatch(sum, want string) error {
	if want != "" && sum != want {
		return fmt.Errorf("%s: %w: md5 of body is %s, expected %s", u.Prefix, backend.ErrChecksum, sum, want)
	}
	return nil
}

func (u Uploader) putSingle(ctx context.Context, t PutTarget, r io.Reader, size int64, want string) (string, error) {
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", BodyError(u.Prefix, ctx, err, size)
	}
	raw := md5.Sum(buf)
	sum := hex.EncodeToString(raw[:])
	if err := u.mismatch(sum, want); err != nil {
		return "", err
	}
	return sum, t.PutSingle(ctx, buf, raw, sum)
}

// PartSizeFor returns the part size for an object of size bytes: the
// configured one, or a larger one (a whole number of MiB) when that would
// need more than MaxParts parts.
func (u Uploader) PartSizeFor(size int64) int64 {
	ps := u.PartSize
	if min := (size + u.MaxParts - 1) / u.MaxParts; min > ps {
		const align = 1 << 20
		ps = (min + align - 1) / align * align
	}
	return ps
}

func (u Uploader) putMultipart(ctx context.Context, t PutTarget, r io.Reader, size int64, want string) (string, error) {
	// A known md5 is recorded at once so the object never appears
	// without it.
	up, err := t.Initiate(ctx, want)
	if err != nil {
		return "", err
	}
	completed := false
	defer func() {
		if !completed {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), AbortTimeout)
			defer cancel()
			up.Abort(actx)
		}
	}()

	partSize := u.PartSizeFor(size)
	buf := make([]byte, partSize)
	whole := md5.New()
	for num, off := 1, int64(0); off < size; num++ {
		p := buf[:min(partSize, size-off)]
		if _, err := io.ReadFull(r, p); err != nil {
			return "", BodyError(u.Prefix, ctx, err, size)
		}
		whole.Write(p)
		if err := up.UploadPart(ctx, num, p, md5.Sum(p)); err != nil {
			return "", err
		}
		off += int64(len(p))
	}
	sum := hex.EncodeToString(whole.Sum(nil))
	if err := u.mismatch(sum, want); err != nil {
		return "", err
	}
	etag, err := up.Complete(ctx)
	if err != nil {
		return "", err
	}
	completed = true
	if want == "" {
		if err := up.RecordMD5(ctx, sum, etag, size); err != nil {
			return "", err
		}
	}
	return sum, nil
}

// PutArgs checks a Put's key, md5 and size and returns the md5 the body
// must have ("" for any).
func PutArgs(prefix, key, md5hex string, size int64) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", fmt.Errorf("%s: %w", prefix, err)
	}
	want, err := ParseMD5(md5hex)
	if err != nil {
		return "", fmt.Errorf("%s: %w", prefix, err)
	}
	if size < 0 {
		return "", fmt.Errorf("%s: %w: negative size %d", prefix, backend.ErrInvalid, size)
	}
	return want, nil
}

// ReadRange is a Get's request as a provider sends it.
type ReadRange struct {
	// Empty: the read yields no bytes (length 0); the provider is not
	// asked for any, only whether the object exists (EmptyRead).
	Empty bool
	// Whole: the whole object, which is also what the provider's CRC
	// covers.
	Whole bool
	// ToEnd: from Offset to the end of the object.
	ToEnd bool
	// Offset and Last are the first and last byte when neither Whole nor
	// ToEnd.
	Offset, Last int64
}

// GetArgs checks a Get's key and offset and says what to ask for. A
// length reaching past what offset+length can express reads to the end,
// like a negative one.
func GetArgs(prefix, key string, offset, length int64) (ReadRange, error) {
	if err := ValidateKey(key); err != nil {
		return ReadRange{}, fmt.Errorf("%s: %w", prefix, err)
	}
	if offset < 0 {
		return ReadRange{}, fmt.Errorf("%s: %w: negative offset %d", prefix, backend.ErrInvalid, offset)
	}
	if length == 0 {
		return ReadRange{Empty: true}, nil
	}
	toEnd := length < 0 || length-1 > math.MaxInt64-offset
	rr := ReadRange{Whole: offset == 0 && toEnd, ToEnd: toEnd, Offset: offset}
	if !toEnd {
		rr.Last = offset + length - 1
	}
	return rr, nil
}

// EmptyRead answers a read that yields no bytes (length 0, or an offset
// at the end of the object) after checking, with stat, that the object
// exists and offset is within it.
func EmptyRead(ctx context.Context, prefix string, stat func(context.Context) (backend.ObjectInfo, error), offset, length int64) (io.ReadCloser, error) {
	info, err := stat(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := ValidateRange(offset, length, info.Size); err != nil {
		return nil, fmt.Errorf("%s: %w", prefix, err)
	}
	return io.NopCloser(eofReader{}), nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
