package jepsen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// FaultRecord is one fault as it was really applied.
type FaultRecord struct {
	Fault      string        `json:"fault"`       // e.g. "kill(leader)"
	Kind       FaultKind     `json:"kind"`        // nemesis kind
	Targets    []string      `json:"targets"`     // node ids affected
	Start      time.Duration `json:"start"`       // run-relative
	End        time.Duration `json:"end"`         // run-relative; 0 if never healed
	LeaderLost bool          `json:"leader_lost"` // the fault took the leader away
	// Blocked lists the node pairs a partition cut, so the report can
	// tell whether any majority could still elect a leader.
	Blocked [][2]string `json:"blocked,omitempty"`
	Note    string      `json:"note,omitempty"`
}

// Nemesis applies a schedule's faults to the cluster and heals them.
type Nemesis struct {
	cluster *Cluster
	net     *Network // nil: partitions are skipped
	api     *API
	rec     *Recorder
	log     io.Writer

	mu      sync.Mutex
	records []FaultRecord
	removed map[int]bool // nodes removed from the configuration, not yet re-added

	tasksErr     string
	taskProblems []string

	// rotted are the objects (bucket/key) a rot fault damaged a copy of
	// in this run; rots counts the copies, rotProblems what went wrong.
	rotted      map[string]bool
	rots        int
	rotProblems []string
	rotPending  int // rot faults whose copies are not checked healed yet

	// Probe, if set, reads acknowledged files until its context ends; the
	// member nemesis runs it while copies move to a rejoined member.
	Probe func(ctx context.Context)
	// watchers are the rebalance watchers still running.
	watchers sync.WaitGroup
}

// NewNemesis returns a nemesis for cluster; net may be nil.
func NewNemesis(cluster *Cluster, net *Network, api *API, rec *Recorder, log io.Writer) *Nemesis {
	return &Nemesis{cluster: cluster, net: net, api: api, rec: rec, log: log, removed: map[int]bool{}, rotted: map[string]bool{}}
}

// Records returns the faults applied so far.
func (n *Nemesis) Records() []FaultRecord {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]FaultRecord(nil), n.records...)
}

func (n *Nemesis) logf(format string, args ...any) {
	fmt.Fprintf(n.log, "%7.1fs nemesis: %s\n", n.rec.Since().Seconds(), fmt.Sprintf(format, args...))
}

// Run follows the schedule (times relative to the workload start, which
// is now) until it ends or ctx is done. It always heals the faults of the
// step in progress before returning.
func (n *Nemesis) Run(ctx context.Context, s Schedule) {
	defer n.watchers.Wait()
	begin := time.Now()
	for _, step := range s.Steps {
		if !sleepUntil(ctx, begin.Add(step.At)) {
			return
		}
		var undos []func(context.Context) error
		var idxs []int
		for _, f := range step.Faults {
			undo, idx, err := n.apply(ctx, f)
			if err != nil {
				n.logf("%s failed: %v", f, err)
			}
			if undo != nil {
				undos = append(undos, undo)
				idxs = append(idxs, idx)
			}
		}
		sleepUntil(ctx, begin.Add(step.At+step.For))
		// Heal with a fresh context: healing must happen even when the run
		// is being cancelled.
		hctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		for i := len(undos) - 1; i >= 0; i-- {
			if err := undos[i](hctx); err != nil {
				n.logf("heal failed: %v", err)
				n.note(idxs[i], "heal failed: "+err.Error())
			}
			n.end(idxs[i])
		}
		cancel()
	}
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

func (n *Nemesis) start(f Fault, desc string, targets []string, leaderLost bool) int {
	n.mu.Lock()
	n.records = append(n.records, FaultRecord{Fault: desc, Kind: f.Kind, Targets: targets, Start: n.rec.Since(), LeaderLost: leaderLost})
	idx := len(n.records) - 1
	n.mu.Unlock()
	n.rec.Event(Op{Process: "nemesis", Type: OpNemesis, Value: OpValue{Fault: desc, Targets: targets, Phase: "start"}})
	n.logf("start %s on %s%s", desc, strings.Join(targets, ","), map[bool]string{true: " (leader)"}[leaderLost])
	return idx
}

func (n *Nemesis) end(idx int) {
	n.mu.Lock()
	r := &n.records[idx]
	r.End = n.rec.Since()
	desc, targets := r.Fault, r.Targets
	n.mu.Unlock()
	n.rec.Event(Op{Process: "nemesis", Type: OpNemesis, Value: OpValue{Fault: desc, Targets: targets, Phase: "stop"}})
	n.logf("heal %s", desc)
}

func (n *Nemesis) note(idx int, s string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.records[idx].Note != "" {
		s = n.records[idx].Note + "; " + s
	}
	n.records[idx].Note = s
}

// apply starts one fault and returns how to heal it and its record index.
func (n *Nemesis) apply(ctx context.Context, f Fault) (func(context.Context) error, int, error) {
	c := n.cluster
	leader := c.Leader(ctx)
	target := f.Node
	if f.Leader && leader >= 0 {
		target = leader
	}
	if target >= len(c.Nodes) {
		target = 0
	}
	node := c.Nodes[target]
	switch f.Kind {
	case FaultKill:
		if st, _ := node.State(); st != ProcRunning {
			return nil, 0, fmt.Errorf("%s is %s", node.ID, st)
		}
		err := node.Kill()
		idx := n.start(f, describe(f, node.ID), []string{node.ID}, target == leader)
		if err != nil {
			return nil, idx, err
		}
		return func(context.Context) error { return node.Start() }, idx, nil
	case FaultPause:
		if st, _ := node.State(); st != ProcRunning {
			return nil, 0, fmt.Errorf("%s is %s", node.ID, st)
		}
		err := node.Pause()
		idx := n.start(f, describe(f, node.ID), []string{node.ID}, target == leader)
		if err != nil {
			return nil, idx, err
		}
		return func(context.Context) error { return node.Resume() }, idx, nil
	case FaultPartitionOne, FaultPartitionMajority, FaultPartitionBridge, FaultPartitionLeader:
		if n.net == nil {
			return nil, 0, errors.New("network faults need root and namespaces; skipped")
		}
		if f.Kind == FaultPartitionLeader {
			if leader < 0 {
				return nil, 0, errors.New("no leader to isolate")
			}
			var rest []int
			for i := range c.Nodes {
				if i != leader {
					rest = append(rest, i)
				}
			}
			f.Groups = [][]int{{leader}, rest}
		}
		blocked := f.Blocked(len(c.Nodes))
		// Targets are the cut-off side(s): the isolated node, the
		// minority, or both halves of a bridge.
		var targets []string
		cut := f.Groups[:1]
		if f.Kind == FaultPartitionBridge {
			cut = f.Groups[:2]
		}
		for _, g := range cut {
			for _, i := range g {
				targets = append(targets, c.Nodes[i].ID)
			}
		}
		var pairs [][2]string
		for _, b := range blocked {
			pairs = append(pairs, [2]string{c.Nodes[b[0]].ID, c.Nodes[b[1]].ID})
		}
		err := n.net.BlockPairs(ctx, pairs)
		idx := n.start(f, describe(f, strings.Join(targets, ",")), targets, leader >= 0 && leaderCut(leader, blocked, len(c.Nodes)))
		n.mu.Lock()
		n.records[idx].Blocked = pairs
		n.mu.Unlock()
		if err != nil {
			_ = n.net.Heal(context.Background())
			return nil, idx, err
		}
		return n.net.Heal, idx, nil
	case FaultMember:
		return n.member(ctx, f, node, leader)
	case FaultRot:
		return n.rot(ctx, f, node)
	case FaultBackend:
		if c.MinIO == nil {
			return nil, 0, errors.New("backend outage needs --backend s3; skipped")
		}
		err := c.MinIO.Kill()
		idx := n.start(f, "backend-outage", []string{"minio"}, false)
		if err != nil {
			return nil, idx, err
		}
		return func(ctx context.Context) error {
			if err := c.MinIO.Start(); err != nil {
				return err
			}
			return c.WaitMinIO(ctx)
		}, idx, nil
	}
	return nil, 0, fmt.Errorf("unknown fault %s", f.Kind)
}

// describe names a fault as applied, with a leader target resolved.
func describe(f Fault, target string) string {
	if f.Leader || f.Kind == FaultPartitionLeader {
		return fmt.Sprintf("%s(leader %s)", f.Kind, target)
	}
	return f.String()
}

// leaderCut reports whether the leader can no longer reach a majority.
func leaderCut(leader int, blocked [][2]int, nodes int) bool {
	reach := nodes
	for _, b := range blocked {
		if b[0] == leader || b[1] == leader {
			reach--
		}
	}
	return reach < nodes/2+1
}

// member removes a node from the configuration through another node,
// kills it and wipes its data; healing starts it again with its usual
// command line, which makes it join as a new, empty member. If the removal
// is not acknowledged the node is only killed and restarted: wiping a node
// the cluster still counts as a voter would be a lost disk, not a
// membership change.
func (n *Nemesis) member(ctx context.Context, f Fault, node *Node, leader int) (func(context.Context) error, int, error) {
	c := n.cluster
	if st, _ := node.State(); st != ProcRunning {
		return nil, 0, fmt.Errorf("%s is %s", node.ID, st)
	}
	// The invariant under test is that data survives the loss of any one
	// node. Losing another before the cluster has rebuilt the copies of
	// the previous loss is a double failure, outside that fault model:
	// wait for full protection, and skip this fault if it does not come.
	// A rotted copy not rewritten yet is a lost copy the records do not
	// show: wait for the rot faults' copies to be healed first.
	why := n.waitRotHealed(ctx, 60*time.Second)
	if why == "" {
		why = n.waitProtected(ctx, 60*time.Second)
	}
	if why != "" {
		idx := n.start(f, f.String(), []string{node.ID}, false)
		n.note(idx, "skipped: "+why)
		return func(context.Context) error { return nil }, idx, nil
	}
	idx := n.start(f, f.String(), []string{node.ID}, node.Index == leader)
	removed := false
	deadline := time.Now().Add(10 * time.Second)
	var lastErr error
	for !removed && time.Now().Before(deadline) && ctx.Err() == nil {
		for _, other := range c.Nodes {
			if other == node || !other.Ready() {
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := n.api.RemoveNode(rctx, other.Base(), node.ID)
			cancel()
			var se *StatusError
			if err == nil || errors.As(err, &se) && se.Status == http.StatusNotFound {
				removed = true
				break
			}
			lastErr = err
		}
		if !removed {
			time.Sleep(500 * time.Millisecond)
		}
	}
	if err := node.Kill(); err != nil {
		return nil, idx, err
	}
	if !removed {
		n.note(idx, fmt.Sprintf("removal not acknowledged (%v): killed only", lastErr))
		return func(context.Context) error { return node.Start() }, idx, nil
	}
	n.mu.Lock()
	n.removed[node.Index] = true
	n.mu.Unlock()
	// Keep the old data for post-mortems; the node restarts empty.
	old := fmt.Sprintf("%s.removed-%d", node.DataDir, time.Now().UnixNano())
	if err := os.Rename(node.DataDir, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, idx, fmt.Errorf("wipe %s: %w", node.ID, err)
	}
	before := n.rebalanced(ctx)
	return func(context.Context) error {
		n.mu.Lock()
		delete(n.removed, node.Index)
		n.mu.Unlock()
		if err := node.Start(); err != nil {
			return err
		}
		// The node joins again, empty: copies move onto it while the
		// workload writes. Follow the moves and read through them.
		n.watchers.Add(1)
		go func() {
			defer n.watchers.Done()
			n.watchRebalance(ctx, idx, before)
		}()
		return nil
	}, idx, nil
}

// rebalanced returns the cluster's rebalance counters (planned, pending,
// moved), all -1 when no node reports them.
func (n *Nemesis) rebalanced(ctx context.Context) [3]int64 {
	for _, other := range n.cluster.Nodes {
		if !other.Ready() {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		st, err := n.api.Status(sctx, other.Base())
		cancel()
		if err != nil || st.Storage == nil {
			continue
		}
		if rb := st.Storage.Rebalance; rb != nil {
			return [3]int64{rb.PlannedMoves, rb.PendingMoves, rb.MovedCopies}
		}
		return [3]int64{0, 0, 0}
	}
	return [3]int64{-1, -1, -1}
}

// watchRebalance runs the probe reader while copies move to the member
// that rejoined (fault idx), until no move is pending after new ones were
// planned (or 20 s pass with nothing planned, or 120 s in all), and notes
// what moved and how long it took.
func (n *Nemesis) watchRebalance(ctx context.Context, idx int, before [3]int64) {
	start := time.Now()
	pctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if n.Probe != nil {
		wg.Add(1)
		go func() { defer wg.Done(); n.Probe(pctx) }()
	}
	defer func() { cancel(); wg.Wait() }()
	note := "rebalance: no node reported progress"
	for time.Since(start) < 120*time.Second {
		select {
		case <-ctx.Done():
			n.note(idx, note+" (run ended)")
			return
		case <-time.After(time.Second):
		}
		now := n.rebalanced(ctx)
		if now[0] < 0 {
			continue
		}
		planned, moved := now[0]-max(before[0], 0), now[2]-max(before[2], 0)
		switch {
		case planned > 0 && now[1] == 0:
			n.note(idx, fmt.Sprintf("rebalance: %d copies moved to their ring owners in %s, reads probed throughout", moved, time.Since(start).Round(100*time.Millisecond)))
			return
		case planned == 0 && now[1] == 0 && time.Since(start) > 20*time.Second:
			n.note(idx, "rebalance: nothing to move")
			return
		}
		note = fmt.Sprintf("rebalance: %d of %d moves done, %d pending", moved, planned, now[1])
	}
	n.note(idx, note+" after 120s")
}

// HealAll undoes everything: resumes paused processes, restarts dead ones
// (including MinIO) and drops every partition rule. It returns problems.
func (n *Nemesis) HealAll(ctx context.Context) []string {
	var problems []string
	if n.net != nil {
		if err := n.net.Heal(ctx); err != nil {
			problems = append(problems, "heal network: "+err.Error())
		}
	}
	if m := n.cluster.MinIO; m != nil {
		if st, _ := m.State(); st != ProcRunning {
			if err := m.Start(); err != nil {
				problems = append(problems, err.Error())
			} else if err := n.cluster.WaitMinIO(ctx); err != nil {
				problems = append(problems, err.Error())
			}
		} else {
			_ = m.Resume()
		}
	}
	for _, node := range n.cluster.Nodes {
		switch st, _ := node.State(); st {
		case ProcPaused:
			if err := node.Resume(); err != nil {
				problems = append(problems, err.Error())
			}
		case ProcKilled, ProcStopped:
			if st == ProcStopped {
				problems = append(problems, fmt.Sprintf("%s had exited on its own (see %s)", node.ID, node.LogPath))
			}
			if err := node.Start(); err != nil {
				problems = append(problems, err.Error())
			}
		}
	}
	return problems
}

// MonitorTasks polls GET /tasks every interval while nodes are dead and
// records tasks whose holder has been dead past the lease expiry plus
// grace, seen stuck twice at least grace apart while a leader existed.
func (n *Nemesis) MonitorTasks(ctx context.Context, interval, grace time.Duration) {
	type seen struct {
		first  time.Time
		holder string
	}
	suspects := map[string]seen{}
	reported := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
		dead := map[string]time.Time{}
		var live *Node
		for _, node := range n.cluster.Nodes {
			st, since := node.State()
			switch {
			case st == ProcKilled || st == ProcStopped || st == ProcPaused:
				dead[node.ID] = since
			case node.Ready() && live == nil:
				live = node
			}
		}
		if len(dead) == 0 || live == nil {
			continue
		}
		if n.cluster.Leader(ctx) < 0 {
			suspects = map[string]seen{} // no leader: nobody can take over
			continue
		}
		tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		tasks, err := n.api.Tasks(tctx, live.Base())
		cancel()
		var se *StatusError
		if errors.As(err, &se) && (se.Status == http.StatusNotFound || se.Status == http.StatusMethodNotAllowed) {
			n.mu.Lock()
			n.tasksErr = fmt.Sprintf("GET /tasks answered %d: the server has no task listing yet, so stuck tasks were not checked", se.Status)
			n.mu.Unlock()
			return
		}
		if err != nil {
			continue
		}
		now := time.Now()
		for _, t := range tasks {
			id := string(t.ID)
			since, isDead := dead[t.LeaseHolder]
			exp, ok := t.Expiry()
			if !isDead || !ok || strings.EqualFold(t.State, "done") || strings.EqualFold(t.State, "completed") {
				delete(suspects, id)
				continue
			}
			if exp.After(now.Add(-grace)) || since.After(exp) && since.After(now.Add(-grace)) {
				continue
			}
			s, ok := suspects[id]
			if !ok || s.holder != t.LeaseHolder {
				suspects[id] = seen{first: now, holder: t.LeaseHolder}
				continue
			}
			if now.Sub(s.first) >= grace && !reported[id] {
				reported[id] = true
				n.mu.Lock()
				n.taskProblems = append(n.taskProblems, fmt.Sprintf("task %s (%s %s, state %s) leased by dead %s, lease expired %s ago",
					id, t.Type, string(t.Target), t.State, t.LeaseHolder, now.Sub(exp).Round(time.Second)))
				n.mu.Unlock()
			}
		}
	}
}

// RotFindings returns how many copies the rot faults damaged and what went
// wrong reading them back and having them rewritten.
func (n *Nemesis) RotFindings() (int, []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.rots, append([]string(nil), n.rotProblems...)
}

// TaskFindings returns the task monitor's findings.
func (n *Nemesis) TaskFindings() ([]string, string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ps := append([]string(nil), n.taskProblems...)
	sort.Strings(ps)
	return ps, n.tasksErr
}

// waitProtected polls the cluster until no staged copy is under-protected
// and no repair is queued; it returns why not if the deadline passes.
//
// Only the leader's view counts. A member that was just wiped and re-added
// says it is ready as soon as it has joined, while its state machine is
// still empty: its /cluster/status reports nothing under-protected and no
// repairs. Trusting it let a 10-minute run (seed 575659333) remove n2, the
// last holder of 8 objects whose repairs were still queued, 4 s after n1
// came back, and report acknowledged files lost.
func (n *Nemesis) waitProtected(ctx context.Context, limit time.Duration) string {
	deadline := time.Now().Add(limit)
	why := "no leader answered /cluster/status"
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for _, other := range n.cluster.Nodes {
			if !other.Ready() {
				continue
			}
			sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			st, err := n.api.Status(sctx, other.Base())
			cancel()
			if err != nil || st.Storage == nil || st.Leader.ID != other.ID {
				continue
			}
			repairs := st.Storage.Tasks["repair_pending"] + st.Storage.Tasks["repair_leased"]
			if st.Storage.UnderProtected == 0 && repairs == 0 {
				return ""
			}
			why = fmt.Sprintf("the previous loss is still being repaired (%d copies under-protected, %d repairs queued)", st.Storage.UnderProtected, repairs)
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return why
}
