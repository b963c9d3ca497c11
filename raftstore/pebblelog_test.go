package raftstore

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

var discard = slog.New(slog.DiscardHandler)

func testLog(i uint64) *raft.Log {
	e := &raft.Log{Index: i, Term: i/10 + 1, Type: raft.LogCommand, Data: []byte(fmt.Sprintf("entry %d", i))}
	if i%3 == 0 {
		e.Extensions = []byte{byte(i), 0, 1}
	}
	if i%2 == 0 {
		e.AppendedAt = time.Unix(1_700_000_000, int64(i)).UTC()
	}
	if i%7 == 0 {
		e.Type, e.Data = raft.LogNoop, nil
	}
	return e
}

func sameLog(t *testing.T, got, want *raft.Log) {
	t.Helper()
	if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type ||
		!bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Extensions, want.Extensions) ||
		!got.AppendedAt.Equal(want.AppendedAt) {
		t.Fatalf("log %d: got %+v, want %+v", want.Index, got, want)
	}
}

func TestLogCodec(t *testing.T) {
	for i := uint64(1); i <= 30; i++ {
		want := testLog(i)
		var got raft.Log
		if err := decodeLog(encodeLog(nil, want), &got); err != nil {
			t.Fatal(err)
		}
		got.Index = i
		sameLog(t, &got, want)
	}
	enc := encodeLog(nil, testLog(3))
	for n := 0; n < len(enc); n++ {
		if err := decodeLog(enc[:n], new(raft.Log)); !errors.Is(err, errLogCorrupt) {
			t.Fatalf("truncated to %d of %d bytes: err %v, want corrupt", n, len(enc), err)
		}
	}
	if err := decodeLog(append(enc, 0), new(raft.Log)); !errors.Is(err, errLogCorrupt) {
		t.Fatalf("trailing byte: err %v", err)
	}
}

func mustFirstLast(t *testing.T, l *PebbleLog, first, last uint64) {
	t.Helper()
	f, _ := l.FirstIndex()
	la, _ := l.LastIndex()
	if f != first || la != last {
		t.Fatalf("first, last = %d, %d; want %d, %d", f, la, first, last)
	}
}

func TestPebbleLog(t *testing.T) {
	db := openLogDB(t, t.TempDir())
	l, err := NewPebbleLog(db)
	if err != nil {
		t.Fatal(err)
	}
	mustFirstLast(t, l, 0, 0)
	var logs []*raft.Log
	for i := uint64(1); i <= 20; i++ {
		logs = append(logs, testLog(i))
	}
	if err := l.StoreLogs(logs[:10]); err != nil {
		t.Fatal(err)
	}
	for _, e := range logs[10:] {
		if err := l.StoreLog(e); err != nil {
			t.Fatal(err)
		}
	}
	mustFirstLast(t, l, 1, 20)
	for _, want := range logs {
		var got raft.Log
		if err := l.GetLog(want.Index, &got); err != nil {
			t.Fatal(err)
		}
		sameLog(t, &got, want)
	}
	if err := l.GetLog(21, new(raft.Log)); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("missing entry: %v", err)
	}
	// Compaction drops a prefix, a conflicting leader a suffix.
	if err := l.DeleteRange(1, 5); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteRange(18, 20); err != nil {
		t.Fatal(err)
	}
	mustFirstLast(t, l, 6, 17)
	if err := l.GetLog(5, new(raft.Log)); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("deleted entry: %v", err)
	}
	// A reopened log finds its bounds in the keys.
	if l, err = NewPebbleLog(db); err != nil {
		t.Fatal(err)
	}
	mustFirstLast(t, l, 6, 17)
	if err := l.DeleteRange(6, 17); err != nil {
		t.Fatal(err)
	}
	mustFirstLast(t, l, 0, 0)
	if err := l.StoreLogs(logs[19:]); err != nil {
		t.Fatal(err)
	}
	mustFirstLast(t, l, 20, 20)

	// raft tells a new node from an old one by the exact message.
	if _, err := l.GetUint64([]byte("CurrentTerm")); err == nil || err.Error() != "not found" {
		t.Fatalf("missing stable key: %v", err)
	}
	if _, err := l.Get([]byte("LastVoteCand")); err == nil || err.Error() != "not found" {
		t.Fatalf("missing stable key: %v", err)
	}
	if err := l.SetUint64([]byte("CurrentTerm"), 42); err != nil {
		t.Fatal(err)
	}
	if err := l.Set([]byte("LastVoteCand"), []byte("n2")); err != nil {
		t.Fatal(err)
	}
	if v, err := l.GetUint64([]byte("CurrentTerm")); err != nil || v != 42 {
		t.Fatalf("CurrentTerm = %d, %v", v, err)
	}
	if v, err := l.Get([]byte("LastVoteCand")); err != nil || string(v) != "n2" {
		t.Fatalf("LastVoteCand = %q, %v", v, err)
	}
	if _, err := l.GetUint64([]byte("LastVoteCand")); err == nil {
		t.Fatal("a 2-byte value read as uint64")
	}
}

// writeBolt writes entries first..last and raft's stable keys into a
// raft.db in dir, as an earlier build left it.
func writeBolt(t *testing.T, dir string, first, last uint64) {
	t.Helper()
	b, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, boltFile)})
	if err != nil {
		t.Fatal(err)
	}
	var logs []*raft.Log
	for i := uint64(1); i <= last; i++ {
		logs = append(logs, testLog(i))
	}
	if err := b.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if first > 1 {
		if err := b.DeleteRange(1, first-1); err != nil {
			t.Fatal(err)
		}
	}
	if err := errors.Join(b.SetUint64([]byte("CurrentTerm"), 7), b.SetUint64([]byte("LastVoteTerm"), 7),
		b.Set([]byte("LastVoteCand"), []byte("n3")), b.Close()); err != nil {
		t.Fatal(err)
	}
}

func mustMigrated(t *testing.T, dir string, l *PebbleLog, first, last uint64) {
	t.Helper()
	mustFirstLast(t, l, first, last)
	for i := first; i <= last; i++ {
		var got raft.Log
		if err := l.GetLog(i, &got); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		sameLog(t, &got, testLog(i))
	}
	if v, err := l.GetUint64([]byte("CurrentTerm")); err != nil || v != 7 {
		t.Fatalf("CurrentTerm = %d, %v", v, err)
	}
	if v, err := l.Get([]byte("LastVoteCand")); err != nil || string(v) != "n3" {
		t.Fatalf("LastVoteCand = %q, %v", v, err)
	}
	if _, err := os.Stat(filepath.Join(dir, boltFile)); !os.IsNotExist(err) {
		t.Fatalf("raft.db still in place: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, boltFile+migratedSuffix)); err != nil {
		t.Fatalf("raft.db not kept: %v", err)
	}
}

func TestMigrateBolt(t *testing.T) {
	dir := t.TempDir()
	writeBolt(t, dir, 101, 1300)
	l, err := NewPebbleLog(openLogDB(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if err := migrateBolt(dir, l, discard); err != nil {
		t.Fatal(err)
	}
	mustMigrated(t, dir, l, 101, 1300)
	// Nothing to do on the next start.
	if err := migrateBolt(dir, l, discard); err != nil {
		t.Fatal(err)
	}
	mustMigrated(t, dir, l, 101, 1300)
}

// TestMigrateBoltInterrupted: a copy that did not finish is dropped and
// done again; one that finished but was not renamed is only renamed.
func TestMigrateBoltInterrupted(t *testing.T) {
	dir := t.TempDir()
	writeBolt(t, dir, 1, 600)
	db := openLogDB(t, t.TempDir())
	l, err := NewPebbleLog(db)
	if err != nil {
		t.Fatal(err)
	}
	// A partial copy, with entries raft.db does not have (they must not
	// survive) and a term from nowhere.
	stray := []*raft.Log{testLog(1), testLog(2), {Index: 900, Term: 99, Type: raft.LogCommand}}
	if err := errors.Join(l.StoreLogs(stray), l.SetUint64([]byte("LastVoteTerm"), 99)); err != nil {
		t.Fatal(err)
	}
	if err := migrateBolt(dir, l, discard); err != nil {
		t.Fatal(err)
	}
	mustMigrated(t, dir, l, 1, 600)
	if v, err := l.GetUint64([]byte("LastVoteTerm")); err != nil || v != 7 {
		t.Fatalf("LastVoteTerm = %d, %v", v, err)
	}

	// Crash after the copy, before the rename: raft.db is back, the
	// marker says done; new entries written since must stay.
	if err := os.Rename(filepath.Join(dir, boltFile+migratedSuffix), filepath.Join(dir, boltFile)); err != nil {
		t.Fatal(err)
	}
	if err := l.StoreLog(testLog(601)); err != nil {
		t.Fatal(err)
	}
	if err := migrateBolt(dir, l, discard); err != nil {
		t.Fatal(err)
	}
	mustMigrated(t, dir, l, 1, 601)
}

// TestOpenMigratesBolt: a node of an earlier build restarts on this one
// with its term, vote and log, and its single-node cluster elects it.
func TestOpenMigratesBolt(t *testing.T) {
	cfg := testConfig(t, discard, "n1")
	// An earlier build: the same store on raft.db.
	b, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, boltFile)})
	if err != nil {
		t.Fatal(err)
	}
	trans, err := raft.NewTCPTransportWithLogger("127.0.0.1:0", nil, 2, time.Second, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 1, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID, rc.Logger = "n1", hclog.NewNullLogger()
	rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = 100*time.Millisecond, 100*time.Millisecond, 50*time.Millisecond
	old, err := raft.NewRaft(rc, &testFSM{}, b, b, snaps, trans)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: "n1", Address: trans.LocalAddr()}}}).Error(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "old leader", func() bool { return old.State() == raft.Leader })
	for i := 0; i < 50; i++ {
		if err := old.Apply([]byte(fmt.Sprintf("cmd %d", i)), time.Second).Error(); err != nil {
			t.Fatal(err)
		}
	}
	oldLast := old.LastIndex()
	oldTerm, _ := b.GetUint64([]byte("CurrentTerm"))
	if err := errors.Join(old.Shutdown().Error(), trans.Close(), b.Close()); err != nil {
		t.Fatal(err)
	}

	// This build, on the same directory, with a fresh FSM: every command
	// replays from the migrated log.
	cfg.BindAddr = "127.0.0.1:0"
	s := mustOpen(t, cfg)
	if !s.HasState() {
		t.Fatal("migrated node has no state")
	}
	waitFor(t, 5*time.Second, "leader after migration", s.IsLeader)
	if err := s.raft.Barrier(5 * time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	if got := len(fsmOf(s).Commands()); got != 50 {
		t.Fatalf("replayed %d commands, want 50", got)
	}
	if term, _ := s.logs.GetUint64([]byte("CurrentTerm")); term <= oldTerm {
		t.Fatalf("term %d after migration, was %d", term, oldTerm)
	}
	if s.raft.LastIndex() <= oldLast {
		t.Fatalf("last index %d, was %d", s.raft.LastIndex(), oldLast)
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, boltFile)); !os.IsNotExist(err) {
		t.Fatalf("raft.db still in place: %v", err)
	}
}
