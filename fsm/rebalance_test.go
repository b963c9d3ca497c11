package fsm

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/osprey-storage/osprey"
)

// rebalanceLog builds a state with every kind of copy a move handles, on
// n1..n3, and a fourth member n4 that joined and holds nothing:
//
//	file 1 uploading, chunk blob 10 on n1,n2
//	file 2 complete (content 2, staged), chunk blob 20 on n1,n2
//	file 3 complete and tiered to the local backend, object on n1,n2
//	file 4 uploading, erasure-coded chunk blob 40, shards on n1,n2,n3
func rebalanceLog() []entry {
	return []entry{
		{CmdInitCluster, InitCluster{ClusterID: "c-rb", Secret: exampleSecret(), JoinTokenHash: sha256hex("t"), Time: t0}},
		{CmdSetSettings, SetSettings{Settings: Settings{MaxAttempts: 3, GCGraceMillis: 30_000}}},
		{CmdNodeUpsert, NodeUpsert{ID: "n1", RaftAddr: "r1", HTTPAddr: "h1", Time: t0}},
		{CmdNodeUpsert, NodeUpsert{ID: "n2", RaftAddr: "r2", HTTPAddr: "h2", Time: t0}},
		{CmdNodeUpsert, NodeUpsert{ID: "n3", RaftAddr: "r3", HTTPAddr: "h3", Time: t0}},
		{CmdFilesCreate, FilesCreate{Time: t0 + 1, Files: []NewFile{
			{UID: 1, Name: "a", Bucket: "b"}, {UID: 2, Name: "b", Bucket: "b"}, {UID: 3, Name: "c.txt", Bucket: "b"},
			{UID: 4, Name: "d", Bucket: "b"}}}},
		{CmdChunkPut, ChunkPut{UID: 1, Chunk: chunk(10, 1, "ten", "n1", "n2"), Time: t0 + 2}},
		{CmdFileComplete, FileComplete{UID: 2, Size: 6, MD5: md5hex("twenty"), Time: t0 + 3,
			Chunks: []Chunk{chunk(20, 1, "twenty", "n1", "n2")}}},
		{CmdFileComplete, FileComplete{UID: 3, Size: 6, MD5: md5hex("thirty"), Time: t0 + 4,
			Chunks: []Chunk{chunk(30, 1, "thirty", "n1", "n2")}}},
		{CmdChunkPut, ChunkPut{UID: 4, Chunk: ecChunk(40, 1, "forty-four", "n1", "n2", "n3"), Time: t0 + 5}},
		{CmdNodeUpsert, NodeUpsert{ID: "n4", RaftAddr: "r4", HTTPAddr: "h4", Time: t0 + 6}},
	}
}

// tierLocal tiers content id to the local backends of nodes.
func tierLocal(t *testing.T, a *applier, id osprey.UID, now int64, nodes ...osprey.NodeID) {
	t.Helper()
	for _, tk := range a.f.Tasks(TaskPending) {
		if tk.Type == TaskTier && tk.Target == id.String() {
			a.mustOK(CmdTaskLease, TaskLease{Node: "n1", IDs: []uint64{tk.ID}, Now: now, LeaseMillis: 1000})
			a.mustOK(CmdTierDone, TierDone{TaskID: tk.ID, Node: "n1", Content: id, Now: now,
				Location: Location{Bucket: "b", Key: id.String() + ".txt", Nodes: nodes}})
			return
		}
	}
	t.Fatalf("no tier task for %s", id)
}

func tasksOf(f *FSM, typ string) []Task {
	var out []Task
	for _, tk := range f.Tasks("") {
		if tk.Type == typ {
			out = append(out, tk)
		}
	}
	return out
}

func heldKeys(f *FSM, node osprey.NodeID) []string {
	var out []string
	var cur []byte
	for {
		page, next := f.HeldBy(node, cur, 2) // small pages: the cursor is exercised
		for _, h := range page {
			switch {
			case h.Object:
				out = append(out, "obj:"+h.Content.String())
			case h.Chunk.EC != nil:
				out = append(out, "ec:"+osprey.UID(h.Chunk.Blob).String())
			default:
				out = append(out, "chunk:"+osprey.UID(h.Chunk.Blob).String())
			}
		}
		if next == nil {
			return out
		}
		cur = next
	}
}

func rebalanceMoves() []Move {
	return []Move{
		{File: 1, Blob: 10, Num: 1, From: "n2", To: "n4", Size: 3},
		{Content: 2, Blob: 20, Num: 1, From: "n1", To: "n4", Size: 6},
		{Content: 3, Object: true, Bucket: "b", Key: "3.txt", From: "n2", To: "n4", Size: 6},
		{File: 4, Blob: 40, Num: 1, Shard: 2, From: "n2", To: "n4", Size: 4},
	}
}

// rebalanceState applies rebalanceLog, tiers content 3 and plans the
// moves in two tasks of two.
func rebalanceState(t *testing.T) *applier {
	a := newApplier(t)
	a.applyLog(rebalanceLog())
	tierLocal(t, a, 3, t0+10, "n1", "n2")
	a.mustOK(CmdRebalancePlan, RebalancePlan{Members: []osprey.NodeID{"n1", "n2", "n3", "n4"}, Moves: rebalanceMoves(),
		PerTask: 2, Now: t0 + 20})
	return a
}

// TestRebalancePlan: a plan queues its moves as tasks of PerTask moves in
// one entry and counts them as pending.
func TestRebalancePlan(t *testing.T) {
	a := rebalanceState(t)
	tks := tasksOf(a.f, TaskRebalance)
	if len(tks) != 2 {
		t.Fatalf("%d rebalance tasks, want 2", len(tks))
	}
	var got []Move
	for _, tk := range tks {
		var p RebalancePayload
		if err := json.Unmarshal(tk.Payload, &p); err != nil || len(p.Moves) != 2 {
			t.Fatalf("task %d payload %s (%v)", tk.ID, tk.Payload, err)
		}
		got = append(got, p.Moves...)
	}
	if !reflect.DeepEqual(got, rebalanceMoves()) {
		t.Fatalf("moves %+v", got)
	}
	p := a.f.Rebalance()
	if p.Pending != 4 || p.Planned != 4 || p.StartedAt != t0+20 || len(p.Members) != 4 {
		t.Fatalf("progress %+v", p)
	}
	// A bad move is refused and changes nothing.
	h, _ := a.f.Hash()
	r := a.apply(CmdRebalancePlan, RebalancePlan{Moves: []Move{{Blob: 10, From: "n1", To: "n1"}}, Now: t0 + 21})
	wantErr(t, r, ErrInvalid, "bad move")
	if h2, _ := a.f.Hash(); h2 != h {
		t.Fatal("a refused plan changed the state")
	}
	if msg := checkIndexes(a.f); msg != "" {
		t.Fatal(msg)
	}
}

// TestRebalanceDone: recording a task's moves swaps the owners (records
// and the owner index), counts the bytes, and queues one release of the
// old copies due after the gc grace period. The same completion again is
// refused and changes nothing (idempotent under retries).
func TestRebalanceDone(t *testing.T) {
	a := rebalanceState(t)
	tks := tasksOf(a.f, TaskRebalance)
	ids := []uint64{tks[0].ID, tks[1].ID}
	a.mustOK(CmdTaskLease, TaskLease{Node: "n3", IDs: ids, Now: t0 + 30, LeaseMillis: 10_000})
	n4, _ := a.f.Node("n4")
	w := n4.WorkerID
	moves := rebalanceMoves()
	for i := range moves {
		moves[i].ToWorker = &w
	}
	done := RebalanceDone{TaskID: ids[0], Node: "n3", Moved: moves[:2], Now: t0 + 40}
	a.mustOK(CmdRebalanceDone, done)
	if ch, _ := a.f.ChunkRecord(1, 0, 10); !reflect.DeepEqual(ch.Owners, []osprey.NodeID{"n1", "n4"}) {
		t.Fatalf("blob 10 owners %v", ch.Owners)
	}
	if ch, _ := a.f.ChunkRecord(0, 2, 20); !reflect.DeepEqual(ch.Owners, []osprey.NodeID{"n2", "n4"}) {
		t.Fatalf("blob 20 owners %v", ch.Owners)
	}
	hash, _ := a.f.Hash()
	if r := a.apply(CmdRebalanceDone, done); r.Err == nil {
		t.Fatal("a second completion of the same task was accepted")
	}
	if h2, _ := a.f.Hash(); h2 != hash {
		t.Fatal("a repeated completion changed the state")
	}
	a.mustOK(CmdRebalanceDone, RebalanceDone{TaskID: ids[1], Node: "n3", Moved: moves[2:], Now: t0 + 50})
	if ct, _ := a.f.Content(3); !reflect.DeepEqual(ct.Location.Nodes, []osprey.NodeID{"n1", "n4"}) {
		t.Fatalf("object holders %v", ct.Location.Nodes)
	}
	ch, _ := a.f.ChunkRecord(4, 0, 40)
	if ch.EC.Shards[1].Owner != "n4" || !reflect.DeepEqual(ch.Owners, []osprey.NodeID{"n1", "n3", "n4"}) {
		t.Fatalf("ec chunk %+v", ch)
	}
	if got, want := heldKeys(a.f, "n4"), []string{"chunk:10", "ec:40", "chunk:20", "obj:3"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("n4 holds %v, want %v", got, want)
	}
	if got, want := heldKeys(a.f, "n2"), []string{"chunk:20"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("n2 holds %v, want %v", got, want)
	}
	p := a.f.Rebalance()
	if p.Pending != 0 || p.Moved != 4 || p.Bytes != 3+6+6+4 {
		t.Fatalf("progress %+v", p)
	}
	rel := tasksOf(a.f, TaskRelease)
	if len(rel) != 2 || rel[0].NextAttempt != t0+40+30_000 || rel[1].NextAttempt != t0+50+30_000 {
		t.Fatalf("release tasks %+v", rel)
	}
	var rp ReleasePayload
	if err := json.Unmarshal(rel[0].Payload, &rp); err != nil || len(rp.Moves) != 2 || rp.Moves[0].From != "n2" || rp.Moves[1].From != "n1" {
		t.Fatalf("release payload %s", rel[0].Payload)
	}
	if len(tasksOf(a.f, TaskRebalance)) != 0 {
		t.Fatal("rebalance tasks left")
	}
	if msg := checkIndexes(a.f); msg != "" {
		t.Fatal(msg)
	}
}

// TestRebalanceVoidMoves: a move the record no longer allows is not
// recorded; a new copy no record names is released, a copy on a gone
// incarnation is left alone.
func TestRebalanceVoidMoves(t *testing.T) {
	a := rebalanceState(t)
	tks := tasksOf(a.f, TaskRebalance)
	a.mustOK(CmdTaskLease, TaskLease{Node: "n3", IDs: []uint64{tks[0].ID, tks[1].ID}, Now: t0 + 30, LeaseMillis: 10_000})
	n4, _ := a.f.Node("n4")
	stale, w := n4.WorkerID+1, n4.WorkerID
	// File 1's chunk was replaced meanwhile: its blob 10 is gone.
	a.mustOK(CmdChunkPut, ChunkPut{UID: 1, Chunk: chunk(11, 1, "TEN", "n1", "n2"), Time: t0 + 31})
	moves := rebalanceMoves()
	moves[0].ToWorker = &w     // blob 10 is gone: the copy on n4 is garbage
	moves[1].ToWorker = &stale // n4's incarnation changed
	a.mustOK(CmdRebalanceDone, RebalanceDone{TaskID: tks[0].ID, Node: "n3", Moved: moves[:2], Now: t0 + 40})
	if ch, _ := a.f.ChunkRecord(0, 2, 20); !reflect.DeepEqual(ch.Owners, []osprey.NodeID{"n1", "n2"}) {
		t.Fatalf("blob 20 owners %v", ch.Owners)
	}
	rel := tasksOf(a.f, TaskRelease)
	var rp ReleasePayload
	if len(rel) != 1 || json.Unmarshal(rel[0].Payload, &rp) != nil || len(rp.Moves) != 1 || rp.Moves[0].Blob != 10 || rp.Moves[0].From != "n4" {
		t.Fatalf("release tasks %+v", rel)
	}
	// The object lost n2 to a removal before the move was recorded: void,
	// n4's copy released. The second task's other move is not reported
	// (it failed): not recorded, no longer pending.
	a.mustOK(CmdNodeRemove, NodeRemove{ID: "n2", Time: t0 + 45})
	moves[2].ToWorker = &w
	a.mustOK(CmdRebalanceDone, RebalanceDone{TaskID: tks[1].ID, Node: "n3", Moved: moves[2:3], Now: t0 + 50})
	if ct, _ := a.f.Content(3); !reflect.DeepEqual(ct.Location.Nodes, []osprey.NodeID{"n1"}) {
		t.Fatalf("object holders %v", ct.Location.Nodes)
	}
	if p := a.f.Rebalance(); p.Pending != 0 || p.Moved != 0 {
		t.Fatalf("progress %+v", p)
	}
	if msg := checkIndexes(a.f); msg != "" {
		t.Fatal(msg)
	}
}

// TestRebalanceDeterministic: replicas applying the same plan and
// completions, or restoring a snapshot taken in between, end in the same
// state.
func TestRebalanceDeterministic(t *testing.T) {
	run := func(snapAt int) *FSM {
		a := rebalanceState(t)
		tks := tasksOf(a.f, TaskRebalance)
		steps := []entry{
			{CmdTaskLease, TaskLease{Node: "n3", IDs: []uint64{tks[0].ID, tks[1].ID}, Now: t0 + 30, LeaseMillis: 10_000}},
			{CmdRebalanceDone, RebalanceDone{TaskID: tks[0].ID, Node: "n3", Moved: rebalanceMoves()[:2], Now: t0 + 40}},
			{CmdRebalanceDone, RebalanceDone{TaskID: tks[1].ID, Node: "n3", Moved: rebalanceMoves()[2:], Now: t0 + 50}},
		}
		for i, e := range steps {
			if i == snapAt {
				a = &applier{t: t, f: mustRestore(t, mustSnapshot(t, a.f)), idx: a.idx}
			}
			a.mustOK(e.Type, e.Payload)
		}
		return a.f
	}
	want := run(-1)
	for _, at := range []int{0, 1, 2} {
		mustSameView(t, want, run(at))
	}
	if want.Rebalance().Moved != 4 {
		t.Fatalf("progress %+v", want.Rebalance())
	}
}

// rebalanceGoldenCommands are the golden examples of the rebalance
// commands, applied to the example state (goldenSetup queues and leases
// the task RebalanceDone completes).
func rebalanceGoldenCommands() []goldenCommand {
	return []goldenCommand{
		{CmdRebalancePlan, RebalancePlan{Members: []osprey.NodeID{"n1", "n2", "n3"}, PerTask: 16, Now: goldenNow,
			Moves: []Move{{Content: 102, Blob: 5, Num: 1, From: "n1", To: "n2", Size: 6}}},
			func(t *testing.T, f *FSM, data any) {
				if p := f.Rebalance(); p.Pending != 1 || p.Planned != 1 {
					t.Fatalf("progress %+v", p)
				}
			}},
		{CmdRebalanceDone, RebalanceDone{TaskID: goldenRebalanceTask, Node: "n3", Now: goldenNow,
			Moved: []Move{{Content: 102, Blob: 5, Num: 1, From: "n1", To: "n2", Size: 6}}},
			func(t *testing.T, f *FSM, data any) {
				if ch, _ := f.ChunkRecord(0, 102, 5); !reflect.DeepEqual(ch.Owners, []osprey.NodeID{"n2", "n3"}) {
					t.Fatalf("owners %v", ch.Owners)
				}
			}},
	}
}

// goldenRebalanceTask is the id the rebalance golden setup's plan gives
// its task: the next after the example log's last.
const goldenRebalanceTask = exTaskRepair102 + 1

// rebalanceGoldenSetup queues and leases the task RebalanceDone's golden
// example completes.
func rebalanceGoldenSetup() []entry {
	return []entry{
		{CmdRebalancePlan, RebalancePlan{Members: []osprey.NodeID{"n1", "n2", "n3"}, Now: goldenNow - 10,
			Moves: []Move{{Content: 102, Blob: 5, Num: 1, From: "n1", To: "n2", Size: 6}}}},
		{CmdTaskLease, TaskLease{Node: "n3", IDs: []uint64{goldenRebalanceTask}, Now: goldenNow - 5, LeaseMillis: 30_000}},
	}
}

// TestTierDoneDropsRemovedHolders: a tier task that copied the object to
// a member removed before its TierDone applied does not record that
// member as a holder; a repair of the copy is queued instead (TierDone
// with DropRemoved, which entries of older builds lack).
func TestTierDoneDropsRemovedHolders(t *testing.T) {
	a := newApplier(t)
	a.applyLog(rebalanceLog())
	a.mustOK(CmdNodeRemove, NodeRemove{ID: "n2", Time: t0 + 9})
	tierDone3(a, []osprey.NodeID{"n2", "n1"}, nil)
	wantN1HolderN2Repaired(t, a, "the dropped copy")
}

// tierDone3 leases content 3's tier task to n1 and applies its TierDone
// (with DropRemoved) naming nodes as holders, with their worker ids as the
// tier pass saw them (nil: a build that sends none). It returns the task.
func tierDone3(a *applier, nodes []osprey.NodeID, workers []uint32) uint64 {
	for _, tk := range a.f.Tasks(TaskPending) {
		if tk.Type == TaskTier && tk.Target == "3" {
			a.mustOK(CmdTaskLease, TaskLease{Node: "n1", IDs: []uint64{tk.ID}, Now: t0 + 10, LeaseMillis: 1000})
			a.mustOK(CmdTierDone, TierDone{TaskID: tk.ID, Node: "n1", Content: 3, Now: t0 + 10, DropRemoved: true,
				Location:      Location{Bucket: "b", Key: "3.txt", Nodes: nodes},
				HolderWorkers: workers})
			return tk.ID
		}
	}
	return 0
}

// wantN1HolderN2Repaired checks that content 3 is held by n1 alone and a
// repair of n2's copy (what) is queued.
func wantN1HolderN2Repaired(t *testing.T, a *applier, what string) {
	t.Helper()
	ct, _ := a.f.Content(3)
	if !reflect.DeepEqual(ct.Location.Nodes, []osprey.NodeID{"n1"}) {
		t.Fatalf("holders %v, want n1 only", ct.Location.Nodes)
	}
	found := false
	for _, tk := range tasksOf(a.f, TaskRepair) {
		var p RepairPayload
		if json.Unmarshal(tk.Payload, &p) == nil && p.Kind == RepairObject && p.Content == 3 && p.Lost == "n2" {
			found = true
		}
	}
	if !found {
		t.Fatal("no repair queued for " + what)
	}
	if msg := checkIndexes(a.f); msg != "" {
		t.Fatal(msg)
	}
}

// TestTierDoneDropsReaddedHolders: a member removed, wiped and re-added
// (a new worker id) while a tier task copied the object to it is no holder
// either: TierDone names the worker id each holder had before the copy,
// and a different one now drops it and queues its repair (the object lost
// in the seed-746034167 chaos run). A matching worker id keeps the holder.
func TestTierDoneDropsReaddedHolders(t *testing.T) {
	a := newApplier(t)
	a.applyLog(rebalanceLog())
	n2, _ := a.f.Node("n2")
	n1, _ := a.f.Node("n1")
	a.mustOK(CmdNodeRemove, NodeRemove{ID: "n2", Time: t0 + 9})
	a.mustOK(CmdNodeUpsert, NodeUpsert{ID: "n2", RaftAddr: "n2:1", HTTPAddr: "n2:2", Time: t0 + 9})
	if again, _ := a.f.Node("n2"); again.Removed || again.WorkerID == n2.WorkerID {
		t.Fatalf("re-added n2: %+v (was worker %d)", again, n2.WorkerID)
	}
	tierDone3(a, []osprey.NodeID{"n2", "n1"}, []uint32{n2.WorkerID, n1.WorkerID})
	wantN1HolderN2Repaired(t, a, "the copy on the re-added member")
}

// TestTierDoneDropsReaddedFirstMember: the first member's worker id is 0,
// which a TierDone of an earlier build means as "not known"; with
// HolderWorkersExact (builds at FeatureLevelWorkers) a 0 is that member's
// id, so the first member re-added while the copy was written is dropped
// and repaired like any other.
func TestTierDoneDropsReaddedFirstMember(t *testing.T) {
	for _, exact := range []bool{false, true} {
		t.Run(fmt.Sprintf("exact=%v", exact), func(t *testing.T) {
			a := newApplier(t)
			a.applyLog(rebalanceLog())
			var first, other Node
			for _, n := range a.f.Nodes() {
				if n.WorkerID == 0 {
					first = n
				} else if other.ID == "" {
					other = n
				}
			}
			if first.ID == "" || other.ID == "" {
				t.Fatalf("members %+v", a.f.Nodes())
			}
			a.mustOK(CmdNodeRemove, NodeRemove{ID: first.ID, Time: t0 + 9})
			a.mustOK(CmdNodeUpsert, NodeUpsert{ID: first.ID, RaftAddr: "x:1", HTTPAddr: "x:2", Time: t0 + 9})
			for _, tk := range a.f.Tasks(TaskPending) {
				if tk.Type == TaskTier && tk.Target == "3" {
					a.mustOK(CmdTaskLease, TaskLease{Node: other.ID, IDs: []uint64{tk.ID}, Now: t0 + 10, LeaseMillis: 1000})
					a.mustOK(CmdTierDone, TierDone{TaskID: tk.ID, Node: other.ID, Content: 3, Now: t0 + 10, DropRemoved: true,
						Location:      Location{Bucket: "b", Key: "3.txt", Nodes: []osprey.NodeID{first.ID, other.ID}},
						HolderWorkers: []uint32{0, other.WorkerID}, HolderWorkersExact: exact})
				}
			}
			ct, _ := a.f.Content(3)
			if ct.Location == nil {
				t.Fatalf("content 3 not tiered: %+v", ct)
			}
			want := []osprey.NodeID{first.ID, other.ID}
			if exact {
				want = []osprey.NodeID{other.ID}
			}
			if !reflect.DeepEqual(ct.Location.Nodes, want) {
				t.Fatalf("holders %v, want %v", ct.Location.Nodes, want)
			}
		})
	}
}

// TestTierDoneAllHoldersGoneTiersAgain: when every member a tier pass
// copied to is gone by its TierDone, nothing is tiered: the content stays
// staged (its staged chunks are kept) and a new tier task is queued.
func TestTierDoneAllHoldersGoneTiersAgain(t *testing.T) {
	a := newApplier(t)
	a.applyLog(rebalanceLog())
	n2, _ := a.f.Node("n2")
	a.mustOK(CmdNodeRemove, NodeRemove{ID: "n2", Time: t0 + 9})
	a.mustOK(CmdNodeUpsert, NodeUpsert{ID: "n2", RaftAddr: "n2:1", HTTPAddr: "n2:2", Time: t0 + 9})
	done := tierDone3(a, []osprey.NodeID{"n2"}, []uint32{n2.WorkerID})
	if done == 0 {
		t.Fatal("no tier task for content 3")
	}
	if ct, _ := a.f.Content(3); ct.State != ContentStaged || len(ct.Chunks) == 0 {
		t.Fatalf("content %+v, want still staged with its chunks", ct)
	}
	again := false
	for _, tk := range tasksOf(a.f, TaskTier) {
		if tk.Target == "3" && tk.ID != done {
			again = true
		}
	}
	if !again {
		t.Fatal("no new tier task queued")
	}
	if msg := checkIndexes(a.f); msg != "" {
		t.Fatal(msg)
	}
}
