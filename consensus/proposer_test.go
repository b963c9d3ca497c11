package consensus_test

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/consensus"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/raftstore"
)

// fakeRaft is a hand-written Raft with function fields.
type fakeRaft struct {
	mu       sync.Mutex
	leader   bool
	leaderID string
	term     uint64
	barriers int
	// lastContact is when the node last heard from a leader.
	lastContact time.Time
	ApplyFn     func(ctx context.Context, cmd []byte) (any, uint64, error)
	VerifyFn    func(ctx context.Context) error
}

func (r *fakeRaft) IsLeader() bool { r.mu.Lock(); defer r.mu.Unlock(); return r.leader }
func (r *fakeRaft) Leader() (string, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return "raft:" + r.leaderID, r.leaderID
}
func (r *fakeRaft) Term() uint64 { r.mu.Lock(); defer r.mu.Unlock(); return r.term }
func (r *fakeRaft) Apply(ctx context.Context, cmd []byte) (any, uint64, error) {
	return r.ApplyFn(ctx, cmd)
}
func (r *fakeRaft) Barrier(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.barriers++
	return nil
}
func (r *fakeRaft) LastContact() time.Time { r.mu.Lock(); defer r.mu.Unlock(); return r.lastContact }
func (r *fakeRaft) VerifyLeader(ctx context.Context) error {
	if r.VerifyFn != nil {
		return r.VerifyFn(ctx)
	}
	return nil
}

type fakeState struct {
	mu      sync.Mutex
	applied uint64
	nodes   map[osprey.NodeID]fsm.Node
}

func (s *fakeState) AppliedIndex() uint64 { s.mu.Lock(); defer s.mu.Unlock(); return s.applied }
func (s *fakeState) Node(id osprey.NodeID) (fsm.Node, bool) {
	n, ok := s.nodes[id]
	return n, ok
}

type fakeForwarder struct {
	ForwardFn   func(ctx context.Context, leader string, cmd []byte) ([]byte, error)
	ReadIndexFn func(ctx context.Context, leader string) (uint64, error)
}

func (f fakeForwarder) ForwardApply(ctx context.Context, leader string, cmd []byte) ([]byte, error) {
	return f.ForwardFn(ctx, leader, cmd)
}
func (f fakeForwarder) ReadIndex(ctx context.Context, leader string) (uint64, error) {
	return f.ReadIndexFn(ctx, leader)
}

func mustProposer(t *testing.T, r consensus.Raft, s consensus.State, f consensus.Forwarder) *consensus.Proposer {
	t.Helper()
	cfg := consensus.DefaultConfig()
	cfg.ID, cfg.HTTPAddr, cfg.Raft, cfg.State, cfg.Forwarder = "n1", "h1:80", r, s, f
	cfg.Retry = time.Millisecond
	p, err := consensus.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func TestApplyOnLeaderDecodesResult(t *testing.T) {
	var got []byte
	r := &fakeRaft{leader: true, leaderID: "n1", ApplyFn: func(_ context.Context, cmd []byte) (any, uint64, error) {
		got = cmd
		return &fsm.Result{Data: fsm.TaskLeaseResult{Tasks: []fsm.Task{{ID: 7}}}}, 3, nil
	}}
	p := mustProposer(t, r, &fakeState{}, fakeForwarder{})
	var res fsm.TaskLeaseResult
	if err := p.Apply(context.Background(), fsm.CmdTaskLease, fsm.TaskLease{Node: "n1", IDs: []uint64{7}}, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Tasks) != 1 || res.Tasks[0].ID != 7 {
		t.Fatalf("result %+v", res)
	}
	if ty, _, err := fsm.Decode(got); err != nil || ty != fsm.CmdTaskLease {
		t.Fatalf("raft got %v %v", ty, err)
	}
}

func TestApplyFSMErrorIsReturned(t *testing.T) {
	want := errors.New("fsm: nope")
	r := &fakeRaft{leader: true, leaderID: "n1", ApplyFn: func(context.Context, []byte) (any, uint64, error) {
		return &fsm.Result{Err: want}, 1, nil
	}}
	p := mustProposer(t, r, &fakeState{}, fakeForwarder{})
	if err := p.Apply(context.Background(), fsm.CmdTaskDone, fsm.TaskDone{ID: 1}, nil); !errors.Is(err, want) {
		t.Fatalf("err = %v", err)
	}
}

func TestApplyForwardsToLeaderAndRetriesUnavailable(t *testing.T) {
	r := &fakeRaft{leaderID: "n2"}
	st := &fakeState{nodes: map[osprey.NodeID]fsm.Node{"n2": {ID: "n2", HTTPAddr: "h2:80"}}}
	calls := 0
	fw := fakeForwarder{ForwardFn: func(_ context.Context, leader string, cmd []byte) ([]byte, error) {
		calls++
		if leader != "h2:80" {
			t.Errorf("forwarded to %q", leader)
		}
		if calls < 3 {
			return nil, raftstore.ErrNoLeader // certainly not applied: retried
		}
		return []byte(`{"id":9}`), nil
	}}
	p := mustProposer(t, r, st, fw)
	var task fsm.Task
	if err := p.Apply(context.Background(), fsm.CmdTaskRetry, fsm.TaskRetry{ID: 9}, &task); err != nil {
		t.Fatal(err)
	}
	if calls != 3 || task.ID != 9 {
		t.Fatalf("calls %d task %+v", calls, task)
	}
}

func TestApplyDoesNotRetryIndeterminate(t *testing.T) {
	r := &fakeRaft{leaderID: "n2"}
	st := &fakeState{nodes: map[osprey.NodeID]fsm.Node{"n2": {ID: "n2", HTTPAddr: "h2:80"}}}
	calls := 0
	fw := fakeForwarder{ForwardFn: func(context.Context, string, []byte) ([]byte, error) {
		calls++
		return nil, osprey.ErrIndeterminate
	}}
	p := mustProposer(t, r, st, fw)
	if err := p.Apply(context.Background(), fsm.CmdTaskDone, fsm.TaskDone{ID: 1}, nil); !errors.Is(err, osprey.ErrIndeterminate) || calls != 1 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
}

func TestApplyStopsAtClose(t *testing.T) {
	p := mustProposer(t, &fakeRaft{}, &fakeState{}, fakeForwarder{}) // no leader at all
	errC := make(chan error, 1)
	go func() { errC <- p.Apply(context.Background(), fsm.CmdTaskDone, fsm.TaskDone{ID: 1}, nil) }()
	p.Close()
	if err := <-errC; !errors.Is(err, consensus.ErrShuttingDown) {
		t.Fatalf("err = %v", err)
	}
}

func TestApplyEncodedRefusesUndecodable(t *testing.T) {
	r := &fakeRaft{leader: true, ApplyFn: func(context.Context, []byte) (any, uint64, error) {
		t.Fatal("an undecodable command reached raft")
		return nil, 0, nil
	}}
	p := mustProposer(t, r, &fakeState{}, fakeForwarder{})
	for _, cmd := range [][]byte{
		{0xff, 0xff},
		// A known type whose payload does not decode: every replica would
		// panic applying it.
		{fsm.CommandVersion, 0, byte(fsm.CmdFilesCreate), '{', '"', 'f'},
		append([]byte{fsm.CommandVersion, 0, byte(fsm.CmdChunkPut)}, `{"uid":"not a uid"}`...),
	} {
		if _, err := p.ApplyEncoded(context.Background(), cmd); !errors.Is(err, osprey.ErrInvalid) {
			t.Fatalf("%q: err = %v", cmd, err)
		}
	}
}

func TestReadIndexBarrierOncePerTerm(t *testing.T) {
	r := &fakeRaft{leader: true, leaderID: "n1", term: 4}
	st := &fakeState{applied: 42}
	p := mustProposer(t, r, st, fakeForwarder{})
	for range 3 {
		idx, err := p.ReadIndex(context.Background())
		if err != nil || idx != 42 {
			t.Fatalf("idx %d err %v", idx, err)
		}
	}
	r.mu.Lock()
	r.term = 5
	r.mu.Unlock()
	if _, err := p.ReadIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r.barriers != 2 {
		t.Fatalf("barriers = %d, want one per term", r.barriers)
	}
	r.VerifyFn = func(context.Context) error { return raftstore.ErrNotLeader }
	if _, err := p.ReadIndex(context.Background()); !errors.Is(err, osprey.ErrNotLeader) {
		t.Fatalf("err = %v", err)
	}
}

func TestReadBarrierWaitsForLocalApply(t *testing.T) {
	r := &fakeRaft{leaderID: "n2"}
	st := &fakeState{applied: 5, nodes: map[osprey.NodeID]fsm.Node{"n2": {HTTPAddr: "h2:80"}}}
	fw := fakeForwarder{ReadIndexFn: func(context.Context, string) (uint64, error) { return 8, nil }}
	p := mustProposer(t, r, st, fw)
	done := make(chan error, 1)
	go func() { done <- p.ReadBarrier(context.Background()) }()
	select {
	case err := <-done:
		t.Fatalf("barrier returned before the FSM reached the read index: %v", err)
	case <-time.After(20 * time.Millisecond): // it must still be waiting
	}
	st.mu.Lock()
	st.applied = 8
	st.mu.Unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestReadBarrierTimesOutUnavailable(t *testing.T) {
	p := mustProposer(t, &fakeRaft{}, &fakeState{}, fakeForwarder{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := p.ReadBarrier(ctx); !errors.Is(err, osprey.ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
}

// TestNoLeaderAnswersAfterNoLeaderWait: a node that lost contact with its
// leader longer than NoLeaderWait ago answers ErrNoLeader (503) at once,
// for writes and reads, instead of holding the call until its deadline; a
// node that never heard from a leader (starting, joining) still waits.
func TestNoLeaderAnswersAfterNoLeaderWait(t *testing.T) {
	newP := func(r *fakeRaft) *consensus.Proposer {
		cfg := consensus.DefaultConfig()
		cfg.ID, cfg.HTTPAddr, cfg.Raft, cfg.State, cfg.Forwarder = "n1", "h1:80", r, &fakeState{}, fakeForwarder{}
		cfg.Retry, cfg.NoLeaderWait = time.Millisecond, 200*time.Millisecond
		p, err := consensus.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	lost := newP(&fakeRaft{lastContact: time.Now().Add(-time.Second)})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := lost.Apply(ctx, fsm.CmdTaskDone, fsm.TaskDone{ID: 1}, nil); !errors.Is(err, raftstore.ErrNoLeader) || !errors.Is(err, osprey.ErrUnavailable) || ctx.Err() != nil {
		t.Fatalf("apply on a node that lost its leader: %v (ctx %v), want ErrNoLeader before the deadline", err, ctx.Err())
	}
	if err := lost.ReadBarrier(ctx); !errors.Is(err, raftstore.ErrNoLeader) || ctx.Err() != nil {
		t.Fatalf("read barrier on a node that lost its leader: %v, want ErrNoLeader before the deadline", err)
	}
	// Contact lost just now: it waits for an election first (here until
	// its own short deadline).
	recent := newP(&fakeRaft{lastContact: time.Now()})
	sctx, scancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer scancel()
	if err := recent.Apply(sctx, fsm.CmdTaskDone, fsm.TaskDone{ID: 1}, nil); sctx.Err() == nil || !errors.Is(err, osprey.ErrUnavailable) {
		t.Fatalf("apply right after losing the leader: %v (ctx %v), want a wait until the deadline", err, sctx.Err())
	}
	// Never had a leader: waits until the deadline as before.
	never := newP(&fakeRaft{})
	nctx, ncancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer ncancel()
	if err := never.Apply(nctx, fsm.CmdTaskDone, fsm.TaskDone{ID: 1}, nil); nctx.Err() == nil || !errors.Is(err, osprey.ErrUnavailable) {
		t.Fatalf("apply on a node that never had a leader: %v (ctx %v), want a wait until the deadline", err, nctx.Err())
	}
}

// TestReadBarrierSharesReadIndexRequests: on a follower, read barriers
// that arrive while a read-index request is in flight share the next one
// (one round trip to the leader for the lot), and none of them takes the
// answer of the request sent before it arrived.
func TestReadBarrierSharesReadIndexRequests(t *testing.T) {
	r := &fakeRaft{leaderID: "n2"}
	st := &fakeState{applied: 100, nodes: map[osprey.NodeID]fsm.Node{"n2": {ID: "n2", HTTPAddr: "h2:80"}}}
	var calls atomic.Int32
	started := make(chan struct{}, 64)
	release := make(chan uint64)
	fw := fakeForwarder{ReadIndexFn: func(ctx context.Context, leader string) (uint64, error) {
		calls.Add(1)
		started <- struct{}{}
		select {
		case idx := <-release:
			return idx, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}}
	p := mustProposer(t, r, st, fw)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wait := func(what string, ch <-chan struct{}) {
		t.Helper()
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		}
	}
	first := make(chan error, 1)
	go func() { first <- p.ReadBarrier(ctx) }()
	wait("the first read-index request", started)
	const later = 10
	errs := make(chan error, later)
	for range later {
		go func() { errs <- p.ReadBarrier(ctx) }()
	}
	for deadline := time.Now().Add(10 * time.Second); consensus.ReadQueueLen(p) < later; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d barriers queued, want %d", consensus.ReadQueueLen(p), later)
		}
	}
	release <- 5 // answers the first barrier only
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	wait("the shared read-index request", started)
	select {
	case err := <-errs:
		t.Fatalf("a barrier that arrived during the first request returned (%v) before its own request answered", err)
	default:
	}
	release <- 7
	for range later {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d read-index requests for %d barriers, want 2", n, later+1)
	}
}

// TestDeliverLocalResult: a result applied on this node reaches out as
// the value itself when out points to its type, and through JSON (as a
// forwarded one arrives) otherwise.
func TestDeliverLocalResult(t *testing.T) {
	res := fsm.CompleteResult{File: fsm.File{UID: 7, Name: "a.txt", State: fsm.StateComplete},
		Content: &fsm.ContentInfo{Chunks: 1, State: fsm.ContentStaged, Inline: true}}
	var same fsm.CompleteResult
	if err := consensus.Deliver(fsm.CmdFileComplete, res, &same); err != nil || !reflect.DeepEqual(same, res) {
		t.Fatalf("same type: %+v, %v", same, err)
	}
	var other struct {
		File struct {
			Name string `json:"name"`
		} `json:"file"`
	}
	if err := consensus.Deliver(fsm.CmdFileComplete, res, &other); err != nil || other.File.Name != "a.txt" {
		t.Fatalf("other type: %+v, %v", other, err)
	}
	if err := consensus.Deliver(fsm.CmdFileComplete, res, nil); err != nil {
		t.Fatal(err)
	}
	var bad int
	if err := consensus.Deliver(fsm.CmdFileComplete, res, &bad); err == nil {
		t.Fatal("a result decoded into an int")
	}
}
