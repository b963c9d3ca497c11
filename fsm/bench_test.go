package fsm

import (
	"fmt"
	"testing"

	"github.com/osprey-storage/osprey"
)

// benchFSM opens an on-disk store with a cluster of the given members.
func benchFSM(b *testing.B, members ...osprey.NodeID) (*FSM, *applier) {
	f, err := Open(DefaultConfig(b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = f.Close() })
	a := &applier{t: b, f: f}
	a.mustOK(CmdInitCluster, InitCluster{ClusterID: "c", Secret: exampleSecret(), Time: t0})
	for _, m := range members {
		a.mustOK(CmdNodeUpsert, NodeUpsert{ID: m, RaftAddr: string(m) + ":7000", Time: t0})
	}
	return f, a
}

// completeFile applies file uid's create and its single upload's
// complete, data in one chunk on owners.
func completeFile(a *applier, uid osprey.UID, data string, owners ...osprey.NodeID) {
	a.mustOK(CmdFilesCreate, FilesCreate{Time: t0, Files: []NewFile{{UID: uid, Name: "x.bin"}}})
	a.mustOK(CmdFileComplete, FileComplete{UID: uid, Size: int64(len(data)), MD5: md5hex(data), Time: t0,
		Chunks: []Chunk{chunk(uint64(uid), 1, data, owners...)}})
}

// storeAndTier applies small file i's create, complete (one chunk on
// owners), the tier runner's lookup and lease, and its tier done, and
// returns its uid.
func storeAndTier(b *testing.B, f *FSM, a *applier, i int, sharedGC bool, owners ...osprey.NodeID) osprey.UID {
	uid := osprey.UID(1000 + i)
	completeFile(a, uid, fmt.Sprintf("payload-%d", i), owners...)
	ts := f.RunnableTasks(t0, map[string]bool{TaskTier: true}, 1)
	if len(ts) != 1 {
		b.Fatalf("%d runnable", len(ts))
	}
	a.mustOK(CmdTaskLease, TaskLease{Node: "n1", IDs: []uint64{ts[0].ID}, Now: t0, LeaseMillis: 1000})
	a.mustOK(CmdTierDone, TierDone{TaskID: ts[0].ID, Node: "n1", Content: uid, Now: t0,
		Location: Location{Bucket: "b", Key: "k"}, SharedGC: sharedGC})
	return uid
}

// BenchmarkSmallFileLifecycle applies the entries one stored small file
// costs (create, complete, tier lease, tier done, gc lease, gc done, with
// the runnable-task lookups a worker makes) and reads it back the way a
// download does, on the on-disk store. Six entries per op.
func BenchmarkSmallFileLifecycle(b *testing.B) {
	f, a := benchFSM(b, "n1")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		uid := storeAndTier(b, f, a, i, false, "n1")
		// The gc of the staged chunk, as the node does it.
		gc := f.RunnableTasks(t0, map[string]bool{TaskGC: true}, 1)
		if len(gc) != 1 {
			b.Fatalf("%d runnable gc tasks", len(gc))
		}
		a.mustOK(CmdTaskLease, TaskLease{Node: "n1", IDs: []uint64{gc[0].ID}, Now: t0, LeaseMillis: 1000})
		a.mustOK(CmdTaskDone, TaskDone{ID: gc[0].ID, Node: "n1", Now: t0})
		if _, ok := f.File(uid); !ok {
			b.Fatal("file missing")
		}
		if _, ok := f.Content(uid); !ok {
			b.Fatal("content missing")
		}
	}
}

// BenchmarkTierDoneJoinsOpenGC applies a small file's create, complete,
// tier lease and tier done while its staged chunk joins the open gc task
// (which fills to gcJoinChunks and is replaced, as under a steady load):
// the path whose cost used to grow with the open task's size.
func BenchmarkTierDoneJoinsOpenGC(b *testing.B) {
	f, a := benchFSM(b, "n1", "n2")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		storeAndTier(b, f, a, i, true, "n1", "n2")
	}
}

// BenchmarkRunnableTasksOtherType is the repair batcher's poll while the
// runnable index holds a backlog of 5,000 tier tasks and no repair task.
func BenchmarkRunnableTasksOtherType(b *testing.B) {
	f, a := benchFSM(b, "n1")
	for i := 0; i < 5000; i++ {
		completeFile(a, osprey.UID(1000+i), fmt.Sprintf("payload-%d", i), "n1")
	}
	types := map[string]bool{TaskRepair: true}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if ts := f.RunnableTasks(t0+1, types, 1008); len(ts) != 0 {
			b.Fatalf("%d repair tasks", len(ts))
		}
	}
}
