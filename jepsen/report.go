package jepsen

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Dist summarises a set of durations.
type Dist struct {
	Count       int `json:"count"`
	Unrecovered int `json:"unrecovered"` // leader losses with no successful write afterwards
	// NoQuorum counts leader losses left out because, before the first
	// write, the faults in force left no majority of members up and
	// connected (say a kill together with a split of the rest): no leader
	// could be elected until a heal, which says nothing about failover.
	NoQuorum int           `json:"no_quorum,omitempty"`
	Min      time.Duration `json:"min"`
	Median   time.Duration `json:"median"`
	P90      time.Duration `json:"p90"`
	P99      time.Duration `json:"p99"`
	Max      time.Duration `json:"max"`
}

func (d Dist) String() string {
	if d.Count == 0 && d.Unrecovered == 0 {
		return "no fault took the leader away"
	}
	if d.Count == 0 {
		return fmt.Sprintf("no measurements (%d leader losses without a later successful write)", d.Unrecovered)
	}
	r := func(x time.Duration) string { return x.Round(10 * time.Millisecond).String() }
	s := fmt.Sprintf("n=%d min=%s median=%s p90=%s p99=%s max=%s unrecovered=%d", d.Count, r(d.Min), r(d.Median), r(d.P90), r(d.P99), r(d.Max), d.Unrecovered)
	if d.NoQuorum > 0 {
		s += fmt.Sprintf(" (and %d without a possible quorum, left out)", d.NoQuorum)
	}
	return s
}

func newDist(xs []time.Duration, unrecovered int) Dist {
	d := Dist{Count: len(xs), Unrecovered: unrecovered}
	if len(xs) == 0 {
		return d
	}
	sort.Slice(xs, func(i, j int) bool { return xs[i] < xs[j] })
	q := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(xs)))) - 1
		return xs[max(0, min(i, len(xs)-1))]
	}
	d.Min, d.Median, d.P90, d.P99, d.Max = xs[0], q(0.5), q(0.9), q(0.99), xs[len(xs)-1]
	return d
}

// Failover measures, for each fault that took the leader away, the time
// from the fault to the completion of the first successful write invoked
// after it.
//
// A loss during which the faults left no quorum possible (quorumAt) is
// counted apart in NoQuorum: its time measures the fault's length.
func Failover(h []Op, faults []FaultRecord, nodes int) Dist {
	var xs []time.Duration
	unrecovered, noQuorum := 0, 0
	for _, f := range faults {
		if !f.LeaderLost {
			continue
		}
		best := time.Duration(-1)
		for _, op := range h {
			if op.Outcome == OK && writeOps[op.Type] && !op.Final && op.T0 >= f.Start && (best < 0 || op.T1 < best) {
				best = op.T1
			}
		}
		if best < 0 {
			unrecovered++
			continue
		}
		if !quorumThroughout(faults, nodes, f.Start, best) {
			noQuorum++
			continue
		}
		xs = append(xs, best-f.Start)
	}
	d := newDist(xs, unrecovered)
	d.NoQuorum = noQuorum
	return d
}

// Report is the summary of one run.
type Report struct {
	Seed      int64                      `json:"seed"`
	Scenario  string                     `json:"scenario,omitempty"`
	Nodes     int                        `json:"nodes"`
	Duration  time.Duration              `json:"duration"`
	Backend   string                     `json:"backend"`
	Nemeses   []FaultKind                `json:"nemeses"`
	Network   string                     `json:"network"`
	Processes int                        `json:"processes"`
	Ops       map[OpType]map[Outcome]int `json:"ops"`
	Statuses  map[int]int                `json:"statuses"` // of unsuccessful ops; 0 = no reply
	Errors    map[string]int             `json:"errors"`   // unsuccessful ops by type, status and message shape
	Faults    []FaultRecord              `json:"faults"`
	Failover  Dist                       `json:"failover"`
	// Breakdown splits each leader loss into detection, election and the
	// client's share, from the nodes' raft logs (failover.go).
	Breakdown []FailoverEvent `json:"failover_breakdown,omitempty"`
	// OtherElections are the elections won that replaced no leader lost
	// to a fault (run-relative).
	OtherElections []time.Duration `json:"other_elections,omitempty"`
	Check          CheckResult     `json:"check"`
	Notes          []string        `json:"notes,omitempty"`
	// Scrub is what the scrubbers did, from the node logs.
	Scrub      ScrubActivity  `json:"scrub"`
	TaskStates map[string]int `json:"task_states,omitempty"`
	Elapsed    time.Duration  `json:"elapsed"`
	Command    string         `json:"command"`
	Schedule   Schedule       `json:"schedule"`
	extraLanes []string
}

// CountOps fills Ops and Statuses from the history.
func (r *Report) CountOps(h []Op) {
	r.Ops = map[OpType]map[Outcome]int{}
	r.Statuses = map[int]int{}
	r.Errors = map[string]int{}
	for _, op := range h {
		if op.Type == OpNemesis {
			continue
		}
		if r.Ops[op.Type] == nil {
			r.Ops[op.Type] = map[Outcome]int{}
		}
		r.Ops[op.Type][op.Outcome]++
		if op.Outcome != OK {
			r.Statuses[op.Status]++
			r.Errors[errorKey(op)]++
		}
	}
}

var opOrder = []OpType{OpLink, OpUpload, OpChunk, OpMerge, OpCheckpoint, OpResume, OpDownload, OpStat, OpDelete}

// WriteText writes the human summary.
func (r *Report) WriteText(w io.Writer) {
	verdict := "PASS: every invariant held"
	if !r.Check.OK {
		verdict = "FAIL: an invariant was broken"
	}
	fmt.Fprintf(w, "osprey jepsen — %s\n", verdict)
	fmt.Fprintf(w, "seed %d%s, %d nodes, %s workload, backend %s, %d client processes\n",
		r.Seed, map[bool]string{true: ", scenario " + r.Scenario}[r.Scenario != ""], r.Nodes, r.Duration, r.Backend, r.Processes)
	fmt.Fprintf(w, "network: %s\n", r.Network)
	fmt.Fprintf(w, "replay: %s\n\n", r.Command)
	fmt.Fprintf(w, "%-11s %7s %7s %7s\n", "op", "ok", "fail", "info")
	for _, t := range opOrder {
		m := r.Ops[t]
		fmt.Fprintf(w, "%-11s %7d %7d %7d\n", t, m[OK], m[Fail], m[Info])
	}
	var codes []int
	for c := range r.Statuses {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var parts []string
	for _, c := range codes {
		name := fmt.Sprint(c)
		if c == 0 {
			name = "no-reply"
		}
		parts = append(parts, fmt.Sprintf("%s:%d", name, r.Statuses[c]))
	}
	fmt.Fprintf(w, "statuses of unsuccessful ops: %s\n", strings.Join(parts, " "))
	type kv struct {
		k string
		n int
	}
	var errs []kv
	for k, n := range r.Errors {
		errs = append(errs, kv{k, n})
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].n > errs[j].n || errs[i].n == errs[j].n && errs[i].k < errs[j].k })
	if len(errs) > 0 {
		fmt.Fprintf(w, "most common errors:\n")
	}
	for i, e := range errs {
		if i == 12 {
			break
		}
		fmt.Fprintf(w, "  %6d  %s\n", e.n, e.k)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "faults injected (%d):\n", len(r.Faults))
	for _, f := range r.Faults {
		note := ""
		if f.Note != "" {
			note = " — " + f.Note
		}
		lead := ""
		if f.LeaderLost {
			lead = " [leader lost]"
		}
		fmt.Fprintf(w, "  %6.1fs–%6.1fs %s on %s%s%s\n", f.Start.Seconds(), f.End.Seconds(), f.Fault, strings.Join(f.Targets, ","), lead, note)
	}
	fmt.Fprintf(w, "\nfailover (leader loss → first successful write): %s\n", r.Failover)
	writeBreakdown(w, r.Breakdown)
	if len(r.OtherElections) > 0 {
		var ts []string
		for _, t := range r.OtherElections {
			ts = append(ts, fmt.Sprintf("%.1fs", t.Seconds()))
		}
		fmt.Fprintf(w, "other elections won (after minority partitions, member changes, or spurious): %d at %s\n", len(ts), strings.Join(ts, " "))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "invariants:\n")
	for _, inv := range r.Check.Invariants {
		fmt.Fprintf(w, "  %-28s %-8s %s\n", inv.Name, strings.ToUpper(string(inv.Verdict)), inv.Detail)
		for _, e := range inv.Examples {
			fmt.Fprintf(w, "      - %s\n", e)
		}
	}
	if len(r.TaskStates) > 0 {
		fmt.Fprintf(w, "\ntasks after healing: %v\n", r.TaskStates)
	}
	fmt.Fprintf(w, "scrubbers (node logs): %s\n", r.Scrub)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintf(w, "\nelapsed %s\n", r.Elapsed.Round(time.Second))
}

// WriteJSON writes the machine-readable summary.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteHTML writes a self-contained page: the text summary and an SVG
// timeline with one lane per client process and one per node, plus a
// nemesis lane. Ops are coloured by outcome; hovering shows details.
func (r *Report) WriteHTML(w io.Writer, h []Op) error {
	var end time.Duration
	lanes := []string{}
	seen := map[string]bool{}
	for _, op := range h {
		end = max(end, op.T1)
		if op.Type != OpNemesis && !seen[op.Process] {
			seen[op.Process] = true
			lanes = append(lanes, op.Process)
		}
	}
	sort.Slice(lanes, func(i, j int) bool { return laneLess(lanes[i], lanes[j]) })
	nodeLanes := []string{}
	for i := 0; i < r.Nodes; i++ {
		nodeLanes = append(nodeLanes, fmt.Sprintf("n%d", i+1))
	}
	nodeLanes = append(nodeLanes, r.extraLanes...)
	all := append(append([]string{"nemesis"}, nodeLanes...), lanes...)
	laneY := map[string]int{}
	const laneH, top, left, width = 16, 30, 70, 1600
	for i, l := range all {
		laneY[l] = top + i*laneH
	}
	if end <= 0 {
		end = time.Second
	}
	x := func(t time.Duration) float64 { return left + float64(t)/float64(end)*width }
	height := top + len(all)*laneH + 20

	var sb strings.Builder
	sb.WriteString("<!doctype html><meta charset=utf-8><title>osprey jepsen report</title>\n")
	sb.WriteString(`<style>body{font:13px system-ui,sans-serif;margin:16px}pre{background:#f6f6f6;padding:8px}
.ok{fill:#3a3}.fail{fill:#d33}.info{fill:#e90}.bad{stroke:#000;stroke-width:2}
.kill{fill:#b00}.pause{fill:#86c}.part{fill:#36c}.member{fill:#963}.backend{fill:#555}
svg text{font:11px monospace}</style>`)
	sb.WriteString("<h1>osprey jepsen report</h1>\n<pre>")
	var txt strings.Builder
	r.WriteText(&txt)
	sb.WriteString(html.EscapeString(txt.String()))
	sb.WriteString("</pre>\n<p>Legend: <span style=color:#3a3>■ ok</span> <span style=color:#d33>■ fail</span> <span style=color:#e90>■ info</span>; black outline = wrong bytes; node lanes: <span style=color:#b00>■ killed</span> <span style=color:#86c>■ paused</span> <span style=color:#36c>■ partitioned</span> <span style=color:#963>■ removed</span>. Hover for details.</p>\n")
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d">`+"\n", left+width+20, height)
	for s := 0; s <= int(end.Seconds()); s += tick(end) {
		xx := x(time.Duration(s) * time.Second)
		fmt.Fprintf(&sb, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/><text x="%.1f" y="%d">%ds</text>`+"\n", xx, top-4, xx, height-20, xx+2, top-8, s)
	}
	for _, l := range all {
		fmt.Fprintf(&sb, `<text x="4" y="%d">%s</text>`+"\n", laneY[l]+11, html.EscapeString(l))
	}
	for _, f := range r.Faults {
		e := f.End
		if e == 0 {
			e = end
		}
		cls := faultClass(f.Kind)
		title := html.EscapeString(fmt.Sprintf("%s on %s %.1fs–%.1fs %s", f.Fault, strings.Join(f.Targets, ","), f.Start.Seconds(), e.Seconds(), f.Note))
		fmt.Fprintf(&sb, `<rect class="%s" x="%.1f" y="%d" width="%.1f" height="%d"><title>%s</title></rect>`+"\n",
			cls, x(f.Start), laneY["nemesis"]+2, math.Max(1, x(e)-x(f.Start)), laneH-4, title)
		for _, t := range f.Targets {
			if y, ok := laneY[t]; ok {
				fmt.Fprintf(&sb, `<rect class="%s" x="%.1f" y="%d" width="%.1f" height="%d" opacity="0.8"><title>%s</title></rect>`+"\n",
					cls, x(f.Start), y+2, math.Max(1, x(e)-x(f.Start)), laneH-4, title)
			}
		}
	}
	for _, op := range h {
		if op.Type == OpNemesis {
			continue
		}
		cls := string(op.Outcome)
		if op.Value.Bad != "" {
			cls += " bad"
		}
		t1 := op.T1
		title := fmt.Sprintf("#%d %s %s uid=%s node=%s %s %.3fs–%.3fs status=%d %s %s", op.Index, op.Type, op.Outcome, op.Key, op.Node,
			opDetail(op), op.T0.Seconds(), t1.Seconds(), op.Status, op.Error, op.Value.Bad)
		fmt.Fprintf(&sb, `<rect class="%s" x="%.1f" y="%d" width="%.1f" height="%d"><title>%s</title></rect>`+"\n",
			cls, x(op.T0), laneY[op.Process]+3, math.Max(1, x(t1)-x(op.T0)), laneH-6, html.EscapeString(title))
	}
	sb.WriteString("</svg>\n")
	_, err := io.WriteString(w, sb.String())
	return err
}

func opDetail(op Op) string {
	v := op.Value
	switch op.Type {
	case OpChunk:
		return fmt.Sprintf("chunk=%d len=%d", v.Chunk, v.Length)
	case OpMerge:
		return fmt.Sprintf("num=%d size=%d", v.Num, v.Size)
	case OpUpload:
		return fmt.Sprintf("size=%d %s", v.Size, v.Form)
	case OpStat:
		return fmt.Sprintf("state=%s size=%d", v.State, v.Size)
	case OpCheckpoint:
		return fmt.Sprintf("chunks=%v", v.Chunks)
	case OpDownload:
		return fmt.Sprintf("range=%q size=%d", v.Range, v.Size)
	case OpLink, OpResume:
		return v.Name
	}
	return ""
}

func faultClass(k FaultKind) string {
	switch {
	case k == FaultKill:
		return "kill"
	case k == FaultPause:
		return "pause"
	case k.IsPartition():
		return "part"
	case k == FaultMember:
		return "member"
	}
	return "backend"
}

func tick(end time.Duration) int {
	s := int(end.Seconds())
	switch {
	case s <= 30:
		return 2
	case s <= 120:
		return 10
	case s <= 600:
		return 30
	}
	return 60
}

// laneLess orders "c2" before "c10" and clients before final readers.
func laneLess(a, b string) bool {
	pa, na := splitLane(a)
	pb, nb := splitLane(b)
	if pa != pb {
		return pa < pb
	}
	return na < nb
}

func splitLane(s string) (string, int) {
	i := len(s)
	for i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
		i--
	}
	n := 0
	fmt.Sscan(s[i:], &n)
	return s[:i], n
}

var digitsRE = regexp.MustCompile(`[0-9]+`)
var urlRE = regexp.MustCompile(`"https?://[^"]*"`)

// errorKey groups errors by shape: numbers and URLs are masked.
func errorKey(op Op) string {
	msg := op.Error
	if msg == "" && op.Value.Bad != "" {
		msg = "bad: " + op.Value.Bad
	}
	msg = urlRE.ReplaceAllString(msg, "URL")
	msg = digitsRE.ReplaceAllString(msg, "N")
	return fmt.Sprintf("%s %s %d: %s", op.Type, op.Outcome, op.Status, truncate(msg, 110))
}
