package jepsen

import (
	"reflect"
	"testing"
	"time"
)

func TestScheduleDeterministic(t *testing.T) {
	cfg := ScheduleConfig{Seed: 42, Nodes: 5, Kinds: AllFaults, Duration: 3 * time.Minute}
	a, b := NewSchedule(cfg), NewSchedule(cfg)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed gave different schedules")
	}
	if len(a.Steps) < 5 {
		t.Fatalf("only %d steps in 3 minutes", len(a.Steps))
	}
	cfg.Seed = 43
	if c := NewSchedule(cfg); reflect.DeepEqual(a.Steps, c.Steps) {
		t.Fatal("different seeds gave the same schedule")
	}
}

func TestScheduleShape(t *testing.T) {
	for seed := int64(1); seed <= 50; seed++ {
		cfg := ScheduleConfig{Seed: seed, Nodes: 3, Kinds: AllFaults, Duration: 2 * time.Minute}
		s := NewSchedule(cfg)
		var prevEnd time.Duration
		for _, st := range s.Steps {
			if st.At < prevEnd {
				t.Fatalf("seed %d: steps overlap: %+v", seed, s.Steps)
			}
			prevEnd = st.At + st.For
			if prevEnd > cfg.Duration {
				t.Fatalf("seed %d: step ends at %s after the workload", seed, prevEnd)
			}
			if len(st.Faults) == 2 && !compatible(st.Faults[0], st.Faults[1]) {
				t.Fatalf("seed %d: incompatible faults %v", seed, st.Faults)
			}
			for _, f := range st.Faults {
				if f.Node < 0 || f.Node >= cfg.Nodes {
					t.Fatalf("seed %d: node %d out of range", seed, f.Node)
				}
			}
		}
	}
	if s := NewSchedule(ScheduleConfig{Seed: 1, Nodes: 3, Duration: time.Minute}); len(s.Steps) != 0 {
		t.Fatalf("no nemeses but %d steps", len(s.Steps))
	}
}

func TestBlocked(t *testing.T) {
	tests := []struct {
		name string
		f    Fault
		n    int
		want [][2]int
	}{
		{"isolate one", Fault{Kind: FaultPartitionOne, Groups: [][]int{{1}, {0, 2}}}, 3, [][2]int{{0, 1}, {1, 2}}},
		{"majority 2/3", Fault{Kind: FaultPartitionMajority, Groups: [][]int{{0, 4}, {1, 2, 3}}}, 5,
			[][2]int{{0, 1}, {0, 2}, {0, 3}, {1, 4}, {2, 4}, {3, 4}}},
		{"bridge of three", Fault{Kind: FaultPartitionBridge, Groups: [][]int{{0}, {2}, {1}}}, 3, [][2]int{{0, 2}}},
		{"bridge of five", Fault{Kind: FaultPartitionBridge, Groups: [][]int{{0, 1}, {3, 4}, {2}}}, 5,
			[][2]int{{0, 3}, {0, 4}, {1, 3}, {1, 4}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f.Blocked(tt.n); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Blocked = %v, want %v", got, tt.want)
			}
		})
	}
	// In a bridge every node still reaches a majority, which is the point.
	f := Fault{Kind: FaultPartitionBridge, Groups: [][]int{{0, 1}, {3, 4}, {2}}}
	for leader := 0; leader < 5; leader++ {
		if leaderCut(leader, f.Blocked(5), 5) {
			t.Errorf("bridge cuts n%d off a majority", leader+1)
		}
	}
	if !leaderCut(1, (Fault{Kind: FaultPartitionOne, Groups: [][]int{{1}, {0, 2}}}).Blocked(3), 3) {
		t.Error("isolating n2 does not cut it off")
	}
}

func TestParseFaults(t *testing.T) {
	tests := []struct {
		in      string
		want    []FaultKind
		wantErr bool
	}{
		{"all", AllFaults, false},
		{"none", nil, false},
		{"kill,pause", []FaultKind{FaultKill, FaultPause}, false},
		{"kill, kill ,partition-one", []FaultKind{FaultKill, FaultPartitionOne}, false},
		{"kill,explode", nil, true},
	}
	for _, tt := range tests {
		got, err := ParseFaults(tt.in)
		if (err != nil) != tt.wantErr || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseFaults(%q) = %v, %v; want %v, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestScenarios(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range Scenarios {
		if seen[s.Name] {
			t.Fatalf("scenario %q twice", s.Name)
		}
		seen[s.Name] = true
		if s.Seed == 0 || len(s.Faults) == 0 || s.Description == "" {
			t.Errorf("scenario %q is incomplete", s.Name)
		}
		for _, st := range s.Steps {
			if st.At+st.For > s.Duration {
				t.Errorf("scenario %q: step past its duration", s.Name)
			}
		}
		got, err := FindScenario(s.Name)
		if err != nil || got.Name != s.Name {
			t.Errorf("FindScenario(%q) = %v, %v", s.Name, got.Name, err)
		}
	}
	if _, err := FindScenario("nope"); err == nil {
		t.Error("unknown scenario found")
	}
}

func TestRotNeverWithMember(t *testing.T) {
	rot, member, kill := Fault{Kind: FaultRot, Node: 1}, Fault{Kind: FaultMember, Node: 2}, Fault{Kind: FaultKill, Node: 1}
	if compatible(rot, member) || compatible(member, rot) {
		t.Fatal("rot and member together: a wiped member may hold the only good copy")
	}
	if !compatible(rot, kill) {
		t.Fatal("rot and kill should combine")
	}
	if k, err := ParseFaults("rot"); err != nil || len(k) != 1 || k[0] != FaultRot {
		t.Fatalf("ParseFaults(rot) = %v, %v", k, err)
	}
}
