package fsm

import (
	"bytes"
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

// peekTaskType returns the type of the encoded task b without decoding
// it, when b starts the way encoding a Task does ({"id":N,"type":"T"): the
// runnable index mixes every runner's tasks, and a runner scanning for its
// own types skips the others' at the cost of a prefix. false: decode it.
func peekTaskType(b []byte) (string, bool) {
	rest, ok := bytes.CutPrefix(b, []byte(`{"id":`))
	if !ok {
		return "", false
	}
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	if rest, ok = bytes.CutPrefix(rest[i:], []byte(`,"type":"`)); !ok || i == 0 {
		return "", false
	}
	end := bytes.IndexByte(rest, '"')
	if end < 0 || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return "", false
	}
	return string(rest[:end]), true
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
	// InlineMax is the largest content kept inline: a content of at most
	// this many bytes whose md5 was checked as it arrived stays in its
	// staged chunks instead of being tiered (Content.Inline). 0 = none.
	// The leader sets it only once every member's Level is at least
	// FeatureLevelInline.
	InlineMax int64 `json:"inline_max,omitempty"`
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
	// SHA256 is the hex SHA-256 of the bytes the tiering pass read (the
	// same pass whose md5 the backend verified); "" from earlier builds.
	SHA256 string `json:"sha256,omitempty"`
	// MD5 is the md5 of the bytes the tiering pass read, for a content
	// whose md5 was not known at completion (an S3 multipart upload); the
	// content and its file take it, and it becomes a dedup target.
	MD5 string `json:"md5,omitempty"`
	Now int64  `json:"now"`
	// DropRemoved drops Location.Nodes removed since the copy was made
	// (their copies went with them) and queues their repair. Set by
	// builds that know it; absent in entries of older builds, which
	// replay with their old meaning.
	DropRemoved bool `json:"drop_removed,omitempty"`
	// HolderWorkers is, per Location.Nodes entry, the member's worker id
	// as the tier pass saw it before copying (0 = not known). With
	// DropRemoved, a holder whose worker id differs now was removed and
	// joined again since (wiped: its copy went with it) and is dropped
	// like a removed one. Absent in entries of older builds.
	HolderWorkers []uint32 `json:"holder_workers,omitempty"`
	// HolderWorkersExact says that every HolderWorkers entry is known, 0
	// included (the first member's worker id); without it a 0 entry means
	// "not known" and that holder is checked for removal only. Set by
	// builds at FeatureLevelWorkers once every member is.
	HolderWorkersExact bool `json:"holder_workers_exact,omitempty"`
	// SharedGC puts the content's staged chunks into the open gc task
	// (collectTiered) instead of a gc task of their own. Proposers of
	// this build set it; an entry of an earlier build, without it, is
	// applied as that build applied it, so replicas that apply an old log
	// with this build still agree with the ones that applied it before.
	SharedGC bool `json:"shared_gc,omitempty"`
	// KeepSums keeps the staged chunks' sizes and sums in the content
	// (Content.Sums) when it has more than one chunk. Proposers set it
	// once every member is at FeatureLevelSums.
	KeepSums bool `json:"keep_sums,omitempty"`
	// KeepOneSum, with KeepSums, keeps the size and sum of a content of
	// one chunk too. Proposers set it once every member is at
	// FeatureLevelOneSum.
	KeepOneSum bool `json:"keep_one_sum,omitempty"`
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

func (t *tx) maxAttempts() int {
	if t.meta.Settings.MaxAttempts > 0 {
		return t.meta.Settings.MaxAttempts
	}
	return defaultMaxAttempts
}

// enqueue adds a task; ids are assigned in apply order, so they agree on
// every replica.
func (t *tx) enqueue(typ, target string, payload any, now, notBefore int64) {
	var raw json.RawMessage
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			panic("fsm: encode task payload: " + err.Error())
		}
		raw = b
	}
	t.meta.NextTaskID++
	t.setMeta()
	t.putTask(&Task{ID: t.meta.NextTaskID, Type: typ, Target: target, Payload: raw,
		State: TaskPending, NextAttempt: notBefore, CreatedAt: now, UpdatedAt: now})
}

func (t *tx) enqueueGC(chunks []Chunk, now, notBefore int64) {
	if len(chunks) == 0 {
		return
	}
	t.enqueue(TaskGC, "", GCPayload{Chunks: chunks}, now, notBefore)
}

// Tiered contents share gc tasks: a tiered content's staged chunks join
// the open gc task while it has not been tried yet, is younger than
// gcJoinMillis and holds fewer than gcJoinChunks chunks (the task record
// is rewritten on every join, so it stays small), so releasing the
// staged copies of many small files costs one lease and one done between
// them instead of two entries each.
const (
	gcJoinMillis = 10_000
	gcJoinChunks = 128
)

// gcJoin appends chunks to the open gc task's payload and returns the new
// payload, or false when the task is full (gcJoinChunks).
//
// The payload grows to gcJoinChunks chunks, and decoding and re-encoding
// all of them on every join made a small file's tier-done cost grow with
// the task: it was the largest single share of CPU of a 3-node small-file
// load (every replica applies it). The encoding of GCPayload is
// {"chunks":[c1,...,cn]} with each ci the encoding of one Chunk, so when
// the stored payload is the one this memo produced last (compared byte for
// byte), the new chunks are spliced in before its closing "]}" without
// decoding it: the bytes are those json.Marshal gives for the longer list
// (TestGCJoinSplicesLikeMarshal checks it). On any other payload
// (first join after a restart, a failed command's discarded writes) it
// decodes as before.
type gcJoin struct {
	raw   []byte // the payload last produced, not to be modified
	count int    // chunks in raw
}

func (m *gcJoin) join(payload []byte, chunks []Chunk) ([]byte, bool) {
	var (
		p     GCPayload
		count int
	)
	if m != nil && m.count > 0 && bytes.Equal(payload, m.raw) {
		count = m.count
	} else {
		if err := json.Unmarshal(payload, &p); err != nil {
			panic("fsm: decode gc payload: " + err.Error())
		}
		count = len(p.Chunks)
	}
	if count+len(chunks) > gcJoinChunks {
		return nil, false
	}
	var b []byte
	if count > 0 && bytes.HasSuffix(payload, []byte("]}")) {
		more, err := json.Marshal(chunks) // [a,b,...]
		if err != nil {
			panic("fsm: encode gc payload: " + err.Error())
		}
		b = make([]byte, 0, len(payload)+len(more))
		b = append(b, payload[:len(payload)-2]...) // without "]}"
		b = append(b, ',')
		b = append(b, more[1:]...) // "a,b,...]"
		b = append(b, '}')
	} else {
		var err error
		if b, err = json.Marshal(GCPayload{Chunks: append(p.Chunks, chunks...)}); err != nil {
			panic("fsm: encode gc payload: " + err.Error())
		}
	}
	if m != nil {
		m.raw, m.count = b, count+len(chunks)
	}
	return b, true
}

// collectTiered schedules the staged chunks of a content whose backend
// copy is verified for deletion at notBefore, in the open gc task if it
// can take them (its start moves to notBefore, so no chunk loses any of
// its grace period).
func (t *tx) collectTiered(chunks []Chunk, now, notBefore int64) {
	if len(chunks) == 0 {
		return
	}
	if tk, ok := t.task(t.meta.OpenGC); ok && tk.Type == TaskGC && tk.State == TaskPending && tk.Attempts == 0 &&
		now-tk.CreatedAt < gcJoinMillis {
		if b, ok := t.gc.join(tk.Payload, chunks); ok {
			old := *tk
			tk.Payload, tk.NextAttempt, tk.UpdatedAt = b, max(tk.NextAttempt, notBefore), now
			t.replaceTask(&old, tk)
			return
		}
	}
	t.enqueueGC(chunks, now, notBefore)
	t.meta.OpenGC = t.meta.NextTaskID
	t.setMeta()
}

func (t *tx) webhook(event string, f *File, ct *Content, now int64, reason string) {
	if !t.meta.Settings.WebhookEnabled {
		return
	}
	p := WebhookPayload{Event: event, Time: now, Error: reason}
	if f != nil {
		p.UID, p.Name, p.MD5, p.Size = f.UID, f.Name, f.MD5, f.Size
	} else if ct != nil {
		p.UID, p.MD5, p.Size = ct.ID, ct.MD5, ct.Size
	}
	t.enqueue(TaskWebhook, p.UID.String(), p, now, now)
}

func (t *tx) applyTaskLease(c *TaskLease) (any, error) {
	res := TaskLeaseResult{}
	for _, id := range c.IDs {
		tk, ok := t.task(id)
		if !ok {
			continue
		}
		renew := tk.State == TaskLeased && tk.LeaseHolder == c.Node && tk.LeaseExpiry > c.Now
		if !renew && !tk.Runnable(c.Now) {
			continue
		}
		if !renew {
			tk.Attempts++
		}
		tk.State, tk.LeaseHolder, tk.LeaseExpiry, tk.UpdatedAt = TaskLeased, c.Node, c.Now+c.LeaseMillis, c.Now
		t.putTask(tk)
		res.Tasks = append(res.Tasks, cloneTask(tk))
	}
	return res, nil
}

// leased returns the task if node holds its lease.
func (t *tx) leased(id uint64, node osprey.NodeID) (*Task, error) {
	tk, ok := t.task(id)
	if !ok {
		return nil, errorf(ErrNotFound, "task %d not found", id)
	}
	if tk.State != TaskLeased || tk.LeaseHolder != node {
		return nil, errorf(ErrConflict, "task %d is not leased by %s", id, node)
	}
	return tk, nil
}

func (t *tx) applyTaskFail(c *TaskFail) (any, error) {
	tk, err := t.leased(c.ID, c.Node)
	if err != nil {
		return nil, err
	}
	tk.LastError, tk.UpdatedAt, tk.LeaseHolder, tk.LeaseExpiry = truncate(c.Error, 1024), c.Now, "", 0
	if c.Permanent || tk.Attempts >= t.maxAttempts() {
		tk.State = TaskDead
		t.putTask(tk)
		return cloneTask(tk), nil
	}
	backoff := int64(backoffBase)
	for i := 1; i < tk.Attempts && backoff < backoffMax; i++ {
		backoff *= 2
	}
	tk.State, tk.NextAttempt = TaskPending, c.Now+min(backoff, backoffMax)
	t.putTask(tk)
	return cloneTask(tk), nil
}

func (t *tx) applyTaskDone(c *TaskDone) (any, error) {
	if _, err := t.leased(c.ID, c.Node); err != nil {
		return nil, err
	}
	t.deleteTask(c.ID)
	return nil, nil
}

func (t *tx) applyTierDone(c *TierDone) (any, error) {
	if _, err := t.leased(c.TaskID, c.Node); err != nil {
		return nil, err
	}
	t.deleteTask(c.TaskID)
	ct, ok := t.content(c.Content)
	if !ok {
		// Deleted while it was being tiered: remove the new copy too.
		gone := Content{ID: c.Content, Location: &c.Location}
		t.enqueue(TaskDelete, c.Content.String(), DeletePayload{Content: gone}, c.Now, c.Now)
		return nil, nil
	}
	if ct.State == ContentTiered {
		return nil, nil
	}
	loc := c.Location
	if c.DropRemoved {
		gone := 0
		for i := range loc.Nodes {
			if t.holderGone(loc.Nodes, c.HolderWorkers, c.HolderWorkersExact, i) {
				gone++
			}
		}
		if gone > 0 && gone == len(loc.Nodes) {
			// Every copy went to a member that is gone: nothing was
			// tiered. The content stays staged and is tiered again.
			t.enqueue(TaskTier, ct.ID.String(), nil, c.Now, c.Now)
			return nil, nil
		}
		loc.Nodes = t.dropRemovedHolders(ct.ID, loc.Nodes, c.HolderWorkers, c.HolderWorkersExact, c.Now)
	}
	// Verified now (the backend checked the md5 as the bytes streamed): a
	// dedup target from here on, under its strong key once the SHA-256 is
	// known, unless another content holds that key.
	t.unindexContent(ct)
	if ct.SHA256 == "" {
		ct.SHA256 = c.SHA256
	}
	if ct.MD5 == "" && c.MD5 != "" {
		ct.MD5 = c.MD5
		if f, ok := t.file(ct.ID); ok && f.MD5 == "" {
			f.MD5 = c.MD5
			t.putFile(f)
			t.objectMD5Known(f)
		}
	}
	ct.State, ct.Location, ct.Verified = ContentTiered, &loc, true
	t.indexContent(ct)
	// Staged chunks go only now that the backend copy is verified, and
	// after a grace period for downloads still reading them.
	if c.SharedGC {
		t.collectTiered(ct.Chunks, c.Now, c.Now+t.meta.Settings.GCGraceMillis)
	} else {
		t.enqueueGC(ct.Chunks, c.Now, c.Now+t.meta.Settings.GCGraceMillis)
	}
	if c.KeepSums {
		ct.Sums = keptSums(ct.Chunks, c.KeepOneSum)
	}
	ct.Chunks = nil
	t.putContent(ct)
	f, _ := t.file(ct.ID)
	t.webhook("tiered", f, ct, c.Now, "")
	return nil, nil
}

func (t *tx) applyTierFailed(c *TierFailed) (any, error) {
	if _, err := t.leased(c.TaskID, c.Node); err != nil {
		return nil, err
	}
	t.deleteTask(c.TaskID)
	ct, ok := t.content(c.Content)
	if !ok {
		return nil, nil
	}
	// The data is kept for inspection; no new upload deduplicates onto it.
	ct.State = ContentFailed
	t.putContent(ct)
	t.unindexContent(ct)
	f, _ := t.file(ct.ID)
	t.webhook("failed", f, ct, c.Now, c.Reason)
	return nil, nil
}

func (t *tx) applyTaskRetry(c *TaskRetry) (any, error) {
	tk, ok := t.task(c.ID)
	if !ok {
		return nil, errorf(ErrNotFound, "task %d not found", c.ID)
	}
	if tk.State != TaskDead {
		return nil, errorf(ErrConflict, "task %d is %s, only dead tasks can be retried", c.ID, tk.State)
	}
	tk.State, tk.Attempts, tk.NextAttempt, tk.UpdatedAt = TaskPending, 0, c.Now, c.Now
	t.putTask(tk)
	return cloneTask(tk), nil
}

func (t *tx) applyExpire(c *Expire) (any, error) {
	var uids []osprey.UID
	t.scan(t.uploadFrom.key(tUploadAge), uploadAgeKey(c.Before, 0), func(k, _ []byte) bool {
		_, id := decodeTimeID(k)
		uids = append(uids, osprey.UID(id))
		return true
	})
	sort.Slice(uids, func(i, j int) bool { return uids[i] < uids[j] })
	for _, uid := range uids {
		chunks := t.upChunks(uid)
		var list []Chunk
		for _, n := range sortedChunkNums(chunks) {
			list = append(list, *chunks[n])
		}
		t.deleteFile(uid)
		t.enqueueGC(list, c.Now, c.Now)
	}
	return ExpireResult{UIDs: uids}, nil
}

func (t *tx) applySetSettings(c *SetSettings) (any, error) {
	t.meta.Settings = c.Settings
	t.setMeta()
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
