package fsm

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/osprey-storage/osprey"
)

// ChunkRecord returns the current record of a chunk (see RepairPayload).
func (f *FSM) ChunkRecord(file, content osprey.UID, blob uint64) (ch Chunk, ok bool) {
	f.read(func(t *tx) {
		var p *Chunk
		if p, _, ok = t.findChunk(file, content, blob); ok {
			ch = cloneChunk(*p)
		}
	})
	return ch, ok
}

// eachStagedChunk calls fn for every staged chunk record: chunks of
// uploads in progress (by uid and number), then chunks of staged contents
// (by content id). It walks the upload-chunk table and the staged-content
// index, so its cost follows the staged data, not the number of files.
func (t *tx) eachStagedChunk(fn func(file, content osprey.UID, ch *Chunk) bool) {
	lo, hi := tableBounds(tUpChunk)
	stop := false
	t.scan(lo, hi, func(k, v []byte) bool {
		ch := new(Chunk)
		if err := json.Unmarshal(v, ch); err != nil {
			panic(fmt.Sprintf("fsm: decode chunk: %v", err))
		}
		stop = !fn(osprey.UID(binary.BigEndian.Uint64(k[2:10])), 0, ch)
		return !stop
	})
	if stop {
		return
	}
	lo, hi = tableBounds(tStaged)
	for _, k := range t.keys(lo, hi) {
		ct, ok := t.content(osprey.UID(binary.BigEndian.Uint64(k[2:])))
		if !ok {
			continue
		}
		for i := range ct.Chunks {
			if !fn(0, ct.ID, &ct.Chunks[i]) {
				return
			}
		}
	}
}

// FindBlob locates the chunk record stored under blob among the staged
// chunks. It returns the file or content holding it.
func (f *FSM) FindBlob(blob uint64) (file, content osprey.UID, ch Chunk, ok bool) {
	f.read(func(t *tx) {
		t.eachStagedChunk(func(fl, ct osprey.UID, c *Chunk) bool {
			if c.Blob == blob {
				file, content, ch, ok = fl, ct, cloneChunk(*c), true
				return false
			}
			return true
		})
	})
	return file, content, ch, ok
}

// Protection summarises how well staged data is protected: chunks counts
// staged chunk records and local object copies, under those with fewer
// copies on active members than the policy wants (replicas, capped by the
// number of active members; or all K+M shards on distinct active members).
// Staged chunks are walked (they are transient); local object copies are
// counted from a histogram of holder counts kept by every write, and only
// the objects a down member holds are read.
func (f *FSM) Protection(replicas int) (chunks, under int) {
	f.read(func(t *tx) {
		active := map[osprey.NodeID]bool{}
		var down []osprey.NodeID
		for _, n := range t.nodes() {
			switch {
			case !n.Removed && !n.Down:
				active[n.ID] = true
			case !n.Removed:
				down = append(down, n.ID)
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
		t.eachStagedChunk(func(_, _ osprey.UID, c *Chunk) bool {
			chunks++
			if c.EC != nil {
				owners := make([]osprey.NodeID, len(c.EC.Shards))
				for i, sh := range c.EC.Shards {
					owners[i] = sh.Owner
				}
				if !enough(owners, len(owners)) {
					under++
				}
			} else if !enough(c.Owners, want) {
				under++
			}
			return true
		})
		for n, count := range t.cnt.ObjectHolders {
			chunks += int(count)
			if n < want {
				under += int(count)
			}
		}
		// Objects with enough holders in number but some of them down.
		seen := map[osprey.UID]bool{}
		for _, d := range down {
			lo, hi := prefixBounds(ownerPrefix(d))
			for _, k := range t.keys(lo, hi) {
				ref := decodeOwnerRef(k, d)
				id := osprey.UID(ref.id)
				if ref.kind != refContent || ref.n != refObject || seen[id] {
					continue
				}
				seen[id] = true
				ct, ok := t.content(id)
				if ok && ct.Location != nil && len(ct.Location.Nodes) >= want && !enough(ct.Location.Nodes, want) {
					under++
				}
			}
		}
	})
	return chunks, under
}
