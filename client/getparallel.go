package client

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// Parallel ranged downloads (GetOptions.Parallel > 1): the file is cut
// into parallelPiece-sized pieces, Parallel workers fetch them with
// Range requests (If-Range on the md5, so a changed file fails instead of
// mixing versions) and write each at its offset into out+".part". Each
// finished piece is appended to out+".part.ranges", so an interrupted
// download resumes by fetching only the missing pieces (a plain .part left
// by a sequential get counts as its finished prefix). Pieces arrive out
// of order. Each Range request asks for the xxhash64 sums of the chunks it
// overlaps (httpapi's X-Osprey-Chunk-Sums, which the server knows for a
// file of several chunks stored by this release); when every answer carries
// them, each worker checks every chunk whose bytes are all in as soon as
// its piece is written (reading it back from the page cache), so
// verification runs in parallel like the transfer instead of one core's
// md5. Otherwise (a server or a file without sums, a resumed download) the
// md5 is computed by a hasher that reads the .part back as far as the
// finished pieces are contiguous, while the workers fetch the rest: hashing
// overlaps the transfer instead of following it. On a mismatch the .part
// is kept and the ranges file removed, so the next attempt fetches
// everything again.

// parallelPiece is the size of one Range request of a parallel download
// (the CLI flag says 32 MiB: parallel only from two pieces).
var parallelPiece int64 = 16 << 20 // a variable for the tests

// RangesSuffix is appended to the .part path for a parallel download's
// list of finished pieces.
const RangesSuffix = ".ranges"

func (c *Client) downloadParallel(ctx context.Context, link, out string, size int64, md5hex string, opts GetOptions, res *GetResult) (*GetResult, error) {
	part := out + PartSuffix
	rangesPath := part + RangesSuffix
	pieces := int((size + parallelPiece - 1) / parallelPiece)
	done := make([]bool, pieces)
	pf, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	defer pf.Close()
	st, err := pf.Stat()
	if err != nil {
		return nil, err
	}
	if b, err := os.ReadFile(rangesPath); err == nil && st.Size() == size {
		for _, line := range strings.Fields(string(b)) {
			if i, err := strconv.Atoi(line); err == nil && i >= 0 && i < pieces {
				done[i] = true
			}
		}
	} else if st.Size() <= size {
		// A sequential get's .part: its whole pieces are done.
		for i := range int(st.Size() / parallelPiece) {
			done[i] = true
		}
	}
	if err := pf.Truncate(size); err != nil {
		return nil, err
	}
	rf, err := os.OpenFile(rangesPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer rf.Close()
	var todo []int
	for i, d := range done {
		if d {
			res.Resumed = true
			fmt.Fprintf(rf, "%d\n", i)
		} else {
			todo = append(todo, i)
		}
	}
	p := newProgress(opts.Progress, size, res.Path)
	defer p.finish()
	var have int64
	for i, d := range done {
		if d {
			have += min(int64(i+1)*parallelPiece, size) - int64(i)*parallelPiece
		}
	}
	p.set(have)
	var (
		got  atomic.Int64
		mu   sync.Mutex // guards rf and done
		next atomic.Int64
		errc = make(chan error, opts.Parallel)
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The md5 hasher starts at once when the chunk sums cannot cover the
	// file (nothing to check against, pieces from an earlier run), or as
	// soon as an answer comes without them.
	ver := &chunkVerifier{f: pf, size: size, done: done, mu: &mu, sums: map[int64]chunkSum{}, claimed: map[int64]bool{}}
	var (
		hsOnce sync.Once
		hsp    atomic.Pointer[prefixHasher]
	)
	startMD5 := func() {
		hsOnce.Do(func() { hsp.Store(startPrefixHasher(ctx, pf, size, done, &mu)) })
	}
	if md5hex == "" || len(todo) < pieces {
		startMD5()
	}
	// sumsOf returns the chunk sums an answer carries, recorded, or
	// starts the md5 when it carries none.
	sumsOf := func(h http.Header) []chunkSum {
		if hsp.Load() != nil {
			return nil
		}
		if items, ok := parseChunkSums(h.Get(headerChunkSums), size); ok && ver.add(items) {
			return items
		}
		startMD5()
		return nil
	}
	var wg sync.WaitGroup
	for range min(opts.Parallel, len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, copyBufSize)
			for {
				j := int(next.Add(1)) - 1
				if j >= len(todo) || ctx.Err() != nil {
					return
				}
				i := todo[j]
				start := int64(i) * parallelPiece
				end := min(start+parallelPiece, size)
				var (
					sums     []chunkSum // of the chunks this piece overlaps
					streamed []chunkSum // of those, checked as they streamed
				)
				n, err := c.fetchRange(ctx, link, pf, start, end, md5hex, opts, buf, p, func(h http.Header, at int64) io.Writer {
					items := sumsOf(h)
					sums = append(sums, items...)
					if len(items) == 0 {
						return nil
					}
					return &streamHasher{at: at, items: items, ok: &streamed}
				})
				got.Add(n)
				if err != nil {
					errc <- fmt.Errorf("bytes %d-%d: %w", start, end-1, err)
					cancel()
					return
				}
				mu.Lock()
				_, err = fmt.Fprintf(rf, "%d\n", i)
				done[i] = true
				mu.Unlock()
				if hs := hsp.Load(); hs != nil {
					hs.wake()
				} else if err == nil {
					ver.checked(streamed)
					err = ver.check(sums, buf)
				}
				if err != nil {
					errc <- err
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	res.Downloaded = got.Load()
	if err := <-errc; err != nil {
		cancel()
		if hs := hsp.Load(); hs != nil {
			<-hs.finished
		}
		if errors.Is(err, ErrChecksum) {
			_ = os.Remove(rangesPath)
			return res, fmt.Errorf("%w (kept %s)", err, part)
		}
		return res, err // .part and .ranges stay for the next attempt
	}
	res.Size = size
	if hsp.Load() == nil && ver.complete() {
		res.MD5, res.Verified = md5hex, VerifiedChunkSums
	} else {
		startMD5()
		hs := hsp.Load()
		hs.wake()
		<-hs.finished
		if hs.err != nil {
			return res, hs.err
		}
		sum := hex.EncodeToString(hs.h.Sum(nil))
		if md5hex != "" && sum != md5hex {
			_ = os.Remove(rangesPath)
			return res, fmt.Errorf("%w: %s: got %s, want %s (kept %s)", ErrChecksum, out, sum, md5hex, part)
		}
		res.MD5 = sum
		if md5hex != "" {
			res.Verified = VerifiedMD5
		}
	}
	if err := errors.Join(rf.Close(), pf.Close()); err != nil {
		return res, err
	}
	if err := os.Rename(part, out); err != nil {
		return res, err
	}
	_ = os.Remove(rangesPath)
	return res, nil
}

// fetchRange fetches bytes [start, end) into f at their offsets, resuming
// inside the range after a broken stream. It returns the bytes received.
//
// onReply sees every answer's headers (its body starting at offset at)
// before the body is read, and may return a writer that sees the body too.
func (c *Client) fetchRange(ctx context.Context, link string, f *os.File, start, end int64, md5hex string, opts GetOptions, buf []byte, p *progress, onReply func(h http.Header, at int64) io.Writer) (int64, error) {
	maxResumes := opts.MaxResumes
	if maxResumes == 0 {
		maxResumes = 5
	}
	var ifRange string
	if md5hex != "" {
		ifRange = `"` + md5hex + `"`
	}
	at, got, failures := start, int64(0), 0
	for at < end {
		d, err := c.Download(ctx, link, DownloadOptions{Range: fmt.Sprintf("bytes=%d-%d", at, end-1), IfRange: ifRange, ChunkSums: true})
		if err == nil && (!d.Partial || d.Start != at) {
			d.Close()
			err = fmt.Errorf("%w: asked for bytes %d-%d, got status %d Content-Range %q (the file changed?)",
				ErrProtocol, at, end-1, d.Status, d.Header.Get("Content-Range"))
			return got, err
		}
		if err == nil {
			ws := []io.Writer{io.NewOffsetWriter(f, at), progressWriter{p}}
			if w := onReply(d.Header, at); w != nil {
				ws = append(ws, w)
			}
			var n int64
			n, err = io.CopyBuffer(errWriter{io.MultiWriter(ws...)}, io.LimitReader(d.Body, end-at), buf)
			d.Close()
			at += n
			got += n
			var we writeErr
			if errors.As(err, &we) {
				return got, we.err
			}
			if err == nil && at < end {
				err = fmt.Errorf("%w: range ended at %d of %d", io.ErrUnexpectedEOF, at, end)
			}
		}
		if err == nil {
			break
		}
		failures++
		if maxResumes < 0 || failures > maxResumes || ctx.Err() != nil {
			return got, err
		}
		c.logger.Debug("resuming range", "offset", at, "attempt", failures, "err", err)
		if c.sleep(ctx, c.backoff(failures-1)) != nil {
			return got, err
		}
	}
	return got, nil
}

// testHookPrefixHashed, if set, is told how far the hasher has got.
var testHookPrefixHashed func(hashed int64)

// prefixHasher hashes a parallel download's .part from the start as far as
// its finished pieces are contiguous, woken whenever a piece finishes.
type prefixHasher struct {
	h        hash.Hash
	kick     chan struct{}
	finished chan struct{} // closed when the whole file is hashed or ctx ended
	err      error         // read after finished: a read error or ctx's
}

// startPrefixHasher starts hashing f (size bytes) in parallelPiece pieces;
// done[i] (guarded by mu) says piece i is in f.
func startPrefixHasher(ctx context.Context, f *os.File, size int64, done []bool, mu *sync.Mutex) *prefixHasher {
	hs := &prefixHasher{h: md5.New(), kick: make(chan struct{}, 1), finished: make(chan struct{})}
	go func() {
		defer close(hs.finished)
		buf := make([]byte, 1<<20)
		for i := 0; i < len(done); {
			mu.Lock()
			ready := done[i]
			mu.Unlock()
			if !ready {
				select {
				case <-hs.kick:
					continue
				case <-ctx.Done():
					hs.err = ctx.Err()
					return
				}
			}
			start := int64(i) * parallelPiece
			r := io.NewSectionReader(f, start, min(start+parallelPiece, size)-start)
			if _, err := io.CopyBuffer(hs.h, r, buf); err != nil {
				hs.err = err
				return
			}
			i++
			if testHookPrefixHashed != nil {
				testHookPrefixHashed(min(int64(i)*parallelPiece, size))
			}
		}
	}()
	return hs
}

// wake tells the hasher a piece finished.
func (hs *prefixHasher) wake() {
	select {
	case hs.kick <- struct{}{}:
	default:
	}
}

// headerChunkSums asks for and carries the sums of the chunks an answer
// overlaps (the server's httpapi.HeaderChunkSums).
const headerChunkSums = "X-Osprey-Chunk-Sums"

// chunkSum is one chunk of the file as the server described it.
type chunkSum struct {
	off, size int64
	sum       uint64
}

// parseChunkSums parses a HeaderChunkSums answer for a size-byte file; ok
// is false when there is none or it does not parse.
func parseChunkSums(v string, size int64) (items []chunkSum, ok bool) {
	if v == "" {
		return nil, false
	}
	for _, it := range strings.Split(v, ",") {
		f := strings.Split(it, ":")
		if len(f) != 3 {
			return nil, false
		}
		off, err1 := strconv.ParseInt(f[0], 10, 64)
		n, err2 := strconv.ParseInt(f[1], 10, 64)
		sum, err3 := strconv.ParseUint(f[2], 16, 64)
		if err1 != nil || err2 != nil || err3 != nil || off < 0 || n <= 0 || off+n > size {
			return nil, false
		}
		items = append(items, chunkSum{off: off, size: n, sum: sum})
	}
	return items, true
}

// chunkVerifier checks a parallel download chunk by chunk against the
// sums the server sent, each chunk once all the pieces it spans are in.
type chunkVerifier struct {
	f    *os.File
	size int64
	mu   *sync.Mutex // the download's: guards done and the fields below
	done []bool      // by piece
	sums map[int64]chunkSum
	// state by chunk offset: claimed by a worker hashing it, or checked.
	claimed  map[int64]bool
	verified int64 // bytes of checked chunks
	bad      bool  // answers disagreed about the chunks
}

// add records chunk sums from one answer; false if they contradict ones
// seen before (the md5 decides then).
func (v *chunkVerifier) add(items []chunkSum) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, it := range items {
		if old, ok := v.sums[it.off]; ok && old != it {
			v.bad = true
		}
		v.sums[it.off] = it
	}
	return !v.bad
}

// check hashes each chunk of items (those of a piece just written) that
// is not checked yet and whose pieces are all in, and returns an
// ErrChecksum error for one that does not match its sum. A chunk that
// spans two pieces is checked with the second to finish.
func (v *chunkVerifier) check(items []chunkSum, buf []byte) error {
	for _, next := range items {
		v.mu.Lock()
		ready := !v.claimed[next.off] && v.sums[next.off] == next && v.coveredLocked(next)
		if ready {
			v.claimed[next.off] = true
		}
		v.mu.Unlock()
		if !ready {
			continue
		}
		h := xxhash.New()
		if _, err := io.CopyBuffer(h, io.NewSectionReader(v.f, next.off, next.size), buf); err != nil {
			return err
		}
		if got := h.Sum64(); got != next.sum {
			return fmt.Errorf("%w: bytes %d-%d: xxhash64 %016x, want %016x", ErrChecksum, next.off, next.off+next.size-1, got, next.sum)
		}
		v.mu.Lock()
		v.verified += next.size
		v.mu.Unlock()
	}
	return nil
}

func (v *chunkVerifier) coveredLocked(c chunkSum) bool {
	for i := c.off / parallelPiece; i <= (c.off+c.size-1)/parallelPiece; i++ {
		if !v.done[i] {
			return false
		}
	}
	return true
}

// checked records chunks a streamHasher checked as they arrived.
func (v *chunkVerifier) checked(items []chunkSum) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, c := range items {
		if v.claimed[c.off] || v.sums[c.off] != c {
			continue
		}
		v.claimed[c.off] = true
		v.verified += c.size
	}
}

// streamHasher checks, as an answer's body streams past (starting at
// offset at), every chunk of items the body carries whole, and appends the
// ones that match to *ok; a chunk that does not match fails the write.
// Chunks the body starts inside of, or ends inside of, are left to the
// verifier's read-back (they span two pieces, or the answer was cut).
type streamHasher struct {
	at    int64
	items []chunkSum
	ok    *[]chunkSum
	cur   int // index in items of the chunk being hashed, -1 none
	h     *xxhash.Digest
}

func (s *streamHasher) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if s.h == nil {
			s.cur = -1
			for i, c := range s.items {
				if c.off == s.at {
					s.cur, s.h = i, xxhash.New()
					break
				}
			}
		}
		// Bytes up to the end of the chunk being hashed, or up to the
		// next chunk start when none is.
		take := int64(len(p))
		if s.h != nil {
			c := s.items[s.cur]
			take = min(take, c.off+c.size-s.at)
			_, _ = s.h.Write(p[:take])
		} else {
			for _, c := range s.items {
				if c.off > s.at {
					take = min(take, c.off-s.at)
				}
			}
		}
		s.at += take
		p = p[take:]
		if s.h != nil {
			c := s.items[s.cur]
			if s.at == c.off+c.size {
				if got := s.h.Sum64(); got != c.sum {
					return n - len(p), fmt.Errorf("%w: bytes %d-%d: xxhash64 %016x, want %016x", ErrChecksum, c.off, c.off+c.size-1, got, c.sum)
				}
				*s.ok = append(*s.ok, c)
				s.h = nil
			}
		}
	}
	return n, nil
}

// complete reports whether checked chunks tile the whole file.
func (v *chunkVerifier) complete() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.bad || v.verified != v.size {
		return false
	}
	at := int64(0)
	for at < v.size {
		c, ok := v.sums[at]
		if !ok || !v.claimed[at] {
			return false
		}
		at += c.size
	}
	return true
}
