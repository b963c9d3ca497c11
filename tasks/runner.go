package tasks

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/consensus"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
)

// State is the part of the FSM the runner reads.
type State interface {
	ClusterID() string
	RunnableTasks(now int64, types map[string]bool, limit int) []fsm.Task
	// LiveTasks counts the pending and leased tasks of a type,
	// cluster-wide.
	LiveTasks(typ string) int
	Tasks(state fsm.TaskState) []fsm.Task
	Content(id osprey.UID) (fsm.Content, bool)
}

// Proposer proposes commands and makes local reads linearizable.
type Proposer interface {
	Apply(ctx context.Context, t fsm.CommandType, payload, out any) error
	// ApplyAll proposes commands together (one Raft entry where it can)
	// and returns one error per command.
	ApplyAll(ctx context.Context, ops []consensus.Op) []error
	ReadBarrier(ctx context.Context) error
}

// Uploads reports upload activity: background work yields to uploads.
type Uploads interface {
	LastUpload() time.Time
}

// Config configures a Runner.
type Config struct {
	// ID is this node's member id (the lease holder).
	ID string
	// Workers bounds the tasks this node runs at once.
	Workers int
	// Lease is how long a node holds a task before others may take it
	// over; the holder renews it every third of that while working.
	Lease time.Duration
	// Poll is how often the runner looks for runnable tasks.
	Poll time.Duration
	// Handlers run the task types this node handles.
	Handlers []Handler
	// Ready reports whether this node may lease tasks yet (it has its
	// member record and uid generator).
	Ready    func() bool
	State    State
	Proposer Proposer
	Uploads  Uploads
	// YieldBacklog bounds the background work that yields to uploads:
	// while uploads arrive, tasks run on a quarter of the workers only as
	// long as fewer than this many of the runner's tasks are live
	// cluster-wide; past it they run on every worker again, so under a
	// sustained upload load the staged-but-not-tiered backlog grows only
	// by what full-speed background work cannot keep up with. 0 means
	// DefaultYieldBacklog.
	YieldBacklog int
	// Runs counts attempts by type and outcome; optional.
	Runs *prometheus.CounterVec
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// DefaultYieldBacklog is Config.YieldBacklog's default: a few seconds of
// small-file uploads at this machine's rate.
const DefaultYieldBacklog = 8192

// Validate reports a missing dependency or a bad setting.
func (c Config) Validate() error {
	switch {
	case c.ID == "":
		return errors.New("tasks: ID is required")
	case c.Ready == nil || c.State == nil || c.Proposer == nil || c.Uploads == nil:
		return errors.New("tasks: Ready, State, Proposer and Uploads are required")
	case c.Workers < 1 || c.Lease < 300*time.Millisecond || c.Poll <= 0 || c.YieldBacklog < 0:
		return errors.New("tasks: workers, lease (≥ 300ms) and poll must be positive, the yield backlog not negative")
	}
	return nil
}

// Runner leases and runs background tasks and serves the task API
// (httpapi.Tasks). Safe for concurrent use.
type Runner struct {
	cfg  Config
	log  *slog.Logger
	runs *prometheus.CounterVec
}

// New returns a Runner; Run starts its loop.
func New(cfg Config) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.Default()
	}
	if cfg.YieldBacklog == 0 {
		cfg.YieldBacklog = DefaultYieldBacklog
	}
	r := &Runner{cfg: cfg, log: lg, runs: cfg.Runs}
	if r.runs == nil {
		r.runs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "osprey_task_runs_total"}, []string{"type", "outcome"})
	}
	return r, nil
}

// Handler runs one type of background task. Handlers are registered
// explicitly in Config.Handlers; adding one needs no other change.
type Handler interface {
	// Type is the task type handled (fsm.TaskTier, ...).
	Type() string
	// Run does the work. It must be idempotent: a task may run again after
	// a crash or an expired lease. It returns the command that completes
	// the task, or nil for a plain TaskDone. An error wrapped with
	// Permanent marks the task dead at once; others are retried with
	// backoff.
	Run(ctx context.Context, t fsm.Task) (*Completion, error)
}

// Completion is a command that completes a task together with the state
// change it produced (for example TierDone).
type Completion struct {
	Type    fsm.CommandType
	Payload any
}

type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent marks err as not worth retrying.
func Permanent(err error) error { return permanentError{err} }

// IsPermanent reports whether err (or one it wraps) was marked Permanent.
func IsPermanent(err error) bool {
	var pe permanentError
	return errors.As(err, &pe)
}

// Run leases runnable tasks this node can handle and runs them, until ctx
// ends; it returns once every task it started has finished.
//
// It spends as few Raft entries as it can: it leases a backlog of up to
// twice its workers in one entry (and only once the backlog ran down to
// half), renews the leases of everything it holds in one entry per
// renewal period, and records the outcomes of tasks that finish within a
// few milliseconds of each other in one entry (see completer). Handlers
// that implement Batcher run apart, in batches (runBatches).
func (r *Runner) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait() // every task goroutine ends before Run returns
	handlers := map[string]Handler{}
	types := map[string]bool{}
	for _, h := range r.cfg.Handlers {
		if b, ok := h.(Batcher); ok {
			// Tasks that come by the thousand run in batches, apart.
			wg.Add(1)
			go func() { defer wg.Done(); r.runBatches(ctx, b) }()
			continue
		}
		handlers[h.Type()] = h
		types[h.Type()] = true
	}
	comp := &completer{r: r, wake: make(chan struct{}, 1)}
	wg.Add(1)
	go func() { defer wg.Done(); comp.run(ctx) }()
	hs := &held{tasks: map[uint64]*heldTask{}}
	wg.Add(1)
	go func() { defer wg.Done(); r.renew(ctx, hs) }()
	t := time.NewTicker(r.cfg.Poll)
	defer t.Stop()
	// wake lets a finished task start the next one at once instead of
	// waiting for the next poll.
	wake := make(chan struct{}, 1)
	wake <- struct{}{} // the first round runs at once, not a poll later
	for {
		woken := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wake:
			woken = true
		}
		if r.cfg.State.ClusterID() == "" || !r.cfg.Ready() {
			continue
		}
		// Uploads come first: while they arrive, background work runs on a
		// quarter of the workers and leases at the poll's pace (at most
		// 2×Workers tasks a poll), and catches up when they stop, or at
		// once when its backlog passed YieldBacklog. Repairs are exempt:
		// restoring redundancy matters more than upload speed.
		light := r.cfg.Workers
		yielding := time.Since(r.cfg.Uploads.LastUpload()) < time.Second && r.backlog(types) < r.cfg.YieldBacklog
		if yielding {
			light = max(1, light/4)
		}
		start := func() {
			for _, h := range hs.startable(light, r.cfg.Workers) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					kick := func() {
						select {
						case wake <- struct{}{}:
						default:
						}
					}
					// The worker is free once the task ran; its lease is
					// held (and renewed) until the outcome is recorded.
					// Both wake the loop: a backlog it holds is counted
					// until the outcome is recorded, and only then may it
					// lease more (without this wake, only at the next
					// poll: a node tiered at most 2×Workers files a poll,
					// 64 a second, even when idle).
					defer kick()
					defer hs.drop(h.task.ID)
					r.runTask(ctx, handlers[h.task.Type], h, comp, func() {
						hs.finished(h.task.ID)
						kick()
					})
				}()
			}
		}
		start()
		if hs.count() > r.cfg.Workers {
			continue // a backlog is still held: lease more when it ran down
		}
		if woken && yielding {
			continue // the next lease waits for the poll
		}
		now := time.Now().UnixMilli()
		want := 2*r.cfg.Workers - hs.count()
		var ids []uint64
		for _, task := range r.cfg.State.RunnableTasks(now, types, 64) {
			if hs.has(task.ID) || !r.shouldTake(task, now) {
				continue
			}
			ids = append(ids, task.ID)
			if len(ids) >= want {
				break
			}
		}
		// A finished task brings the next lease forward only for a queue
		// deep enough to fill it: a trickle of new tasks waits for the
		// poll and goes in one lease, not one lease per finished task.
		// A node holding nothing takes what is left at once, though: the
		// tail of a backlog (one or two tasks) would otherwise idle until
		// the poll.
		if len(ids) == 0 || woken && len(ids) < max(1, r.cfg.Workers/2) && hs.count() > 0 {
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var res fsm.TaskLeaseResult
		err := r.cfg.Proposer.Apply(lctx, fsm.CmdTaskLease, fsm.TaskLease{Node: osprey.NodeID(r.cfg.ID), IDs: ids, Now: now,
			LeaseMillis: r.cfg.Lease.Milliseconds()}, &res)
		cancel()
		if err != nil {
			r.log.Debug("task lease failed", "err", err)
			continue
		}
		hs.add(ctx, res.Tasks)
		start()
	}
}

// backlog counts the live tasks of types, cluster-wide.
func (r *Runner) backlog(types map[string]bool) int {
	n := 0
	for typ := range types {
		n += r.cfg.State.LiveTasks(typ)
	}
	return n
}

// heldTask is a task this node leased: waiting for a worker, running, or
// done and waiting for its outcome to be recorded.
type heldTask struct {
	task    fsm.Task
	running bool
	done    bool
	ctx     context.Context
	cancel  context.CancelFunc // ends the run when the lease is lost
}

// held is the set of tasks this node holds leases on, in lease order.
type held struct {
	mu    sync.Mutex
	tasks map[uint64]*heldTask
	order []uint64
}

func (h *held) add(ctx context.Context, ts []fsm.Task) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, t := range ts {
		if _, ok := h.tasks[t.ID]; ok {
			continue
		}
		c, cancel := context.WithCancel(ctx)
		h.tasks[t.ID] = &heldTask{task: t, ctx: c, cancel: cancel}
		h.order = append(h.order, t.ID)
	}
}

func (h *held) has(id uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.tasks[id]
	return ok
}

func (h *held) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.tasks)
}

// leased returns the tasks whose leases need renewing: waiting or
// running. A task that ran is left out: its outcome, recorded or about to
// be, ends the lease, and renewing could lease it again (TaskLease takes
// a runnable task) with nobody to run it.
func (h *held) leased() []uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []uint64
	for _, id := range h.order {
		if !h.tasks[id].done {
			out = append(out, id)
		}
	}
	return out
}

// drop forgets a task (finished, or its lease lost).
func (h *held) drop(id uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t, ok := h.tasks[id]; ok {
		t.cancel()
		delete(h.tasks, id)
		for i, x := range h.order {
			if x == id {
				h.order = append(h.order[:i], h.order[i+1:]...)
				break
			}
		}
	}
}

// finished marks a task that ran: its worker is free.
func (h *held) finished(id uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t, ok := h.tasks[id]; ok {
		t.running, t.done = false, true
	}
}

// lost handles tasks whose lease renewal failed: a waiting one is dropped,
// a running one cancelled (it drops itself when it returns).
func (h *held) lost(id uint64) {
	h.mu.Lock()
	t, ok := h.tasks[id]
	running := ok && t.running
	h.mu.Unlock()
	if !ok {
		return
	}
	if running {
		t.cancel()
		return
	}
	h.drop(id)
}

// startable marks and returns the waiting tasks that may start now:
// repairs while fewer than workers run, others while fewer than light.
func (h *held) startable(light, workers int) []*heldTask {
	h.mu.Lock()
	defer h.mu.Unlock()
	running := 0
	for _, t := range h.tasks {
		if t.running {
			running++
		}
	}
	var out []*heldTask
	for _, id := range h.order {
		t := h.tasks[id]
		if t.running || t.done || running >= workers || (t.task.Type != fsm.TaskRepair && running >= light) {
			continue
		}
		t.running = true
		running++
		out = append(out, t)
	}
	return out
}

// renew extends the leases of every held task, in one entry, every third
// of the lease; a task not renewed was taken over and is given up.
func (r *Runner) renew(ctx context.Context, hs *held) {
	tick := time.NewTicker(r.cfg.Lease / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		ids := hs.leased()
		if len(ids) == 0 {
			continue
		}
		res, err := r.renewLeases(ctx, ids)
		if err != nil {
			r.log.Debug("task lease renewal failed", "err", err)
			continue
		}
		kept := map[uint64]bool{}
		for _, t := range res.Tasks {
			kept[t.ID] = true
		}
		for _, id := range ids {
			if !kept[id] {
				r.log.Warn("task lease lost", "task", id)
				hs.lost(id)
			}
		}
	}
}

// shouldTake prefers tier tasks on nodes holding the content's chunks;
// any node takes one that waited a few seconds.
func (r *Runner) shouldTake(t fsm.Task, now int64) bool {
	if t.Type != fsm.TaskTier || t.State != fsm.TaskPending || now-t.NextAttempt > 3000 {
		return true
	}
	id, err := strconv.ParseUint(t.Target, 10, 64)
	if err != nil {
		return true
	}
	ct, ok := r.cfg.State.Content(osprey.UID(id))
	if !ok || len(ct.Chunks) == 0 {
		return true
	}
	for _, o := range ct.Chunks[0].Owners {
		if string(o) == r.cfg.ID {
			return true
		}
	}
	return false
}

// runTask runs one leased task and records the outcome through raft,
// together with other tasks' outcomes.
func (r *Runner) runTask(base context.Context, h Handler, ht *heldTask, outcomes *completer, ran func()) {
	t := ht.task
	start := time.Now()
	comp, err := h.Run(ht.ctx, t)
	ran()
	op := r.outcome(t, comp, err)
	if aerr := outcomes.record(base, op); aerr != nil && base.Err() == nil {
		r.log.Warn("recording task outcome", "task", t.ID, "type", t.Type, "err", aerr)
	}
	r.log.Debug("task finished", "task", t.ID, "type", t.Type, "dur", time.Since(start))
}

// outcome is the command that records a task's run: the handler's
// completion, a TaskDone, or a TaskFail for an error.
func (r *Runner) outcome(t fsm.Task, comp *Completion, err error) consensus.Op {
	now := time.Now().UnixMilli()
	switch {
	case err != nil:
		r.runs.WithLabelValues(t.Type, "error").Inc()
		r.log.Info("task failed", "task", t.ID, "type", t.Type, "attempt", t.Attempts, "err", err)
		return consensus.Op{Type: fsm.CmdTaskFail, Payload: fsm.TaskFail{ID: t.ID, Node: osprey.NodeID(r.cfg.ID), Error: err.Error(),
			Now: now, Permanent: IsPermanent(err)}}
	case comp != nil:
		r.runs.WithLabelValues(t.Type, "ok").Inc()
		return consensus.Op{Type: comp.Type, Payload: comp.Payload}
	}
	r.runs.WithLabelValues(t.Type, "ok").Inc()
	return consensus.Op{Type: fsm.CmdTaskDone, Payload: fsm.TaskDone{ID: t.ID, Node: osprey.NodeID(r.cfg.ID), Now: now}}
}

// completer records task outcomes in batches: an outcome waits while
// another batch is being recorded (or for at most linger), then goes out
// with everything that finished meanwhile, in one ApplyAll (one Raft entry
// on the leader, one request from a follower).
type completer struct {
	r    *Runner
	mu   sync.Mutex
	q    []*pendingOutcome
	wake chan struct{}
}

type pendingOutcome struct {
	op   consensus.Op
	done chan error
}

// linger is how long the first outcome of a batch waits for company (the
// task's worker is free meanwhile; only its lease waits).
const linger = 20 * time.Millisecond

// maxOutcomes caps one batch.
const maxOutcomes = 64

func (c *completer) record(ctx context.Context, op consensus.Op) error {
	p := &pendingOutcome{op: op, done: make(chan error, 1)}
	c.mu.Lock()
	c.q = append(c.q, p)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *completer) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			// Outcomes still queued are not recorded: their leases expire
			// and the tasks (idempotent) run again.
			return
		case <-c.wake:
		}
		t := time.NewTimer(linger)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		for c.flush(ctx) {
		}
	}
}

// flush records up to maxOutcomes queued outcomes and reports whether
// more are queued.
func (c *completer) flush(ctx context.Context) bool {
	c.mu.Lock()
	n := min(len(c.q), maxOutcomes)
	batch := c.q[:n]
	c.q = append([]*pendingOutcome(nil), c.q[n:]...)
	more := len(c.q) > 0
	c.mu.Unlock()
	if len(batch) == 0 {
		return false
	}
	ops := make([]consensus.Op, len(batch))
	for i, p := range batch {
		ops[i] = p.op
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	errs := c.r.cfg.Proposer.ApplyAll(actx, ops)
	for i, p := range batch {
		p.done <- errs[i]
	}
	return more
}

// --- task API ---

var _ httpapi.Tasks = (*Runner)(nil)

func taskInfo(t fsm.Task) httpapi.TaskInfo {
	ms := func(v int64) string {
		if v == 0 {
			return ""
		}
		return time.UnixMilli(v).UTC().Format(time.RFC3339Nano)
	}
	return httpapi.TaskInfo{ID: t.ID, Type: t.Type, Target: t.Target, State: string(t.State), Attempts: t.Attempts,
		LeaseHolder: string(t.LeaseHolder), LeaseExpiry: ms(t.LeaseExpiry), NextAttempt: ms(t.NextAttempt),
		LastError: t.LastError, CreatedAt: ms(t.CreatedAt)}
}

// ListTasks lists the task queue (linearizable).
func (r *Runner) ListTasks(ctx context.Context, state string) ([]httpapi.TaskInfo, error) {
	if err := r.cfg.Proposer.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	tasks := r.cfg.State.Tasks(fsm.TaskState(state))
	out := make([]httpapi.TaskInfo, len(tasks))
	for i, t := range tasks {
		out[i] = taskInfo(t)
	}
	return out, nil
}

// RetryTask moves a dead task back to pending.
func (r *Runner) RetryTask(ctx context.Context, id uint64) (httpapi.TaskInfo, error) {
	var t fsm.Task
	if err := r.cfg.Proposer.Apply(ctx, fsm.CmdTaskRetry, fsm.TaskRetry{ID: id, Now: time.Now().UnixMilli()}, &t); err != nil {
		return httpapi.TaskInfo{}, err
	}
	return taskInfo(t), nil
}

// renewLeases extends this node's leases on ids in one entry, waiting at most a
// third of the lease.
func (r *Runner) renewLeases(ctx context.Context, ids []uint64) (fsm.TaskLeaseResult, error) {
	var res fsm.TaskLeaseResult
	rctx, cancel := context.WithTimeout(ctx, r.cfg.Lease/3)
	defer cancel()
	err := r.cfg.Proposer.Apply(rctx, fsm.CmdTaskLease, fsm.TaskLease{Node: osprey.NodeID(r.cfg.ID), IDs: ids,
		Now: time.Now().UnixMilli(), LeaseMillis: r.cfg.Lease.Milliseconds()}, &res)
	return res, err
}
