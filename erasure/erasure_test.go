package erasure

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestRoundTrip encodes every policy allowed on up to six nodes at every
// interesting size, then, for every set of at most M missing shards, reads
// the whole chunk back (through Read and through WriteTo) and rebuilds the
// missing shards with Reconstruct.
func TestRoundTrip(t *testing.T) {
	for _, p := range testPolicies() {
		for _, size := range testSizes(p) {
			t.Run(fmt.Sprintf("%v/%d", p, size), func(t *testing.T) {
				data := testData(size, uint64(size))
				shards, infos := mustEncode(t, p, data)
				checkEncoded(t, p, data, shards, infos)
				subsets(p.Shards(), p.M, func(missing uint) {
					var rep report
					src := newMemSource(shards, missing)
					read := readRange
					if missing%2 == 1 {
						read = copyRange
					}
					got, err := read(t, p, size, infos, src.open, 0, size, rep.options(t))
					if err != nil {
						t.Fatalf("missing %s: read: %v", maskString(missing), err)
					}
					if !bytes.Equal(got, data) {
						t.Fatalf("missing %s: read %d bytes, not the chunk", maskString(missing), len(got))
					}
					if len(rep.corrupt) > 0 {
						t.Fatalf("missing %s: OnCorrupt %v", maskString(missing), rep.corrupt)
					}
					if src.openCount != 0 {
						t.Fatalf("missing %s: %d streams left open", maskString(missing), src.openCount)
					}

					damaged := cloneShards(shards)
					for i := range damaged {
						if missing&(1<<i) != 0 {
							damaged[i] = nil
						}
					}
					if err := Reconstruct(p, size, damaged); err != nil {
						t.Fatalf("missing %s: Reconstruct: %v", maskString(missing), err)
					}
					for i := range damaged {
						if !bytes.Equal(damaged[i], shards[i]) {
							t.Fatalf("missing %s: Reconstruct rebuilt shard %d wrong", maskString(missing), i)
						}
						if err := VerifyShard(infos[i], damaged[i]); err != nil {
							t.Fatalf("missing %s: %v", maskString(missing), err)
						}
					}
				})
			})
		}
	}
}

// checkEncoded checks Encode's output against the layout in doc.go: equal
// shard sizes, data shards holding the chunk stripe by stripe with zero
// padding, and infos matching the shards.
func checkEncoded(t *testing.T, p Policy, data []byte, shards [][]byte, infos []ShardInfo) {
	t.Helper()
	size := int64(len(data))
	if len(shards) != p.Shards() || len(infos) != p.Shards() {
		t.Fatalf("Encode: %d shards, %d infos, want %d", len(shards), len(infos), p.Shards())
	}
	want := ShardSize(p, size)
	stripes := Stripes(p, size)
	for i := range shards {
		if int64(len(shards[i])) != want || infos[i].Size != want || infos[i].Index != i || len(infos[i].StripeSums) != stripes {
			t.Fatalf("shard %d: %d bytes, info %+v; want %d bytes, %d stripes", i, len(shards[i]), infos[i], want, stripes)
		}
		if err := VerifyShard(infos[i], shards[i]); err != nil {
			t.Fatalf("VerifyShard: %v", err)
		}
	}
	// Undo the striping by hand and compare.
	var joined []byte
	for s := range stripes {
		bs := int64(BlockSize)
		if s == stripes-1 {
			bs = want - int64(s)*BlockSize
		}
		for j := range p.K {
			joined = append(joined, shards[j][int64(s)*BlockSize:int64(s)*BlockSize+bs]...)
		}
	}
	if !bytes.Equal(joined[:size], data) {
		t.Fatalf("data shards do not hold the chunk")
	}
	if slices.ContainsFunc(joined[size:], func(b byte) bool { return b != 0 }) {
		t.Fatalf("padding is not zero")
	}
	if int64(len(joined))-size >= int64(p.K) {
		t.Fatalf("%d bytes of padding, want fewer than K=%d", int64(len(joined))-size, p.K)
	}
}

// TestTooFewShards checks that losing M+1 shards fails with ErrTooFewShards
// naming them, both in the reader and in Reconstruct, after the reader has
// returned every byte it could.
func TestTooFewShards(t *testing.T) {
	for _, p := range testPolicies() {
		t.Run(p.String(), func(t *testing.T) {
			size := 3*int64(p.K)*BlockSize + 99
			data := testData(size, 1)
			shards, infos := mustEncode(t, p, data)
			// Lose data shard 0 and then M more, the last ones.
			missing := uint(1)
			for i := p.Shards() - p.M; i < p.Shards(); i++ {
				missing |= 1 << i
			}
			var rep report
			src := newMemSource(shards, missing)
			got, err := readRange(t, p, size, infos, src.open, 0, size, rep.options(t))
			if !errors.Is(err, ErrTooFewShards) || !errors.Is(err, errMissing) {
				t.Fatalf("read: %v, want ErrTooFewShards wrapping the shard errors", err)
			}
			if len(got) != 0 {
				t.Fatalf("read %d bytes before failing, want 0 (stripe 0 needs shard 0)", len(got))
			}
			for i := range p.Shards() {
				if missing&(1<<i) != 0 && !strings.Contains(err.Error(), fmt.Sprintf("shard %d:", i)) {
					t.Errorf("error %q does not name shard %d", err, i)
				}
			}
			if want := bitsToList(missing); !slices.Equal(sorted(rep.unavailable), want) {
				t.Errorf("OnUnavailable for %v, want %v", rep.unavailable, want)
			}
			if src.openCount != 0 {
				t.Errorf("%d streams left open", src.openCount)
			}

			damaged := cloneShards(shards)
			for i := range damaged {
				if missing&(1<<i) != 0 {
					damaged[i] = nil
				}
			}
			if err := Reconstruct(p, size, damaged); !errors.Is(err, ErrTooFewShards) {
				t.Fatalf("Reconstruct: %v, want ErrTooFewShards", err)
			}
		})
	}
}

// TestTooFewShardsMidRange checks that a reader returns every byte before
// the first stripe it cannot rebuild.
func TestTooFewShardsMidRange(t *testing.T) {
	p := Policy{K: 2, M: 1}
	size := 4 * int64(p.K) * BlockSize
	data := testData(size, 2)
	shards, infos := mustEncode(t, p, data)
	src := newMemSource(shards, 1<<2) // parity missing: harmless until...
	src.breakAt = map[int]int64{1: 2 * BlockSize}
	var rep report
	got, err := readRange(t, p, size, infos, src.open, 0, size, rep.options(t))
	if !errors.Is(err, ErrTooFewShards) || !errors.Is(err, errBroken) {
		t.Fatalf("read: %v, want ErrTooFewShards wrapping the broken stream", err)
	}
	if want := 2 * int64(p.K) * BlockSize; !bytes.Equal(got, data[:want]) {
		t.Fatalf("read %d bytes before failing, want the first %d", len(got), want)
	}
	if !slices.Equal(rep.unavailable, []int{1, 2}) {
		t.Fatalf("OnUnavailable for %v, want [1 2]", rep.unavailable)
	}
}

// TestCorruptShard flips one byte of one shard at a time and checks that a
// reader that uses the shard reports it through OnCorrupt, treats it as
// missing and still returns the right bytes when at most M shards are bad.
func TestCorruptShard(t *testing.T) {
	for _, p := range testPolicies() {
		size := 3*int64(p.K)*BlockSize + 4321
		data := testData(size, 3)
		shards, infos := mustEncode(t, p, data)
		stripes := Stripes(p, size)
		for i := range p.Shards() {
			// Flip a byte in the first stripe, a middle one, the last one, and
			// the last byte of the shard (padding, for data shards).
			for _, at := range []int64{5, BlockSize + 17, int64(stripes-1)*BlockSize + 1, infos[i].Size - 1} {
				t.Run(fmt.Sprintf("%v/shard%d/at%d", p, i, at), func(t *testing.T) {
					bad := cloneShards(shards)
					bad[i][at] ^= 0x40
					if err := VerifyShard(infos[i], bad[i]); !errors.Is(err, ErrCorrupt) {
						t.Fatalf("VerifyShard: %v, want ErrCorrupt", err)
					}
					// A parity shard is only read when data is missing: lose
					// data shard 0 and the parity shards before i so that
					// shard i is the one the reader picks.
					var missing uint
					if i >= p.K {
						missing = 1
						for j := p.K; j < i; j++ {
							missing |= 1 << j
						}
					}
					var rep report
					src := newMemSource(bad, missing)
					got, err := readRange(t, p, size, infos, src.open, 0, size, rep.options(t))
					if !slices.Equal(rep.corrupt, []int{i}) {
						t.Fatalf("OnCorrupt for %v, want [%d]", rep.corrupt, i)
					}
					if bitsToList(missing) != nil && !slices.Equal(sorted(rep.unavailable), bitsToList(missing)) {
						t.Fatalf("OnUnavailable for %v, want %v", rep.unavailable, bitsToList(missing))
					}
					if failures := len(bitsToList(missing)) + 1; failures > p.M {
						if !errors.Is(err, ErrTooFewShards) || !errors.Is(err, ErrCorrupt) {
							t.Fatalf("read with %d bad shards: %v, want ErrTooFewShards", failures, err)
						}
						if !bytes.Equal(got, data[:len(got)]) {
							t.Fatalf("bytes before the failure are wrong")
						}
						return
					}
					if err != nil {
						t.Fatalf("read: %v", err)
					}
					if !bytes.Equal(got, data) {
						t.Fatalf("read %d bytes, not the chunk", len(got))
					}
				})
			}
		}
	}
}

// TestSourceCorruptError checks that a source error wrapping ErrCorrupt is
// reported as corruption.
func TestSourceCorruptError(t *testing.T) {
	p := Policy{K: 2, M: 1}
	data := testData(1000, 4)
	shards, infos := mustEncode(t, p, data)
	src := func(ctx context.Context, i int, off, n int64) (io.ReadCloser, error) {
		if i == 1 {
			return nil, fmt.Errorf("chunkstore says so: %w", ErrCorrupt)
		}
		return io.NopCloser(bytes.NewReader(shards[i][off : off+n])), nil
	}
	var rep report
	got, err := readRange(t, p, 1000, infos, src, 0, 1000, rep.options(t))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read: %d bytes, %v", len(got), err)
	}
	if !slices.Equal(rep.corrupt, []int{1}) || rep.unavailable != nil {
		t.Fatalf("reported corrupt %v, unavailable %v; want corrupt [1]", rep.corrupt, rep.unavailable)
	}
}

// TestBrokenStream checks that a shard stream failing mid-range switches the
// reader to reconstruction at that stripe: the parity shard is opened there
// and not before, and the shard is reported unavailable.
func TestBrokenStream(t *testing.T) {
	for _, tt := range []struct {
		name    string
		breakAt int64 // shard offset where data shard 1's stream fails
		short   bool  // end the stream early (EOF) instead of with an error
	}{
		{name: "error at stripe boundary", breakAt: 3 * BlockSize},
		{name: "error inside a block", breakAt: 3*BlockSize + 100},
		{name: "short stream", breakAt: 3*BlockSize + 100, short: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := Policy{K: 2, M: 2}
			size := 6*int64(p.K)*BlockSize + 5
			data := testData(size, 5)
			shards, infos := mustEncode(t, p, data)
			src := newMemSource(shards, 0)
			open := src.open
			if tt.short {
				open = func(ctx context.Context, i int, off, n int64) (io.ReadCloser, error) {
					rc, err := src.open(ctx, i, off, n)
					if i == 1 && err == nil {
						return readCloser{io.LimitReader(rc, tt.breakAt-off), rc}, nil
					}
					return rc, err
				}
			} else {
				src.breakAt = map[int]int64{1: tt.breakAt}
			}
			var rep report
			got, err := readRange(t, p, size, infos, open, 0, size, rep.options(t))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read: %d bytes, %v; want the chunk", len(got), err)
			}
			if !slices.Equal(rep.unavailable, []int{1}) || rep.corrupt != nil {
				t.Fatalf("unavailable %v, corrupt %v; want unavailable [1]", rep.unavailable, rep.corrupt)
			}
			stripe := tt.breakAt / BlockSize
			var parity []call
			for _, c := range src.calls {
				if c.index >= p.K {
					parity = append(parity, c)
				}
			}
			if len(parity) != 1 || parity[0].index != p.K || parity[0].off != stripe*BlockSize {
				t.Fatalf("parity opened as %+v, want once, shard %d at offset %d", parity, p.K, stripe*BlockSize)
			}
			if src.openCount != 0 {
				t.Fatalf("%d streams left open", src.openCount)
			}
		})
	}
}

// TestReopen checks the stream bookkeeping: a data shard the range does not
// need in its last stripe is opened only up to the stripe before, and is
// opened again there if reconstruction turns out to need it.
func TestReopen(t *testing.T) {
	p := Policy{K: 2, M: 1}
	stripe := int64(p.K) * BlockSize
	size := 4 * stripe
	data := testData(size, 13)
	shards, infos := mustEncode(t, p, data)
	off, n := int64(10), 3*stripe+100 // the last stripe needs data block 0 only

	src := newMemSource(shards, 0)
	if got, err := readRange(t, p, size, infos, src.open, off, n, ReaderOptions{}); err != nil || !bytes.Equal(got, data[off:off+n]) {
		t.Fatalf("read: %d bytes, %v", len(got), err)
	}
	want := []call{{0, 0, 4 * BlockSize}, {1, 0, 3 * BlockSize}}
	if !slices.Equal(sortCalls(src.calls), want) {
		t.Fatalf("calls %+v, want %+v", src.calls, want)
	}

	// Shard 0 breaks in the last stripe: shard 1 must come back for it.
	src = newMemSource(shards, 0)
	src.breakAt = map[int]int64{0: 3 * BlockSize}
	if got, err := readRange(t, p, size, infos, src.open, off, n, ReaderOptions{}); err != nil || !bytes.Equal(got, data[off:off+n]) {
		t.Fatalf("read: %d bytes, %v", len(got), err)
	}
	want = []call{{0, 0, 4 * BlockSize}, {1, 0, 3 * BlockSize}, {1, 3 * BlockSize, BlockSize}, {2, 3 * BlockSize, BlockSize}}
	if !slices.Equal(sortCalls(src.calls), want) {
		t.Fatalf("calls %+v, want %+v", src.calls, want)
	}
}

func sortCalls(c []call) []call {
	c = slices.Clone(c)
	slices.SortFunc(c, func(a, b call) int {
		if a.index != b.index {
			return a.index - b.index
		}
		return int(a.off - b.off)
	})
	return c
}

type readCloser struct {
	io.Reader
	io.Closer
}

// TestRanges reads ranges around stripe and block boundaries, healthy and
// with a data shard missing, through Read and WriteTo.
func TestRanges(t *testing.T) {
	for _, p := range []Policy{{1, 1}, {2, 1}, {3, 2}, {4, 2}} {
		stripe := int64(p.K) * BlockSize
		size := 4*stripe + 777
		data := testData(size, 6)
		shards, infos := mustEncode(t, p, data)
		lastBlock := (size - 4*stripe + int64(p.K) - 1) / int64(p.K)
		ranges := [][2]int64{
			{0, size}, {0, 0}, {size, 0}, {size - 1, 1}, {0, 1},
			{stripe - 1, 2}, {stripe, stripe}, {stripe - 1, stripe + 2}, {stripe, 1}, {stripe + 1, stripe - 2},
			{BlockSize - 1, 2}, {BlockSize, BlockSize}, {stripe + BlockSize - 1, 2},
			{2 * stripe, size - 2*stripe}, {4 * stripe, size - 4*stripe}, {4*stripe + lastBlock - 1, 2},
			{4*stripe - 3, 10}, {123, 3*stripe + 456},
		}
		for _, missing := range []uint{0, 1, 1 << (p.K - 1), 1 << p.K} {
			for _, rg := range ranges {
				off, n := rg[0], rg[1]
				if off+n > size {
					continue
				}
				t.Run(fmt.Sprintf("%v/missing%s/%d+%d", p, maskString(missing), off, n), func(t *testing.T) {
					for _, read := range []func(testing.TB, Policy, int64, []ShardInfo, ShardSource, int64, int64, ReaderOptions) ([]byte, error){readRange, copyRange} {
						src := newMemSource(shards, missing)
						got, err := read(t, p, size, infos, src.open, off, n, ReaderOptions{})
						if err != nil {
							t.Fatalf("read: %v", err)
						}
						if !bytes.Equal(got, data[off:off+n]) {
							t.Fatalf("read %d bytes, wrong", len(got))
						}
						checkRequested(t, p, size, src, off, n)
					}
				})
			}
		}
	}
}

// checkRequested checks that every source call stays within the shard
// bytes of the stripes the range covers.
func checkRequested(t *testing.T, p Policy, size int64, src *memSource, off, n int64) {
	t.Helper()
	if n == 0 {
		if len(src.calls) != 0 {
			t.Fatalf("empty range made source calls %+v", src.calls)
		}
		return
	}
	stripe := int64(p.K) * BlockSize
	lo := off / stripe * BlockSize
	hi := min((off+n-1)/stripe*BlockSize+BlockSize, ShardSize(p, size))
	for _, c := range src.calls {
		if c.off < lo || c.off+c.n > hi {
			t.Fatalf("source call %+v outside the range's stripes [%d, %d)", c, lo, hi)
		}
	}
}

// TestStreamingBounded reads ranges of a 64 MiB chunk through a counting
// source and checks that only the needed stripes are requested and read,
// that no parity is touched on the fast path, and that the reader's
// allocations do not grow with the amount read.
func TestStreamingBounded(t *testing.T) {
	const size = 64 << 20
	for _, p := range []Policy{{2, 1}, {4, 2}} {
		t.Run(p.String(), func(t *testing.T) {
			data := testData(size, 7)
			shards, infos := mustEncode(t, p, data)
			stripe := int64(p.K) * BlockSize

			// A 3 MiB range starting mid-stripe, in the middle of the chunk.
			off, n := int64(20<<20)+100, int64(3<<20)
			src := newMemSource(shards, 0)
			got, err := readRange(t, p, size, infos, src.open, off, n, ReaderOptions{})
			if err != nil || !bytes.Equal(got, data[off:off+n]) {
				t.Fatalf("read: %d bytes, %v", len(got), err)
			}
			// Expected: for each stripe the range touches, the block of each
			// data shard holding some of its bytes.
			var want int64
			for s := off / stripe; s <= (off+n-1)/stripe; s++ {
				a := max(off, s*stripe) - s*stripe
				b := min(off+n, (s+1)*stripe) - s*stripe
				want += ((b-1)/BlockSize - a/BlockSize + 1) * BlockSize
			}
			if got := src.requested(); got != want {
				t.Errorf("requested %d shard bytes, want exactly %d (the range is %d)", got, want, n)
			}
			if src.delivered != want {
				t.Errorf("read %d shard bytes, want %d", src.delivered, want)
			}
			for _, c := range src.calls {
				if c.index >= p.K {
					t.Errorf("fast path opened parity shard: %+v", c)
				}
			}
			if len(src.calls) != p.K {
				t.Errorf("%d source calls, want one per data shard: %+v", len(src.calls), src.calls)
			}

			// Whole chunk, healthy and degraded. Live memory halfway through
			// stays within (K+M)×BlockSize plus slack, and the total
			// allocated grows by at most a little garbage per stripe (no
			// per-stripe buffers).
			for _, missing := range []uint{0, 1} {
				src := newMemSource(shards, missing)
				var live int64
				total := allocated(t, func() {
					r, err := NewReader(context.Background(), p, size, infos, src.open, 0, size, ReaderOptions{})
					if err != nil {
						t.Fatal(err)
					}
					defer r.Close()
					var before runtime.MemStats
					runtime.GC()
					runtime.ReadMemStats(&before)
					if n, err := io.CopyN(io.Discard, r, size/2); n != size/2 || err != nil {
						t.Fatalf("copy: %d, %v", n, err)
					}
					live = heapDelta(before)
					if n, err := io.Copy(io.Discard, r); n != size/2 || err != nil {
						t.Fatalf("copy: %d, %v", n, err)
					}
				})
				stripes := int64(Stripes(p, size))
				if limit := int64(p.Shards()*BlockSize + 64<<10); live > limit {
					t.Errorf("missing %s: %d bytes live halfway through, want at most %d", maskString(missing), live, limit)
				}
				if limit := int64(2*p.Shards()*BlockSize) + stripes*2048; total > limit {
					t.Errorf("missing %s: reading %d bytes allocated %d bytes, want at most %d", maskString(missing), size, total, limit)
				}
				t.Logf("missing %s: %d MiB read, %d KiB live halfway, %d KiB allocated in all (%d stripes)",
					maskString(missing), size>>20, live>>10, total>>10, stripes)
			}
		})
	}
}

// TestContextCanceled checks that a canceled context stops the reader
// without reporting any shard.
func TestContextCanceled(t *testing.T) {
	p := Policy{K: 2, M: 1}
	size := 4 * int64(p.K) * BlockSize
	data := testData(size, 8)
	shards, infos := mustEncode(t, p, data)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var rep report
	src := newMemSource(shards, 0)
	r, err := NewReader(ctx, p, size, infos, src.open, 0, size, rep.options(t))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, 10)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err = io.ReadAll(r)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("read after cancel: %v, want context.Canceled", err)
	}
	if rep.corrupt != nil || rep.unavailable != nil {
		t.Fatalf("cancel reported shards: corrupt %v, unavailable %v", rep.corrupt, rep.unavailable)
	}
}

// TestReaderClose checks Close: idempotent, closes streams, and Read after
// it fails.
func TestReaderClose(t *testing.T) {
	p := Policy{K: 2, M: 1}
	size := 4 * int64(p.K) * BlockSize
	shards, infos := mustEncode(t, p, testData(size, 9))
	src := newMemSource(shards, 0)
	r, err := NewReader(context.Background(), p, size, infos, src.open, 0, size, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if src.openCount == 0 {
		t.Fatal("no stream open after a read")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if src.openCount != 0 {
		t.Fatalf("%d streams open after Close", src.openCount)
	}
	if _, err := r.Read(make([]byte, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v, want ErrClosed", err)
	}
}

func TestNewReaderErrors(t *testing.T) {
	p := Policy{K: 2, M: 1}
	const size = 3 * BlockSize
	shards, infos := mustEncode(t, p, testData(size, 10))
	src := newMemSource(shards, 0)
	withInfo := func(f func([]ShardInfo)) []ShardInfo {
		c := slices.Clone(infos)
		f(c)
		return c
	}
	tests := []struct {
		name    string
		p       Policy
		size    int64
		infos   []ShardInfo
		src     ShardSource
		off, n  int64
		wantErr error
	}{
		{"bad policy", Policy{2, 0}, size, infos, src.open, 0, 1, ErrInvalidPolicy},
		{"negative off", p, size, infos, src.open, -1, 1, ErrInvalidRange},
		{"negative n", p, size, infos, src.open, 0, -1, ErrInvalidRange},
		{"past end", p, size, infos, src.open, size - 1, 2, ErrInvalidRange},
		{"off past end", p, size, infos, src.open, size + 1, 0, ErrInvalidRange},
		{"overflow", p, size, infos, src.open, 1, 1<<63 - 1, ErrInvalidRange},
		{"nil source", p, size, infos, nil, 0, 1, ErrInvalidShards},
		{"negative size", p, -1, infos, src.open, 0, 0, ErrInvalidShards},
		{"wrong size", p, size + 2*BlockSize, infos, src.open, 0, 1, ErrInvalidShards},
		{"too few infos", p, size, infos[:2], src.open, 0, 1, ErrInvalidShards},
		{"other policy", Policy{1, 2}, size, infos, src.open, 0, 1, ErrInvalidShards},
		{"bad index", p, size, withInfo(func(in []ShardInfo) { in[1].Index = 2 }), src.open, 0, 1, ErrInvalidShards},
		{"no stripe sums", p, size, withInfo(func(in []ShardInfo) { in[2].StripeSums = nil }), src.open, 0, 1, ErrInvalidShards},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewReader(context.Background(), tt.p, tt.size, tt.infos, tt.src, tt.off, tt.n, ReaderOptions{})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("NewReader: %v, want %v", err, tt.wantErr)
			}
			if r != nil {
				t.Fatal("NewReader returned a reader with an error")
			}
		})
	}
	if len(src.calls) != 0 {
		t.Fatalf("NewReader called the source: %+v", src.calls)
	}
}

func TestVerifyShard(t *testing.T) {
	p := Policy{K: 2, M: 1}
	size := int64(5*BlockSize + 3)
	shards, infos := mustEncode(t, p, testData(size, 11))
	flip := func(i int, at int64) []byte {
		b := slices.Clone(shards[i])
		b[at] ^= 1
		return b
	}
	noStripes := infos[0]
	noStripes.StripeSums = nil
	tests := []struct {
		name     string
		info     ShardInfo
		data     []byte
		wantErr  error
		wantText string
	}{
		{"ok", infos[0], shards[0], nil, ""},
		{"ok parity", infos[2], shards[2], nil, ""},
		{"ok without stripe sums", noStripes, shards[0], nil, ""},
		{"flipped", infos[1], flip(1, BlockSize+1), ErrCorrupt, "stripe 1"},
		{"flipped last byte", infos[2], flip(2, infos[2].Size-1), ErrCorrupt, "stripe 2"},
		{"flipped, whole sum only", noStripes, flip(0, 3), ErrCorrupt, "shard 0: checksum"},
		{"short", infos[0], shards[0][:10], ErrCorrupt, "10 bytes"},
		{"long", infos[0], append(slices.Clone(shards[0]), 0), ErrCorrupt, "bytes"},
		{"other shard", infos[0], shards[1], ErrCorrupt, "shard 0"},
		{"bad sums", ShardInfo{Index: 0, Size: infos[0].Size, Sum: infos[0].Sum, StripeSums: infos[0].StripeSums[:1]}, shards[0], ErrInvalidShards, "stripe sums"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyShard(tt.info, tt.data)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("VerifyShard: %v, want %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tt.wantText) {
				t.Fatalf("VerifyShard: %q, want it to mention %q", err, tt.wantText)
			}
		})
	}
}

func TestReconstructErrors(t *testing.T) {
	p := Policy{K: 2, M: 1}
	size := int64(BlockSize + 1)
	shards, _ := mustEncode(t, p, testData(size, 12))
	tests := []struct {
		name    string
		p       Policy
		size    int64
		shards  [][]byte
		wantErr error
	}{
		{"nothing missing", p, size, cloneShards(shards), nil},
		{"bad policy", Policy{0, 1}, size, cloneShards(shards), ErrInvalidPolicy},
		{"negative size", p, -1, cloneShards(shards), ErrInvalidShards},
		{"too few entries", p, size, cloneShards(shards)[:2], ErrInvalidShards},
		{"wrong length", p, size, [][]byte{shards[0], shards[1][:5], nil}, ErrInvalidShards},
		{"wrong chunk size", p, size + 10, [][]byte{shards[0], shards[1], nil}, ErrInvalidShards},
		{"two missing", p, size, [][]byte{nil, shards[1], {}}, ErrTooFewShards},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Reconstruct(tt.p, tt.size, tt.shards); !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("Reconstruct: %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestEncodeInvalid checks Encode's error contract.
func TestEncodeInvalid(t *testing.T) {
	if _, _, err := Encode(Policy{K: 1}, []byte("x")); !errors.Is(err, ErrInvalidPolicy) {
		t.Fatalf("Encode: %v, want ErrInvalidPolicy", err)
	}
}

func bitsToList(mask uint) []int {
	var out []int
	for i := 0; mask != 0; i++ {
		if mask&1 != 0 {
			out = append(out, i)
		}
		mask >>= 1
	}
	return out
}

func sorted(v []int) []int {
	v = slices.Clone(v)
	slices.Sort(v)
	return v
}

// TestEncodeNoAlias checks that shards do not share memory with the input,
// even for K=1 where a data shard equals the chunk.
func TestEncodeNoAlias(t *testing.T) {
	data := testData(1000, 14)
	shards, infos := mustEncode(t, Policy{K: 1, M: 1}, data)
	data[0] ^= 1
	if err := VerifyShard(infos[0], shards[0]); err != nil {
		t.Fatalf("shard changed with the input: %v", err)
	}
}
