package fsm

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/osprey-storage/osprey"
)

// TestMovedToAGoneIncarnation: a repaired copy recorded for a member that
// was removed and joined again since the copy was written (its worker id
// changed) is not counted as held: the repair is queued again. With the
// member's current worker id it is recorded.
func TestMovedToAGoneIncarnation(t *testing.T) {
	a := restoredState(t) // content 3: local object on n3 only
	a.mustOK(CmdNodeRemove, NodeRemove{ID: "n3", Time: t0 + 5})
	repair := func() Task {
		for _, tk := range a.f.Tasks(TaskPending) {
			var p RepairPayload
			if tk.Type == TaskRepair && json.Unmarshal(tk.Payload, &p) == nil && p.Kind == RepairObject && p.Content == 3 {
				return tk
			}
		}
		t.Fatal("no object repair queued")
		return Task{}
	}
	tk := repair()
	a.mustOK(CmdTaskLease, TaskLease{Node: "n1", IDs: []uint64{tk.ID}, Now: t0 + 6, LeaseMillis: 1000})
	n2, _ := a.f.Node("n2")
	stale := n2.WorkerID + 7
	a.mustOK(CmdObjectMoved, ObjectMoved{TaskID: tk.ID, Node: "n1", Content: 3, Remove: "n3", Add: "n2", AddWorker: &stale, Now: t0 + 7})
	if ct, _ := a.f.Content(3); len(ct.Location.Nodes) != 0 {
		t.Fatalf("stale copy recorded: %+v", ct.Location)
	}
	again := repair()
	if again.ID == tk.ID {
		t.Fatal("the repair was not queued again")
	}
	a.mustOK(CmdTaskLease, TaskLease{Node: "n1", IDs: []uint64{again.ID}, Now: t0 + 8, LeaseMillis: 1000})
	w := n2.WorkerID
	a.mustOK(CmdObjectMoved, ObjectMoved{TaskID: again.ID, Node: "n1", Content: 3, Remove: "n3", Add: "n2", AddWorker: &w, Now: t0 + 9})
	if ct, _ := a.f.Content(3); !reflect.DeepEqual(ct.Location.Nodes, []osprey.NodeID{"n2"}) {
		t.Fatalf("copy on n2 not recorded: %+v", ct.Location)
	}
	if msg := checkIndexes(a.f); msg != "" {
		t.Fatal(msg)
	}
}

// TestMovedToARemovedMember: a repaired copy recorded for a member that is
// no longer one (removed while the repair ran; the repairing node, which
// already saw it removed, had no worker id to give) is not counted as
// held, for objects and chunks alike: the repair is queued again.
func TestMovedToARemovedMember(t *testing.T) {
	a := restoredState(t) // content 3: local object on n3 only
	a.mustOK(CmdNodeRemove, NodeRemove{ID: "n3", Time: t0 + 5})
	a.mustOK(CmdNodeRemove, NodeRemove{ID: "n2", Time: t0 + 5})
	var tk Task
	for _, c := range a.f.Tasks(TaskPending) {
		var p RepairPayload
		if c.Type == TaskRepair && json.Unmarshal(c.Payload, &p) == nil && p.Kind == RepairObject && p.Content == 3 {
			tk = c
		}
	}
	if tk.ID == 0 {
		t.Fatal("no object repair queued")
	}
	a.mustOK(CmdTaskLease, TaskLease{Node: "n1", IDs: []uint64{tk.ID}, Now: t0 + 6, LeaseMillis: 1000})
	a.mustOK(CmdObjectMoved, ObjectMoved{TaskID: tk.ID, Node: "n1", Content: 3, Remove: "n3", Add: "n2", Now: t0 + 7})
	if ct, _ := a.f.Content(3); len(ct.Location.Nodes) != 0 {
		t.Fatalf("copy on a removed member recorded: %+v", ct.Location)
	}
	requeued := false
	for _, c := range a.f.Tasks(TaskPending) {
		var p RepairPayload
		if c.Type == TaskRepair && c.ID != tk.ID && json.Unmarshal(c.Payload, &p) == nil && p.Kind == RepairObject && p.Content == 3 {
			requeued = true
		}
	}
	if !requeued {
		t.Fatal("the repair was not queued again")
	}
	if msg := checkIndexes(a.f); msg != "" {
		t.Fatal(msg)
	}
}
