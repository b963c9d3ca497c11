package chunkstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Get returns a reader of n bytes of the value stored under k starting at
// off (n < 0, or n past the end, reads to the end), and the value's Info.
// The caller MUST Close the reader; it pins a consistent view of the value,
// so a concurrent replacement or Delete does not affect it.
//
// Data is read block by block; every block read is checked against its
// checksum (the whole block, even if the range covers part of it), and a
// read of the whole value also checks the value's checksum at EOF. A
// mismatch or missing block makes Read return an error wrapping ErrCorrupt
// that names the key. Get returns ErrNotFound if there is no value,
// ErrInvalidRange if off < 0 or off > size, and ErrCorrupt if the manifest
// is unreadable.
func (s *Store) Get(ctx context.Context, k Key, off, n int64) (io.ReadCloser, Info, error) {
	done, err := s.begin()
	if err != nil {
		return nil, Info{}, err
	}
	defer done()
	if err := ctx.Err(); err != nil {
		return nil, Info{}, err
	}
	r, err := s.newReader(ctx, k, off, n)
	if err != nil {
		return nil, Info{}, err
	}
	s.stats.gets.Add(1)
	return r, r.m.info(), nil
}

// Verify reads the whole value stored under k, checking every block's
// checksum and the value's, and returns its Info. It returns an error
// wrapping ErrCorrupt (naming the key and block) on any mismatch or missing
// block, and ErrNotFound if there is no value.
func (s *Store) Verify(ctx context.Context, k Key) (Info, error) {
	done, err := s.begin()
	if err != nil {
		return Info{}, err
	}
	defer done()
	r, err := s.newReader(ctx, k, 0, -1)
	if err != nil {
		return Info{}, err
	}
	s.stats.gets.Add(1)
	err = r.drain(ctx)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Info{}, err
	}
	return r.m.info(), nil
}

// reader streams a range of one value from a single Pebble iterator. The
// iterator reads at the sequence number it was created with, so the
// manifest and every block come from the same instant even if the value is
// replaced or deleted meanwhile.
type reader struct {
	s *Store
	k Key
	m manifest

	mu sync.Mutex // guards everything below; Close may race Read
	// Blocks come from it (blocks in Pebble) or f (a blob file, read into
	// buf, a pooled block buffer); the other is nil.
	it   *pebble.Iterator
	f    vfs.File
	buf  *[]byte
	pos  int64  // next value offset to return
	end  int64  // value offset where the range ends
	cur  []byte // rest of the current block within the range; points into the iterator's memory
	next uint32 // block the iterator is positioned on + 1 (0: not positioned)
	err  error  // sticky: io.EOF, corruption, or close
	// digest accumulates the whole value when the range is the whole value,
	// so the value checksum can be checked at EOF.
	digest *xxhash.Digest
}

func (s *Store) newReader(ctx context.Context, k Key, off, n int64) (*reader, error) {
	// Reading the manifest and opening its blob file must not interleave
	// with a commit or delete of k, which unlinks the file it replaces.
	s.commitMu.RLock()
	defer s.commitMu.RUnlock()
	unlock := s.locks.lock(k)
	defer unlock()
	mk := manifestKey(k)
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: mk, UpperBound: prefixSuccessor(mk)})
	if err != nil {
		return nil, fmt.Errorf("chunkstore: get %v: %w", k, err)
	}
	fail := func(err error) (*reader, error) { return nil, errors.Join(err, it.Close()) }
	if !it.SeekGE(mk) || !sameKey(it.Key(), mk) {
		if err := it.Error(); err != nil {
			return fail(fmt.Errorf("chunkstore: get %v: %w", k, err))
		}
		return fail(fmt.Errorf("chunkstore: get %v: %w", k, ErrNotFound))
	}
	v, err := it.ValueAndErr()
	if err != nil {
		return fail(fmt.Errorf("chunkstore: get %v: %w", k, err))
	}
	m, err := decodeManifest(v)
	if err != nil {
		return fail(s.corrupt(k, "%v", err))
	}
	if off < 0 || off > m.size {
		return fail(fmt.Errorf("chunkstore: get %v: offset %d of %d bytes: %w", k, off, m.size, ErrInvalidRange))
	}
	end := m.size
	if n >= 0 && n < m.size-off {
		end = off + n
	}
	// Same iterator, same sequence number: move it onto the blocks.
	start, limit := genBlockSpan(k, m.gen)
	it.SetBounds(start, limit)
	r := &reader{s: s, k: k, m: m, it: it, pos: off, end: end}
	if m.file && m.blocks > 0 {
		// The blocks are in the blob file: the iterator is done.
		if err := it.Close(); err != nil {
			return nil, fmt.Errorf("chunkstore: get %v: %w", k, err)
		}
		r.it = nil
		f, err := s.openBlob(k, m)
		if err != nil {
			return nil, err
		}
		r.f = f
		r.buf = s.bufPool.Get().(*[]byte)
		if len(*r.buf) < int(m.blockSize)+8 {
			// Written with a larger block size than this store's.
			b := make([]byte, int(m.blockSize)+8)
			r.buf = &b
		}
	}
	if off == 0 && end == m.size {
		r.digest = xxhash.New()
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.Join(ErrClosed, r.close(ErrClosed))
	}
	s.readers[r] = struct{}{}
	s.mu.Unlock()
	return r, nil
}

// Read implements io.Reader.
func (r *reader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return 0, r.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if len(r.cur) == 0 {
		if r.pos >= r.end {
			r.err = r.finish()
			return 0, r.err
		}
		if err := r.load(); err != nil {
			r.err = err
			return 0, err
		}
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	r.pos += int64(n)
	return n, nil
}

// WriteTo implements io.WriterTo, so io.Copy writes straight from block
// memory without an intermediate buffer.
func (r *reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		r.mu.Lock()
		if r.err == nil && len(r.cur) == 0 {
			if r.pos >= r.end {
				r.err = r.finish()
			} else if err := r.load(); err != nil {
				r.err = err
			}
		}
		if r.err != nil {
			err := r.err
			r.mu.Unlock()
			if err == io.EOF {
				return total, nil
			}
			return total, err
		}
		// Write while holding mu: cur points into iterator memory that a
		// concurrent Close would release.
		n, err := w.Write(r.cur)
		r.cur = r.cur[n:]
		r.pos += int64(n)
		total += int64(n)
		r.mu.Unlock()
		if err != nil {
			return total, err
		}
	}
}

// drain reads to EOF without copying, checking ctx between blocks.
func (r *reader) drain(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		r.mu.Lock()
		if r.err == nil {
			if r.pos >= r.end {
				r.err = r.finish()
			} else if r.err = r.load(); r.err == nil {
				r.pos += int64(len(r.cur))
				r.cur = nil
			}
		}
		err := r.err
		r.mu.Unlock()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// finish is called at the end of the range: it checks the whole-value
// checksum if the range was the whole value.
func (r *reader) finish() error {
	if r.digest != nil {
		if got := r.digest.Sum64(); got != r.m.sum {
			return r.s.corrupt(r.k, "value checksum %016x, manifest says %016x", got, r.m.sum)
		}
	}
	return io.EOF
}

// load positions the iterator on the block holding r.pos, verifies it and
// points r.cur at the part of it inside the range.
func (r *reader) load() error {
	if r.it == nil && r.f == nil {
		return ErrClosed
	}
	bs := int64(r.m.blockSize)
	idx := uint32(r.pos / bs)
	if r.f != nil {
		v, err := r.s.readBlobBlock(r.k, r.m, r.f, idx, *r.buf)
		if err != nil {
			return err
		}
		return r.use(idx, v)
	}
	want := blockKey(r.k, r.m.gen, idx)
	var ok bool
	if r.next == idx && idx > 0 {
		ok = r.it.Next() // sequential read: the next block is adjacent
	} else {
		ok = r.it.SeekGE(want)
	}
	r.next = idx + 1
	if !ok || !sameKey(r.it.Key(), want) {
		if err := r.it.Error(); err != nil {
			return fmt.Errorf("chunkstore: get %v block %d: %w", r.k, idx, err)
		}
		return r.s.corrupt(r.k, "block %d of %d missing", idx, r.m.blocks)
	}
	v, err := r.it.ValueAndErr()
	if err != nil {
		return fmt.Errorf("chunkstore: get %v block %d: %w", r.k, idx, err)
	}
	return r.use(idx, v)
}

// use verifies block idx (v is its data and stored checksum) and points
// r.cur at the part of it inside the range.
func (r *reader) use(idx uint32, v []byte) error {
	bs := int64(r.m.blockSize)
	n := r.m.blockLen(idx)
	if int64(len(v)) != n+8 {
		return r.s.corrupt(r.k, "block %d is %d bytes, want %d", idx, len(v), n+8)
	}
	data := v[:n]
	if got, stored := checksum(data), binary.BigEndian.Uint64(v[n:]); got != stored {
		return r.s.corrupt(r.k, "block %d checksum %016x, stored %016x", idx, got, stored)
	}
	if r.digest != nil {
		_, _ = r.digest.Write(data) // never fails
	}
	blockStart := int64(idx) * bs
	r.cur = data[r.pos-blockStart : min(n, r.end-blockStart)]
	return nil
}

// Close releases the reader's iterator. It is idempotent.
func (r *reader) Close() error {
	err := r.close(errReaderClosed)
	r.s.mu.Lock()
	delete(r.s.readers, r)
	r.s.mu.Unlock()
	return err
}

var errReaderClosed = errors.New("chunkstore: read after close")

// close closes the iterator and makes later reads fail with reason.
func (r *reader) close(reason error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.it == nil && r.f == nil {
		return nil
	}
	var err error
	if r.it != nil {
		err = r.it.Close()
		r.it = nil
	}
	if r.f != nil {
		err = r.f.Close()
		r.f = nil
		if cap(*r.buf) == r.s.opts.BlockSize+8 {
			r.s.bufPool.Put(r.buf)
		}
		r.buf = nil
	}
	r.cur = nil
	if r.err == nil || r.err == io.EOF {
		r.err = reason
	}
	if err != nil {
		return fmt.Errorf("chunkstore: close reader %v: %w", r.k, err)
	}
	return nil
}
