package tasks_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/consensus"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/tasks"
)

// fakeState is an in-memory queue.
type fakeState struct {
	mu       sync.Mutex
	tasks    map[uint64]fsm.Task
	contents map[osprey.UID]fsm.Content
	polls    int
	lives    int // LiveTasks calls
}

func (s *fakeState) ClusterID() string { return "c1" }
func (s *fakeState) RunnableTasks(_ int64, types map[string]bool, _ int) []fsm.Task {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.polls++
	var out []fsm.Task
	for _, t := range s.tasks {
		if t.State == fsm.TaskPending && types[t.Type] {
			out = append(out, t)
		}
	}
	return out
}
func (s *fakeState) LiveTasks(typ string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lives++
	n := 0
	for _, t := range s.tasks {
		if t.Type == typ && t.State != fsm.TaskDead {
			n++
		}
	}
	return n
}
func (s *fakeState) Tasks(st fsm.TaskState) []fsm.Task {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []fsm.Task
	for _, t := range s.tasks {
		if st == "" || t.State == st {
			out = append(out, t)
		}
	}
	return out
}
func (s *fakeState) Content(id osprey.UID) (fsm.Content, bool) {
	c, ok := s.contents[id]
	return c, ok
}
func (s *fakeState) pollCount() int { s.mu.Lock(); defer s.mu.Unlock(); return s.polls }

// queueProposer applies task commands to a fakeState like the FSM would.
type queueProposer struct {
	st      *fakeState
	mu      sync.Mutex
	log     []any
	batches []int // sizes of the ApplyAll calls
}

func (p *queueProposer) Apply(_ context.Context, t fsm.CommandType, payload, out any) error {
	p.mu.Lock()
	p.log = append(p.log, payload)
	p.mu.Unlock()
	p.st.mu.Lock()
	defer p.st.mu.Unlock()
	var res any
	switch c := payload.(type) {
	case fsm.TaskLease:
		var lr fsm.TaskLeaseResult
		for _, id := range c.IDs {
			if tk, ok := p.st.tasks[id]; ok && (tk.State == fsm.TaskPending || tk.LeaseHolder == c.Node) {
				tk.State, tk.LeaseHolder = fsm.TaskLeased, c.Node
				p.st.tasks[id] = tk
				lr.Tasks = append(lr.Tasks, tk)
			}
		}
		res = lr
	case fsm.TaskDone:
		delete(p.st.tasks, c.ID)
	case fsm.TaskFail:
		tk := p.st.tasks[c.ID]
		tk.State, tk.LastError = fsm.TaskPending, c.Error
		if c.Permanent {
			tk.State = fsm.TaskDead
		}
		p.st.tasks[c.ID] = tk
	case fsm.TaskRetry:
		tk, ok := p.st.tasks[c.ID]
		if !ok {
			return osprey.ErrNotFound
		}
		tk.State = fsm.TaskPending
		p.st.tasks[c.ID] = tk
		res = tk
	}
	if out != nil && res != nil {
		b, _ := json.Marshal(res)
		return json.Unmarshal(b, out)
	}
	return nil
}

func (p *queueProposer) ApplyAll(ctx context.Context, ops []consensus.Op) []error {
	p.mu.Lock()
	p.batches = append(p.batches, len(ops))
	p.mu.Unlock()
	errs := make([]error, len(ops))
	for i, op := range ops {
		errs[i] = p.Apply(ctx, op.Type, op.Payload, op.Out)
	}
	return errs
}

func (p *queueProposer) ReadBarrier(context.Context) error { return nil }

func (p *queueProposer) applied() []any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]any(nil), p.log...)
}

type noUploads struct{}

func (noUploads) LastUpload() time.Time { return time.Time{} }

// fakeHandler runs tasks of type "test" through RunFn.
type fakeHandler struct {
	RunFn func(ctx context.Context, t fsm.Task) (*tasks.Completion, error)
}

func (fakeHandler) Type() string { return "test" }
func (h fakeHandler) Run(ctx context.Context, t fsm.Task) (*tasks.Completion, error) {
	return h.RunFn(ctx, t)
}

func mustRunner(t *testing.T, st *fakeState, p *queueProposer, ready func() bool, hs ...tasks.Handler) *tasks.Runner {
	t.Helper()
	r, err := tasks.New(tasks.Config{ID: "n1", Workers: 4, Lease: time.Second, Poll: 2 * time.Millisecond, Handlers: hs,
		Ready: ready, State: st, Proposer: p, Uploads: noUploads{}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// run starts r and stops it when the test ends.
func run(t *testing.T, r *tasks.Runner) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
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

func TestRunnerRecordsOutcomes(t *testing.T) {
	st := &fakeState{tasks: map[uint64]fsm.Task{
		1: {ID: 1, Type: "test", Target: "ok", State: fsm.TaskPending},
		2: {ID: 2, Type: "test", Target: "retry", State: fsm.TaskPending},
		3: {ID: 3, Type: "test", Target: "permanent", State: fsm.TaskPending},
		4: {ID: 4, Type: "test", Target: "complete", State: fsm.TaskPending},
		5: {ID: 5, Type: "other", State: fsm.TaskPending}, // no handler here
	}}
	p := &queueProposer{st: st}
	var mu sync.Mutex
	attempts := map[uint64]int{}
	h := fakeHandler{RunFn: func(_ context.Context, tk fsm.Task) (*tasks.Completion, error) {
		mu.Lock()
		attempts[tk.ID]++
		n := attempts[tk.ID]
		mu.Unlock()
		switch tk.Target {
		case "retry":
			if n == 1 {
				return nil, errors.New("flaky")
			}
			return nil, nil
		case "permanent":
			return nil, tasks.Permanent(errors.New("hopeless"))
		case "complete":
			return &tasks.Completion{Type: fsm.CmdTaskDone, Payload: fsm.TaskDone{ID: tk.ID, Node: "n1"}}, nil
		}
		return nil, nil
	}}
	run(t, mustRunner(t, st, p, func() bool { return true }, h))
	waitFor(t, "tasks to settle", func() bool {
		st.mu.Lock()
		defer st.mu.Unlock()
		_, ok1 := st.tasks[1]
		_, ok2 := st.tasks[2]
		_, ok4 := st.tasks[4]
		return !ok1 && !ok2 && !ok4 && st.tasks[3].State == fsm.TaskDead
	})
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.tasks[3].LastError != "hopeless" {
		t.Fatalf("dead task error %q", st.tasks[3].LastError)
	}
	if st.tasks[5].State != fsm.TaskPending {
		t.Fatal("a task without a handler here was leased")
	}
	mu.Lock()
	defer mu.Unlock()
	if attempts[2] != 2 || attempts[3] != 1 {
		t.Fatalf("attempts %v: a retryable failure is retried, a permanent one is not", attempts)
	}
}

func TestRunnerWaitsUntilReady(t *testing.T) {
	st := &fakeState{tasks: map[uint64]fsm.Task{1: {ID: 1, Type: "test", State: fsm.TaskPending}}}
	p := &queueProposer{st: st}
	var mu sync.Mutex
	ready, asked := false, 0
	h := fakeHandler{RunFn: func(context.Context, fsm.Task) (*tasks.Completion, error) { return nil, nil }}
	run(t, mustRunner(t, st, p, func() bool { mu.Lock(); defer mu.Unlock(); asked++; return ready }, h))
	waitFor(t, "several polls", func() bool { mu.Lock(); defer mu.Unlock(); return asked >= 5 })
	// Not ready: the queue is not even read.
	if st.pollCount() != 0 || len(p.applied()) != 0 {
		t.Fatal("an unregistered node leased tasks")
	}
	mu.Lock()
	ready = true
	mu.Unlock()
	waitFor(t, "the task to run", func() bool { return len(st.Tasks("")) == 0 })
}

func TestTierTaskPrefersChunkHolders(t *testing.T) {
	now := time.Now().UnixMilli()
	st := &fakeState{
		tasks: map[uint64]fsm.Task{
			1: {ID: 1, Type: fsm.TaskTier, Target: "10", State: fsm.TaskPending, NextAttempt: now + 60_000}, // held elsewhere
			2: {ID: 2, Type: fsm.TaskTier, Target: "20", State: fsm.TaskPending, NextAttempt: now + 60_000}, // held here
		},
		contents: map[osprey.UID]fsm.Content{
			10: {ID: 10, Chunks: []fsm.Chunk{{Owners: []osprey.NodeID{"n2", "n3"}}}},
			20: {ID: 20, Chunks: []fsm.Chunk{{Owners: []osprey.NodeID{"n1", "n3"}}}},
		},
	}
	p := &queueProposer{st: st}
	tier := tierStub{}
	run(t, mustRunner(t, st, p, func() bool { return true }, tier))
	waitFor(t, "the local tier task", func() bool { return len(st.Tasks("")) == 1 })
	start := st.pollCount()
	waitFor(t, "more polls", func() bool { return st.pollCount() > start+5 })
	left := st.Tasks("")
	if len(left) != 1 || left[0].ID != 1 {
		t.Fatalf("left %+v: the task for chunks held elsewhere must wait for its holders", left)
	}
}

type tierStub struct{}

func (tierStub) Type() string { return fsm.TaskTier }
func (tierStub) Run(context.Context, fsm.Task) (*tasks.Completion, error) {
	return nil, nil
}

func TestTaskAPI(t *testing.T) {
	st := &fakeState{tasks: map[uint64]fsm.Task{7: {ID: 7, Type: "test", State: fsm.TaskDead, CreatedAt: 1700000000000, LastError: "x"}}}
	r := mustRunner(t, st, &queueProposer{st: st}, func() bool { return true })
	list, err := r.ListTasks(context.Background(), "dead")
	if err != nil || len(list) != 1 || list[0].ID != 7 || list[0].LastError != "x" || list[0].CreatedAt != "2023-11-14T22:13:20Z" {
		t.Fatalf("list %+v err %v", list, err)
	}
	info, err := r.RetryTask(context.Background(), 7)
	if err != nil || info.State != "pending" {
		t.Fatalf("retry %+v err %v", info, err)
	}
	if _, err := r.RetryTask(context.Background(), 99); !errors.Is(err, osprey.ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
}

// testLogger routes logs to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestRunnerBatchesLeasesAndOutcomes: the runner leases a backlog of
// twice its workers in one entry, leases again only when it ran down to
// half, and records outcomes of tasks that finish together in one
// ApplyAll.
func TestRunnerBatchesLeasesAndOutcomes(t *testing.T) {
	st := &fakeState{tasks: map[uint64]fsm.Task{}}
	for id := uint64(1); id <= 40; id++ {
		st.tasks[id] = fsm.Task{ID: id, Type: "test", State: fsm.TaskPending}
	}
	p := &queueProposer{st: st}
	release := make(chan struct{})
	var mu sync.Mutex
	started := 0
	h := fakeHandler{RunFn: func(ctx context.Context, tk fsm.Task) (*tasks.Completion, error) {
		mu.Lock()
		started++
		mu.Unlock()
		<-release
		return nil, nil
	}}
	run(t, mustRunner(t, st, p, func() bool { return true }, h))
	waitFor(t, "4 running tasks", func() bool { mu.Lock(); defer mu.Unlock(); return started == 4 })
	var first fsm.TaskLease
	for _, x := range p.applied() {
		if l, ok := x.(fsm.TaskLease); ok {
			first = l
			break
		}
	}
	if len(first.IDs) != 8 {
		t.Fatalf("first lease of %d tasks, want 8 (twice the workers)", len(first.IDs))
	}
	close(release)
	waitFor(t, "every task done", func() bool { return len(st.Tasks("")) == 0 })
	leases := 0
	for _, x := range p.applied() {
		if _, ok := x.(fsm.TaskLease); ok {
			leases++
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	total, biggest := 0, 0
	for _, n := range p.batches {
		total += n
		biggest = max(biggest, n)
	}
	if total != 40 || biggest < 2 {
		t.Fatalf("outcome batches %v: want 40 outcomes, some recorded together", p.batches)
	}
	// At least 4 tasks per lease: 40 tasks in at most 10 leases (old: one
	// lease per finished task).
	if leases > 10 {
		t.Fatalf("%d lease entries for 40 tasks", leases)
	}
	t.Logf("%d leases, outcome batches %v", leases, p.batches)
}

type busyUploads struct{}

func (busyUploads) LastUpload() time.Time { return time.Now() }

// TestRunnerYieldsToUploadsBelowBacklog: while uploads arrive, background
// tasks run on a quarter of the workers, but only while their backlog is
// below YieldBacklog; past it they run on every worker.
func TestRunnerYieldsToUploadsBelowBacklog(t *testing.T) {
	for _, tc := range []struct {
		name    string
		backlog int
		want    int // tasks running at once
	}{
		{"below the bound yields", 100, 1},
		{"past the bound runs on every worker", 5, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &fakeState{tasks: map[uint64]fsm.Task{}}
			for id := uint64(1); id <= 8; id++ {
				st.tasks[id] = fsm.Task{ID: id, Type: "test", State: fsm.TaskPending}
			}
			release := make(chan struct{})
			var mu sync.Mutex
			running, most := 0, 0
			h := fakeHandler{RunFn: func(ctx context.Context, _ fsm.Task) (*tasks.Completion, error) {
				mu.Lock()
				running++
				most = max(most, running)
				mu.Unlock()
				defer func() { mu.Lock(); running--; mu.Unlock() }()
				select {
				case <-release:
				case <-ctx.Done():
				}
				return nil, nil
			}}
			r, err := tasks.New(tasks.Config{ID: "n1", Workers: 4, Lease: time.Second, Poll: 2 * time.Millisecond,
				Handlers: []tasks.Handler{h}, Ready: func() bool { return true }, State: st,
				Proposer: &queueProposer{st: st}, Uploads: busyUploads{}, YieldBacklog: tc.backlog, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			run(t, r)
			defer close(release)
			waitFor(t, "tasks to start", func() bool { mu.Lock(); defer mu.Unlock(); return running == tc.want })
			// Many rounds of the runner's loop later, no more than that
			// run at once.
			rounds := func() int { st.mu.Lock(); defer st.mu.Unlock(); return st.lives }
			from := rounds()
			waitFor(t, "the runner to go round", func() bool { return rounds() > from+20 })
			mu.Lock()
			defer mu.Unlock()
			if most != tc.want {
				t.Fatalf("%d tasks ran at once, want %d", most, tc.want)
			}
		})
	}
}

// TestRunnerDrainsBacklogWithoutPolls: a backlog much larger than what one
// lease takes (2×Workers) is worked off lease after lease as outcomes are
// recorded, not one lease per poll. The poll here never fires.
func TestRunnerDrainsBacklogWithoutPolls(t *testing.T) {
	st := &fakeState{tasks: map[uint64]fsm.Task{}}
	for id := uint64(1); id <= 64; id++ {
		st.tasks[id] = fsm.Task{ID: id, Type: "test", Target: "complete", State: fsm.TaskPending}
	}
	h := fakeHandler{RunFn: func(_ context.Context, tk fsm.Task) (*tasks.Completion, error) {
		return &tasks.Completion{Type: fsm.CmdTaskDone, Payload: fsm.TaskDone{ID: tk.ID, Node: "n1"}}, nil
	}}
	r, err := tasks.New(tasks.Config{ID: "n1", Workers: 4, Lease: time.Minute, Poll: time.Hour,
		Handlers: []tasks.Handler{h}, Ready: func() bool { return true }, State: st,
		Proposer: &queueProposer{st: st}, Uploads: noUploads{}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)
	waitFor(t, "the backlog to drain", func() bool { st.mu.Lock(); defer st.mu.Unlock(); return len(st.tasks) == 0 })
}
