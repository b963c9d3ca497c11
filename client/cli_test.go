package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mustCLI(t *testing.T, f *fakeServer, asJSON bool) (*CLI, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	_, c := f.start(t)
	var out, errOut bytes.Buffer
	return &CLI{Client: c, Stdout: &out, Stderr: &errOut, JSON: asJSON}, &out, &errOut
}

func TestCLIPutGet(t *testing.T) {
	f := newFakeServer(t)
	cli, out, errOut := mustCLI(t, f, false)
	dir := t.TempDir()
	a := mustWriteFile(t, dir, "a.txt", []byte("alpha"))
	b := mustWriteFile(t, dir, "b.bin", mustRandom(t, 3*testChunk))
	missing := filepath.Join(dir, "missing.txt")
	err := cli.Put(ctxT(t), []string{a, missing, b}, PutOptions{ChunkSize: testChunk, StateDir: "-"})
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want the missing file's error", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasSuffix(lines[0], "\t"+a) || !strings.HasSuffix(lines[1], "\t"+b) {
		t.Fatalf("stdout %q", out.String())
	}
	if !strings.Contains(errOut.String(), "missing.txt") {
		t.Errorf("stderr %q", errOut.String())
	}
	uid := strings.Split(lines[0], "\t")[0]

	out.Reset()
	dst := filepath.Join(dir, "copy.txt")
	if err := cli.Get(ctxT(t), uid, dst, GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); string(got) != "alpha" {
		t.Errorf("got %q", got)
	}
	if out.String() != uid+"\t"+dst+"\n" {
		t.Errorf("stdout %q", out.String())
	}
	out.Reset()
	if err := cli.Get(ctxT(t), uid, "-", GetOptions{}); err != nil || out.String() != "alpha" {
		t.Errorf("get -: %q %v", out.String(), err)
	}
}

func TestCLILinkStatRemove(t *testing.T) {
	f := newFakeServer(t)
	cli, out, errOut := mustCLI(t, f, false)
	uid := f.mustPut("photo.jpg", []byte("jpeg"))
	err := cli.Link(ctxT(t), []string{uid, "424242"}, time.Hour)
	if !errors.Is(err, ErrNoLink) {
		t.Errorf("err = %v, want ErrNoLink for the unknown uid", err)
	}
	want := uid + "\t" + cli.Client.Addrs()[0] + APIPrefix + "/download?"
	if !strings.HasPrefix(out.String(), want) || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("stdout %q, want prefix %q", out.String(), want)
	}
	if !strings.Contains(errOut.String(), "424242") {
		t.Errorf("stderr %q", errOut.String())
	}

	out.Reset()
	if err := cli.Stat(ctxT(t), uid); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"photo.jpg", "4 B (4 bytes)", md5hex([]byte("jpeg")), "complete"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("stat output lacks %q:\n%s", s, out.String())
		}
	}

	out.Reset()
	if err := cli.Remove(ctxT(t), []string{uid, uid}); !errors.Is(err, ErrNotFound) {
		t.Errorf("second rm: err = %v, want ErrNotFound", err)
	}
	if out.String() != "deleted\t"+uid+"\n" {
		t.Errorf("stdout %q", out.String())
	}
	if err := cli.Stat(ctxT(t), uid); !errors.Is(err, ErrNotFound) {
		t.Errorf("stat after rm: %v", err)
	}
}

func TestCLIList(t *testing.T) {
	f := newFakeServer(t)
	cli, out, errOut := mustCLI(t, f, false)
	for i := range 5 {
		f.mustPut("f"+string(rune('a'+i))+".txt", []byte{byte(i)})
	}
	if err := cli.List(ctxT(t), "", 2, false); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "\n"); n != 3 { // header + 2
		t.Errorf("one page: %d lines:\n%s", n, out.String())
	}
	if !strings.Contains(errOut.String(), "--cursor") {
		t.Errorf("no cursor hint: %q", errOut.String())
	}
	out.Reset()
	if err := cli.List(ctxT(t), "", 2, true); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "\n"); n != 6 {
		t.Errorf("--all: %d lines:\n%s", n, out.String())
	}

	cli.JSON = true
	out.Reset()
	if err := cli.List(ctxT(t), "", 2, true); err != nil {
		t.Fatal(err)
	}
	var page ObjectPage
	if err := json.Unmarshal(out.Bytes(), &page); err != nil || len(page.Items) != 5 || page.NextCursor != "" {
		t.Errorf("json: %v %+v", err, page)
	}
}

func TestCLIClusterAndTasks(t *testing.T) {
	f := newFakeServer(t)
	cli, out, _ := mustCLI(t, f, false)
	ctx := ctxT(t)
	steps := []struct {
		name string
		run  func() error
		want []string
	}{
		{"status", func() error { return cli.ClusterStatus(ctx) }, []string{"n1 (Leader)", "term:", "42", "abc123", "Voter"}},
		{"nodes", func() error { return cli.ClusterNodes(ctx) }, []string{"REACHABLE", "yes", "0.2ms", "127.0.0.1:2"}},
		{"join", func() error {
			return cli.ClusterJoin(ctx, JoinRequest{ID: "n2", RaftAddr: "127.0.0.1:3", HTTPAddr: "127.0.0.1:4", Token: "tok"})
		}, []string{"joined\tn2"}},
		{"remove", func() error { return cli.ClusterRemove(ctx, "n2") }, []string{"removed\tn2"}},
		{"leader-transfer", func() error { return cli.LeaderTransfer(ctx, "") }, []string{"leader\tn1"}},
		{"tasks", func() error { return cli.Tasks(ctx, "failed") }, []string{"tier", "1001", "failed", "n1 until", "backend: unavailable"}},
		{"retry", func() error { return cli.RetryTask(ctx, "7") }, []string{"retrying\t7"}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			out.Reset()
			if err := s.run(); err != nil {
				t.Fatal(err)
			}
			for _, w := range s.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
	if err := cli.ClusterJoin(ctx, JoinRequest{ID: "n2", RaftAddr: "x", Token: "bad"}); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("bad token: %v", err)
	}

	cli.JSON = true
	out.Reset()
	if err := cli.Tasks(ctx, ""); err != nil {
		t.Fatal(err)
	}
	var tasks []Task
	if err := json.Unmarshal(out.Bytes(), &tasks); err != nil || len(tasks) != 1 || tasks[0].ID != "7" || tasks[0].Attempts != 2 {
		t.Errorf("tasks json: %v %+v", err, tasks)
	}
	out.Reset()
	if err := cli.ClusterStatus(ctx); err != nil {
		t.Fatal(err)
	}
	var st ClusterStatus
	if err := json.Unmarshal(out.Bytes(), &st); err != nil || st.CommitIndex != 42 || st.Members[0].WorkerID != "1" {
		t.Errorf("status json: %v %+v", err, st)
	}
}

func TestRunBenchSmoke(t *testing.T) {
	f := newFakeServer(t)
	srv, _ := f.start(t)
	srv2, _ := f.start(t) // a second "node" sharing the state
	var progress bytes.Buffer
	cfg := DefaultBenchConfig()
	cfg.Addr = srv.URL + "," + srv2.URL
	cfg.APIKey = f.apiKey
	cfg.Dir = t.TempDir()
	cfg.Size = 3<<20 + 5
	cfg.Chunk = 1 << 20
	cfg.SmallN = 20
	cfg.Duration = 300 * time.Millisecond
	cfg.Concurrency = 4
	cfg.Progress = &progress
	cfg.NoDropCaches = true // never flush the shared machine's cache from a unit test
	cfg.Logger = testLogger(t)
	cfg.SettleWait = 300 * time.Millisecond // the fake never tiers
	rep, err := RunBench(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var md bytes.Buffer
	if err := rep.Markdown(&md); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + md.String())
	for _, r := range rep.Results {
		if strings.HasPrefix(r.Note, "failed") {
			t.Errorf("row %q failed: %s", r.Name, r.Note)
		}
	}
	for _, want := range []string{benchDiskWrite, benchDiskRead, benchLoopback, benchFsync4K, benchSmall1, "c=4",
		benchUpload, benchDownload, benchDownloadNow, "still not tiered after", "link/upload calls", "resume calls", "peak RSS " + srv2.URL, "| 11.8 | MiB |"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	if got := f.count("PUT " + APIPrefix + "/upload/multi"); got != 4 {
		t.Errorf("large upload sent %d chunks, want 4", got)
	}
	if ents, _ := os.ReadDir(cfg.Dir); len(ents) != 0 {
		t.Errorf("scratch files left: %v", ents)
	}
	var js bytes.Buffer
	if err := rep.JSON(&js); err != nil || !json.Valid(js.Bytes()) {
		t.Errorf("json: %v", err)
	}
}

// TestRunBenchOnly: Only runs just the named groups ("large" with the disk
// group, whose write makes its source file and whose cold read the parallel
// get is compared with), and an unknown group is refused with
// the accepted names.
func TestRunBenchOnly(t *testing.T) {
	f := newFakeServer(t)
	srv, _ := f.start(t)
	cfg := DefaultBenchConfig()
	cfg.Addr = srv.URL
	cfg.APIKey = f.apiKey
	cfg.Dir = t.TempDir()
	cfg.Size = 1<<20 + 5
	cfg.Chunk = 1 << 20
	cfg.SmallN = 10
	cfg.Duration = 200 * time.Millisecond
	cfg.Concurrency = 2
	cfg.NoDropCaches = true
	cfg.Logger = testLogger(t)
	cfg.Only = []string{"small", "large"}
	cfg.SettleWait = 100 * time.Millisecond
	rep, err := RunBench(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rep.Results {
		names = append(names, r.Name)
	}
	got := strings.Join(names, "|")
	for _, want := range []string{benchDiskWrite, benchSmall1, "c=2", benchUpload, benchDownload} {
		if !strings.Contains(got, want) {
			t.Errorf("rows %q lack %q", got, want)
		}
	}
	for _, skipped := range []string{benchLoopback, benchFsync4K, "link/upload calls", "resume calls"} {
		if strings.Contains(got, skipped) {
			t.Errorf("rows %q hold %q, which --only left out", got, skipped)
		}
	}
	cfg.Only = []string{"smal"}
	if _, err := RunBench(ctxT(t), cfg); err == nil || !strings.Contains(err.Error(), `"smal"`) || !strings.Contains(err.Error(), "resume") {
		t.Errorf("unknown group: %v", err)
	}
}
