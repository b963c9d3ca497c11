package jepsen

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// hb builds hand-written histories. Times are in milliseconds.
type hb struct {
	ops []Op
}

func (b *hb) add(proc string, typ OpType, key string, out Outcome, status int, t0, t1 int, v OpValue) *hb {
	b.ops = append(b.ops, Op{Index: len(b.ops), Process: proc, Type: typ, Key: key, Outcome: out, Status: status,
		T0: time.Duration(t0) * time.Millisecond, T1: time.Duration(t1) * time.Millisecond, Value: v})
	return b
}

func (b *hb) final(typ OpType, key string, out Outcome, status int, t0, t1 int, v OpValue) *hb {
	b.add("final0", typ, key, out, status, t0, t1, v)
	b.ops[len(b.ops)-1].Final = true
	return b
}

const (
	md5A = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	md5B = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func verdict(t *testing.T, res CheckResult, name string) Invariant {
	t.Helper()
	for _, inv := range res.Invariants {
		if inv.Name == name {
			return inv
		}
	}
	t.Fatalf("no invariant %q in %+v", name, res)
	return Invariant{}
}

func linked(uid string) *hb {
	return (&hb{}).add("c0", OpLink, uid, OK, 0, 0, 10, OpValue{Name: "a.jpg"})
}

func TestLinearizable(t *testing.T) {
	complete := OpValue{State: "complete", MD5: md5A, Size: 5}
	upload := OpValue{MD5: md5A, Size: 5}
	tests := []struct {
		name string
		h    *hb
		pool map[string]bool
		want Verdict
	}{
		{"upload then stat sees it", linked("1").
			add("c0", OpUpload, "1", OK, 0, 20, 30, upload).
			add("c1", OpStat, "1", OK, 0, 40, 50, complete), nil, Held},
		{"stale stat after acknowledged upload", linked("1").
			add("c0", OpUpload, "1", OK, 0, 20, 30, upload).
			add("c1", OpStat, "1", OK, 0, 40, 50, OpValue{State: "uploading"}), nil, Broken},
		{"concurrent stat may miss the upload", linked("1").
			add("c0", OpUpload, "1", OK, 0, 20, 60, upload).
			add("c1", OpStat, "1", OK, 0, 30, 40, OpValue{State: "uploading"}), nil, Held},
		{"stat may not go back in time", linked("1").
			add("c0", OpUpload, "1", OK, 0, 20, 60, upload).
			add("c1", OpStat, "1", OK, 0, 30, 40, complete).
			add("c2", OpStat, "1", OK, 0, 45, 50, OpValue{State: "uploading"}), nil, Broken},
		{"unknown upload may or may not apply", linked("1").
			add("c0", OpUpload, "1", Info, 504, 20, 30, upload).
			add("c1", OpStat, "1", OK, 0, 40, 50, OpValue{State: "uploading"}).
			add("c1", OpStat, "1", OK, 0, 60, 70, complete), nil, Held},
		{"503 upload took effect", linked("1").
			add("c0", OpUpload, "1", Fail, 503, 20, 30, upload).
			final(OpStat, "1", OK, 0, 40, 50, complete), nil, Broken},
		{"wrong md5 in stat", linked("1").
			add("c0", OpUpload, "1", OK, 0, 20, 30, upload).
			add("c1", OpStat, "1", OK, 0, 40, 50, OpValue{State: "tiered", MD5: md5B, Size: 5}), nil, Broken},
		{"download after delete", linked("1").
			add("c0", OpUpload, "1", OK, 0, 20, 30, upload).
			add("c0", OpDelete, "1", OK, 0, 40, 50, OpValue{}).
			add("c1", OpDownload, "1", OK, 0, 60, 70, OpValue{}), nil, Broken},
		{"download 409 after upload acknowledged", linked("1").
			add("c0", OpUpload, "1", OK, 0, 20, 30, upload).
			add("c1", OpDownload, "1", Fail, 409, 31, 40, OpValue{}), nil, Broken},
		{"chunks, checkpoint, merge", linked("1").
			add("c0", OpChunk, "1", OK, 0, 20, 30, OpValue{Chunk: 1}).
			add("c0", OpChunk, "1", OK, 0, 31, 40, OpValue{Chunk: 2}).
			add("c1", OpCheckpoint, "1", OK, 0, 41, 45, OpValue{Chunks: []int{1, 2}}).
			add("c0", OpMerge, "1", OK, 0, 50, 60, OpValue{Num: 2, MD5: md5A, Size: 5}).
			add("c1", OpStat, "1", OK, 0, 61, 65, complete), nil, Held},
		{"checkpoint loses an acknowledged chunk", linked("1").
			add("c0", OpChunk, "1", OK, 0, 20, 30, OpValue{Chunk: 1}).
			add("c0", OpChunk, "1", OK, 0, 31, 40, OpValue{Chunk: 2}).
			add("c1", OpCheckpoint, "1", OK, 0, 41, 45, OpValue{Chunks: []int{1}}), nil, Broken},
		{"merge refused although every chunk was acknowledged", linked("1").
			add("c0", OpChunk, "1", OK, 0, 20, 30, OpValue{Chunk: 1}).
			add("c0", OpMerge, "1", Fail, 409, 31, 40, OpValue{Num: 1, MD5: md5A, Size: 5}), nil, Broken},
		{"early merge refused, later merge ok", linked("1").
			add("c0", OpChunk, "1", OK, 0, 20, 30, OpValue{Chunk: 1}).
			add("c0", OpMerge, "1", Fail, 409, 31, 40, OpValue{Num: 2, MD5: md5A, Size: 5}).
			add("c0", OpChunk, "1", Info, 0, 41, 50, OpValue{Chunk: 2}).
			add("c0", OpMerge, "1", OK, 0, 51, 60, OpValue{Num: 2, MD5: md5A, Size: 5}), nil, Held},
		{"merge ok without the chunks", linked("1").
			add("c0", OpChunk, "1", OK, 0, 20, 30, OpValue{Chunk: 1}).
			add("c0", OpMerge, "1", OK, 0, 31, 40, OpValue{Num: 2, MD5: md5A, Size: 5}), nil, Broken},
		{"dedup finds acknowledged content", linked("1").
			add("c0", OpUpload, "1", OK, 0, 20, 30, upload).
			add("c1", OpResume, "2", OK, 0, 40, 50, OpValue{MD5: md5A, Size: 5, UID: "2"}).
			add("c1", OpStat, "2", OK, 0, 51, 55, complete), map[string]bool{md5A: true}, Held},
		{"dedup misses acknowledged content", linked("1").
			add("c0", OpUpload, "1", OK, 0, 20, 30, upload).
			add("c1", OpResume, "", OK, 0, 40, 50, OpValue{MD5: md5A, Size: 5}), map[string]bool{md5A: true}, Broken},
		{"dedup invents content", (&hb{}).
			add("c1", OpResume, "2", OK, 0, 40, 50, OpValue{MD5: md5A, Size: 5, UID: "2"}), map[string]bool{md5A: true}, Broken},
		{"dedup after the last reference was deleted", linked("1").
			add("c0", OpUpload, "1", OK, 0, 20, 30, upload).
			add("c0", OpDelete, "1", OK, 0, 31, 35, OpValue{}).
			add("c1", OpResume, "2", OK, 0, 40, 50, OpValue{MD5: md5A, Size: 5, UID: "2"}), map[string]bool{md5A: true}, Broken},
		{"dedup may miss merged content (md5 verified later)", linked("1").
			add("c0", OpChunk, "1", OK, 0, 20, 30, OpValue{Chunk: 1}).
			add("c0", OpMerge, "1", OK, 0, 31, 40, OpValue{Num: 1, MD5: md5A, Size: 5}).
			add("c1", OpResume, "", OK, 0, 41, 50, OpValue{MD5: md5A, Size: 5}), map[string]bool{md5A: true}, Held},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Check(CheckInput{History: tt.h.ops, Pool: tt.pool, LinTimeout: 10 * time.Second})
			inv := verdict(t, res, "linearizable")
			if inv.Verdict != tt.want {
				t.Fatalf("linearizable = %s (%s %v), want %s", inv.Verdict, inv.Detail, inv.Examples, tt.want)
			}
			if tt.want == Broken && res.OK {
				t.Fatal("CheckResult.OK with a broken invariant")
			}
		})
	}
}

func TestDurableAndReads(t *testing.T) {
	upload := OpValue{MD5: md5A, Size: 5}
	tests := []struct {
		name      string
		h         *hb
		durable   Verdict
		downloads Verdict
	}{
		{"acknowledged and downloaded", linked("1").
			add("c0", OpUpload, "1", OK, 0, 20, 30, upload).
			final(OpDownload, "1", OK, 0, 40, 50, OpValue{}), Held, Held},
		{"acknowledged, never downloadable", linked("1").
			add("c0", OpUpload, "1", OK, 0, 20, 30, upload).
			final(OpDownload, "1", Fail, 404, 40, 50, OpValue{}), Broken, Held},
		{"acknowledged merge, corrupt bytes", linked("1").
			add("c0", OpMerge, "1", OK, 0, 20, 30, OpValue{Num: 1, MD5: md5A, Size: 5}).
			final(OpDownload, "1", OK, 0, 40, 50, OpValue{Bad: "byte 3 differs"}), Broken, Broken},
		{"deleted files are exempt", linked("1").
			add("c0", OpUpload, "1", OK, 0, 20, 30, upload).
			add("c0", OpDelete, "1", Info, 0, 31, 40, OpValue{}), Held, Held},
		{"unknown upload need not survive", linked("1").
			add("c0", OpUpload, "1", Info, 0, 20, 30, upload).
			final(OpDownload, "1", Fail, 409, 40, 50, OpValue{}), Held, Held},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Check(CheckInput{History: tt.h.ops})
			if got := verdict(t, res, "acknowledged-writes-durable"); got.Verdict != tt.durable {
				t.Errorf("durable = %s (%s %v), want %s", got.Verdict, got.Detail, got.Examples, tt.durable)
			}
			if got := verdict(t, res, "downloads-correct"); got.Verdict != tt.downloads {
				t.Errorf("downloads = %s, want %s", got.Verdict, tt.downloads)
			}
		})
	}
}

func TestOtherInvariants(t *testing.T) {
	dup := linked("7").add("c1", OpLink, "7", OK, 0, 5, 15, OpValue{Name: "b.jpg"})
	if v := verdict(t, Check(CheckInput{History: dup.ops}), "unique-uids"); v.Verdict != Broken {
		t.Errorf("duplicate uid: %s", v.Verdict)
	}
	failedLink := (&hb{}).add("c0", OpLink, "", Fail, 503, 0, 10, OpValue{Name: "jepsen/c0-1-0.jpg"})
	in := CheckInput{History: failedLink.ops, Objects: []ObjectName{{UID: "9", Name: "jepsen/c0-1-0.jpg"}}}
	if v := verdict(t, Check(in), "503-not-applied"); v.Verdict != Broken {
		t.Errorf("503 link applied: %s", v.Verdict)
	}
	in.Objects = []ObjectName{{UID: "9", Name: "other.jpg"}}
	if v := verdict(t, Check(in), "503-not-applied"); v.Verdict != Held {
		t.Errorf("503 link not applied: %s", v.Verdict)
	}
	in.ObjectsErr = "GET /objects answered 404"
	if v := verdict(t, Check(in), "503-not-applied"); v.Verdict != Skipped {
		t.Errorf("no listing: %s", v.Verdict)
	}
	hashes := []NodeHash{{"n1", 10, "x"}, {"n2", 10, "y"}}
	if v := verdict(t, Check(CheckInput{Hashes: hashes}), "fsm-converged"); v.Verdict != Broken {
		t.Errorf("diverged hashes: %s", v.Verdict)
	}
	hashes[1].Hash = "x"
	if v := verdict(t, Check(CheckInput{Hashes: hashes}), "fsm-converged"); v.Verdict != Held {
		t.Errorf("converged hashes: %s", v.Verdict)
	}
	if v := verdict(t, Check(CheckInput{TaskProblems: []string{"task 1 stuck"}}), "tasks-not-stuck"); v.Verdict != Broken {
		t.Errorf("stuck task: %s", v.Verdict)
	}
	failed := linked("1").add("c1", OpStat, "1", OK, 0, 20, 30, OpValue{State: "failed", MD5: md5A})
	if v := verdict(t, Check(CheckInput{History: failed.ops}), "no-failed-objects"); v.Verdict != Broken {
		t.Errorf("failed object: %s", v.Verdict)
	}
	if v := verdict(t, Check(CheckInput{ClusterProblems: []string{"n2 never ready"}}), "cluster-recovered"); v.Verdict != Broken {
		t.Errorf("cluster problems: %s", v.Verdict)
	}
}

func TestFailover(t *testing.T) {
	h := linked("1").
		add("c0", OpUpload, "1", OK, 0, 1000, 1500, OpValue{}).  // before the fault
		add("c1", OpStat, "1", OK, 0, 2100, 2200, OpValue{}).    // a read does not count
		add("c0", OpLink, "2", OK, 0, 2500, 3000, OpValue{}).    // first write after the fault
		add("c0", OpLink, "3", OK, 0, 9000, 9500, OpValue{}).ops // after the second fault
	faults := []FaultRecord{
		{Start: 2 * time.Second, LeaderLost: true},
		{Start: 5 * time.Second, LeaderLost: false},
		{Start: 8 * time.Second, LeaderLost: true},
		{Start: 20 * time.Second, LeaderLost: true},
	}
	d := Failover(h, faults, 0)
	if d.Count != 2 || d.Unrecovered != 1 || d.Min != time.Second || d.Max != 1500*time.Millisecond {
		t.Fatalf("Failover = %+v", d)
	}
	if !strings.Contains(d.String(), "median=") {
		t.Fatalf("String = %q", d.String())
	}
}

// TestCheckRebalanceReads: a probe read of an acknowledged file refused
// while copies moved breaks the invariant; reads of files written later,
// deleted, or cut off by a timeout do not.
func TestCheckRebalanceReads(t *testing.T) {
	h := []Op{
		{Index: 1, Process: "c0", Type: OpUpload, Key: "1", Outcome: OK, T0: 1, T1: 2},
		{Index: 2, Process: "c0", Type: OpUpload, Key: "2", Outcome: OK, T0: 1, T1: 2},
		{Index: 3, Process: "c1", Type: OpDelete, Key: "2", Outcome: Info, T0: 3, T1: 4},
		{Index: 4, Process: "probe1", Type: OpDownload, Key: "1", Outcome: OK, T0: 5, T1: 6},
		{Index: 5, Process: "probe1", Type: OpDownload, Key: "2", Outcome: Fail, Status: 404, T0: 7, T1: 8},
		{Index: 6, Process: "probe1", Type: OpDownload, Key: "1", Outcome: Info, Error: "timeout", T0: 9, T1: 10},
		{Index: 7, Process: "c0", Type: OpDownload, Key: "1", Outcome: Fail, Status: 404, T0: 9, T1: 10},
	}
	if inv := checkRebalanceReads(h, nil); inv.Verdict != Held {
		t.Fatalf("%+v", inv)
	}
	h = append(h, Op{Index: 8, Process: "probe1", Type: OpDownload, Key: "1", Outcome: Fail, Status: 404, T0: 11, T1: 12})
	if inv := checkRebalanceReads(h, nil); inv.Verdict != Broken || len(inv.Examples) != 1 {
		t.Fatalf("%+v", inv)
	}
	if inv := checkRebalanceReads(h[:3], nil); inv.Verdict != Skipped {
		t.Fatalf("%+v", inv)
	}
}

// TestCheckRebalanceReadsEveryHolderDown: a read refused because every
// holder it names was killed or paused by another fault during the read
// (a double fault with two replicas) is counted apart; one naming a
// holder that was up, or read outside the fault, still breaks the
// invariant.
func TestCheckRebalanceReadsEveryHolderDown(t *testing.T) {
	const refused = "http 503: unavailable: no readable copy of content 9: n4: unavailable: read copy on n4: Get \"http://10.0.0.5:8080/internal/v1/objects/doc/9.pdf\": dial tcp 10.0.0.5:8080: connect: connection refused"
	faults := []FaultRecord{{Fault: "kill(n4)", Kind: FaultKill, Targets: []string{"n4"}, Start: 10, End: 20},
		{Fault: "member(n1)", Kind: FaultMember, Targets: []string{"n1"}, Start: 5, End: 8}}
	read := func(i int, t0, t1 time.Duration, err string) Op {
		return Op{Index: i, Process: "probe1", Type: OpDownload, Key: "1", Outcome: Fail, Status: 503, Error: err, T0: t0, T1: t1}
	}
	up := Op{Index: 1, Process: "c0", Type: OpUpload, Key: "1", Outcome: OK, T0: 1, T1: 2}
	if inv := checkRebalanceReads([]Op{up, read(2, 12, 13, refused)}, faults); inv.Verdict != Held || !strings.Contains(inv.Detail, "1 found every holder killed, paused or partitioned away") {
		t.Fatalf("holder killed during the read: %+v", inv)
	}
	// A holder cut off from the serving node by a partition.
	cut := []FaultRecord{{Fault: "partition-leader(leader n2)", Kind: FaultPartitionLeader, Targets: []string{"n2"}, Start: 10, End: 20,
		Blocked: [][2]string{{"n1", "n2"}, {"n2", "n3"}}}}
	viaN3 := read(2, 12, 13, "http 503: unavailable: no readable copy of content 9: n2: unavailable: read copy on n2: dial tcp: i/o timeout")
	viaN3.Node = "n4/n3"
	if inv := checkRebalanceReads([]Op{up, viaN3}, cut); inv.Verdict != Held {
		t.Fatalf("holder partitioned from the serving node: %+v", inv)
	}
	viaN4 := viaN3
	viaN4.Node = "n3/n4"
	if inv := checkRebalanceReads([]Op{up, viaN4}, cut); inv.Verdict != Broken {
		t.Fatalf("holder reachable from the serving node: %+v, want broken", inv)
	}
	// A partition that began during the read and was in place when it
	// failed to connect to the holder (seed 224868847: n5 isolated 1 s
	// into a read whose only holder left was n1).
	late := viaN3
	late.T0 = 9
	if inv := checkRebalanceReads([]Op{up, late}, cut); inv.Verdict != Held {
		t.Fatalf("partition in place when the dial to the holder failed: %+v", inv)
	}
	// Two holders, both behind the partition: the second one's network
	// error comes after the first one's whole answer, so the history must
	// keep both (seed 488522862 cut it at 300 bytes and broke on this).
	both := late
	both.Error = opError(errors.New(`http 503: unavailable: no readable copy of content 387413488114339840: ` +
		`n2: unavailable: read copy on n2: Get "http://10.218.13.3:8080/internal/v1/objects/image/387413488114339840.png?off=0&n=1222499": dial tcp 10.218.13.3:8080: i/o timeout` + "\n" +
		`n4: unavailable: read copy on n4: Get "http://10.218.13.5:8080/internal/v1/objects/image/387413488114339840.png?off=0&n=1222499": dial tcp 10.218.13.5:8080: i/o timeout`))
	cutBoth := []FaultRecord{{Fault: "partition-majority[n1,n3 | n2,n4,n5]", Kind: FaultPartitionMajority, Targets: []string{"n1", "n3"}, Start: 10, End: 20,
		Blocked: [][2]string{{"n3", "n2"}, {"n3", "n4"}, {"n3", "n5"}, {"n1", "n2"}, {"n1", "n4"}, {"n1", "n5"}}}}
	if inv := checkRebalanceReads([]Op{up, both}, cutBoth); inv.Verdict != Held {
		t.Fatalf("both holders partitioned from the serving node, long error: %+v", inv)
	}
	for _, tc := range []struct {
		name string
		op   func(Op) Op
	}{
		{"holder answered, not a network error", func(o Op) Op {
			o.Error = "http 503: unavailable: no readable copy of content 9: n2: not found: no such object"
			return o
		}},
		{"partition healed before the read failed", func(o Op) Op { o.T1 = 21; return o }},
		{"partition began after the read failed", func(o Op) Op { o.T0, o.T1 = 7, 9; return o }},
	} {
		if inv := checkRebalanceReads([]Op{up, tc.op(late)}, cut); inv.Verdict != Broken {
			t.Errorf("%s: %+v, want broken", tc.name, inv)
		}
	}
	for _, tc := range []struct {
		name string
		op   Op
	}{
		{"read after the kill healed", read(2, 21, 22, refused)},
		{"another holder named, up", read(2, 12, 13, "http 503: unavailable: no readable copy of content 9: n4: unavailable: refused\nn2: not found: no such object")},
		{"member fault only", read(2, 6, 7, strings.ReplaceAll(refused, "n4", "n1"))},
	} {
		if inv := checkRebalanceReads([]Op{up, tc.op}, faults); inv.Verdict != Broken {
			t.Errorf("%s: %+v, want broken", tc.name, inv)
		}
	}
}
