package fsm

import (
	"sort"

	"github.com/osprey-storage/osprey"
)

// Restored reconciles a state loaded from a backup (raft's user restore)
// with the cluster it was loaded into. The leader proposes it right after
// the restore, listing the current Raft members.
type Restored struct {
	Members []NodeUpsert `json:"members"`
	// JoinTokenHash, if set, replaces the backup's: the cluster keeps the
	// join token its operators use now.
	JoinTokenHash string `json:"join_token_hash,omitempty"`
	// NewCluster is set when the backup comes from another cluster (a
	// disaster recovery into fresh nodes): none of the current members
	// holds a copy the backup records, even one with the same id as a
	// member of the backup, so every recorded member's copies are gone.
	NewCluster bool  `json:"new_cluster,omitempty"`
	Time       int64 `json:"time"`
}

// RestoredResult says what the reconciliation changed.
type RestoredResult struct {
	// Removed lists members of the backup that are not in the cluster.
	Removed []osprey.NodeID `json:"removed,omitempty"`
	// Lost lists contents whose bytes are gone with them: staged only, or
	// kept only on removed members' local disks.
	Lost []osprey.UID `json:"lost,omitempty"`
}

// applyRestored removes every recorded member that is not a current
// member (queueing repairs of what survives elsewhere, as a removal
// does; in a new cluster every recorded member, without repairs), records the current members (a member unknown to the backup gets
// a fresh worker id, past every id the backup knew), and marks lost the
// contents none of the remaining members or the backend holds: their files
// then report it instead of serving anything.
func (t *tx) applyRestored(c *Restored) (any, error) {
	if len(c.Members) == 0 {
		return nil, errorf(ErrInvalid, "restored: no members")
	}
	current := map[osprey.NodeID]bool{}
	for _, m := range c.Members {
		if m.ID == "" || m.RaftAddr == "" {
			return nil, errorf(ErrInvalid, "restored: member without id or raft address")
		}
		current[m.ID] = true
	}
	res := RestoredResult{}
	if c.JoinTokenHash != "" {
		t.meta.JoinTokenHash = c.JoinTokenHash
		t.setMeta()
	}
	var gone []osprey.NodeID
	lo, hi := tableBounds(tNode)
	t.scan(lo, hi, func(_, v []byte) bool {
		n := mustDecode[Node](v)
		if !n.Removed && (c.NewCluster || !current[n.ID]) {
			gone = append(gone, n.ID)
		}
		return true
	})
	// Contents any removed member held a copy of are the candidates.
	candidates := map[osprey.UID]bool{}
	for _, id := range gone {
		plo, phi := prefixBounds(ownerPrefix(id))
		for _, k := range t.keys(plo, phi) {
			if ref := decodeOwnerRef(k, id); ref.kind == refContent {
				candidates[osprey.UID(ref.id)] = true
			}
		}
		if c.NewCluster {
			// Nobody holds anything the backup recorded: there is
			// nothing to repair from, only copies to forget.
			n, _ := t.node(id)
			n.Removed = true
			t.putNode(n)
			t.stripOwner(id)
		} else if _, err := t.applyNodeRemove(&NodeRemove{ID: id, Time: c.Time}); err != nil {
			return nil, err
		}
		res.Removed = append(res.Removed, id)
	}
	for i := range c.Members {
		m := c.Members[i]
		m.Time = c.Time
		if _, err := t.applyNodeUpsert(&m); err != nil {
			return nil, err
		}
	}
	ids := make([]osprey.UID, 0, len(candidates))
	for id := range candidates {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		ct, ok := t.content(id)
		if !ok || ct.State == ContentLost || readable(ct) {
			continue
		}
		ct.State = ContentLost
		t.putContent(ct)
		t.unindexContent(ct)
		res.Lost = append(res.Lost, id)
	}
	return res, nil
}

// readable reports whether some copy of every byte of ct is still
// recorded. It is asked only of contents a removed member held a copy of,
// so a tiered one is a local-backend object (a shared backend's objects
// have no holders) and needs a holder left; a staged one needs a replica
// or K shards of every chunk.
func readable(ct *Content) bool {
	if ct.Location != nil {
		return len(ct.Location.Nodes) > 0
	}
	for _, ch := range ct.Chunks {
		if ch.EC != nil {
			have := 0
			for _, sh := range ch.EC.Shards {
				if sh.Owner != "" {
					have++
				}
			}
			if have < ch.EC.K {
				return false
			}
			continue
		}
		if len(ch.Owners) == 0 {
			return false
		}
	}
	return true
}
