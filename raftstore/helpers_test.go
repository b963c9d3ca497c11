package raftstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
)

// tlog routes log lines to t.Log until stopped. Raft and the transport log
// from their own goroutines, and t.Log after a test returns panics, so the
// writer is stopped in a cleanup that runs after every store is closed.
type tlog struct {
	mu      sync.Mutex
	t       testing.TB
	stopped bool
}

func (w *tlog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// testLogger returns a logger writing to t.Log. Call it before opening any
// store: cleanups run last-in first-out, so the writer stops after the
// stores' own cleanups have closed them.
func testLogger(t testing.TB) *slog.Logger {
	w := &tlog{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.stopped = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// applied is testFSM's response to a command.
type applied struct {
	Index uint64
	Cmd   string
}

// testFSM records the commands applied to it, in order.
type testFSM struct {
	// gate, if set, runs before each command is applied (and may block
	// raft's FSM goroutine).
	gate func(cmd string)

	mu   sync.Mutex
	cmds []string
}

var _ raft.FSM = (*testFSM)(nil)

func (f *testFSM) Apply(l *raft.Log) any {
	if f.gate != nil {
		f.gate(string(l.Data))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, string(l.Data))
	return applied{Index: l.Index, Cmd: string(l.Data)}
}

func (f *testFSM) Commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.cmds...)
}

func (f *testFSM) Snapshot() (raft.FSMSnapshot, error) {
	b, err := json.Marshal(f.Commands())
	return fsmSnapshot(b), err
}

func (f *testFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var cmds []string
	if err := json.NewDecoder(rc).Decode(&cmds); err != nil {
		return err
	}
	f.mu.Lock()
	f.cmds = cmds
	f.mu.Unlock()
	return nil
}

type fsmSnapshot []byte

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := io.Copy(sink, bytes.NewReader(s)); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s fsmSnapshot) Release() {}

// testConfig returns a config on a loopback port with failover timeouts
// short enough for tests.
func testConfig(t testing.TB, lg *slog.Logger, id string) Config {
	c := DefaultConfig()
	c.Dir = t.TempDir()
	c.LogDB = openLogDB(t, filepath.Join(c.Dir, "log"))
	c.ID = id
	c.BindAddr = "127.0.0.1:0"
	c.FSM = &testFSM{}
	c.Logger = lg
	c.HeartbeatTimeout = 200 * time.Millisecond
	c.ElectionTimeout = 200 * time.Millisecond
	c.LeaderLeaseTimeout = 100 * time.Millisecond
	c.ApplyTimeout = 5 * time.Second
	c.MaxCommandSize = 1024
	return c
}

// openLogDB opens a Pebble instance for a store's log, closed when the
// test ends (after the stores opened later).
func openLogDB(t testing.TB, dir string) *pebble.DB {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close log db: %v", err)
		}
	})
	return db
}

type quietPebble struct{}

func (quietPebble) Infof(string, ...any)      {}
func (quietPebble) Errorf(f string, a ...any) { slog.Error("pebble", "msg", fmt.Sprintf(f, a...)) }
func (quietPebble) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }

// mustOpen opens a store that is closed when the test ends.
func mustOpen(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("open %s: %v", cfg.ID, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close %s: %v", cfg.ID, err)
		}
	})
	return s
}

func fsmOf(s *Store) *testFSM { return s.cfg.FSM.(*testFSM) }

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// mustLeader waits until exactly one of the stores leads and all of them
// know it, and returns the leader.
func mustLeader(t testing.TB, stores ...*Store) *Store {
	t.Helper()
	var leader *Store
	waitFor(t, 10*time.Second, "a leader all stores agree on", func() bool {
		leader = nil
		for _, s := range stores {
			if s.IsLeader() {
				if leader != nil {
					return false
				}
				leader = s
			}
		}
		if leader == nil {
			return false
		}
		for _, s := range stores {
			if _, id := s.Leader(); id != leader.ID() {
				return false
			}
		}
		return true
	})
	return leader
}

// mustBootstrap forms a single-voter cluster and waits for it to lead.
func mustBootstrap(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Bootstrap([]Server{{ID: s.ID(), Address: s.Addr()}}); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if id, err := s.WaitForLeader(ctx); err != nil || id != s.ID() {
		t.Fatalf("WaitForLeader = %q, %v", id, err)
	}
	waitFor(t, 10*time.Second, s.ID()+" to lead", s.IsLeader)
	// A new leader appends its own no-op entry just after it takes office;
	// the barrier waits that out, so callers see a log that stays put.
	if err := s.Barrier(ctx); err != nil {
		t.Fatalf("barrier on %s: %v", s.ID(), err)
	}
}

func mustApply(t testing.TB, s *Store, cmd string) (any, uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, idx, err := s.Apply(ctx, []byte(cmd))
	if err != nil {
		t.Fatalf("apply %q on %s: %v", cmd, s.ID(), err)
	}
	return resp, idx
}
