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
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
)

// State is the part of the FSM the runner reads.
type State interface {
	ClusterID() string
	RunnableTasks(now int64, types map[string]bool, limit int) []fsm.Task
	Tasks(state fsm.TaskState) []fsm.Task
	Content(id osprey.UID) (fsm.Content, bool)
}

// Proposer proposes commands and makes local reads linearizable.
type Proposer interface {
	Apply(ctx context.Context, t fsm.CommandType, payload, out any) error
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
	// Runs counts attempts by type and outcome; optional.
	Runs *prometheus.CounterVec
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Validate reports a missing dependency or a bad setting.
func (c Config) Validate() error {
	switch {
	case c.ID == "":
		return errors.New("tasks: ID is required")
	case c.Ready == nil || c.State == nil || c.Proposer == nil || c.Uploads == nil:
		return errors.New("tasks: Ready, State, Proposer and Uploads are required")
	case c.Workers < 1 || c.Lease < 300*time.Millisecond || c.Poll <= 0:
		return errors.New("tasks: workers, lease (≥ 300ms) and poll must be positive")
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
func (r *Runner) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait() // every task goroutine ends before Run returns
	handlers := map[string]Handler{}
	types := map[string]bool{}
	for _, h := range r.cfg.Handlers {
		handlers[h.Type()] = h
		types[h.Type()] = true
	}
	var (
		mu      sync.Mutex
		running = map[uint64]bool{}
	)
	t := time.NewTicker(r.cfg.Poll)
	defer t.Stop()
	// wake lets a finished task start the next one at once instead of
	// waiting for the next poll.
	wake := make(chan struct{}, 1)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wake:
		}
		if r.cfg.State.ClusterID() == "" || !r.cfg.Ready() {
			continue
		}
		// Uploads come first: while they arrive, background work runs on a
		// quarter of the workers and catches up when they stop. Repairs are
		// exempt: restoring redundancy matters more than upload speed.
		light := r.cfg.Workers
		if time.Since(r.cfg.Uploads.LastUpload()) < time.Second {
			light = max(1, light/4)
		}
		mu.Lock()
		inFlight := len(running)
		mu.Unlock()
		if inFlight >= r.cfg.Workers {
			continue
		}
		now := time.Now().UnixMilli()
		var ids []uint64
		for _, task := range r.cfg.State.RunnableTasks(now, types, 64) {
			mu.Lock()
			busy := running[task.ID]
			mu.Unlock()
			if busy || !r.shouldTake(task, now) {
				continue
			}
			if task.Type != fsm.TaskRepair && inFlight+len(ids) >= light {
				continue
			}
			ids = append(ids, task.ID)
			if inFlight+len(ids) >= r.cfg.Workers {
				break
			}
		}
		if len(ids) == 0 {
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
		for _, task := range res.Tasks {
			mu.Lock()
			running[task.ID] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.runTask(ctx, handlers[task.Type], task)
				mu.Lock()
				delete(running, task.ID)
				mu.Unlock()
				select {
				case wake <- struct{}{}:
				default:
				}
			}()
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

// runTask runs one leased task, renewing its lease while it runs, and
// records the outcome through raft.
func (r *Runner) runTask(base context.Context, h Handler, t fsm.Task) {
	ctx, cancel := context.WithCancel(base)
	defer cancel()
	renewDone := make(chan struct{})
	go func() {
		defer close(renewDone)
		tick := time.NewTicker(r.cfg.Lease / 3)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			var res fsm.TaskLeaseResult
			rctx, rcancel := context.WithTimeout(ctx, r.cfg.Lease/3)
			err := r.cfg.Proposer.Apply(rctx, fsm.CmdTaskLease, fsm.TaskLease{Node: osprey.NodeID(r.cfg.ID), IDs: []uint64{t.ID},
				Now: time.Now().UnixMilli(), LeaseMillis: r.cfg.Lease.Milliseconds()}, &res)
			rcancel()
			if err == nil && len(res.Tasks) == 0 {
				r.log.Warn("task lease lost", "task", t.ID, "type", t.Type)
				cancel()
				return
			}
		}
	}()
	start := time.Now()
	comp, err := h.Run(ctx, t)
	cancel()
	<-renewDone
	actx, acancel := context.WithTimeout(base, 10*time.Second)
	defer acancel()
	now := time.Now().UnixMilli()
	switch {
	case err != nil:
		r.runs.WithLabelValues(t.Type, "error").Inc()
		fail := fsm.TaskFail{ID: t.ID, Node: osprey.NodeID(r.cfg.ID), Error: err.Error(), Now: now, Permanent: IsPermanent(err)}
		if aerr := r.cfg.Proposer.Apply(actx, fsm.CmdTaskFail, fail, nil); aerr != nil && base.Err() == nil {
			r.log.Warn("recording task failure", "task", t.ID, "err", aerr)
		}
		r.log.Info("task failed", "task", t.ID, "type", t.Type, "attempt", t.Attempts, "err", err)
	case comp != nil:
		r.runs.WithLabelValues(t.Type, "ok").Inc()
		if aerr := r.cfg.Proposer.Apply(actx, comp.Type, comp.Payload, nil); aerr != nil && base.Err() == nil {
			r.log.Warn("recording task completion", "task", t.ID, "err", aerr)
		}
	default:
		r.runs.WithLabelValues(t.Type, "ok").Inc()
		if aerr := r.cfg.Proposer.Apply(actx, fsm.CmdTaskDone, fsm.TaskDone{ID: t.ID, Node: osprey.NodeID(r.cfg.ID), Now: now}, nil); aerr != nil && base.Err() == nil {
			r.log.Warn("recording task completion", "task", t.ID, "err", aerr)
		}
	}
	r.log.Debug("task finished", "task", t.ID, "type", t.Type, "dur", time.Since(start))
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
