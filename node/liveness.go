package node

import (
	"context"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/fsm"
)

// livenessLoop runs on every node but acts only on the leader: it checks
// each member's /livez, marks a member down once it has been unreachable
// for RepairGrace (which queues repairs of every copy it holds), and up
// again when it answers.
func (n *Node) livenessLoop() {
	if n.cfg.RepairGrace <= 0 {
		return
	}
	every := min(n.cfg.RepairGrace/4, 2*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	unreachableSince := map[osprey.NodeID]time.Time{}
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		if !n.raft.IsLeader() {
			clear(unreachableSince)
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, every)
		nodes, err := n.Nodes(ctx)
		cancel()
		if err != nil {
			continue
		}
		for _, ni := range nodes {
			id := osprey.NodeID(ni.ID)
			rec, ok := n.fsm.Node(id)
			if !ok || rec.Removed || ni.ID == n.id {
				continue
			}
			if ni.Reachable {
				delete(unreachableSince, id)
				if rec.Down {
					n.applyLiveness(fsm.CmdNodeUp, fsm.NodeUp{ID: id}, ni.ID, "node reachable again")
				}
				continue
			}
			since, seen := unreachableSince[id]
			if !seen {
				unreachableSince[id] = time.Now()
				continue
			}
			if !rec.Down && time.Since(since) >= n.cfg.RepairGrace {
				n.applyLiveness(fsm.CmdNodeDown, fsm.NodeDown{ID: id, Time: time.Now().UnixMilli()}, ni.ID,
					"node unreachable past the repair grace period; rebuilding its copies elsewhere")
			}
		}
	}
}

func (n *Node) applyLiveness(t fsm.CommandType, payload any, id, msg string) {
	ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
	defer cancel()
	if err := n.prop.Apply(ctx, t, payload, nil); err != nil {
		n.log.Warn("liveness update failed", "node", id, "err", err)
		return
	}
	n.log.Warn(msg, "node", id)
}
