package jepsen

import (
	"strings"
	"testing"
	"time"
)

// Lines as osprey's slog handler writes hashicorp/raft's messages.
const breakdownLog = `time=2026-12-04T09:34:52.000Z level=INFO msg="leader changed" node=n1 component=raftstore leader=n2 addr=10.0.0.3:7000
time=2026-12-04T09:34:53.400Z level=WARN msg="failed to contact quorum of nodes, stepping down" node=n2 component=raftstore source=raft
time=2026-12-04T09:34:54.000Z level=WARN msg="heartbeat timeout reached, starting election: last-leader-addr=10.0.0.3:7000 last-leader-id=n2" node=n3 component=raftstore source=raft
time=2026-12-04T09:34:54.000Z level=INFO msg="entering candidate state: node=\"Node at 10.0.0.4:7000 [Candidate]\" term=3" node=n3 component=raftstore source=raft
time=2026-12-04T09:34:54.010Z level=INFO msg="pre-vote campaign failed, waiting for election timeout: term=2 tally=1 refused=3 votesNeeded=3" node=n3 component=raftstore source=raft
time=2026-12-04T09:34:54.300Z level=INFO msg="entering candidate state: node=\"Node at 10.0.0.3:7000 [Candidate]\" term=3" node=n2 component=raftstore source=raft
time=2026-12-04T09:34:54.500Z level=WARN msg="heartbeat timeout reached, starting election: last-leader-addr=10.0.0.3:7000 last-leader-id=n2" node=n5 component=raftstore source=raft
time=2026-12-04T09:34:54.500Z level=INFO msg="entering candidate state: node=\"Node at 10.0.0.6:7000 [Candidate]\" term=3" node=n5 component=raftstore source=raft
time=2026-12-04T09:34:54.510Z level=INFO msg="election won: term=3 tally=3" node=n5 component=raftstore source=raft
time=2026-12-04T09:34:55.000Z level=INFO msg="entering candidate state: node=\"Node at 10.0.0.2:7000 [Candidate]\" term=4" node=n1 component=raftstore source=raft
`

// TestFailoverBreakdown: detection, election and the client's share are
// read from the nodes' raft log lines and the history; the cut-off old
// leader's own candidacies and anything after the win do not count.
func TestFailoverBreakdown(t *testing.T) {
	start := time.Date(2026, 12, 4, 9, 34, 50, 0, time.UTC)
	evs := parseRaftEvents(strings.NewReader(breakdownLog), start)
	if len(evs) != 9 {
		t.Fatalf("parsed %d events, want 9: %+v", len(evs), evs)
	}
	h := linked("1").
		add("c0", OpLink, "2", OK, 0, 2000, 2100, OpValue{}).  // before the fault
		add("c1", OpStat, "1", OK, 0, 4700, 4800, OpValue{}).  // a read does not count
		add("c2", OpChunk, "1", OK, 0, 3500, 5200, OpValue{}). // first write after the fault
		add("c3", OpLink, "3", OK, 0, 4900, 5300, OpValue{}).ops
	faults := []FaultRecord{{Fault: "partition-leader(leader n2)", Targets: []string{"n2"}, Start: 3 * time.Second, LeaderLost: true}}
	got := FailoverBreakdown(h, faults, evs)
	if len(got) != 1 {
		t.Fatalf("got %d events", len(got))
	}
	e := got[0]
	ms := func(d time.Duration) int64 { return d.Milliseconds() }
	if ms(e.StepDown) != 400 || ms(e.Detected) != 1000 || ms(e.Elected) != 1510 || e.NewLeader != "n5" ||
		e.Candidacies != 2 || e.PreVoteFail != 1 || ms(e.Write) != 2200 || ms(e.WriteSent) != 500 {
		t.Fatalf("breakdown = %+v", e)
	}
	if other := OtherElections(evs, got); len(other) != 0 {
		t.Fatalf("other elections = %v, want none", other)
	}
	if other := OtherElections(evs, nil); len(other) != 1 || other[0] != 4510*time.Millisecond {
		t.Fatalf("other elections without the breakdown = %v", other)
	}
	var b strings.Builder
	writeBreakdown(&b, got)
	if !strings.Contains(b.String(), "chunk via") || !strings.Contains(b.String(), "0.69") {
		t.Fatalf("text:\n%s", b.String())
	}
}
