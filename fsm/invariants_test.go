package fsm

import (
	"encoding/json"
	"fmt"
	"sort"
	"testing"

	"github.com/osprey-storage/osprey"
)

// copyKey names one stored copy as the gc handler deletes it: a replica
// (shard 0) or one shard of a chunk on one member.
type copyKey struct {
	owner osprey.NodeID
	blob  uint64
	num   uint32
	shard int
}

func addCopies(m map[copyKey]bool, ch Chunk) {
	if ch.EC != nil {
		for _, sh := range ch.EC.Shards {
			m[copyKey{sh.Owner, ch.Blob, ch.Num, sh.Index + 1}] = true
		}
		return
	}
	for _, o := range ch.Owners {
		m[copyKey{o, ch.Blob, ch.Num, 0}] = true
	}
}

// checkInvariants returns the first violated invariant of the state (see
// DESIGN.md, "Invariants"), or "".
func checkInvariants(s *state) string {
	// Worker ids are unique across members, removed ones included, and
	// below the next one to assign.
	workers := map[uint32]osprey.NodeID{}
	for id, n := range s.Nodes {
		if n.ID != id {
			return fmt.Sprintf("node %s stored under %s", n.ID, id)
		}
		if prev, dup := workers[n.WorkerID]; dup {
			return fmt.Sprintf("worker id %d held by %s and %s", n.WorkerID, prev, id)
		}
		if n.WorkerID >= s.NextWorkerID {
			return fmt.Sprintf("worker id %d of %s not below next %d", n.WorkerID, id, s.NextWorkerID)
		}
		workers[n.WorkerID] = id
	}
	// Files: an upload has chunk records and no content; a finished file
	// references an existing content and holds no chunk records.
	refs := map[osprey.UID]int{}
	live := map[copyKey]bool{} // every stored copy a record points to
	for uid, f := range s.Files {
		if f.UID != uid || uid == 0 {
			return fmt.Sprintf("file %s stored under %s", f.UID, uid)
		}
		switch f.State {
		case StateUploading:
			if f.Content != 0 {
				return fmt.Sprintf("upload %s references content %s", uid, f.Content)
			}
			for n, ch := range f.Chunks {
				if ch.Num != n || n == 0 {
					return fmt.Sprintf("upload %s: chunk %d stored under %d", uid, ch.Num, n)
				}
				addCopies(live, *ch)
			}
		default:
			if f.Chunks != nil {
				return fmt.Sprintf("%s file %s keeps chunk records", f.State, uid)
			}
			ct, ok := s.Contents[f.Content]
			if !ok {
				return fmt.Sprintf("file %s references missing content %s", uid, f.Content)
			}
			if ct.MD5 != f.MD5 || ct.Size != f.Size {
				return fmt.Sprintf("file %s (%s, %d) and its content (%s, %d) disagree", uid, f.MD5, f.Size, ct.MD5, ct.Size)
			}
			refs[f.Content]++
		}
	}
	// Contents are reference-counted exactly and indexed by md5 unless
	// failed; a content's chunks are numbered in ascending order (1..n
	// unless from a multipart upload).
	for id, ct := range s.Contents {
		if ct.ID != id {
			return fmt.Sprintf("content %s stored under %s", ct.ID, id)
		}
		if ct.Refs != refs[id] || ct.Refs <= 0 {
			return fmt.Sprintf("content %s has refs %d, %d files reference it", id, ct.Refs, refs[id])
		}
		if ct.State == ContentTiered && (len(ct.Chunks) != 0 || ct.Location == nil) {
			return fmt.Sprintf("tiered content %s: %d chunks, location %v", id, len(ct.Chunks), ct.Location)
		}
		for i, ch := range ct.Chunks {
			// 1..n, except a multipart upload's: its parts, ascending,
			// possibly with gaps.
			if ch.Num == 0 || i > 0 && ch.Num <= ct.Chunks[i-1].Num {
				return fmt.Sprintf("content %s: chunk %d numbered %d", id, i+1, ch.Num)
			}
			addCopies(live, ch)
		}
	}
	if len(s.MD5Index) > 0 {
		return fmt.Sprintf("legacy md5 index not migrated: %v", s.MD5Index)
	}
	for k, id := range s.Dedup {
		e, ok := decodeDedupKey([]byte(k))
		ct, found := s.Contents[id]
		// Only verified contents of the key's tenant, md5, size and sha256.
		if !ok || !found || ct.Tenant != e.Tenant || ct.MD5 != e.MD5 || ct.Size != e.Size || ct.SHA256 != e.SHA256 ||
			!ct.Verified || ct.State == ContentFailed || ct.State == ContentLost {
			return fmt.Sprintf("dedup key %+v indexes content %s (%+v)", e, id, ct)
		}
	}
	// Tasks: ids below the counter, all in taskOrder (ascending), leases
	// held exactly by leased tasks; no gc task deletes a copy a record
	// still points to.
	order := map[uint64]bool{}
	if !sort.SliceIsSorted(s.taskOrder, func(i, j int) bool { return s.taskOrder[i] < s.taskOrder[j] }) {
		return "task order not ascending"
	}
	for _, id := range s.taskOrder {
		order[id] = true
	}
	for id, tk := range s.Tasks {
		if tk.ID != id || id == 0 || id > s.NextTaskID || !order[id] {
			return fmt.Sprintf("task %d (stored under %d, next %d, in order %v)", tk.ID, id, s.NextTaskID, order[id])
		}
		if (tk.State == TaskLeased) != (tk.LeaseHolder != "") {
			return fmt.Sprintf("task %d is %s with holder %q", id, tk.State, tk.LeaseHolder)
		}
		if tk.Type != TaskGC {
			continue
		}
		var p GCPayload
		if err := json.Unmarshal(tk.Payload, &p); err != nil {
			return fmt.Sprintf("gc task %d: %v", id, err)
		}
		for _, ch := range p.Chunks {
			gc := map[copyKey]bool{}
			addCopies(gc, ch)
			for k := range gc {
				if live[k] {
					return fmt.Sprintf("gc task %d deletes %+v, a recorded copy", id, k)
				}
			}
		}
	}
	return ""
}

// TestInvariants checks the state invariants along long random histories
// and the example log.
func TestInvariants(t *testing.T) {
	logs := map[string][]entry{"example": exampleLog()}
	for seed := uint64(1); seed <= 6; seed++ {
		logs[fmt.Sprintf("random-%d", seed)] = genLog(t, seed, scaled(1500))
	}
	for name, log := range logs {
		t.Run(name, func(t *testing.T) {
			a := newApplier(t)
			for i, e := range log {
				a.apply(e.Type, e.Payload)
				// Violations persist, so a sample of steps finds them
				// (the check scans the whole state).
				if i > 200 && i%7 != 0 && i != len(log)-1 {
					continue
				}
				if msg := checkInvariants(dumpState(a.f)); msg != "" {
					b, _ := json.Marshal(e.Payload)
					t.Fatalf("after entry %d (%s %s): %s", i, e.Type, b, msg)
				}
			}
			// Restored state satisfies them too (taskOrder is rebuilt).
			if msg := checkInvariants(dumpState(mustRestore(t, mustSnapshot(t, a.f)))); msg != "" {
				t.Fatalf("after restore: %s", msg)
			}
		})
	}
}

// TestFailedCommandsChangeNothing: a command answered with a domain error
// leaves the state exactly as it was (handlers check before they write),
// so a client may retry it or give up without cleaning anything.
func TestFailedCommandsChangeNothing(t *testing.T) {
	failures := 0
	for seed := uint64(1); seed <= 2; seed++ {
		a := newApplier(t)
		for i, e := range genLog(t, seed, 600) {
			before, _ := a.f.Hash()
			if r := a.apply(e.Type, e.Payload); r.Err != nil {
				failures++
				if after, _ := a.f.Hash(); after != before {
					t.Fatalf("seed %d entry %d: %s failed with %q but changed the state", seed, i, e.Type, r.Err)
				}
			}
		}
	}
	if failures < 50 {
		t.Fatalf("only %d failed commands: the generator no longer exercises failures", failures)
	}
}
