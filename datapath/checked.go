package datapath

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/cespare/xxhash/v2"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/fsm"
)

// errCorruptCopy is a local-disk backend's object copy whose bytes do not
// match the checksum the content's record holds for them.
var errCorruptCopy = errors.New("object copy does not match its checksum")

// maxWholeCheck is the largest content without chunk sums (tiered by a
// build before fsm.FeatureLevelSums, or of one chunk before
// fsm.FeatureLevelOneSum) whose md5 is checked when it is read: the whole
// object is read and hashed before its first byte goes out, so a large one
// would cost its md5 (~0.5 GB/s a core) up front.
const maxWholeCheck = 16 << 20

// segment is a part of a checked read: n bytes at off of the object, and
// the chunk they belong to when it is checked (sum or md5 set) before any
// of them are sent.
type segment struct {
	off, n int64
	// The checked chunk: its extent in the object and its xxhash64, or
	// the whole object's md5 (a content without chunk sums).
	cOff, cN int64
	sum      uint64
	md5      string
}

func (s segment) checked() bool { return s.sum != 0 || s.md5 != "" }

// planChecks cuts the range [off, off+n) of a tiered content at its chunk
// boundaries (Content.Sums); every chunk the range touches is checked, so
// a range that starts or ends inside a chunk costs reading the rest of
// that chunk too (at most one chunk at each end: a 4 KiB range inside an
// 8 MiB chunk reads the 8 MiB, from the page cache when it is warm). A
// content without sums is checked as one chunk by its md5 when it is
// small (maxWholeCheck); a larger one, tiered by a build before sums were
// kept, is served unchecked (the scrubber checks it).
func planChecks(ct fsm.Content, off, n int64) []segment {
	if n <= 0 {
		return nil
	}
	sums := ct.Sums
	var total int64
	for _, s := range sums {
		total += s.Size
	}
	if total != ct.Size {
		sums = nil // not a record this build wrote: trust nothing of it
	}
	if len(sums) == 0 {
		whole := segment{off: off, n: n}
		if ct.MD5 != "" && ct.Size <= maxWholeCheck {
			whole.cOff, whole.cN, whole.md5 = 0, ct.Size, ct.MD5
		}
		return []segment{whole}
	}
	var segs []segment
	end := off + n
	var pos int64
	for _, cs := range sums {
		cStart, cEnd := pos, pos+cs.Size
		pos = cEnd
		lo, hi := max(off, cStart), min(end, cEnd)
		if lo >= hi {
			if cStart >= end {
				break
			}
			continue
		}
		s := segment{off: lo, n: hi - lo}
		if cs.Sum != 0 { // 0: not known (records of early builds)
			s.cOff, s.cN, s.sum = cStart, cs.Size, cs.Sum
		}
		if k := len(segs) - 1; k >= 0 && !s.checked() && !segs[k].checked() {
			segs[k].n += s.n // adjacent unchecked parts: one read
			continue
		}
		segs = append(segs, s)
	}
	return segs
}

// readError marks an error of the source of a copy (a holder's read, a
// failed check) as opposed to one of the writer it was being copied to:
// only the former is worth trying another holder for.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

func sourceErr(err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	var re *readError
	if errors.As(err, &re) {
		return err
	}
	return &readError{err: err}
}

// checkedObject serves a range of this node's copy of a tiered content
// from the local-disk backend, segment by segment (planChecks): a checked
// segment's chunk is read and hashed first, and its bytes go out only if
// the sum matches, by the backend's own reader (sendfile for a socket), so
// a bad copy is found before any of its bad bytes are sent.
type checkedObject struct {
	p           *Path
	ctx         context.Context
	ct          fsm.Content
	bucket, key string
	segs        []segment
	i           int
	cur         io.ReadCloser
	left        int64 // bytes of segs[i] not read yet
}

// GetCheckedObject reads part of this node's copy of the tiered content
// id, checking it against the content's chunk sums (or small md5) as it
// goes (checkedObject). The first checked chunk is checked before it
// returns, so a bad one is an error here rather than a cut-off body. A
// content this node's record does not name at bucket/key (a record that
// lags a move) is served unchecked.
func (p *Path) GetCheckedObject(ctx context.Context, bucket, key string, id osprey.UID, off, length int64) (io.ReadCloser, error) {
	ct, ok := p.cfg.State.Content(id)
	if p.cfg.UncheckedObjectReads || !ok || ct.Location == nil || ct.Location.Bucket != bucket || ct.Location.Key != key ||
		off < 0 || length < 0 || off+length > ct.Size {
		return p.GetLocalObject(ctx, bucket, key, off, length)
	}
	c := &checkedObject{p: p, ctx: ctx, ct: ct, bucket: bucket, key: key, segs: planChecks(ct, off, length)}
	if len(c.segs) > 0 {
		if err := c.open(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// open checks segment i (if it is checked) and opens its bytes.
func (c *checkedObject) open() error {
	s := c.segs[c.i]
	if s.checked() {
		if err := c.check(s); err != nil {
			return err
		}
	}
	rc, err := c.p.cfg.Objects.Get(c.ctx, c.bucket, c.key, s.off, s.n)
	if err != nil {
		return sourceErr(mapBackendErr(err))
	}
	c.cur, c.left = rc, s.n
	return nil
}

// check reads segment s's chunk and compares it with its sum.
func (c *checkedObject) check(s segment) error {
	rc, err := c.p.cfg.Objects.Get(c.ctx, c.bucket, c.key, s.cOff, s.cN)
	if err != nil {
		return sourceErr(mapBackendErr(err))
	}
	defer rc.Close()
	var h hash.Hash
	if s.md5 != "" {
		h = md5.New()
	} else {
		h = xxhash.New()
	}
	bp := sendBufs.Get().(*[]byte)
	n, err := io.CopyBuffer(struct{ io.Writer }{h}, struct{ io.Reader }{rc}, *bp)
	sendBufs.Put(bp)
	if err != nil {
		return sourceErr(err)
	}
	good := n == s.cN
	if d, ok := h.(*xxhash.Digest); ok {
		good = good && d.Sum64() == s.sum
	} else {
		good = good && hex.EncodeToString(h.Sum(nil)) == s.md5
	}
	if good {
		return nil
	}
	c.p.log.Warn("an object copy failed its checksum as it was read: serving another copy, and the scrubber rewrites this one",
		"content", c.ct.ID, "bucket", c.bucket, "key", c.key, "offset", s.cOff, "size", s.cN, "read", n)
	if c.p.corrupt != nil {
		c.p.corrupt.Inc()
	}
	if c.p.cfg.BadObjectCopy != nil {
		c.p.cfg.BadObjectCopy(c.ct.ID)
	}
	return sourceErr(fmt.Errorf("%w: %w: content %s bytes %d-%d", osprey.ErrBackend, errCorruptCopy, c.ct.ID, s.cOff, s.cOff+s.cN-1))
}

// advance closes the finished segment and opens the next; io.EOF after
// the last.
func (c *checkedObject) advance() error {
	if c.left > 0 {
		return sourceErr(fmt.Errorf("object copy of content %s: %w", c.ct.ID, io.ErrUnexpectedEOF))
	}
	c.cur.Close()
	c.cur = nil
	c.i++
	if c.i >= len(c.segs) {
		return io.EOF
	}
	return c.open()
}

func (c *checkedObject) Read(b []byte) (int, error) {
	for c.cur != nil {
		if int64(len(b)) > c.left {
			b = b[:c.left]
		}
		k, err := c.cur.Read(b)
		c.left -= int64(k)
		if c.left > 0 && err == nil {
			return k, nil
		}
		if err != nil && err != io.EOF {
			return k, sourceErr(err)
		}
		if aerr := c.advance(); aerr != nil {
			return k, aerr
		}
		if k > 0 {
			return k, nil
		}
	}
	return 0, io.EOF
}

// WriteTo sends segment by segment through the backend reader's own
// WriteTo (sendfile into a socket).
func (c *checkedObject) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for c.cur != nil {
		var n int64
		var err error
		if wt, ok := c.cur.(io.WriterTo); ok {
			n, err = wt.WriteTo(w)
		} else {
			n, err = copyLarge(w, c.cur)
		}
		total += n
		c.left -= n
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return total, sourceErr(err) // the copy is shorter than its record
		}
		if err != nil {
			return total, err
		}
		if err := c.advance(); err != nil {
			if err == io.EOF {
				err = nil
			}
			return total, err
		}
	}
	return total, nil
}

func (c *checkedObject) Close() error {
	if c.cur != nil {
		return c.cur.Close()
	}
	return nil
}
