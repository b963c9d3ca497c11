package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/osprey-storage/osprey"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestSnapshotRoundTrip: apply a log of every command type, Snapshot and
// Persist, Restore into a fresh FSM: the same hash and the same answers
// from every read accessor.
func TestSnapshotRoundTrip(t *testing.T) {
	logs := map[string][]entry{"example": exampleLog()}
	// The example followed by every golden command, in order: later ones
	// partly fail (tasks already gone, ...), which is part of the history.
	withGoldens := exampleLog()
	for _, g := range goldenCommands() {
		withGoldens = append(withGoldens, goldenSetup(g.typ)...)
		withGoldens = append(withGoldens, entry{g.typ, g.payload})
	}
	logs["example+goldens"] = withGoldens
	for seed := uint64(1); seed <= 3; seed++ {
		logs[fmt.Sprintf("random-%d", seed)] = genLog(t, seed, scaled(1500))
	}
	for name, log := range logs {
		t.Run(name, func(t *testing.T) {
			a := newApplier(t)
			a.applyLog(log)
			b := mustSnapshot(t, a.f)
			got := mustRestore(t, b)
			mustSameView(t, a.f, got)
			if got.AppliedIndex() != a.f.AppliedIndex() {
				t.Errorf("restored applied index %d, want %d", got.AppliedIndex(), a.f.AppliedIndex())
			}
			// A snapshot of the restored state is byte-identical.
			if b2 := mustSnapshot(t, got); !bytes.Equal(b, b2) {
				t.Error("snapshot of the restored state differs")
			}
			// Both continue identically.
			next := newApplier(t)
			next.f, next.idx = got, a.idx
			for _, e := range genLog(t, 99, 200) {
				ra, rb := a.apply(e.Type, e.Payload), next.apply(e.Type, e.Payload)
				if resultString(ra) != resultString(rb) {
					t.Fatalf("results diverge after restore: %s vs %s", resultString(ra), resultString(rb))
				}
			}
			mustSameView(t, a.f, next.f)
		})
	}
}

// TestSnapshotIsImmutable: Snapshot captures the state when it is called;
// Persist may run later, concurrently with Apply.
func TestSnapshotIsImmutable(t *testing.T) {
	a := mustExample(t)
	want := mustSnapshot(t, a.f)
	snap, err := a.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	a.mustOK(CmdFilesCreate, FilesCreate{Time: goldenNow, Files: []NewFile{{UID: 777, Name: "later.txt"}}})
	a.mustOK(CmdFileDelete, FileDelete{UID: 101, Time: goldenNow})
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	if !bytes.Equal(sink.Bytes(), want) {
		t.Fatal("persisted snapshot includes entries applied after Snapshot")
	}
}

// TestSnapshotPersistError: a failed write cancels the sink.
func TestSnapshotPersistError(t *testing.T) {
	a := mustExample(t)
	snap, err := a.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	boom := errors.New("disk full")
	sink := &memSink{failWrite: boom}
	if err := snap.Persist(sink); !errors.Is(err, boom) {
		t.Fatalf("Persist = %v, want %v", err, boom)
	}
	if !sink.cancelled || sink.closed {
		t.Fatalf("sink cancelled=%v closed=%v, want cancelled only", sink.cancelled, sink.closed)
	}
}

// closeRecorder is an io.ReadCloser that records Close.
type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

// TestRestoreRejects: a stream that is not a snapshot of a known format is
// ErrBadSnapshot, and the state before the call is kept whole.
func TestRestoreRejects(t *testing.T) {
	good := mustSnapshot(t, mustExample(t).f)
	header := func(version uint32) []byte {
		b := append([]byte(nil), snapshotMagic[:]...)
		return binary.BigEndian.AppendUint32(b, version)
	}
	for _, tt := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"bad magic", append([]byte("NOTASNAP"), good[8:]...)},
		{"short magic", snapshotMagic[:5]},
		{"magic only", snapshotMagic[:]},
		{"unknown version", append(header(99), good[12:]...)},
		{"version 0", append(header(0), good[12:]...)},
		{"truncated", good[:len(good)/2]},
		{"corrupt state", append(header(SnapshotVersion), bytes.Repeat([]byte{0xff}, 64)...)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := mustExample(t)
			hash, idx := a.f.Hash()
			rc := &closeRecorder{Reader: bytes.NewReader(tt.in)}
			err := a.f.Restore(rc)
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("Restore = %v, want ErrBadSnapshot", err)
			}
			if !rc.closed {
				t.Error("Restore did not close the reader")
			}
			if h, i := a.f.Hash(); h != hash || i != idx {
				t.Fatalf("state changed: hash %s index %d, want %s %d", h, i, hash, idx)
			}
			mustSameView(t, mustExample(t).f, a.f)
			// Still usable.
			a.mustOK(CmdFilesCreate, FilesCreate{Time: goldenNow, Files: []NewFile{{UID: 888, Name: "x.bin"}}})
		})
	}
}

// TestRestoreAppliedIndex: a replica that restores a snapshot (at startup,
// or installed from the leader) reports the index its state reflects, not
// the one it had before; read barriers compare this index across nodes.
func TestRestoreAppliedIndex(t *testing.T) {
	a := mustExample(t)
	snap := mustSnapshot(t, a.f)
	// A lagging replica jumps forward.
	lag := newApplier(t)
	lag.applyLog(exampleLog()[:5])
	if err := lag.f.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if got, want := lag.f.AppliedIndex(), a.f.AppliedIndex(); got != want {
		t.Fatalf("applied index %d, want %d", got, want)
	}
	h1, i1 := a.f.Hash()
	h2, i2 := lag.f.Hash()
	if h1 != h2 || i1 != i2 {
		t.Fatalf("hash %s@%d, want %s@%d", h2, i2, h1, i1)
	}
	// A version 1 snapshot carries no index: the old one stays.
	v1, err := os.ReadFile(filepath.Join("testdata", "snapshot-v1.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if err := lag.f.Restore(io.NopCloser(bytes.NewReader(v1))); err != nil {
		t.Fatal(err)
	}
	if got, want := lag.f.AppliedIndex(), a.f.AppliedIndex(); got != want {
		t.Fatalf("after a v1 restore: applied index %d, want %d", got, want)
	}
}

// TestRestoreReplacesState: Restore throws away everything that was there,
// including state the snapshot does not have.
func TestRestoreReplacesState(t *testing.T) {
	empty := mustSnapshot(t, New())
	a := mustExample(t)
	if err := a.f.Restore(io.NopCloser(bytes.NewReader(empty))); err != nil {
		t.Fatal(err)
	}
	mustSameView(t, New(), a.f)
	if len(a.f.RunnableTasks(1<<62, allTaskTypes, 10)) != 0 {
		t.Fatal("task order survived Restore")
	}
	// Maps restored from a snapshot are usable.
	a.mustOK(CmdNodeUpsert, NodeUpsert{ID: "n9", RaftAddr: "10.0.0.9:7000", Time: goldenNow})
	a.mustOK(CmdFilesCreate, FilesCreate{Time: goldenNow, Files: []NewFile{{UID: 5, Name: "x.bin"}}})
}

// TestSnapshotGolden pins the snapshot encoding of the example state for
// the current format version; -update rewrites it. Files of older versions
// stay as they are and must keep restoring (TestSnapshotOldVersions).
func TestSnapshotGolden(t *testing.T) {
	got := mustSnapshot(t, mustExample(t).f)
	path := filepath.Join("testdata", fmt.Sprintf("snapshot-v%d.golden", SnapshotVersion))
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./fsm -run TestSnapshotGolden -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("snapshot encoding of the example state changed:\n got %q\nwant %q", got, want)
	}
}

// TestSnapshotOldVersions restores every stored snapshot fixture, old
// format versions included: a node upgraded in place must read the
// snapshots its previous build wrote.
func TestSnapshotOldVersions(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "snapshot-v*.golden"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no snapshot fixtures (%v)", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			f := mustRestore(t, raw)
			// Facts of the example state that every version records.
			if f.ClusterID() != "c-example" || !bytes.Equal(f.Secret(), exampleSecret()) {
				t.Fatalf("cluster %q secret %x", f.ClusterID(), f.Secret())
			}
			if n, ok := f.Node("n2"); !ok || n.WorkerID != 3 || n.Removed {
				t.Fatalf("node n2 = %+v, %v", n, ok)
			}
			// The v1 and v2 files hold the example as it was before merges
			// stopped being dedup targets until verified: there 104 and
			// 201 deduplicated onto 101's merge; now onto 102's upload.
			dedupOnto, mergedRefs := osprey.UID(102), 1
			if !strings.Contains(filepath.Base(path), "v3") {
				dedupOnto, mergedRefs = 101, 2
			}
			if x, ok := f.File(104); !ok || x.State != StateComplete || x.Content != dedupOnto {
				t.Fatalf("file 104 = %+v, %v", x, ok)
			}
			if ct, ok := f.ContentByMD5(md5hex("a1a1a2a")); !ok || ct.Refs != mergedRefs || ct.State != ContentTiered {
				t.Fatalf("content = %+v, %v", ct, ok)
			}
			if x, _ := f.File(103); len(x.Chunks) != 1 || x.Chunks[1].Blob != 7 {
				t.Fatalf("file 103 = %+v", x)
			}
			if tk, ok := f.Task(exTaskRepairObj); !ok || tk.LeaseHolder != "n3" {
				t.Fatalf("task %d = %+v, %v", exTaskRepairObj, tk, ok)
			}
			if got := len(f.RunnableTasks(goldenNow, allTaskTypes, 100)); got != 6 {
				t.Fatalf("%d runnable tasks, want 6", got)
			}
			// From v2 on, the snapshot records the index its state reflects.
			var version uint32
			if _, err := fmt.Sscanf(filepath.Base(path), "snapshot-v%d.golden", &version); err != nil {
				t.Fatal(err)
			}
			wantIdx := uint64(len(exampleLog()))
			if version == 1 {
				wantIdx = 0 // v1 carries no index
			}
			if got := f.AppliedIndex(); got != wantIdx {
				t.Fatalf("applied index %d, want %d", got, wantIdx)
			}
			// The restored FSM keeps applying: a later entry works on it.
			a := &applier{t: t, f: f, idx: 1000}
			a.mustOK(CmdMerge, Merge{UID: 103, Num: 1, Size: 2, MD5: md5hex("c1"), Time: goldenNow})
		})
	}
}

// TestConcurrentReads exercises readers, Hash and Snapshot against Apply
// (meaningful under -race).
func TestConcurrentReads(t *testing.T) {
	log := genLog(t, 7, 800)
	a := newApplier(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = viewOf(a.f)
				_, _ = a.f.Hash()
				if s, err := a.f.Snapshot(); err == nil {
					var sink memSink
					_ = s.Persist(&sink)
					s.Release()
				}
				for _, x := range a.f.Files(0, 5) {
					if x.Chunks != nil {
						for _, ch := range x.Chunks {
							ch.Owners = append(ch.Owners, "mutated") // copies only
						}
					}
				}
				for _, x := range a.f.Files(0, 20) {
					if ct, ok := a.f.Content(x.Content); ok && len(ct.Chunks) > 0 && len(ct.Chunks[0].Owners) > 0 {
						ct.Chunks[0].Owners[0] = "mutated"
					}
				}
			}
		}()
	}
	for _, e := range log {
		a.apply(e.Type, e.Payload)
	}
	close(stop)
	wg.Wait()
	// Mutating returned copies never touched the state.
	b := newApplier(t)
	b.applyLog(log)
	mustSameView(t, b.f, a.f)
}
