package jepsen

import (
	"testing"
	"time"
)

// TestNodeHealth: a node that gave no reply gets one request at a time
// (the probe) while the others are sent elsewhere; a reply brings it back;
// a probe that never reported stops blocking after probeStale.
func TestNodeHealth(t *testing.T) {
	nodes := []*Node{{ID: "n1"}, {ID: "n2"}, {ID: "n3"}}
	now := time.Unix(0, 0)
	h := newNodeHealth()
	h.now = func() time.Time { return now }
	if got := h.pick(nodes, 1); got.ID != "n2" {
		t.Fatalf("healthy pick = %s", got.ID)
	}
	h.report("n2", false)
	if got := h.pick(nodes, 1); got.ID != "n2" {
		t.Fatalf("first pick of a down node = %s, want the probe to n2", got.ID)
	}
	if got := h.pick(nodes, 1); got.ID != "n3" {
		t.Fatalf("pick while n2 is probed = %s, want n3", got.ID)
	}
	h.report("n2", false) // the probe timed out too
	if got := h.pick(nodes, 1); got.ID != "n2" {
		t.Fatalf("after a failed probe = %s, want a new probe", got.ID)
	}
	now = now.Add(probeStale + time.Second)
	if got := h.pick(nodes, 1); got.ID != "n2" {
		t.Fatalf("after a stale probe = %s, want a new probe", got.ID)
	}
	h.report("n3", false)
	h.report("n1/n2", false) // a download: says nothing about either node
	if got := h.pick(nodes, 2); got.ID != "n3" {
		t.Fatalf("probe of n3 = %s", got.ID)
	}
	if got := h.pick(nodes, 2); got.ID != "n1" {
		t.Fatalf("n3 probed, n2 down: pick = %s, want n1", got.ID)
	}
	h.report("n2", true)
	h.report("n3", true)
	for i := range nodes {
		if got := h.pick(nodes, i); got != nodes[i] {
			t.Fatalf("after replies pick(%d) = %s", i, got.ID)
		}
	}
}
