package fsm

// The reference model: the map-based state machine of the builds that kept
// the whole state in memory, kept verbatim as a test oracle. The Pebble
// store must reach the same state (TestStoreMatchesReference) along the
// example log and seeded random histories.

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/osprey-storage/osprey"
)

// apply dispatches one decoded command. It is the only place that knows
// every command type.
func (s *state) apply(t CommandType, payload []byte) (any, error) {
	switch t {
	case CmdNoop:
		return nil, nil
	case CmdInitCluster:
		return s.applyInit(decodeInto[InitCluster](payload))
	case CmdNodeUpsert:
		return s.applyNodeUpsert(decodeInto[NodeUpsert](payload))
	case CmdNodeRemove:
		return s.applyNodeRemove(decodeInto[NodeRemove](payload))
	case CmdFilesCreate:
		return s.applyFilesCreate(decodeInto[FilesCreate](payload))
	case CmdChunkPut:
		return s.applyChunkPut(decodeInto[ChunkPut](payload))
	case CmdFileComplete:
		return s.applyFileComplete(decodeInto[FileComplete](payload))
	case CmdMerge:
		return s.applyMerge(decodeInto[Merge](payload))
	case CmdResume:
		return s.applyResume(decodeInto[Resume](payload))
	case CmdFileDelete:
		return s.applyFileDelete(decodeInto[FileDelete](payload))
	case CmdTaskLease:
		return s.applyTaskLease(decodeInto[TaskLease](payload))
	case CmdTaskFail:
		return s.applyTaskFail(decodeInto[TaskFail](payload))
	case CmdTaskDone:
		return s.applyTaskDone(decodeInto[TaskDone](payload))
	case CmdTierDone:
		return s.applyTierDone(decodeInto[TierDone](payload))
	case CmdTierFailed:
		return s.applyTierFailed(decodeInto[TierFailed](payload))
	case CmdTaskRetry:
		return s.applyTaskRetry(decodeInto[TaskRetry](payload))
	case CmdExpire:
		return s.applyExpire(decodeInto[Expire](payload))
	case CmdSetSettings:
		return s.applySetSettings(decodeInto[SetSettings](payload))
	case CmdChunkMoved:
		return s.applyChunkMoved(decodeInto[ChunkMoved](payload))
	case CmdObjectMoved:
		return s.applyObjectMoved(decodeInto[ObjectMoved](payload))
	case CmdChunkConverted:
		return s.applyChunkConverted(decodeInto[ChunkConverted](payload))
	case CmdNodeDown:
		return s.applyNodeDown(decodeInto[NodeDown](payload))
	case CmdNodeUp:
		return s.applyNodeUp(decodeInto[NodeUp](payload))
	case CmdDedupShare:
		return s.applyDedupShare(decodeInto[DedupShare](payload))
	default:
		panic(fmt.Sprintf("fsm: no handler for command %s", t))
	}
}

func (s *state) applyInit(c *InitCluster) (any, error) {
	if s.ClusterID != "" {
		return InitClusterResult{ClusterID: s.ClusterID}, nil
	}
	if c.ClusterID == "" || len(c.Secret) < 16 {
		return nil, errorf(ErrInvalid, "init cluster: missing id or short secret")
	}
	s.ClusterID, s.Secret, s.JoinTokenHash, s.CreatedAt = c.ClusterID, c.Secret, c.JoinTokenHash, c.Time
	return InitClusterResult{ClusterID: s.ClusterID}, nil
}

func (s *state) applyNodeUpsert(c *NodeUpsert) (any, error) {
	if c.ID == "" || c.RaftAddr == "" {
		return nil, errorf(ErrInvalid, "node upsert: missing id or raft address")
	}
	n, ok := s.Nodes[c.ID]
	if ok && !n.Removed {
		n.RaftAddr, n.HTTPAddr, n.Level = c.RaftAddr, c.HTTPAddr, c.Level
		return *n, nil
	}
	// A new member, or one coming back after removal, gets a fresh worker
	// id: its old data dir (and uid high-water mark) may be gone, so reusing
	// the old id could repeat uids.
	n = &Node{ID: c.ID, RaftAddr: c.RaftAddr, HTTPAddr: c.HTTPAddr, WorkerID: s.NextWorkerID, JoinedAt: c.Time, Level: c.Level}
	s.NextWorkerID++
	s.Nodes[c.ID] = n
	return *n, nil
}

func (s *state) applyNodeRemove(c *NodeRemove) (any, error) {
	n, ok := s.Nodes[c.ID]
	if !ok {
		return nil, errorf(ErrNotFound, "node %s not found", c.ID)
	}
	if !n.Removed {
		n.Removed = true
		// Rebuild every copy it held elsewhere, and stop counting its
		// copies at once: it may come back under the same id with an empty
		// disk, and must not look like a holder of what it lost.
		s.enqueueRepairs(c.ID, c.Time)
		s.stripOwner(c.ID)
	}
	return *n, nil
}

func (s *state) applyFilesCreate(c *FilesCreate) (any, error) {
	for _, f := range c.Files {
		if f.UID == 0 || f.Name == "" {
			return nil, errorf(ErrInvalid, "files create: missing uid or name")
		}
		if _, ok := s.Files[f.UID]; ok {
			return nil, errorf(ErrConflict, "uid %s already exists", f.UID)
		}
	}
	for _, f := range c.Files {
		s.Files[f.UID] = &File{UID: f.UID, Name: f.Name, Bucket: f.Bucket, Tenant: f.Tenant, State: StateUploading,
			CreatedAt: c.Time, UpdatedAt: c.Time}
	}
	return nil, nil
}

func (s *state) uploadingFile(uid osprey.UID) (*File, error) {
	f, ok := s.Files[uid]
	if !ok {
		return nil, errorf(ErrNotFound, "uid %s not found", uid)
	}
	return f, nil
}

func (s *state) applyChunkPut(c *ChunkPut) (any, error) {
	f, err := s.uploadingFile(c.UID)
	if err != nil {
		return nil, err
	}
	if c.Chunk.Num == 0 {
		return nil, errorf(ErrInvalid, "chunk number must be ≥ 1")
	}
	if f.State != StateUploading {
		// Merge moved the chunks into the file's content: a retried upload
		// of a chunk that is part of it is a duplicate, its new copy
		// garbage. (Once tiered, the content keeps no chunk records.)
		if ct, ok := s.Contents[f.Content]; ok {
			for _, ch := range ct.Chunks {
				if ch.Num == c.Chunk.Num && ch.MD5 == c.Chunk.MD5 && ch.Size == c.Chunk.Size {
					if ch.Blob != c.Chunk.Blob {
						g := c.Chunk
						g.Workers = nil
						s.enqueueGC([]Chunk{g}, c.Time, c.Time)
					}
					return ChunkPutResult{Duplicate: true}, nil
				}
			}
		}
		return nil, errorf(ErrConflict, "uid %s is already merged", c.UID)
	}
	old := f.Chunks[c.Chunk.Num]
	same := old != nil && old.MD5 == c.Chunk.MD5 && old.Size == c.Chunk.Size
	if f.Chunks == nil {
		f.Chunks = map[uint32]*Chunk{}
	}
	ch := c.Chunk
	ch.Workers = nil
	f.Chunks[ch.Num] = &ch
	f.UpdatedAt = c.Time
	s.repairRemovedOwners(f.UID, 0, []Chunk{c.Chunk}, c.Time)
	if old != nil {
		o := *old
		if o.Blob != ch.Blob {
			s.enqueueGC([]Chunk{o}, c.Time, c.Time)
		}
		return ChunkPutResult{Replaced: &o, Duplicate: same}, nil
	}
	return ChunkPutResult{}, nil
}

// The reference dedup index: a map keyed by the encoded key.
func (s *state) index(ct *Content) {
	k := string(contentDedupKey(ct))
	if _, taken := s.Dedup[k]; !taken {
		s.Dedup[k] = ct.ID
	}
}

func (s *state) unindex(ct *Content) {
	k := string(contentDedupKey(ct))
	if s.Dedup[k] == ct.ID {
		delete(s.Dedup, k)
	}
}

// dedupFirst is the md5-only lookup: the smallest matching key.
func (s *state) dedupFirst(tenant, md5 string) (osprey.UID, bool) {
	p := string(dedupPrefix(tenant, md5))
	best, found := "", false
	for k := range s.Dedup {
		if strings.HasPrefix(k, p) && (!found || k < best) {
			best, found = k, true
		}
	}
	return s.Dedup[best], found
}

// complete turns an uploading file into a complete one over the given
// ordered chunks; verified bytes deduplicate onto the same tenant's
// content with the same md5, size and sha256.
func (s *state) complete(f *File, chunks []Chunk, size int64, md5, sha string, verified bool, now int64) CompleteResult {
	res := CompleteResult{}
	var inline *Content
	written := chunks
	chunks = withoutWorkers(chunks)
	f.State, f.Size, f.MD5, f.UpdatedAt = StateComplete, size, md5, now
	if id, ok := s.Dedup[string(dedupKey(f.Tenant, md5, size, sha))]; ok && verified {
		ct := s.Contents[id]
		ct.Refs++
		f.Content = id
		res.Garbage = chunks
		res.Content = &ContentInfo{Chunks: len(ct.Chunks), State: ct.State, Inline: ct.Inline, Location: ct.Location}
	} else {
		ct := &Content{ID: f.UID, MD5: md5, Size: size, State: ContentStaged,
			Chunks: chunks, Verified: verified, Refs: 1, Bucket: f.Bucket, Key: objectKey(f), Tenant: f.Tenant}
		s.Contents[f.UID] = ct
		if verified {
			ct.SHA256 = sha
			s.index(ct)
		}
		f.Content = f.UID
		s.repairRemovedOwners(0, f.UID, written, now)
		if verified && s.Settings.InlineMax > 0 && size <= s.Settings.InlineMax {
			ct.Inline, inline = true, ct // the staged chunks are its final copy
		}
		res.Content = &ContentInfo{Chunks: len(ct.Chunks), State: ct.State, Inline: ct.Inline}
		if !ct.Inline {
			// Tiering starts now; the file is already complete and served
			// from the staged chunks meanwhile.
			s.enqueue(TaskTier, f.UID.String(), nil, now, now)
		}
	}
	// Recorded chunks the content does not use (beyond num, or from an
	// earlier chunked attempt before a single upload) are garbage.
	used := make(map[uint64]bool, len(chunks))
	for _, ch := range chunks {
		used[ch.Blob] = true
	}
	for _, n := range sortedChunkNums(f.Chunks) {
		if ch := f.Chunks[n]; !used[ch.Blob] {
			res.Garbage = append(res.Garbage, *ch)
		}
	}
	s.enqueueGC(res.Garbage, now, now)
	f.Chunks = nil
	s.webhook("complete", f, nil, now, "")
	if inline != nil {
		s.webhook("tiered", f, inline, now, "")
	}
	res.File = f.clone()
	return res
}

func (s *state) applyFileComplete(c *FileComplete) (any, error) {
	f, err := s.uploadingFile(c.UID)
	if err != nil {
		return nil, err
	}
	if f.State != StateUploading {
		if f.MD5 == c.MD5 && f.Size == c.Size {
			g := withoutWorkers(c.Chunks)
			s.enqueueGC(g, c.Time, c.Time)
			return CompleteResult{File: f.clone(), Already: true, Garbage: g}, nil
		}
		return nil, errorf(ErrConflict, "uid %s is already complete with other content", c.UID)
	}
	var total int64
	for i, ch := range c.Chunks {
		if ch.Num != uint32(i+1) {
			return nil, errorf(ErrInvalid, "file complete: chunk %d numbered %d", i+1, ch.Num)
		}
		total += ch.Size
	}
	if total != c.Size {
		return nil, errorf(ErrInvalid, "file complete: chunks hold %d bytes, size says %d", total, c.Size)
	}
	// Pieces of a single upload were uploaded now; chunks of an earlier
	// chunked attempt on the same uid are garbage.
	res := s.complete(f, c.Chunks, c.Size, c.MD5, c.SHA256, true, c.Time)
	return res, nil
}

func (s *state) applyMerge(c *Merge) (any, error) {
	f, err := s.uploadingFile(c.UID)
	if err != nil {
		return nil, err
	}
	if f.State != StateUploading {
		if f.MD5 == c.MD5 && f.Size == c.Size {
			return CompleteResult{File: f.clone(), Already: true}, nil
		}
		return nil, errorf(ErrConflict, "uid %s is already complete with other content", c.UID)
	}
	if c.Num == 0 {
		return nil, errorf(ErrInvalid, "num must be ≥ 1")
	}
	var missing []uint32
	chunks := make([]Chunk, 0, c.Num)
	var total int64
	for n := uint32(1); n <= c.Num; n++ {
		ch, ok := f.Chunks[n]
		if !ok {
			missing = append(missing, n)
			continue
		}
		total += ch.Size
		chunks = append(chunks, *ch)
	}
	if len(missing) > 0 {
		return nil, errorf(ErrConflict, "missing chunks %s of %d", formatNums(missing), c.Num)
	}
	if total != c.Size {
		return nil, errorf(ErrConflict, "chunks 1..%d hold %d bytes, merge says size %d", c.Num, total, c.Size)
	}
	return s.complete(f, chunks, c.Size, c.MD5, "", false, c.Time), nil
}

func (s *state) applyResume(c *Resume) (any, error) {
	res := ResumeResult{UIDs: make([]osprey.UID, len(c.Items))}
	// Check every item before changing anything: a failed command leaves
	// the state as it was.
	seen := make(map[osprey.UID]bool, len(c.Items))
	for _, it := range c.Items {
		if _, ok := s.dedupFirst(it.Tenant, it.MD5); !ok {
			continue
		}
		if _, dup := s.Files[it.UID]; dup || seen[it.UID] || it.UID == 0 {
			return nil, errorf(ErrConflict, "uid %s already exists", it.UID)
		}
		seen[it.UID] = true
	}
	for i, it := range c.Items {
		id, ok := s.dedupFirst(it.Tenant, it.MD5)
		if !ok {
			continue
		}
		ct := s.Contents[id]
		ct.Refs++
		s.Files[it.UID] = &File{UID: it.UID, Name: it.Name, Bucket: it.Bucket, Tenant: it.Tenant, State: StateComplete, Size: ct.Size,
			MD5: ct.MD5, Content: id, CreatedAt: c.Time, UpdatedAt: c.Time}
		res.UIDs[i] = it.UID
	}
	return res, nil
}

func (s *state) applyDedupShare(c *DedupShare) (any, error) {
	if c.UID == 0 || c.Name == "" || c.SHA256 == "" {
		return nil, errorf(ErrInvalid, "dedup share: missing uid, name or sha256")
	}
	id, ok := s.Dedup[string(dedupKey(c.Tenant, c.MD5, c.Size, c.SHA256))]
	if !ok || id != c.Content {
		return DedupShareResult{}, nil
	}
	if _, dup := s.Files[c.UID]; dup {
		return nil, errorf(ErrConflict, "uid %s already exists", c.UID)
	}
	ct := s.Contents[id]
	ct.Refs++
	s.Files[c.UID] = &File{UID: c.UID, Name: c.Name, Bucket: c.Bucket, Tenant: c.Tenant, State: StateComplete, Size: ct.Size,
		MD5: ct.MD5, Content: id, CreatedAt: c.Time, UpdatedAt: c.Time}
	return DedupShareResult{UID: c.UID}, nil
}

func (s *state) applyFileDelete(c *FileDelete) (any, error) {
	f, ok := s.Files[c.UID]
	if !ok {
		return nil, errorf(ErrNotFound, "uid %s not found", c.UID)
	}
	delete(s.Files, c.UID)
	res := DeleteResult{}
	if f.State == StateUploading {
		for _, n := range sortedChunkNums(f.Chunks) {
			res.Garbage = append(res.Garbage, *f.Chunks[n])
		}
		s.enqueueGC(res.Garbage, c.Time, c.Time)
		return res, nil
	}
	ct, ok := s.Contents[f.Content]
	if !ok {
		return res, nil
	}
	ct.Refs--
	if ct.Refs <= 0 {
		delete(s.Contents, ct.ID)
		s.unindex(ct)
		gone := ct.clone()
		res.Content = &gone
		res.Garbage = gone.Chunks
		s.enqueue(TaskDelete, gone.ID.String(), DeletePayload{Content: gone}, c.Time, c.Time)
	}
	return res, nil
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

// collectTiered is tx.collectTiered (added with group commit).
func (s *state) collectTiered(chunks []Chunk, now, notBefore int64) {
	if len(chunks) == 0 {
		return
	}
	if tk, ok := s.Tasks[s.OpenGC]; ok && tk.Type == TaskGC && tk.State == TaskPending && tk.Attempts == 0 &&
		now-tk.CreatedAt < gcJoinMillis {
		var p GCPayload
		if err := json.Unmarshal(tk.Payload, &p); err != nil {
			panic(err)
		}
		if len(p.Chunks)+len(chunks) <= gcJoinChunks {
			p.Chunks = append(p.Chunks, chunks...)
			b, _ := json.Marshal(p)
			tk.Payload, tk.NextAttempt, tk.UpdatedAt = b, max(tk.NextAttempt, notBefore), now
			return
		}
	}
	s.enqueueGC(chunks, now, notBefore)
	s.OpenGC = s.NextTaskID
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
	if c.DropRemoved {
		gone := 0
		for i, o := range loc.Nodes {
			same := len(c.HolderWorkers) != len(loc.Nodes) || c.HolderWorkers[i] == 0 && !c.HolderWorkersExact
			if n, ok := s.Nodes[o]; !ok || n.Removed || !same && n.WorkerID != c.HolderWorkers[i] {
				gone++
			}
		}
		if gone > 0 && gone == len(loc.Nodes) {
			s.enqueue(TaskTier, ct.ID.String(), nil, c.Now, c.Now)
			return nil, nil
		}
		var kept []osprey.NodeID
		for i, o := range loc.Nodes {
			same := len(c.HolderWorkers) != len(loc.Nodes) || c.HolderWorkers[i] == 0 && !c.HolderWorkersExact
			if n, ok := s.Nodes[o]; ok && !n.Removed && (same || n.WorkerID == c.HolderWorkers[i]) {
				kept = append(kept, o)
				continue
			}
			s.enqueue(TaskRepair, ct.ID.String(), RepairPayload{Kind: RepairObject, Content: ct.ID, Lost: o}, c.Now, c.Now)
		}
		if len(kept) != len(loc.Nodes) {
			loc.Nodes = kept
		}
	}
	s.unindex(ct)
	if ct.SHA256 == "" {
		ct.SHA256 = c.SHA256
	}
	if ct.MD5 == "" && c.MD5 != "" {
		ct.MD5 = c.MD5
		if f, ok := s.Files[ct.ID]; ok && f.MD5 == "" {
			f.MD5 = c.MD5
		}
	}
	ct.State, ct.Location, ct.Verified = ContentTiered, &loc, true
	s.index(ct)
	// Staged chunks go only now that the backend copy is verified, and
	// after a grace period for downloads still reading them.
	if c.SharedGC {
		s.collectTiered(ct.Chunks, c.Now, c.Now+s.Settings.GCGraceMillis)
	} else {
		s.enqueueGC(ct.Chunks, c.Now, c.Now+s.Settings.GCGraceMillis)
	}
	if c.KeepSums && (len(ct.Chunks) > 1 || c.KeepOneSum && len(ct.Chunks) == 1) {
		ct.Sums = nil
		for _, ch := range ct.Chunks {
			ct.Sums = append(ct.Sums, ChunkSum{Size: ch.Size, Sum: ch.Sum})
			if ch.Sum == 0 {
				ct.Sums = nil
				break
			}
		}
	}
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
	s.unindex(ct)
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

// enqueueRepairs queues a repair for every copy the member held. It runs
// when a member is removed; ids are visited in sorted order so every
// replica assigns the same task ids.
func (s *state) enqueueRepairs(lost osprey.NodeID, now int64) {
	uids := make([]osprey.UID, 0, len(s.Files))
	for u, f := range s.Files {
		if f.State == StateUploading {
			uids = append(uids, u)
		}
	}
	sort.Slice(uids, func(i, j int) bool { return uids[i] < uids[j] })
	for _, u := range uids {
		f := s.Files[u]
		for _, n := range sortedChunkNums(f.Chunks) {
			s.repairChunk(u, 0, *f.Chunks[n], lost, now)
		}
	}
	ids := make([]osprey.UID, 0, len(s.Contents))
	for id := range s.Contents {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		s.repairContent(s.Contents[id], lost, now)
	}
}

func (s *state) repairContent(ct *Content, lost osprey.NodeID, now int64) {
	for _, ch := range ct.Chunks {
		s.repairChunk(0, ct.ID, ch, lost, now)
	}
	if ct.Location != nil && hasOwner(ct.Location.Nodes, lost) {
		s.enqueue(TaskRepair, ct.ID.String(), RepairPayload{Kind: RepairObject, Content: ct.ID, Lost: lost}, now, now)
	}
}

// repairChunk queues one repair per copy (replica or shard) lost held.
func (s *state) repairChunk(file, content osprey.UID, ch Chunk, lost osprey.NodeID, now int64) {
	target := (file | content).String()
	if ch.EC != nil {
		for _, sh := range ch.EC.Shards {
			if sh.Owner == lost {
				s.enqueue(TaskRepair, target, RepairPayload{Kind: RepairChunk, File: file, Content: content, Blob: ch.Blob, Num: ch.Num, Shard: sh.Index + 1, Lost: lost}, now, now)
			}
		}
		return
	}
	if hasOwner(ch.Owners, lost) {
		s.enqueue(TaskRepair, target, RepairPayload{Kind: RepairChunk, File: file, Content: content, Blob: ch.Blob, Num: ch.Num, Lost: lost}, now, now)
	}
}

// repairRemovedOwners queues repairs for chunks recorded with an owner that
// was removed while the chunk was being written, or that joined again
// (another worker id) since the copy was written to it.
func (s *state) repairRemovedOwners(file, content osprey.UID, chunks []Chunk, now int64) {
	for _, ch := range chunks {
		for i, o := range ch.Owners {
			n, ok := s.Nodes[o]
			stale := ok && len(ch.Workers) == len(ch.Owners) && ch.Workers[i] != n.WorkerID
			if !ok || n.Removed || stale {
				s.repairChunk(file, content, ch, o, now)
			}
		}
	}
}

// withoutWorkers copies chunks without their command-only worker ids.
func withoutWorkers(chunks []Chunk) []Chunk {
	if chunks == nil {
		return nil
	}
	out := make([]Chunk, len(chunks))
	for i, ch := range chunks {
		ch.Workers = nil
		out[i] = ch
	}
	return out
}

// FindChunk returns the current record of a chunk copy set, looking in the
// uploading file first and then in the content it became part of.
func (s *state) findChunk(file, content osprey.UID, blob uint64) *Chunk {
	if f, ok := s.Files[file]; ok && file != 0 {
		for _, ch := range f.Chunks {
			if ch.Blob == blob {
				return ch
			}
		}
		if content == 0 {
			content = f.Content
		}
	}
	if content == 0 {
		// A content's id is the uid of the file that uploaded it: the
		// chunks of an upload that was merged and then deleted (the
		// content lives on through other references) are there.
		content = file
	}
	if ct, ok := s.Contents[content]; ok {
		for i := range ct.Chunks {
			if ct.Chunks[i].Blob == blob {
				return &ct.Chunks[i]
			}
		}
	}
	return nil
}

func (s *state) applyChunkMoved(c *ChunkMoved) (any, error) {
	if _, err := s.leased(c.TaskID, c.Node); err != nil {
		return nil, err
	}
	delete(s.Tasks, c.TaskID)
	if n, ok := s.Nodes[c.Add]; !ok || n.Removed {
		// The copy went to a member that is no longer one: repair again.
		if ch := s.findChunk(c.File, c.Content, c.Blob); ch != nil {
			s.enqueue(TaskRepair, (c.File | c.Content).String(), RepairPayload{Kind: RepairChunk, File: c.File, Content: c.Content,
				Blob: ch.Blob, Num: ch.Num, Shard: c.Shard, Lost: c.Remove}, c.Now, c.Now)
		}
		return nil, nil
	}
	ch := s.findChunk(c.File, c.Content, c.Blob)
	if ch == nil || c.Shard > 0 && (ch.EC == nil || c.Shard > len(ch.EC.Shards)) {
		// The chunk went away meanwhile, or another repair converted it
		// to whole replicas: the new copy is garbage.
		gone := Chunk{Blob: c.Blob, Num: c.Num, Owners: []osprey.NodeID{c.Add}}
		if c.Shard > 0 {
			gone.EC = &ECLayout{Shards: []ECShard{{Index: c.Shard - 1, Owner: c.Add}}}
		}
		s.enqueueGC([]Chunk{gone}, c.Now, c.Now)
		return nil, nil
	}
	again := func() {
		s.enqueue(TaskRepair, (c.File | c.Content).String(), RepairPayload{Kind: RepairChunk, File: c.File, Content: c.Content,
			Blob: ch.Blob, Num: ch.Num, Shard: c.Shard, Lost: c.Remove}, c.Now, c.Now)
	}
	if c.Shard > 0 {
		if ch.EC.Shards[c.Shard-1].Owner == c.Add {
			return nil, nil
		}
		for _, sh := range ch.EC.Shards {
			if sh.Owner == c.Add {
				s.enqueueGC([]Chunk{{Blob: c.Blob, Num: c.Num, Owners: []osprey.NodeID{c.Add},
					EC: &ECLayout{Shards: []ECShard{{Index: c.Shard - 1, Owner: c.Add}}}}}, c.Now, c.Now)
				again()
				return nil, nil
			}
		}
		ch.EC.Shards[c.Shard-1].Owner = c.Add
		ch.Owners = shardHolders(ch.EC)
		return nil, nil
	}
	for _, o := range ch.Owners {
		if o == c.Add {
			again()
			return nil, nil
		}
	}
	ch.Owners = replaceOwner(ch.Owners, c.Remove, c.Add)
	return nil, nil
}

func (s *state) applyObjectMoved(c *ObjectMoved) (any, error) {
	if _, err := s.leased(c.TaskID, c.Node); err != nil {
		return nil, err
	}
	delete(s.Tasks, c.TaskID)
	ct, ok := s.Contents[c.Content]
	if !ok || ct.Location == nil {
		return nil, nil
	}
	if n, ok := s.Nodes[c.Add]; !ok || n.Removed {
		s.enqueue(TaskRepair, ct.ID.String(), RepairPayload{Kind: RepairObject, Content: ct.ID, Lost: c.Remove}, c.Now, c.Now)
		return nil, nil
	}
	for _, o := range ct.Location.Nodes {
		if o == c.Add {
			s.enqueue(TaskRepair, ct.ID.String(), RepairPayload{Kind: RepairObject, Content: ct.ID, Lost: c.Remove}, c.Now, c.Now)
			return nil, nil
		}
	}
	ct.Location.Nodes = replaceOwner(ct.Location.Nodes, c.Remove, c.Add)
	return nil, nil
}

func (s *state) applyChunkConverted(c *ChunkConverted) (any, error) {
	if _, err := s.leased(c.TaskID, c.Node); err != nil {
		return nil, err
	}
	delete(s.Tasks, c.TaskID)
	ch := s.findChunk(c.File, c.Content, c.Blob)
	if ch == nil {
		s.enqueueGC([]Chunk{{Blob: c.Blob, Owners: c.Owners}}, c.Now, c.Now)
		return nil, nil
	}
	if ch.EC == nil {
		// Another repair converted it first, and both wrote whole replicas
		// under the same key: collecting this one's copies could delete
		// the record's (or one a later repair writes on the same member
		// while the gc task waits), so they are left in place.
		return nil, nil
	}
	old := cloneChunk(*ch)
	ch.EC = nil
	ch.Owners = append([]osprey.NodeID(nil), c.Owners...)
	sort.Slice(ch.Owners, func(i, j int) bool { return ch.Owners[i] < ch.Owners[j] })
	s.enqueueGC([]Chunk{old}, c.Now, c.Now)
	return nil, nil
}

func (s *state) applyNodeDown(c *NodeDown) (any, error) {
	n, ok := s.Nodes[c.ID]
	if !ok {
		return nil, errorf(ErrNotFound, "node %s not found", c.ID)
	}
	if !n.Removed && !n.Down {
		n.Down = true
		s.enqueueRepairs(c.ID, c.Time)
	}
	return *n, nil
}

func (s *state) applyNodeUp(c *NodeUp) (any, error) {
	n, ok := s.Nodes[c.ID]
	if !ok {
		return nil, errorf(ErrNotFound, "node %s not found", c.ID)
	}
	n.Down = false
	return *n, nil
}

// stripOwner forgets every copy a removed member held: replica owners and
// local object holders lose it, its shards become lost ("" owner). The
// repairs queued with the removal rebuild them.
func (s *state) stripOwner(id osprey.NodeID) {
	strip := func(c *Chunk) {
		if !hasOwner(c.Owners, id) {
			return
		}
		if c.EC != nil {
			for i := range c.EC.Shards {
				if c.EC.Shards[i].Owner == id {
					c.EC.Shards[i].Owner = ""
				}
			}
			c.Owners = shardHolders(c.EC)
			return
		}
		out := c.Owners[:0]
		for _, o := range c.Owners {
			if o != id {
				out = append(out, o)
			}
		}
		c.Owners = out
	}
	for _, f := range s.Files {
		for _, c := range f.Chunks {
			strip(c)
		}
	}
	for _, ct := range s.Contents {
		for i := range ct.Chunks {
			strip(&ct.Chunks[i])
		}
		if l := ct.Location; l != nil && hasOwner(l.Nodes, id) {
			out := l.Nodes[:0]
			for _, o := range l.Nodes {
				if o != id {
					out = append(out, o)
				}
			}
			l.Nodes = out
		}
	}
}
