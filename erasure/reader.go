package erasure

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/reedsolomon"
)

// ShardSource opens bytes [off, off+n) of shard index (0..K+M-1) of the
// chunk being read, for example from a local chunkstore or from the node
// that holds the shard. It returns an error if the shard is missing or
// unreadable; an error (or a read error) that wraps ErrCorrupt is reported
// through ReaderOptions.OnCorrupt, any other through OnUnavailable. The
// reader verifies every block it uses, so the source need not.
//
// A reader may call its source concurrently for different indexes, and
// reads each returned ReadCloser from one goroutine at a time, closing it
// when done. The source and its streams should stop when ctx ends.
type ShardSource func(ctx context.Context, index int, off, n int64) (io.ReadCloser, error)

// ReaderOptions tunes NewReader. The zero value is valid.
type ReaderOptions struct {
	// OnCorrupt, if not nil, is called when shard index turns out corrupt:
	// a block failed its stripe checksum, or the source returned an error
	// wrapping ErrCorrupt. err says which. The reader treats the shard as
	// missing from then on (and reconstructs from the others); the call
	// lets the caller schedule a repair. It is called at most once per shard
	// and reader, from the goroutine calling Read, and should not block.
	OnCorrupt func(index int, err error)
	// OnUnavailable, if not nil, is called, with the same guarantees as
	// OnCorrupt, when shard index cannot be read for any other reason: the
	// source returned an error, or its stream failed or ended early. It is
	// not called for errors caused by the reader's context ending.
	OnUnavailable func(index int, err error)
}

// NewReader returns a reader of bytes [off, off+n) of a chunk of chunkSize
// bytes encoded under p, reading shard bytes through src and checking them
// against infos (the K+M ShardInfos Encode returned for the chunk).
//
// The reader works stripe by stripe. When the data shards covering a stripe
// are healthy it streams them and copies their bytes out, with no decoding
// (the fast path). When one fails, from that stripe on it reads any K
// healthy shards, preferring data shards, and reconstructs the missing data
// blocks. A shard fails when its source errors, its stream breaks or ends
// early, or a block fails its stripe checksum (reported through opts); a
// failed shard is not tried again by this reader. If fewer than K shards of
// a stripe can be read, Read returns ErrTooFewShards (wrapped, naming every
// failed shard and wrapping its error) after returning all bytes before that
// stripe. A shard is opened once, at the first stripe it is needed for, up
// to the last stripe of the range; a data shard the fast path does not need
// in that last stripe stops one stripe short, and is reopened there only if
// reconstruction needs it. Nothing outside the range's stripes is requested.
//
// Memory is bounded by the policy, not by the chunk or range size: one
// block buffer (at most BlockSize bytes) per shard in use, so at most
// (K+M)×BlockSize. Nothing is read until the first Read. The reader also
// implements io.WriterTo, which io.Copy uses to skip a copy.
//
// NewReader returns ErrInvalidPolicy, ErrInvalidShards (infos do not match p
// and chunkSize) or ErrInvalidRange, all wrapped, without calling src. The
// reader must be used by one goroutine at a time; the caller MUST Close it,
// which closes every open shard stream. ctx bounds every source call and
// read.
func NewReader(ctx context.Context, p Policy, chunkSize int64, infos []ShardInfo, src ShardSource, off, n int64, opts ReaderOptions) (io.ReadCloser, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	if chunkSize < 0 {
		return nil, fmt.Errorf("erasure: reader: chunk size %d: %w", chunkSize, ErrInvalidShards)
	}
	if off < 0 || n < 0 || off > chunkSize || n > chunkSize-off {
		return nil, fmt.Errorf("erasure: reader: range [%d, +%d) of a %d-byte chunk: %w", off, n, chunkSize, ErrInvalidRange)
	}
	if src == nil {
		return nil, fmt.Errorf("erasure: reader: nil shard source: %w", ErrInvalidShards)
	}
	l := newLayout(p, chunkSize)
	if err := checkInfos(p, l, infos); err != nil {
		return nil, err
	}
	r := &reader{
		ctx:    ctx,
		p:      p,
		l:      l,
		infos:  infos,
		src:    src,
		opts:   opts,
		pos:    off,
		end:    off + n,
		cur:    -1,
		shards: make([]shardState, p.Shards()),
		data:   make([][]byte, p.K),
		idx:    make([]int, 0, p.Shards()),
		errs:   make([]error, p.Shards()),
	}
	for i := range r.shards {
		r.shards[i].have = -1
	}
	if n > 0 {
		r.first = int(off / l.stripeLen())
		r.last = int((off + n - 1) / l.stripeLen())
		// The last data shard the fast path needs in the last stripe: data
		// shards after it are opened only up to the stripe before.
		bs := int64(l.block(r.last))
		r.lastNeed = int((off + n - 1 - l.stripeStart(r.last)) / bs)
		r.bufSize = l.block(r.first) // BlockSize unless the range is within the (short) last stripe
	}
	return r, nil
}

// checkInfos checks that infos describe the K+M shards of a chunk with
// layout l.
func checkInfos(p Policy, l layout, infos []ShardInfo) error {
	if len(infos) != p.Shards() {
		return fmt.Errorf("erasure: %d shard infos for %v, want %d: %w", len(infos), p, p.Shards(), ErrInvalidShards)
	}
	for i, in := range infos {
		switch {
		case in.Index != i:
			return fmt.Errorf("erasure: shard info %d has index %d: %w", i, in.Index, ErrInvalidShards)
		case in.Size != l.shardSize:
			return fmt.Errorf("erasure: shard %d: size %d, want %d for a %d-byte chunk under %v: %w",
				i, in.Size, l.shardSize, l.size, p, ErrInvalidShards)
		case len(in.StripeSums) != l.stripes:
			return fmt.Errorf("erasure: shard %d: %d stripe sums, want %d: %w", i, len(in.StripeSums), l.stripes, ErrInvalidShards)
		}
	}
	return nil
}

// reader is the io.ReadCloser NewReader returns.
type reader struct {
	ctx   context.Context
	p     Policy
	l     layout
	infos []ShardInfo
	src   ShardSource
	opts  ReaderOptions

	pos, end    int64 // chunk offsets: next byte to return, end of the range
	first, last int   // stripes covering [off, end)
	lastNeed    int   // last data shard the fast path needs in stripe last
	bufSize     int   // size of each shard's block buffer

	shards []shardState // K+M
	cur    int          // stripe whose data blocks data holds, -1 for none
	data   [][]byte     // K: data block j of stripe cur (only those the range needs)

	enc      reedsolomon.Encoder // created for the first degraded stripe
	sub      [][]byte            // K+M scratch for the codec
	required []bool              // K scratch for the codec
	idx      []int               // K+M scratch: shards to fetch
	errs     []error             // K+M scratch: their errors

	err    error // sticky: once Read fails it keeps failing
	closed bool
}

// shardState is the reader's view of one shard.
type shardState struct {
	rc   io.ReadCloser // open stream, or nil
	pos  int64         // shard offset of rc's next byte
	end  int64         // shard offset where rc's range ends
	buf  []byte        // block buffer, allocated on first use
	have int           // stripe whose verified block buf holds, -1 for none
	err  error         // why the shard is unusable; nil while healthy
}

func (r *reader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, ErrClosed
	}
	n := 0
	for n < len(p) && r.pos < r.end {
		s := int(r.pos / r.l.stripeLen())
		if s != r.cur {
			if n > 0 {
				break // return what we have rather than wait for another stripe
			}
			if err := r.load(s); err != nil {
				return 0, err
			}
		}
		n += r.take(p[n:])
	}
	if n == 0 && r.pos >= r.end {
		return 0, io.EOF
	}
	return n, nil
}

// WriteTo writes the rest of the range to w, avoiding Read's extra copy
// (io.Copy uses it).
func (r *reader) WriteTo(w io.Writer) (int64, error) {
	if r.closed {
		return 0, ErrClosed
	}
	var total int64
	for r.pos < r.end {
		s := int(r.pos / r.l.stripeLen())
		if s != r.cur {
			if err := r.load(s); err != nil {
				return total, err
			}
		}
		b := r.next()
		n, err := w.Write(b)
		r.pos += int64(n)
		total += int64(n)
		if err != nil {
			return total, err
		}
		if n != len(b) {
			return total, io.ErrShortWrite
		}
	}
	return total, nil
}

// next returns the bytes of stripe cur's current data block from pos on,
// cut at the end of the range.
func (r *reader) next() []byte {
	start := r.l.stripeStart(r.cur)
	bs := int64(r.l.block(r.cur))
	o := r.pos - start
	j, w := o/bs, o%bs
	lim := min(bs-w, r.end-r.pos)
	return r.data[j][w : w+lim]
}

// take copies from the current block into p and advances pos.
func (r *reader) take(p []byte) int {
	n := copy(p, r.next())
	r.pos += int64(n)
	return n
}

// load makes stripe s current, or fails the reader for good.
func (r *reader) load(s int) error {
	if r.err != nil {
		return r.err
	}
	if err := r.decode(s); err != nil {
		r.err = err
		r.closeStreams()
		return err
	}
	r.cur = s
	if s == r.last {
		r.closeStreams() // nothing more to read; release the sources early
	}
	return nil
}

// decode fills r.data with the data blocks of stripe s that the range needs.
func (r *reader) decode(s int) error {
	if err := r.ctx.Err(); err != nil {
		return fmt.Errorf("erasure: read stripe %d: %w", s, err)
	}
	bs := r.l.block(s)
	start := r.l.stripeStart(s)
	a := r.pos - start
	b := min(r.end, start+r.l.stripeData(s)) - start
	lo, hi := int(a)/bs, int(b-1)/bs // data blocks the range needs

	// Fast path: read the needed data blocks, no decoding.
	fetch := r.idx[:0]
	degraded := false
	for j := lo; j <= hi; j++ {
		sh := &r.shards[j]
		if sh.err != nil {
			degraded = true
		} else if sh.have != s {
			fetch = append(fetch, j)
		}
	}
	if !degraded {
		if err := r.fetch(s, fetch); err != nil {
			return err
		}
		for j := lo; j <= hi; j++ {
			if r.shards[j].err != nil {
				degraded = true
				break
			}
		}
	}
	if !degraded {
		for j := lo; j <= hi; j++ {
			r.data[j] = r.shards[j].buf[:bs]
		}
		return nil
	}
	return r.reconstruct(s, lo, hi)
}

// reconstruct reads any K healthy blocks of stripe s (keeping those already
// read) and rebuilds the missing data blocks lo..hi.
func (r *reader) reconstruct(s, lo, hi int) error {
	k := r.p.K
	for {
		have := 0
		fetch := r.idx[:0]
		for i := range r.shards {
			if sh := &r.shards[i]; sh.err == nil && sh.have == s {
				have++
			}
		}
		if have >= k {
			break
		}
		// Lowest indexes first: data shards need no decoding to use.
		for i := range r.shards {
			if sh := &r.shards[i]; sh.err == nil && sh.have != s && len(fetch) < k-have {
				fetch = append(fetch, i)
			}
		}
		if len(fetch) == 0 {
			return r.tooFew(s)
		}
		if err := r.fetch(s, fetch); err != nil {
			return err
		}
	}

	if r.enc == nil {
		enc, err := newCodec(r.p)
		if err != nil {
			return fmt.Errorf("erasure: read stripe %d: %w", s, err)
		}
		r.enc = enc
		r.sub = make([][]byte, r.p.Shards())
		r.required = make([]bool, k)
	}
	bs := r.l.block(s)
	for i := range r.shards {
		sh := &r.shards[i]
		if sh.err == nil && sh.have == s {
			r.sub[i] = sh.buf[:bs]
			continue
		}
		if i >= lo && i <= hi && sh.buf == nil {
			sh.buf = make([]byte, r.bufSize) // output space for a missing data block
		}
		r.sub[i] = sh.buf[:0]
	}
	for j := range r.required {
		r.required[j] = j >= lo && j <= hi && len(r.sub[j]) == 0
	}
	if err := r.enc.ReconstructSome(r.sub, r.required); err != nil {
		return fmt.Errorf("erasure: read stripe %d: %w", s, err)
	}
	for j := lo; j <= hi; j++ {
		buf := r.shards[j].buf[:bs]
		if r.required[j] && !sameStart(r.sub[j], buf) {
			copy(buf, r.sub[j])
		}
		r.data[j] = buf
	}
	return nil
}

// fetch reads the block of stripe s of each shard in idx, in parallel, and
// marks the shards that fail. It returns an error only when the reader's
// context has ended, since shard failures are handled by the caller.
func (r *reader) fetch(s int, idx []int) error {
	if len(idx) == 0 {
		return nil
	}
	errs := r.errs[:len(idx)]
	clear(errs)
	var wg sync.WaitGroup
	for n, i := range idx[1:] {
		wg.Go(func() { errs[n+1] = r.readBlock(i, s) })
	}
	errs[0] = r.readBlock(idx[0], s) // this goroutine does one share itself
	wg.Wait()
	// A read that failed because the reader's context ended says nothing
	// about the shard: stop without blaming it.
	if err := r.ctx.Err(); err != nil && slices.ContainsFunc(errs, func(e error) bool { return e != nil }) {
		return fmt.Errorf("erasure: read stripe %d: %w", s, err)
	}
	for n, i := range idx {
		if errs[n] != nil {
			r.fail(i, errs[n])
		}
	}
	return nil
}

// readBlock reads and verifies shard i's block of stripe s into its buffer,
// opening (or reopening) the shard's stream when it is not positioned there.
// It touches only r.shards[i], so fetch can run it for several shards at
// once.
func (r *reader) readBlock(i, s int) error {
	sh := &r.shards[i]
	bs := r.l.block(s)
	off := r.l.shardOff(s)
	if sh.rc != nil && (sh.pos != off || off+int64(bs) > sh.end) {
		sh.rc.Close()
		sh.rc = nil
	}
	if sh.rc == nil {
		end := r.streamEnd(i, s)
		rc, err := r.src(r.ctx, i, off, end-off)
		if err != nil {
			return fmt.Errorf("erasure: shard %d: open [%d, +%d): %w", i, off, end-off, err)
		}
		if rc == nil {
			return fmt.Errorf("erasure: shard %d: source returned no reader: %w", i, io.ErrUnexpectedEOF)
		}
		sh.rc, sh.pos, sh.end = rc, off, end
	}
	if sh.buf == nil {
		sh.buf = make([]byte, r.bufSize)
	}
	block := sh.buf[:bs]
	n, err := io.ReadFull(sh.rc, block)
	sh.pos += int64(n)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // the source promised these bytes
		}
		return fmt.Errorf("erasure: shard %d stripe %d: read: %w", i, s, err)
	}
	if got, want := xxhash.Sum64(block), r.infos[i].StripeSums[s]; got != want {
		return fmt.Errorf("erasure: shard %d stripe %d: checksum %016x, want %016x: %w", i, s, got, want, ErrCorrupt)
	}
	sh.have = s
	return nil
}

// streamEnd returns where shard i's stream should end when opened at stripe
// s: the end of the range's last stripe, except for data shards the fast
// path does not need in that stripe, which stop one stripe earlier (a
// reconstruction that needs them there reopens them).
func (r *reader) streamEnd(i, s int) int64 {
	if i < r.p.K && i > r.lastNeed && s < r.last {
		return r.l.shardOff(r.last)
	}
	return r.l.shardOff(r.last) + int64(r.l.block(r.last))
}

// fail marks shard i unusable, closes its stream and reports it.
func (r *reader) fail(i int, err error) {
	sh := &r.shards[i]
	sh.err = err
	sh.have = -1
	if sh.rc != nil {
		sh.rc.Close()
		sh.rc = nil
	}
	if errors.Is(err, ErrCorrupt) {
		if r.opts.OnCorrupt != nil {
			r.opts.OnCorrupt(i, err)
		}
	} else if r.opts.OnUnavailable != nil {
		r.opts.OnUnavailable(i, err)
	}
}

// tooFew builds the ErrTooFewShards error for stripe s, naming every failed
// shard and wrapping each one's error.
func (r *reader) tooFew(s int) error {
	var failed []int
	var errs []any
	for i := range r.shards {
		if err := r.shards[i].err; err != nil {
			failed = append(failed, i)
			errs = append(errs, err)
		}
	}
	format := "erasure: stripe %d: shards %s failed, need %d of %d" +
		strings.Repeat(" (%w)", len(errs)) + ": %w"
	args := append([]any{s, joinInts(failed), r.p.K, r.p.Shards()}, errs...)
	return fmt.Errorf(format, append(args, ErrTooFewShards)...)
}

func (r *reader) closeStreams() {
	for i := range r.shards {
		if sh := &r.shards[i]; sh.rc != nil {
			sh.rc.Close()
			sh.rc = nil
		}
	}
}

// Close closes every open shard stream. It is idempotent and returns nil;
// Read after Close returns ErrClosed.
func (r *reader) Close() error {
	r.closed = true
	r.closeStreams()
	return nil
}
