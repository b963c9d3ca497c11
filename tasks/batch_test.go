package tasks_test

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/consensus"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/tasks"
)

// batchHandler is a tasks.Batcher of type "bulk".
type batchHandler struct {
	size, parallel int
	prefer         func(fsm.Task) bool
	run            func(ctx context.Context, t fsm.Task) (*tasks.Completion, error)
}

func (batchHandler) Type() string             { return "bulk" }
func (h batchHandler) BatchSize() int         { return h.size }
func (h batchHandler) Parallel() int          { return h.parallel }
func (h batchHandler) Prefer(t fsm.Task) bool { return h.prefer == nil || h.prefer(t) }
func (h batchHandler) Run(ctx context.Context, t fsm.Task) (*tasks.Completion, error) {
	return h.run(ctx, t)
}

// countingProposer counts proposals: an ApplyAll (one group-commit entry)
// or an Apply outside one.
type countingProposer struct {
	*queueProposer
	mu      sync.Mutex
	entries int
	sizes   []int
}

func (p *countingProposer) Apply(ctx context.Context, t fsm.CommandType, payload, out any) error {
	p.mu.Lock()
	p.entries++
	p.mu.Unlock()
	return p.queueProposer.Apply(ctx, t, payload, out)
}

func (p *countingProposer) ApplyAll(ctx context.Context, ops []consensus.Op) []error {
	p.mu.Lock()
	p.entries++
	p.sizes = append(p.sizes, len(ops))
	p.mu.Unlock()
	return p.queueProposer.ApplyAll(ctx, ops)
}

// TestBatcherTasksLeasedAndRecordedInBatches: 300 tasks of a Batcher cost
// one proposal per batch of 50 (its outcomes and the next lease together),
// not a lease and an outcome per few tasks; at most Parallel run at once;
// a failed task is recorded as failed and runs again.
func TestBatcherTasksLeasedAndRecordedInBatches(t *testing.T) {
	st := &fakeState{tasks: map[uint64]fsm.Task{}}
	const n = 300
	for id := uint64(1); id <= n; id++ {
		st.tasks[id] = fsm.Task{ID: id, Type: "bulk", State: fsm.TaskPending}
	}
	p := &countingProposer{queueProposer: &queueProposer{st: st}}
	var mu sync.Mutex
	running, most := 0, 0
	failed := map[uint64]bool{}
	h := batchHandler{size: 50, parallel: 4, run: func(ctx context.Context, tk fsm.Task) (*tasks.Completion, error) {
		mu.Lock()
		defer mu.Unlock()
		running++
		most = max(most, running)
		defer func() { running-- }()
		if tk.ID%100 == 0 && !failed[tk.ID] {
			failed[tk.ID] = true
			return nil, errors.New("copy failed")
		}
		return nil, nil
	}}
	r, err := tasks.New(tasks.Config{ID: "n1", Workers: 4, Lease: 3 * time.Second, Poll: 2 * time.Millisecond, Handlers: []tasks.Handler{h},
		Ready: func() bool { return true }, State: st, Proposer: p, Uploads: noUploads{}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)
	waitFor(t, "every task done", func() bool { return len(st.Tasks("")) == 0 })
	p.mu.Lock()
	defer p.mu.Unlock()
	// 300 tasks in batches of 50: 6 leases, each batch's outcomes go with
	// the next lease; the 3 failed tasks need a few more. The runner
	// before batching spent ~70 (a lease per 4-8 tasks, outcomes a few at
	// a time).
	if p.entries > n/50+6 {
		t.Fatalf("%d proposals for %d tasks (ApplyAll sizes %v), want ≤ %d", p.entries, n, p.sizes, n/50+6)
	}
	if most > 4 {
		t.Fatalf("%d tasks ran at once, want ≤ 4", most)
	}
	if len(failed) != 3 {
		t.Fatalf("%d tasks failed once, want 3", len(failed))
	}
	t.Logf("%d proposals, ApplyAll sizes %v", p.entries, p.sizes)
}

// TestBatcherPrefersItsTasks: a node leases the tasks it prefers and
// leaves the others to members that prefer them, until they waited
// tasks.PreferWait.
func TestBatcherPrefersItsTasks(t *testing.T) {
	st := &fakeState{tasks: map[uint64]fsm.Task{}}
	now := time.Now().UnixMilli()
	for id := uint64(1); id <= 20; id++ {
		st.tasks[id] = fsm.Task{ID: id, Type: "bulk", State: fsm.TaskPending, NextAttempt: now}
	}
	p := &queueProposer{st: st}
	var mu sync.Mutex
	var ran []uint64
	h := batchHandler{size: 8, parallel: 2, prefer: func(tk fsm.Task) bool { return tk.ID%2 == 0 },
		run: func(ctx context.Context, tk fsm.Task) (*tasks.Completion, error) {
			mu.Lock()
			ran = append(ran, tk.ID)
			mu.Unlock()
			return nil, nil
		}}
	r, err := tasks.New(tasks.Config{ID: "n1", Workers: 4, Lease: 3 * time.Second, Poll: 2 * time.Millisecond, Handlers: []tasks.Handler{h},
		Ready: func() bool { return true }, State: st, Proposer: p, Uploads: noUploads{}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)
	waitFor(t, "preferred tasks done", func() bool { return len(st.Tasks("")) == 10 })
	time.Sleep(200 * time.Millisecond) // long enough for a wrong lease to show
	mu.Lock()
	for _, id := range ran {
		if id%2 != 0 {
			t.Errorf("ran task %d it does not prefer before it waited", id)
		}
	}
	mu.Unlock()
	if got := len(st.Tasks("")); got != 10 {
		t.Fatalf("%d tasks left, want the 10 not preferred", got)
	}
}

// TestBatcherLostLeaseCancelsAndRecordsNothing: a task of a running batch
// whose lease another node took over is cancelled at the next renewal, and
// its outcome is not recorded; the rest of the batch is.
func TestBatcherLostLeaseCancelsAndRecordsNothing(t *testing.T) {
	st := &fakeState{tasks: map[uint64]fsm.Task{}}
	for id := uint64(1); id <= 3; id++ {
		st.tasks[id] = fsm.Task{ID: id, Type: "bulk", State: fsm.TaskPending}
	}
	p := &queueProposer{st: st}
	cancelled := make(chan struct{})
	h := batchHandler{size: 8, parallel: 3, run: func(ctx context.Context, tk fsm.Task) (*tasks.Completion, error) {
		if tk.ID != 2 {
			return nil, nil
		}
		// Another node takes task 2 over while it runs here.
		st.mu.Lock()
		x := st.tasks[2]
		x.LeaseHolder = "n2"
		st.tasks[2] = x
		st.mu.Unlock()
		<-ctx.Done()
		close(cancelled)
		return nil, ctx.Err()
	}}
	r, err := tasks.New(tasks.Config{ID: "n1", Workers: 4, Lease: 600 * time.Millisecond, Poll: 2 * time.Millisecond, Handlers: []tasks.Handler{h},
		Ready: func() bool { return true }, State: st, Proposer: p, Uploads: noUploads{}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the task whose lease was lost is still running")
	}
	waitFor(t, "the rest of the batch recorded", func() bool { return len(st.Tasks("")) == 1 })
	time.Sleep(50 * time.Millisecond) // long enough for a wrong record to show
	for _, x := range p.applied() {
		if f, ok := x.(fsm.TaskFail); ok && f.ID == 2 {
			t.Fatalf("outcome of the lost task recorded: %+v", f)
		}
		if d, ok := x.(fsm.TaskDone); ok && d.ID == 2 {
			t.Fatalf("outcome of the lost task recorded: %+v", d)
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if tk := st.tasks[2]; tk.LeaseHolder != "n2" {
		t.Fatalf("task 2 held by %q, want n2's", tk.LeaseHolder)
	}
}

// TestGuardStall: a watched copy may run as long as bytes move, and ends
// (cause ErrStalled) once none moved for the idle time.
func TestGuardStall(t *testing.T) {
	pr, pw := io.Pipe()
	stall, ctx, stop := tasks.GuardStall(context.Background(), 100*time.Millisecond)
	defer stop()
	r := stall.Reader(pr)
	go func() {
		for range 6 { // 300 ms of trickle: longer than idle, never idle
			_, _ = pw.Write([]byte("x"))
			time.Sleep(50 * time.Millisecond)
		}
		// then nothing more: the reader blocks, the guard fires
	}()
	buf := make([]byte, 1)
	for range 6 {
		if _, err := r.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	if ctx.Err() != nil {
		t.Fatalf("guard fired while bytes moved: %v", context.Cause(ctx))
	}
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("guard did not fire after the copy stalled")
	}
	err := tasks.WithStall(ctx, ctx.Err())
	if !errors.Is(err, tasks.ErrStalled) || !errors.Is(err, osprey.ErrUnavailable) {
		t.Fatalf("cause %v", err)
	}
	pw.Close()
}
