package repair_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/chunkstore"
	"github.com/osprey-storage/osprey/erasure"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
	"github.com/osprey-storage/osprey/repair"
	"github.com/osprey-storage/osprey/ring"
	"github.com/osprey-storage/osprey/tasks"
)

// memCopies holds every member's chunk copies and objects in memory.
type memCopies struct {
	mu      sync.Mutex
	chunks  map[string]map[httpapi.ChunkRef][]byte // owner → ref → bytes
	gens    map[string]uint64                      // owner/ref → generation of its last put
	lastGen uint64
	objects map[string][]byte // owner/bucket/key
	puts    []string
	// hung members take a copy and never answer: a put to one returns
	// only when its context ends.
	hung map[string]bool
}

func newMemCopies() *memCopies {
	return &memCopies{chunks: map[string]map[httpapi.ChunkRef][]byte{}, gens: map[string]uint64{}, objects: map[string][]byte{}}
}

func (m *memCopies) put(owner string, ref httpapi.ChunkRef, b []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.chunks[owner] == nil {
		m.chunks[owner] = map[httpapi.ChunkRef][]byte{}
	}
	m.chunks[owner][ref] = append([]byte(nil), b...)
	m.lastGen++
	m.gens[fmt.Sprint(owner, ref)] = m.lastGen
}

func (m *memCopies) get(owner string, ref httpapi.ChunkRef) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.chunks[owner][ref]
	return b, ok
}

func (m *memCopies) ReadPiece(_ context.Context, r io.Reader, max, _ int64) ([]byte, func(), error) {
	b, err := io.ReadAll(io.LimitReader(r, max))
	return b, func() {}, err
}

func (m *memCopies) OpenCopies(_ context.Context, ch fsm.Chunk, off, length int64) io.ReadCloser {
	for _, o := range ch.Owners {
		if b, ok := m.get(string(o), httpapi.ChunkRef{Blob: ch.Blob, Num: ch.Num}); ok {
			return io.NopCloser(bytes.NewReader(b[off : off+length]))
		}
	}
	return io.NopCloser(errReader{})
}

func (m *memCopies) OpenECRange(context.Context, fsm.Chunk, int64, int64, osprey.NodeID) io.ReadCloser {
	return io.NopCloser(errReader{})
}

func (m *memCopies) OpenTiered(_ context.Context, ct fsm.Content, off, length int64) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, h := range ct.Location.Nodes {
		if b, ok := m.objects[string(h)+"/"+ct.Location.Bucket+"/"+ct.Location.Key]; ok {
			return io.NopCloser(bytes.NewReader(b[off : off+length])), nil
		}
	}
	return nil, osprey.ErrUnavailable
}

func (m *memCopies) PutChunkOn(ctx context.Context, owner string, ref httpapi.ChunkRef, buf []byte, sum uint64) error {
	if m.hung[owner] {
		<-ctx.Done()
		return fmt.Errorf("put on %s: %w", owner, ctx.Err())
	}
	if xxhash.Sum64(buf) != sum {
		return errors.New("checksum mismatch")
	}
	m.put(owner, ref, buf)
	m.mu.Lock()
	m.puts = append(m.puts, fmt.Sprintf("%s %d/%d/%d", owner, ref.Blob, ref.Num, ref.Shard))
	m.mu.Unlock()
	return nil
}

func (m *memCopies) PutObjectOn(ctx context.Context, owner, bucket, key string, body io.Reader, _ int64, md5sum string) error {
	if m.hung[owner] {
		<-ctx.Done()
		return fmt.Errorf("put on %s: %w", owner, ctx.Err())
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	if md5hex(b) != md5sum {
		return errors.New("md5 mismatch")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objects[owner+"/"+bucket+"/"+key] = b
	m.puts = append(m.puts, "object "+owner)
	return nil
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("no copy") }

// fakeState is an in-memory FSM view.
type fakeState struct {
	chunks   map[uint64]fsm.Chunk
	contents map[osprey.UID]fsm.Content
	nodes    map[osprey.NodeID]fsm.Node
	tasks    []fsm.Task
}

func (s *fakeState) LiveTasks(typ string) int {
	n := 0
	for _, tk := range s.tasks {
		if tk.Type == typ && (tk.State == fsm.TaskPending || tk.State == fsm.TaskLeased) {
			n++
		}
	}
	return n
}

func (s *fakeState) Tasks(state fsm.TaskState) []fsm.Task {
	var out []fsm.Task
	for _, tk := range s.tasks {
		if state == "" || tk.State == state {
			out = append(out, tk)
		}
	}
	return out
}

func (s *fakeState) ChunkRecord(_, _ osprey.UID, blob uint64) (fsm.Chunk, bool) {
	c, ok := s.chunks[blob]
	return c, ok
}
func (s *fakeState) Content(id osprey.UID) (fsm.Content, bool) { c, ok := s.contents[id]; return c, ok }
func (s *fakeState) Node(id osprey.NodeID) (fsm.Node, bool)    { n, ok := s.nodes[id]; return n, ok }

// HeldBy returns, in one page, the chunk records naming node a holder.
func (s *fakeState) HeldBy(node osprey.NodeID, _ []byte, _ int) ([]fsm.Held, []byte) {
	var out []fsm.Held
	for _, c := range s.chunks {
		held := c.EC == nil && slices.Contains(c.Owners, node)
		if c.EC != nil {
			for _, sh := range c.EC.Shards {
				held = held || sh.Owner == node
			}
		}
		if held {
			out = append(out, fsm.Held{Chunk: c})
		}
	}
	return out, nil
}
func (s *fakeState) Nodes() []fsm.Node {
	out := make([]fsm.Node, 0, len(s.nodes))
	for _, n := range s.nodes {
		out = append(out, n)
	}
	return out
}

// fakePlacement is an in-memory placement over the active members.
type fakePlacement struct {
	active []string
	want   int
}

func (p fakePlacement) Ring() (*ring.Ring, error) { return ring.New(ring.DefaultConfig(), p.active) }
func (p fakePlacement) NewOwners(key []byte, have []osprey.NodeID) ([]string, error) {
	r, _ := p.Ring()
	var out []string
	for _, c := range r.Owners(key, r.Len()) {
		held := false
		for _, h := range have {
			held = held || string(h) == c
		}
		if !held {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, osprey.ErrUnavailable
	}
	return out, nil
}
func (p fakePlacement) WantCopies() int    { return p.want }
func (p fakePlacement) EC() erasure.Policy { return erasure.Policy{} }

func md5hex(b []byte) string { s := md5.Sum(b); return hex.EncodeToString(s[:]) }

// setup: members n1..n3, n2 down; chunk blob 7 recorded on n1 and n2.
func setup(t *testing.T, data []byte) (*repair.Handler, *memCopies, *fakeState) {
	t.Helper()
	st := &fakeState{
		chunks: map[uint64]fsm.Chunk{7: {Blob: 7, Num: 1, Size: int64(len(data)), MD5: md5hex(data), Sum: xxhash.Sum64(data),
			Owners: []osprey.NodeID{"n1", "n2"}}},
		nodes: map[osprey.NodeID]fsm.Node{"n1": {ID: "n1"}, "n2": {ID: "n2", Down: true}, "n3": {ID: "n3"}},
	}
	m := newMemCopies()
	m.put("n1", httpapi.ChunkRef{Blob: 7, Num: 1}, data)
	h, err := repair.New(repair.Config{ID: "n1", State: st, Data: m, Placement: fakePlacement{active: []string{"n1", "n3"}, want: 2}})
	if err != nil {
		t.Fatal(err)
	}
	return h, m, st
}

func repairTask(p fsm.RepairPayload) fsm.Task {
	b, _ := json.Marshal(p)
	return fsm.Task{ID: 3, Type: fsm.TaskRepair, Payload: b}
}

func TestRepairChunkCopiesToNewOwner(t *testing.T) {
	data := []byte("a chunk worth keeping")
	h, m, _ := setup(t, data)
	comp, err := h.Run(context.Background(), repairTask(fsm.RepairPayload{Kind: fsm.RepairChunk, File: 1, Blob: 7, Num: 1, Lost: "n2"}))
	if err != nil {
		t.Fatal(err)
	}
	mv, ok := comp.Payload.(fsm.ChunkMoved)
	if !ok || comp.Type != fsm.CmdChunkMoved || mv.Remove != "n2" || mv.Add != "n3" || mv.TaskID != 3 {
		t.Fatalf("completion %+v", comp)
	}
	if b, ok := m.get("n3", httpapi.ChunkRef{Blob: 7, Num: 1}); !ok || !bytes.Equal(b, data) {
		t.Fatal("the new owner does not hold the copy")
	}
}

func TestRepairChunkCases(t *testing.T) {
	data := []byte("0123456789")
	tests := []struct {
		name      string
		mutate    func(*memCopies, *fakeState)
		wantNil   bool
		wantErr   bool
		permanent bool
	}{
		{"already repaired", func(_ *memCopies, st *fakeState) {
			c := st.chunks[7]
			c.Owners = []osprey.NodeID{"n1", "n3"}
			st.chunks[7] = c
		}, true, false, false},
		{"record gone", func(_ *memCopies, st *fakeState) { delete(st.chunks, 7) }, true, false, false},
		{"surviving copy corrupt", func(m *memCopies, _ *fakeState) {
			m.put("n1", httpapi.ChunkRef{Blob: 7, Num: 1}, []byte("0123456780"))
		}, false, true, false},
		{"no surviving copy", func(_ *memCopies, st *fakeState) {
			st.nodes["n1"] = fsm.Node{ID: "n1", Removed: true}
		}, false, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, m, st := setup(t, data)
			tt.mutate(m, st)
			comp, err := h.Run(context.Background(), repairTask(fsm.RepairPayload{Kind: fsm.RepairChunk, File: 1, Blob: 7, Num: 1, Lost: "n2"}))
			if (err != nil) != tt.wantErr || tasks.IsPermanent(err) != tt.permanent {
				t.Fatalf("err = %v (permanent %v)", err, tasks.IsPermanent(err))
			}
			if tt.wantNil && comp != nil {
				t.Fatalf("completion %+v, want none", comp)
			}
			if len(m.puts) != 0 {
				t.Fatalf("copies written: %v", m.puts)
			}
		})
	}
	h, _, _ := setup(t, data)
	if _, err := h.Run(context.Background(), repairTask(fsm.RepairPayload{Kind: "bogus"})); !tasks.IsPermanent(err) {
		t.Fatalf("unknown kind: %v", err)
	}
}

func TestRepairObject(t *testing.T) {
	data := []byte("tiered object bytes")
	h, m, st := setup(t, data)
	st.contents = map[osprey.UID]fsm.Content{9: {ID: 9, Size: int64(len(data)), MD5: md5hex(data),
		Location: &fsm.Location{Bucket: "b", Key: "k", Nodes: []osprey.NodeID{"n1", "n2"}}}}
	m.objects["n1/b/k"] = data
	comp, err := h.Run(context.Background(), repairTask(fsm.RepairPayload{Kind: fsm.RepairObject, Content: 9, Lost: "n2"}))
	if err != nil {
		t.Fatal(err)
	}
	mv := comp.Payload.(fsm.ObjectMoved)
	if mv.Add != "n3" || mv.Remove != "n2" || !bytes.Equal(m.objects["n3/b/k"], data) {
		t.Fatalf("moved %+v, objects %v", mv, m.objects)
	}
}

// releaseTask is a release task of moves in the given state.
func releaseTask(id uint64, state fsm.TaskState, moves ...fsm.Move) fsm.Task {
	b, _ := json.Marshal(fsm.ReleasePayload{Moves: moves})
	return fsm.Task{ID: id, Type: fsm.TaskRelease, State: state, Payload: b}
}

// TestRepairSkipsMembersWithAReleaseQueued: a repair never writes a copy to
// a member where a release of the same copy is queued or running (the
// release, deciding from a replica of the record that may not show the
// repair yet, could delete it); it picks another target, or fails for
// now and succeeds once the release is done. Releases of other copies,
// and dead ones, do not hold it back.
func TestRepairSkipsMembersWithAReleaseQueued(t *testing.T) {
	data := []byte("a chunk with a release pending")
	chunkTask := repairTask(fsm.RepairPayload{Kind: fsm.RepairChunk, File: 1, Blob: 7, Num: 1, Lost: "n2"})
	objTask := repairTask(fsm.RepairPayload{Kind: fsm.RepairObject, Content: 9, Lost: "n2"})
	setupObj := func(m *memCopies, st *fakeState) {
		st.contents = map[osprey.UID]fsm.Content{9: {ID: 9, Size: int64(len(data)), MD5: md5hex(data),
			Location: &fsm.Location{Bucket: "b", Key: "k", Nodes: []osprey.NodeID{"n1", "n2"}}}}
		m.objects["n1/b/k"] = data
	}
	for _, state := range []fsm.TaskState{fsm.TaskPending, fsm.TaskLeased} {
		t.Run("chunk/"+string(state), func(t *testing.T) {
			h, m, st := setup(t, data)
			st.tasks = []fsm.Task{releaseTask(1, state, fsm.Move{File: 1, Blob: 7, Num: 1, From: "n3", To: "n1"})}
			_, err := h.Run(context.Background(), chunkTask)
			if err == nil || tasks.IsPermanent(err) || !strings.Contains(err.Error(), "release") {
				t.Fatalf("repair with the only target releasing: %v", err)
			}
			if len(m.puts) != 0 {
				t.Fatalf("copies written: %v", m.puts)
			}
			st.tasks = nil // the release finished
			comp, err := h.Run(context.Background(), chunkTask)
			if err != nil || comp.Payload.(fsm.ChunkMoved).Add != "n3" {
				t.Fatalf("repair after the release: %+v, %v", comp, err)
			}
		})
		t.Run("object/"+string(state), func(t *testing.T) {
			h, m, st := setup(t, data)
			setupObj(m, st)
			st.tasks = []fsm.Task{releaseTask(1, state, fsm.Move{Object: true, Content: 9, Bucket: "b", Key: "k", From: "n3", To: "n1"})}
			if _, err := h.Run(context.Background(), objTask); err == nil || tasks.IsPermanent(err) {
				t.Fatalf("object repair with the only target releasing: %v", err)
			}
			if _, ok := m.objects["n3/b/k"]; ok {
				t.Fatal("object written to a member with a release queued")
			}
		})
	}
	t.Run("another target", func(t *testing.T) {
		_, m, st := setup(t, data)
		st.nodes["n4"] = fsm.Node{ID: "n4"}
		h2, err := repair.New(repair.Config{ID: "n1", State: st, Data: m,
			Placement: fakePlacement{active: []string{"n1", "n3", "n4"}, want: 2}})
		if err != nil {
			t.Fatal(err)
		}
		st.tasks = []fsm.Task{releaseTask(1, fsm.TaskPending, fsm.Move{Blob: 7, Num: 1, From: "n3"}),
			releaseTask(2, fsm.TaskPending, fsm.Move{Blob: 7, Num: 1, From: "n4", Shard: 2})} // another copy set
		comp, err := h2.Run(context.Background(), chunkTask)
		if err != nil || comp.Payload.(fsm.ChunkMoved).Add != "n4" {
			t.Fatalf("repair = %+v, %v; want it on n4", comp, err)
		}
		if _, ok := m.get("n3", httpapi.ChunkRef{Blob: 7, Num: 1}); ok {
			t.Fatal("copy written to n3, which has a release queued")
		}
	})
	t.Run("others do not hold it back", func(t *testing.T) {
		h, m, st := setup(t, data)
		setupObj(m, st)
		st.tasks = []fsm.Task{
			releaseTask(1, fsm.TaskDead, fsm.Move{Blob: 7, Num: 1, From: "n3"}),              // gave up
			releaseTask(2, fsm.TaskPending, fsm.Move{Blob: 8, Num: 1, From: "n3"}),           // another chunk
			releaseTask(3, fsm.TaskPending, fsm.Move{Object: true, Content: 10, From: "n3"}), // another object
			releaseTask(4, fsm.TaskPending, fsm.Move{Blob: 7, Num: 1, From: "n1"}),           // another member
		}
		if comp, err := h.Run(context.Background(), chunkTask); err != nil || comp.Payload.(fsm.ChunkMoved).Add != "n3" {
			t.Fatalf("chunk repair = %+v, %v", comp, err)
		}
		if comp, err := h.Run(context.Background(), objTask); err != nil || comp.Payload.(fsm.ObjectMoved).Add != "n3" {
			t.Fatalf("object repair = %+v, %v", comp, err)
		}
	})
}

// memChunks is this node's chunk store for the scrubber: Verify reports
// the keys in corrupt as corrupt.
type memChunks struct {
	copies  *memCopies
	corrupt map[chunkstore.Key]bool
}

func (c memChunks) Scan(_ context.Context, fn func(chunkstore.Key, chunkstore.Info) error) error {
	for ref := range c.copies.chunks["n1"] {
		if err := fn(chunkstore.Key{UID: ref.Blob, Chunk: ref.Num, Shard: ref.Shard}, chunkstore.Info{}); err != nil {
			return err
		}
	}
	return nil
}

func (c memChunks) Gen(_ context.Context, k chunkstore.Key) (uint64, error) {
	c.copies.mu.Lock()
	defer c.copies.mu.Unlock()
	ref := httpapi.ChunkRef{Blob: k.UID, Num: k.Chunk, Shard: k.Shard}
	if _, ok := c.copies.chunks["n1"][ref]; !ok {
		return 0, chunkstore.ErrNotFound
	}
	return c.copies.gens[fmt.Sprint("n1", ref)], nil
}

func (c memChunks) DeleteGen(_ context.Context, k chunkstore.Key, gen uint64) (bool, error) {
	c.copies.mu.Lock()
	defer c.copies.mu.Unlock()
	ref := httpapi.ChunkRef{Blob: k.UID, Num: k.Chunk, Shard: k.Shard}
	if _, ok := c.copies.chunks["n1"][ref]; !ok || c.copies.gens[fmt.Sprint("n1", ref)] != gen {
		return false, nil
	}
	delete(c.copies.chunks["n1"], ref)
	return true, nil
}

func (c memChunks) Verify(_ context.Context, k chunkstore.Key) (chunkstore.Info, error) {
	b, ok := c.copies.get("n1", httpapi.ChunkRef{Blob: k.UID, Num: k.Chunk, Shard: k.Shard})
	if !ok {
		return chunkstore.Info{}, chunkstore.ErrNotFound
	}
	if c.corrupt[k] {
		return chunkstore.Info{Size: int64(len(b))}, fmt.Errorf("block 0: %w", chunkstore.ErrCorrupt)
	}
	return chunkstore.Info{Size: int64(len(b)), Sum: xxhash.Sum64(b)}, nil
}

func TestScrubberHealsBadCopies(t *testing.T) {
	good := []byte("good bytes!")
	tests := []struct {
		name  string
		local []byte // this node's copy
		flag  bool   // Verify reports a corrupt block
	}{
		{"block checksum fails", good, true},
		{"bytes differ from the record", []byte("bad bytes!!"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMemCopies()
			ref := httpapi.ChunkRef{Blob: 7, Num: 1}
			m.put("n1", ref, tt.local)
			m.put("n2", ref, good)
			st := &fakeState{chunks: map[uint64]fsm.Chunk{7: {Blob: 7, Num: 1, Size: int64(len(good)), MD5: md5hex(good),
				Sum: xxhash.Sum64(good), Owners: []osprey.NodeID{"n1", "n2"}}}}
			passes, repaired := prometheus.NewCounter(prometheus.CounterOpts{Name: "p"}), prometheus.NewCounter(prometheus.CounterOpts{Name: "r"})
			s, err := repair.NewScrubber(repair.ScrubConfig{ID: "n1", Rate: 1 << 30, Pause: time.Hour,
				Chunks: memChunks{copies: m, corrupt: map[chunkstore.Key]bool{{UID: 7, Chunk: 1}: tt.flag}},
				State:  st, Data: m, Passes: passes, Repaired: repaired})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { s.Run(ctx); close(done) }()
			deadline := time.Now().Add(5 * time.Second)
			for value(passes) < 1 {
				if time.Now().After(deadline) {
					t.Fatal("no scrub pass completed")
				}
				time.Sleep(time.Millisecond) // polling with a deadline
			}
			cancel()
			<-done
			if b, _ := m.get("n1", ref); !bytes.Equal(b, good) || value(repaired) != 1 {
				t.Fatalf("local copy %q, repaired %v", b, value(repaired))
			}
		})
	}
}

// TestScrubberRewriteToAHungStoreIsBounded: a rewrite that never returns
// (this node's store, or a holder, hung) costs the pass one bounded
// attempt (tasks.CopyDeadline), as a repair's would, instead of holding
// the pass and every copy after it.
func TestScrubberRewriteToAHungStoreIsBounded(t *testing.T) {
	old := tasks.CopyMinTime
	tasks.CopyMinTime = 100 * time.Millisecond
	t.Cleanup(func() { tasks.CopyMinTime = old })
	good := []byte("good bytes!")
	m := newMemCopies()
	ref := httpapi.ChunkRef{Blob: 7, Num: 1}
	m.put("n1", ref, []byte("bad bytes!!"))
	m.put("n2", ref, good)
	m.hung = map[string]bool{"n1": true}
	st := &fakeState{chunks: map[uint64]fsm.Chunk{7: {Blob: 7, Num: 1, Size: int64(len(good)), MD5: md5hex(good),
		Sum: xxhash.Sum64(good), Owners: []osprey.NodeID{"n1", "n2"}}}}
	s, err := repair.NewScrubber(repair.ScrubConfig{ID: "n1", Rate: 1 << 30, Pause: time.Hour,
		Chunks: memChunks{copies: m, corrupt: map[chunkstore.Key]bool{}}, State: st, Data: m})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	if err := repair.Pass(s, ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the pass took %s behind a hung rewrite", d)
	}
}

// TestScrubberCollectsOrphans: a staged copy no record names this node the
// holder of is deleted once it has stayed so for OrphanGrace, checked
// after a read barrier; copies this node holds by the records, copies
// named again (or rewritten) before the grace ran out, and everything
// while the barrier fails, are kept.
func TestScrubberCollectsOrphans(t *testing.T) {
	data := []byte("staged bytes")
	rec := func(blob uint64, owners ...osprey.NodeID) fsm.Chunk {
		return fsm.Chunk{Blob: blob, Num: 1, Size: int64(len(data)), MD5: md5hex(data), Sum: xxhash.Sum64(data), Owners: owners}
	}
	coded := rec(10)
	coded.Owners = nil
	coded.EC = &fsm.ECLayout{K: 1, M: 1, Shards: []fsm.ECShard{{Index: 0, Owner: "n2"}, {Index: 1, Owner: "n1", Sum: xxhash.Sum64(data)}}}
	m := newMemCopies()
	ref := func(blob uint64, shard uint16) httpapi.ChunkRef {
		return httpapi.ChunkRef{Blob: blob, Num: 1, Shard: shard}
	}
	all := []httpapi.ChunkRef{ref(7, 0), ref(8, 0), ref(9, 0), ref(10, 1), ref(10, 2), ref(11, 0), ref(12, 0), ref(14, 0)}
	for _, r := range all {
		m.put("n1", r, data)
	}
	st := &fakeState{chunks: map[uint64]fsm.Chunk{
		7:  rec(7, "n1", "n2"), // held here: kept
		9:  rec(9, "n2", "n3"), // moved away from here: an orphan
		10: coded,              // shard 2 held here, shard 1 not: an orphan
	}} // 8, 11, 12, 14: no record
	barrierErr := errors.New("no leader")
	// Each pass starts with a barrier; the collection makes a second.
	calls := 0
	onBarrier := func(int) error { return nil }
	orphans := prometheus.NewCounter(prometheus.CounterOpts{Name: "o"})
	s, err := repair.NewScrubber(repair.ScrubConfig{ID: "n1", Rate: 1 << 30, Pause: time.Hour, Chunks: memChunks{copies: m},
		State: st, Data: m, OrphanGrace: time.Hour, Orphans: orphans,
		Barrier: func(context.Context) error { calls++; return onBarrier(calls) }})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_000_000, 0)
	repair.SetClock(s, func() time.Time { return now })
	ctx := context.Background()
	pass := func() error { calls = 0; return repair.Pass(s, ctx) }
	has := func(r httpapi.ChunkRef) bool { _, ok := m.get("n1", r); return ok }

	if err := pass(); err != nil || calls != 1 || value(orphans) != 0 {
		t.Fatalf("first pass: %v, %d barriers, %v deleted", err, calls, value(orphans))
	}
	// Before the grace runs out, blob 11 gets its record and blob 12 is
	// written again.
	now = now.Add(59 * time.Minute)
	st.chunks[11] = rec(11, "n1")
	m.put("n1", ref(12, 0), data)
	if err := pass(); err != nil || calls != 1 || value(orphans) != 0 {
		t.Fatalf("pass within the grace: %v, %d barriers, %v deleted", err, calls, value(orphans))
	}
	now = now.Add(time.Minute)
	for _, failAt := range []int{1, 2} { // the pass's barrier, then the collection's
		onBarrier = func(c int) error {
			if c == failAt {
				return barrierErr
			}
			return nil
		}
		if err := pass(); !errors.Is(err, barrierErr) || calls != failAt || value(orphans) != 0 {
			t.Fatalf("pass with barrier %d failing: %v, %d barriers, %v deleted", failAt, err, calls, value(orphans))
		}
		for _, r := range all {
			if !has(r) {
				t.Fatalf("%v deleted while barrier %d failed", r, failAt)
			}
		}
	}
	onBarrier = func(c int) error {
		if c == 2 {
			// A record committed after the pass walked the records.
			st.chunks[14] = rec(14, "n1")
		}
		return nil
	}
	if err := pass(); err != nil || value(orphans) != 3 {
		t.Fatalf("pass after the grace: %v, %v deleted, want 3", err, value(orphans))
	}
	for r, want := range map[httpapi.ChunkRef]bool{ref(7, 0): true, ref(8, 0): false, ref(9, 0): false,
		ref(10, 1): false, ref(10, 2): true, ref(11, 0): true, ref(12, 0): true, ref(14, 0): true} {
		if has(r) != want {
			t.Fatalf("after the grace: %v present %v, want %v", r, has(r), want)
		}
	}
	// The rewritten copy (first seen so at +59m) goes a grace after that.
	now = now.Add(58 * time.Minute)
	if err := pass(); err != nil || has(ref(12, 0)) == false {
		t.Fatalf("rewritten copy went early: %v", err)
	}
	now = now.Add(time.Minute)
	if err := pass(); err != nil || has(ref(12, 0)) || value(orphans) != 4 {
		t.Fatalf("rewritten copy after its grace: present %v, %v deleted (%v)", has(ref(12, 0)), value(orphans), err)
	}
}

// TestScrubberRestoresMissingCopies: a copy the records name this node the
// holder of but its store lacks is rewritten from another holder.
func TestScrubberRestoresMissingCopies(t *testing.T) {
	good := []byte("the other holder's copy")
	m := newMemCopies()
	ref := httpapi.ChunkRef{Blob: 7, Num: 1}
	m.put("n2", ref, good)
	st := &fakeState{chunks: map[uint64]fsm.Chunk{7: {Blob: 7, Num: 1, Size: int64(len(good)), MD5: md5hex(good),
		Sum: xxhash.Sum64(good), Owners: []osprey.NodeID{"n1", "n2"}}}}
	missing, repaired := prometheus.NewCounter(prometheus.CounterOpts{Name: "m"}), prometheus.NewCounter(prometheus.CounterOpts{Name: "r"})
	s, err := repair.NewScrubber(repair.ScrubConfig{ID: "n1", Rate: 1 << 30, Chunks: memChunks{copies: m}, State: st, Data: m,
		Missing: missing, Repaired: repaired})
	if err != nil {
		t.Fatal(err)
	}
	if err := repair.Pass(s, context.Background()); err != nil {
		t.Fatal(err)
	}
	if b, ok := m.get("n1", ref); !ok || !bytes.Equal(b, good) || value(missing) != 1 || value(repaired) != 1 {
		t.Fatalf("local copy %q (%v), missing %v, repaired %v", b, ok, value(missing), value(repaired))
	}
	// With no other copy to read, nothing is written and the pass goes on.
	m2 := newMemCopies()
	s2, err := repair.NewScrubber(repair.ScrubConfig{ID: "n1", Rate: 1 << 30, Chunks: memChunks{copies: m2}, State: st, Data: m2})
	if err != nil {
		t.Fatal(err)
	}
	if err := repair.Pass(s2, context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := m2.get("n1", ref); ok {
		t.Fatal("a copy was written from nothing")
	}
	// A copy whose file was deleted during the pass, by entries this node
	// applies only at the next read barrier (the pass's own first barrier
	// came before), is not missing: nothing is counted or written.
	m3 := newMemCopies()
	m3.put("n2", ref, good)
	st3 := &fakeState{chunks: map[uint64]fsm.Chunk{7: st.chunks[7]}}
	missing3 := prometheus.NewCounter(prometheus.CounterOpts{Name: "m3"})
	barriers := 0
	s3, err := repair.NewScrubber(repair.ScrubConfig{ID: "n1", Rate: 1 << 30, Chunks: memChunks{copies: m3}, State: st3, Data: m3,
		Missing: missing3, Barrier: func(context.Context) error {
			if barriers++; barriers > 1 {
				delete(st3.chunks, 7)
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := repair.Pass(s3, context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := m3.get("n1", ref); ok || value(missing3) != 0 {
		t.Fatalf("copy of a deleted file: written %v, missing %v", ok, value(missing3))
	}
}

// value reads a counter.
func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// TestRepairPrefersHoldersOfASurvivingCopy: a member prefers (leases
// first) the repairs whose surviving copy it holds, so it reads locally
// and the members split a lost member's copies between them; a repair
// with nothing to read from one holder is anyone's.
func TestRepairPrefersHoldersOfASurvivingCopy(t *testing.T) {
	h, _, st := setup(t, []byte("data"))
	st.contents = map[osprey.UID]fsm.Content{9: {ID: 9, Location: &fsm.Location{Bucket: "b", Key: "k", Nodes: []osprey.NodeID{"n2", "n3"}}}}
	other, err := repair.New(repair.Config{ID: "n3", State: st, Data: newMemCopies(), Placement: fakePlacement{active: []string{"n1", "n3"}, want: 2}})
	if err != nil {
		t.Fatal(err)
	}
	chunk := repairTask(fsm.RepairPayload{Kind: fsm.RepairChunk, File: 1, Blob: 7, Num: 1, Lost: "n2"})
	object := repairTask(fsm.RepairPayload{Kind: fsm.RepairObject, Content: 9, Lost: "n2"})
	gone := repairTask(fsm.RepairPayload{Kind: fsm.RepairObject, Content: 10, Lost: "n2"})
	shard := repairTask(fsm.RepairPayload{Kind: fsm.RepairChunk, File: 1, Blob: 7, Num: 1, Shard: 2, Lost: "n2"})
	for _, c := range []struct {
		name string
		h    *repair.Handler
		t    fsm.Task
		want bool
	}{
		{"n1 holds the chunk", h, chunk, true},
		{"n3 does not hold the chunk", other, chunk, false},
		{"n1 does not hold the object", h, object, false},
		{"n3 holds the object", other, object, true},
		{"a record that is gone", h, gone, true},
		{"a coded shard", other, shard, true},
	} {
		if got := c.h.Prefer(c.t); got != c.want {
			t.Errorf("%s: Prefer = %v, want %v", c.name, got, c.want)
		}
	}
	if h.BatchSize() != repair.DefaultBatchSize || h.Parallel() != repair.DefaultParallel {
		t.Errorf("batch %d, parallel %d: want the defaults", h.BatchSize(), h.Parallel())
	}
	if _, err := repair.New(repair.Config{ID: "n1", State: st, Data: newMemCopies(), Placement: fakePlacement{}, BatchSize: 500}); err == nil {
		t.Error("a batch of 500 repairs accepted (a batch, a renewal and a lease must fit one 128-command entry)")
	}
}

// TestScrubberCollectsOrphansAmongManyCopies: the pass tells orphans from
// held copies with a filter that has false positives; across passes
// every orphan is still collected and no held copy ever is.
func TestScrubberCollectsOrphansAmongManyCopies(t *testing.T) {
	const held, orphans = 20_000, 200
	data := []byte("x")
	m := newMemCopies()
	st := &fakeState{chunks: map[uint64]fsm.Chunk{}}
	for blob := uint64(1); blob <= held+orphans; blob++ {
		m.put("n1", httpapi.ChunkRef{Blob: blob, Num: 1}, data)
		if blob <= held {
			st.chunks[blob] = fsm.Chunk{Blob: blob, Num: 1, Size: 1, MD5: md5hex(data), Sum: xxhash.Sum64(data), Owners: []osprey.NodeID{"n1"}}
		}
	}
	deleted := prometheus.NewCounter(prometheus.CounterOpts{Name: "o"})
	s, err := repair.NewScrubber(repair.ScrubConfig{ID: "n1", Rate: 1 << 30, Pause: time.Hour, Chunks: memChunks{copies: m},
		State: st, Data: m, OrphanGrace: time.Hour, Orphans: deleted, Barrier: func(context.Context) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_000_000, 0)
	repair.SetClock(s, func() time.Time { return now })
	for pass := 0; pass < 20 && value(deleted) < orphans; pass++ {
		if err := repair.Pass(s, context.Background()); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Hour)
	}
	if got := value(deleted); got != orphans {
		t.Fatalf("%v orphans deleted, want %d", got, orphans)
	}
	for blob := uint64(1); blob <= held+orphans; blob++ {
		if _, ok := m.get("n1", httpapi.ChunkRef{Blob: blob, Num: 1}); ok != (blob <= held) {
			t.Fatalf("blob %d: present %v", blob, ok)
		}
	}
}

// TestRepairMovesOnFromAHungMember: a member that takes a copy and never
// answers (a paused process) costs one bounded attempt: the chunk goes to
// the next candidate, and an object copy fails (to be retried) instead of
// holding the repair until the member comes back.
func TestRepairMovesOnFromAHungMember(t *testing.T) {
	old := tasks.CopyMinTime
	tasks.CopyMinTime = 100 * time.Millisecond
	t.Cleanup(func() { tasks.CopyMinTime = old })
	data := []byte("a chunk worth keeping")
	st := &fakeState{
		chunks: map[uint64]fsm.Chunk{7: {Blob: 7, Num: 1, Size: int64(len(data)), MD5: md5hex(data), Sum: xxhash.Sum64(data),
			Owners: []osprey.NodeID{"n1", "n2"}}},
		nodes: map[osprey.NodeID]fsm.Node{"n1": {ID: "n1"}, "n2": {ID: "n2", Down: true}, "n3": {ID: "n3"}, "n4": {ID: "n4"}},
	}
	m := newMemCopies()
	m.put("n1", httpapi.ChunkRef{Blob: 7, Num: 1}, data)
	pl := fakePlacement{active: []string{"n1", "n3", "n4"}, want: 2}
	h, err := repair.New(repair.Config{ID: "n1", State: st, Data: m, Placement: pl})
	if err != nil {
		t.Fatal(err)
	}
	targets, _ := pl.NewOwners(ring.ChunkKey(7, 1), []osprey.NodeID{"n1", "n2"})
	m.hung = map[string]bool{targets[0]: true}
	start := time.Now()
	comp, err := h.Run(context.Background(), repairTask(fsm.RepairPayload{Kind: fsm.RepairChunk, File: 1, Blob: 7, Num: 1, Lost: "n2"}))
	if err != nil {
		t.Fatal(err)
	}
	if mv := comp.Payload.(fsm.ChunkMoved); string(mv.Add) != targets[1] {
		t.Fatalf("copy went to %s, want %s (after hung %s)", mv.Add, targets[1], targets[0])
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the repair took %s", d)
	}

	// An object whose only target hangs: the attempt fails, bounded.
	body := []byte("an object")
	st.contents = map[osprey.UID]fsm.Content{5: {ID: 5, Size: int64(len(body)), MD5: md5hex(body), State: fsm.ContentTiered,
		Location: &fsm.Location{Bucket: "b", Key: "k", Nodes: []osprey.NodeID{"n1", "n2"}}}}
	m.objects["n1/b/k"] = body
	otargets, _ := pl.NewOwners(ring.ChunkKey(5, 0), []osprey.NodeID{"n1", "n2"})
	m.hung = map[string]bool{otargets[0]: true}
	_, err = h.Run(context.Background(), repairTask(fsm.RepairPayload{Kind: fsm.RepairObject, Content: 5, Lost: "n2"}))
	if !errors.Is(err, tasks.ErrStalled) || !errors.Is(err, osprey.ErrUnavailable) {
		t.Fatalf("object copy to a hung member: %v", err)
	}
}
