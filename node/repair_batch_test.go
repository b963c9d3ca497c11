package node_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/fsm"
)

// TestRepairRecordedInBatches: after a member holding ~120 local-backend
// copies is lost for good, repair restores full protection in a handful of
// Raft entries (leases and records of many repairs each), not a lease and
// a record every few copies (the build before batching spent ~0.2 entries
// per copy: ~400 for 2,000).
func TestRepairRecordedInBatches(t *testing.T) {
	c := newCluster(t, 4)
	const files = 240
	var uids []string
	for i := 0; i < files; i++ {
		uids = append(uids, uploadPatiently(t, c.nodes[i%4], fmt.Sprintf("b%d.txt", i), content(1000+i, 512+i)))
	}
	waitFor(t, 120*time.Second, "tiering and gc done", func() bool {
		return len(c.Leader().FSM().Tasks(fsm.TaskState(""))) == 0
	})
	l := c.Leader()
	vi := 3
	if c.nodes[vi] == l {
		vi = 2
	}
	victim := osprey.NodeID(c.nodes[vi].ID())
	held := 0
	for _, u := range uids {
		f, _ := l.FSM().File(mustUID(t, u))
		ct, _ := l.FSM().Content(f.Content)
		if ct.Location != nil {
			for _, o := range ct.Location.Nodes {
				if o == victim {
					held++
				}
			}
		}
		for _, ch := range ct.Chunks {
			for _, o := range ch.Owners {
				if o == victim {
					held++
				}
			}
		}
	}
	if held < files/4 {
		t.Fatalf("%s holds %d copies of %d files", victim, held, files)
	}
	c.nodes[vi].Kill()
	c.nodes[vi] = nil
	before := l.Raft().CommitIndex()
	if err := l.Cluster().Remove(context.Background(), string(victim)); err != nil {
		t.Fatalf("remove %s: %v", victim, err)
	}
	// Progress shows in /metrics while the repairs run.
	pending := func() string {
		_, b, _ := apiOf(t, l).get("/metrics", nil)
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "osprey_repairs_pending "); ok {
				return v
			}
		}
		return "absent"
	}
	if v := pending(); v == "absent" {
		t.Fatal("no osprey_repairs_pending in /metrics")
	}
	waitFor(t, 60*time.Second, "protection restored", func() bool {
		return fullyProtected(t, c, uids, 2) && len(c.Leader().FSM().Tasks(fsm.TaskState(""))) == 0
	})
	entries := c.Leader().Raft().CommitIndex() - before
	if v := pending(); v != "0" {
		t.Errorf("osprey_repairs_pending %s after the repair", v)
	}
	// Per survivor: a lease per batch of 64, each batch's records with the
	// next lease; plus the removal and what else runs meanwhile.
	if limit := uint64(held/10 + 8); entries > limit {
		t.Fatalf("%d Raft entries to repair %d copies, want ≤ %d", entries, held, limit)
	}
	t.Logf("%d Raft entries to repair %d copies", entries, held)
}
