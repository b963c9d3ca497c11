package jepsen

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Verdict is the state of one invariant after checking.
type Verdict string

// Verdicts. Skipped means the run could not check the invariant (for
// example the server has no /tasks yet); the report says why.
const (
	Held    Verdict = "held"
	Broken  Verdict = "broken"
	Skipped Verdict = "skipped"
	Unknown Verdict = "unknown" // the checker ran out of time
)

// Invariant is the result of one check.
type Invariant struct {
	Name     string   `json:"name"`
	Verdict  Verdict  `json:"verdict"`
	Detail   string   `json:"detail,omitempty"`
	Examples []string `json:"examples,omitempty"` // at most maxExamples offending items
}

const maxExamples = 10

// NodeHash is one node's view of the replicated state after healing.
type NodeHash struct {
	Node    string `json:"node"`
	Applied uint64 `json:"applied_index"`
	Hash    string `json:"fsm_hash"`
}

// ObjectName is one entry of the final object listing.
type ObjectName struct {
	UID  string `json:"uid"`
	Name string `json:"name"`
}

// CheckInput is everything the checker looks at. History holds the client
// ops, the nemesis events, and the final reads issued after healing (Final).
type CheckInput struct {
	History []Op
	// Pool is the set of md5s whose dedup index is checked for
	// linearizability (the workload's popular contents).
	Pool map[string]bool
	// Hashes are the nodes' (applied_index, fsm_hash) once converged;
	// HashErr explains why they could not be collected.
	Hashes  []NodeHash
	HashErr string
	// Objects is the object listing after healing; ObjectsErr explains why
	// it is missing (then the 503-link check is skipped).
	Objects    []ObjectName
	ObjectsErr string
	// TaskProblems are stuck tasks found while nodes were dead and after
	// healing; TasksErr explains why tasks could not be checked.
	TaskProblems []string
	TasksErr     string
	// Rotted counts the object copies rot faults damaged; RotProblems are
	// reads that returned rotted bytes and copies left bad.
	Rotted      int
	RotProblems []string
	// ClusterProblems are failures to bring the cluster back after healing
	// (a node that never became ready again, no leader).
	ClusterProblems []string
	// LinTimeout bounds the linearizability search.
	LinTimeout time.Duration
	// LinVisualization, if set, receives porcupine's HTML visualisation of
	// the partitions that failed.
	LinVisualization string
	// Faults are the nemesis' fault records (run-relative times).
	Faults []FaultRecord
}

// CheckResult is the checker's verdict on a run.
type CheckResult struct {
	Invariants []Invariant `json:"invariants"`
	OK         bool        `json:"ok"`
}

// Check runs every invariant over in. It never touches the network.
func Check(in CheckInput) CheckResult {
	var res CheckResult
	add := func(inv Invariant) { res.Invariants = append(res.Invariants, inv) }
	add(checkLinearizable(in))
	add(checkDurable(in.History))
	add(checkReads(in.History))
	add(checkUniqueUIDs(in.History))
	add(check503(in))
	add(checkConverged(in))
	add(checkTasks(in))
	add(checkRot(in))
	add(checkNoFailed(in.History))
	add(checkRecovered(in))
	add(checkRebalanceReads(in.History, in.Faults))
	res.OK = true
	for _, inv := range res.Invariants {
		if inv.Verdict == Broken {
			res.OK = false
		}
	}
	return res
}

func examples(xs []string) []string {
	sort.Strings(xs)
	if len(xs) > maxExamples {
		return append(xs[:maxExamples:maxExamples], fmt.Sprintf("… and %d more", len(xs)-maxExamples))
	}
	return xs
}

// md5OfUIDs maps every uid to the md5 the workload gave its content.
func md5OfUIDs(h []Op) map[string]string {
	m := map[string]string{}
	for _, op := range h {
		if op.Key == "" || op.Value.MD5 == "" {
			continue
		}
		switch op.Type {
		case OpUpload, OpMerge, OpResume:
			m[op.Key] = op.Value.MD5
		}
	}
	return m
}

func checkLinearizable(in CheckInput) Invariant {
	inv := Invariant{Name: "linearizable"}
	ops := linOps(in.History, in.Pool, md5OfUIDs(in.History))
	timeout := in.LinTimeout
	if timeout == 0 {
		timeout = time.Minute
	}
	model := linModel()
	r, info := porcupine.CheckOperationsVerbose(model, ops, timeout)
	keys := map[string]bool{}
	for _, op := range ops {
		keys[op.Input.(linInput).Key] = true
	}
	switch r {
	case porcupine.Ok:
		inv.Verdict = Held
		inv.Detail = fmt.Sprintf("%d ops over %d keys (per-uid metadata and %d pooled contents)", len(ops), len(keys), len(in.Pool))
	case porcupine.Unknown:
		inv.Verdict = Unknown
		inv.Detail = fmt.Sprintf("search timed out after %s over %d ops", timeout, len(ops))
	default:
		inv.Verdict = Broken
		var kinds map[string]int
		inv.Examples, kinds = badKeys(model, ops)
		inv.Detail = "no linearization exists; see linearizability.html"
		if len(kinds) > 0 {
			var ks []string
			for k, n := range kinds {
				ks = append(ks, fmt.Sprintf("%s ×%d", k, n))
			}
			sort.Strings(ks)
			inv.Detail += "; first unexplainable ops: " + strings.Join(ks, ", ")
		}
		if in.LinVisualization != "" {
			if err := porcupine.VisualizePath(model, info, in.LinVisualization); err != nil {
				inv.Detail += fmt.Sprintf(" (visualisation failed: %v)", err)
			}
		}
	}
	return inv
}

// badKeys re-checks each partition alone to name the keys that fail,
// each with a hint: the op whose invocation first makes the partition's
// call-ordered prefix unexplainable. The hint is usually the stale or
// impossible answer; it is a hint, not a proof, because a prefix may omit
// a concurrent write that the full history uses.
func badKeys(model porcupine.Model, ops []porcupine.Operation) ([]string, map[string]int) {
	var bad []string
	kinds := map[string]int{}
	for _, part := range model.Partition(ops) {
		if porcupine.CheckOperationsTimeout(model, part, 10*time.Second) != porcupine.Illegal {
			continue
		}
		key := part[0].Input.(linInput).Key
		sorted := append([]porcupine.Operation(nil), part...)
		sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Call < sorted[j].Call })
		hint := ""
		for n := 1; n <= len(sorted); n++ {
			if porcupine.CheckOperationsTimeout(model, sorted[:n], time.Second) == porcupine.Illegal {
				op := sorted[n-1]
				in, out := op.Input.(linInput), op.Output.(linOutput)
				if isMD5Key(in.Key) {
					kinds[fmt.Sprintf("dedup %s→%s", in.MD5.Type, resName(out.MD5.Res))]++
				} else {
					kinds[fmt.Sprintf("%s→%s", in.Obj.Type, resName(out.Obj.Res))]++
				}
				hint = fmt.Sprintf(": first unexplainable op %s by %s at %.3fs", model.DescribeOperation(op.Input, op.Output),
					op.Metadata, float64(op.Call)/1e9)
				break
			}
		}
		bad = append(bad, key+hint)
	}
	return examples(bad), kinds
}

// checkDurable: every uid whose single upload, merge or dedup creation was
// acknowledged, and which was never (possibly) deleted, must download
// byte-for-byte after healing.
func checkDurable(h []Op) Invariant {
	inv := Invariant{Name: "acknowledged-writes-durable"}
	acked := map[string]string{} // uid -> what acknowledged it
	maybeDeleted := map[string]bool{}
	finalOK := map[string]bool{}
	finalErr := map[string]string{}
	for _, op := range h {
		if op.Key == "" {
			continue
		}
		switch {
		case op.Type == OpDelete && (op.Outcome == OK || op.Outcome == Info):
			maybeDeleted[op.Key] = true
		case op.Outcome == OK && (op.Type == OpUpload || op.Type == OpMerge || op.Type == OpResume):
			acked[op.Key] = fmt.Sprintf("%s #%d", op.Type, op.Index)
		case op.Final && op.Type == OpDownload:
			if op.Outcome == OK && op.Value.Bad == "" && op.Value.Range == "" {
				finalOK[op.Key] = true
			} else if !finalOK[op.Key] {
				finalErr[op.Key] = fmt.Sprintf("%s status=%d %s%s", op.Outcome, op.Status, op.Error, op.Value.Bad)
			}
		}
	}
	var bad []string
	n := 0
	for uid, why := range acked {
		if maybeDeleted[uid] {
			continue
		}
		n++
		if !finalOK[uid] {
			e := finalErr[uid]
			if e == "" {
				e = "never downloaded after healing"
			}
			bad = append(bad, fmt.Sprintf("uid %s (acknowledged by %s): %s", uid, why, e))
		}
	}
	if len(bad) > 0 {
		inv.Verdict, inv.Detail = Broken, fmt.Sprintf("%d of %d acknowledged files lost or corrupt", len(bad), n)
		inv.Examples = examples(bad)
		return inv
	}
	inv.Verdict, inv.Detail = Held, fmt.Sprintf("%d acknowledged files downloaded byte-for-byte with the right md5", n)
	return inv
}

// checkReads: no download during or after the run returned wrong bytes,
// and ranged downloads obeyed RFC 9110.
func checkReads(h []Op) Invariant {
	inv := Invariant{Name: "downloads-correct"}
	var bad []string
	n := 0
	for _, op := range h {
		if op.Type != OpDownload || op.Outcome != OK {
			continue
		}
		n++
		if op.Value.Bad != "" {
			bad = append(bad, fmt.Sprintf("#%d uid %s node %s range %q: %s", op.Index, op.Key, op.Node, op.Value.Range, op.Value.Bad))
		}
	}
	if len(bad) > 0 {
		inv.Verdict, inv.Detail, inv.Examples = Broken, fmt.Sprintf("%d of %d downloads returned wrong bytes or headers", len(bad), n), examples(bad)
		return inv
	}
	inv.Verdict, inv.Detail = Held, fmt.Sprintf("%d successful downloads all matched", n)
	return inv
}

func checkUniqueUIDs(h []Op) Invariant {
	inv := Invariant{Name: "unique-uids"}
	seen := map[string]int{}
	var bad []string
	for _, op := range h {
		if op.Outcome != OK || op.Key == "" || op.Final {
			continue
		}
		if op.Type != OpLink && op.Type != OpResume {
			continue
		}
		if prev, ok := seen[op.Key]; ok {
			bad = append(bad, fmt.Sprintf("uid %s issued by #%d and #%d", op.Key, prev, op.Index))
			continue
		}
		seen[op.Key] = op.Index
	}
	if len(bad) > 0 {
		inv.Verdict, inv.Examples = Broken, examples(bad)
		inv.Detail = fmt.Sprintf("%d duplicate uids", len(bad))
		return inv
	}
	inv.Verdict, inv.Detail = Held, fmt.Sprintf("%d uids issued, all distinct", len(seen))
	return inv
}

// check503: a link answered 503 must not have created a file. Each link
// sends a path no other op uses, so its name in the final listing proves
// that it was applied.
func check503(in CheckInput) Invariant {
	inv := Invariant{Name: "503-not-applied"}
	failed := map[string]int{}
	for _, op := range in.History {
		if op.Type == OpLink && op.Outcome == Fail && op.Status == 503 {
			failed[op.Value.Name] = op.Index
		}
	}
	if in.ObjectsErr != "" {
		inv.Verdict = Skipped
		inv.Detail = fmt.Sprintf("object listing unavailable (%s); 503'd uploads are still covered by the linearizability check", in.ObjectsErr)
		return inv
	}
	var bad []string
	for _, o := range in.Objects {
		if idx, ok := failed[o.Name]; ok {
			bad = append(bad, fmt.Sprintf("link #%d (%s) answered 503 but uid %s exists", idx, o.Name, o.UID))
		}
	}
	if len(bad) > 0 {
		inv.Verdict, inv.Examples = Broken, examples(bad)
		inv.Detail = fmt.Sprintf("%d requests answered 503 took effect", len(bad))
		return inv
	}
	inv.Verdict = Held
	inv.Detail = fmt.Sprintf("%d links answered 503, none applied (%d objects listed); 503'd uploads checked by the model", len(failed), len(in.Objects))
	return inv
}

func checkConverged(in CheckInput) Invariant {
	inv := Invariant{Name: "fsm-converged"}
	if in.HashErr != "" {
		inv.Verdict, inv.Detail = Broken, in.HashErr
		return inv
	}
	if len(in.Hashes) == 0 {
		inv.Verdict, inv.Detail = Skipped, "no node reported a state hash"
		return inv
	}
	var parts []string
	same := true
	for _, h := range in.Hashes {
		parts = append(parts, fmt.Sprintf("%s@%d=%.12s", h.Node, h.Applied, h.Hash))
		if h.Hash != in.Hashes[0].Hash || h.Applied != in.Hashes[0].Applied {
			same = false
		}
	}
	inv.Detail = strings.Join(parts, " ")
	if same {
		inv.Verdict = Held
	} else {
		inv.Verdict = Broken
	}
	return inv
}

func checkTasks(in CheckInput) Invariant {
	inv := Invariant{Name: "tasks-not-stuck"}
	switch {
	case len(in.TaskProblems) > 0:
		inv.Verdict, inv.Examples = Broken, examples(append([]string(nil), in.TaskProblems...))
		inv.Detail = fmt.Sprintf("%d tasks held by dead nodes past their lease", len(in.TaskProblems))
	case in.TasksErr != "":
		inv.Verdict, inv.Detail = Skipped, in.TasksErr
	default:
		inv.Verdict, inv.Detail = Held, "no task was held by a dead node past its lease expiry"
	}
	return inv
}

func checkRot(in CheckInput) Invariant {
	inv := Invariant{Name: "rotted-copies-healed"}
	switch {
	case len(in.RotProblems) > 0:
		inv.Verdict, inv.Examples = Broken, examples(append([]string(nil), in.RotProblems...))
		inv.Detail = fmt.Sprintf("%d of %d rotted copies were read back wrong or left bad", len(in.RotProblems), in.Rotted)
	case in.Rotted == 0:
		inv.Verdict, inv.Detail = Skipped, "no object copy was rotted in this schedule"
	default:
		inv.Verdict, inv.Detail = Held, fmt.Sprintf("%d rotted object copies: every read through their holders returned the file's bytes, every copy was rewritten", in.Rotted)
	}
	return inv
}

func checkNoFailed(h []Op) Invariant {
	inv := Invariant{Name: "no-failed-objects"}
	var bad []string
	seen := map[string]bool{}
	for _, op := range h {
		if op.Type == OpStat && op.Outcome == OK && op.Value.State == "failed" && !seen[op.Key] {
			seen[op.Key] = true
			bad = append(bad, fmt.Sprintf("uid %s marked failed (stat #%d on %s)", op.Key, op.Index, op.Node))
		}
	}
	if len(bad) > 0 {
		inv.Verdict, inv.Examples = Broken, examples(bad)
		inv.Detail = "objects uploaded with correct bytes were marked failed by background verification"
		return inv
	}
	inv.Verdict, inv.Detail = Held, "no object was marked failed"
	return inv
}

func checkRecovered(in CheckInput) Invariant {
	inv := Invariant{Name: "cluster-recovered"}
	if len(in.ClusterProblems) > 0 {
		inv.Verdict, inv.Examples = Broken, examples(append([]string(nil), in.ClusterProblems...))
		inv.Detail = "the cluster did not come back after every fault was healed"
		return inv
	}
	inv.Verdict, inv.Detail = Held, "all nodes ready with one leader after healing"
	return inv
}

// checkRebalanceReads: while copies moved to a member that rejoined, the
// probe readers (processes "probe…") downloaded acknowledged files; each
// of those whose write was acknowledged before the read began, and which
// no delete touched, must have been served (its bytes are judged by
// downloads-correct). A read that timed out or lost its connection says
// nothing and is only counted; an answer that the file is missing, gone
// or unreadable breaks the invariant — unless every holder the node tried
// (named in its "no readable copy" answer) was killed, paused, or cut off
// from the serving node by another fault during the read: with two
// replicas, a member removed and wiped (one copy gone until repair
// restores it) and the other holder killed meanwhile leave no reachable
// copy, a double fault and not a move.
// Those are counted apart.
func checkRebalanceReads(h []Op, faults []FaultRecord) Invariant {
	inv := Invariant{Name: "readable-during-rebalance"}
	acked := map[string]time.Duration{}
	touched := map[string]bool{}
	for _, op := range h {
		switch {
		case op.Key == "":
		case op.Type == OpDelete && op.Outcome != Fail:
			touched[op.Key] = true
		case op.Outcome == OK && (op.Type == OpUpload || op.Type == OpMerge || op.Type == OpResume):
			if t, ok := acked[op.Key]; !ok || op.T1 < t {
				acked[op.Key] = op.T1
			}
		}
	}
	var bad []string
	n, unknown, unavailable, down := 0, 0, 0, 0
	for _, op := range h {
		if op.Type != OpDownload || !strings.HasPrefix(op.Process, "probe") || touched[op.Key] {
			continue
		}
		if t, ok := acked[op.Key]; !ok || t > op.T0 {
			continue
		}
		n++
		switch {
		case op.Outcome == OK:
		case op.Status == 503 && strings.Contains(op.Error, "no readable copy") && holdersDown(op, faults):
			down++
		case op.Status == 404 || op.Status == 410 || op.Status == 500 || op.Status == 503 && strings.Contains(op.Error, "no readable copy"):
			bad = append(bad, fmt.Sprintf("#%d uid %s via %s: %s status=%d %s", op.Index, op.Key, op.Node, op.Outcome, op.Status, op.Error))
		case op.Status == 503:
			unavailable++ // a node without a leader (or shutting down): answered at once, read nothing
		default:
			unknown++
		}
	}
	switch {
	case len(bad) > 0:
		inv.Verdict, inv.Examples = Broken, examples(bad)
		inv.Detail = fmt.Sprintf("%d of %d reads of acknowledged files failed while copies moved", len(bad), n)
	case n == 0:
		inv.Verdict, inv.Detail = Skipped, "no read probed a rebalance (no member rejoined, or the server does not rebalance)"
	default:
		inv.Verdict = Held
		inv.Detail = fmt.Sprintf("%d reads of acknowledged files while copies moved, none refused (%d timed out or were cut off, %d answered 503 without reading)", n, unknown, unavailable)
		if down > 0 {
			inv.Detail += fmt.Sprintf("; %d found every holder killed, paused or partitioned away by another fault", down)
		}
	}
	return inv
}

// holderInError finds the members a "no readable copy" answer names: each
// copy's error starts on its own line as "<member>: ".
var holderInError = regexp.MustCompile(`(?:^|: |\n)(n[0-9]+): `)

// netError matches a holder's answer that never reached it: the
// connection could not be made or was lost.
var netError = regexp.MustCompile(`dial tcp|i/o timeout|connection refused|no route to host|connection reset|network is unreachable`)

// holdersDown reports whether every member op's "no readable copy" error
// names was, during the whole read, killed or paused, or cut off from the
// node that served the read by a partition (faults other than a member
// change).
func holdersDown(op Op, faults []FaultRecord) bool {
	_, detail, ok := strings.Cut(op.Error, "no readable copy")
	if !ok {
		return false
	}
	// What each named holder's copy answered: the text from its name to
	// the next holder's.
	named := map[string]string{}
	locs := holderInError.FindAllStringSubmatchIndex(detail, -1)
	for i, m := range locs {
		end := len(detail)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		named[detail[m[2]:m[3]]] += detail[m[3]:end]
	}
	if len(named) == 0 {
		return false
	}
	// The node that served the read: "link node/download node".
	server := op.Node
	if _, after, ok := strings.Cut(op.Node, "/"); ok {
		server = after
	}
	for id, answer := range named {
		covered := false
		for _, f := range faults {
			whole := f.Start <= op.T0 && (f.End == 0 || f.End >= op.T1)
			if whole && (f.Kind == FaultKill || f.Kind == FaultPause) && slices.Contains(f.Targets, id) {
				covered = true
				break
			}
			// A partition cutting the serving node off from the holder,
			// throughout the read, or in place when it failed with a
			// network error reaching that holder (when the read tried the
			// holder is not recorded; the error says it never got there).
			atEnd := f.Start <= op.T1 && (f.End == 0 || f.End >= op.T1) && netError.MatchString(answer)
			if !whole && !atEnd {
				continue
			}
			for _, b := range f.Blocked {
				if b[0] == server && b[1] == id || b[0] == id && b[1] == server {
					covered = true
					break
				}
			}
			if covered {
				break
			}
		}
		if !covered {
			return false
		}
	}
	return true
}
