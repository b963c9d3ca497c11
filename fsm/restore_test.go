package fsm

import (
	"reflect"
	"testing"

	"github.com/osprey-storage/osprey"
)

// TestRestored: reconciling a restored state with a cluster that kept only
// n1 removes n2 and n3 (queueing repairs as a removal does), marks lost
// the staged content whose every copy was on them and the local object
// only they held, keeps what n1 or a shared backend still holds, drops the
// lost contents from the dedup index, and gives a new member a fresh
// worker id.
func TestRestored(t *testing.T) {
	a := restoredState(t)
	res := a.mustOK(CmdRestored, Restored{Time: t0 + 10, Members: []NodeUpsert{
		{ID: "n1", RaftAddr: "n1:7000", HTTPAddr: "n1:8080"}, {ID: "n9", RaftAddr: "n9:7000", HTTPAddr: "n9:8080"}}}).(RestoredResult)
	if !reflect.DeepEqual(res.Removed, []osprey.NodeID{"n2", "n3"}) || !reflect.DeepEqual(res.Lost, []osprey.UID{1, 3}) {
		t.Fatalf("result %+v", res)
	}
	for uid, want := range map[osprey.UID]ContentState{1: ContentLost, 2: ContentStaged, 3: ContentLost, 4: ContentTiered} {
		if ct, _ := a.f.Content(uid); ct.State != want {
			t.Errorf("content %d: %s, want %s", uid, ct.State, want)
		}
	}
	if _, ok := a.f.ContentByMD5("", md5hex("a1")); ok {
		t.Error("a lost content is still a dedup target")
	}
	if n, _ := a.f.Node("n9"); n.WorkerID != 3 || n.Removed {
		t.Errorf("new member n9 = %+v", n)
	}
	if n, _ := a.f.Node("n2"); !n.Removed {
		t.Errorf("n2 = %+v, want removed", n)
	}
	if msg := checkIndexes(a.f); msg != "" {
		t.Fatal(msg)
	}
	if msg := checkInvariants(dumpState(a.f)); msg != "" {
		t.Fatal(msg)
	}
	// Invalid: no members.
	wantErr(t, a.apply(CmdRestored, Restored{Time: t0}), ErrInvalid, "")

	// Into a new cluster whose only node is also called n1: the old n1's
	// copies are gone with it, so the content staged on n1 and n2 is lost
	// too, and n1 gets a fresh worker id.
	b := restoredState(t)
	res = b.mustOK(CmdRestored, Restored{Time: t0 + 10, NewCluster: true,
		Members: []NodeUpsert{{ID: "n1", RaftAddr: "n1:7000", HTTPAddr: "n1:8080"}}}).(RestoredResult)
	if !reflect.DeepEqual(res.Removed, []osprey.NodeID{"n1", "n2", "n3"}) || !reflect.DeepEqual(res.Lost, []osprey.UID{1, 2, 3}) {
		t.Fatalf("new cluster: result %+v", res)
	}
	if n, _ := b.f.Node("n1"); n.Removed || n.WorkerID != 3 {
		t.Errorf("new cluster: n1 = %+v, want a member with a fresh worker id", n)
	}
	if ct, _ := b.f.Content(4); ct.State != ContentTiered {
		t.Errorf("new cluster: content on the shared backend %s", ct.State)
	}
	if msg := checkIndexes(b.f); msg != "" {
		t.Fatal(msg)
	}
}

// restoredState is the state TestRestored reconciles: n1, n2, n3; content
// 1 staged on n2+n3, 2 staged on n1+n2, 3 tiered to n3's local disk, 4
// tiered to a shared backend.
func restoredState(t *testing.T) *applier {
	a := base(t) // n1, n2, n3; uploading files 1-5
	// 1: staged on n2+n3 only -> lost.
	a.mustOK(CmdFileComplete, FileComplete{UID: 1, Size: 2, MD5: md5hex("a1"), Time: t0, Chunks: []Chunk{chunk(11, 1, "a1", "n2", "n3")}})
	// 2: staged on n1+n2 -> kept.
	a.mustOK(CmdFileComplete, FileComplete{UID: 2, Size: 2, MD5: md5hex("b1"), Time: t0, Chunks: []Chunk{chunk(12, 1, "b1", "n1", "n2")}})
	// 3: tiered to n3's local disk only -> lost; 4: tiered to S3 -> kept.
	for _, uid := range []osprey.UID{3, 4} {
		data := map[osprey.UID]string{3: "c1", 4: "d1"}[uid]
		a.mustOK(CmdFileComplete, FileComplete{UID: uid, Size: 2, MD5: md5hex(data), Time: t0, Chunks: []Chunk{chunk(10+uint64(uid), 1, data, "n1", "n2")}})
	}
	var tierTasks []uint64
	for _, tk := range a.f.Tasks(TaskPending) {
		if tk.Type == TaskTier && (tk.Target == "3" || tk.Target == "4") {
			tierTasks = append(tierTasks, tk.ID)
		}
	}
	a.mustOK(CmdTaskLease, TaskLease{Node: "n1", IDs: tierTasks, Now: t0, LeaseMillis: 1000})
	a.mustOK(CmdTierDone, TierDone{TaskID: tierTasks[0], Node: "n1", Content: 3, Now: t0,
		Location: Location{Bucket: "b", Key: "3", Nodes: []osprey.NodeID{"n3"}}})
	a.mustOK(CmdTierDone, TierDone{TaskID: tierTasks[1], Node: "n1", Content: 4, Now: t0,
		Location: Location{Bucket: "b", Key: "4"}})

	return a
}
