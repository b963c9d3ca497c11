package fsm

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/osprey-storage/osprey"
)

// tasksOf lists the queued tasks of type typ as "type:target".
func (a *applier) tasksOf(typ string) []string {
	var out []string
	for _, tk := range a.f.Tasks("") {
		if tk.Type == typ {
			out = append(out, tk.Type+":"+tk.Target)
		}
	}
	return out
}

func TestInlineContents(t *testing.T) {
	a := base(t)
	// Off (the zero setting): a small verified upload is tiered.
	a.complete(1, md5hex("aa"), chunk(11, 1, "aa", "n1", "n2"))
	if ct := a.content(1); ct.Inline {
		t.Fatalf("inline with InlineMax 0: %+v", ct)
	}
	if got := a.tasksOf(TaskTier); !reflect.DeepEqual(got, []string{"tier:1"}) {
		t.Fatalf("tier tasks %v", got)
	}

	a.mustOK(CmdSetSettings, SetSettings{Settings: Settings{WebhookEnabled: true, InlineMax: 4}})
	// At most InlineMax bytes, md5 checked as they arrived: kept inline,
	// no tier task, and both webhook events at once.
	a.complete(2, md5hex("aabb"), chunk(21, 1, "aabb", "n1", "n2"))
	ct := a.content(2)
	if !ct.Inline || ct.State != ContentStaged || ct.Location != nil || !ct.Verified ||
		!reflect.DeepEqual(blobs(ct.Chunks), []uint64{21}) {
		t.Fatalf("inline content %+v", ct)
	}
	if got := a.tasksOf(TaskTier); !reflect.DeepEqual(got, []string{"tier:1"}) {
		t.Fatalf("tier tasks %v", got)
	}
	var events []string
	for _, tk := range a.f.Tasks("") {
		if tk.Type == TaskWebhook && tk.Target == "2" {
			var p WebhookPayload
			if err := json.Unmarshal(tk.Payload, &p); err != nil {
				t.Fatal(err)
			}
			events = append(events, p.Event)
		}
	}
	if !reflect.DeepEqual(events, []string{"complete", "tiered"}) {
		t.Fatalf("webhook events %v", events)
	}
	// Larger than InlineMax: tiered.
	a.complete(3, md5hex("aabbc"), chunk(31, 1, "aabbc", "n1", "n2"))
	// A merge only declares its md5 (checked by the tiering pass): tiered
	// however small.
	a.put(4, 41, 1, "ab")
	wantErr(t, a.merge(4, 1, 2, md5hex("ab")), nil, "")
	if got := a.tasksOf(TaskTier); !reflect.DeepEqual(got, []string{"tier:1", "tier:3", "tier:4"}) {
		t.Fatalf("tier tasks %v", got)
	}
	if a.content(3).Inline || a.content(4).Inline {
		t.Fatal("a large or merged content kept inline")
	}

	// A dedup alias shares the inline content; the last reference going
	// deletes its chunks (the delete task carries them; no backend copy).
	a.complete(5, md5hex("aabb"), chunk(51, 1, "aabb", "n3", "n1"))
	if f := a.file(5); f.Content != 2 {
		t.Fatalf("alias content %s", f.Content)
	}
	before := len(a.tasksOf(TaskDelete))
	a.mustOK(CmdFileDelete, FileDelete{UID: 2, Time: t0 + 400})
	if n := len(a.tasksOf(TaskDelete)); n != before {
		t.Fatalf("delete task while an alias remains")
	}
	a.mustOK(CmdFileDelete, FileDelete{UID: 5, Time: t0 + 500})
	var gone *Content
	for _, tk := range a.f.Tasks("") {
		if tk.Type == TaskDelete && tk.Target == "2" {
			var p DeletePayload
			if err := json.Unmarshal(tk.Payload, &p); err != nil {
				t.Fatal(err)
			}
			gone = &p.Content
		}
	}
	if gone == nil || gone.Location != nil || !reflect.DeepEqual(blobs(gone.Chunks), []uint64{21}) {
		t.Fatalf("delete payload %+v", gone)
	}
}

func TestClusterLevel(t *testing.T) {
	a := base(t) // n1..n3 at level 0
	level := func() uint32 { return ClusterLevel(a.f.Nodes()) }
	if l := level(); l != 0 {
		t.Fatalf("level %d", l)
	}
	for _, id := range []osprey.NodeID{"n1", "n2"} {
		a.mustOK(CmdNodeUpsert, NodeUpsert{ID: id, RaftAddr: string(id) + ":7000", Time: t0, Level: FeatureLevel})
	}
	if l := level(); l != 0 {
		t.Fatalf("level %d with n3 at 0", l)
	}
	// The member on an old build leaves: the rest decide.
	a.mustOK(CmdNodeRemove, NodeRemove{ID: "n3", Time: t0})
	if l := level(); l != FeatureLevel {
		t.Fatalf("level %d after n3 left", l)
	}
	// A member restarted on an older build announces level 0 again.
	a.mustOK(CmdNodeUpsert, NodeUpsert{ID: "n2", RaftAddr: "n2:7000", Time: t0})
	if l := level(); l != 0 {
		t.Fatalf("level %d after n2 went back", l)
	}
	if l := ClusterLevel(nil); l != 0 {
		t.Fatalf("no members: level %d", l)
	}
}
