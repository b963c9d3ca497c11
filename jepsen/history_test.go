package jepsen

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newTestRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed)) }

func TestRecorderRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.jsonl")
	rec, err := NewRecorder(path)
	if err != nil {
		t.Fatal(err)
	}
	op := rec.Invoke(Op{Process: "c0", Type: OpLink, Value: OpValue{Name: "a.jpg"}})
	op.Key, op.Outcome = "17", OK
	rec.Complete(op)
	rec.Event(Op{Process: "nemesis", Type: OpNemesis, Value: OpValue{Fault: "kill(n1)", Phase: "start"}})
	pending := rec.Invoke(Op{Process: "c1", Type: OpStat, Key: "17"})
	_ = pending // never completes: the file still shows the invoke
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n != 4 {
		t.Fatalf("%d lines, want 4 (invoke, ok, nemesis, invoke):\n%s", n, b)
	}
	h, err := ReadHistory(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 || h[0].Key != "17" || h[0].Outcome != OK || h[1].Type != OpNemesis {
		t.Fatalf("ReadHistory = %+v", h)
	}
	if got := rec.Ops(); len(got) != 2 {
		t.Fatalf("Ops = %d", len(got))
	}
}

func TestReport(t *testing.T) {
	h := linked("1").
		add("c0", OpUpload, "1", OK, 0, 20, 30, OpValue{MD5: md5A, Size: 5}).
		add("c1", OpStat, "1", Fail, 503, 40, 50, OpValue{}).
		add("c1", OpDownload, "1", OK, 0, 60, 70, OpValue{Bad: "byte 0 differs"}).ops
	rep := &Report{Seed: 5, Nodes: 3, Duration: time.Minute, Backend: "local",
		Faults: []FaultRecord{{Fault: "kill(n2)", Kind: FaultKill, Targets: []string{"n2"}, Start: 10 * time.Millisecond, End: 45 * time.Millisecond, LeaderLost: true}}}
	rep.CountOps(h)
	rep.Check = Check(CheckInput{History: h})
	rep.Failover = Failover(h, rep.Faults, 3)
	var txt, page bytes.Buffer
	rep.WriteText(&txt)
	for _, want := range []string{"FAIL", "seed 5", "kill(n2)", "downloads-correct", "BROKEN", "stat fail 503"} {
		if !strings.Contains(txt.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, txt.String())
		}
	}
	if err := rep.WriteHTML(&page, h); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", `class="ok"`, `class="fail"`, `class="ok bad"`, `class="kill"`, ">n2<", ">c1<"} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("html report lacks %q", want)
		}
	}
	if err := rep.WriteJSON(&bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
}
