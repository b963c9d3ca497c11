package client

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Parallel ranged downloads (GetOptions.Parallel > 1): the file is cut
// into parallelPiece-sized pieces, Parallel workers fetch them with
// Range requests (If-Range on the md5, so a changed file fails instead of
// mixing versions) and write each at its offset into out+".part". Each
// finished piece is appended to out+".part.ranges", so an interrupted
// download resumes by fetching only the missing pieces (a plain .part left
// by a sequential get counts as its finished prefix). Pieces arrive out
// of order, so the md5 is computed by a hasher that reads the .part back
// (from the page cache, for a file just written) as far as the finished
// pieces are contiguous, while the workers fetch the rest: hashing overlaps
// the transfer instead of following it. On a mismatch the .part is kept and
// the ranges file removed, so the next attempt fetches everything again.

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
	hs := startPrefixHasher(ctx, pf, size, done, &mu)
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
				n, err := c.fetchRange(ctx, link, pf, start, end, md5hex, opts, buf, p)
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
				hs.wake()
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
		<-hs.finished
		return res, err // .part and .ranges stay for the next attempt
	}
	hs.wake()
	<-hs.finished
	if hs.err != nil {
		return res, hs.err
	}
	res.Size = size
	sum := hex.EncodeToString(hs.h.Sum(nil))
	if md5hex != "" && sum != md5hex {
		_ = os.Remove(rangesPath)
		return res, fmt.Errorf("%w: %s: got %s, want %s (kept %s)", ErrChecksum, out, sum, md5hex, part)
	}
	res.MD5 = sum
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
func (c *Client) fetchRange(ctx context.Context, link string, f *os.File, start, end int64, md5hex string, opts GetOptions, buf []byte, p *progress) (int64, error) {
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
		d, err := c.Download(ctx, link, DownloadOptions{Range: fmt.Sprintf("bytes=%d-%d", at, end-1), IfRange: ifRange})
		if err == nil && (!d.Partial || d.Start != at) {
			d.Close()
			err = fmt.Errorf("%w: asked for bytes %d-%d, got status %d Content-Range %q (the file changed?)",
				ErrProtocol, at, end-1, d.Status, d.Header.Get("Content-Range"))
			return got, err
		}
		if err == nil {
			var n int64
			n, err = io.CopyBuffer(errWriter{io.MultiWriter(io.NewOffsetWriter(f, at), progressWriter{p})},
				io.LimitReader(d.Body, end-at), buf)
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
