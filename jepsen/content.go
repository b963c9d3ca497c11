package jepsen

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
)

// MiB is the chunk-boundary unit osproxy got wrong (SPEC §6: the last byte
// dropped when the length is 1 mod 1 MiB).
const MiB = 1 << 20

// Content names the bytes of a file without holding them: Size bytes of a
// ChaCha8 stream keyed by Seed. The workload uploads Content and the checker
// regenerates it to compare downloads byte for byte, so the harness never
// keeps file bodies in memory.
type Content struct {
	Seed uint64 `json:"seed"`
	Size int64  `json:"size"`
}

// Reader returns a reader over the whole content.
func (c Content) Reader() io.Reader { return c.RangeReader(0, c.Size) }

// RangeReader returns a reader over bytes [off, off+n) of the content,
// clipped to its size.
func (c Content) RangeReader(off, n int64) io.Reader {
	if off > c.Size {
		off = c.Size
	}
	if off+n > c.Size {
		n = c.Size - off
	}
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], c.Seed)
	copy(key[8:], "osprey-jepsen-content-v1")
	r := &streamReader{rng: rand.NewChaCha8(key)}
	if off > 0 {
		// The stream is cheap (hundreds of MB/s); skipping is simpler than
		// seeking the cipher and sizes here are a few MiB.
		_, _ = io.CopyN(io.Discard, r, off)
	}
	return io.LimitReader(r, n)
}

// Bytes returns bytes [off, off+n) of the content.
func (c Content) Bytes(off, n int64) []byte {
	b, _ := io.ReadAll(c.RangeReader(off, n))
	return b
}

// MD5 returns the hex md5 of the whole content, memoised.
func (c Content) MD5() string { return c.RangeMD5(0, c.Size) }

var md5Cache sync.Map // rangeKey -> string

type rangeKey struct {
	c      Content
	off, n int64
}

// RangeMD5 returns the hex md5 of bytes [off, off+n), memoised.
func (c Content) RangeMD5(off, n int64) string {
	k := rangeKey{c, off, n}
	if v, ok := md5Cache.Load(k); ok {
		return v.(string)
	}
	h := md5.New()
	_, _ = io.Copy(h, c.RangeReader(off, n))
	s := hex.EncodeToString(h.Sum(nil))
	md5Cache.Store(k, s)
	return s
}

// Compare reads body to EOF and reports where it first differs from bytes
// [off, off+n) of the content, or "" if it is identical. It reads in small
// buffers, so memory does not grow with n.
func (c Content) Compare(body io.Reader, off, n int64) (string, error) {
	want := c.RangeReader(off, n)
	wb := make([]byte, 32<<10)
	gb := make([]byte, 32<<10)
	var pos int64
	for {
		// Not io.ReadFull: it reports a short final buffer and a body cut
		// off by the server (io.ErrUnexpectedEOF from net/http) the same
		// way, which would make an aborted download look like a short file.
		gn, gerr := readSome(body, gb)
		if gerr != nil && gerr != io.EOF {
			return "", gerr
		}
		wn, _ := io.ReadFull(want, wb[:gn])
		if wn < gn {
			return fmt.Sprintf("body longer than %d bytes", n), nil
		}
		if !bytes.Equal(gb[:gn], wb[:gn]) {
			for i := 0; i < gn; i++ {
				if gb[i] != wb[i] {
					return fmt.Sprintf("byte %d differs (got %#x want %#x)", off+pos+int64(i), gb[i], wb[i]), nil
				}
			}
		}
		pos += int64(gn)
		if gerr != nil {
			break
		}
	}
	if pos != n {
		return fmt.Sprintf("body has %d bytes, want %d", pos, n), nil
	}
	return "", nil
}

// readSome fills b as far as it can; it returns io.EOF only at a clean end
// of body and passes any other error through.
func readSome(r io.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := r.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

type streamReader struct {
	rng *rand.ChaCha8
}

func (s *streamReader) Read(p []byte) (int, error) { return s.rng.Read(p) }
