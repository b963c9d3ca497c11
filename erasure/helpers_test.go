package erasure

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
)

// testPolicies returns every policy the configuration allows on up to six
// nodes: K ≥ 1, M ≥ 1, K+M ≤ 6.
func testPolicies() []Policy {
	var ps []Policy
	for n := 2; n <= 6; n++ {
		for k := 1; k < n; k++ {
			ps = append(ps, Policy{K: k, M: n - k})
		}
	}
	return ps
}

// testSizes returns the chunk sizes every round trip covers for p.
func testSizes(p Policy) []int64 {
	stripe := int64(p.K) * BlockSize
	return []int64{0, 1, 7, stripe - 1, stripe, stripe + 1, 3*stripe + 12345}
}

// testData returns n deterministic pseudo-random bytes.
func testData(n int64, seed uint64) []byte {
	b := make([]byte, n)
	var key [32]byte
	key[0] = byte(seed)
	key[1] = byte(seed >> 8)
	rand.NewChaCha8(key).Read(b)
	return b
}

func mustEncode(t testing.TB, p Policy, data []byte) ([][]byte, []ShardInfo) {
	t.Helper()
	shards, infos, err := Encode(p, data)
	if err != nil {
		t.Fatalf("Encode(%v, %d bytes): %v", p, len(data), err)
	}
	return shards, infos
}

// cloneShards deep-copies shards, so a test can damage its copy.
func cloneShards(shards [][]byte) [][]byte {
	out := make([][]byte, len(shards))
	for i, sh := range shards {
		out[i] = slices.Clone(sh)
	}
	return out
}

// subsets calls fn with every bitmask over n shards that has at most max
// bits set.
func subsets(n, max int, fn func(mask uint)) {
	for mask := uint(0); mask < 1<<n; mask++ {
		if bits.OnesCount(mask) <= max {
			fn(mask)
		}
	}
}

var errMissing = errors.New("test: shard missing")

// call records one ShardSource call.
type call struct {
	index  int
	off, n int64
}

// memSource is a ShardSource over in-memory shards, with faults: missing
// shards (the source errors), and streams that break at a shard offset.
// It records every call and counts the bytes its streams delivered.
type memSource struct {
	shards  [][]byte
	missing uint          // bitmask of shards whose source call fails
	breakAt map[int]int64 // shard → shard offset at which its streams fail

	mu        sync.Mutex
	calls     []call
	delivered int64
	openCount int // streams not yet closed
}

func newMemSource(shards [][]byte, missing uint) *memSource {
	return &memSource{shards: shards, missing: missing}
}

func (s *memSource) open(ctx context.Context, i int, off, n int64) (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, call{i, off, n})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.missing&(1<<i) != 0 {
		return nil, fmt.Errorf("shard %d: %w", i, errMissing)
	}
	sh := s.shards[i]
	if off < 0 || n < 0 || off+n > int64(len(sh)) {
		return nil, fmt.Errorf("test: shard %d: range [%d, +%d) outside %d bytes", i, off, n, len(sh))
	}
	st := &memStream{s: s, b: sh[off : off+n], pos: off, breakAt: -1}
	if at, ok := s.breakAt[i]; ok {
		st.breakAt = at
	}
	s.openCount++
	return st, nil
}

func (s *memSource) requested() (total int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.calls {
		total += c.n
	}
	return total
}

type memStream struct {
	s       *memSource
	b       []byte
	pos     int64 // shard offset of b[0]
	breakAt int64
	closed  bool
}

var errBroken = errors.New("test: stream broken")

func (st *memStream) Read(p []byte) (int, error) {
	if st.closed {
		return 0, errors.New("test: read after close")
	}
	if len(st.b) == 0 {
		return 0, io.EOF
	}
	if st.breakAt >= 0 {
		if st.pos >= st.breakAt {
			return 0, errBroken
		}
		p = p[:min(int64(len(p)), st.breakAt-st.pos)]
	}
	n := copy(p, st.b)
	st.b = st.b[n:]
	st.pos += int64(n)
	st.s.mu.Lock()
	st.s.delivered += int64(n)
	st.s.mu.Unlock()
	return n, nil
}

func (st *memStream) Close() error {
	if !st.closed {
		st.closed = true
		st.s.mu.Lock()
		st.s.openCount--
		st.s.mu.Unlock()
	}
	return nil
}

// report collects the reader's OnCorrupt and OnUnavailable calls.
type report struct {
	corrupt, unavailable []int
}

func (r *report) options(t testing.TB) ReaderOptions {
	seen := map[int]bool{}
	once := func(i int) {
		if seen[i] {
			t.Errorf("shard %d reported twice", i)
		}
		seen[i] = true
	}
	return ReaderOptions{
		OnCorrupt: func(i int, err error) {
			once(i)
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("OnCorrupt(%d, %v): want ErrCorrupt", i, err)
			}
			r.corrupt = append(r.corrupt, i)
		},
		OnUnavailable: func(i int, err error) {
			once(i)
			if errors.Is(err, ErrCorrupt) {
				t.Errorf("OnUnavailable(%d, %v): corrupt", i, err)
			}
			r.unavailable = append(r.unavailable, i)
		},
	}
}

// readRange reads [off, off+n) through NewReader and io.ReadAll (which uses
// Read, not WriteTo), closing the reader. It returns the bytes read before
// any error.
func readRange(t testing.TB, p Policy, size int64, infos []ShardInfo, src ShardSource, off, n int64, opts ReaderOptions) ([]byte, error) {
	t.Helper()
	r, err := NewReader(context.Background(), p, size, infos, src, off, n, opts)
	if err != nil {
		t.Fatalf("NewReader(%v, size %d, [%d, +%d)): %v", p, size, off, n, err)
	}
	defer r.Close()
	return io.ReadAll(r)
}

// copyRange is readRange through io.Copy, which uses the reader's WriteTo.
func copyRange(t testing.TB, p Policy, size int64, infos []ShardInfo, src ShardSource, off, n int64, opts ReaderOptions) ([]byte, error) {
	t.Helper()
	r, err := NewReader(context.Background(), p, size, infos, src, off, n, opts)
	if err != nil {
		t.Fatalf("NewReader(%v, size %d, [%d, +%d)): %v", p, size, off, n, err)
	}
	defer r.Close()
	var buf bytes.Buffer
	_, err = io.Copy(&buf, r)
	return buf.Bytes(), err
}

func maskString(mask uint) string {
	var s []int
	for i := 0; mask != 0; i++ {
		if mask&1 != 0 {
			s = append(s, i)
		}
		mask >>= 1
	}
	return fmt.Sprint(s)
}

// allocated returns the bytes fn allocates on the heap. Tests using it must
// not run in parallel with others.
func allocated(t testing.TB, fn func()) int64 {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return int64(after.TotalAlloc - before.TotalAlloc)
}

// heapDelta returns how much the live heap grew since before, after a GC.
func heapDelta(before runtime.MemStats) int64 {
	var now runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&now)
	return int64(now.HeapAlloc) - int64(before.HeapAlloc)
}
