package consensus_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/consensus"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/raftstore"
)

// fsmRaft is a one-voter "raft" over a real FSM: every Apply is one log
// entry. gate, when set, holds the first entry until it is closed.
type fsmRaft struct {
	fakeRaft
	f       *fsm.FSM
	mu      sync.Mutex
	index   uint64
	types   []fsm.CommandType
	gate    chan struct{}
	entered chan struct{}
}

func newFSMRaft(t *testing.T) *fsmRaft {
	r := &fsmRaft{f: fsm.New(), entered: make(chan struct{}, 1)}
	t.Cleanup(func() { _ = r.f.Close() })
	r.leader, r.leaderID = true, "n1"
	r.ApplyFn = func(ctx context.Context, cmd []byte) (any, uint64, error) {
		select {
		case r.entered <- struct{}{}:
		default:
		}
		if r.gate != nil {
			<-r.gate
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.index++
		typ, _, _ := fsm.Decode(cmd)
		r.types = append(r.types, typ)
		return r.f.Apply(&raft.Log{Index: r.index, Term: 1, Type: raft.LogCommand, Data: cmd}), r.index, nil
	}
	return r
}

func (r *fsmRaft) entries() []fsm.CommandType {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]fsm.CommandType(nil), r.types...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestGroupCommitCoalesces: commands proposed while an entry is in flight
// go out together as the next entry, one CmdBatch, and each caller gets
// its own result — a failing command fails alone.
func TestGroupCommitCoalesces(t *testing.T) {
	r := newFSMRaft(t)
	r.gate = make(chan struct{})
	p := mustProposer(t, r, &fakeState{}, fakeForwarder{})
	create := func(uid osprey.UID) error {
		return p.Apply(context.Background(), fsm.CmdFilesCreate,
			fsm.FilesCreate{Files: []fsm.NewFile{{UID: uid, Name: "f", Bucket: "b"}}, Time: 1}, nil)
	}
	errs := make([]error, 64)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); errs[0] = create(1) }()
	<-r.entered // the first entry is in flight, alone
	for i := 1; i < 63; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = create(osprey.UID(i + 1)) }()
	}
	// One command that fails: uid 5 exists by the time it applies. It is
	// proposed only once the others are queued, so it queues after the
	// original create of uid 5 whatever order the goroutines run in.
	waitFor(t, "62 queued commands", func() bool { return consensus.QueueLen(p) == 62 })
	wg.Add(1)
	go func() { defer wg.Done(); errs[63] = create(5) }()
	waitFor(t, "63 queued commands", func() bool { return consensus.QueueLen(p) == 63 })
	close(r.gate)
	wg.Wait()
	for i, err := range errs[:63] {
		if err != nil {
			t.Fatalf("create %d: %v", i+1, err)
		}
	}
	if !errors.Is(errs[63], osprey.ErrConflict) {
		t.Fatalf("duplicate create: %v, want a conflict", errs[63])
	}
	if got := r.entries(); len(got) != 2 || got[0] != fsm.CmdFilesCreate || got[1] != fsm.CmdBatch {
		t.Fatalf("entries %v, want a lone files_create then one batch", got)
	}
	if e, c := p.GroupCommitStats(); e != 2 || c != 64 {
		t.Fatalf("stats %d entries %d commands", e, c)
	}
	for uid := osprey.UID(1); uid <= 63; uid++ {
		if _, ok := r.f.File(uid); !ok {
			t.Fatalf("file %d missing", uid)
		}
	}
}

// TestGroupCommitLoneCommandIsPlain: a command proposed while nothing is
// in flight is proposed at once, as itself (no batch envelope, no wait).
func TestGroupCommitLoneCommandIsPlain(t *testing.T) {
	r := newFSMRaft(t)
	p := mustProposer(t, r, &fakeState{}, fakeForwarder{})
	for i := range 3 {
		if err := p.Apply(context.Background(), fsm.CmdFilesCreate,
			fsm.FilesCreate{Files: []fsm.NewFile{{UID: osprey.UID(i + 1), Name: "f", Bucket: "b"}}, Time: 1}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.entries(); fmt.Sprint(got) != "[files_create files_create files_create]" {
		t.Fatalf("entries %v", got)
	}
}

// TestGroupCommitCaps: a queue longer than MaxBatch goes out in entries of
// at most MaxBatch commands.
func TestGroupCommitCaps(t *testing.T) {
	r := newFSMRaft(t)
	r.gate = make(chan struct{})
	cfg := consensus.DefaultConfig()
	cfg.ID, cfg.HTTPAddr, cfg.Raft, cfg.State, cfg.Forwarder = "n1", "h1:80", r, &fakeState{}, fakeForwarder{}
	cfg.MaxBatch = 10
	p, err := consensus.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var wg sync.WaitGroup
	apply := func() {
		defer wg.Done()
		if err := p.Apply(context.Background(), fsm.CmdNoop, nil, nil); err != nil {
			t.Error(err)
		}
	}
	wg.Add(1)
	go apply()
	<-r.entered
	for range 25 {
		wg.Add(1)
		go apply()
	}
	waitFor(t, "25 queued commands", func() bool { return consensus.QueueLen(p) == 25 })
	close(r.gate)
	wg.Wait()
	if got := r.entries(); len(got) != 4 { // 1, then 10 + 10 + 5
		t.Fatalf("entries %v, want 4", got)
	}
}

// TestGroupCommitRaftErrorReachesAll: an entry raft refuses fails every
// command in it with raft's error (here: not applied, so callers retry).
func TestGroupCommitRaftErrorReachesAll(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	gate := make(chan struct{})
	r := &fakeRaft{leader: true, leaderID: "n1"}
	r.ApplyFn = func(ctx context.Context, cmd []byte) (any, uint64, error) {
		mu.Lock()
		calls++
		first := calls == 1
		mu.Unlock()
		if first {
			<-gate
		}
		return nil, 0, raftstore.ErrNotApplied
	}
	p := mustProposer(t, r, &fakeState{}, fakeForwarder{})
	errs := make(chan error, 5)
	go func() {
		_, err := p.ApplyEncoded(context.Background(), []byte{fsm.CommandVersion, 0, byte(fsm.CmdNoop)})
		errs <- err
	}()
	waitFor(t, "the first entry", func() bool { mu.Lock(); defer mu.Unlock(); return calls == 1 })
	for range 4 {
		go func() {
			_, err := p.ApplyEncoded(context.Background(), []byte{fsm.CommandVersion, 0, byte(fsm.CmdNoop)})
			errs <- err
		}()
	}
	waitFor(t, "4 queued commands", func() bool { return consensus.QueueLen(p) == 4 })
	close(gate)
	for range 5 {
		if err := <-errs; !errors.Is(err, raftstore.ErrNotApplied) {
			t.Fatalf("err %v", err)
		}
	}
	if calls != 2 {
		t.Fatalf("%d entries, want 2", calls)
	}
}

// TestGroupCommitCancelledWhileQueued: a caller that gives up before its
// command was handed to raft is told it was not applied, and the command
// never reaches the log.
func TestGroupCommitCancelledWhileQueued(t *testing.T) {
	r := newFSMRaft(t)
	r.gate = make(chan struct{})
	p := mustProposer(t, r, &fakeState{}, fakeForwarder{})
	go func() { _ = p.Apply(context.Background(), fsm.CmdNoop, nil, nil) }()
	<-r.entered
	ctx, cancel := context.WithCancel(context.Background())
	errC := make(chan error, 1)
	go func() {
		_, err := p.ApplyEncoded(ctx, []byte{fsm.CommandVersion, 0, byte(fsm.CmdFilesCreate)})
		errC <- err
	}()
	waitFor(t, "a queued command", func() bool { return consensus.QueueLen(p) == 1 })
	cancel()
	if err := <-errC; !errors.Is(err, raftstore.ErrNotApplied) {
		t.Fatalf("err %v, want not applied", err)
	}
	close(r.gate)
	// The counter moves after raft answered, so wait for it, not the log.
	waitFor(t, "the first entry counted", func() bool { e, _ := p.GroupCommitStats(); return e >= 1 })
	waitFor(t, "the queue drained", func() bool { return !consensus.Draining(p) })
	if e, _ := p.GroupCommitStats(); e != 1 || len(r.entries()) != 1 {
		t.Fatalf("%d entries counted, %d in the log, want 1", e, len(r.entries()))
	}
}

// TestApplyAll: ops proposed together on the leader take one entry, and
// from a follower one forwarded request and one entry; each op gets its
// own result or error, domain errors keep their kind across the wire.
func TestApplyAll(t *testing.T) {
	r := newFSMRaft(t)
	leader := mustProposer(t, r, &fakeState{}, fakeForwarder{})
	forwards := 0
	fw := fakeForwarder{ForwardFn: func(ctx context.Context, addr string, cmd []byte) ([]byte, error) {
		forwards++
		return leader.ApplyEncoded(ctx, cmd)
	}}
	st := &fakeState{nodes: map[osprey.NodeID]fsm.Node{"n1": {ID: "n1", HTTPAddr: "h1:80"}}}
	follower := mustProposer(t, &fakeRaft{leaderID: "n1"}, st, fw)
	ops := func(base osprey.UID) []consensus.Op {
		var out []consensus.Op
		for i := range 5 {
			uid := base + osprey.UID(i)
			if i == 3 {
				uid = base // a duplicate: conflict
			}
			out = append(out, consensus.Op{Type: fsm.CmdFilesCreate,
				Payload: fsm.FilesCreate{Files: []fsm.NewFile{{UID: uid, Name: "f", Bucket: "b"}}, Time: 1}})
		}
		out = append(out, consensus.Op{Type: fsm.CmdTaskRetry, Payload: fsm.TaskRetry{ID: 99, Now: 1}, Out: new(fsm.Task)})
		return out
	}
	for name, p := range map[string]*consensus.Proposer{"leader": leader, "follower": follower} {
		t.Run(name, func(t *testing.T) {
			base := osprey.UID(100)
			if name == "follower" {
				base = 200
			}
			before := len(r.entries())
			errs := p.ApplyAll(context.Background(), ops(base))
			for i, err := range errs {
				switch {
				case i == 3 && !errors.Is(err, osprey.ErrConflict):
					t.Fatalf("op 3: %v, want conflict", err)
				case i == 5 && !errors.Is(err, osprey.ErrNotFound):
					t.Fatalf("op 5: %v, want not found", err)
				case i != 3 && i != 5 && err != nil:
					t.Fatalf("op %d: %v", i, err)
				}
			}
			if got := r.entries()[before:]; len(got) != 1 || got[0] != fsm.CmdBatch {
				t.Fatalf("entries %v, want one batch", got)
			}
			for i := range 5 {
				if i != 3 {
					if _, ok := r.f.File(base + osprey.UID(i)); !ok {
						t.Fatalf("file %d missing", base+osprey.UID(i))
					}
				}
			}
		})
	}
	if forwards != 1 {
		t.Fatalf("%d forwarded requests, want 1", forwards)
	}
}

// TestApplyAllOldLeader: a leader that does not know CmdBatch refuses it
// as invalid; the follower then sends the commands one by one.
func TestApplyAllOldLeader(t *testing.T) {
	var got []fsm.CommandType
	fw := fakeForwarder{ForwardFn: func(ctx context.Context, addr string, cmd []byte) ([]byte, error) {
		typ, _, _ := fsm.Decode(cmd)
		got = append(got, typ)
		if typ == fsm.CmdBatch {
			return nil, fmt.Errorf("%w: unknown command type 40", osprey.ErrInvalid)
		}
		return nil, nil
	}}
	st := &fakeState{nodes: map[osprey.NodeID]fsm.Node{"n1": {ID: "n1", HTTPAddr: "h1:80"}}}
	p := mustProposer(t, &fakeRaft{leaderID: "n1"}, st, fw)
	errs := p.ApplyAll(context.Background(), []consensus.Op{{Type: fsm.CmdNoop}, {Type: fsm.CmdNoop}})
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	if fmt.Sprint(got) != "[batch noop noop]" {
		t.Fatalf("forwarded %v", got)
	}
}
