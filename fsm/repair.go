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
	// AddWorker is Add's worker id when the copy was written. A member
	// that is removed and joins again gets a new worker id, so a copy
	// written to an earlier incarnation (wiped since) is not recorded as
	// held by the current one. Absent in entries of older builds.
	AddWorker *uint32 `json:"add_worker,omitempty"`
	Now       int64   `json:"now"`
}

// ObjectMoved records a rebuilt local-backend object copy.
type ObjectMoved struct {
	TaskID  uint64        `json:"task_id"`
	Node    osprey.NodeID `json:"node"`
	Content osprey.UID    `json:"content"`
	Remove  osprey.NodeID `json:"remove"`
	Add     osprey.NodeID `json:"add"`
	// AddWorker: see ChunkMoved.
	AddWorker *uint32 `json:"add_worker,omitempty"`
	Now       int64   `json:"now"`
}

// staleTarget reports whether a repair's new copy went to an incarnation
// of add that is gone: add is not a member (removed, or never known), or
// joined again (new worker id) after the copy was written. A record
// without a worker id is checked for membership too: a repair whose ring
// still named a member that had just been removed recorded its copy there
// (the node had no worker id to give), and that copy was lost when the
// member was wiped, with the content counted as fully protected (seen in
// a 10-minute chaos run).
func (t *tx) staleTarget(add osprey.NodeID, worker *uint32) bool {
	n, ok := t.node(add)
	if !ok || n.Removed {
		return true
	}
	return worker != nil && n.WorkerID != *worker
}

func hasOwner(owners []osprey.NodeID, id osprey.NodeID) bool {
	for _, o := range owners {
		if o == id {
			return true
		}
	}
	return false
}

// enqueueRepairs queues a repair for every copy the member held, in owner
// index order (uploading files by uid and chunk number, then contents by
// id, chunk order, local object), the same on every replica.
func (t *tx) enqueueRepairs(lost osprey.NodeID, now int64) {
	lo, hi := prefixBounds(ownerPrefix(lost))
	for _, k := range t.keys(lo, hi) {
		ref := decodeOwnerRef(k, lost)
		switch {
		case ref.kind == refUpload:
			if ch, ok := t.upChunk(osprey.UID(ref.id), ref.n); ok {
				t.repairChunk(osprey.UID(ref.id), 0, *ch, lost, now)
			}
		case ref.n == refObject:
			t.enqueue(TaskRepair, osprey.UID(ref.id).String(), RepairPayload{Kind: RepairObject, Content: osprey.UID(ref.id), Lost: lost}, now, now)
		default:
			if ct, ok := t.content(osprey.UID(ref.id)); ok && int(ref.n) < len(ct.Chunks) {
				t.repairChunk(0, ct.ID, ct.Chunks[ref.n], lost, now)
			}
		}
	}
}

// repairChunk queues one repair per copy (replica or shard) lost held.
func (t *tx) repairChunk(file, content osprey.UID, ch Chunk, lost osprey.NodeID, now int64) {
	target := (file | content).String()
	if ch.EC != nil {
		for _, sh := range ch.EC.Shards {
			if sh.Owner == lost {
				t.enqueue(TaskRepair, target, RepairPayload{Kind: RepairChunk, File: file, Content: content, Blob: ch.Blob, Num: ch.Num, Shard: sh.Index + 1, Lost: lost}, now, now)
			}
		}
		return
	}
	if hasOwner(ch.Owners, lost) {
		t.enqueue(TaskRepair, target, RepairPayload{Kind: RepairChunk, File: file, Content: content, Blob: ch.Blob, Num: ch.Num, Lost: lost}, now, now)
	}
}

// repairGoneOwners queues repairs for chunks recorded with an owner that
// was removed while the chunk was being written, or that is a later
// incarnation of the member the copy was written to (Chunk.Workers: the
// member was removed, wiped and joined again meanwhile, so the copy is
// gone).
func (t *tx) repairGoneOwners(file, content osprey.UID, chunks []Chunk, now int64) {
	for _, ch := range chunks {
		for i, o := range ch.Owners {
			if t.holderGone(ch.Owners, ch.Workers, true, i) { // Workers are exact when set
				t.repairChunk(file, content, ch, o, now)
			}
		}
	}
}

// stripWorkers returns chunks without their command-only Workers.
func stripWorkers(chunks []Chunk) []Chunk {
	var out []Chunk
	for i := range chunks {
		if chunks[i].Workers == nil {
			continue
		}
		if out == nil {
			out = append([]Chunk(nil), chunks...)
		}
		out[i].Workers = nil
	}
	if out == nil {
		return chunks
	}
	return out
}

// chunkLoc names where a chunk record lives: an uploading file's chunk
// number, or a content's chunk index.
type chunkLoc struct {
	file    osprey.UID // set for an upload chunk
	content osprey.UID // set for a content chunk
	num     uint32     // upload chunk number
	index   int        // content chunk index
}

// findChunk returns the current record of a chunk copy set, looking in the
// uploading file first and then in the content it became part of.
func (t *tx) findChunk(file, content osprey.UID, blob uint64) (*Chunk, chunkLoc, bool) {
	if file != 0 {
		if f, ok := t.file(file); ok {
			for n, ch := range t.upChunks(file) {
				if ch.Blob == blob {
					return ch, chunkLoc{file: file, num: n}, true
				}
			}
			if content == 0 {
				content = f.Content
			}
		}
	}
	if content == 0 {
		// A content's id is the uid of the file that uploaded it: the
		// chunks of an upload that was merged and then deleted (the
		// content lives on through other references) are there.
		content = file
	}
	if ct, ok := t.content(content); ok {
		for i := range ct.Chunks {
			if ct.Chunks[i].Blob == blob {
				return &ct.Chunks[i], chunkLoc{content: content, index: i}, true
			}
		}
	}
	return nil, chunkLoc{}, false
}

// putChunkAt writes a changed chunk record back where findChunk found it.
func (t *tx) putChunkAt(loc chunkLoc, ch *Chunk) {
	if loc.file != 0 {
		t.putUpChunk(loc.file, ch)
		return
	}
	ct, _ := t.content(loc.content)
	ct.Chunks[loc.index] = *ch
	t.putContent(ct)
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

func (t *tx) applyChunkMoved(c *ChunkMoved) (any, error) {
	if _, err := t.leased(c.TaskID, c.Node); err != nil {
		return nil, err
	}
	t.deleteTask(c.TaskID)
	again := func(ch *Chunk) {
		t.enqueue(TaskRepair, (c.File | c.Content).String(), RepairPayload{Kind: RepairChunk, File: c.File, Content: c.Content,
			Blob: ch.Blob, Num: ch.Num, Shard: c.Shard, Lost: c.Remove}, c.Now, c.Now)
	}
	if t.staleTarget(c.Add, c.AddWorker) {
		// The copy is gone with that incarnation: repair again.
		if ch, _, ok := t.findChunk(c.File, c.Content, c.Blob); ok {
			again(ch)
		}
		return nil, nil
	}
	ch, loc, ok := t.findChunk(c.File, c.Content, c.Blob)
	if !ok || c.Shard > 0 && (ch.EC == nil || c.Shard > len(ch.EC.Shards)) {
		// The chunk went away meanwhile, or another repair converted it
		// to whole replicas: the new copy is garbage.
		gone := Chunk{Blob: c.Blob, Num: c.Num, Owners: []osprey.NodeID{c.Add}}
		if c.Shard > 0 {
			gone.EC = &ECLayout{Shards: []ECShard{{Index: c.Shard - 1, Owner: c.Add}}}
		}
		t.enqueueGC([]Chunk{gone}, c.Now, c.Now)
		return nil, nil
	}
	// Two repairs of the same chunk that ran together (two members lost
	// at once) may both have picked the same new member. Recording the
	// second as the first was (drop Remove, add Add) would leave the chunk
	// one copy short with no repair queued, for ever: the record keeps
	// what it has and the repair runs again, now seeing Add as a holder.
	if c.Shard > 0 {
		sh := &ch.EC.Shards[c.Shard-1]
		switch {
		case sh.Owner == c.Add:
			return nil, nil
		case hasOwner(chunkHolders(ch), c.Add):
			// Add holds another shard: its copy of this one is garbage.
			t.enqueueGC([]Chunk{{Blob: c.Blob, Num: c.Num, Owners: []osprey.NodeID{c.Add},
				EC: &ECLayout{Shards: []ECShard{{Index: c.Shard - 1, Owner: c.Add}}}}}, c.Now, c.Now)
			again(ch)
			return nil, nil
		}
		sh.Owner = c.Add
		ch.Owners = shardHolders(ch.EC)
	} else {
		if hasOwner(ch.Owners, c.Add) {
			// The same key on the same member: the record's own copy.
			again(ch)
			return nil, nil
		}
		ch.Owners = replaceOwner(ch.Owners, c.Remove, c.Add)
	}
	t.putChunkAt(loc, ch)
	return nil, nil
}

func (t *tx) applyObjectMoved(c *ObjectMoved) (any, error) {
	if _, err := t.leased(c.TaskID, c.Node); err != nil {
		return nil, err
	}
	t.deleteTask(c.TaskID)
	ct, ok := t.content(c.Content)
	if !ok || ct.Location == nil {
		return nil, nil
	}
	if t.staleTarget(c.Add, c.AddWorker) {
		// The copy is gone with that incarnation: repair again.
		t.enqueue(TaskRepair, ct.ID.String(), RepairPayload{Kind: RepairObject, Content: ct.ID, Lost: c.Remove}, c.Now, c.Now)
		return nil, nil
	}
	if hasOwner(ct.Location.Nodes, c.Add) {
		// Another repair put its copy there first (see applyChunkMoved).
		t.enqueue(TaskRepair, ct.ID.String(), RepairPayload{Kind: RepairObject, Content: ct.ID, Lost: c.Remove}, c.Now, c.Now)
		return nil, nil
	}
	ct.Location.Nodes = replaceOwner(ct.Location.Nodes, c.Remove, c.Add)
	t.putContent(ct)
	return nil, nil
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

func (t *tx) applyChunkConverted(c *ChunkConverted) (any, error) {
	if _, err := t.leased(c.TaskID, c.Node); err != nil {
		return nil, err
	}
	t.deleteTask(c.TaskID)
	ch, loc, ok := t.findChunk(c.File, c.Content, c.Blob)
	if !ok {
		t.enqueueGC([]Chunk{{Blob: c.Blob, Owners: c.Owners}}, c.Now, c.Now)
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
	t.putChunkAt(loc, ch)
	t.enqueueGC([]Chunk{old}, c.Now, c.Now)
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

func (t *tx) applyNodeDown(c *NodeDown) (any, error) {
	n, ok := t.node(c.ID)
	if !ok {
		return nil, errorf(ErrNotFound, "node %s not found", c.ID)
	}
	if !n.Removed && !n.Down {
		n.Down = true
		t.putNode(n)
		t.enqueueRepairs(c.ID, c.Time)
	}
	return *n, nil
}

func (t *tx) applyNodeUp(c *NodeUp) (any, error) {
	n, ok := t.node(c.ID)
	if !ok {
		return nil, errorf(ErrNotFound, "node %s not found", c.ID)
	}
	n.Down = false
	t.putNode(n)
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
func (t *tx) stripOwner(id osprey.NodeID) {
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
	lo, hi := prefixBounds(ownerPrefix(id))
	for _, k := range t.keys(lo, hi) {
		ref := decodeOwnerRef(k, id)
		if ref.kind == refUpload {
			if ch, ok := t.upChunk(osprey.UID(ref.id), ref.n); ok {
				strip(ch)
				t.putUpChunk(osprey.UID(ref.id), ch)
			}
			continue
		}
		ct, ok := t.content(osprey.UID(ref.id))
		if !ok {
			continue
		}
		if ref.n == refObject {
			if l := ct.Location; l != nil && hasOwner(l.Nodes, id) {
				out := l.Nodes[:0]
				for _, o := range l.Nodes {
					if o != id {
						out = append(out, o)
					}
				}
				l.Nodes = out
			}
		} else if int(ref.n) < len(ct.Chunks) {
			strip(&ct.Chunks[ref.n])
		}
		t.putContent(ct)
	}
}
