package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/osprey-storage/osprey/node"
)

// TestStatusDegradedWhileMemberUnreachable: while a member is unreachable,
// /cluster/status never says "full": it names the member, since when, and
// when repair starts under --repair-grace; the metric counts it; once the
// member is back, protection is full again.
func TestStatusDegradedWhileMemberUnreachable(t *testing.T) {
	c := newClusterWith(t, 3, func(_ int, cfg *node.Config) { cfg.RepairGrace = time.Hour })
	leader := c.Leader()
	st, err := leader.Cluster().Status(context.Background())
	if err != nil || st.Storage.Protection != "full" || len(st.Storage.Degraded) != 0 {
		t.Fatalf("healthy cluster: %+v, %v", st.Storage, err)
	}
	var victim *node.Node
	for _, n := range c.nodes {
		if n != leader {
			victim = n
		}
	}
	vi := c.index(victim)
	cfg := c.cfgs[vi]
	victim.Kill()
	c.nodes[vi] = nil
	waitFor(t, 30*time.Second, "degraded status naming "+victim.ID(), func() bool {
		st, err := leader.Cluster().Status(context.Background())
		if err != nil || st.Storage.Protection != "degraded" || len(st.Storage.Degraded) != 1 {
			return false
		}
		d := st.Storage.Degraded[0]
		return d.ID == victim.ID() && d.UnreachableSince != nil && d.RepairAt != nil &&
			d.RepairAt.Sub(*d.UnreachableSince) == time.Hour && !d.Down
	})
	if v := metricValue(t, leader, "osprey_members_degraded"); v != 1 {
		t.Fatalf("osprey_members_degraded = %v, want 1", v)
	}
	c.nodes[vi] = mustStart(t, cfg)
	waitFor(t, 30*time.Second, "full protection again", func() bool {
		st, err := leader.Cluster().Status(context.Background())
		return err == nil && st.Storage.Protection == "full" && len(st.Storage.Degraded) == 0
	})
}
