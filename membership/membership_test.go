package membership_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
	"github.com/osprey-storage/osprey/membership"
	"github.com/osprey-storage/osprey/raftstore"
)

// fakeRaft is a hand-written Raft.
type fakeRaft struct {
	mu        sync.Mutex
	leader    bool
	hasState  bool
	servers   []raftstore.Server
	voters    []string
	removed   []string
	bootstrap [][]raftstore.Server
}

func (r *fakeRaft) HasState() bool { r.mu.Lock(); defer r.mu.Unlock(); return r.hasState }
func (r *fakeRaft) Bootstrap(s []raftstore.Server) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bootstrap = append(r.bootstrap, s)
	return nil
}
func (r *fakeRaft) IsLeader() bool { r.mu.Lock(); defer r.mu.Unlock(); return r.leader }
func (r *fakeRaft) Leader() (string, string) {
	if r.IsLeader() {
		return "raft-n1", "n1"
	}
	return "", ""
}
func (r *fakeRaft) State() string        { return "Leader" }
func (r *fakeRaft) Term() uint64         { return 1 }
func (r *fakeRaft) CommitIndex() uint64  { return 1 }
func (r *fakeRaft) AppliedIndex() uint64 { return 1 }
func (r *fakeRaft) Servers() ([]raftstore.Server, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]raftstore.Server(nil), r.servers...), nil
}
func (r *fakeRaft) AddVoter(_ context.Context, id, addr string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.voters = append(r.voters, id)
	r.servers = append(r.servers, raftstore.Server{ID: id, Address: addr})
	return nil
}
func (r *fakeRaft) RemoveServer(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removed = append(r.removed, id)
	return nil
}
func (r *fakeRaft) TransferLeadership(context.Context, string) error { return nil }

// memState is an in-memory FSM that fakeProposer applies commands to.
type memState struct {
	mu        sync.Mutex
	clusterID string
	tokenHash string
	nodes     map[osprey.NodeID]fsm.Node
	settings  fsm.Settings
	nextWID   uint32
}

func (s *memState) ClusterID() string     { s.mu.Lock(); defer s.mu.Unlock(); return s.clusterID }
func (s *memState) JoinTokenHash() string { s.mu.Lock(); defer s.mu.Unlock(); return s.tokenHash }
func (s *memState) Node(id osprey.NodeID) (fsm.Node, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nodes[id]
	return n, ok
}
func (s *memState) Settings() fsm.Settings      { s.mu.Lock(); defer s.mu.Unlock(); return s.settings }
func (s *memState) HasUploadsBefore(int64) bool { return false }
func (s *memState) Hash() (string, uint64)      { return "h", 1 }
func (s *memState) Nodes() []fsm.Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]fsm.Node, 0, len(s.nodes))
	for _, n := range s.nodes {
		out = append(out, n)
	}
	return out
}

type fakeProposer struct {
	st  *memState
	mu  sync.Mutex
	cmd []fsm.CommandType
}

func (p *fakeProposer) Apply(_ context.Context, t fsm.CommandType, payload, _ any) error {
	p.mu.Lock()
	p.cmd = append(p.cmd, t)
	p.mu.Unlock()
	s := p.st
	s.mu.Lock()
	defer s.mu.Unlock()
	switch c := payload.(type) {
	case fsm.InitCluster:
		s.clusterID, s.tokenHash = c.ClusterID, c.JoinTokenHash
	case fsm.SetSettings:
		s.settings = c.Settings
	case fsm.NodeUpsert:
		n, ok := s.nodes[c.ID]
		if !ok {
			s.nextWID++
			n.WorkerID = s.nextWID
		}
		n.ID, n.RaftAddr, n.HTTPAddr, n.Level = c.ID, c.RaftAddr, c.HTTPAddr, c.Level
		s.nodes[c.ID] = n
	case fsm.NodeRemove:
		n := s.nodes[c.ID]
		n.Removed = true
		s.nodes[c.ID] = n
	case fsm.NodeDown:
		n := s.nodes[c.ID]
		n.Down = true
		s.nodes[c.ID] = n
	case fsm.NodeUp:
		n := s.nodes[c.ID]
		n.Down = false
		s.nodes[c.ID] = n
	}
	return nil
}
func (p *fakeProposer) EnsureBarrier(context.Context) error { return nil }
func (p *fakeProposer) LeaderHTTP() string                  { return "h1" }
func (p *fakeProposer) count(t fsm.CommandType) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.cmd {
		if c == t {
			n++
		}
	}
	return n
}

// fakePeers answers through function fields.
type fakePeers struct {
	BootstrapInfoFn func(addr string) (httpapi.BootstrapInfo, error)
	JoinFn          func(addr string, req httpapi.JoinRequest) (httpapi.JoinResult, error)
	mu              sync.Mutex
	reachable       map[string]bool
}

func (p *fakePeers) Token() string { return "tok" }
func (p *fakePeers) BootstrapInfo(_ context.Context, addr, _ string) (httpapi.BootstrapInfo, error) {
	return p.BootstrapInfoFn(addr)
}
func (p *fakePeers) Join(_ context.Context, addr string, req httpapi.JoinRequest) (httpapi.JoinResult, error) {
	return p.JoinFn(addr, req)
}
func (p *fakePeers) Probe(_ context.Context, addr string) (bool, time.Duration, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.reachable[addr] {
		return false, 0, errors.New("connection refused")
	}
	return true, time.Millisecond, nil
}
func (p *fakePeers) setReachable(addr string, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reachable[addr] = ok
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

type world struct {
	m     *membership.Membership
	raft  *fakeRaft
	st    *memState
	prop  *fakeProposer
	peers *fakePeers
}

func mustWorld(t *testing.T, edit func(*membership.Config)) *world {
	t.Helper()
	w := &world{raft: &fakeRaft{}, st: &memState{nodes: map[osprey.NodeID]fsm.Node{}}, peers: &fakePeers{reachable: map[string]bool{}}}
	w.prop = &fakeProposer{st: w.st}
	cfg := membership.Config{ID: "n1", HTTPAddr: "h1", RaftAddr: "r1", DataDir: t.TempDir(), JoinToken: "secret-token",
		JoinRetry: time.Millisecond, Raft: w.raft, State: w.st, Proposer: w.prop, Peers: w.peers, Done: make(chan struct{}),
		Logger: slog.New(slog.NewTextHandler(tWriter{t}, nil))}
	if edit != nil {
		edit(&cfg)
	}
	var err error
	if w.m, err = membership.New(cfg); err != nil {
		t.Fatal(err)
	}
	return w
}

func run(t *testing.T, m *membership.Membership) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling with a deadline
	}
}

func hash(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

func TestJoin(t *testing.T) {
	w := mustWorld(t, nil)
	req := httpapi.JoinRequest{ID: "n2", RaftAddr: "r2", HTTPAddr: "h2", Token: "secret-token"}
	if _, err := w.m.Join(context.Background(), req); !errors.Is(err, osprey.ErrNotLeader) {
		t.Fatalf("follower: %v", err)
	}
	w.raft.leader = true
	if _, err := w.m.Join(context.Background(), req); !errors.Is(err, osprey.ErrUnavailable) {
		t.Fatalf("uninitialised cluster: %v", err)
	}
	w.st.clusterID, w.st.tokenHash = "c1", hash("secret-token")
	bad := req
	bad.Token = "guess"
	if _, err := w.m.Join(context.Background(), bad); !errors.Is(err, osprey.ErrForbidden) {
		t.Fatalf("wrong token: %v", err)
	}
	if len(w.raft.voters) != 0 {
		t.Fatal("a refused node was added")
	}
	res, err := w.m.Join(context.Background(), req)
	if err != nil || res.ClusterID != "c1" || res.Leader != "n1" {
		t.Fatalf("res %+v err %v", res, err)
	}
	if rec, ok := w.st.Node("n2"); !ok || rec.HTTPAddr != "h2" || len(w.raft.voters) != 1 {
		t.Fatalf("record %+v voters %v", rec, w.raft.voters)
	}
}

func TestRemove(t *testing.T) {
	w := mustWorld(t, nil)
	w.raft.leader = true
	if err := w.m.Remove(context.Background(), "ghost"); !errors.Is(err, osprey.ErrNotFound) {
		t.Fatalf("unknown member: %v", err)
	}
	w.st.nodes["n2"] = fsm.Node{ID: "n2"}
	if err := w.m.Remove(context.Background(), "n2"); err != nil {
		t.Fatal(err)
	}
	if rec, _ := w.st.Node("n2"); !rec.Removed || len(w.raft.removed) != 1 {
		t.Fatalf("record %+v removed %v: the record is marked before the raft removal", rec, w.raft.removed)
	}
}

func TestLeaderInitialisesAndRegisters(t *testing.T) {
	w := mustWorld(t, func(c *membership.Config) { c.TaskMaxAttempts = 7; c.BackendFingerprint = "local" })
	w.raft.leader, w.raft.hasState = true, true
	w.raft.servers = []raftstore.Server{{ID: "n1", Address: "r1"}}
	if _, err := w.m.NextUID(); !errors.Is(err, osprey.ErrUnavailable) {
		t.Fatalf("uid before registration: %v", err)
	}
	if len(w.m.NotReady(context.Background())) == 0 {
		t.Fatal("ready before registration")
	}
	run(t, w.m)
	waitFor(t, "registration", w.m.Registered)
	if w.st.ClusterID() == "" || w.st.JoinTokenHash() != hash("secret-token") {
		t.Fatal("cluster not initialised with the join token's hash")
	}
	if s := w.st.Settings(); s.MaxAttempts != 7 || s.BackendFingerprint != "local" {
		t.Fatalf("settings %+v", s)
	}
	seen := map[osprey.UID]bool{}
	for range 100 {
		u, err := w.m.NextUID()
		if err != nil || seen[u] {
			t.Fatalf("uid %v err %v", u, err)
		}
		seen[u] = true
	}
	if r := w.m.NotReady(context.Background()); len(r) != 0 {
		t.Fatalf("not ready: %v", r)
	}
	// A leader configured with another backend says so.
	w.st.mu.Lock()
	w.st.settings.BackendFingerprint = "s3 endpoint=x"
	w.st.mu.Unlock()
	if !w.m.BackendMismatch() || len(w.m.NotReady(context.Background())) != 1 {
		t.Fatal("backend mismatch not reported")
	}
}

// TestInlineWaitsForEveryMember: the leader turns Settings.InlineMax on
// only while every member announces a build that knows it: off while one
// on an older build is a member.
func TestInlineWaitsForEveryMember(t *testing.T) {
	w := mustWorld(t, func(c *membership.Config) { c.InlineMax = 128 << 10 })
	w.raft.leader, w.raft.hasState = true, true
	w.raft.servers = []raftstore.Server{{ID: "n1", Address: "r1"}}
	run(t, w.m)
	inline := func() int64 {
		w.st.mu.Lock()
		defer w.st.mu.Unlock()
		return w.st.settings.InlineMax
	}
	waitFor(t, "inline on, one member", func() bool { return inline() == 128<<10 })
	if rec, _ := w.st.Node("n1"); rec.Level != fsm.FeatureLevel {
		t.Fatalf("n1 registered at level %d", rec.Level)
	}
	// A build that predates inline contents may not join once they are on.
	old := httpapi.JoinRequest{ID: "n2", RaftAddr: "r2", HTTPAddr: "h2", Token: "secret-token"} // no level: an older build
	if _, err := w.m.Join(context.Background(), old); !errors.Is(err, osprey.ErrForbidden) {
		t.Fatalf("join of an older build = %v, want refused", err)
	}
	if _, ok := w.st.Node("n2"); ok {
		t.Fatal("refused n2 was recorded")
	}
	// Nor may a build below this one's level while every member runs it:
	// its FSM would skip the repairs this level's entries queue.
	mid := httpapi.JoinRequest{ID: "n5", RaftAddr: "r5", HTTPAddr: "h5", Token: "secret-token", Level: fsm.FeatureLevelInline}
	if _, err := w.m.Join(context.Background(), mid); !errors.Is(err, osprey.ErrForbidden) {
		t.Fatalf("join of a level-%d build = %v, want refused", mid.Level, err)
	}
	// Nor one just below: its FSM would not keep tiered contents' chunk
	// sums (level 3) that the others keep.
	mid.Level = fsm.FeatureLevelWorkers
	if _, err := w.m.Join(context.Background(), mid); !errors.Is(err, osprey.ErrForbidden) {
		t.Fatalf("join of a level-%d build = %v, want refused", mid.Level, err)
	}
	// Nor a level-3 build: it would not keep a one-chunk content's sum
	// (level 4).
	mid.Level = fsm.FeatureLevelSums
	if _, err := w.m.Join(context.Background(), mid); !errors.Is(err, osprey.ErrForbidden) {
		t.Fatalf("join of a level-%d build = %v, want refused", mid.Level, err)
	}
	// A member that registered before (say, mid rolling upgrade, or back on
	// an older build) announces level 0 itself: inline goes off.
	prev := fsm.NodeUpsert{ID: "n2", RaftAddr: "r2", HTTPAddr: "h2"}
	if err := w.prop.Apply(context.Background(), fsm.CmdNodeUpsert, prev, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "inline off with n2 on an older build", func() bool { return inline() == 0 })
	// With inline off, an older build may join again.
	old.ID, old.RaftAddr, old.HTTPAddr = "n4", "r4", "h4"
	if _, err := w.m.Join(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	cur := httpapi.JoinRequest{ID: "n3", RaftAddr: "r3", HTTPAddr: "h3", Token: "secret-token", Level: fsm.FeatureLevel}
	if _, err := w.m.Join(context.Background(), cur); err != nil {
		t.Fatal(err)
	}
	if rec, _ := w.st.Node("n3"); rec.Level != fsm.FeatureLevel {
		t.Fatalf("n3 recorded at level %d", rec.Level)
	}
	// n2 and n4 restart on this build: their reconcile announces the level.
	for _, id := range []string{"n2", "n4"} {
		up := fsm.NodeUpsert{ID: osprey.NodeID(id), RaftAddr: "r" + id[1:], HTTPAddr: "h" + id[1:], Level: fsm.FeatureLevel}
		if err := w.prop.Apply(context.Background(), fsm.CmdNodeUpsert, up, nil); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "inline on once n2 runs this build", func() bool { return inline() == 128<<10 })
}

func TestLivenessMarksDownAndUp(t *testing.T) {
	w := mustWorld(t, func(c *membership.Config) { c.RepairGrace = 40 * time.Millisecond })
	w.raft.leader, w.raft.hasState = true, true
	w.raft.servers = []raftstore.Server{{ID: "n1", Address: "r1"}, {ID: "n2", Address: "r2"}}
	w.st.nodes["n2"] = fsm.Node{ID: "n2", HTTPAddr: "h2"}
	w.peers.setReachable("h1", true)
	run(t, w.m)
	waitFor(t, "n2 marked down", func() bool { rec, _ := w.st.Node("n2"); return rec.Down })
	if rec, _ := w.st.Node("n1"); rec.Down {
		t.Fatal("the leader marked itself down")
	}
	w.peers.setReachable("h2", true)
	waitFor(t, "n2 marked up", func() bool { rec, _ := w.st.Node("n2"); return !rec.Down })
	if w.prop.count(fsm.CmdNodeDown) != 1 {
		t.Fatalf("%d NodeDown commands, want 1", w.prop.count(fsm.CmdNodeDown))
	}
}

func TestRefusedJoinIsFatal(t *testing.T) {
	w := mustWorld(t, func(c *membership.Config) { c.Join = []string{"h9"} })
	w.peers.JoinFn = func(string, httpapi.JoinRequest) (httpapi.JoinResult, error) {
		return httpapi.JoinResult{}, osprey.ErrForbidden
	}
	run(t, w.m)
	select {
	case err := <-w.m.Err():
		if !errors.Is(err, osprey.ErrForbidden) {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a refused join token was not reported")
	}
}

func TestBootstrapExpect(t *testing.T) {
	w := mustWorld(t, func(c *membership.Config) { c.BootstrapExpect = 3; c.Join = []string{"h1", "h2", "h3"} })
	var mu sync.Mutex
	up := map[string]bool{"h2": true}
	asked := 0
	w.peers.BootstrapInfoFn = func(addr string) (httpapi.BootstrapInfo, error) {
		mu.Lock()
		defer mu.Unlock()
		asked++
		if !up[addr] {
			return httpapi.BootstrapInfo{}, osprey.ErrUnavailable
		}
		return httpapi.BootstrapInfo{ID: "n" + addr[1:], RaftAddr: "r" + addr[1:]}, nil
	}
	run(t, w.m)
	// Two of three are up: rounds go by without a bootstrap.
	waitFor(t, "several discovery rounds", func() bool { mu.Lock(); defer mu.Unlock(); return asked >= 6 })
	mu.Lock()
	up["h3"] = true
	mu.Unlock()
	waitFor(t, "bootstrap", func() bool { w.raft.mu.Lock(); defer w.raft.mu.Unlock(); return len(w.raft.bootstrap) == 1 })
	got := w.raft.bootstrap[0]
	if len(got) != 3 || got[0].ID != "n1" || got[1].ID != "n2" || got[2].ID != "n3" {
		t.Fatalf("bootstrapped with %+v, want n1..n3 sorted", got)
	}
}

// TestBootstrapExpectSelfUnderAnotherName: the join list names this node
// by a host name and one peer twice (as compose files do); each member is
// counted once, so the bootstrap configuration has no duplicate ids.
func TestBootstrapExpectSelfUnderAnotherName(t *testing.T) {
	w := mustWorld(t, func(c *membership.Config) {
		c.BootstrapExpect = 3
		c.Join = []string{"osprey1:8080", "osprey2:8080", "osprey3:8080", "10.0.0.3:8080"}
	})
	ids := map[string]string{"osprey1:8080": "n1", "osprey2:8080": "n2", "osprey3:8080": "n3", "10.0.0.3:8080": "n3"}
	w.peers.BootstrapInfoFn = func(addr string) (httpapi.BootstrapInfo, error) {
		return httpapi.BootstrapInfo{ID: ids[addr], RaftAddr: "r" + ids[addr][1:]}, nil
	}
	run(t, w.m)
	waitFor(t, "bootstrap", func() bool { w.raft.mu.Lock(); defer w.raft.mu.Unlock(); return len(w.raft.bootstrap) == 1 })
	w.raft.mu.Lock()
	got := w.raft.bootstrap[0]
	w.raft.mu.Unlock()
	if len(got) != 3 || got[0].ID != "n1" || got[1].ID != "n2" || got[2].ID != "n3" || got[0].Address != "r1" {
		t.Fatalf("bootstrapped with %+v, want n1 (at its own raft address), n2, n3", got)
	}
}

// TestAdminMistakes: an operator's mistake is a 4xx-class error naming the
// problem, never an internal error.
func TestAdminMistakes(t *testing.T) {
	w := mustWorld(t, nil)
	w.raft.leader = true
	w.raft.servers = []raftstore.Server{{ID: "n1", Address: "r1", Suffrage: "Voter"}}
	ctx := context.Background()
	for _, c := range []struct {
		name string
		err  error
		want error
		msg  string
	}{
		{"remove the only voter", w.m.Remove(ctx, "n1"), osprey.ErrConflict, "only voter"},
		{"transfer to itself", w.m.TransferLeadership(ctx, "n1"), osprey.ErrInvalid, "already leads"},
		{"transfer with no other voter", w.m.TransferLeadership(ctx, ""), osprey.ErrConflict, "no other voter"},
		{"transfer to an unknown node", w.m.TransferLeadership(ctx, "ghost"), osprey.ErrNotFound, "not a member"},
	} {
		if !errors.Is(c.err, c.want) || !strings.Contains(fmt.Sprint(c.err), c.msg) {
			t.Errorf("%s: %v, want %v containing %q", c.name, c.err, c.want, c.msg)
		}
	}
	w.raft.servers = append(w.raft.servers, raftstore.Server{ID: "n2", Address: "r2", Suffrage: "Voter"},
		raftstore.Server{ID: "n3", Address: "r3", Suffrage: "Nonvoter"})
	if err := w.m.TransferLeadership(ctx, "n3"); !errors.Is(err, osprey.ErrInvalid) {
		t.Errorf("transfer to a non-voter: %v", err)
	}
	if err := w.m.TransferLeadership(ctx, "n2"); err != nil {
		t.Errorf("transfer to a voter: %v", err)
	}
}
