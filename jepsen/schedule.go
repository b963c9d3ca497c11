package jepsen

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"
)

// FaultKind names one nemesis.
type FaultKind string

// The nemeses. Partitions are iptables DROP rules inside the nodes'
// network namespaces, so they need root; without it they are left out of
// the schedule and the run says so.
const (
	FaultKill              FaultKind = "kill"               // kill -9 a node, restart it at heal
	FaultPause             FaultKind = "pause"              // SIGSTOP a node, SIGCONT at heal
	FaultPartitionOne      FaultKind = "partition-one"      // isolate one node from the others
	FaultPartitionMajority FaultKind = "partition-majority" // split into a minority and a majority
	FaultPartitionLeader   FaultKind = "partition-leader"   // isolate whichever node leads
	FaultPartitionBridge   FaultKind = "partition-bridge"   // two halves joined by one bridge node
	FaultMember            FaultKind = "member"             // remove a node, wipe it, add it back
	FaultBackend           FaultKind = "backend"            // stop MinIO, start it at heal (--backend s3)
	FaultRot               FaultKind = "rot"                // flip a byte in a few of a node's local object copies
)

// AllFaults lists every nemesis in a fixed order; "all" expands to it.
var AllFaults = []FaultKind{FaultKill, FaultPause, FaultPartitionOne, FaultPartitionMajority,
	FaultPartitionLeader, FaultPartitionBridge, FaultMember, FaultBackend, FaultRot}

// IsPartition reports whether k needs network namespaces.
func (k FaultKind) IsPartition() bool { return strings.HasPrefix(string(k), "partition-") }

// ParseFaults parses a comma-separated nemesis list ("all" allowed).
func ParseFaults(s string) ([]FaultKind, error) {
	if s == "" || s == "none" {
		return nil, nil
	}
	var out []FaultKind
	seen := map[FaultKind]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "all" {
			for _, k := range AllFaults {
				if !seen[k] {
					seen[k] = true
					out = append(out, k)
				}
			}
			continue
		}
		k := FaultKind(part)
		known := false
		for _, a := range AllFaults {
			known = known || a == k
		}
		if !known {
			return nil, fmt.Errorf("jepsen: unknown nemesis %q (want all or a list of %v)", part, AllFaults)
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out, nil
}

// Fault is one fault of a schedule step. Node indexes are 0-based; Leader
// means the target is whichever node leads when the fault starts.
type Fault struct {
	Kind   FaultKind `json:"kind"`
	Node   int       `json:"node"`             // kill, pause, partition-one, member
	Leader bool      `json:"leader,omitempty"` // kill, pause: target the current leader instead
	// Groups are the sides of a partition: nodes in different groups cannot
	// talk, except that for a bridge the node in Groups[2] talks to both.
	Groups [][]int `json:"groups,omitempty"`
}

func (f Fault) String() string {
	switch {
	case f.Leader || f.Kind == FaultPartitionLeader:
		return string(f.Kind) + "(leader)"
	case f.Kind == FaultBackend:
		return string(f.Kind)
	case len(f.Groups) > 0:
		var parts []string
		for gi, g := range f.Groups {
			var ids []string
			for _, i := range g {
				ids = append(ids, fmt.Sprintf("n%d", i+1))
			}
			s := strings.Join(ids, ",")
			if f.Kind == FaultPartitionBridge && gi == 2 {
				s = "bridge " + s
			}
			parts = append(parts, s)
		}
		return fmt.Sprintf("%s[%s]", f.Kind, strings.Join(parts, " | "))
	}
	return fmt.Sprintf("%s(n%d)", f.Kind, f.Node+1)
}

// Step is a window during which a set of faults is active.
type Step struct {
	At     time.Duration `json:"at"`     // since the workload started
	For    time.Duration `json:"for"`    // how long the faults stay
	Faults []Fault       `json:"faults"` // applied together, healed together
}

// Schedule is the full, seeded nemesis plan of a run.
type Schedule struct {
	Seed  int64  `json:"seed"`
	Steps []Step `json:"steps"`
}

// ScheduleConfig parameterises NewSchedule.
type ScheduleConfig struct {
	Seed     int64         // all randomness derives from it
	Nodes    int           // cluster size
	Kinds    []FaultKind   // allowed nemeses
	Duration time.Duration // workload length; faults end before it does
	Warmup   time.Duration // quiet time at the start (default 5s)
	MinGap   time.Duration // healthy time between steps (default 3s)
	MaxGap   time.Duration // default 8s
	MinFault time.Duration // fault window (default 5s)
	MaxFault time.Duration // default 15s
	// Combine is the probability that a step holds two faults.
	Combine float64
}

func (c *ScheduleConfig) defaults() {
	if c.Warmup == 0 {
		c.Warmup = 5 * time.Second
	}
	if c.MinGap == 0 {
		c.MinGap = 3 * time.Second
	}
	if c.MaxGap == 0 {
		c.MaxGap = 8 * time.Second
	}
	if c.MinFault == 0 {
		c.MinFault = 5 * time.Second
	}
	if c.MaxFault == 0 {
		c.MaxFault = 15 * time.Second
	}
	if c.Combine == 0 {
		c.Combine = 0.3
	}
}

// NewSchedule derives a schedule from cfg.Seed alone: the same config
// always gives the same schedule, which is what makes a failing run
// replayable from its printed seed.
func NewSchedule(cfg ScheduleConfig) Schedule {
	cfg.defaults()
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x6f7370726579))
	s := Schedule{Seed: cfg.Seed}
	if len(cfg.Kinds) == 0 || cfg.Nodes < 1 {
		return s
	}
	between := func(lo, hi time.Duration) time.Duration {
		if hi <= lo {
			return lo
		}
		return lo + time.Duration(rng.Int64N(int64(hi-lo)))
	}
	end := cfg.Duration - 3*time.Second
	t := cfg.Warmup
	for {
		d := between(cfg.MinFault, cfg.MaxFault)
		if t+d > end {
			break
		}
		first := newFault(rng, cfg.Kinds[rng.IntN(len(cfg.Kinds))], cfg.Nodes)
		faults := []Fault{first}
		if len(cfg.Kinds) > 1 && rng.Float64() < cfg.Combine {
			second := newFault(rng, cfg.Kinds[rng.IntN(len(cfg.Kinds))], cfg.Nodes)
			if compatible(first, second) {
				faults = append(faults, second)
			}
		}
		s.Steps = append(s.Steps, Step{At: t, For: d, Faults: faults})
		t += d + between(cfg.MinGap, cfg.MaxGap)
	}
	return s
}

func newFault(rng *rand.Rand, k FaultKind, nodes int) Fault {
	f := Fault{Kind: k, Node: rng.IntN(nodes)}
	perm := rng.Perm(nodes)
	switch k {
	case FaultKill, FaultPause:
		// Half the process faults hit the leader, which is what exercises
		// failover; the rest hit a follower.
		f.Leader = rng.IntN(2) == 0
	case FaultPartitionOne:
		rest := append([]int(nil), perm[1:]...)
		sort.Ints(rest)
		f.Node = perm[0]
		f.Groups = [][]int{{perm[0]}, rest}
	case FaultPartitionMajority:
		minority := append([]int(nil), perm[:nodes/2]...)
		majority := append([]int(nil), perm[nodes/2:]...)
		sort.Ints(minority)
		sort.Ints(majority)
		f.Groups = [][]int{minority, majority}
	case FaultPartitionBridge:
		// perm[0] is the bridge; the others split into two halves. With 3
		// nodes: a | bridge | c, so a and c each see a different majority.
		rest := perm[1:]
		left := append([]int(nil), rest[:len(rest)/2]...)
		right := append([]int(nil), rest[len(rest)/2:]...)
		sort.Ints(left)
		sort.Ints(right)
		f.Node = perm[0]
		f.Groups = [][]int{left, right, {perm[0]}}
	}
	if k != FaultKill && k != FaultPause && k != FaultMember && k != FaultPartitionOne && k != FaultPartitionBridge && k != FaultRot {
		f.Node = 0
	}
	return f
}

// compatible reports whether two faults can be active together: one
// partition at a time, one membership change at a time, and never two
// process faults on the same node.
func compatible(a, b Fault) bool {
	if a.Kind == b.Kind {
		return false
	}
	if a.Kind.IsPartition() && b.Kind.IsPartition() {
		return false
	}
	// A rotted copy is a lost copy until it is rewritten: never together
	// with wiping a member (which may hold the only good one).
	if a.Kind == FaultRot && b.Kind == FaultMember || a.Kind == FaultMember && b.Kind == FaultRot {
		return false
	}
	proc := func(f Fault) bool { return f.Kind == FaultKill || f.Kind == FaultPause || f.Kind == FaultMember }
	if proc(a) && proc(b) && (a.Leader || b.Leader || a.Node == b.Node) {
		return false
	}
	return true
}

// Blocked returns the set of node pairs (i<j) a partition fault cuts.
func (f Fault) Blocked(nodes int) [][2]int {
	group := make([]int, nodes)
	for i := range group {
		group[i] = -1
	}
	for gi, g := range f.Groups {
		for _, n := range g {
			if n < nodes {
				group[n] = gi
			}
		}
	}
	var out [][2]int
	for i := 0; i < nodes; i++ {
		for j := i + 1; j < nodes; j++ {
			gi, gj := group[i], group[j]
			if gi == gj || gi < 0 || gj < 0 {
				continue
			}
			if f.Kind == FaultPartitionBridge && (gi == 2 || gj == 2) {
				continue // the bridge node sees everyone
			}
			out = append(out, [2]int{i, j})
		}
	}
	return out
}
