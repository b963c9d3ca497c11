package placement_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/erasure"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/placement"
	"github.com/osprey-storage/osprey/ring"
)

// fakeMembers is an in-memory member list.
type fakeMembers struct {
	mu    sync.Mutex
	nodes []fsm.Node
}

func (m *fakeMembers) Nodes() []fsm.Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]fsm.Node(nil), m.nodes...)
}

func members(ids ...string) *fakeMembers {
	m := &fakeMembers{}
	for _, id := range ids {
		m.nodes = append(m.nodes, fsm.Node{ID: osprey.NodeID(id)})
	}
	return m
}

func mustPlacement(t *testing.T, cfg placement.Config) *placement.Placement {
	t.Helper()
	p, err := placement.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRingSkipsRemovedAndDown(t *testing.T) {
	m := members("a", "b", "c", "d")
	m.nodes[1].Removed = true
	m.nodes[2].Down = true
	p := mustPlacement(t, placement.Config{Members: m, Replicas: 2})
	r, err := p.Ring()
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() != 2 {
		t.Fatalf("ring has %d members, want 2 (a, d)", r.Len())
	}
	for _, o := range r.Owners(ring.ChunkKey(1, 1), 2) {
		if o == "b" || o == "c" {
			t.Fatalf("inactive member %s owns a copy", o)
		}
	}
	if p.WantCopies() != 2 {
		t.Fatalf("want copies %d", p.WantCopies())
	}
}

func TestRingFollowsMembership(t *testing.T) {
	m := members("a", "b")
	p := mustPlacement(t, placement.Config{Members: m, Replicas: 3})
	if got := p.WantCopies(); got != 2 {
		t.Fatalf("want copies capped by members: %d", got)
	}
	m.mu.Lock()
	m.nodes = append(m.nodes, fsm.Node{ID: "c"})
	m.mu.Unlock()
	r, err := p.Ring()
	if err != nil || r.Len() != 3 {
		t.Fatalf("ring not rebuilt after a join: %v", err)
	}
	if got := p.WantCopies(); got != 3 {
		t.Fatalf("want copies %d", got)
	}
}

func TestNoActiveMembersIsUnavailable(t *testing.T) {
	m := members("a")
	m.nodes[0].Down = true
	p := mustPlacement(t, placement.Config{Members: m, Replicas: 1})
	if _, err := p.Ring(); !errors.Is(err, osprey.ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	if p.WantCopies() != 1 {
		t.Fatal("WantCopies must fall back to the policy")
	}
}

func TestNewOwnersExcludesHolders(t *testing.T) {
	p := mustPlacement(t, placement.Config{Members: members("a", "b", "c"), Replicas: 2})
	key := ring.ChunkKey(9, 1)
	got, err := p.NewOwners(key, []osprey.NodeID{"a", "c"})
	if err != nil || len(got) != 1 || got[0] != "b" {
		t.Fatalf("got %v err %v", got, err)
	}
	if _, err := p.NewOwners(key, []osprey.NodeID{"a", "b", "c"}); !errors.Is(err, osprey.ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
}

func TestECPolicy(t *testing.T) {
	tests := []struct {
		name       string
		members    int
		fits       bool
		replicas   int
		redundancy string
	}{
		{"fits", 6, true, 3, "ec:4+2"},
		{"too few members", 5, false, 3, "ec:4+2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids := []string{"a", "b", "c", "d", "e", "f"}[:tt.members]
			p := mustPlacement(t, placement.Config{Members: members(ids...), Replicas: 2, EC: erasure.Policy{K: 4, M: 2}})
			if p.ECFits() != tt.fits || p.Replicas() != tt.replicas || !p.ECEnabled() {
				t.Fatalf("fits %v replicas %d", p.ECFits(), p.Replicas())
			}
			if got := p.Redundancy(); got != tt.redundancy {
				t.Fatalf("redundancy %q", got)
			}
		})
	}
	p := mustPlacement(t, placement.Config{Members: members("a"), Replicas: 2})
	if p.Redundancy() != "replicas:2" || p.ECEnabled() {
		t.Fatalf("redundancy %q", p.Redundancy())
	}
}

// TestRingWorkers: the worker ids come from the same member records as the
// ring, only once every member is at fsm.FeatureLevelWorkers, and follow a
// member that joined again (a new worker id, the same ring).
func TestRingWorkers(t *testing.T) {
	m := &fakeMembers{nodes: []fsm.Node{
		{ID: "n1", WorkerID: 0, Level: fsm.FeatureLevelWorkers},
		{ID: "n2", WorkerID: 1, Level: fsm.FeatureLevelInline},
		{ID: "n3", WorkerID: 2, Level: fsm.FeatureLevelWorkers, Down: true},
	}}
	p := mustPlacement(t, placement.Config{Members: m, Replicas: 2})
	if _, ws, err := p.RingWorkers(); err != nil || ws != nil {
		t.Fatalf("workers %v, %v with n2 below the level", ws, err)
	}
	m.mu.Lock()
	m.nodes[1].Level = fsm.FeatureLevelWorkers
	m.mu.Unlock()
	r, ws, err := p.RingWorkers()
	if err != nil || r.Len() != 2 {
		t.Fatalf("ring %v, %v", r, err)
	}
	if want := map[osprey.NodeID]uint32{"n1": 0, "n2": 1}; len(ws) != len(want) || ws["n1"] != 0 || ws["n2"] != 1 {
		t.Fatalf("workers %v, want %v (the down member left out)", ws, want)
	}
	m.mu.Lock()
	m.nodes[0].WorkerID = 7 // n1 removed, wiped, joined again
	m.mu.Unlock()
	if _, ws, _ := p.RingWorkers(); ws["n1"] != 7 {
		t.Fatalf("workers %v after n1 joined again", ws)
	}
}
