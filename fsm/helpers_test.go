package fsm

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/osprey-storage/osprey"
)

// t0 is the fixed clock of the example logs (unix ms).
const t0 int64 = 1_700_000_000_000

// entry is one command of a test log before encoding.
type entry struct {
	Type    CommandType
	Payload any
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// chunk builds a chunk record whose md5 is that of data and whose size is
// len(data); the xxhash field only has to be stable.
func chunk(blob uint64, num uint32, data string, owners ...osprey.NodeID) Chunk {
	return Chunk{Blob: blob, Num: num, Size: int64(len(data)), MD5: md5hex(data), Sum: blob * 0x9e3779b97f4a7c15,
		Owners: owners}
}

// ecChunk builds an erasure-coded chunk record: K = len(owners)-1 data
// shards and one parity shard, shard i on owners[i].
func ecChunk(blob uint64, num uint32, data string, owners ...osprey.NodeID) Chunk {
	c := chunk(blob, num, data, owners...)
	k := len(owners) - 1
	c.EC = &ECLayout{K: k, M: 1}
	for i, o := range owners {
		sum := c.Sum + uint64(i)
		c.EC.Shards = append(c.EC.Shards, ECShard{Index: i, Owner: o, Size: (c.Size + int64(k) - 1) / int64(k),
			Sum: sum, StripeSums: []uint64{sum}})
	}
	return c
}

func exampleSecret() []byte {
	b := make([]byte, 32)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

func mustEncode(t testing.TB, typ CommandType, payload any) []byte {
	t.Helper()
	b, err := Encode(typ, payload)
	if err != nil {
		t.Fatalf("encode %s: %v", typ, err)
	}
	return b
}

// applier feeds entries to an FSM with increasing raft indexes.
type applier struct {
	t   testing.TB
	f   *FSM
	idx uint64
}

func newApplier(t testing.TB) *applier { return &applier{t: t, f: New()} }

// apply encodes and applies one command and returns its result.
func (a *applier) apply(typ CommandType, payload any) *Result {
	a.t.Helper()
	return a.applyRaw(mustEncode(a.t, typ, payload))
}

func (a *applier) applyRaw(data []byte) *Result {
	a.t.Helper()
	a.idx++
	r, ok := a.f.Apply(&raft.Log{Index: a.idx, Term: 1, Type: raft.LogCommand, Data: data}).(*Result)
	if !ok {
		a.t.Fatalf("entry %d: Apply did not return *Result", a.idx)
	}
	return r
}

// mustOK applies a command that must succeed and returns its data.
func (a *applier) mustOK(typ CommandType, payload any) any {
	a.t.Helper()
	r := a.apply(typ, payload)
	if r.Err != nil {
		a.t.Fatalf("entry %d (%s): %v", a.idx, typ, r.Err)
	}
	return r.Data
}

// applyLog applies every entry and returns the results.
func (a *applier) applyLog(log []entry) []*Result {
	a.t.Helper()
	out := make([]*Result, len(log))
	for i, e := range log {
		out[i] = a.apply(e.Type, e.Payload)
	}
	return out
}

// Task ids the example log produces, in enqueue order. exampleLog's own
// TaskLease/TierDone/TaskFail entries refer to them, and
// TestExampleLogTasks pins them so a change in numbering is noticed.
const (
	exTaskGCReplaced = 1  // gc of chunk 2's first copy (blob 2), replaced
	exTaskTier101    = 2  // tier content 101 (merge)
	exTaskGCExtra    = 3  // gc of chunk 3 of 101, beyond num
	exTaskHook101    = 4  // webhook "complete" for 101
	exTaskTier102    = 5  // tier content 102 (file complete)
	exTaskHook102    = 6  // webhook "complete" for 102
	exTaskGCDedup    = 7  // gc of 104's piece: deduplicated onto 101
	exTaskHook104    = 8  // webhook "complete" for 104
	exTaskGCTiered   = 9  // gc of 101's staged chunks after tiering (grace)
	exTaskHookTiered = 10 // webhook "tiered" for 101
	exTaskRepair103  = 11 // repair: chunk 1 of uploading 103 lost n2
	exTaskRepairObj  = 12 // repair: local object copy of 101 lost n2
	exTaskRepair102  = 13 // repair: chunk 2 of content 102 lost n2
)

// exampleLog is a fixed, realistic history touching every kind of command
// the cluster proposes, including domain failures (which change nothing).
// It ends with uploads in flight, staged, tiered and deduplicated
// contents, leased, pending and dead tasks, and a member that was removed
// and came back.
func exampleLog() []entry {
	return []entry{
		{CmdNoop, nil},
		{CmdInitCluster, InitCluster{ClusterID: "c-example", Secret: exampleSecret(),
			JoinTokenHash: sha256hex("join-token"), Time: t0}},
		{CmdSetSettings, SetSettings{Settings: Settings{WebhookEnabled: true,
			BackendFingerprint: "local:/var/lib/osprey/objects", MaxAttempts: 3,
			ExpireAfterMillis: 86_400_000, GCGraceMillis: 60_000}}},
		{CmdNodeUpsert, NodeUpsert{ID: "n1", RaftAddr: "10.0.0.1:7000", HTTPAddr: "10.0.0.1:8080", Time: t0}},
		{CmdNodeUpsert, NodeUpsert{ID: "n2", RaftAddr: "10.0.0.2:7000", HTTPAddr: "10.0.0.2:8080", Time: t0 + 10}},
		{CmdNodeUpsert, NodeUpsert{ID: "n3", RaftAddr: "10.0.0.3:7000", HTTPAddr: "10.0.0.3:8080", Time: t0 + 20}},
		// A member updating its http address keeps its worker id.
		{CmdNodeUpsert, NodeUpsert{ID: "n3", RaftAddr: "10.0.0.3:7000", HTTPAddr: "10.0.0.3:8081", Time: t0 + 30}},
		{CmdFilesCreate, FilesCreate{Time: t0 + 1000, Files: []NewFile{
			{UID: 101, Name: "a.jpg", Bucket: "image"},
			{UID: 102, Name: "b.MP4", Bucket: "video"},
			{UID: 103, Name: "c.pdf", Bucket: "doc"},
			{UID: 104, Name: "d.jpg", Bucket: "image"},
			{UID: 105, Name: "e.zip", Bucket: "archive"},
		}}},
		{CmdChunkPut, ChunkPut{UID: 101, Chunk: chunk(1, 1, "a1a1", "n1", "n2"), Time: t0 + 1100}},
		{CmdChunkPut, ChunkPut{UID: 101, Chunk: chunk(2, 2, "bad", "n2", "n3"), Time: t0 + 1200}},
		// The client re-sends chunk 2 with other bytes: the first copy is
		// replaced and collected.
		{CmdChunkPut, ChunkPut{UID: 101, Chunk: chunk(3, 2, "a2a", "n1", "n3"), Time: t0 + 1300}},
		// A chunk beyond the merged count becomes garbage at merge.
		{CmdChunkPut, ChunkPut{UID: 101, Chunk: chunk(4, 3, "extra", "n1", "n2"), Time: t0 + 1400}},
		{CmdMerge, Merge{UID: 101, Num: 2, Size: 7, MD5: md5hex("a1a1a2a"), Time: t0 + 1500}},
		{CmdFileComplete, FileComplete{UID: 102, Size: 8, MD5: md5hex("bbbbbbBB"), Time: t0 + 1600,
			Chunks: []Chunk{chunk(5, 1, "bbbbbb", "n1", "n3"), chunk(6, 2, "BB", "n2", "n3")}}},
		{CmdChunkPut, ChunkPut{UID: 103, Chunk: chunk(7, 1, "c1", "n1", "n2"), Time: t0 + 2000}},
		// Merge with a missing chunk, then with a wrong size: conflicts.
		{CmdMerge, Merge{UID: 103, Num: 2, Size: 4, MD5: md5hex("c1c2"), Time: t0 + 2100}},
		{CmdMerge, Merge{UID: 103, Num: 1, Size: 9, MD5: md5hex("c1"), Time: t0 + 2200}},
		// Resume: the first md5 is known (102's single upload, verified:
		// dedup), the second is not; 101's merge is not a dedup target
		// until tiering verifies its md5.
		{CmdResume, Resume{Time: t0 + 2300, Items: []ResumeItem{
			{UID: 201, Name: "b-copy.mp4", Bucket: "video", MD5: md5hex("bbbbbbBB")},
			{UID: 202, Name: "unknown.jpg", Bucket: "image", MD5: md5hex("never uploaded")},
			{UID: 203, Name: "a-copy.jpg", Bucket: "image", MD5: md5hex("a1a1a2a")},
		}}},
		// A single upload of bytes already stored: deduplicated.
		{CmdFileComplete, FileComplete{UID: 104, Size: 8, MD5: md5hex("bbbbbbBB"), Time: t0 + 2400,
			Chunks: []Chunk{chunk(8, 1, "bbbbbbBB", "n2", "n3")}}},
		{CmdFileDelete, FileDelete{UID: 201, Time: t0 + 2500}},
		{CmdFileDelete, FileDelete{UID: 999, Time: t0 + 2510}}, // not found
		{CmdTaskLease, TaskLease{Node: "n1", IDs: []uint64{exTaskTier101, exTaskHook101, exTaskTier102},
			Now: t0 + 5000, LeaseMillis: 30_000}},
		{CmdTierDone, TierDone{TaskID: exTaskTier101, Node: "n1", Content: 101, Now: t0 + 5500,
			Location: Location{Bucket: "image", Key: "101.jpg", Nodes: []osprey.NodeID{"n1", "n2"}}}},
		{CmdNodeRemove, NodeRemove{ID: "n2", Time: t0 + 6000}},
		// n2 comes back (its data dir may be new): a fresh worker id.
		{CmdNodeUpsert, NodeUpsert{ID: "n2", RaftAddr: "10.0.0.2:7000", HTTPAddr: "10.0.0.2:8080", Time: t0 + 6500}},
		{CmdTaskFail, TaskFail{ID: exTaskHook101, Node: "n1", Error: "webhook: connection refused", Now: t0 + 7000,
			Permanent: true}},
		{CmdTaskLease, TaskLease{Node: "n3", IDs: []uint64{exTaskRepair103, exTaskRepairObj, exTaskRepair102},
			Now: t0 + 7500, LeaseMillis: 30_000}},
		{CmdExpire, Expire{Before: t0, Now: t0 + 8000}}, // nothing that old
		// An erasure-coded chunk (2 data + 1 parity shard) of an upload.
		{CmdFilesCreate, FilesCreate{Time: t0 + 8500, Files: []NewFile{{UID: 106, Name: "f.mkv", Bucket: "video"}}}},
		{CmdChunkPut, ChunkPut{UID: 106, Chunk: ecChunk(9, 1, "erasure-coded", "n1", "n2", "n3"), Time: t0 + 8600}},
		{CmdNoop, nil},
	}
}

// mustExample returns an FSM that applied exampleLog.
func mustExample(t testing.TB) *applier {
	t.Helper()
	a := newApplier(t)
	a.applyLog(exampleLog())
	return a
}

// memSink is an in-memory raft.SnapshotSink.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
	failWrite         error
}

func (s *memSink) Write(p []byte) (int, error) {
	if s.failWrite != nil {
		return 0, s.failWrite
	}
	return s.Buffer.Write(p)
}
func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { s.closed = true; return nil }

var _ raft.SnapshotSink = (*memSink)(nil)

// mustSnapshot runs Snapshot and Persist into memory and returns the bytes.
func mustSnapshot(t testing.TB, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	defer snap.Release()
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatalf("persist: %v", err)
	}
	if !sink.closed || sink.cancelled {
		t.Fatalf("persist: sink closed=%v cancelled=%v, want closed only", sink.closed, sink.cancelled)
	}
	return sink.Bytes()
}

// mustRestore restores b into a fresh FSM.
func mustRestore(t testing.TB, b []byte) *FSM {
	t.Helper()
	f := New()
	if err := f.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
		t.Fatalf("restore: %v", err)
	}
	return f
}

// view is everything the FSM's read accessors expose, for comparing two
// FSMs.
type view struct {
	ClusterID, JoinTokenHash string
	Secret                   []byte
	Nodes                    []Node
	Files                    []File
	Contents                 []Content
	ByMD5                    map[string]osprey.UID
	Tasks                    []Task
	Runnable                 []Task
	Settings                 Settings
	Stats                    map[string]int
	Uploads                  bool
	Chunks                   []Chunk
	// The S3 namespace: buckets, their keys and multipart uploads, and
	// the key of every file.
	Buckets   []Bucket
	Objects   []ObjectList
	Multipart []UploadList
	KeyOf     map[osprey.UID]string
	// Scoped API keys.
	APIKeys []APIKey
}

var allTaskTypes = map[string]bool{TaskTier: true, TaskGC: true, TaskDelete: true, TaskWebhook: true,
	TaskRepair: true}

func viewOf(f *FSM) view {
	v := view{ClusterID: f.ClusterID(), JoinTokenHash: f.JoinTokenHash(), Secret: f.Secret(),
		Nodes: f.Nodes(), Files: f.Files(0, 1<<30), Tasks: f.Tasks(""), Settings: f.Settings(),
		Stats: f.Stats(), ByMD5: map[string]osprey.UID{}}
	v.Runnable = f.RunnableTasks(1<<62, allTaskTypes, 1<<30)
	v.Uploads = f.HasUploadsBefore(1 << 62)
	v.Buckets = f.Buckets()
	v.APIKeys = f.APIKeys()
	for _, b := range v.Buckets {
		l, _ := f.ListObjects(b.Name, "", "", "", 1<<30)
		v.Objects = append(v.Objects, l)
		u, _ := f.MultipartUploads(b.Name, "", "", 0, 1<<30)
		v.Multipart = append(v.Multipart, u)
	}
	v.KeyOf = map[osprey.UID]string{}
	seen := map[osprey.UID]bool{}
	for _, x := range v.Files {
		if b, k, ok := f.ObjectKeyOf(x.UID); ok {
			v.KeyOf[x.UID] = b + "/" + k
		}
		for _, n := range sortedChunkNums(x.Chunks) {
			if ch, ok := f.ChunkRecord(x.UID, 0, x.Chunks[n].Blob); ok {
				v.Chunks = append(v.Chunks, ch)
			}
		}
		if x.Content == 0 || seen[x.Content] {
			continue
		}
		seen[x.Content] = true
		if ct, ok := f.Content(x.Content); ok {
			v.Contents = append(v.Contents, ct)
			if byMD5, ok := f.ContentByMD5(ct.Tenant, ct.MD5); ok {
				v.ByMD5[ct.MD5] = byMD5.ID
			}
		}
	}
	return v
}

// mustSameView fails unless two FSMs expose the same state and hash.
func mustSameView(t testing.TB, want, got *FSM) {
	t.Helper()
	wh, _ := want.Hash()
	gh, _ := got.Hash()
	if wh != gh {
		t.Errorf("hash %s, want %s", gh, wh)
	}
	wv, gv := viewOf(want), viewOf(got)
	if !reflect.DeepEqual(wv, gv) {
		t.Errorf("views differ:\n got %+v\nwant %+v", gv, wv)
	}
}

// wantErr checks a result's error against a domain error kind (nil for
// success) and, when sub is set, that the message mentions it.
func wantErr(t testing.TB, r *Result, kind error, sub string) {
	t.Helper()
	switch {
	case kind == nil && r.Err != nil:
		t.Fatalf("unexpected error %v", r.Err)
	case kind != nil && !errors.Is(r.Err, kind):
		t.Fatalf("error %v, want %v", r.Err, kind)
	case kind != nil:
		var de *Error
		if !errors.As(r.Err, &de) {
			t.Fatalf("error %T is not a *fsm.Error", r.Err)
		}
		if sub != "" && !strings.Contains(r.Err.Error(), sub) {
			t.Fatalf("error %q does not mention %q", r.Err, sub)
		}
	}
}
