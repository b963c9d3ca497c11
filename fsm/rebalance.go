package fsm

import (
	"encoding/json"
	"fmt"

	"github.com/osprey-storage/osprey"
)

// Rebalancing moves copies to the members the ring now names after a
// membership change (repair/rebalance.go plans and runs the moves). A move
// is copied and verified first, recorded here by RebalanceDone (the owner
// swap), and the old copy is deleted only after that, by a release task
// due GCGraceMillis later.
const (
	TaskRebalance = "rebalance" // copy a batch of copies to their new ring owners
	TaskRelease   = "release"   // delete copies a recorded move left behind
)

// Move is one copy to move: a replica or shard of a staged chunk, or a
// local-backend object copy of a content.
type Move struct {
	File    osprey.UID `json:"file,omitempty"`    // uploading file holding the chunk record
	Content osprey.UID `json:"content,omitempty"` // content holding the chunk record or object
	Blob    uint64     `json:"blob,omitempty"`
	Num     uint32     `json:"num,omitempty"`
	// Shard is 0 for a replica, or Index+1 of an erasure-coded shard.
	Shard int `json:"shard,omitempty"`
	// Object marks the content's local-backend object; Bucket and Key
	// name it (the release needs them after the content may be gone).
	Object bool          `json:"object,omitempty"`
	Bucket string        `json:"bucket,omitempty"`
	Key    string        `json:"key,omitempty"`
	From   osprey.NodeID `json:"from"`
	To     osprey.NodeID `json:"to"`
	Size   int64         `json:"size"`
	// ToWorker is To's worker id when the copy was written (see
	// ChunkMoved.AddWorker); set in RebalanceDone.
	ToWorker *uint32 `json:"to_worker,omitempty"`
}

// RebalancePayload is the payload of a rebalance task.
type RebalancePayload struct {
	Moves []Move `json:"moves"`
}

// ReleasePayload is the payload of a release task: each move's copy on
// From is deleted unless the current record names From as its holder.
type ReleasePayload struct {
	Moves []Move `json:"moves"`
}

// RebalancePlan queues moves the leader planned for the active member set
// Members, as rebalance tasks of at most PerTask moves each: one entry for
// many moves.
type RebalancePlan struct {
	Members []osprey.NodeID `json:"members"`
	Moves   []Move          `json:"moves"`
	PerTask int             `json:"per_task"`
	Now     int64           `json:"now"`
}

// RebalanceDone completes a rebalance task: every move in Moved was
// copied to To and verified there. Each is recorded (From's copy replaced
// by To's) and From's copy released after the gc grace period; a move the
// record no longer allows (the chunk went, From no longer holds it, To
// already does, To's incarnation is gone) is void and its new copy is
// released instead. Moves of the task not listed failed and are planned
// again later.
type RebalanceDone struct {
	TaskID uint64        `json:"task_id"`
	Node   osprey.NodeID `json:"node"`
	Moved  []Move        `json:"moved,omitempty"`
	Now    int64         `json:"now"`
}

// RebalanceProgress is the cluster-wide rebalance record, kept with the
// cluster record.
type RebalanceProgress struct {
	// Members is the active member set last planned for.
	Members []osprey.NodeID `json:"members,omitempty"`
	// Pending counts queued moves not yet finished.
	Pending int64 `json:"pending"`
	// Planned, Moved and Bytes count queued moves, recorded moves and
	// their bytes since the cluster began.
	Planned int64 `json:"planned"`
	Moved   int64 `json:"moved"`
	Bytes   int64 `json:"bytes"`
	// StartedAt is when Pending last rose from 0; UpdatedAt the last
	// plan or record (unix ms).
	StartedAt int64 `json:"started_at,omitempty"`
	UpdatedAt int64 `json:"updated_at,omitempty"`
}

// defaultPerTask is the number of moves per rebalance task when the plan
// does not say.
const defaultPerTask = 16

func (t *tx) applyRebalancePlan(c *RebalancePlan) (any, error) {
	for _, m := range c.Moves {
		if m.From == "" || m.To == "" || m.From == m.To || !m.Object && m.Blob == 0 || m.Object && m.Content == 0 {
			return nil, errorf(ErrInvalid, "rebalance plan: bad move %+v", m)
		}
	}
	per := c.PerTask
	if per <= 0 {
		per = defaultPerTask
	}
	for i := 0; i < len(c.Moves); i += per {
		batch := c.Moves[i:min(i+per, len(c.Moves))]
		t.enqueue(TaskRebalance, string(batch[0].To), RebalancePayload{Moves: batch}, c.Now, c.Now)
	}
	p := t.rebalance()
	if p.Pending == 0 && len(c.Moves) > 0 {
		p.StartedAt = c.Now
	}
	p.Members = append([]osprey.NodeID(nil), c.Members...)
	p.Planned += int64(len(c.Moves))
	p.Pending += int64(len(c.Moves))
	p.UpdatedAt = c.Now
	t.setMeta()
	return nil, nil
}

// rebalance returns the progress record, created on first use.
func (t *tx) rebalance() *RebalanceProgress {
	if t.meta.Rebalance == nil {
		t.meta.Rebalance = &RebalanceProgress{}
	} else {
		cp := *t.meta.Rebalance
		t.meta.Rebalance = &cp
	}
	return t.meta.Rebalance
}

func (t *tx) applyRebalanceDone(c *RebalanceDone) (any, error) {
	tk, err := t.leased(c.TaskID, c.Node)
	if err != nil {
		return nil, err
	}
	var planned RebalancePayload
	if tk.Type == TaskRebalance {
		if err := json.Unmarshal(tk.Payload, &planned); err != nil {
			panic(fmt.Sprintf("fsm: decode rebalance task %d: %v", tk.ID, err))
		}
	}
	t.deleteTask(c.TaskID)
	var release []Move
	p := t.rebalance()
	for _, m := range c.Moved {
		ok, garbage := t.recordMove(m)
		if ok {
			p.Moved++
			p.Bytes += m.Size
			release = append(release, m)
		} else if garbage {
			g := m
			g.From = m.To
			release = append(release, g)
		}
	}
	p.Pending = max(0, p.Pending-int64(len(planned.Moves)))
	p.UpdatedAt = c.Now
	t.setMeta()
	if len(release) > 0 {
		for i := range release {
			release[i].ToWorker = nil
		}
		t.enqueue(TaskRelease, string(c.Node), ReleasePayload{Moves: release}, c.Now, c.Now+t.meta.Settings.GCGraceMillis)
	}
	return nil, nil
}

// recordMove swaps From for To in the move's record. It reports whether
// it did, and otherwise whether To's new copy is garbage (not named by
// the record).
func (t *tx) recordMove(m Move) (done, garbage bool) {
	if t.staleTarget(m.To, m.ToWorker) {
		return false, false // the copy went with that incarnation
	}
	if m.Object {
		ct, ok := t.content(m.Content)
		if !ok || ct.Location == nil || len(ct.Location.Nodes) == 0 {
			return false, true
		}
		if hasOwner(ct.Location.Nodes, m.To) {
			return false, false
		}
		if !hasOwner(ct.Location.Nodes, m.From) {
			return false, true
		}
		ct.Location.Nodes = replaceOwner(ct.Location.Nodes, m.From, m.To)
		t.putContent(ct)
		return true, false
	}
	ch, loc, ok := t.findChunk(m.File, m.Content, m.Blob)
	if !ok || m.Shard > 0 && (ch.EC == nil || m.Shard > len(ch.EC.Shards)) || m.Shard == 0 && ch.EC != nil {
		return false, true
	}
	if m.Shard > 0 {
		sh := &ch.EC.Shards[m.Shard-1]
		if sh.Owner == m.To {
			return false, false
		}
		if sh.Owner != m.From || hasOwner(chunkHolders(ch), m.To) {
			// To holds another shard: its copy of this one is garbage.
			return false, true
		}
		sh.Owner = m.To
		ch.Owners = shardHolders(ch.EC)
	} else {
		if hasOwner(ch.Owners, m.To) {
			return false, false
		}
		if !hasOwner(ch.Owners, m.From) {
			return false, true
		}
		ch.Owners = replaceOwner(ch.Owners, m.From, m.To)
	}
	t.putChunkAt(loc, ch)
	return true, false
}

// Rebalance returns the cluster-wide rebalance progress.
func (f *FSM) Rebalance() RebalanceProgress {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.meta.Rebalance == nil {
		return RebalanceProgress{}
	}
	p := *f.meta.Rebalance
	p.Members = append([]osprey.NodeID(nil), p.Members...)
	return p
}

// Held is one copy a member holds: a chunk record (replica or shard) or a
// content's local-backend object.
type Held struct {
	File    osprey.UID // uploading file of a chunk, else 0
	Content osprey.UID // content of a chunk or object
	Chunk   Chunk      // the chunk record; zero for an object
	Object  bool
	// Location and Size describe an object copy; MD5 is its content's.
	Location Location
	Size     int64
	MD5      string
}

// HeldBy returns the copies node holds among the next limit entries of
// its owner index after cursor (nil: from the start), and the cursor of
// the next page (nil at the end). It walks the owner index: the cost
// follows the copies node holds, not the number of files.
func (f *FSM) HeldBy(node osprey.NodeID, cursor []byte, limit int) (out []Held, next []byte) {
	f.read(func(t *tx) {
		lo, hi := prefixBounds(ownerPrefix(node))
		if cursor != nil {
			lo = append(append([]byte(nil), cursor...), 0)
		}
		var refs [][]byte
		t.scan(lo, hi, func(k, _ []byte) bool {
			refs = append(refs, append([]byte(nil), k...))
			return len(refs) < limit
		})
		if len(refs) == limit {
			next = refs[len(refs)-1]
		}
		contents := map[osprey.UID]*Content{}
		content := func(id osprey.UID) (*Content, bool) {
			if ct, ok := contents[id]; ok {
				return ct, ct != nil
			}
			ct, ok := t.content(id)
			if !ok {
				ct = nil
			}
			contents[id] = ct
			return ct, ok
		}
		for _, k := range refs {
			ref := decodeOwnerRef(k, node)
			var h Held
			switch {
			case ref.kind == refUpload:
				ch, ok := t.upChunk(osprey.UID(ref.id), ref.n)
				if !ok {
					continue
				}
				h.File, h.Chunk, h.Size = osprey.UID(ref.id), cloneChunk(*ch), ch.Size
			default:
				ct, ok := content(osprey.UID(ref.id))
				if !ok {
					continue
				}
				h.Content = ct.ID
				if ref.n == refObject {
					if ct.Location == nil {
						continue
					}
					h.Object, h.Size, h.MD5 = true, ct.Size, ct.MD5
					h.Location = *ct.Location
					h.Location.Nodes = append([]osprey.NodeID(nil), ct.Location.Nodes...)
				} else if int(ref.n) < len(ct.Chunks) {
					h.Chunk, h.Size = cloneChunk(ct.Chunks[ref.n]), ct.Chunks[ref.n].Size
				} else {
					continue
				}
			}
			out = append(out, h)
		}
	})
	return out, next
}

// holderGone says whether nodes[i], a member a copy was written to (a tier
// pass's holder, an upload's chunk owner), is gone since: removed, or
// removed and re-added (its worker id differs from workers[i], when known:
// always when exact, otherwise when not 0).
func (t *tx) holderGone(nodes []osprey.NodeID, workers []uint32, exact bool, i int) bool {
	n, ok := t.node(nodes[i])
	if !ok || n.Removed {
		return true
	}
	return len(workers) == len(nodes) && (exact || workers[i] != 0) && n.WorkerID != workers[i]
}

// dropRemovedHolders returns nodes without the members removed since a
// tier task copied the object to them (their copy went with them; a member
// re-added under the same id starts empty), and queues a repair for each
// copy dropped. Found by the member nemesis: a tier task that wrote to a
// member while it was being removed recorded it as a holder, and the
// object was lost with the next removal.
func (t *tx) dropRemovedHolders(id osprey.UID, nodes []osprey.NodeID, workers []uint32, exact bool, now int64) []osprey.NodeID {
	var out []osprey.NodeID
	for i, o := range nodes {
		if !t.holderGone(nodes, workers, exact, i) {
			out = append(out, o)
			continue
		}
		t.enqueue(TaskRepair, id.String(), RepairPayload{Kind: RepairObject, Content: id, Lost: o}, now, now)
	}
	if len(out) == len(nodes) {
		return nodes
	}
	return out
}
