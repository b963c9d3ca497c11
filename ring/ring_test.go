package ring

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
)

// numKeys is the number of chunk keys the property tests place.
const numKeys = 100_000

func mustNew(t testing.TB, cfg Config, members []string) *Ring {
	t.Helper()
	r, err := New(cfg, members)
	if err != nil {
		t.Fatalf("New(%v): %v", members, err)
	}
	return r
}

// nodes returns n member ids "node-1" … "node-n".
func nodes(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("node-%d", i+1)
	}
	return out
}

// testKey returns the i-th of a stream of chunk keys shaped like real ones:
// snowflake-ish uids, each with ten chunks.
func testKey(i int) []byte {
	return ChunkKey(7_300_000_000_000_000_000+uint64(i/10)*4096, uint32(i%10+1))
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{"default", DefaultConfig(), false},
		{"one", Config{VNodes: 1}, false},
		{"max", Config{VNodes: MaxVNodes}, false},
		{"zero", Config{}, true},
		{"negative", Config{VNodes: -1}, true},
		{"too many", Config{VNodes: MaxVNodes + 1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		members []string
		want    []string
		wantErr error
	}{
		{"sorted", DefaultConfig(), []string{"b", "c", "a"}, []string{"a", "b", "c"}, nil},
		{"single", DefaultConfig(), []string{"x"}, []string{"x"}, nil},
		{"empty", DefaultConfig(), nil, []string{}, nil},
		{"duplicate", DefaultConfig(), []string{"a", "b", "a"}, nil, ErrInvalidMember},
		{"empty id", DefaultConfig(), []string{"a", ""}, nil, ErrInvalidMember},
		{"bad config", Config{}, []string{"a"}, nil, ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.cfg, tt.members)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("New() error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New() error = %v", err)
			}
			if got := r.Members(); !slices.Equal(got, tt.want) {
				t.Fatalf("Members() = %v, want %v", got, tt.want)
			}
			if r.Len() != len(tt.want) {
				t.Fatalf("Len() = %d, want %d", r.Len(), len(tt.want))
			}
		})
	}
}

func TestNewDoesNotAliasInput(t *testing.T) {
	in := []string{"c", "a", "b"}
	r := mustNew(t, DefaultConfig(), in)
	if !slices.Equal(in, []string{"c", "a", "b"}) {
		t.Fatalf("New reordered its input: %v", in)
	}
	m := r.Members()
	m[0] = "zzz"
	if r.Members()[0] != "a" {
		t.Fatal("Members() exposes internal state")
	}
}

func TestOwners(t *testing.T) {
	three := mustNew(t, DefaultConfig(), nodes(3))
	empty := mustNew(t, DefaultConfig(), nil)
	key := ChunkKey(42, 1)
	tests := []struct {
		name    string
		r       *Ring
		n       int
		wantLen int
	}{
		{"zero", three, 0, 0},
		{"negative", three, -1, 0},
		{"one", three, 1, 1},
		{"two", three, 2, 2},
		{"all", three, 3, 3},
		{"more than members", three, 10, 3},
		{"empty ring", empty, 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.r.Owners(key, tt.n)
			if len(got) != tt.wantLen {
				t.Fatalf("Owners(n=%d) = %v, want %d owners", tt.n, got, tt.wantLen)
			}
			assertDistinctMembers(t, tt.r, got)
			// Owners for smaller n are a prefix: the primary never depends on n.
			if tt.n > 1 {
				if prefix := tt.r.Owners(key, tt.n-1); !slices.Equal(prefix, got[:len(prefix)]) {
					t.Fatalf("Owners(n-1) = %v is not a prefix of %v", prefix, got)
				}
			}
		})
	}
	if p := empty.Primary(key); p != "" {
		t.Fatalf("Primary on empty ring = %q, want empty", p)
	}
}

func assertDistinctMembers(t *testing.T, r *Ring, owners []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, o := range owners {
		if seen[o] {
			t.Fatalf("owner %q repeated in %v", o, owners)
		}
		seen[o] = true
		if _, ok := slices.BinarySearch(r.members, o); !ok {
			t.Fatalf("owner %q is not a member", o)
		}
	}
}

// TestOwnersDistinct checks distinctness over many keys and replication
// factors, including large n that uses the bitmap path and tiny rings where
// the walk wraps around the circle.
func TestOwnersDistinct(t *testing.T) {
	tests := []struct {
		name    string
		members int
		vnodes  int
		n       int
	}{
		{"3 of 5", 5, 1024, 3},
		{"all of 10", 10, 1024, 10},
		{"12 of 20 bitmap", 20, 64, 12},
		{"1 vnode wraps", 4, 1, 4},
		{"2 of 2", 2, 8, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustNew(t, Config{VNodes: tt.vnodes}, nodes(tt.members))
			for i := 0; i < 2000; i++ {
				got := r.Owners(testKey(i), tt.n)
				if len(got) != min(tt.n, tt.members) {
					t.Fatalf("key %d: %d owners, want %d", i, len(got), tt.n)
				}
				assertDistinctMembers(t, r, got)
			}
		})
	}
}

func TestDeterminism(t *testing.T) {
	orders := [][]string{
		{"node-1", "node-2", "node-3", "node-4", "node-5"},
		{"node-5", "node-4", "node-3", "node-2", "node-1"},
		{"node-3", "node-1", "node-5", "node-2", "node-4"},
	}
	rings := make([]*Ring, len(orders))
	for i, o := range orders {
		rings[i] = mustNew(t, DefaultConfig(), o)
	}
	for i := 0; i < 5000; i++ {
		k := testKey(i)
		want := rings[0].Owners(k, 3)
		for j, r := range rings[1:] {
			if got := r.Owners(k, 3); !slices.Equal(got, want) {
				t.Fatalf("key %d: order %d gives %v, order 0 gives %v", i, j+1, got, want)
			}
		}
		if again := rings[0].Owners(k, 3); !slices.Equal(again, want) {
			t.Fatalf("key %d: repeated call gives %v, want %v", i, again, want)
		}
	}
}

// TestGolden pins placements. If this fails, the placement function or the
// default changed and nodes running different versions would disagree about
// owners: that needs a cluster-wide migration, not a test update.
func TestGolden(t *testing.T) {
	r := mustNew(t, DefaultConfig(), []string{"node-a", "node-b", "node-c", "node-d", "node-e"})
	tests := []struct {
		uid   uint64
		chunk uint32
		want  []string
	}{
		{1, 1, []string{"node-a", "node-b", "node-d"}},
		{1, 2, []string{"node-e", "node-d", "node-a"}},
		{7_300_000_000_000_000_000, 1, []string{"node-d", "node-c", "node-a"}},
		{^uint64(0), ^uint32(0), []string{"node-c", "node-d", "node-a"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d/%d", tt.uid, tt.chunk), func(t *testing.T) {
			if got := r.Owners(ChunkKey(tt.uid, tt.chunk), 3); !slices.Equal(got, tt.want) {
				t.Fatalf("Owners = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestChunkKey(t *testing.T) {
	tests := []struct {
		uid   uint64
		chunk uint32
		want  []byte
	}{
		{0, 0, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{1, 2, []byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2}},
		{0x0102030405060708, 0x090a0b0c, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
	}
	for _, tt := range tests {
		if got := ChunkKey(tt.uid, tt.chunk); !slices.Equal(got, tt.want) {
			t.Errorf("ChunkKey(%#x, %#x) = %v, want %v", tt.uid, tt.chunk, got, tt.want)
		}
	}
}

// primaries returns the primary owner of each of the numKeys test keys.
func primaries(r *Ring) []string {
	out := make([]string, numKeys)
	for i := range out {
		out[i] = r.Primary(testKey(i))
	}
	return out
}

func TestBalance(t *testing.T) {
	const tolerance = 0.15
	for _, n := range []int{3, 5, 10} {
		t.Run(fmt.Sprintf("%d members", n), func(t *testing.T) {
			r := mustNew(t, DefaultConfig(), nodes(n))
			count := map[string]int{}
			for _, p := range primaries(r) {
				count[p]++
			}
			fair := float64(numKeys) / float64(n)
			worst := 0.0
			for _, m := range r.Members() {
				dev := (float64(count[m]) - fair) / fair
				worst = max(worst, math.Abs(dev))
				if math.Abs(dev) > tolerance {
					t.Errorf("member %s owns %d keys, %.1f%% off fair %.0f", m, count[m], 100*dev, fair)
				}
			}
			t.Logf("worst member %.1f%% off fair", 100*worst)
		})
	}
}

func TestMovementOnAdd(t *testing.T) {
	for _, n := range []int{3, 5, 10} {
		t.Run(fmt.Sprintf("%d to %d", n, n+1), func(t *testing.T) {
			before := mustNew(t, DefaultConfig(), nodes(n))
			grown := append(nodes(n), "node-new")
			after := mustNew(t, DefaultConfig(), grown)
			moved := 0
			for i := 0; i < numKeys; i++ {
				k := testKey(i)
				old, cur := before.Owners(k, 3), after.Owners(k, 3)
				if old[0] != cur[0] {
					moved++
					if cur[0] != "node-new" {
						t.Fatalf("key %d moved from %s to %s, not to the new member", i, old[0], cur[0])
					}
				}
				// Owner sets only gain the new member.
				for _, o := range cur {
					if o != "node-new" && !slices.Contains(old, o) {
						t.Fatalf("key %d: owners %v -> %v gained an old member %s", i, old, cur, o)
					}
				}
			}
			assertMovedFraction(t, moved, n+1)
		})
	}
}

func TestMovementOnRemove(t *testing.T) {
	for _, n := range []int{4, 6, 11} {
		t.Run(fmt.Sprintf("%d to %d", n, n-1), func(t *testing.T) {
			all := nodes(n)
			gone := all[n/2]
			before := mustNew(t, DefaultConfig(), all)
			after := mustNew(t, DefaultConfig(), slices.Delete(slices.Clone(all), n/2, n/2+1))
			moved := 0
			for i := 0; i < numKeys; i++ {
				k := testKey(i)
				old, cur := before.Primary(k), after.Primary(k)
				if old != cur {
					moved++
					if old != gone {
						t.Fatalf("key %d moved from %s to %s but %s was removed", i, old, cur, gone)
					}
				} else if old == gone {
					t.Fatalf("key %d still owned by removed member %s", i, gone)
				}
			}
			assertMovedFraction(t, moved, n)
		})
	}
}

// assertMovedFraction checks that moved keys are about 1/members of all: the
// share of one member, so within the balance tolerance of fair.
func assertMovedFraction(t *testing.T, moved, members int) {
	t.Helper()
	got := float64(moved) / numKeys
	want := 1 / float64(members)
	if math.Abs(got-want)/want > 0.15 {
		t.Fatalf("moved %.2f%% of keys, want about %.2f%%", 100*got, 100*want)
	}
	t.Logf("moved %.2f%% of keys (fair share %.2f%%)", 100*got, 100*want)
}

func BenchmarkOwners(b *testing.B) {
	for _, n := range []int{3, 10, 100} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			r := mustNew(b, DefaultConfig(), nodes(n))
			keys := make([][]byte, 1024)
			for i := range keys {
				keys[i] = testKey(i)
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				_ = r.Owners(keys[i%len(keys)], 3)
			}
		})
	}
}

func BenchmarkNew(b *testing.B) {
	for _, n := range []int{3, 10, 100} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			ms := nodes(n)
			b.ReportAllocs()
			for b.Loop() {
				_ = mustNew(b, DefaultConfig(), ms)
			}
		})
	}
}
