package raftstore

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestRaftLogLevels: raft's own [ERROR] and [WARN] lines are logged at
// slog's error and warn levels, not all at INFO.
func TestRaftLogLevels(t *testing.T) {
	var buf bytes.Buffer
	hl := newHCLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	hl.Error("failed to contact", "server-id", "n2")
	hl.Warn("heartbeat timeout reached, starting election")
	hl.Info("entering follower state")
	hl.Debug("not shown: hclog level is info")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	for i, want := range []string{"level=ERROR msg=\"failed to contact: server-id=n2\"", "level=WARN msg=\"heartbeat timeout reached, starting election\"", "level=INFO msg=\"entering follower state\""} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d %q, want %q", i, lines[i], want)
		}
	}
}
