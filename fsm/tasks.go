package fsm

import (
	"encoding/json"
	"sort"

	"github.com/osprey-storage/osprey"
)

// TaskState is where a task is in its life.
type TaskState string

// Task states. Completed tasks are removed from the state.
const (
	TaskPending TaskState = "pending" // waiting for NextAttempt
	TaskLeased  TaskState = "leased"  // a node works on it until LeaseExpiry
	TaskDead    TaskState = "dead"    // failed MaxAttempts times; operators retry it
)

// Task types. A node leases only the types it has handlers for.
const (
	TaskTier    = "tier"    // copy staged content into the backend and verify it
	TaskGC      = "gc"      // delete staged chunks no record references any more
	TaskDelete  = "delete"  // delete a content's backend object and staged chunks
	TaskWebhook = "webhook" // POST an event to the configured URL
)

// Task is a durable unit of background work. Its lease and backoff are
// computed from times carried in commands, so every replica agrees.
type Task struct {
	ID          uint64          `json:"id"`
	Type        string          `json:"type"`
	Target      string          `json:"target"`
	Payload     json.RawMessage `json:"payload,omitempty"`
	State       TaskState       `json:"state"`
	Attempts    int             `json:"attempts"`
	LeaseHolder osprey.NodeID   `json:"lease_holder,omitempty"`
	LeaseExpiry int64           `json:"lease_expiry,omitempty"` // unix ms
	NextAttempt int64           `json:"next_attempt"`           // unix ms
	LastError   string          `json:"last_error,omitempty"`
	CreatedAt   int64           `json:"created_at"`
	UpdatedAt   int64           `json:"updated_at"`
}

// Runnable reports whether the task may be leased at now (unix ms).
func (t *Task) Runnable(now int64) bool {
	switch t.State {
	case TaskPending:
		return t.NextAttempt <= now
	case TaskLeased:
		return t.LeaseExpiry <= now
	}
	return false
}

// Settings are cluster-wide settings the leader keeps in step with its
// configuration.
type Settings struct {
	// WebhookEnabled makes the FSM enqueue webhook tasks on file events.
	WebhookEnabled bool `json:"webhook_enabled"`
	// BackendFingerprint identifies the backend every node must use
	// (type and endpoint; never credentials).
	BackendFingerprint string `json:"backend_fingerprint"`
	// MaxAttempts is how often a task is tried before it is dead.
	MaxAttempts int `json:"max_attempts"`
	// ExpireAfterMillis is how long an upload may stay incomplete.
	ExpireAfterMillis int64 `json:"expire_after_ms"`
	// GCGraceMillis delays deleting staged chunks after tiering, so
	// downloads that started from staging usually finish there.
	GCGraceMillis int64 `json:"gc_grace_ms"`
}

const (
	defaultMaxAttempts = 10
	backoffBase        = 1000    // ms
	backoffMax         = 300_000 // ms
)

// GCPayload lists staged chunk copies to delete.
type GCPayload struct {
	Chunks []Chunk `json:"chunks"`
}

// DeletePayload describes a content whose last reference went.
type DeletePayload struct {
	Content Content `json:"content"`
}

// WebhookPayload is the event a webhook task delivers.
type WebhookPayload struct {
	Event string     `json:"event"` // complete | tiered | failed
	UID   osprey.UID `json:"uid"`
	Name  string     `json:"name,omitempty"`
	MD5   string     `json:"md5"`
	Size  int64      `json:"size"`
	Time  int64      `json:"time"`
	Error string     `json:"error,omitempty"`
}

// TaskLease asks for leases on the given tasks (or renews them).
type TaskLease struct {
	Node        osprey.NodeID `json:"node"`
	IDs         []uint64      `json:"ids"`
	Now         int64         `json:"now"`
	LeaseMillis int64         `json:"lease_ms"`
}

// TaskLeaseResult lists the tasks actually leased.
type TaskLeaseResult struct {
	Tasks []Task `json:"tasks"`
}

// TaskFail reports a failed attempt.
type TaskFail struct {
	ID    uint64        `json:"id"`
	Node  osprey.NodeID `json:"node"`
	Error string        `json:"error"`
	Now   int64         `json:"now"`
	// Permanent marks the task dead at once (retrying cannot help).
	Permanent bool `json:"permanent,omitempty"`
}

// TaskDone reports a finished task.
type TaskDone struct {
	ID   uint64        `json:"id"`
	Node osprey.NodeID `json:"node"`
	Now  int64         `json:"now"`
}

// TierDone records a verified backend copy of a content.
type TierDone struct {
	TaskID   uint64        `json:"task_id"`
	Node     osprey.NodeID `json:"node"`
	Content  osprey.UID    `json:"content"`
	Location Location      `json:"location"`
	Now      int64         `json:"now"`
}

// TierFailed records that a content's bytes do not match its md5.
type TierFailed struct {
	TaskID  uint64        `json:"task_id"`
	Node    osprey.NodeID `json:"node"`
	Content osprey.UID    `json:"content"`
	Reason  string        `json:"reason"`
	Now     int64         `json:"now"`
}

// TaskRetry moves a dead task back to pending.
type TaskRetry struct {
	ID  uint64 `json:"id"`
	Now int64  `json:"now"`
}

// Expire deletes uploads not touched since Before and collects their chunks.
type Expire struct {
	Before int64 `json:"before"`
	Now    int64 `json:"now"`
}

// ExpireResult lists the expired uids.
type ExpireResult struct {
	UIDs []osprey.UID `json:"uids"`
}

// SetSettings replaces the cluster settings.
type SetSettings struct {
	Settings Settings `json:"settings"`
}

func (s *state) maxAttempts() int {
	if s.Settings.MaxAttempts > 0 {
		return s.Settings.MaxAttempts
	}
	return defaultMaxAttempts
}

// enqueue adds a task; ids are assigned in apply order, so they agree on
// every replica.
func (s *state) enqueue(typ, target string, payload any, now, notBefore int64) {
	var raw json.RawMessage
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			panic("fsm: encode task payload: " + err.Error())
		}
		raw = b
	}
	s.NextTaskID++
	if len(s.taskOrder) > 2*len(s.Tasks)+1024 {
		s.compactTaskOrder()
	}
	s.taskOrder = append(s.taskOrder, s.NextTaskID)
	s.Tasks[s.NextTaskID] = &Task{ID: s.NextTaskID, Type: typ, Target: target, Payload: raw,
		State: TaskPending, NextAttempt: notBefore, CreatedAt: now, UpdatedAt: now}
}

func (s *state) enqueueGC(chunks []Chunk, now, notBefore int64) {
	if len(chunks) == 0 {
		return
	}
	s.enqueue(TaskGC, "", GCPayload{Chunks: chunks}, now, notBefore)
}

func (s *state) webhook(event string, f *File, ct *Content, now int64, reason string) {
	if !s.Settings.WebhookEnabled {
		return
	}
	p := WebhookPayload{Event: event, Time: now, Error: reason}
	if f != nil {
		p.UID, p.Name, p.MD5, p.Size = f.UID, f.Name, f.MD5, f.Size
	} else if ct != nil {
		p.UID, p.MD5, p.Size = ct.ID, ct.MD5, ct.Size
	}
	s.enqueue(TaskWebhook, p.UID.String(), p, now, now)
}

func (s *state) applyTaskLease(c *TaskLease) (any, error) {
	res := TaskLeaseResult{}
	for _, id := range c.IDs {
		t, ok := s.Tasks[id]
		if !ok {
			continue
		}
		renew := t.State == TaskLeased && t.LeaseHolder == c.Node && t.LeaseExpiry > c.Now
		if !renew && !t.Runnable(c.Now) {
			continue
		}
		if !renew {
			t.Attempts++
		}
		t.State, t.LeaseHolder, t.LeaseExpiry, t.UpdatedAt = TaskLeased, c.Node, c.Now+c.LeaseMillis, c.Now
		res.Tasks = append(res.Tasks, cloneTask(t))
	}
	return res, nil
}

// leased returns the task if node holds its lease.
func (s *state) leased(id uint64, node osprey.NodeID) (*Task, error) {
	t, ok := s.Tasks[id]
	if !ok {
		return nil, errorf(ErrNotFound, "task %d not found", id)
	}
	if t.State != TaskLeased || t.LeaseHolder != node {
		return nil, errorf(ErrConflict, "task %d is not leased by %s", id, node)
	}
	return t, nil
}

func (s *state) applyTaskFail(c *TaskFail) (any, error) {
	t, err := s.leased(c.ID, c.Node)
	if err != nil {
		return nil, err
	}
	t.LastError, t.UpdatedAt, t.LeaseHolder, t.LeaseExpiry = truncate(c.Error, 1024), c.Now, "", 0
	if c.Permanent || t.Attempts >= s.maxAttempts() {
		t.State = TaskDead
		return cloneTask(t), nil
	}
	backoff := int64(backoffBase)
	for i := 1; i < t.Attempts && backoff < backoffMax; i++ {
		backoff *= 2
	}
	t.State, t.NextAttempt = TaskPending, c.Now+min(backoff, backoffMax)
	return cloneTask(t), nil
}

func (s *state) applyTaskDone(c *TaskDone) (any, error) {
	if _, err := s.leased(c.ID, c.Node); err != nil {
		return nil, err
	}
	delete(s.Tasks, c.ID)
	return nil, nil
}

func (s *state) applyTierDone(c *TierDone) (any, error) {
	if _, err := s.leased(c.TaskID, c.Node); err != nil {
		return nil, err
	}
	delete(s.Tasks, c.TaskID)
	ct, ok := s.Contents[c.Content]
	if !ok {
		// Deleted while it was being tiered: remove the new copy too.
		gone := Content{ID: c.Content, Location: &c.Location}
		s.enqueue(TaskDelete, c.Content.String(), DeletePayload{Content: gone}, c.Now, c.Now)
		return nil, nil
	}
	if ct.State == ContentTiered {
		return nil, nil
	}
	loc := c.Location
	ct.State, ct.Location, ct.Verified = ContentTiered, &loc, true
	// Staged chunks go only now that the backend copy is verified, and
	// after a grace period for downloads still reading them.
	s.enqueueGC(ct.Chunks, c.Now, c.Now+s.Settings.GCGraceMillis)
	ct.Chunks = nil
	s.webhook("tiered", s.Files[ct.ID], ct, c.Now, "")
	return nil, nil
}

func (s *state) applyTierFailed(c *TierFailed) (any, error) {
	if _, err := s.leased(c.TaskID, c.Node); err != nil {
		return nil, err
	}
	delete(s.Tasks, c.TaskID)
	ct, ok := s.Contents[c.Content]
	if !ok {
		return nil, nil
	}
	// The data is kept for inspection; no new upload deduplicates onto it.
	ct.State = ContentFailed
	if s.MD5Index[ct.MD5] == ct.ID {
		delete(s.MD5Index, ct.MD5)
	}
	s.webhook("failed", s.Files[ct.ID], ct, c.Now, c.Reason)
	return nil, nil
}

func (s *state) applyTaskRetry(c *TaskRetry) (any, error) {
	t, ok := s.Tasks[c.ID]
	if !ok {
		return nil, errorf(ErrNotFound, "task %d not found", c.ID)
	}
	if t.State != TaskDead {
		return nil, errorf(ErrConflict, "task %d is %s, only dead tasks can be retried", c.ID, t.State)
	}
	t.State, t.Attempts, t.NextAttempt, t.UpdatedAt = TaskPending, 0, c.Now, c.Now
	return cloneTask(t), nil
}

func (s *state) applyExpire(c *Expire) (any, error) {
	var uids []osprey.UID
	for uid, f := range s.Files {
		if f.State == StateUploading && f.UpdatedAt < c.Before {
			uids = append(uids, uid)
		}
	}
	sort.Slice(uids, func(i, j int) bool { return uids[i] < uids[j] })
	for _, uid := range uids {
		f := s.Files[uid]
		var chunks []Chunk
		for _, n := range sortedChunkNums(f.Chunks) {
			chunks = append(chunks, *f.Chunks[n])
		}
		delete(s.Files, uid)
		s.enqueueGC(chunks, c.Now, c.Now)
	}
	return ExpireResult{UIDs: uids}, nil
}

func (s *state) applySetSettings(c *SetSettings) (any, error) {
	s.Settings = c.Settings
	return nil, nil
}

func cloneTask(t *Task) Task {
	c := *t
	c.Payload = append(json.RawMessage(nil), t.Payload...)
	return c
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func (s *state) compactTaskOrder() {
	out := s.taskOrder[:0]
	for _, id := range s.taskOrder {
		if _, ok := s.Tasks[id]; ok {
			out = append(out, id)
		}
	}
	s.taskOrder = out
}

// rebuildTaskOrder derives taskOrder from the task map (after Restore).
func (s *state) rebuildTaskOrder() {
	s.taskOrder = make([]uint64, 0, len(s.Tasks))
	for id := range s.Tasks {
		s.taskOrder = append(s.taskOrder, id)
	}
	sort.Slice(s.taskOrder, func(i, j int) bool { return s.taskOrder[i] < s.taskOrder[j] })
}
