package jepsen

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestRealCluster runs a short harness run against real osprey processes.
// It is gated on OSPREY_BINARY (the osprey binary to test). As root it uses
// network namespaces and partitions; otherwise process faults only. It fails
// on harness errors and on broken invariants.
func TestRealCluster(t *testing.T) {
	bin := os.Getenv("OSPREY_BINARY")
	if bin == "" {
		t.Skip("set OSPREY_BINARY to run against a real osprey binary")
	}
	dur := 30 * time.Second
	if s := os.Getenv("OSPREY_JEPSEN_TIME"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		dur = d
	}
	out := filepath.Join(t.TempDir(), "run")
	cfg := Config{Binary: bin, Nodes: 3, Duration: dur, Faults: AllFaults, Seed: 20261122,
		Backend: "local", Out: out, Command: "go test -run TestRealCluster ./jepsen", Log: testWriter{t}}
	ctx, cancel := context.WithTimeout(context.Background(), dur+5*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, inv := range rep.Check.Invariants {
		t.Logf("%-28s %-8s %s %v", inv.Name, inv.Verdict, inv.Detail, inv.Examples)
	}
	if !rep.Check.OK {
		keep := filepath.Join(os.TempDir(), "osprey-jepsen-failed")
		_ = os.RemoveAll(keep)
		_ = os.Rename(out, keep)
		t.Fatalf("invariant broken (seed %d); run kept in %s", rep.Seed, keep)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
