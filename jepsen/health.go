package jepsen

import (
	"strings"
	"sync"
	"time"
)

// nodeHealth is the client processes' passive health check, the policy a
// load balancer or a multi-node osprey client (client/) applies: a node
// whose last request got no reply at all (refused, reset, timed out) is
// down; while down it still gets requests, but one at a time (a probe),
// and the other processes pick another node; any reply, even an error
// status, marks it up again.
//
// Without it every process sooner or later sends a request to a paused or
// cut-off node and waits out its timeout (5 s for metadata, 20 s for
// data), since a request there costs seconds and one elsewhere
// milliseconds; after a leader loss all ten processes could be stuck on
// the dead node while the new leader had been ready for seconds, and the
// failover figure measured the harness's timeouts, not the cluster.
// Faulty nodes keep receiving traffic through the probes, so faults are
// still exercised (a partitioned old leader still sees writes).
type nodeHealth struct {
	mu      sync.Mutex
	down    map[string]bool
	probing map[string]time.Time // in-flight probe to a down node, since
	now     func() time.Time
}

// probeStale bounds how long a probe blocks the others: a pick whose
// request never reported back (its step ended early) must not keep a down
// node from ever being probed again.
const probeStale = 30 * time.Second

func newNodeHealth() *nodeHealth {
	return &nodeHealth{down: map[string]bool{}, probing: map[string]time.Time{}, now: time.Now}
}

// pick returns the node for a request given the process's random choice
// i: nodes[i] unless it is down with a probe already in flight, then the
// next node after it that is up (nodes[i] if none is).
func (h *nodeHealth) pick(nodes []*Node, i int) *Node {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := nodes[i]
	if !h.down[n.ID] {
		return n
	}
	if t, ok := h.probing[n.ID]; !ok || h.now().Sub(t) > probeStale {
		h.probing[n.ID] = h.now()
		return n
	}
	for k := 1; k < len(nodes); k++ {
		if m := nodes[(i+k)%len(nodes)]; !h.down[m.ID] {
			return m
		}
	}
	return n
}

// report records how a request to node (an op's Node: "n1", or "n1/n3"
// for a download's link and data nodes) ended: replied is false when no
// HTTP reply came back. A download without a reply does not say which of
// its two nodes failed, so it marks neither down.
func (h *nodeHealth) report(node string, replied bool) {
	ids := strings.Split(node, "/")
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		delete(h.probing, id)
		switch {
		case replied:
			delete(h.down, id)
		case len(ids) == 1:
			h.down[id] = true
		}
	}
}
