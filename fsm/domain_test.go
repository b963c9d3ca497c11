package fsm

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/osprey-storage/osprey"
)

// base returns an FSM with a cluster, three members and uploading files
// 1..5 (1.jpg ...), created at t0.
func base(t *testing.T) *applier {
	t.Helper()
	a := newApplier(t)
	a.mustOK(CmdInitCluster, InitCluster{ClusterID: "c", Secret: exampleSecret(), Time: t0})
	for _, id := range []osprey.NodeID{"n1", "n2", "n3"} {
		a.mustOK(CmdNodeUpsert, NodeUpsert{ID: id, RaftAddr: string(id) + ":7000", Time: t0})
	}
	c := FilesCreate{Time: t0}
	for uid := osprey.UID(1); uid <= 5; uid++ {
		c.Files = append(c.Files, NewFile{UID: uid, Name: uid.String() + ".jpg", Bucket: "image"})
	}
	a.mustOK(CmdFilesCreate, c)
	return a
}

// put records chunk num of uid holding data.
func (a *applier) put(uid osprey.UID, blob uint64, num uint32, data string) *Result {
	a.t.Helper()
	return a.apply(CmdChunkPut, ChunkPut{UID: uid, Chunk: chunk(blob, num, data, "n1", "n2"), Time: t0 + 100})
}

func (a *applier) merge(uid osprey.UID, num uint32, size int64, md5 string) *Result {
	a.t.Helper()
	return a.apply(CmdMerge, Merge{UID: uid, Num: num, Size: size, MD5: md5, Time: t0 + 200})
}

func (a *applier) complete(uid osprey.UID, md5 string, chunks ...Chunk) *Result {
	a.t.Helper()
	var size int64
	for _, ch := range chunks {
		size += ch.Size
	}
	return a.apply(CmdFileComplete, FileComplete{UID: uid, Chunks: chunks, Size: size, MD5: md5, Time: t0 + 300})
}

func (a *applier) hash() string {
	h, _ := a.f.Hash()
	return h
}

func (a *applier) file(uid osprey.UID) File {
	a.t.Helper()
	f, ok := a.f.File(uid)
	if !ok {
		a.t.Fatalf("file %s not found", uid)
	}
	return f
}

// leaseTier leases the (only) tier task to node at now and returns it.
func (a *applier) leaseTier(node osprey.NodeID, now int64) Task {
	a.t.Helper()
	var tier Task
	for _, tk := range a.f.Tasks("") {
		if tk.Type == TaskTier {
			tier = tk
		}
	}
	a.mustOK(CmdTaskLease, TaskLease{Node: node, IDs: []uint64{tier.ID}, Now: now, LeaseMillis: 60_000})
	return tier
}

func (a *applier) content(id osprey.UID) Content {
	a.t.Helper()
	c, ok := a.f.Content(id)
	if !ok {
		a.t.Fatalf("content %s not found", id)
	}
	return c
}

// gcBlobs lists the blobs of every queued gc task, in task order.
func (a *applier) gcBlobs() []uint64 {
	var out []uint64
	for _, tk := range a.f.Tasks("") {
		if tk.Type != TaskGC {
			continue
		}
		var p GCPayload
		if err := json.Unmarshal(tk.Payload, &p); err != nil {
			a.t.Fatal(err)
		}
		for _, ch := range p.Chunks {
			out = append(out, ch.Blob)
		}
	}
	return out
}

func blobs(chunks []Chunk) []uint64 {
	var out []uint64
	for _, ch := range chunks {
		out = append(out, ch.Blob)
	}
	return out
}

func countTasks(f *FSM, typ string) int {
	n := 0
	for _, tk := range f.Tasks("") {
		if tk.Type == typ {
			n++
		}
	}
	return n
}

func TestMerge(t *testing.T) {
	for _, tt := range []struct {
		name string
		run  func(t *testing.T, a *applier)
	}{
		{"missing chunks are named and the rest kept", func(t *testing.T, a *applier) {
			a.put(1, 11, 1, "aa")
			a.put(1, 13, 3, "cc")
			before := a.hash()
			wantErr(t, a.merge(1, 5, 10, md5hex("aabbccddee")), ErrConflict, "missing chunks 2, 4-5 of 5")
			if a.hash() != before {
				t.Fatal("a failed merge changed the state")
			}
			if x := a.file(1); x.State != StateUploading || len(x.Chunks) != 2 {
				t.Fatalf("file after failed merge: %+v", x)
			}
			// The client uploads what was missing and merges again.
			a.put(1, 12, 2, "bb")
			a.put(1, 14, 4, "dd")
			a.put(1, 15, 5, "ee")
			wantErr(t, a.merge(1, 5, 10, md5hex("aabbccddee")), nil, "")
			ct := a.content(1)
			if !reflect.DeepEqual(blobs(ct.Chunks), []uint64{11, 12, 13, 14, 15}) || ct.Size != 10 || ct.Refs != 1 {
				t.Fatalf("content %+v", ct)
			}
		}},
		{"wrong size", func(t *testing.T, a *applier) {
			a.put(1, 11, 1, "aa")
			before := a.hash()
			wantErr(t, a.merge(1, 1, 3, md5hex("aa")), ErrConflict, "hold 2 bytes")
			if a.hash() != before {
				t.Fatal("a failed merge changed the state")
			}
		}},
		{"num 0", func(t *testing.T, a *applier) {
			wantErr(t, a.merge(1, 0, 0, md5hex("")), ErrInvalid, "")
		}},
		{"unknown uid", func(t *testing.T, a *applier) {
			wantErr(t, a.merge(99, 1, 2, md5hex("aa")), ErrNotFound, "99")
		}},
		{"twice is idempotent", func(t *testing.T, a *applier) {
			a.put(1, 11, 1, "aa")
			first := a.merge(1, 1, 2, md5hex("aa"))
			wantErr(t, first, nil, "")
			before := a.hash()
			second := a.merge(1, 1, 2, md5hex("aa"))
			wantErr(t, second, nil, "")
			res := second.Data.(CompleteResult)
			if !res.Already || len(res.Garbage) != 0 || !reflect.DeepEqual(res.File, first.Data.(CompleteResult).File) {
				t.Fatalf("second merge = %+v", res)
			}
			if a.hash() != before {
				t.Fatal("a repeated merge changed the state")
			}
		}},
		{"twice with other content", func(t *testing.T, a *applier) {
			a.put(1, 11, 1, "aa")
			wantErr(t, a.merge(1, 1, 2, md5hex("aa")), nil, "")
			wantErr(t, a.merge(1, 1, 2, md5hex("zz")), ErrConflict, "already complete")
		}},
		{"chunks beyond num are garbage", func(t *testing.T, a *applier) {
			a.put(1, 11, 1, "aa")
			a.put(1, 12, 2, "bb")
			a.put(1, 13, 3, "cc")
			r := a.merge(1, 2, 4, md5hex("aabb"))
			wantErr(t, r, nil, "")
			if got := blobs(r.Data.(CompleteResult).Garbage); !reflect.DeepEqual(got, []uint64{13}) {
				t.Fatalf("garbage %v, want [13]", got)
			}
			if got := a.gcBlobs(); !reflect.DeepEqual(got, []uint64{13}) {
				t.Fatalf("gc tasks for %v, want [13]", got)
			}
			if x := a.file(1); x.Chunks != nil || x.Content != 1 || x.Size != 4 {
				t.Fatalf("file %+v", x)
			}
			if countTasks(a.f, TaskTier) != 1 {
				t.Fatal("no tier task")
			}
		}},
		// A merge's md5 is only declared: deduplicating on it would hand
		// the uploader the indexed bytes without proof it holds them (and
		// lose its own if they differ). It keeps its own content until
		// tiering verifies it.
		{"no dedup on a declared md5", func(t *testing.T, a *applier) {
			a.put(1, 11, 1, "aa")
			wantErr(t, a.complete(1, md5hex("aa"), chunk(11, 1, "aa", "n1", "n2")), nil, "")
			a.put(2, 21, 1, "a")
			a.put(2, 22, 2, "a")
			r := a.merge(2, 2, 2, md5hex("aa"))
			wantErr(t, r, nil, "")
			res := r.Data.(CompleteResult)
			if res.File.Content != 2 || len(res.Garbage) != 0 {
				t.Fatalf("merge = %+v", res)
			}
			if ct := a.content(1); ct.Refs != 1 {
				t.Fatalf("refs %d, want 1", ct.Refs)
			}
			if ct := a.content(2); ct.Verified || countTasks(a.f, TaskTier) != 2 {
				t.Fatalf("merged content %+v: want its own, unverified, with a tier task", ct)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, base(t)) })
	}
}

func TestChunkPut(t *testing.T) {
	for _, tt := range []struct {
		name string
		run  func(t *testing.T, a *applier)
	}{
		{"replacement returns and collects the old copy", func(t *testing.T, a *applier) {
			wantErr(t, a.put(1, 11, 1, "aa"), nil, "")
			r := a.put(1, 12, 1, "AA")
			wantErr(t, r, nil, "")
			res := r.Data.(ChunkPutResult)
			if res.Replaced == nil || res.Replaced.Blob != 11 || res.Duplicate {
				t.Fatalf("result %+v", res)
			}
			if got := a.gcBlobs(); !reflect.DeepEqual(got, []uint64{11}) {
				t.Fatalf("gc tasks for %v, want [11]", got)
			}
			if ch := a.file(1).Chunks[1]; ch.Blob != 12 {
				t.Fatalf("chunk 1 is blob %d, want 12", ch.Blob)
			}
		}},
		{"identical re-send with a new blob", func(t *testing.T, a *applier) {
			a.put(1, 11, 1, "aa")
			res := a.put(1, 12, 1, "aa").Data.(ChunkPutResult)
			if !res.Duplicate || res.Replaced == nil || res.Replaced.Blob != 11 {
				t.Fatalf("result %+v", res)
			}
		}},
		{"same blob recorded again", func(t *testing.T, a *applier) {
			a.put(1, 11, 1, "aa")
			a.put(1, 11, 1, "aa")
			if got := a.gcBlobs(); len(got) != 0 {
				t.Fatalf("gc of %v: the recorded copy would be deleted", got)
			}
		}},
		{"number 0", func(t *testing.T, a *applier) {
			wantErr(t, a.put(1, 11, 0, "aa"), ErrInvalid, "")
		}},
		{"unknown uid", func(t *testing.T, a *applier) {
			wantErr(t, a.put(99, 11, 1, "aa"), ErrNotFound, "")
		}},
		{"other chunk after merge", func(t *testing.T, a *applier) {
			a.put(1, 11, 1, "aa")
			a.merge(1, 1, 2, md5hex("aa"))
			before := a.hash()
			wantErr(t, a.put(1, 12, 1, "AA"), ErrConflict, "already merged")
			wantErr(t, a.put(1, 13, 2, "bb"), ErrConflict, "already merged")
			if a.hash() != before {
				t.Fatal("a rejected chunk changed the state")
			}
		}},
		{"identical chunk after merge", func(t *testing.T, a *applier) {
			// A retried upload of a chunk that made it into the merge.
			a.put(1, 11, 1, "aa")
			a.put(1, 12, 2, "bb")
			a.merge(1, 2, 4, md5hex("aabb"))
			r := a.put(1, 13, 2, "bb")
			wantErr(t, r, nil, "")
			if res := r.Data.(ChunkPutResult); !res.Duplicate || res.Replaced != nil {
				t.Fatalf("result %+v", res)
			}
			// The new copy is garbage; the content keeps its own.
			if got := a.gcBlobs(); !reflect.DeepEqual(got, []uint64{13}) {
				t.Fatalf("gc tasks for %v, want [13]", got)
			}
			if got := blobs(a.content(1).Chunks); !reflect.DeepEqual(got, []uint64{11, 12}) {
				t.Fatalf("content chunks %v", got)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, base(t)) })
	}
}

func TestFileComplete(t *testing.T) {
	for _, tt := range []struct {
		name string
		run  func(t *testing.T, a *applier)
	}{
		{"new content", func(t *testing.T, a *applier) {
			r := a.complete(1, md5hex("aabb"), chunk(11, 1, "aa", "n1"), chunk(12, 2, "bb", "n2"))
			wantErr(t, r, nil, "")
			ct := a.content(1)
			if ct.Refs != 1 || ct.State != ContentStaged || !ct.Verified || ct.Key != "1.jpg" || ct.Size != 4 {
				t.Fatalf("content %+v", ct)
			}
			if c, ok := a.f.ContentByMD5("", md5hex("aabb")); !ok || c.ID != 1 {
				t.Fatal("content not indexed by md5")
			}
		}},
		{"dedup through an indexed md5", func(t *testing.T, a *applier) {
			a.complete(1, md5hex("aabb"), chunk(11, 1, "aabb", "n1"))
			a.put(2, 20, 1, "stale") // from an earlier chunked attempt
			r := a.complete(2, md5hex("aabb"), chunk(21, 1, "aabb", "n2"))
			wantErr(t, r, nil, "")
			res := r.Data.(CompleteResult)
			if res.File.Content != 1 || !reflect.DeepEqual(blobs(res.Garbage), []uint64{21, 20}) {
				t.Fatalf("result %+v", res)
			}
			if got := a.gcBlobs(); !reflect.DeepEqual(got, []uint64{21, 20}) {
				t.Fatalf("gc tasks for %v", got)
			}
			if ct := a.content(1); ct.Refs != 2 || !reflect.DeepEqual(blobs(ct.Chunks), []uint64{11}) {
				t.Fatalf("content %+v", ct)
			}
		}},
		{"twice with the same content", func(t *testing.T, a *applier) {
			a.complete(1, md5hex("aa"), chunk(11, 1, "aa", "n1"))
			r := a.complete(1, md5hex("aa"), chunk(12, 1, "aa", "n1"))
			wantErr(t, r, nil, "")
			if res := r.Data.(CompleteResult); !res.Already || !reflect.DeepEqual(blobs(res.Garbage), []uint64{12}) {
				t.Fatalf("result %+v", res)
			}
			if ct := a.content(1); ct.Refs != 1 {
				t.Fatalf("refs %d", ct.Refs)
			}
		}},
		{"twice with other content", func(t *testing.T, a *applier) {
			a.complete(1, md5hex("aa"), chunk(11, 1, "aa", "n1"))
			wantErr(t, a.complete(1, md5hex("bb"), chunk(12, 1, "bb", "n1")), ErrConflict, "")
		}},
		{"chunks numbered wrong", func(t *testing.T, a *applier) {
			wantErr(t, a.complete(1, md5hex("aabb"), chunk(11, 1, "aa", "n1"), chunk(12, 3, "bb", "n1")),
				ErrInvalid, "numbered 3")
		}},
		{"size mismatch", func(t *testing.T, a *applier) {
			r := a.apply(CmdFileComplete, FileComplete{UID: 1, Chunks: []Chunk{chunk(11, 1, "aa", "n1")}, Size: 5,
				MD5: md5hex("aa"), Time: t0})
			wantErr(t, r, ErrInvalid, "size says 5")
		}},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, base(t)) })
	}
}

func TestResumeAndDelete(t *testing.T) {
	md5 := md5hex("aa")
	for _, tt := range []struct {
		name string
		run  func(t *testing.T, a *applier)
	}{
		{"resume shares content", func(t *testing.T, a *applier) {
			r := a.apply(CmdResume, Resume{Time: t0 + 400, Items: []ResumeItem{
				{UID: 50, Name: "copy.jpg", Bucket: "image", MD5: md5},
				{UID: 51, Name: "other.jpg", Bucket: "image", MD5: md5hex("unknown")},
				{UID: 52, Name: "copy2.jpg", Bucket: "image", MD5: md5},
			}})
			wantErr(t, r, nil, "")
			if got := r.Data.(ResumeResult).UIDs; !reflect.DeepEqual(got, []osprey.UID{50, 0, 52}) {
				t.Fatalf("uids %v", got)
			}
			x := a.file(50)
			if x.State != StateComplete || x.Content != 1 || x.Size != 2 || x.MD5 != md5 || x.Name != "copy.jpg" {
				t.Fatalf("file %+v", x)
			}
			if _, ok := a.f.File(51); ok {
				t.Fatal("file created for unknown content")
			}
			if ct := a.content(1); ct.Refs != 3 {
				t.Fatalf("refs %d, want 3", ct.Refs)
			}
		}},
		{"resume onto an existing uid changes nothing", func(t *testing.T, a *applier) {
			before := a.hash()
			r := a.apply(CmdResume, Resume{Time: t0 + 400, Items: []ResumeItem{
				{UID: 60, Name: "copy.jpg", MD5: md5},
				{UID: 2, Name: "clash.jpg", MD5: md5}, // uploading file 2
			}})
			wantErr(t, r, ErrConflict, "uid 2 already exists")
			if a.hash() != before {
				t.Fatal("a failed resume changed the state")
			}
		}},
		{"resume with the same uid twice changes nothing", func(t *testing.T, a *applier) {
			before := a.hash()
			r := a.apply(CmdResume, Resume{Time: t0 + 400, Items: []ResumeItem{
				{UID: 60, Name: "copy.jpg", MD5: md5},
				{UID: 60, Name: "copy.jpg", MD5: md5},
			}})
			wantErr(t, r, ErrConflict, "60")
			if a.hash() != before {
				t.Fatal("a failed resume changed the state")
			}
		}},
		{"delete decrements refs; the last returns content and chunks", func(t *testing.T, a *applier) {
			a.apply(CmdResume, Resume{Time: t0, Items: []ResumeItem{{UID: 50, Name: "copy.jpg", MD5: md5}}})
			r := a.apply(CmdFileDelete, FileDelete{UID: 1, Time: t0 + 500})
			wantErr(t, r, nil, "")
			if res := r.Data.(DeleteResult); res.Content != nil || len(res.Garbage) != 0 {
				t.Fatalf("first delete returned %+v", res)
			}
			if ct := a.content(1); ct.Refs != 1 {
				t.Fatalf("refs %d, want 1", ct.Refs)
			}
			if _, ok := a.f.ContentByMD5("", md5); !ok {
				t.Fatal("content unindexed while referenced")
			}
			r = a.apply(CmdFileDelete, FileDelete{UID: 50, Time: t0 + 600})
			wantErr(t, r, nil, "")
			res := r.Data.(DeleteResult)
			if res.Content == nil || res.Content.ID != 1 || !reflect.DeepEqual(blobs(res.Garbage), []uint64{11}) {
				t.Fatalf("last delete returned %+v", res)
			}
			if _, ok := a.f.Content(1); ok {
				t.Fatal("content still there")
			}
			if _, ok := a.f.ContentByMD5("", md5); ok {
				t.Fatal("md5 still indexed")
			}
			if countTasks(a.f, TaskDelete) != 1 {
				t.Fatal("no delete task")
			}
			// The same bytes uploaded again make a new content.
			a.complete(3, md5, chunk(31, 1, "aa", "n3"))
			if ct, ok := a.f.ContentByMD5("", md5); !ok || ct.ID != 3 || ct.Refs != 1 {
				t.Fatalf("new content %+v, %v", ct, ok)
			}
		}},
		{"delete an upload collects its chunks", func(t *testing.T, a *applier) {
			a.put(2, 21, 1, "x")
			a.put(2, 22, 2, "y")
			r := a.apply(CmdFileDelete, FileDelete{UID: 2, Time: t0})
			wantErr(t, r, nil, "")
			if got := blobs(r.Data.(DeleteResult).Garbage); !reflect.DeepEqual(got, []uint64{21, 22}) {
				t.Fatalf("garbage %v", got)
			}
			if got := a.gcBlobs(); !reflect.DeepEqual(got, []uint64{21, 22}) {
				t.Fatalf("gc tasks for %v", got)
			}
		}},
		{"delete unknown", func(t *testing.T, a *applier) {
			wantErr(t, a.apply(CmdFileDelete, FileDelete{UID: 77}), ErrNotFound, "77")
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := base(t)
			a.put(1, 11, 1, "aa")
			// A single upload: its md5 was checked, so it is a dedup target.
			wantErr(t, a.complete(1, md5, chunk(11, 1, "aa", "n1", "n2")), nil, "")
			tt.run(t, a)
		})
	}
}

func TestNodes(t *testing.T) {
	a := base(t) // n1, n2, n3 have worker ids 0, 1, 2
	upsert := func(id osprey.NodeID, http string) Node {
		return a.mustOK(CmdNodeUpsert, NodeUpsert{ID: id, RaftAddr: string(id) + ":7000", HTTPAddr: http, Time: t0 + 1}).(Node)
	}
	remove := func(id osprey.NodeID) *Result {
		return a.apply(CmdNodeRemove, NodeRemove{ID: id, Time: t0 + 2})
	}
	// An update keeps the worker id.
	if n := upsert("n2", "n2:8081"); n.WorkerID != 1 || n.HTTPAddr != "n2:8081" || n.JoinedAt != t0 {
		t.Fatalf("updated n2 = %+v", n)
	}
	wantErr(t, remove("n2"), nil, "")
	if n, _ := a.f.Node("n2"); !n.Removed || n.WorkerID != 1 {
		t.Fatalf("removed n2 = %+v", n)
	}
	// Removing twice is harmless; an unknown node is not found.
	wantErr(t, remove("n2"), nil, "")
	wantErr(t, remove("n9"), ErrNotFound, "n9")
	// Back after removal: a NEW worker id (its old uids may be lost).
	if n := upsert("n2", "n2:8080"); n.WorkerID != 3 || n.Removed {
		t.Fatalf("re-added n2 = %+v", n)
	}
	if n := upsert("n4", ""); n.WorkerID != 4 {
		t.Fatalf("n4 = %+v", n)
	}
	wantErr(t, remove("n1"), nil, "")
	if n := upsert("n1", ""); n.WorkerID != 5 {
		t.Fatalf("re-added n1 = %+v", n)
	}
	wantErr(t, a.apply(CmdNodeUpsert, NodeUpsert{ID: "n5"}), ErrInvalid, "")

	// Worker ids never repeat, across a long random history too.
	for seed := uint64(1); seed <= 4; seed++ {
		seen := map[uint32]osprey.NodeID{}
		g := newApplier(t)
		for _, e := range genLog(t, seed, scaled(1500)) {
			r := g.apply(e.Type, e.Payload)
			if n, ok := r.Data.(Node); ok && e.Type == CmdNodeUpsert {
				if prev, dup := seen[n.WorkerID]; dup && prev != n.ID {
					t.Fatalf("seed %d: worker id %d given to %s and %s", seed, n.WorkerID, prev, n.ID)
				}
				seen[n.WorkerID] = n.ID
			}
		}
		// Each (re)join took a new id: as many ids as joins.
		if len(seen) < len(genNodes) {
			t.Fatalf("seed %d: only %d worker ids", seed, len(seen))
		}
	}
	for _, n := range a.f.Nodes() {
		t.Logf("%s worker %d removed %v", n.ID, n.WorkerID, n.Removed)
	}
}

func TestInitAndFilesCreate(t *testing.T) {
	a := newApplier(t)
	wantErr(t, a.apply(CmdInitCluster, InitCluster{ClusterID: "c", Secret: []byte("short")}), ErrInvalid, "")
	wantErr(t, a.apply(CmdInitCluster, InitCluster{Secret: exampleSecret()}), ErrInvalid, "")
	a.mustOK(CmdInitCluster, InitCluster{ClusterID: "first", Secret: exampleSecret(), JoinTokenHash: "h", Time: t0})
	r := a.mustOK(CmdInitCluster, InitCluster{ClusterID: "second", Secret: []byte("another secret of 32 bytes......"), Time: t0})
	if r.(InitClusterResult).ClusterID != "first" || a.f.ClusterID() != "first" ||
		!reflect.DeepEqual(a.f.Secret(), exampleSecret()) || a.f.JoinTokenHash() != "h" {
		t.Fatal("a second InitCluster changed the cluster")
	}
	// The secret returned is a copy.
	a.f.Secret()[0] ^= 0xff
	if !reflect.DeepEqual(a.f.Secret(), exampleSecret()) {
		t.Fatal("Secret returned the state's slice")
	}

	a.mustOK(CmdFilesCreate, FilesCreate{Time: t0, Files: []NewFile{{UID: 1, Name: "a.jpg"}}})
	before := a.hash()
	wantErr(t, a.apply(CmdFilesCreate, FilesCreate{Files: []NewFile{{UID: 2, Name: "b.jpg"}, {UID: 1, Name: "a.jpg"}}}),
		ErrConflict, "uid 1 already exists")
	wantErr(t, a.apply(CmdFilesCreate, FilesCreate{Files: []NewFile{{UID: 3, Name: "c.jpg"}, {UID: 4}}}), ErrInvalid, "")
	if a.hash() != before {
		t.Fatal("a rejected FilesCreate created some of its files")
	}
}

func TestTaskLifecycle(t *testing.T) {
	a := base(t)
	a.mustOK(CmdSetSettings, SetSettings{Settings: Settings{MaxAttempts: 2}})
	a.put(1, 11, 1, "aa")
	a.merge(1, 1, 2, md5hex("aa")) // tier task 1
	const id = 1
	lease := func(node osprey.NodeID, now int64) []Task {
		return a.mustOK(CmdTaskLease, TaskLease{Node: node, IDs: []uint64{id, 404}, Now: now, LeaseMillis: 1000}).(TaskLeaseResult).Tasks
	}
	if got := lease("n1", t0+1000); len(got) != 1 || got[0].Attempts != 1 || got[0].LeaseExpiry != t0+2000 {
		t.Fatalf("lease = %+v", got)
	}
	// Held: another node cannot take it; the holder renews without a new
	// attempt; once expired anyone may take it over.
	if got := lease("n2", t0+1500); len(got) != 0 {
		t.Fatal("leased twice")
	}
	if got := lease("n1", t0+1500); len(got) != 1 || got[0].Attempts != 1 || got[0].LeaseExpiry != t0+2500 {
		t.Fatalf("renew = %+v", got)
	}
	if len(a.f.RunnableTasks(t0+2499, map[string]bool{TaskTier: true}, 10)) != 0 ||
		len(a.f.RunnableTasks(t0+2500, map[string]bool{TaskTier: true}, 10)) != 1 {
		t.Fatal("an expired lease is not runnable")
	}
	if got := lease("n2", t0+3000); len(got) != 1 || got[0].LeaseHolder != "n2" || got[0].Attempts != 2 {
		t.Fatalf("takeover = %+v", got)
	}
	// Only the holder reports.
	wantErr(t, a.apply(CmdTaskFail, TaskFail{ID: id, Node: "n1", Now: t0 + 3100}), ErrConflict, "not leased by n1")
	wantErr(t, a.apply(CmdTaskDone, TaskDone{ID: id, Node: "n1"}), ErrConflict, "")
	wantErr(t, a.apply(CmdTaskDone, TaskDone{ID: 404, Node: "n1"}), ErrNotFound, "")
	// The second failed attempt reaches MaxAttempts: dead.
	tk := a.mustOK(CmdTaskFail, TaskFail{ID: id, Node: "n2", Error: "boom", Now: t0 + 3200}).(Task)
	if tk.State != TaskDead || tk.LastError != "boom" || tk.LeaseHolder != "" {
		t.Fatalf("task %+v", tk)
	}
	if got := lease("n1", t0+1e9); len(got) != 0 {
		t.Fatal("a dead task was leased")
	}
	wantErr(t, a.apply(CmdTaskRetry, TaskRetry{ID: 404}), ErrNotFound, "")
	tk = a.mustOK(CmdTaskRetry, TaskRetry{ID: id, Now: t0 + 4000}).(Task)
	if tk.State != TaskPending || tk.Attempts != 0 || tk.NextAttempt != t0+4000 {
		t.Fatalf("retried %+v", tk)
	}
	wantErr(t, a.apply(CmdTaskRetry, TaskRetry{ID: id, Now: t0 + 4000}), ErrConflict, "only dead")
	// A failure with attempts left backs off exponentially.
	a.mustOK(CmdSetSettings, SetSettings{Settings: Settings{MaxAttempts: 10, GCGraceMillis: 5000}})
	lease("n3", t0+5000)
	if tk := a.mustOK(CmdTaskFail, TaskFail{ID: id, Node: "n3", Now: t0 + 5000}).(Task); tk.NextAttempt != t0+6000 {
		t.Fatalf("backoff after 1 attempt: %d", tk.NextAttempt-t0-5000)
	}
	lease("n3", t0+6000)
	if tk := a.mustOK(CmdTaskFail, TaskFail{ID: id, Node: "n3", Now: t0 + 6000}).(Task); tk.NextAttempt != t0+8000 {
		t.Fatalf("backoff after 2 attempts: %d", tk.NextAttempt-t0-6000)
	}
	// Tiered: the staged chunks are collected after the grace period.
	lease("n3", t0+8000)
	a.mustOK(CmdTierDone, TierDone{TaskID: id, Node: "n3", Content: 1, Now: t0 + 8100,
		Location: Location{Bucket: "image", Key: "1.jpg"}})
	ct := a.content(1)
	if ct.State != ContentTiered || len(ct.Chunks) != 0 || ct.Location.Key != "1.jpg" || !ct.Verified {
		t.Fatalf("content %+v", ct)
	}
	gc := a.f.Tasks(TaskPending)
	if len(gc) != 1 || gc[0].Type != TaskGC || gc[0].NextAttempt != t0+8100+5000 {
		t.Fatalf("tasks after tiering %+v", gc)
	}
	if _, ok := a.f.Task(id); ok {
		t.Fatal("tier task still queued")
	}
}

func TestTierFailedUnindexes(t *testing.T) {
	a := base(t)
	md5 := md5hex("aa")
	a.put(1, 11, 1, "aa")
	a.merge(1, 1, 2, md5)
	a.mustOK(CmdTaskLease, TaskLease{Node: "n1", IDs: []uint64{1}, Now: t0 + 1000, LeaseMillis: 1000})
	a.mustOK(CmdTierFailed, TierFailed{TaskID: 1, Node: "n1", Content: 1, Reason: "md5 mismatch", Now: t0 + 1100})
	if ct := a.content(1); ct.State != ContentFailed || len(ct.Chunks) != 1 {
		t.Fatalf("content %+v (data must be kept for inspection)", ct)
	}
	if _, ok := a.f.ContentByMD5("", md5); ok {
		t.Fatal("failed content still deduplicated onto")
	}
	// The next upload of those bytes gets its own content.
	a.complete(2, md5, chunk(21, 1, "aa", "n2"))
	if ct, ok := a.f.ContentByMD5("", md5); !ok || ct.ID != 2 {
		t.Fatalf("content %+v, %v", ct, ok)
	}
}

func TestExpire(t *testing.T) {
	a := base(t) // files 1..5 created at t0
	a.put(2, 21, 1, "x")
	a.put(4, 41, 1, "y") // touched at t0+100
	a.complete(5, md5hex("z"), chunk(51, 1, "z", "n1"))
	r := a.mustOK(CmdExpire, Expire{Before: t0 + 50, Now: t0 + 1000}).(ExpireResult)
	if !reflect.DeepEqual(r.UIDs, []osprey.UID{1, 3}) {
		t.Fatalf("expired %v, want [1 3]", r.UIDs)
	}
	if a.f.HasUploadsBefore(t0+50) || !a.f.HasUploadsBefore(t0+101) {
		t.Fatal("HasUploadsBefore disagrees with Expire")
	}
	r = a.mustOK(CmdExpire, Expire{Before: t0 + 101, Now: t0 + 1000}).(ExpireResult)
	if !reflect.DeepEqual(r.UIDs, []osprey.UID{2, 4}) {
		t.Fatalf("expired %v, want [2 4]", r.UIDs)
	}
	if got := a.gcBlobs(); !reflect.DeepEqual(got, []uint64{21, 41}) {
		t.Fatalf("gc tasks for %v", got)
	}
	if _, ok := a.f.File(5); !ok {
		t.Fatal("a complete file expired")
	}
}

func TestRepairOnRemove(t *testing.T) {
	a := base(t)
	a.put(1, 11, 1, "aa") // owners n1, n2
	a.put(2, 21, 1, "bb")
	a.merge(2, 1, 2, md5hex("bb")) // content 2, tier task 1
	a.mustOK(CmdNodeRemove, NodeRemove{ID: "n2", Time: t0 + 1000})
	var kinds []string
	for _, tk := range a.f.Tasks("") {
		if tk.Type == TaskRepair {
			var p RepairPayload
			if err := json.Unmarshal(tk.Payload, &p); err != nil {
				t.Fatal(err)
			}
			kinds = append(kinds, p.Kind+":"+p.File.String()+"/"+p.Content.String()+":"+string(p.Lost))
		}
	}
	if want := []string{"chunk:1/0:n2", "chunk:0/2:n2"}; !reflect.DeepEqual(kinds, want) {
		t.Fatalf("repairs %v, want %v", kinds, want)
	}
	// A chunk recorded with an owner that is already gone is repaired too.
	a.put(3, 31, 1, "cc")
	if n := countTasks(a.f, TaskRepair); n != 3 {
		t.Fatalf("%d repair tasks, want 3", n)
	}
}

// TestRepairOnRejoinedOwner: a copy written to a member that was then
// removed, wiped and joined again before the entry recording it applied is
// gone with that incarnation; the owner's new worker id tells (Chunk.Workers)
// and the copy is repaired instead of counted. A 10-minute chaos run left a
// chunk of an upload named held by a rejoined member that lacked it.
func TestRepairOnRejoinedOwner(t *testing.T) {
	a := base(t)
	workers := func(ids ...osprey.NodeID) []uint32 {
		var ws []uint32
		for _, id := range ids {
			n, ok := a.f.Node(id)
			if !ok {
				t.Fatalf("no member %s", id)
			}
			ws = append(ws, n.WorkerID)
		}
		return ws
	}
	with := func(c Chunk, ws []uint32) Chunk { c.Workers = ws; return c }
	repairs := func() []string {
		var out []string
		for _, tk := range a.f.Tasks("") {
			if tk.Type == TaskRepair {
				var p RepairPayload
				if err := json.Unmarshal(tk.Payload, &p); err != nil {
					t.Fatal(err)
				}
				out = append(out, fmt.Sprintf("%d/%d:%d:%s", p.File, p.Content, p.Blob, p.Lost))
			}
		}
		return out
	}
	old := workers("n1", "n2")
	a.mustOK(CmdChunkPut, ChunkPut{UID: 1, Chunk: with(chunk(11, 1, "aa", "n1", "n2"), old), Time: t0 + 100})
	if r := repairs(); len(r) != 0 {
		t.Fatalf("repairs %v for copies on the current members", r)
	}
	if ch := a.file(1).Chunks[1]; ch.Workers != nil {
		t.Fatalf("record keeps the command's worker ids %v", ch.Workers)
	}
	// n1 is removed (its copy of blob 11 is repaired), wiped and joins
	// again with a new worker id.
	a.mustOK(CmdNodeRemove, NodeRemove{ID: "n1", Time: t0 + 1000})
	a.mustOK(CmdNodeUpsert, NodeUpsert{ID: "n1", RaftAddr: "n1:7000", Time: t0 + 1100})
	if w := workers("n1"); w[0] == old[0] {
		t.Fatalf("rejoined n1 kept worker id %d", w[0])
	}
	want := []string{"1/0:11:n1"}
	if r := repairs(); !reflect.DeepEqual(r, want) {
		t.Fatalf("repairs %v, want %v", r, want)
	}
	// Entries whose copies went to the old incarnation apply now: the
	// rejoined n1 does not hold them.
	a.mustOK(CmdChunkPut, ChunkPut{UID: 1, Chunk: with(chunk(12, 2, "bb", "n1", "n2"), old), Time: t0 + 1200})
	ch3 := with(chunk(31, 1, "cc", "n1", "n3"), []uint32{old[0], workers("n3")[0]})
	a.mustOK(CmdFileComplete, FileComplete{UID: 3, Chunks: []Chunk{ch3}, Size: 2, MD5: md5hex("cc"), Time: t0 + 1200})
	want = append(want, "1/0:12:n1", "0/3:31:n1")
	if r := repairs(); !reflect.DeepEqual(r, want) {
		t.Fatalf("repairs %v, want %v", r, want)
	}
	if ch := a.content(3).Chunks[0]; ch.Workers != nil || !reflect.DeepEqual(ch.Owners, []osprey.NodeID{"n1", "n3"}) {
		t.Fatalf("content chunk %+v", ch)
	}
	// Copies written to the new incarnation, and those of a proposer that
	// sent no worker ids (an earlier build), count.
	a.mustOK(CmdChunkPut, ChunkPut{UID: 2, Chunk: with(chunk(21, 1, "dd", "n1", "n2"), workers("n1", "n2")), Time: t0 + 1300})
	a.mustOK(CmdChunkPut, ChunkPut{UID: 2, Chunk: chunk(23, 3, "ff", "n1", "n2"), Time: t0 + 1300})
	if r := repairs(); !reflect.DeepEqual(r, want) {
		t.Fatalf("repairs %v, want %v", r, want)
	}
}

// base5 is base with members n4 and n5 too.
func base5(t *testing.T) *applier {
	t.Helper()
	a := base(t)
	for _, id := range []osprey.NodeID{"n4", "n5"} {
		a.mustOK(CmdNodeUpsert, NodeUpsert{ID: id, RaftAddr: string(id) + ":7000", Time: t0})
	}
	return a
}

// lastGC decodes the payload of the last pending task, a gc task.
func lastGC(t *testing.T, a *applier) GCPayload {
	t.Helper()
	last := a.f.Tasks(TaskPending)
	var p GCPayload
	if err := json.Unmarshal(last[len(last)-1].Payload, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRepairRaces: repairs finish after the chunk they rebuilt changed.
func TestRepairRaces(t *testing.T) {
	// leaseAt takes the repair tasks for n3 at now; lease at t0+2000.
	leaseAt := func(a *applier, now int64) []Task {
		var ids []uint64
		for _, tk := range a.f.Tasks(TaskPending) {
			if tk.Type == TaskRepair {
				ids = append(ids, tk.ID)
			}
		}
		return a.mustOK(CmdTaskLease, TaskLease{Node: "n3", IDs: ids, Now: now, LeaseMillis: 60_000}).(TaskLeaseResult).Tasks
	}
	lease := func(a *applier) []Task { return leaseAt(a, t0+2000) }
	payload := func(tk Task) RepairPayload {
		var p RepairPayload
		if err := json.Unmarshal(tk.Payload, &p); err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("upload merged and deleted, content lives on", func(t *testing.T) {
		a := base(t)
		a.put(1, 11, 1, "aa") // owners n1, n2
		a.mustOK(CmdNodeRemove, NodeRemove{ID: "n2", Time: t0 + 1000})
		tasks := lease(a) // the repair names the upload: file 1
		if len(tasks) != 1 || payload(tasks[0]).File != 1 {
			t.Fatalf("repair tasks %+v", tasks)
		}
		// Completed as a single upload (verified), so the resume shares it.
		a.mustOK(CmdFileComplete, FileComplete{UID: 1, Chunks: []Chunk{*a.file(1).Chunks[1]}, Size: 2, MD5: md5hex("aa"), Time: t0 + 300})
		a.mustOK(CmdResume, Resume{Time: t0, Items: []ResumeItem{{UID: 50, Name: "copy.jpg", MD5: md5hex("aa")}}})
		a.mustOK(CmdFileDelete, FileDelete{UID: 1, Time: t0 + 1500})
		// The chunk record is now in content 1, which file 50 keeps.
		if _, ok := a.f.ChunkRecord(1, 0, 11); !ok {
			t.Fatal("ChunkRecord does not find the chunk of a merged, deleted upload")
		}
		a.mustOK(CmdChunkMoved, ChunkMoved{TaskID: tasks[0].ID, Node: "n3", File: 1, Blob: 11, Num: 1,
			Remove: "n2", Add: "n3", Now: t0 + 3000})
		if ch := a.content(1).Chunks[0]; !reflect.DeepEqual(ch.Owners, []osprey.NodeID{"n1", "n3"}) {
			t.Fatalf("owners %v, want [n1 n3]", ch.Owners)
		}
		if got := a.gcBlobs(); len(got) != 0 {
			t.Fatalf("the rebuilt copy was collected: gc of %v", got)
		}
	})

	// Two members holding copies of one chunk are lost together; their
	// repairs run at once and both write to n4. The second must not be
	// recorded as a move (the chunk would keep one copy too few, with no
	// repair left to restore it, as a 10-minute chaos run showed): it is
	// queued again, and its next run picks another member.
	sameTarget := func(t *testing.T, lose func(a *applier)) {
		a := base5(t)
		a.mustOK(CmdChunkPut, ChunkPut{UID: 1, Chunk: chunk(11, 1, "aa", "n1", "n2", "n3"), Time: t0})
		lose(a)
		tasks := lease(a)
		if len(tasks) != 2 {
			t.Fatalf("repair tasks %+v", tasks)
		}
		for _, tk := range tasks {
			a.mustOK(CmdChunkMoved, ChunkMoved{TaskID: tk.ID, Node: "n3", File: 1, Blob: 11, Num: 1,
				Remove: payload(tk).Lost, Add: "n4", Now: t0 + 3000})
		}
		again := leaseAt(a, t0+3000)
		if len(again) != 1 || payload(again[0]).Lost != "n2" {
			t.Fatalf("repairs after two moves to n4: %+v, want one for n2", again)
		}
		a.mustOK(CmdChunkMoved, ChunkMoved{TaskID: again[0].ID, Node: "n3", File: 1, Blob: 11, Num: 1,
			Remove: "n2", Add: "n5", Now: t0 + 4000})
		ch, _ := a.f.ChunkRecord(1, 0, 11)
		if !reflect.DeepEqual(ch.Owners, []osprey.NodeID{"n3", "n4", "n5"}) {
			t.Fatalf("owners %v, want [n3 n4 n5]", ch.Owners)
		}
		if got := a.gcBlobs(); len(got) != 0 {
			t.Fatalf("a recorded copy was collected: gc of %v", got)
		}
		if msg := checkInvariants(dumpState(a.f)); msg != "" {
			t.Fatal(msg)
		}
	}
	t.Run("two removed members repaired to the same one", func(t *testing.T) {
		sameTarget(t, func(a *applier) {
			a.mustOK(CmdNodeRemove, NodeRemove{ID: "n1", Time: t0 + 1000})
			a.mustOK(CmdNodeRemove, NodeRemove{ID: "n2", Time: t0 + 1000})
		})
	})
	t.Run("two down members repaired to the same one", func(t *testing.T) {
		sameTarget(t, func(a *applier) {
			a.mustOK(CmdNodeDown, NodeDown{ID: "n1", Time: t0 + 1000})
			a.mustOK(CmdNodeDown, NodeDown{ID: "n2", Time: t0 + 1000})
		})
	})

	t.Run("two local object copies repaired to the same member", func(t *testing.T) {
		a := base5(t)
		a.put(2, 21, 1, "bb")
		a.merge(2, 1, 2, md5hex("bb"))
		tier := a.leaseTier("n3", t0+500)
		a.mustOK(CmdTierDone, TierDone{TaskID: tier.ID, Node: "n3", Content: 2, Now: t0 + 600,
			Location: Location{Bucket: "image", Key: "2.jpg", Nodes: []osprey.NodeID{"n1", "n2", "n3"}}})
		a.mustOK(CmdNodeRemove, NodeRemove{ID: "n1", Time: t0 + 1000})
		a.mustOK(CmdNodeRemove, NodeRemove{ID: "n2", Time: t0 + 1000})
		tasks := lease(a)
		if len(tasks) != 2 || payload(tasks[0]).Kind != RepairObject {
			t.Fatalf("repair tasks %+v", tasks)
		}
		for _, tk := range tasks {
			a.mustOK(CmdObjectMoved, ObjectMoved{TaskID: tk.ID, Node: "n3", Content: 2, Remove: payload(tk).Lost, Add: "n4", Now: t0 + 3000})
		}
		if got := a.content(2).Location.Nodes; !reflect.DeepEqual(got, []osprey.NodeID{"n3", "n4"}) {
			t.Fatalf("object holders %v, want [n3 n4]", got)
		}
		if again := leaseAt(a, t0+3000); len(again) != 1 || payload(again[0]).Lost != "n2" {
			t.Fatalf("repairs after two copies went to n4: %+v, want one for n2", again)
		}
	})

	// An erasure-coded chunk on n1, n2, n3 loses n1 and n2: two shard
	// repairs; the first converts the chunk to replicas.
	coded := func(t *testing.T) (*applier, []Task) {
		a := base5(t)
		a.mustOK(CmdChunkPut, ChunkPut{UID: 1, Chunk: ecChunk(11, 1, "abcdef", "n1", "n2", "n3"), Time: t0})
		a.mustOK(CmdNodeRemove, NodeRemove{ID: "n1", Time: t0 + 1000})
		a.mustOK(CmdNodeRemove, NodeRemove{ID: "n2", Time: t0 + 1000})
		tasks := lease(a)
		if len(tasks) != 2 || payload(tasks[0]).Shard != 1 || payload(tasks[1]).Shard != 2 {
			t.Fatalf("repair tasks %+v", tasks)
		}
		a.mustOK(CmdChunkConverted, ChunkConverted{TaskID: tasks[0].ID, Node: "n3", File: 1, Blob: 11,
			Owners: []osprey.NodeID{"n4", "n3"}, Now: t0 + 3000})
		ch, _ := a.f.ChunkRecord(1, 0, 11)
		if ch.EC != nil || !reflect.DeepEqual(ch.Owners, []osprey.NodeID{"n3", "n4"}) {
			t.Fatalf("converted chunk %+v", ch)
		}
		return a, tasks
	}
	t.Run("shard rebuilt after the conversion", func(t *testing.T) {
		a, tasks := coded(t)
		a.mustOK(CmdChunkMoved, ChunkMoved{TaskID: tasks[1].ID, Node: "n3", File: 1, Blob: 11, Num: 1, Shard: 2,
			Remove: "n2", Add: "n5", Now: t0 + 4000})
		// The record keeps its replicas; the shard written on n5 is
		// collected as a shard, not recorded as a replica.
		ch, _ := a.f.ChunkRecord(1, 0, 11)
		if ch.EC != nil || !reflect.DeepEqual(ch.Owners, []osprey.NodeID{"n3", "n4"}) {
			t.Fatalf("chunk after the late shard move %+v", ch)
		}
		if msg := checkInvariants(dumpState(a.f)); msg != "" {
			t.Fatal(msg)
		}
		if g := lastGC(t, a).Chunks[0]; g.EC == nil || g.EC.Shards[0].Index != 1 || g.EC.Shards[0].Owner != "n5" {
			t.Fatalf("gc of %+v, want shard 2 on n5", g)
		}
	})
	t.Run("two shards rebuilt on the same member", func(t *testing.T) {
		a := base5(t)
		a.mustOK(CmdChunkPut, ChunkPut{UID: 1, Chunk: ecChunk(11, 1, "abcdef", "n1", "n2", "n3"), Time: t0})
		a.mustOK(CmdNodeRemove, NodeRemove{ID: "n1", Time: t0 + 1000})
		a.mustOK(CmdNodeRemove, NodeRemove{ID: "n2", Time: t0 + 1000})
		tasks := lease(a)
		for _, tk := range tasks {
			a.mustOK(CmdChunkMoved, ChunkMoved{TaskID: tk.ID, Node: "n3", File: 1, Blob: 11, Num: 1, Shard: payload(tk).Shard,
				Remove: payload(tk).Lost, Add: "n4", Now: t0 + 3000})
		}
		ch, _ := a.f.ChunkRecord(1, 0, 11)
		if got := []osprey.NodeID{ch.EC.Shards[0].Owner, ch.EC.Shards[1].Owner, ch.EC.Shards[2].Owner}; !reflect.DeepEqual(got, []osprey.NodeID{"n4", "", "n3"}) {
			t.Fatalf("shard owners %v, want [n4  n3]", got)
		}
		again := leaseAt(a, t0+3000)
		if len(again) != 1 || payload(again[0]).Shard != 2 {
			t.Fatalf("repairs after two shards went to n4: %+v, want one for shard 2", again)
		}
		if g := lastGC(t, a).Chunks[0]; g.EC == nil || g.EC.Shards[0].Index != 1 || g.EC.Shards[0].Owner != "n4" {
			t.Fatalf("gc of %+v, want shard 2 on n4", g)
		}
		if msg := checkInvariants(dumpState(a.f)); msg != "" {
			t.Fatal(msg)
		}
	})
	t.Run("converted twice", func(t *testing.T) {
		a, tasks := coded(t)
		before := a.gcBlobs()
		a.mustOK(CmdChunkConverted, ChunkConverted{TaskID: tasks[1].ID, Node: "n3", File: 1, Blob: 11,
			Owners: []osprey.NodeID{"n3", "n4"}, Now: t0 + 4000})
		ch, _ := a.f.ChunkRecord(1, 0, 11)
		if ch.EC != nil || !reflect.DeepEqual(ch.Owners, []osprey.NodeID{"n3", "n4"}) {
			t.Fatalf("chunk %+v", ch)
		}
		// The second conversion wrote the same replica keys: nothing of
		// it may be collected.
		if got := a.gcBlobs(); !reflect.DeepEqual(got, before) {
			t.Fatalf("gc %v, want %v", got, before)
		}
		if msg := checkInvariants(dumpState(a.f)); msg != "" {
			t.Fatal(msg)
		}
	})
}

// TestUnverifiedMergeIsNoDedupTarget: a merge declares an md5 nothing has
// checked; until tiering verifies the bytes, neither /resume nor a later
// upload with that md5 may resolve to it (a false md5 must never hand
// someone else's bytes out, nor swallow an upload). Verified, it is one.
func TestUnverifiedMergeIsNoDedupTarget(t *testing.T) {
	a := base(t)
	claimed := md5hex("the real bytes")
	a.put(1, 11, 1, "fake")
	wantErr(t, a.merge(1, 1, 4, claimed), nil, "")
	resume := func(uid osprey.UID) osprey.UID {
		return a.mustOK(CmdResume, Resume{Time: t0 + 400, Items: []ResumeItem{{UID: uid, Name: "x.jpg", MD5: claimed}}}).(ResumeResult).UIDs[0]
	}
	if got := resume(50); got != 0 {
		t.Fatalf("resume resolved to an unverified merge: %d", got)
	}
	// An honest upload of the claimed bytes gets its own content.
	a.put(2, 21, 1, "the real bytes")
	if r := a.complete(2, claimed, chunk(21, 1, "the real bytes", "n1", "n2")); r.Err != nil || a.file(2).Content != 2 {
		t.Fatalf("upload: %v, content %d (want its own, 2)", r.Err, a.file(2).Content)
	}
	if got := resume(51); got != 51 || a.file(51).Content != 2 {
		t.Fatalf("resume after the honest upload: %d", got)
	}
	// A content verified by tiering becomes a target once nobody else holds
	// its md5.
	a.put(3, 31, 1, "three")
	wantErr(t, a.merge(3, 1, 5, md5hex("three")), nil, "")
	if got := a.mustOK(CmdResume, Resume{Time: t0, Items: []ResumeItem{{UID: 60, Name: "y.jpg", MD5: md5hex("three")}}}).(ResumeResult).UIDs[0]; got != 0 {
		t.Fatalf("resume onto unverified merge 3: %d", got)
	}
	var tier Task
	for _, tk := range a.f.Tasks("") {
		if tk.Type == TaskTier && tk.Target == "3" {
			tier = tk
		}
	}
	a.mustOK(CmdTaskLease, TaskLease{Node: "n1", IDs: []uint64{tier.ID}, Now: t0 + 1000, LeaseMillis: 60_000})
	a.mustOK(CmdTierDone, TierDone{TaskID: tier.ID, Node: "n1", Content: 3, Location: Location{Bucket: "image", Key: "3.jpg"}, Now: t0 + 1100})
	if got := a.mustOK(CmdResume, Resume{Time: t0, Items: []ResumeItem{{UID: 61, Name: "y.jpg", MD5: md5hex("three")}}}).(ResumeResult).UIDs[0]; got != 61 || a.file(61).Content != 3 {
		t.Fatalf("resume onto verified content 3: %d", got)
	}
	mustConsistent(t, a.f)
}

// A tiered content keeps its chunks' sizes and sums when the TierDone
// asks (TierDone.KeepSums): a parallel download verifies each chunk with
// them after the staged chunks are gone.
func TestTierDoneKeepsChunkSums(t *testing.T) {
	for _, keep := range []bool{false, true} {
		a := base(t)
		a.put(2, 21, 1, "aaa")
		a.put(2, 22, 2, "bb")
		a.merge(2, 2, 5, md5hex("aaabb"))
		staged := a.content(2).ChunkSums()
		want := []ChunkSum{{Size: 3, Sum: chunk(21, 1, "aaa").Sum}, {Size: 2, Sum: chunk(22, 2, "bb").Sum}}
		if !reflect.DeepEqual(staged, want) {
			t.Fatalf("staged sums %+v, want %+v", staged, want)
		}
		tier := a.leaseTier("n3", t0+500)
		a.mustOK(CmdTierDone, TierDone{TaskID: tier.ID, Node: "n3", Content: 2, Now: t0 + 600, KeepSums: keep,
			Location: Location{Bucket: "image", Key: "2.jpg"}})
		ct := a.content(2)
		if len(ct.Chunks) != 0 || ct.Location == nil {
			t.Fatalf("not tiered: %+v", ct)
		}
		switch got := ct.ChunkSums(); {
		case keep && !reflect.DeepEqual(got, want):
			t.Fatalf("tiered sums %+v, want %+v", got, want)
		case !keep && got != nil:
			t.Fatalf("sums kept without KeepSums: %+v", got)
		}
		mustConsistent(t, a.f)
	}
	// One chunk: kept only when asked (KeepOneSum, level 4).
	if got := keptSums([]Chunk{chunk(1, 1, "x")}, false); got != nil {
		t.Fatalf("one chunk kept %+v", got)
	}
	if got := keptSums([]Chunk{chunk(1, 1, "x")}, true); len(got) != 1 || got[0].Sum != chunk(1, 1, "x").Sum {
		t.Fatalf("one chunk with KeepOneSum kept %+v", got)
	}
	if got := keptSums([]Chunk{chunk(1, 1, "x"), {Num: 2, Size: 1}}, true); got != nil {
		t.Fatalf("a chunk without a sum kept %+v", got)
	}
	// A whole TierDone of a one-chunk content, with and without it.
	for _, one := range []bool{false, true} {
		a := base(t)
		a.put(3, 31, 1, "abc")
		a.merge(3, 1, 3, md5hex("abc"))
		tier := a.leaseTier("n3", t0+500)
		a.mustOK(CmdTierDone, TierDone{TaskID: tier.ID, Node: "n3", Content: 3, Now: t0 + 600, KeepSums: true, KeepOneSum: one,
			Location: Location{Bucket: "image", Key: "3.jpg"}})
		got := a.content(3).ChunkSums()
		if want := []ChunkSum{{Size: 3, Sum: chunk(31, 1, "abc").Sum}}; one && !reflect.DeepEqual(got, want) || !one && got != nil {
			t.Fatalf("KeepOneSum %v: tiered sums %+v", one, got)
		}
		mustConsistent(t, a.f)
	}
}
