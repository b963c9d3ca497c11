package node_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/node"
)

// fullyProtected reports whether every chunk and local object of the
// cluster has `want` copies on active members (checked from the FSM's
// ownership records).
func fullyProtected(t *testing.T, c *cluster, uids []string, want int) bool {
	t.Helper()
	f := c.Leader().FSM()
	active := map[osprey.NodeID]bool{}
	for _, n := range f.Nodes() {
		if !n.Removed {
			active[n.ID] = true
		}
	}
	count := func(ids []osprey.NodeID) int {
		k := 0
		for _, id := range ids {
			if active[id] {
				k++
			}
		}
		return k
	}
	for _, u := range uids {
		file, ok := f.File(mustUID(t, u))
		if !ok {
			return false
		}
		ct, _ := f.Content(file.Content)
		for _, ch := range ct.Chunks {
			if count(ch.Owners) < want {
				return false
			}
		}
		if ct.Location != nil && count(ct.Location.Nodes) < want {
			return false
		}
	}
	return true
}

func TestRepairAfterNodeRemovalRestoresProtection(t *testing.T) {
	c := newCluster(t, 4)
	var uids []string
	var datas [][]byte
	for i := 0; i < 6; i++ {
		data := content(40+i, i*mib/2+7)
		datas = append(datas, data)
		uids = append(uids, uploadSingle(t, c.nodes[i%4], fmt.Sprintf("r%d.gif", i), data))
	}
	// Half of them stay staged (tiering blocked by the dead node below is
	// not needed: repair covers both staged chunks and tiered copies).
	waitFor(t, 30*time.Second, "tiered", func() bool {
		for _, u := range uids {
			if info, err := c.nodes[0].Storage().Stat(context.Background(), mustUID(t, u)); err != nil || info.State != "tiered" {
				return false
			}
		}
		return true
	})

	// Lose n4 for good: kill it (its data dir is as good as deleted) and
	// remove it from the cluster.
	lose := func(i int) {
		victim := c.nodes[i]
		victim.Kill()
		c.nodes[i] = nil
		l := c.Leader()
		if err := l.Cluster().Remove(context.Background(), victim.ID()); err != nil {
			t.Fatalf("remove %s: %v", victim.ID(), err)
		}
		waitFor(t, 60*time.Second, "protection restored after losing "+victim.ID(), func() bool {
			return fullyProtected(t, c, uids, 2) && len(c.Leader().FSM().Tasks(fsm.TaskState(""))) == 0
		})
	}
	lose(3)
	// A second loss after repair still loses nothing.
	lose(2)
	for i, u := range uids {
		for _, n := range c.live() {
			checkDownload(t, n, u, datas[i])
		}
	}
}

// A member that stays unreachable past the grace period is marked down
// and its copies are rebuilt elsewhere without anyone removing it.
func TestUnreachableMemberRepairedAfterGrace(t *testing.T) {
	c := newClusterWith(t, 4, func(_ int, cfg *node.Config) { cfg.RepairGrace = time.Second })
	var uids []string
	var datas [][]byte
	for i := 0; i < 4; i++ {
		data := content(70+i, 100_000*(i+1))
		datas = append(datas, data)
		uids = append(uids, uploadSingle(t, c.nodes[i], fmt.Sprintf("g%d.gif", i), data))
	}
	var victim *node.Node
	for i, n := range c.nodes {
		if !n.IsLeader() {
			victim = n
			n.Kill()
			c.nodes[i] = nil
			break
		}
	}
	waitFor(t, 60*time.Second, "the dead member marked down and its copies rebuilt", func() bool {
		rec, _ := c.Leader().FSM().Node(osprey.NodeID(victim.ID()))
		st, err := c.Leader().Cluster().Status(context.Background())
		return rec.Down && err == nil && st.Storage.UnderProtected == 0 && st.Storage.Tasks["repair_pending"] == 0 && st.Storage.Tasks["repair_leased"] == 0
	})
	for i, u := range uids {
		checkDownload(t, c.live()[0], u, datas[i])
	}
}
