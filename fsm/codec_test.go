package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/osprey-storage/osprey"
)

// -update rewrites the golden files of the current encodings instead of
// comparing against them. Old-version fixtures are never rewritten.
var update = flag.Bool("update", false, "rewrite testdata golden files")

// goldenNow is the clock of the golden commands: after exampleLog.
const goldenNow = t0 + 10_000

// goldenCommand is the one fixed example of a command type whose encoding
// is pinned in testdata/commands/<type>.golden. Each example is meant to be
// applied to the state exampleLog leaves, and succeeds there.
type goldenCommand struct {
	typ     CommandType
	payload any
	check   func(t *testing.T, f *FSM, data any)
}

// newerThanReference reports command types the reference model
// (refmodel_test.go) predates; they have tests of their own.
func newerThanReference(typ CommandType) bool {
	return typ == CmdRestored || typ >= CmdBucketCreate && typ != CmdDedupShare
}

func goldenCommands() []goldenCommand {
	return append([]goldenCommand{
		{CmdNoop, nil, nil},
		{CmdInitCluster, InitCluster{ClusterID: "c-golden", Secret: exampleSecret(),
			JoinTokenHash: sha256hex("golden-token"), Time: goldenNow},
			func(t *testing.T, f *FSM, data any) {
				// Already initialised: the first cluster id stays.
				if got := data.(InitClusterResult).ClusterID; got != "c-example" || f.ClusterID() != "c-example" {
					t.Fatalf("cluster id %q / %q, want c-example", got, f.ClusterID())
				}
			}},
		{CmdNodeUpsert, NodeUpsert{ID: "n4", RaftAddr: "10.0.0.4:7000", HTTPAddr: "10.0.0.4:8080", Time: goldenNow},
			func(t *testing.T, f *FSM, data any) {
				if n := data.(Node); n.WorkerID != 4 {
					t.Fatalf("worker id %d, want 4", n.WorkerID)
				}
			}},
		{CmdNodeRemove, NodeRemove{ID: "n3", Time: goldenNow},
			func(t *testing.T, f *FSM, data any) {
				if n, _ := f.Node("n3"); !n.Removed {
					t.Fatal("n3 not removed")
				}
			}},
		{CmdFilesCreate, FilesCreate{Time: goldenNow, Files: []NewFile{
			{UID: 301, Name: "f.png", Bucket: "image"}, {UID: 302, Name: "g.mov", Bucket: "video"}}},
			func(t *testing.T, f *FSM, data any) {
				if x, ok := f.File(302); !ok || x.State != StateUploading {
					t.Fatalf("file 302 = %+v, %v", x, ok)
				}
			}},
		{CmdChunkPut, ChunkPut{UID: 103, Chunk: chunk(14, 2, "c2", "n1", "n3"), Time: goldenNow},
			func(t *testing.T, f *FSM, data any) {
				if x, _ := f.File(103); len(x.Chunks) != 2 {
					t.Fatalf("file 103 has %d chunks, want 2", len(x.Chunks))
				}
			}},
		{CmdFileComplete, FileComplete{UID: 105, Size: 6, MD5: md5hex("e1e1e2"), Time: goldenNow,
			Chunks: []Chunk{chunk(15, 1, "e1e1", "n1", "n3"), chunk(16, 2, "e2", "n2", "n3")}},
			func(t *testing.T, f *FSM, data any) {
				if x, _ := f.File(105); x.State != StateComplete || x.Content != 105 {
					t.Fatalf("file 105 = %+v", x)
				}
			}},
		{CmdMerge, Merge{UID: 103, Num: 1, Size: 2, MD5: md5hex("c1"), Time: goldenNow},
			func(t *testing.T, f *FSM, data any) {
				if x := data.(CompleteResult).File; x.State != StateComplete {
					t.Fatalf("file 103 = %+v", x)
				}
			}},
		{CmdResume, Resume{Time: goldenNow, Items: []ResumeItem{
			{UID: 303, Name: "b-copy.mp4", Bucket: "video", MD5: md5hex("bbbbbbBB")}}},
			func(t *testing.T, f *FSM, data any) {
				if got := data.(ResumeResult).UIDs; !reflect.DeepEqual(got, []osprey.UID{303}) {
					t.Fatalf("uids %v", got)
				}
			}},
		{CmdDedupShare, DedupShare{UID: 601, Name: "e-copy.jpg", Bucket: "image", Content: 105, MD5: md5hex("e1e1e2"),
			Size: 6, SHA256: sha256hex("e1e1e2"), Time: goldenNow},
			func(t *testing.T, f *FSM, data any) {
				if got := data.(DedupShareResult).UID; got != 601 {
					t.Fatalf("uid %v", got)
				}
				if x, _ := f.File(601); x.State != StateComplete || x.Content != 105 {
					t.Fatalf("file 601 = %+v", x)
				}
			}},
		{CmdFileDelete, FileDelete{UID: 101, Time: goldenNow},
			func(t *testing.T, f *FSM, data any) {
				if data.(DeleteResult).Content == nil {
					t.Fatal("the last reference went but no content was returned")
				}
			}},
		{CmdTaskLease, TaskLease{Node: "n3", IDs: []uint64{exTaskGCReplaced, exTaskGCExtra, exTaskGCDedup},
			Now: goldenNow, LeaseMillis: 30_000},
			func(t *testing.T, f *FSM, data any) {
				if got := len(data.(TaskLeaseResult).Tasks); got != 3 {
					t.Fatalf("leased %d tasks, want 3", got)
				}
			}},
		{CmdTaskFail, TaskFail{ID: exTaskTier102, Node: "n1", Error: "backend: timeout", Now: goldenNow},
			func(t *testing.T, f *FSM, data any) {
				if tk := data.(Task); tk.State != TaskPending || tk.NextAttempt != goldenNow+1000 {
					t.Fatalf("task = %+v", tk)
				}
			}},
		{CmdTaskDone, TaskDone{ID: exTaskTier102, Node: "n1", Now: goldenNow},
			func(t *testing.T, f *FSM, data any) {
				if _, ok := f.Task(exTaskTier102); ok {
					t.Fatal("done task still queued")
				}
			}},
		{CmdTierDone, TierDone{TaskID: exTaskTier102, Node: "n1", Content: 102, Now: goldenNow,
			Location: Location{Bucket: "video", Key: "102.mp4"}},
			func(t *testing.T, f *FSM, data any) {
				if ct, _ := f.Content(102); ct.State != ContentTiered {
					t.Fatalf("content 102 = %+v", ct)
				}
			}},
		{CmdTierFailed, TierFailed{TaskID: exTaskTier102, Node: "n1", Content: 102, Now: goldenNow,
			Reason: "md5 mismatch: backend object has " + md5hex("other")},
			func(t *testing.T, f *FSM, data any) {
				if ct, _ := f.Content(102); ct.State != ContentFailed {
					t.Fatalf("content 102 = %+v", ct)
				}
			}},
		{CmdTaskRetry, TaskRetry{ID: exTaskHook101, Now: goldenNow},
			func(t *testing.T, f *FSM, data any) {
				if tk := data.(Task); tk.State != TaskPending || tk.Attempts != 0 {
					t.Fatalf("task = %+v", tk)
				}
			}},
		{CmdExpire, Expire{Before: t0 + 1500, Now: goldenNow},
			func(t *testing.T, f *FSM, data any) {
				if got := data.(ExpireResult).UIDs; !reflect.DeepEqual(got, []osprey.UID{105}) {
					t.Fatalf("expired %v, want [105]", got)
				}
			}},
		{CmdSetSettings, SetSettings{Settings: Settings{WebhookEnabled: false,
			BackendFingerprint: "s3:https://s3.example.com/osprey", MaxAttempts: 5,
			ExpireAfterMillis: 3_600_000, GCGraceMillis: 1000}},
			func(t *testing.T, f *FSM, data any) {
				if f.Settings().MaxAttempts != 5 {
					t.Fatalf("settings %+v", f.Settings())
				}
			}},
		{CmdChunkMoved, ChunkMoved{TaskID: exTaskRepair103, Node: "n3", File: 103, Blob: 7, Num: 1,
			Remove: "n2", Add: "n3", Now: goldenNow},
			func(t *testing.T, f *FSM, data any) {
				ch, _ := f.ChunkRecord(103, 0, 7)
				if !reflect.DeepEqual(ch.Owners, []osprey.NodeID{"n1", "n3"}) {
					t.Fatalf("owners %v", ch.Owners)
				}
			}},
		{CmdObjectMoved, ObjectMoved{TaskID: exTaskRepairObj, Node: "n3", Content: 101,
			Remove: "n2", Add: "n3", Now: goldenNow},
			func(t *testing.T, f *FSM, data any) {
				ct, _ := f.Content(101)
				if !reflect.DeepEqual(ct.Location.Nodes, []osprey.NodeID{"n1", "n3"}) {
					t.Fatalf("location nodes %v", ct.Location.Nodes)
				}
			}},
		{CmdChunkConverted, ChunkConverted{TaskID: exTaskRepair102, Node: "n3", File: 106, Blob: 9,
			Owners: []osprey.NodeID{"n3", "n1"}, Now: goldenNow},
			func(t *testing.T, f *FSM, data any) {
				ch, _ := f.ChunkRecord(106, 0, 9)
				if ch.EC != nil || !reflect.DeepEqual(ch.Owners, []osprey.NodeID{"n1", "n3"}) {
					t.Fatalf("chunk = %+v", ch)
				}
			}},
		{CmdNodeDown, NodeDown{ID: "n3", Time: goldenNow},
			func(t *testing.T, f *FSM, data any) {
				if n, _ := f.Node("n3"); !n.Down {
					t.Fatalf("n3 not down: %+v", n)
				}
			}},
		{CmdNodeUp, NodeUp{ID: "n3"},
			func(t *testing.T, f *FSM, data any) {
				if n, _ := f.Node("n3"); n.Down {
					t.Fatalf("n3 still down: %+v", n)
				}
			}},
		{CmdRestored, Restored{Members: []NodeUpsert{{ID: "n1", RaftAddr: "10.0.0.1:7000", HTTPAddr: "10.0.0.1:8080"}},
			JoinTokenHash: sha256hex("new-token"), Time: goldenNow},
			func(t *testing.T, f *FSM, data any) {
				if f.JoinTokenHash() != sha256hex("new-token") {
					t.Fatalf("join token hash %s", f.JoinTokenHash())
				}
			}},
	}, append(append(s3GoldenCommands(), keyGoldenCommands()...), rebalanceGoldenCommands()...)...)
}

// keyGoldenCommands are the examples of the scoped API key commands.
func keyGoldenCommands() []goldenCommand {
	return []goldenCommand{
		{CmdKeyCreate, KeyCreate{ID: "k1a2b3c4", Hash: sha256hex("golden secret"), Tenant: "acme", ReadOnly: true,
			Prefixes: []string{"photos/"}, Description: "golden", Time: goldenNow},
			func(t *testing.T, f *FSM, data any) {
				if k, ok := f.APIKey("k1a2b3c4"); !ok || k.Tenant != "acme" || !k.ReadOnly || k.Created != goldenNow {
					t.Fatalf("key %+v %v", k, ok)
				}
			}},
		{CmdKeyRevoke, KeyRevoke{ID: "k1a2b3c4", Time: goldenNow},
			func(t *testing.T, f *FSM, data any) {
				if k, ok := f.APIKey("k1a2b3c4"); !ok || k.Revoked != goldenNow {
					t.Fatalf("key %+v %v", k, ok)
				}
			}},
	}
}

// goldenSetup returns the entries applied (and required to succeed)
// before typ's golden example, for commands that need state the example
// log does not have (S3 buckets, uploads).
func goldenSetup(typ CommandType) []entry {
	bucket := entry{CmdBucketCreate, BucketCreate{Name: "photos", Time: goldenNow - 10}}
	bind := entry{CmdObjectBind, ObjectBind{Bucket: "photos", Key: "2026/cat.jpg", UID: 102, Time: goldenNow - 5,
		Meta: ObjectMeta{ContentType: "image/jpeg", UserMeta: map[string]string{"owner": "ann"}}}}
	mpCreate := entry{CmdMultipartCreate, MultipartCreate{Bucket: "photos", Key: "big/video.mp4", UID: 401,
		Meta: ObjectMeta{ContentType: "video/mp4"}, Time: goldenNow - 5}}
	part := func(blob uint64, num uint32, data string) entry {
		return entry{CmdChunkPut, ChunkPut{UID: 401, Chunk: chunk(blob, num, data, "n1", "n3"), Time: goldenNow - 4}}
	}
	switch typ {
	case CmdDedupShare:
		return []entry{{CmdFileComplete, FileComplete{UID: 105, Size: 6, MD5: md5hex("e1e1e2"), SHA256: sha256hex("e1e1e2"),
			Time: goldenNow - 5, Chunks: []Chunk{chunk(15, 1, "e1e1", "n1", "n3"), chunk(16, 2, "e2", "n2", "n3")}}}}
	case CmdRebalanceDone:
		return rebalanceGoldenSetup()
	case CmdBucketDelete, CmdObjectBind, CmdMultipartCreate:
		return []entry{bucket}
	case CmdObjectPut:
		return []entry{bucket, bind}
	case CmdObjectUnbind:
		return []entry{bucket, bind}
	case CmdMultipartComplete:
		return []entry{bucket, mpCreate, part(4011, 1, "p1"), part(4012, 2, "p2"), part(4013, 3, "p3")}
	case CmdMultipartAbort:
		return []entry{bucket, mpCreate, part(4011, 1, "p1")}
	case CmdKeyRevoke:
		return []entry{{CmdKeyCreate, KeyCreate{ID: "k1a2b3c4", Hash: sha256hex("golden secret"), Time: goldenNow - 10}}}
	}
	return nil
}

// s3GoldenCommands are the examples of the S3 namespace commands.
func s3GoldenCommands() []goldenCommand {
	return []goldenCommand{
		{CmdBucketCreate, BucketCreate{Name: "photos", Time: goldenNow},
			func(t *testing.T, f *FSM, data any) {
				if b, ok := f.Bucket("photos"); !ok || b.Created != goldenNow {
					t.Fatalf("bucket %+v %v", b, ok)
				}
			}},
		{CmdBucketDelete, BucketDelete{Name: "photos"},
			func(t *testing.T, f *FSM, data any) {
				if _, ok := f.Bucket("photos"); ok {
					t.Fatal("bucket still there")
				}
			}},
		{CmdObjectBind, ObjectBind{Bucket: "photos", Key: "2026/cat.jpg", UID: 102, Time: goldenNow,
			Meta: ObjectMeta{ETag: md5hex("e1e1e2"), ContentType: "image/jpeg", CacheControl: "max-age=60",
				UserMeta: map[string]string{"owner": "ann"}}},
			func(t *testing.T, f *FSM, data any) {
				if b, k, ok := f.ObjectKeyOf(102); !ok || b != "photos" || k != "2026/cat.jpg" {
					t.Fatalf("key of 102: %q %q %v", b, k, ok)
				}
			}},
		{CmdObjectUnbind, ObjectUnbind{Bucket: "photos", Key: "2026/cat.jpg", Time: goldenNow},
			func(t *testing.T, f *FSM, data any) {
				if _, ok := f.File(102); ok || data.(UnbindResult).UID != 102 {
					t.Fatalf("unbind: %+v", data)
				}
			}},
		{CmdMultipartCreate, MultipartCreate{Bucket: "photos", Key: "big/video.mp4", UID: 401,
			Meta: ObjectMeta{ContentType: "video/mp4"}, Time: goldenNow},
			func(t *testing.T, f *FSM, data any) {
				if x, ok := f.File(401); !ok || x.State != StateUploading || x.Name != "video.mp4" {
					t.Fatalf("file 401: %+v", x)
				}
			}},
		{CmdMultipartComplete, MultipartComplete{Bucket: "photos", Key: "big/video.mp4", UID: 401, Parts: []uint32{1, 3},
			Size: 4, MD5: md5hex("p1p3"), ETag: md5hex("parts") + "-2", Time: goldenNow},
			func(t *testing.T, f *FSM, data any) {
				res := data.(MultipartCompleteResult)
				if len(res.Garbage) != 1 || res.Garbage[0].Num != 2 {
					t.Fatalf("garbage %+v", res.Garbage)
				}
				if o, ok := f.Object("photos", "big/video.mp4"); !ok || o.UID != 401 || o.Size != 4 {
					t.Fatalf("object %+v", o)
				}
			}},
		{CmdObjectPut, ObjectPut{Bucket: "photos", Key: "2026/cat.jpg", UID: 501, Name: "cat.jpg", FileBucket: "image",
			Chunks: []Chunk{chunk(5011, 1, "new cat", "n1", "n2")}, Size: 7, MD5: md5hex("new cat"),
			Meta: ObjectMeta{ContentType: "image/jpeg"}, Time: goldenNow},
			func(t *testing.T, f *FSM, data any) {
				res := data.(ObjectPutResult)
				if res.Replaced != 102 || res.File.State != StateComplete {
					t.Fatalf("put: %+v", res)
				}
				if o, ok := f.Object("photos", "2026/cat.jpg"); !ok || o.UID != 501 || o.Size != 7 || o.Meta.ETag != md5hex("new cat") {
					t.Fatalf("object %+v", o)
				}
				if _, ok := f.File(102); ok {
					t.Fatal("the replaced file is still there")
				}
				if fl, _ := f.File(501); fl.Name != "cat.jpg" || fl.Bucket != "image" {
					t.Fatalf("file %+v", fl)
				}
			}},
		{CmdBatch, goldenBatch(), func(t *testing.T, f *FSM, data any) {
			res := data.(*BatchResult).Results
			if len(res) != 3 || res[0].Err != nil || res[2].Err != nil || !errors.Is(res[1].Err, ErrNotFound) {
				t.Fatalf("batch results %+v", res)
			}
			if x, ok := f.File(601); !ok || x.State != StateUploading {
				t.Fatalf("file 601 %+v %v", x, ok)
			}
			if x, ok := f.File(602); !ok || x.State != StateUploading {
				t.Fatalf("file 602 %+v %v", x, ok)
			}
		}},
		{CmdMultipartAbort, MultipartAbort{Bucket: "photos", Key: "big/video.mp4", UID: 401, Time: goldenNow},
			func(t *testing.T, f *FSM, data any) {
				if _, ok := f.File(401); ok || len(data.(DeleteResult).Garbage) != 1 {
					t.Fatalf("abort: %+v", data)
				}
			}},
	}
}

func goldenPath(t CommandType) string {
	return filepath.Join("testdata", "commands", t.String()+".golden")
}

// TestGoldenCommands pins the exact log encoding of every command type: a
// change here changes what old nodes read from new leaders and what new
// nodes read from old logs. Regenerate with -update only for a deliberate,
// versioned change.
func TestGoldenCommands(t *testing.T) {
	covered := map[CommandType]bool{}
	for _, g := range goldenCommands() {
		covered[g.typ] = true
		t.Run(g.typ.String(), func(t *testing.T) {
			got := mustEncode(t, g.typ, g.payload)
			path := goldenPath(g.typ)
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./fsm -run TestGoldenCommands -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("encoding changed:\n got %q\nwant %q", got, want)
			}
		})
	}
	for typ := range typeNames {
		if !covered[typ] {
			t.Errorf("command type %s (%d) has no golden example: add one to goldenCommands and run "+
				"go test ./fsm -run TestGoldenCommands -update", typ, uint16(typ))
		}
	}
}

// TestGoldenCommandsApply reads every stored golden (old versions
// included) back through Decode and the payload types and applies it to
// the example state: log entries written by earlier builds stay readable.
func TestGoldenCommandsApply(t *testing.T) {
	examples := map[CommandType]goldenCommand{}
	for _, g := range goldenCommands() {
		examples[g.typ] = g
	}
	files, err := filepath.Glob(filepath.Join("testdata", "commands", "*.golden"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden commands (%v)", err)
	}
	names := map[string]CommandType{}
	for typ, n := range typeNames {
		names[n] = typ
	}
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".golden")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			typ, payload, err := Decode(raw)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if want, ok := names[name]; !ok || typ != want {
				t.Fatalf("file %s holds type %s", name, typ)
			}
			g, ok := examples[typ]
			if !ok {
				t.Fatalf("no example for %s", typ)
			}
			// Strict decoding: a field dropped from a payload struct would
			// silently lose data written by older builds.
			if g.payload != nil {
				v := reflect.New(reflect.TypeOf(g.payload))
				dec := json.NewDecoder(bytes.NewReader(payload))
				dec.DisallowUnknownFields()
				if err := dec.Decode(v.Interface()); err != nil {
					t.Fatalf("payload does not decode into %T: %v", g.payload, err)
				}
			} else if len(payload) != 0 {
				t.Fatalf("payload %q, want none", payload)
			}
			a := mustExample(t)
			for _, e := range goldenSetup(typ) {
				a.mustOK(e.Type, e.Payload)
			}
			r := a.applyRaw(raw)
			if r.Err != nil {
				t.Fatalf("apply: %v", r.Err)
			}
			if g.check != nil {
				g.check(t, a.f, r.Data)
			}
		})
	}
}

// TestExampleLogTasks pins the task ids exampleLog and the golden commands
// refer to.
func TestExampleLogTasks(t *testing.T) {
	a := newApplier(t)
	res := a.applyLog(exampleLog())
	// Only the intended domain failures.
	var failed []string
	for i, r := range res {
		if r.Err != nil {
			failed = append(failed, fmt.Sprintf("%d:%s", i, exampleLog()[i].Type))
		}
	}
	if want := []string{"15:merge", "16:merge", "20:file_delete"}; !reflect.DeepEqual(failed, want) {
		t.Fatalf("failed entries %v, want %v", failed, want)
	}
	want := map[uint64]struct {
		typ   string
		state TaskState
	}{
		exTaskGCReplaced: {TaskGC, TaskPending}, exTaskGCExtra: {TaskGC, TaskPending},
		exTaskHook101: {TaskWebhook, TaskDead}, exTaskTier102: {TaskTier, TaskLeased},
		exTaskHook102: {TaskWebhook, TaskPending}, exTaskGCDedup: {TaskGC, TaskPending},
		exTaskHook104: {TaskWebhook, TaskPending}, exTaskGCTiered: {TaskGC, TaskPending},
		exTaskHookTiered: {TaskWebhook, TaskPending}, exTaskRepair103: {TaskRepair, TaskLeased},
		exTaskRepairObj: {TaskRepair, TaskLeased}, exTaskRepair102: {TaskRepair, TaskLeased},
	}
	tasks := a.f.Tasks("")
	if len(tasks) != len(want) {
		t.Fatalf("%d tasks, want %d", len(tasks), len(want))
	}
	for _, tk := range tasks {
		w, ok := want[tk.ID]
		if !ok || tk.Type != w.typ || tk.State != w.state {
			t.Errorf("task %d is %s/%s, want %+v", tk.ID, tk.Type, tk.State, w)
		}
	}
}

func TestEncodeDecode(t *testing.T) {
	b, err := Encode(CmdFileDelete, FileDelete{UID: 42, Time: 7})
	if err != nil {
		t.Fatal(err)
	}
	if want := "\x01\x00\x0a" + `{"uid":"42","time":7}`; string(b) != want {
		t.Fatalf("encoding %q, want %q", b, want)
	}
	typ, payload, err := Decode(b)
	if err != nil || typ != CmdFileDelete || string(payload) != `{"uid":"42","time":7}` {
		t.Fatalf("decode = %s, %q, %v", typ, payload, err)
	}
	if b, err := Encode(CmdNoop, nil); err != nil || !bytes.Equal(b, []byte{1, 0, 1}) {
		t.Fatalf("noop = %q, %v", b, err)
	}

	if _, err := Encode(CmdUnknown, nil); err == nil {
		t.Fatal("encoding CmdUnknown succeeded")
	}
	if _, err := Encode(CmdNoop, make(chan int)); err == nil {
		t.Fatal("encoding an unencodable payload succeeded")
	}
	// A zero uid encodes as "0", which osprey.UID refuses to decode: such
	// an entry would panic every replica, so Encode refuses it.
	for _, e := range []entry{
		{CmdFilesCreate, FilesCreate{Files: []NewFile{{Name: "c.jpg"}}}},
		{CmdResume, Resume{Items: []ResumeItem{{Name: "c.jpg", MD5: md5hex("x")}}}},
		{CmdFileDelete, &FileDelete{}},
	} {
		if _, err := Encode(e.Type, e.Payload); err == nil {
			t.Errorf("Encode(%s, %+v) succeeded", e.Type, e.Payload)
		}
	}

	for _, tt := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"short", []byte{1, 0}},
		{"version 0", []byte{0, 0, 1}},
		{"version 2", []byte{2, 0, 1}},
		{"type 0", []byte{1, 0, 0}},
		{"unknown type", []byte{1, 0xff, 0xfe}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := Decode(tt.in); !errors.Is(err, ErrDecode) {
				t.Fatalf("Decode(%q) = %v, want ErrDecode", tt.in, err)
			}
		})
	}

	if CmdMerge.String() != "merge" || CommandType(999).String() != "type_999" {
		t.Fatalf("String() = %q, %q", CmdMerge, CommandType(999))
	}
	seen := map[string]bool{}
	for typ, n := range typeNames {
		if typ == CmdUnknown || seen[n] {
			t.Errorf("type %d: bad or duplicate name %q", typ, n)
		}
		seen[n] = true
	}
}

// TestApplyPanics: a committed entry this build cannot understand must stop
// the replica rather than be skipped, which would make it diverge.
func TestApplyPanics(t *testing.T) {
	for _, tt := range []struct {
		name string
		data []byte
	}{
		{"short entry", []byte{1}},
		{"unknown version", []byte{9, 0, byte(CmdNoop)}},
		{"unknown type", []byte{1, 0x7f, 0x00}},
		{"type 0", []byte{1, 0, 0}},
		{"undecodable payload", append([]byte{1, 0, byte(CmdFilesCreate)}, `{"files":`...)},
		{"payload of the wrong shape", append([]byte{1, 0, byte(CmdFilesCreate)}, `{"files":5}`...)},
		{"invalid uid", append([]byte{1, 0, byte(CmdFileDelete)}, `{"uid":"x"}`...)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := mustExample(t)
			before, _ := a.f.Hash()
			func() {
				defer func() {
					if recover() == nil {
						t.Fatal("Apply did not panic")
					}
				}()
				a.applyRaw(tt.data)
			}()
			// The lock was released and nothing changed.
			if after, _ := a.f.Hash(); after != before {
				t.Fatal("state changed by a rejected entry")
			}
		})
	}
}

// TestApplyNonCommand: raft's own entries never reach the state.
func TestApplyNonCommand(t *testing.T) {
	a := mustExample(t)
	before, idx := a.f.Hash()
	for _, typ := range []raft.LogType{raft.LogNoop, raft.LogBarrier, raft.LogConfiguration} {
		if r := a.f.Apply(&raft.Log{Index: 1000, Type: typ, Data: []byte("x")}); r != nil {
			t.Fatalf("%s: Apply = %v, want nil", typ, r)
		}
	}
	if after, aidx := a.f.Hash(); after != before || aidx != idx {
		t.Fatalf("state or index changed: %d -> %d", idx, aidx)
	}
}

// BenchmarkEncode measures proposal encoding: a typical chunk record and a
// single 5 GiB upload cut into 640 pieces.
func BenchmarkEncode(b *testing.B) {
	big := FileComplete{UID: 1, MD5: md5hex("big"), Time: t0}
	for i := 0; i < 640; i++ {
		big.Chunks = append(big.Chunks, chunk(uint64(i+1), uint32(i+1), "piece", "n1", "n2"))
	}
	for _, bb := range []struct {
		name string
		e    entry
	}{
		{"chunk_put", entry{CmdChunkPut, ChunkPut{UID: 1, Chunk: chunk(1, 1, "x", "n1", "n2"), Time: t0}}},
		{"file_complete_640", entry{CmdFileComplete, big}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := Encode(bb.e.Type, bb.e.Payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
