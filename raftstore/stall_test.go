package raftstore

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

// TestStallWatch: a gap between ticks longer than the threshold is a
// stall; a stall is suspected for reads that began at or before its end,
// and while one is under way (no tick yet since the process resumed).
func TestStallWatch(t *testing.T) {
	t0 := time.Now()
	w := &stallWatch{threshold: 100 * time.Millisecond, last: t0}
	w.tick(t0.Add(20 * time.Millisecond))
	w.tick(t0.Add(40 * time.Millisecond))
	if w.suspect(t0.Add(50*time.Millisecond), t0) {
		t.Fatal("suspected without a stall")
	}
	// Stopped for 10 s: until the watcher runs again every check is
	// suspect, even of a read that began after the stall started.
	if !w.suspect(t0.Add(10*time.Second), t0.Add(9*time.Second)) {
		t.Fatal("a stall under way (no tick for 10 s) was not suspected")
	}
	w.tick(t0.Add(10 * time.Second)) // resumed
	if !w.suspect(t0.Add(10*time.Second+10*time.Millisecond), t0.Add(9500*time.Millisecond)) {
		t.Fatal("a read begun 0.5 s before the stall ended was not suspected")
	}
	w.tick(t0.Add(10*time.Second + 20*time.Millisecond))
	if w.suspect(t0.Add(10*time.Second+50*time.Millisecond), t0.Add(10*time.Second+10*time.Millisecond)) {
		t.Fatal("a check whose window begins after the stall ended was suspected")
	}
}

// TestVerifyLeaderAfterStallGoesThroughTheLog: a verification around a
// stall of the process is confirmed by a barrier entry (raft's own
// verification may count answers sent before the stall); without a stall
// it is not.
func TestVerifyLeaderAfterStallGoesThroughTheLog(t *testing.T) {
	cfg := testConfig(t, slog.New(slog.DiscardHandler), "n1")
	s := mustOpen(t, cfg)
	if err := s.Bootstrap([]Server{{ID: "n1", Address: s.Addr()}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "leadership", s.IsLeader)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	before := s.LastIndex()
	if err := s.VerifyLeader(ctx); err != nil {
		t.Fatal(err)
	}
	if n := s.barrierVerifies.Load(); n != 0 {
		t.Fatalf("%d verifications through the log without a stall", n)
	}
	// The process "was stopped" for a second and has just resumed.
	s.stall.mu.Lock()
	s.stall.end = time.Now()
	s.stall.mu.Unlock()
	if err := s.VerifyLeader(ctx); err != nil {
		t.Fatal(err)
	}
	if n := s.barrierVerifies.Load(); n != 1 || s.LastIndex() <= before {
		t.Fatalf("after a stall: %d verifications through the log, last index %d (was %d); want a barrier entry", n, s.LastIndex(), before)
	}
}
