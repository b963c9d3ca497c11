package jepsen

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// FailoverEvent splits one leader loss into its parts, all measured from the
// fault's start: when a follower first noticed (its heartbeat timeout
// fired), when a new leader won its election and after how many
// candidacies, and when the first write invoked after the fault succeeded.
// Write minus Elected is the client's share: requests waiting out an
// unresponsive node, retry backoff, forwarding, the write's own commit.
// A negative duration means "not seen" (no log line or no write).
type FailoverEvent struct {
	Fault       string        `json:"fault"`
	Start       time.Duration `json:"start"`        // run-relative
	StepDown    time.Duration `json:"step_down"`    // the old leader gave up (check-quorum), if it logged so
	Detected    time.Duration `json:"detected"`     // first follower heartbeat timeout
	Elected     time.Duration `json:"elected"`      // first election won after the fault
	NewLeader   string        `json:"new_leader"`   // who won it
	Candidacies int           `json:"candidacies"`  // candidacies of other nodes up to the win (1 = first try)
	PreVoteFail int           `json:"prevote_fail"` // of which ended by a refused pre-vote
	Write       time.Duration `json:"write"`        // first successful write completed
	WriteSent   time.Duration `json:"write_sent"`   // when that write was invoked
	WriteOp     string        `json:"write_op"`     // its type and the node it was sent to
	// NoQuorum: before the write, the faults in force left no majority up
	// and connected; the event is left out of the failover figures.
	NoQuorum bool `json:"no_quorum,omitempty"`
}

// quorumAt reports whether, with the faults in force at t, some node that
// is up reaches a majority of the members (itself included) directly:
// killed, paused and removed nodes are down, partitions cut the pairs
// they blocked.
func quorumAt(faults []FaultRecord, nodes int, t time.Duration) bool {
	down := map[string]bool{}
	cut := map[[2]string]bool{}
	for _, f := range faults {
		if f.Start > t || (f.End > 0 && f.End <= t) {
			continue
		}
		switch f.Kind {
		case FaultKill, FaultPause, FaultMember:
			for _, id := range f.Targets {
				down[id] = true
			}
		}
		for _, b := range f.Blocked {
			cut[b], cut[[2]string{b[1], b[0]}] = true, true
		}
	}
	for i := 1; i <= nodes; i++ {
		v := fmt.Sprintf("n%d", i)
		if down[v] {
			continue
		}
		reach := 1
		for j := 1; j <= nodes; j++ {
			u := fmt.Sprintf("n%d", j)
			if j != i && !down[u] && !cut[[2]string{v, u}] {
				reach++
			}
		}
		if reach > nodes/2 {
			return true
		}
	}
	return false
}

// quorumThroughout reports whether a quorum was possible during the whole
// of [from, to]: faults only start within it at their Start, so those are
// the moments to check.
func quorumThroughout(faults []FaultRecord, nodes int, from, to time.Duration) bool {
	if nodes <= 0 {
		return true
	}
	if !quorumAt(faults, nodes, from) {
		return false
	}
	for _, f := range faults {
		if f.Start > from && f.Start <= to && !quorumAt(faults, nodes, f.Start) {
			return false
		}
	}
	return true
}

// raftEvent is one failover-relevant line of a node's log.
type raftEvent struct {
	at   time.Duration // run-relative
	node string
	kind string // timeout, stepdown, candidate, prevotefail, won
}

var (
	logTimeRE = regexp.MustCompile(`^time=(\S+) `)
	logNodeRE = regexp.MustCompile(`\snode=([^\s"\\]+) component=`)
	logKinds  = []struct{ kind, msg string }{
		{"timeout", `msg="heartbeat timeout reached`},
		{"stepdown", `msg="failed to contact quorum of nodes, stepping down`},
		{"candidate", `msg="entering candidate state`},
		{"prevotefail", `msg="pre-vote campaign failed`},
		{"won", `msg="election won`},
	}
	// joinedRE is the line a node logs once it has joined the cluster
	// (osprey's own, without a component).
	joinedRE = regexp.MustCompile(`msg="joined cluster" node=([^\s"\\]+)`)
)

// parseRaftEvents reads the election-related lines of one node's log
// (log/slog text lines carrying hashicorp/raft's messages), with times
// made relative to start.
func parseRaftEvents(r io.Reader, start time.Time) []raftEvent {
	var out []raftEvent
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		kind := ""
		for _, k := range logKinds {
			if strings.Contains(line, k.msg) {
				kind = k.kind
				break
			}
		}
		nodeRE := logNodeRE
		if kind == "" && joinedRE.MatchString(line) {
			kind, nodeRE = "joined", joinedRE
		}
		if kind == "" {
			continue
		}
		tm := logTimeRE.FindStringSubmatch(line)
		nm := nodeRE.FindStringSubmatch(line)
		if tm == nil || nm == nil {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, tm[1])
		if err != nil {
			continue
		}
		out = append(out, raftEvent{at: t.Sub(start), node: nm[1], kind: kind})
	}
	return out
}

// memberRejoined returns faults with each member fault ending when its
// node logged that it joined the cluster again, not when the harness
// restarted it: until then the node is no voter, and a quorum that
// needed it was not possible (a leader partitioned away meanwhile cannot
// be replaced). A member fault with no such line keeps its end.
func memberRejoined(faults []FaultRecord, evs []raftEvent) []FaultRecord {
	out := slices.Clone(faults)
	for i, f := range out {
		if f.Kind != FaultMember || f.End == 0 {
			continue
		}
		for _, ev := range evs {
			if ev.kind == "joined" && ev.at >= f.Start && slices.Contains(f.Targets, ev.node) {
				out[i].End = max(f.End, ev.at)
				break
			}
		}
	}
	return out
}

// readRaftEvents parses every log file, sorted by time. Unreadable files
// are skipped: the breakdown is a diagnostic, not a verdict.
func readRaftEvents(paths []string, start time.Time) []raftEvent {
	var evs []raftEvent
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		evs = append(evs, parseRaftEvents(f, start)...)
		f.Close()
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].at < evs[j].at })
	return evs
}

// FailoverBreakdown returns one FailoverEvent per fault that took the
// leader away. Each event's window ends at the next leader loss (or a
// minute later), so overlapping faults do not borrow each other's lines.
func FailoverBreakdown(h []Op, faults []FaultRecord, nodes int, evs []raftEvent) []FailoverEvent {
	var lost []FaultRecord
	for _, f := range faults {
		if f.LeaderLost {
			lost = append(lost, f)
		}
	}
	var out []FailoverEvent
	for i, f := range lost {
		end := f.Start + time.Minute
		if i+1 < len(lost) && lost[i+1].Start < end {
			end = lost[i+1].Start
		}
		e := FailoverEvent{Fault: f.Fault, Start: f.Start, StepDown: -1, Detected: -1, Elected: -1, Write: -1, WriteSent: -1}
		for _, ev := range evs {
			if ev.at < f.Start || ev.at >= end {
				continue
			}
			rel := ev.at - f.Start
			target := slices.Contains(f.Targets, ev.node)
			switch {
			case ev.kind == "stepdown" && target && e.StepDown < 0:
				e.StepDown = rel
			case e.Elected >= 0 || target:
				// after the win, and the cut-off node's own attempts, do
				// not count
			case ev.kind == "timeout" && e.Detected < 0:
				e.Detected = rel
			case ev.kind == "candidate":
				e.Candidacies++
			case ev.kind == "prevotefail":
				e.PreVoteFail++
			case ev.kind == "won":
				e.Elected, e.NewLeader = rel, ev.node
			}
		}
		for _, op := range h {
			if op.Outcome == OK && writeOps[op.Type] && !op.Final && op.T0 >= f.Start && (e.Write < 0 || op.T1-f.Start < e.Write) {
				e.Write, e.WriteSent, e.WriteOp = op.T1-f.Start, op.T0-f.Start, fmt.Sprintf("%s via %s", op.Type, op.Node)
			}
		}
		if e.Write >= 0 {
			e.NoQuorum = !quorumThroughout(faults, nodes, f.Start, f.Start+e.Write)
		}
		out = append(out, e)
	}
	return out
}

// OtherElections returns the run-relative times of elections won that
// replaced no leader lost to a fault (those FailoverBreakdown counted):
// elections after partitions of a minority or member changes, and
// spurious ones, the cost of short timeouts on a loaded machine.
func OtherElections(evs []raftEvent, breakdown []FailoverEvent) []time.Duration {
	counted := map[time.Duration]bool{}
	for _, e := range breakdown {
		if e.Elected >= 0 {
			counted[e.Start+e.Elected] = true
		}
	}
	var out []time.Duration
	for _, ev := range evs {
		if ev.kind == "won" && ev.at >= 0 && !counted[ev.at] {
			out = append(out, ev.at)
		}
	}
	return out
}

func writeBreakdown(w io.Writer, evs []FailoverEvent) {
	if len(evs) == 0 {
		return
	}
	s := func(d time.Duration) string {
		if d < 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", d.Seconds())
	}
	fmt.Fprintf(w, "failover breakdown (seconds after the fault; detect: a follower's heartbeat timeout fired; elect: a new leader won,\n")
	fmt.Fprintf(w, "after cand candidacies of which pv ended by a refused pre-vote; write: the first write sent after the fault succeeded;\n")
	fmt.Fprintf(w, "client = write − elect: waiting out unresponsive nodes, backoff, forwarding, the write's own commit):\n")
	fmt.Fprintf(w, "  %7s  %-30s %6s %6s %6s %4s %3s %6s %6s  %s\n", "start", "fault", "down", "detect", "elect", "cand", "pv", "write", "client", "first write")
	for _, e := range evs {
		client := time.Duration(-1)
		if e.Write >= 0 && e.Elected >= 0 {
			client = max(0, e.Write-e.Elected)
		}
		first := "-"
		if e.WriteSent >= 0 {
			first = fmt.Sprintf("%s, sent +%s", e.WriteOp, s(e.WriteSent))
		}
		if e.NoQuorum {
			first += " [no quorum possible for a while: left out]"
		}
		fmt.Fprintf(w, "  %6.1fs  %-30s %6s %6s %6s %4d %3d %6s %6s  %s\n", e.Start.Seconds(), truncate(e.Fault, 30),
			s(e.StepDown), s(e.Detected), s(e.Elected), e.Candidacies, e.PreVoteFail, s(e.Write), s(client), first)
	}
}
