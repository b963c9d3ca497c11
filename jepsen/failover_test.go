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
	got := FailoverBreakdown(h, faults, 5, evs)
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

// TestFailoverNoQuorum: a leader loss during which the faults in force
// leave no majority up and connected (a kill, then a split of the other
// four two against two, as in a 10-minute run) is left out of the
// failover figures; a bridge keeps a quorum (the bridge node reaches
// everyone), so it counts.
func TestFailoverNoQuorum(t *testing.T) {
	split := [][2]string{}
	for _, a := range []string{"n1", "n3"} {
		for _, b := range []string{"n2", "n4", "n5"} {
			split = append(split, [2]string{a, b})
		}
	}
	faults := []FaultRecord{
		{Fault: "kill(n2)", Kind: FaultKill, Targets: []string{"n2"}, Start: 1 * time.Second, End: 12 * time.Second, LeaderLost: true},
		{Fault: "partition-majority[n1,n3 | n2,n4,n5]", Kind: FaultPartitionMajority, Targets: []string{"n1", "n3"},
			Start: 1300 * time.Millisecond, End: 12 * time.Second, Blocked: split},
		{Fault: "partition-bridge[n1,n2 | n4,n5 | bridge n3]", Kind: FaultPartitionBridge, Targets: []string{"n1", "n2", "n4", "n5"},
			Start: 20 * time.Second, End: 30 * time.Second, LeaderLost: true,
			Blocked: [][2]string{{"n1", "n4"}, {"n1", "n5"}, {"n2", "n4"}, {"n2", "n5"}}},
	}
	h := linked("1").
		add("c0", OpLink, "2", OK, 0, 1100, 12500, OpValue{}). // after the heal
		add("c0", OpLink, "3", OK, 0, 20100, 21000, OpValue{}).ops
	if !quorumAt(faults, 5, 1100*time.Millisecond) || quorumAt(faults, 5, 1400*time.Millisecond) || !quorumAt(faults, 5, 25*time.Second) {
		t.Fatal("quorumAt: want a quorum with one node killed and with a bridge, none with the kill and the split")
	}
	d := Failover(h, faults, 5)
	if d.Count != 1 || d.NoQuorum != 1 || d.Max != time.Second {
		t.Fatalf("Failover = %+v", d)
	}
	if !strings.Contains(d.String(), "without a possible quorum") {
		t.Fatalf("String = %q", d.String())
	}
	br := FailoverBreakdown(h, faults, 5, nil)
	if len(br) != 2 || !br[0].NoQuorum || br[1].NoQuorum {
		t.Fatalf("breakdown = %+v", br)
	}
}

// TestFailoverMemberNotRejoined: a removed member is down until it logs
// that it joined again, not from when the harness restarted it (seed
// 380132563: n3 restarted at 88.57 s, the leader n1 was partitioned away
// at 88.7 s, n3 could join only after the heal, so n2 alone could not
// elect: no quorum, not a 13 s failover).
func TestFailoverMemberNotRejoined(t *testing.T) {
	start := time.Date(2026, 12, 4, 20, 54, 49, 0, time.UTC)
	const log = `time=2026-12-04T20:54:50.000Z level=INFO msg="joined cluster" node=n3 via=10.0.0.2:8080 cluster=c leader=n1
time=2026-12-04T20:56:32.000Z level=INFO msg="joined cluster" node=n3 via=10.0.0.3:8080 cluster=c leader=n1
`
	evs := parseRaftEvents(strings.NewReader(log), start)
	if len(evs) != 2 || evs[1].kind != "joined" || evs[1].node != "n3" || evs[1].at != 103*time.Second {
		t.Fatalf("events %+v", evs)
	}
	faults := []FaultRecord{
		{Fault: "member(n3)", Kind: FaultMember, Targets: []string{"n3"}, Start: 88 * time.Second, End: 89 * time.Second},
		{Fault: "partition-leader(leader n1)", Kind: FaultPartitionLeader, Targets: []string{"n1"}, Start: 90 * time.Second,
			End: 101 * time.Second, LeaderLost: true, Blocked: [][2]string{{"n1", "n2"}, {"n1", "n3"}}},
	}
	h := linked("1").add("c0", OpLink, "2", OK, 0, 90100, 103100, OpValue{}).ops
	if d := Failover(h, faults, 3); d.Count != 1 || d.NoQuorum != 0 {
		t.Fatalf("as recorded: %+v, want one failover", d)
	}
	adjusted := memberRejoined(faults, evs)
	if adjusted[0].End != 103*time.Second || faults[0].End != 89*time.Second {
		t.Fatalf("member fault ends %v (recorded %v), want 103s (89s)", adjusted[0].End, faults[0].End)
	}
	if d := Failover(h, adjusted, 3); d.Count != 0 || d.NoQuorum != 1 {
		t.Fatalf("with the rejoin: %+v, want no quorum", d)
	}
	// No rejoin line: the recorded end stands.
	if got := memberRejoined(faults, evs[:1]); got[0].End != 89*time.Second {
		t.Fatalf("without a rejoin line: end %v", got[0].End)
	}
}
