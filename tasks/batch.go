package tasks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/consensus"
	"github.com/osprey-storage/osprey/fsm"
)

// Batcher is a Handler whose tasks come by the thousand (a repair per
// copy a lost member held). The runner does not lease and record them one
// by one: it leases up to BatchSize of them in one command, runs them
// Parallel at a time, and records all their outcomes together with the
// lease of the next batch in one ApplyAll (one Raft entry: a CmdBatch of
// the completions, TaskFails and the TaskLease). Each task is still run
// and completed by its own command, so the log holds nothing a build
// without batching could not apply.
type Batcher interface {
	Handler
	// BatchSize caps the tasks leased and recorded together (≤ 126, so a
	// batch, a lease renewal and the next lease fit one group-commit
	// entry).
	BatchSize() int
	// Parallel caps the tasks of a batch running at once.
	Parallel() int
	// Prefer reports whether this node is a good place to run t (it holds
	// a surviving copy, so it reads locally). A node takes tasks it does
	// not prefer only once they waited PreferWait, so members split the
	// work by what they hold instead of racing for the same tasks.
	Prefer(t fsm.Task) bool
}

// PreferWait is how long a runnable batched task waits for a node that
// prefers it before any node takes it.
const PreferWait = 3 * time.Second

// CopyMinTime and CopyFloorRate bound a background copy between members
// (CopyDeadline); CopyMinTime is also how long a streamed copy may make no
// progress (GuardStall). Variables for the tests.
var (
	CopyMinTime   = 30 * time.Second
	CopyFloorRate = int64(4 << 20) // bytes a second
)

// CopyDeadline bounds one background transfer of size bytes held in
// memory (a chunk copy of a repair or rebalance): CopyMinTime plus the
// size at CopyFloorRate. A member that accepts a transfer and then stops
// reading or answering (a paused or hung process, which the kernel keeps
// accepting connections for) would otherwise hold the task, whose lease
// the runner keeps renewing, and the batch it is in, until it came back;
// bounded, the task fails and is retried, or the next candidate is tried.
func CopyDeadline(size int64) time.Duration {
	return CopyMinTime + time.Duration(float64(size)/float64(CopyFloorRate)*float64(time.Second))
}

// ErrStalled ends a streamed copy that made no progress for CopyMinTime.
var ErrStalled = errors.New("the copy made no progress")

// GuardStall watches a streamed background copy through its source, read
// through Stall.Reader: the returned context ends (cause ErrStalled, an
// osprey.ErrUnavailable) once no byte was read for idle, whether the
// source stopped sending or the destination stopped taking (the copy then
// stops reading its source). Unlike a deadline it allows any duration
// while bytes move (a throttled rebalance, a large object). The caller
// MUST call stop.
func GuardStall(ctx context.Context, idle time.Duration) (*Stall, context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	g := &Stall{}
	g.last.Store(time.Now().UnixNano())
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(max(idle/4, time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case now := <-t.C:
				if now.Sub(time.Unix(0, g.last.Load())) >= idle {
					cancel(fmt.Errorf("%w: %w for %s", osprey.ErrUnavailable, ErrStalled, idle))
					return
				}
			}
		}
	}()
	var once sync.Once
	return g, ctx, func() { once.Do(func() { close(done); cancel(nil) }) }
}

// WithStall names the stall as the cause of err when the copy watched by
// ctx (GuardStall) ended for it: the copy itself reports only that its
// context was canceled.
func WithStall(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); err != nil && errors.Is(cause, ErrStalled) && !errors.Is(err, ErrStalled) {
		return fmt.Errorf("%w (%w)", cause, err)
	}
	return err
}

// Stall is a GuardStall watch.
type Stall struct {
	last atomic.Int64 // UnixNano of the last read that returned bytes
}

// Reader returns r, its reads counted as the copy's progress.
func (s *Stall) Reader(r io.Reader) io.Reader { return stallReader{s, r} }

type stallReader struct {
	s *Stall
	r io.Reader
}

func (s stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.s.last.Store(time.Now().UnixNano())
	}
	return n, err
}

// maxBatchSize keeps a batch's outcomes, the renewal of the running batch
// and the next lease within one group-commit entry (consensus' default
// MaxBatch is 128 commands).
const maxBatchSize = 126

// runBatches leases, runs and records b's tasks in batches until ctx
// ends. It works one batch ahead: while a batch runs, one proposal records
// the outcomes of the batch before, renews the running batch's leases and
// leases the next batch, so recording never holds the copies up. Outcomes
// that could not be recorded (no leader for a moment) go with the next
// proposal, a few times; after that their leases expire and the tasks
// (idempotent) run again.
func (r *Runner) runBatches(ctx context.Context, b Batcher) {
	size := min(max(b.BatchSize(), 1), maxBatchSize)
	types := map[string]bool{b.Type(): true}
	tick := time.NewTicker(r.cfg.Poll)
	defer tick.Stop()
	var pending []pendingOp // outcomes not recorded yet
	var next []fsm.Task     // leased, not run yet
	for {
		// Fresh outcomes and a leased batch go on at once; with neither,
		// or outcomes that failed to record, wait a poll.
		if len(next) == 0 && (len(pending) == 0 || pending[0].tries > 0) {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
		if ctx.Err() != nil {
			return
		}
		if r.cfg.State.ClusterID() == "" || !r.cfg.Ready() {
			// (A leased batch left here expires and runs again later.)
			next = nil
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			continue
		}
		cur := next
		done := make(chan proposed, 1)
		go func(p []pendingOp) { done <- r.propose(ctx, b, types, size, p, cur) }(pending)
		pending = nil
		var ran []consensus.Op
		if len(cur) > 0 {
			ran = r.runBatch(ctx, b, cur)
		}
		res := <-done
		next = res.leased
		pending = res.retry
		for _, op := range ran {
			pending = append(pending, pendingOp{op: op})
		}
	}
}

// proposed is what one proposal of runBatches achieved.
type proposed struct {
	leased []fsm.Task  // the next batch
	retry  []pendingOp // outcomes to record again
}

// propose records outcomes, renews the leases of the running batch and
// leases the next one, in one ApplyAll.
func (r *Runner) propose(ctx context.Context, b Batcher, types map[string]bool, size int, pending []pendingOp, running []fsm.Task) proposed {
	now := time.Now().UnixMilli()
	ops := make([]consensus.Op, 0, len(pending)+2)
	for _, p := range pending {
		ops = append(ops, p.op)
	}
	if len(running) > 0 {
		// Leased a batch ago: renewed now so a slow batch before it cannot
		// let them expire (runBatch renews them from here on).
		ids := make([]uint64, len(running))
		for i, t := range running {
			ids[i] = t.ID
		}
		ops = append(ops, consensus.Op{Type: fsm.CmdTaskLease, Payload: fsm.TaskLease{Node: osprey.NodeID(r.cfg.ID), IDs: ids,
			Now: now, LeaseMillis: r.cfg.Lease.Milliseconds()}})
	}
	skip := make(map[uint64]bool, len(running))
	for _, t := range running {
		skip[t.ID] = true
	}
	ids := r.pickBatch(b, types, size, now, skip)
	var res fsm.TaskLeaseResult
	if len(ids) > 0 {
		ops = append(ops, consensus.Op{Type: fsm.CmdTaskLease, Out: &res,
			Payload: fsm.TaskLease{Node: osprey.NodeID(r.cfg.ID), IDs: ids, Now: now, LeaseMillis: r.cfg.Lease.Milliseconds()}})
	}
	if len(ops) == 0 {
		return proposed{}
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	errs := r.cfg.Proposer.ApplyAll(actx, ops)
	cancel()
	var out proposed
	for i, p := range pending {
		switch {
		case errs[i] == nil:
		case isDomainError(errs[i]) || p.tries >= 3 || ctx.Err() != nil:
			r.log.Debug("recording task outcome", "type", b.Type(), "err", errs[i])
		default:
			out.retry = append(out.retry, pendingOp{op: p.op, tries: p.tries + 1})
		}
	}
	if len(ids) > 0 {
		if err := errs[len(ops)-1]; err != nil {
			r.log.Debug("task lease failed", "type", b.Type(), "err", err)
		} else {
			out.leased = res.Tasks
		}
	}
	return out
}

// pendingOp is an outcome waiting to be recorded and how often recording
// it failed.
type pendingOp struct {
	op    consensus.Op
	tries int
}

// isDomainError reports an error the FSM returned (the lease was lost,
// the task is gone): recording the outcome again cannot help.
func isDomainError(err error) bool {
	return errors.Is(err, fsm.ErrConflict) || errors.Is(err, fsm.ErrNotFound) || errors.Is(err, fsm.ErrInvalid)
}

// pickBatch chooses up to size runnable tasks: the ones this node prefers
// first, then ones that waited PreferWait for a node that prefers them.
func (r *Runner) pickBatch(b Batcher, types map[string]bool, size int, now int64, skip map[uint64]bool) []uint64 {
	var ids, late []uint64
	for _, t := range r.cfg.State.RunnableTasks(now, types, 8*size) {
		switch {
		case skip[t.ID]:
		case b.Prefer(t):
			ids = append(ids, t.ID)
		case t.State != fsm.TaskPending || now-t.NextAttempt >= PreferWait.Milliseconds():
			late = append(late, t.ID)
		}
		if len(ids) >= size {
			return ids
		}
	}
	return append(ids, late[:min(len(late), size-len(ids))]...)
}

// runBatch runs a leased batch, Parallel tasks at a time, renewing the
// leases of the tasks still running every third of the lease, and returns
// the outcomes of the tasks whose lease it kept.
func (r *Runner) runBatch(ctx context.Context, b Batcher, batch []fsm.Task) []consensus.Op {
	type slot struct {
		ctx    context.Context
		cancel context.CancelFunc
		done   bool
		lost   bool
		op     consensus.Op
	}
	var mu sync.Mutex
	slots := make([]*slot, len(batch))
	for i := range batch {
		c, cancel := context.WithCancel(ctx)
		slots[i] = &slot{ctx: c, cancel: cancel}
	}
	defer func() {
		for _, s := range slots {
			s.cancel()
		}
	}()
	stop := make(chan struct{})
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		tick := time.NewTicker(r.cfg.Lease / 3)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			var ids []uint64
			mu.Lock()
			for i, s := range slots {
				if !s.done {
					ids = append(ids, batch[i].ID)
				}
			}
			mu.Unlock()
			if len(ids) == 0 {
				continue
			}
			res, err := r.renewLeases(ctx, ids)
			if err != nil {
				r.log.Debug("task lease renewal failed", "type", b.Type(), "err", err)
				continue
			}
			kept := map[uint64]bool{}
			for _, t := range res.Tasks {
				kept[t.ID] = true
			}
			mu.Lock()
			for i, s := range slots {
				if !s.done && !kept[batch[i].ID] {
					r.log.Warn("task lease lost", "task", batch[i].ID)
					s.lost = true
					s.cancel()
				}
			}
			mu.Unlock()
		}
	}()
	sem := make(chan struct{}, max(b.Parallel(), 1))
	var wg sync.WaitGroup
	for i, t := range batch {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			start := time.Now()
			comp, err := b.Run(slots[i].ctx, t)
			op := r.outcome(t, comp, err)
			mu.Lock()
			slots[i].done, slots[i].op = true, op
			mu.Unlock()
			r.log.Debug("task finished", "task", t.ID, "type", t.Type, "dur", time.Since(start))
		}()
	}
	wg.Wait()
	close(stop)
	<-renewed
	ops := make([]consensus.Op, 0, len(batch))
	for _, s := range slots {
		if !s.lost && ctx.Err() == nil {
			ops = append(ops, s.op)
		}
	}
	return ops
}
