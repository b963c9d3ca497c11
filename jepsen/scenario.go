package jepsen

import (
	"fmt"
	"strings"
	"time"
)

// Scenario is a named, replayable run: a fixed seed and nemesis list, and
// optionally an explicit schedule and workload mix. Regression scenarios
// pin down a fault pattern that once found a bug.
type Scenario struct {
	Name        string
	Description string
	Seed        int64
	Nodes       int
	Duration    time.Duration
	Faults      []FaultKind
	Backend     string // "" = local
	// ServerFlags are extra flags for every osprey server.
	ServerFlags []string
	// Steps, if set, replaces the generated schedule.
	Steps []Step
	// Mix, if set, replaces the default workload mix.
	Mix *Mix
}

func every(start, period, length time.Duration, n int, faults ...Fault) []Step {
	var out []Step
	for i := 0; i < n; i++ {
		out = append(out, Step{At: start + time.Duration(i)*period, For: length, Faults: faults})
	}
	return out
}

// chunkHeavy makes most new files chunked and interrupted, so merges are
// in flight whenever a fault hits.
var chunkHeavy = &Mix{NewFile: 0.6, Read: 0.3, Dedup: 0.03, Resume: 0.05, Delete: 0.02, Chunked: 0.9, Interrupt: 0.4, PoolShare: 0.1}

// Scenarios is the registry of named scenarios, in the order `--list`
// prints them. It is an explicit table, not filled by init().
var Scenarios = []Scenario{
	{
		Name:        "leader-kill-during-merge",
		Description: "kill -9 the leader every 20s while chunked uploads and merges are in flight",
		Seed:        1001, Nodes: 3, Duration: 90 * time.Second,
		Faults: []FaultKind{FaultKill},
		Steps:  every(8*time.Second, 20*time.Second, 8*time.Second, 4, Fault{Kind: FaultKill, Leader: true}),
		Mix:    chunkHeavy,
	},
	{
		Name:        "leader-pause",
		Description: "SIGSTOP the leader long enough for an election, then SIGCONT it (a stale leader wakes up)",
		Seed:        1002, Nodes: 3, Duration: 90 * time.Second,
		Faults: []FaultKind{FaultPause},
		Steps:  every(8*time.Second, 20*time.Second, 10*time.Second, 4, Fault{Kind: FaultPause, Leader: true}),
	},
	{
		Name:        "isolate-leader",
		Description: "cut the leader off from the other nodes while clients still reach it",
		Seed:        1003, Nodes: 3, Duration: 90 * time.Second,
		Faults: []FaultKind{FaultPartitionLeader},
		Steps:  every(8*time.Second, 20*time.Second, 10*time.Second, 4, Fault{Kind: FaultPartitionLeader}),
	},
	{
		Name:        "minority-majority",
		Description: "five nodes split 2/3 repeatedly; writes through the minority must fail or stay unknown",
		Seed:        1004, Nodes: 5, Duration: 120 * time.Second,
		Faults: []FaultKind{FaultPartitionMajority},
	},
	{
		Name:        "bridge",
		Description: "a bridge partition: two halves that each see the bridge node, so nodes see different majorities",
		Seed:        1005, Nodes: 5, Duration: 120 * time.Second,
		Faults: []FaultKind{FaultPartitionBridge},
	},
	{
		Name:        "member-churn",
		Description: "remove a node, wipe it, add it back, over and over, while staged chunks live on it",
		Seed:        1006, Nodes: 3, Duration: 120 * time.Second,
		Faults: []FaultKind{FaultMember},
		Mix:    chunkHeavy,
	},
	{
		Name:        "backend-outage",
		Description: "stop MinIO while files are merged and tiered; tiering must retry, never lose or fail files",
		Seed:        1007, Nodes: 3, Duration: 120 * time.Second,
		Faults:  []FaultKind{FaultBackend, FaultKill},
		Backend: "s3",
		Mix:     chunkHeavy,
	},
	{
		Name:        "kitchen-sink",
		Description: "every nemesis, combined, on five nodes",
		Seed:        1008, Nodes: 5, Duration: 180 * time.Second,
		Faults: AllFaults,
	},
	{
		Name: "lose-node-for-good",
		Description: "erasure-coded staging (ec:2+1) on five nodes: a node is killed, its data dir deleted and it " +
			"is removed, repeatedly; repair must rebuild its shards before the next loss",
		Seed: 1009, Nodes: 5, Duration: 120 * time.Second,
		Faults:      []FaultKind{FaultMember},
		Steps:       every(10*time.Second, 30*time.Second, 15*time.Second, 3, Fault{Kind: FaultMember}),
		ServerFlags: []string{"--redundancy", "ec:2+1", "--gc-grace", "5m"},
	},
}

// FindScenario returns the scenario with name.
func FindScenario(name string) (Scenario, error) {
	var names []string
	for _, s := range Scenarios {
		if s.Name == name {
			return s, nil
		}
		names = append(names, s.Name)
	}
	return Scenario{}, fmt.Errorf("jepsen: unknown scenario %q (have %s)", name, strings.Join(names, ", "))
}
