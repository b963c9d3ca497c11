package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/osprey-storage/osprey"
)

// goldenBatch is the golden example of CmdBatch: two file creations around
// a command that fails (an unknown uid), which must not undo them.
func goldenBatch() Batch {
	enc := func(typ CommandType, p any) []byte {
		b, err := Encode(typ, p)
		if err != nil {
			panic(err)
		}
		return b
	}
	return Batch{Cmds: [][]byte{
		enc(CmdFilesCreate, FilesCreate{Files: []NewFile{{UID: 601, Name: "a.txt", Bucket: "docs"}}, Time: goldenNow}),
		enc(CmdFileComplete, FileComplete{UID: 999_999, Size: 1, MD5: md5hex("x"), Time: goldenNow,
			Chunks: []Chunk{chunk(6001, 1, "x", "n1")}}),
		enc(CmdFilesCreate, FilesCreate{Files: []NewFile{{UID: 602, Name: "b.txt", Bucket: "docs"}}, Time: goldenNow}),
	}}
}

// TestBatchMatchesSingleEntries: a random history applied with its
// commands grouped into CmdBatch entries of random sizes gives every
// command the result it gets as an entry of its own, and the same state.
// Failed commands inside a batch (the generator makes many) are rolled
// back alone.
func TestBatchMatchesSingleEntries(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			log := genLog(t, seed, scaled(1200))
			single := newApplier(t)
			want := single.applyLog(log)
			r := rand.New(rand.NewPCG(seed, 7))
			batched := newApplier(t)
			failedInBatch := 0
			for i := 0; i < len(log); {
				n := min(len(log)-i, 1+r.IntN(12))
				var b Batch
				for _, e := range log[i : i+n] {
					b.Cmds = append(b.Cmds, mustEncode(t, e.Type, e.Payload))
				}
				res := batched.apply(CmdBatch, b)
				if res.Err != nil {
					t.Fatalf("batch at %d: %v", i, res.Err)
				}
				got := res.Data.(*BatchResult).Results
				if len(got) != n {
					t.Fatalf("batch at %d: %d results, want %d", i, len(got), n)
				}
				for j, g := range got {
					if a, w := resultString(g), resultString(want[i+j]); a != w {
						t.Fatalf("entry %d (%s) in a batch: result %s, want %s", i+j, log[i+j].Type, a, w)
					}
					if g.Err != nil && n > 1 {
						failedInBatch++
					}
				}
				i += n
			}
			if failedInBatch == 0 {
				t.Fatal("no command failed inside a batch: the rollback is untested")
			}
			mustSameView(t, single.f, batched.f)
			// A replica restoring the batched state from a snapshot agrees.
			mustSameView(t, single.f, mustRestore(t, mustSnapshot(t, batched.f)))
		})
	}
}

// TestBatchFailedCommandKeepsOthers: a failing command between two good
// ones leaves them applied, and leaves nothing of its own.
func TestBatchFailedCommandKeepsOthers(t *testing.T) {
	a := mustExample(t)
	before, _ := a.f.Hash()
	// The same batch with only the failing command gives the state before.
	only := Batch{Cmds: goldenBatch().Cmds[1:2]}
	r := a.apply(CmdBatch, only)
	if r.Err != nil || !errors.Is(r.Data.(*BatchResult).Results[0].Err, ErrNotFound) {
		t.Fatalf("result %+v", r)
	}
	if after, _ := a.f.Hash(); after != before {
		t.Fatal("a failed command in a batch changed the state")
	}
	r = a.apply(CmdBatch, goldenBatch())
	res := r.Data.(*BatchResult).Results
	wantErr(t, res[0], nil, "")
	wantErr(t, res[1], ErrNotFound, "")
	wantErr(t, res[2], nil, "")
	for _, uid := range []osprey.UID{601, 602} {
		if _, ok := a.f.File(uid); !ok {
			t.Fatalf("file %d missing", uid)
		}
	}
}

// TestBatchRollbackOfWrites: a command that fails after another command
// of the batch wrote the same records sees those writes, and its own
// failure keeps them (a failure is rolled back to the batch's state
// before it, not to the entry's start).
func TestBatchRollbackOfWrites(t *testing.T) {
	a := mustExample(t)
	create := mustEncode(t, CmdFilesCreate, FilesCreate{Files: []NewFile{{UID: 701, Name: "x", Bucket: "b"}}, Time: goldenNow})
	put := mustEncode(t, CmdChunkPut, ChunkPut{UID: 701, Chunk: chunk(7001, 1, "x", "n1"), Time: goldenNow})
	// A second create of the same uid conflicts.
	r := a.apply(CmdBatch, Batch{Cmds: [][]byte{create, put, create, put}})
	res := r.Data.(*BatchResult).Results
	wantErr(t, res[0], nil, "")
	wantErr(t, res[1], nil, "")
	if res[2].Err == nil {
		t.Fatal("second create of uid 701 succeeded")
	}
	wantErr(t, res[3], nil, "")
	f, ok := a.f.File(701)
	if !ok || f.State != StateUploading || len(f.Chunks) != 1 {
		t.Fatalf("file %+v %v", f, ok)
	}
}

// TestCheckBatch: the leader refuses a batch it cannot apply everywhere.
func TestCheckBatch(t *testing.T) {
	good := mustEncode(t, CmdNoop, nil)
	nested := mustEncode(t, CmdBatch, Batch{Cmds: [][]byte{good}})
	if err := Check(nested); err != nil {
		t.Fatalf("valid batch: %v", err)
	}
	bad := append(mustEncode(t, CmdTaskDone, nil), []byte(`{"id":"x"}`)...)
	for name, c := range map[string]Batch{
		"empty":   {},
		"nested":  {Cmds: [][]byte{good, nested}},
		"unknown": {Cmds: [][]byte{good, {CommandVersion, 0xff, 0xff}}},
		"payload": {Cmds: [][]byte{bad}},
		"short":   {Cmds: [][]byte{{1}}},
	} {
		b := mustEncode(t, CmdBatch, c)
		if err := Check(b); !errors.Is(err, ErrDecode) {
			t.Errorf("%s: Check = %v, want ErrDecode", name, err)
		}
	}
	if err := Check(append(mustEncode(t, CmdBatch, nil), []byte(`{"cmds":"no"}`)...)); err == nil ||
		!strings.Contains(err.Error(), "batch") {
		t.Errorf("garbage payload: %v", err)
	}
}

// TestTieredContentsShareGCTask: the staged chunks of contents tiered one
// after the other join one gc task (which starts a grace period after the
// last of them), until it is leased, full or too old; then a new one
// opens.
func TestTieredContentsShareGCTask(t *testing.T) {
	a := base(t)
	a.mustOK(CmdSetSettings, SetSettings{Settings: Settings{GCGraceMillis: 500}})
	tierTask := map[osprey.UID]uint64{}
	for uid := osprey.UID(1); uid <= 5; uid++ {
		data := "file " + uid.String()
		wantErr(t, a.complete(uid, md5hex(data), chunk(uint64(uid)*10, 1, data, "n1", "n2")), nil, "")
	}
	for _, tk := range a.f.Tasks("") {
		if tk.Type == TaskTier {
			tierTask[mustUIDOf(t, tk.Target)] = tk.ID
		}
	}
	tierDone := func(uid osprey.UID, now int64) {
		t.Helper()
		a.mustOK(CmdTaskLease, TaskLease{Node: "n1", IDs: []uint64{tierTask[uid]}, Now: now, LeaseMillis: 60_000})
		a.mustOK(CmdTierDone, TierDone{TaskID: tierTask[uid], Node: "n1", Content: uid,
			Location: Location{Bucket: "image", Key: uid.String()}, Now: now, SharedGC: true})
	}
	gcTasks := func() []Task {
		var out []Task
		for _, tk := range a.f.Tasks("") {
			if tk.Type == TaskGC {
				out = append(out, tk)
			}
		}
		return out
	}
	chunksOf := func(tk Task) int {
		var p GCPayload
		if err := json.Unmarshal(tk.Payload, &p); err != nil {
			t.Fatal(err)
		}
		return len(p.Chunks)
	}
	tierDone(1, t0+1000)
	tierDone(2, t0+1100)
	tierDone(3, t0+1200)
	gc := gcTasks()
	if len(gc) != 1 || chunksOf(gc[0]) != 3 || gc[0].NextAttempt != t0+1700 {
		t.Fatalf("gc tasks %+v: want one of 3 chunks due a grace period after the last", gc)
	}
	// Once leased, the task takes no more chunks.
	a.mustOK(CmdTaskLease, TaskLease{Node: "n2", IDs: []uint64{gc[0].ID}, Now: t0 + 1800, LeaseMillis: 60_000})
	tierDone(4, t0+1900)
	if gc = gcTasks(); len(gc) != 2 || chunksOf(gc[1]) != 1 {
		t.Fatalf("gc tasks %+v: want a new one after the lease", gc)
	}
	// Nor does a task older than the join window.
	tierDone(5, t0+1900+gcJoinMillis)
	if gc = gcTasks(); len(gc) != 3 {
		t.Fatalf("gc tasks %+v: want a new one after the join window", gc)
	}
	mustConsistent(t, a.f)
}

func mustUIDOf(t *testing.T, s string) osprey.UID {
	t.Helper()
	u, err := osprey.ParseUID(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestBatchExpireSeesEarlierCommands: Expire inside a batch finds the
// uploads the batch's earlier commands created, even below the upload-age
// scan hint (as it would after their own entries).
func TestBatchExpireSeesEarlierCommands(t *testing.T) {
	a := base(t)                  // uploads 1..5 touched at t0
	a.f.HasUploadsBefore(1 << 62) // raises the scan hint to t0
	create := mustEncode(t, CmdFilesCreate, FilesCreate{Files: []NewFile{{UID: 9, Name: "old", Bucket: "b"}}, Time: t0 - 500})
	expire := mustEncode(t, CmdExpire, Expire{Before: t0 - 100, Now: t0})
	r := a.apply(CmdBatch, Batch{Cmds: [][]byte{create, expire}})
	res := r.Data.(*BatchResult).Results
	wantErr(t, res[1], nil, "")
	if uids := res[1].Data.(ExpireResult).UIDs; len(uids) != 1 || uids[0] != 9 {
		t.Fatalf("expired %v, want [9]", uids)
	}
}

// TestGCJoinSplicesLikeMarshal: the open gc task's payload grown by
// splicing (gcJoin, without decoding it) is byte for byte what encoding the
// longer chunk list gives, from a memo or from a payload it did not
// produce, and the task stops taking chunks at gcJoinChunks.
func TestGCJoinSplicesLikeMarshal(t *testing.T) {
	chunk := func(i int) Chunk {
		rng := rand.New(rand.NewPCG(uint64(i), 2))
		c := Chunk{Blob: rng.Uint64(), Num: uint32(i), Size: rng.Int64N(1 << 30), MD5: fmt.Sprintf("%032x", i),
			Sum: rng.Uint64(), Owners: []osprey.NodeID{"n1", "n<2>&"}}
		switch i % 3 {
		case 1:
			c.Owners = []osprey.NodeID{}
		case 2:
			c.EC = &ECLayout{K: 2, M: 1, Shards: []ECShard{{Index: 0, Owner: "n1", Size: 5, Sum: 7, StripeSums: []uint64{1, 2}}, {Index: 1, Owner: "n2"}}}
		}
		return c
	}
	for _, memo := range []*gcJoin{nil, {}} {
		all := []Chunk{chunk(0)}
		payload, err := json.Marshal(GCPayload{Chunks: all})
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; ; i++ {
			more := []Chunk{chunk(i)}
			if i%4 == 0 {
				more = append(more, chunk(i+1000))
			}
			got, ok := memo.join(payload, more)
			if len(all)+len(more) > gcJoinChunks {
				if ok {
					t.Fatalf("memo %v: joined %d chunks to %d, limit %d", memo != nil, len(more), len(all), gcJoinChunks)
				}
				break
			}
			if !ok {
				t.Fatalf("memo %v: refused %d chunks at %d", memo != nil, len(more), len(all))
			}
			all = append(all, more...)
			want, _ := json.Marshal(GCPayload{Chunks: all})
			if string(got) != string(want) {
				t.Fatalf("memo %v, %d chunks:\n got %s\nwant %s", memo != nil, len(all), got, want)
			}
			payload = got
			if i%5 == 0 {
				payload = append([]byte(nil), got...) // equal bytes, another slice: still the memo's
			}
		}
	}
	// A payload the memo did not produce is decoded, not trusted.
	m := &gcJoin{}
	first, _ := json.Marshal(GCPayload{Chunks: []Chunk{chunk(1), chunk(2)}})
	if _, ok := m.join(first, []Chunk{chunk(3)}); !ok {
		t.Fatal("refused")
	}
	other, _ := json.Marshal(GCPayload{Chunks: []Chunk{chunk(4)}})
	got, _ := m.join(other, []Chunk{chunk(5)})
	want, _ := json.Marshal(GCPayload{Chunks: []Chunk{chunk(4), chunk(5)}})
	if m.count != 2 || string(got) != string(want) {
		t.Fatalf("after another payload: count %d, %s", m.count, got)
	}
}

// TestPeekTaskType: the type read from an encoded task's prefix is the
// type it decodes to, or the peek declines (never a wrong type).
func TestPeekTaskType(t *testing.T) {
	for _, typ := range []string{TaskTier, TaskGC, TaskWebhook, "", `a"b`, `a\b`, "é<>&", "x\u2028y"} {
		for _, id := range []uint64{0, 7, 1 << 63} {
			b, err := json.Marshal(Task{ID: id, Type: typ, Payload: json.RawMessage(`{"chunks":[{"blob":1}]}`), State: TaskPending})
			if err != nil {
				t.Fatal(err)
			}
			got, ok := peekTaskType(b)
			var tk Task
			if err := json.Unmarshal(b, &tk); err != nil {
				t.Fatal(err)
			}
			if ok && got != tk.Type {
				t.Fatalf("peek %s = %q, decodes to %q", b, got, tk.Type)
			}
			if !ok && !strings.ContainsAny(typ, `"\<>&`+"\u2028") {
				t.Fatalf("peek %s declined a plain type", b)
			}
		}
	}
	for _, b := range []string{"", "{", `{"id":`, `{"id":,"type":"gc"}`, `{"id":1,"type":"gc`, `{"type":"gc","id":1}`, `{"id":1, "type":"gc"}`} {
		if typ, ok := peekTaskType([]byte(b)); ok {
			t.Fatalf("peek %q = %q, want declined", b, typ)
		}
	}
}

// TestLiveTasks: counting a type's pending and leased tasks through the
// runnable index gives what decoding every task gives.
func TestLiveTasks(t *testing.T) {
	f := New()
	defer f.Close()
	a := &applier{t: t, f: f}
	a.mustOK(CmdInitCluster, InitCluster{ClusterID: "c", Secret: exampleSecret(), Time: t0})
	a.mustOK(CmdNodeUpsert, NodeUpsert{ID: "n1", RaftAddr: "n1:7000", Time: t0})
	for i := 0; i < 40; i++ {
		uid := osprey.UID(1000 + i)
		owners := []osprey.NodeID{"n1"}
		if i%3 == 0 {
			owners = append(owners, "gone") // not a member: a repair task
		}
		completeFile(a, uid, fmt.Sprintf("payload-%d", i), owners...)
		if i%2 == 0 {
			continue
		}
		ts := f.RunnableTasks(t0, map[string]bool{TaskTier: true}, 1)
		if len(ts) != 1 {
			t.Fatalf("%d runnable tier tasks", len(ts))
		}
		a.mustOK(CmdTaskLease, TaskLease{Node: "n1", IDs: []uint64{ts[0].ID}, Now: t0, LeaseMillis: 1000})
		if i%4 == 1 {
			a.mustOK(CmdTierDone, TierDone{TaskID: ts[0].ID, Node: "n1", Content: uid, Now: t0,
				Location: Location{Bucket: "b", Key: "k"}, SharedGC: true})
		}
	}
	want := map[string]int{}
	for _, tk := range f.Tasks("") {
		if tk.State != TaskDead {
			want[tk.Type]++
		}
	}
	if want[TaskRepair] == 0 || want[TaskTier] == 0 || want[TaskGC] == 0 {
		t.Fatalf("workload made %v", want)
	}
	for _, typ := range []string{TaskTier, TaskGC, TaskRepair, TaskWebhook, "none"} {
		if got := f.LiveTasks(typ); got != want[typ] {
			t.Errorf("LiveTasks(%s) = %d, want %d", typ, got, want[typ])
		}
	}
}

// TestLiveTasksSurviveReopen: the live counts are kept in memory only and
// counted again from the runnable index when the store opens; a runner
// whose types have no live task gets nothing without a scan, and one whose
// type gains a task sees it at once.
func TestLiveTasksSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	f, err := Open(DefaultConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	a := &applier{t: t, f: f}
	a.mustOK(CmdInitCluster, InitCluster{ClusterID: "c", Secret: exampleSecret(), Time: t0})
	a.mustOK(CmdNodeUpsert, NodeUpsert{ID: "n1", RaftAddr: "n1:7000", Time: t0})
	for i := 0; i < 6; i++ {
		completeFile(a, osprey.UID(1000+i), fmt.Sprintf("payload-%d", i), "n1")
	}
	if got := f.LiveTasks(TaskTier); got != 6 {
		t.Fatalf("LiveTasks(tier) = %d, want 6", got)
	}
	if ts := f.RunnableTasks(t0, map[string]bool{TaskRepair: true}, 10); ts != nil {
		t.Fatalf("runnable repair tasks %v, want none", ts)
	}
	if msg := checkIndexes(f); msg != "" {
		t.Fatal(msg)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	f, err = Open(DefaultConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a.f = f
	if got := f.LiveTasks(TaskTier); got != 6 {
		t.Fatalf("after reopen LiveTasks(tier) = %d, want 6", got)
	}
	if ts := f.RunnableTasks(t0, map[string]bool{TaskTier: true}, 10); len(ts) != 6 {
		t.Fatalf("after reopen %d runnable tier tasks, want 6", len(ts))
	}
	// A file whose chunk is on a member that is not one: a repair task.
	completeFile(a, osprey.UID(2000), "data", "n1", "gone")
	if ts := f.RunnableTasks(t0, map[string]bool{TaskRepair: true}, 10); len(ts) != 1 {
		t.Fatalf("%d runnable repair tasks, want 1", len(ts))
	}
	if msg := checkIndexes(f); msg != "" {
		t.Fatal(msg)
	}
}

// TestEncodeBatchMatchesEncode: EncodeBatch skips Encode's decoding round
// trip, not its bytes: the entries are the same and Check accepts them.
func TestEncodeBatchMatchesEncode(t *testing.T) {
	var cmds [][]byte
	for uid := osprey.UID(1); uid <= 3; uid++ {
		b, err := Encode(CmdFilesCreate, FilesCreate{Files: []NewFile{{UID: uid, Name: "a", Bucket: "b"}}, Time: t0})
		if err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, b)
	}
	want, err := Encode(CmdBatch, Batch{Cmds: cmds})
	if err != nil {
		t.Fatal(err)
	}
	got, err := EncodeBatch(cmds)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("EncodeBatch\n%q\nEncode\n%q", got, want)
	}
	if err := Check(got); err != nil {
		t.Fatal(err)
	}
}
