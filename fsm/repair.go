package fsm

import (
	"sort"

	"github.com/osprey-storage/osprey"
)

// TaskRepair restores the redundancy a removed member took with it.
const TaskRepair = "repair"

// Repair kinds.
const (
	RepairChunk  = "chunk"  // a staged chunk copy
	RepairObject = "object" // a tiered object copy on a node's local disk
)

// RepairPayload names the copy to rebuild elsewhere.
type RepairPayload struct {
	Kind    string     `json:"kind"`
	File    osprey.UID `json:"file,omitempty"`    // uploading file holding the chunk record
	Content osprey.UID `json:"content,omitempty"` // content holding the chunk record or object
	Blob    uint64     `json:"blob,omitempty"`
	Num     uint32     `json:"num,omitempty"`
	// Shard is 0 for a replica, or Index+1 of an erasure-coded shard.
	Shard int           `json:"shard,omitempty"`
	Lost  osprey.NodeID `json:"lost"`
}

// ChunkMoved records a rebuilt chunk copy: Add now holds it, Remove no
// longer counts. It is proposed only after Add stored the copy durably.
type ChunkMoved struct {
	TaskID  uint64        `json:"task_id"`
	Node    osprey.NodeID `json:"node"`
	File    osprey.UID    `json:"file,omitempty"`
	Content osprey.UID    `json:"content,omitempty"`
	Blob    uint64        `json:"blob"`
	Num     uint32        `json:"num"`
	Shard   int           `json:"shard,omitempty"` // 0 replica, Index+1 shard
	Remove  osprey.NodeID `json:"remove"`
	Add     osprey.NodeID `json:"add"`
	Now     int64         `json:"now"`
}

// ObjectMoved records a rebuilt local-backend object copy.
type ObjectMoved struct {
	TaskID  uint64        `json:"task_id"`
	Node    osprey.NodeID `json:"node"`
	Content osprey.UID    `json:"content"`
	Remove  osprey.NodeID `json:"remove"`
	Add     osprey.NodeID `json:"add"`
	Now     int64         `json:"now"`
}

func hasOwner(owners []osprey.NodeID, id osprey.NodeID) bool {
	for _, o := range owners {
		if o == id {
			return true
		}
	}
	return false
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
// was removed while the chunk was being written.
func (s *state) repairRemovedOwners(file, content osprey.UID, chunks []Chunk, now int64) {
	for _, ch := range chunks {
		for _, o := range ch.Owners {
			if n, ok := s.Nodes[o]; !ok || n.Removed {
				s.repairChunk(file, content, ch, o, now)
			}
		}
	}
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

func replaceOwner(owners []osprey.NodeID, remove, add osprey.NodeID) []osprey.NodeID {
	out := make([]osprey.NodeID, 0, len(owners)+1)
	for _, o := range owners {
		if o != remove && o != add {
			out = append(out, o)
		}
	}
	out = append(out, add)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (s *state) applyChunkMoved(c *ChunkMoved) (any, error) {
	if _, err := s.leased(c.TaskID, c.Node); err != nil {
		return nil, err
	}
	delete(s.Tasks, c.TaskID)
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
	if c.Shard > 0 {
		ch.EC.Shards[c.Shard-1].Owner = c.Add
		ch.Owners = shardHolders(ch.EC)
		return nil, nil
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
	ct.Location.Nodes = replaceOwner(ct.Location.Nodes, c.Remove, c.Add)
	return nil, nil
}

// ChunkRecord returns the current record of a chunk (see RepairPayload).
func (f *FSM) ChunkRecord(file, content osprey.UID, blob uint64) (Chunk, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	ch := f.s.findChunk(file, content, blob)
	if ch == nil {
		return Chunk{}, false
	}
	return cloneChunk(*ch), true
}

// FindBlob locates the chunk record stored under blob, scanning the state
// (corruption is rare, so no index is kept). It returns the file or content
// holding it.
func (f *FSM) FindBlob(blob uint64) (file, content osprey.UID, ch Chunk, ok bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for u, x := range f.s.Files {
		for _, c := range x.Chunks {
			if c.Blob == blob {
				return u, 0, cloneChunk(*c), true
			}
		}
	}
	for id, ct := range f.s.Contents {
		for _, c := range ct.Chunks {
			if c.Blob == blob {
				return 0, id, cloneChunk(c), true
			}
		}
	}
	return 0, 0, Chunk{}, false
}

// ChunkIndex returns every staged chunk record by blob id (uploads in
// progress and staged contents), for a scrub pass.
func (f *FSM) ChunkIndex() map[uint64]Chunk {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := map[uint64]Chunk{}
	for _, x := range f.s.Files {
		for _, c := range x.Chunks {
			out[c.Blob] = cloneChunk(*c)
		}
	}
	for _, ct := range f.s.Contents {
		for _, c := range ct.Chunks {
			out[c.Blob] = cloneChunk(c)
		}
	}
	return out
}

// Protection summarises how well staged data is protected: chunks counts
// staged chunk records and local object copies, under those with fewer
// copies on active members than the policy wants (replicas, capped by the
// number of active members; or all K+M shards on distinct active members).
func (f *FSM) Protection(replicas int) (chunks, under int) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	active := map[osprey.NodeID]bool{}
	for _, n := range f.s.Nodes {
		if !n.Removed && !n.Down {
			active[n.ID] = true
		}
	}
	want := min(replicas, len(active))
	enough := func(ids []osprey.NodeID, need int) bool {
		seen := map[osprey.NodeID]bool{}
		for _, id := range ids {
			if active[id] {
				seen[id] = true
			}
		}
		return len(seen) >= need
	}
	check := func(c *Chunk) {
		chunks++
		if c.EC != nil {
			owners := make([]osprey.NodeID, len(c.EC.Shards))
			for i, sh := range c.EC.Shards {
				owners[i] = sh.Owner
			}
			if !enough(owners, len(owners)) {
				under++
			}
			return
		}
		if !enough(c.Owners, want) {
			under++
		}
	}
	for _, x := range f.s.Files {
		for _, c := range x.Chunks {
			check(c)
		}
	}
	for _, ct := range f.s.Contents {
		for i := range ct.Chunks {
			check(&ct.Chunks[i])
		}
		if ct.Location != nil && len(ct.Location.Nodes) > 0 {
			chunks++
			if !enough(ct.Location.Nodes, want) {
				under++
			}
		}
	}
	return chunks, under
}

// ChunkConverted replaces an erasure-coded chunk's shards with whole
// replicas, when too few members are left to hold K+M distinct shards. The
// replicas are durable before this is proposed; the old shards are
// collected by a gc task.
type ChunkConverted struct {
	TaskID  uint64          `json:"task_id"`
	Node    osprey.NodeID   `json:"node"`
	File    osprey.UID      `json:"file,omitempty"`
	Content osprey.UID      `json:"content,omitempty"`
	Blob    uint64          `json:"blob"`
	Owners  []osprey.NodeID `json:"owners"`
	Now     int64           `json:"now"`
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

// NodeDown marks a member unreachable past the repair grace period.
type NodeDown struct {
	ID   osprey.NodeID `json:"id"`
	Time int64         `json:"time"`
}

// NodeUp clears Down.
type NodeUp struct {
	ID osprey.NodeID `json:"id"`
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

// shardHolders lists every shard holder once, sorted ("" = lost shard).
func shardHolders(l *ECLayout) []osprey.NodeID {
	owners := make([]osprey.NodeID, 0, len(l.Shards))
	for _, sh := range l.Shards {
		if sh.Owner != "" && !hasOwner(owners, sh.Owner) {
			owners = append(owners, sh.Owner)
		}
	}
	sort.Slice(owners, func(i, j int) bool { return owners[i] < owners[j] })
	return owners
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
