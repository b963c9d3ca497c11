package node

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/backend"
	"github.com/osprey-storage/osprey/datapath"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
	"github.com/osprey-storage/osprey/ring"
)

// TaskHandler runs one type of background task. Handlers are registered
// explicitly in New; adding one needs no other change.
type TaskHandler interface {
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

// taskLoop leases runnable tasks this node can handle and runs them.
func (n *Node) taskLoop() {
	handlers := map[string]TaskHandler{}
	types := map[string]bool{}
	for _, h := range n.handlers {
		handlers[h.Type()] = h
		types[h.Type()] = true
	}
	var (
		mu      sync.Mutex
		running = map[uint64]bool{}
	)
	t := time.NewTicker(n.cfg.TaskPoll)
	defer t.Stop()
	// wake lets a finished task start the next one at once instead of
	// waiting for the next poll.
	wake := make(chan struct{}, 1)
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		case <-wake:
		}
		if n.fsm.ClusterID() == "" || n.gen.Load() == nil {
			continue
		}
		// Uploads come first: while they arrive, background work runs on a
		// quarter of the workers and catches up when they stop. Repairs are
		// exempt: restoring redundancy matters more than upload speed.
		light := n.cfg.TaskWorkers
		if time.Since(n.data.LastUpload()) < time.Second {
			light = max(1, light/4)
		}
		mu.Lock()
		inFlight := len(running)
		mu.Unlock()
		if inFlight >= n.cfg.TaskWorkers {
			continue
		}
		now := time.Now().UnixMilli()
		var ids []uint64
		for _, task := range n.fsm.RunnableTasks(now, types, 64) {
			mu.Lock()
			busy := running[task.ID]
			mu.Unlock()
			if busy || !n.shouldTake(task, now) {
				continue
			}
			if task.Type != fsm.TaskRepair && inFlight+len(ids) >= light {
				continue
			}
			ids = append(ids, task.ID)
			if inFlight+len(ids) >= n.cfg.TaskWorkers {
				break
			}
		}
		if len(ids) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
		var res fsm.TaskLeaseResult
		err := n.prop.Apply(ctx, fsm.CmdTaskLease, fsm.TaskLease{Node: osprey.NodeID(n.id), IDs: ids, Now: now,
			LeaseMillis: n.cfg.TaskLease.Milliseconds()}, &res)
		cancel()
		if err != nil {
			n.log.Debug("task lease failed", "err", err)
			continue
		}
		for _, task := range res.Tasks {
			mu.Lock()
			running[task.ID] = true
			mu.Unlock()
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				n.runTask(handlers[task.Type], task)
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
func (n *Node) shouldTake(t fsm.Task, now int64) bool {
	if t.Type != fsm.TaskTier || t.State != fsm.TaskPending || now-t.NextAttempt > 3000 {
		return true
	}
	id, err := strconv.ParseUint(t.Target, 10, 64)
	if err != nil {
		return true
	}
	ct, ok := n.fsm.Content(osprey.UID(id))
	if !ok || len(ct.Chunks) == 0 {
		return true
	}
	for _, o := range ct.Chunks[0].Owners {
		if string(o) == n.id {
			return true
		}
	}
	return false
}

// runTask runs one leased task, renewing its lease while it runs, and
// records the outcome through raft.
func (n *Node) runTask(h TaskHandler, t fsm.Task) {
	ctx, cancel := context.WithCancel(n.ctx)
	defer cancel()
	renewDone := make(chan struct{})
	go func() {
		defer close(renewDone)
		tick := time.NewTicker(n.cfg.TaskLease / 3)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			var res fsm.TaskLeaseResult
			rctx, rcancel := context.WithTimeout(ctx, n.cfg.TaskLease/3)
			err := n.prop.Apply(rctx, fsm.CmdTaskLease, fsm.TaskLease{Node: osprey.NodeID(n.id), IDs: []uint64{t.ID},
				Now: time.Now().UnixMilli(), LeaseMillis: n.cfg.TaskLease.Milliseconds()}, &res)
			rcancel()
			if err == nil && len(res.Tasks) == 0 {
				n.log.Warn("task lease lost", "task", t.ID, "type", t.Type)
				cancel()
				return
			}
		}
	}()
	start := time.Now()
	comp, err := h.Run(ctx, t)
	cancel()
	<-renewDone
	actx, acancel := context.WithTimeout(n.ctx, 10*time.Second)
	defer acancel()
	now := time.Now().UnixMilli()
	switch {
	case err != nil:
		n.taskRuns.WithLabelValues(t.Type, "error").Inc()
		var pe permanentError
		fail := fsm.TaskFail{ID: t.ID, Node: osprey.NodeID(n.id), Error: err.Error(), Now: now, Permanent: errors.As(err, &pe)}
		if aerr := n.prop.Apply(actx, fsm.CmdTaskFail, fail, nil); aerr != nil && n.ctx.Err() == nil {
			n.log.Warn("recording task failure", "task", t.ID, "err", aerr)
		}
		n.log.Info("task failed", "task", t.ID, "type", t.Type, "attempt", t.Attempts, "err", err)
	case comp != nil:
		n.taskRuns.WithLabelValues(t.Type, "ok").Inc()
		if aerr := n.prop.Apply(actx, comp.Type, comp.Payload, nil); aerr != nil && n.ctx.Err() == nil {
			n.log.Warn("recording task completion", "task", t.ID, "err", aerr)
		}
	default:
		n.taskRuns.WithLabelValues(t.Type, "ok").Inc()
		if aerr := n.prop.Apply(actx, fsm.CmdTaskDone, fsm.TaskDone{ID: t.ID, Node: osprey.NodeID(n.id), Now: now}, nil); aerr != nil && n.ctx.Err() == nil {
			n.log.Warn("recording task completion", "task", t.ID, "err", aerr)
		}
	}
	n.log.Debug("task finished", "task", t.ID, "type", t.Type, "dur", time.Since(start))
}

// --- tier ---

type tierHandler struct{ n *Node }

func (tierHandler) Type() string { return fsm.TaskTier }

func (h tierHandler) Run(ctx context.Context, t fsm.Task) (*Completion, error) {
	n := h.n
	id, err := osprey.ParseUID(t.Target)
	if err != nil {
		return nil, Permanent(fmt.Errorf("tier: bad target %q", t.Target))
	}
	ct, ok := n.fsm.Content(id)
	if !ok || ct.State != fsm.ContentStaged {
		return nil, nil // deleted, already tiered or failed: nothing to do
	}
	bucket, key := ct.Bucket, ct.Key
	if bucket == "" || key == "" {
		bucket, key = "unknown", ct.ID.String()
	}
	loc := fsm.Location{Bucket: bucket, Key: key}
	// The backends verify PutOptions.MD5 while the bytes stream and make
	// nothing visible on a mismatch, so the md5 is computed once, there.
	staged := n.data.OpenStaged(ctx, ct.Chunks, 0, ct.Size)
	defer staged.Close()
	if n.isLocalBackend() {
		loc.Nodes, err = n.tierLocal(ctx, ct, bucket, key, staged)
	} else if err = n.backend.EnsureBucket(ctx, bucket); err == nil {
		_, err = n.backend.Put(ctx, bucket, key, staged, ct.Size, backend.PutOptions{MD5: ct.MD5, ContentType: datapath.ContentType(key)})
	}
	if errors.Is(err, backend.ErrChecksum) {
		// The staged bytes are not what the client declared: mark the file
		// failed and keep the data for inspection.
		reason := fmt.Sprintf("md5 mismatch: the uploaded bytes do not hash to the declared %s (%v)", ct.MD5, err)
		n.log.Error("tier verification failed", "content", ct.ID, "reason", reason)
		return &Completion{fsm.CmdTierFailed, fsm.TierFailed{TaskID: t.ID, Node: osprey.NodeID(n.id), Content: ct.ID, Reason: reason, Now: time.Now().UnixMilli()}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tier content %s: %w", ct.ID, err)
	}
	n.tieredBytes.Add(float64(ct.Size))
	return &Completion{fsm.CmdTierDone, fsm.TierDone{TaskID: t.ID, Node: osprey.NodeID(n.id), Content: ct.ID, Location: loc, Now: time.Now().UnixMilli()}}, nil
}

// tierLocal copies the content to the local backends of `replicas` nodes
// (ring owners of the content id), reading the staged bytes once.
func (n *Node) tierLocal(ctx context.Context, ct fsm.Content, bucket, key string, src io.Reader) ([]osprey.NodeID, error) {
	r, err := n.place.Ring()
	if err != nil {
		return nil, err
	}
	owners := r.Owners(ring.ChunkKey(uint64(ct.ID), 0), min(n.place.Replicas(), r.Len()))
	pipes := make([]*io.PipeWriter, len(owners))
	writers := make([]io.Writer, len(owners))
	errs := make([]error, len(owners))
	var wg sync.WaitGroup
	for i, o := range owners {
		pr, pw := io.Pipe()
		pipes[i], writers[i] = pw, pw
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.data.PutObjectOn(ctx, o, bucket, key, pr, ct.Size, ct.MD5)
			pr.CloseWithError(errs[i]) // unblock the writer if this copy failed
		}()
	}
	_, cerr := io.Copy(io.MultiWriter(writers...), src)
	for _, pw := range pipes {
		pw.CloseWithError(cerr)
	}
	wg.Wait()
	if cerr != nil {
		return nil, cerr
	}
	var nodes []osprey.NodeID
	for i, o := range owners {
		if errs[i] != nil {
			if errors.Is(errs[i], backend.ErrChecksum) {
				return nil, errs[i]
			}
			return nil, fmt.Errorf("copy on %s: %w", o, errs[i])
		}
		nodes = append(nodes, osprey.NodeID(o))
	}
	return nodes, nil
}

// --- gc and delete ---

type gcHandler struct{ n *Node }

func (gcHandler) Type() string { return fsm.TaskGC }

func (h gcHandler) Run(ctx context.Context, t fsm.Task) (*Completion, error) {
	var p fsm.GCPayload
	if err := json.Unmarshal(t.Payload, &p); err != nil {
		return nil, Permanent(fmt.Errorf("gc: bad payload: %w", err))
	}
	return nil, h.n.data.DeleteChunks(ctx, p.Chunks)
}

type deleteHandler struct{ n *Node }

func (deleteHandler) Type() string { return fsm.TaskDelete }

func (h deleteHandler) Run(ctx context.Context, t fsm.Task) (*Completion, error) {
	n := h.n
	var p fsm.DeletePayload
	if err := json.Unmarshal(t.Payload, &p); err != nil {
		return nil, Permanent(fmt.Errorf("delete: bad payload: %w", err))
	}
	err := n.data.DeleteChunks(ctx, p.Content.Chunks)
	if loc := p.Content.Location; loc != nil {
		if len(loc.Nodes) > 0 {
			for _, o := range loc.Nodes {
				if rec, ok := n.fsm.Node(o); !ok || rec.Removed {
					continue
				}
				if derr := n.data.DeleteObjectOn(ctx, string(o), loc.Bucket, loc.Key); derr != nil && !errors.Is(derr, osprey.ErrNotFound) {
					err = errors.Join(err, derr)
				}
			}
		} else if derr := n.backend.Delete(ctx, loc.Bucket, loc.Key); derr != nil {
			err = errors.Join(err, derr)
		}
	}
	return nil, err
}

// --- webhook ---

type webhookHandler struct {
	n      *Node
	url    string
	secret []byte
	client *http.Client
}

func (webhookHandler) Type() string { return fsm.TaskWebhook }

// Run POSTs the event as JSON with an HMAC-SHA256 signature of the body in
// X-Osprey-Signature ("sha256=<hex>"), so receivers can authenticate it.
func (h webhookHandler) Run(ctx context.Context, t fsm.Task) (*Completion, error) {
	body := t.Payload
	var ev fsm.WebhookPayload
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, Permanent(fmt.Errorf("webhook: bad payload: %w", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, strings.NewReader(string(body)))
	if err != nil {
		return nil, Permanent(err)
	}
	m := hmac.New(sha256.New, h.secret)
	m.Write(body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Osprey-Event", ev.Event)
	req.Header.Set("X-Osprey-Delivery", strconv.FormatUint(t.ID, 10))
	req.Header.Set("X-Osprey-Signature", "sha256="+hex.EncodeToString(m.Sum(nil)))
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("webhook: %s answered %d", h.url, resp.StatusCode)
	}
	return nil, nil
}

// --- task API ---

var _ httpapi.Tasks = (*Node)(nil)

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
func (n *Node) ListTasks(ctx context.Context, state string) ([]httpapi.TaskInfo, error) {
	if err := n.prop.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	tasks := n.fsm.Tasks(fsm.TaskState(state))
	out := make([]httpapi.TaskInfo, len(tasks))
	for i, t := range tasks {
		out[i] = taskInfo(t)
	}
	return out, nil
}

// RetryTask moves a dead task back to pending.
func (n *Node) RetryTask(ctx context.Context, id uint64) (httpapi.TaskInfo, error) {
	var t fsm.Task
	if err := n.prop.Apply(ctx, fsm.CmdTaskRetry, fsm.TaskRetry{ID: id, Now: time.Now().UnixMilli()}, &t); err != nil {
		return httpapi.TaskInfo{}, err
	}
	return taskInfo(t), nil
}
