package node

import (
	"context"
	"maps"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
)

// livenessLoop checks each member's /livez on every node, so every node's
// status can say which member is unreachable and since when. On the
// leader it also marks a member down once it has been unreachable for
// RepairGrace (which queues repairs of every copy it holds), and up again
// when it answers.
func (n *Node) livenessLoop() {
	every := 2 * time.Second
	if g := n.cfg.RepairGrace; g > 0 {
		every = min(g/4, every)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	unreachableSince := map[osprey.NodeID]time.Time{}
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(n.ctx, every)
		nodes, err := n.Nodes(ctx)
		cancel()
		if err != nil {
			continue
		}
		leader := n.raft.IsLeader()
		current := map[osprey.NodeID]bool{}
		for _, ni := range nodes {
			id := osprey.NodeID(ni.ID)
			rec, ok := n.fsm.Node(id)
			if !ok || rec.Removed || ni.ID == n.id {
				continue
			}
			current[id] = true
			if ni.Reachable {
				delete(unreachableSince, id)
				if leader && rec.Down {
					n.applyLiveness(fsm.CmdNodeUp, fsm.NodeUp{ID: id}, ni.ID, "node reachable again")
				}
				continue
			}
			since, seen := unreachableSince[id]
			if !seen {
				unreachableSince[id] = time.Now()
				continue
			}
			if leader && n.cfg.RepairGrace > 0 && !rec.Down && time.Since(since) >= n.cfg.RepairGrace {
				n.applyLiveness(fsm.CmdNodeDown, fsm.NodeDown{ID: id, Time: time.Now().UnixMilli()}, ni.ID,
					"node unreachable past the repair grace period; rebuilding its copies elsewhere")
			}
		}
		for id := range unreachableSince {
			if !current[id] {
				delete(unreachableSince, id) // removed meanwhile
			}
		}
		n.unreachMu.Lock()
		n.unreachable = maps.Clone(unreachableSince)
		n.unreachMu.Unlock()
	}
}

// degraded lists the members that cost protection now: unreachable from
// this node (since when it first saw it; a member is only counted after a
// second failed check), or marked down in the state.
func (n *Node) degraded() []httpapi.DegradedMember {
	n.unreachMu.Lock()
	unreach := maps.Clone(n.unreachable)
	n.unreachMu.Unlock()
	var out []httpapi.DegradedMember
	for _, rec := range n.fsm.Nodes() {
		if rec.Removed {
			continue
		}
		since, seen := unreach[rec.ID]
		if !seen && !rec.Down {
			continue
		}
		d := httpapi.DegradedMember{ID: string(rec.ID), Down: rec.Down}
		if seen {
			s := since.UTC()
			d.UnreachableSince = &s
			if !rec.Down && n.cfg.RepairGrace > 0 {
				at := s.Add(n.cfg.RepairGrace)
				d.RepairAt = &at
			}
		}
		out = append(out, d)
	}
	return out
}

func (n *Node) applyLiveness(t fsm.CommandType, payload any, id, msg string) {
	ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
	defer cancel()
	if err := n.apply(ctx, t, payload, nil); err != nil {
		n.log.Warn("liveness update failed", "node", id, "err", err)
		return
	}
	n.log.Warn(msg, "node", id)
}
