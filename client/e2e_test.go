package client_test

// End-to-end tests: the client against real nodes started in-process
// through package node, on loopback TCP.

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osprey-storage/osprey/client"
	"github.com/osprey-storage/osprey/node"
)

const e2eKey = "e2e-api-key"

// syncLog routes logs to t.Log until the test's cleanup has run (t.Log
// after the test ends panics).
type syncLog struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *syncLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func e2eLogger(t testing.TB, lvl slog.Level) *slog.Logger {
	w := &syncLog{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl}))
}

// mustNodes starts size nodes (n1 bootstraps, the others join it) and
// returns them once every node is ready.
func mustNodes(t *testing.T, size int) []*node.Node {
	t.Helper()
	var nodes []*node.Node
	for i := range size {
		cfg := node.DefaultConfig()
		cfg.NodeID = fmt.Sprintf("n%d", i+1)
		cfg.DataDir = t.TempDir()
		cfg.HTTPAddr, cfg.RaftAddr = "127.0.0.1:0", "127.0.0.1:0"
		cfg.JoinToken = "e2e-join-token-0123456789"
		cfg.APIKeys = []string{e2eKey}
		cfg.JoinRetry = 50 * time.Millisecond
		cfg.Raft.HeartbeatTimeout = 300 * time.Millisecond
		cfg.Raft.ElectionTimeout = 300 * time.Millisecond
		cfg.Raft.LeaderLeaseTimeout = 150 * time.Millisecond
		cfg.Logger = e2eLogger(t, slog.LevelWarn)
		if i == 0 {
			cfg.Bootstrap = true
		} else {
			cfg.Join = []string{nodes[0].HTTPAddr()}
		}
		n, err := node.New(cfg)
		if err != nil {
			t.Fatalf("node.New: %v", err)
		}
		t.Cleanup(func() { n.Close() })
		if err := n.Start(context.Background()); err != nil {
			t.Fatalf("Start: %v", err)
		}
		nodes = append(nodes, n)
		if i == 0 {
			waitReady(t, n)
		}
	}
	for _, n := range nodes {
		waitReady(t, n)
	}
	if size > 1 {
		c := e2eClient(t, nodes[:1])
		waitFor(t, 20*time.Second, "all members reachable", func() bool {
			ns, err := c.ClusterNodes(context.Background())
			if err != nil || len(ns) != size {
				return false
			}
			for _, n := range ns {
				if !n.Reachable {
					return false
				}
			}
			return true
		})
	}
	return nodes
}

func waitReady(t *testing.T, n *node.Node) {
	t.Helper()
	c := e2eClient(t, []*node.Node{n})
	waitFor(t, 20*time.Second, "node "+n.ID()+" ready", func() bool {
		return c.Ready(context.Background(), "") == nil
	})
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

func e2eClient(t *testing.T, nodes []*node.Node, opts ...func(*client.Config)) *client.Client {
	t.Helper()
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, "http://"+n.HTTPAddr())
	}
	cfg := client.Config{Addr: strings.Join(addrs, ","), APIKey: e2eKey, Logger: e2eLogger(t, slog.LevelDebug),
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func randomFile(t *testing.T, dir, name string, n int) (string, []byte) {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, b
}

func sum(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// failChunk makes the transport answer 400 for one chunk number (as if the
// upload was interrupted there) while enabled.
type failChunk struct {
	next    http.RoundTripper
	chunk   string
	enabled bool
	mu      sync.Mutex
}

func (f *failChunk) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	on := f.enabled
	f.mu.Unlock()
	if on && strings.HasSuffix(r.URL.Path, "/upload/multi") && r.URL.Query().Get("chunkNum") == f.chunk {
		if r.Body != nil {
			r.Body.Close()
		}
		return &http.Response{StatusCode: 400, Header: http.Header{}, Request: r,
			Body: io.NopCloser(strings.NewReader(`{"code":1,"message":"injected"}`))}, nil
	}
	return f.next.RoundTrip(r)
}

func TestE2ESingleNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real node")
	}
	nodes := mustNodes(t, 1)
	fc := &failChunk{next: http.DefaultTransport, chunk: "3"}
	c := e2eClient(t, nodes, func(cfg *client.Config) { cfg.HTTPClient = &http.Client{Transport: fc} })
	ctx := ctxFor(t)
	dir := t.TempDir()
	const chunk = 256 << 10

	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := c.Health(ctx); err != nil {
		t.Fatalf("Health: %v", err)
	}

	t.Run("put and get, sizes around the chunk size", func(t *testing.T) {
		for _, n := range []int{0, 1, chunk - 1, chunk, chunk + 1, 3*chunk + 7} {
			p, content := randomFile(t, dir, fmt.Sprintf("f%d.bin", n), n)
			res, err := c.PutFile(ctx, p, client.PutOptions{ChunkSize: chunk, Parallel: 3, StateDir: filepath.Join(dir, "state")})
			if err != nil {
				t.Fatalf("size %d: PutFile: %v", n, err)
			}
			o, err := c.Object(ctx, res.UID)
			if err != nil {
				t.Fatalf("size %d: Object: %v", n, err)
			}
			if o.Size != int64(n) || o.MD5 != sum(content) || (o.State != client.StateComplete && o.State != client.StateTiered) {
				t.Errorf("size %d: object %+v", n, o)
			}
			out := filepath.Join(dir, fmt.Sprintf("out%d.bin", n))
			if _, err := c.GetFile(ctx, res.UID, out, client.GetOptions{}); err != nil {
				t.Fatalf("size %d: GetFile: %v", n, err)
			}
			if got, _ := os.ReadFile(out); !bytes.Equal(got, content) {
				t.Errorf("size %d: downloaded bytes differ", n)
			}
		}
	})

	t.Run("parallel get checks chunk sums, staged and tiered", func(t *testing.T) {
		t.Cleanup(client.SetParallelPiece(300_000))
		p, content := randomFile(t, dir, "par.bin", 5*chunk+11)
		res, err := c.PutFile(ctx, p, client.PutOptions{ChunkSize: chunk, Parallel: 3, StateDir: "-"})
		if err != nil {
			t.Fatal(err)
		}
		get := func(when string) {
			t.Helper()
			out := filepath.Join(dir, "par-out.bin")
			defer os.Remove(out)
			g, err := c.GetFile(ctx, res.UID, out, client.GetOptions{Parallel: 4})
			if err != nil {
				t.Fatalf("%s: %v", when, err)
			}
			if got, _ := os.ReadFile(out); !bytes.Equal(got, content) {
				t.Fatalf("%s: downloaded bytes differ", when)
			}
			if g.Verified != client.VerifiedChunkSums || g.MD5 != sum(content) {
				t.Fatalf("%s: verified by %q (md5 %s)", when, g.Verified, g.MD5)
			}
		}
		get("right after the upload")
		deadline := time.Now().Add(20 * time.Second)
		for {
			o, err := c.Object(ctx, res.UID)
			if err == nil && o.State == client.StateTiered {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("not tiered after 20s: %+v %v", o, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		get("once tiered") // the staged chunks' sums were kept
	})

	t.Run("dedup", func(t *testing.T) {
		p, content := randomFile(t, dir, "dup-a.bin", 1000)
		a, err := c.PutFile(ctx, p, client.PutOptions{StateDir: "-"})
		if err != nil {
			t.Fatal(err)
		}
		q := filepath.Join(dir, "dup-b.jpg")
		if err := os.WriteFile(q, content, 0o644); err != nil {
			t.Fatal(err)
		}
		b, err := c.PutFile(ctx, q, client.PutOptions{StateDir: "-"})
		if err != nil {
			t.Fatal(err)
		}
		if !b.Dedup || b.UID == a.UID {
			t.Fatalf("second put: %+v", b)
		}
		o, err := c.Object(ctx, b.UID)
		if err != nil || o.Name != "dup-b.jpg" || o.MD5 != sum(content) {
			t.Errorf("alias: %+v %v", o, err)
		}
	})

	t.Run("resume an interrupted chunked upload", func(t *testing.T) {
		p, content := randomFile(t, dir, "resume.bin", 5*chunk+11)
		opts := client.PutOptions{ChunkSize: chunk, Parallel: 1, StateDir: filepath.Join(dir, "rstate")}
		fc.mu.Lock()
		fc.enabled = true
		fc.mu.Unlock()
		_, err := c.PutFile(ctx, p, opts)
		fc.mu.Lock()
		fc.enabled = false
		fc.mu.Unlock()
		if err == nil {
			t.Fatal("interrupted upload succeeded")
		}
		res, err := c.PutFile(ctx, p, opts)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Resumed || res.Uploaded != int64(len(content))-2*chunk {
			t.Errorf("resume: %+v", res)
		}
		out := filepath.Join(dir, "resume.out")
		if _, err := c.GetFile(ctx, res.UID, out, client.GetOptions{}); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(out); !bytes.Equal(got, content) {
			t.Error("content differs")
		}
	})

	t.Run("get resumes a part file", func(t *testing.T) {
		p, content := randomFile(t, dir, "part.bin", 2*chunk)
		res, err := c.PutFile(ctx, p, client.PutOptions{ChunkSize: chunk, StateDir: "-"})
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "part.out")
		if err := os.WriteFile(out+client.PartSuffix, content[:chunk/2], 0o644); err != nil {
			t.Fatal(err)
		}
		g, err := c.GetFile(ctx, res.UID, out, client.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !g.Resumed || g.Downloaded != int64(len(content)-chunk/2) {
			t.Errorf("get: %+v", g)
		}
		if got, _ := os.ReadFile(out); !bytes.Equal(got, content) {
			t.Error("content differs")
		}
		// A .part with wrong bytes is caught by the md5 check and kept.
		bad := filepath.Join(dir, "bad.out")
		if err := os.WriteFile(bad+client.PartSuffix, make([]byte, 100), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetFile(ctx, res.UID, bad, client.GetOptions{}); !errors.Is(err, client.ErrChecksum) {
			t.Errorf("bad part: err = %v, want ErrChecksum", err)
		}
		if _, err := os.Stat(bad + client.PartSuffix); err != nil {
			t.Errorf(".part not kept: %v", err)
		}
	})

	t.Run("ranges", func(t *testing.T) {
		p, content := randomFile(t, dir, "range.bin", 1000)
		res, err := c.PutFile(ctx, p, client.PutOptions{StateDir: "-"})
		if err != nil {
			t.Fatal(err)
		}
		links, err := c.LinkDownload(ctx, []string{res.UID, "1"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if links[0].URL == "" || links[1].URL != "" || int64(links[0].Meta.Size) != 1000 || links[0].Meta.MD5 != sum(content) {
			t.Fatalf("links %+v", links)
		}
		tests := []struct {
			rng        string
			want       []byte
			wantStatus int
			wantErr    error
		}{
			{"bytes=0-0", content[:1], 206, nil},
			{"bytes=-1", content[999:], 206, nil},
			{"bytes=990-", content[990:], 206, nil},
			{"bytes=10-19", content[10:20], 206, nil},
			{"bytes=995-2000", content[995:], 206, nil},
			{"bytes=1000-", nil, 0, client.ErrRangeNotSatisfiable},
			{"", content, 200, nil},
		}
		for _, tt := range tests {
			d, err := c.Download(ctx, links[0].URL, client.DownloadOptions{Range: tt.rng})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("%q: err = %v, want %v", tt.rng, err, tt.wantErr)
				}
				continue
			}
			if err != nil {
				t.Errorf("%q: %v", tt.rng, err)
				continue
			}
			got, err := io.ReadAll(d.Body)
			d.Close()
			if err != nil || d.Status != tt.wantStatus || !bytes.Equal(got, tt.want) || (d.Partial && d.Total != 1000) {
				t.Errorf("%q: status %d total %d, %d bytes, err %v", tt.rng, d.Status, d.Total, len(got), err)
			}
			if d.ETag != `"`+sum(content)+`"` {
				t.Errorf("%q: ETag %q", tt.rng, d.ETag)
			}
		}
	})

	t.Run("merge with a missing chunk deletes nothing", func(t *testing.T) {
		links, err := c.LinkUpload(ctx, []string{"manual.bin"}, 0)
		if err != nil {
			t.Fatal(err)
		}
		l := links[0]
		parts := [][]byte{bytes.Repeat([]byte("a"), 100), bytes.Repeat([]byte("b"), 50)}
		whole := append(append([]byte(nil), parts[0]...), parts[1]...)
		if err := c.UploadChunk(ctx, l.URL.Multi.Upload, 1, sum(parts[0]), bytes.NewReader(parts[0]), 100); err != nil {
			t.Fatal(err)
		}
		if err := c.Merge(ctx, l.URL.Multi.Merge, sum(whole), 2, 150); !errors.Is(err, client.ErrConflict) {
			t.Fatalf("merge with chunk 2 missing: err = %v, want ErrConflict", err)
		}
		have, err := c.Checkpoint(ctx, l.UID)
		if err != nil || len(have) != 1 || have[0] != 1 {
			t.Fatalf("checkpoint after failed merge: %v %v", have, err)
		}
		if err := c.UploadChunk(ctx, l.URL.Multi.Upload, 2, sum(parts[1]), bytes.NewReader(parts[1]), 50); err != nil {
			t.Fatal(err)
		}
		if err := c.Merge(ctx, l.URL.Multi.Merge, sum(whole), 2, 150); err != nil {
			t.Fatal(err)
		}
		if err := c.Merge(ctx, l.URL.Multi.Merge, sum(whole), 2, 150); err != nil {
			t.Errorf("second merge: %v (must be idempotent)", err)
		}
		if err := c.UploadChunk(ctx, l.URL.Multi.Upload, 2, sum(parts[0]), bytes.NewReader(parts[0]), 100); !errors.Is(err, client.ErrConflict) {
			t.Errorf("chunk after merge: err = %v, want ErrConflict", err)
		}
	})

	t.Run("bad md5 is refused", func(t *testing.T) {
		links, err := c.LinkUpload(ctx, []string{"bad.txt"}, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = c.Upload(ctx, links[0].URL.Single, sum([]byte("other")), strings.NewReader("hello"), 5, client.UploadOptions{})
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status/100 != 4 || ae.RequestID == "" {
			t.Errorf("err = %v, want a 4xx APIError with a request id", err)
		}
		// osproxy's multipart form works too.
		err = c.Upload(ctx, links[0].URL.Single, sum([]byte("hello")), strings.NewReader("hello"), 5,
			client.UploadOptions{Multipart: true, Filename: "bad.txt"})
		if err != nil {
			t.Errorf("multipart upload: %v", err)
		}
	})

	t.Run("objects, delete, errors", func(t *testing.T) {
		var all []client.Object
		cursor := ""
		for {
			page, err := c.Objects(ctx, cursor, 3)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, page.Items...)
			if page.NextCursor == "" {
				break
			}
			cursor = page.NextCursor
		}
		if len(all) < 10 {
			t.Errorf("listed %d objects", len(all))
		}
		uid := all[0].UID
		if err := c.DeleteObject(ctx, uid); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Object(ctx, uid); !errors.Is(err, client.ErrNotFound) {
			t.Errorf("after delete: %v", err)
		}
		if _, err := c.Checkpoint(ctx, "12345"); !errors.Is(err, client.ErrNotFound) {
			t.Errorf("checkpoint of unknown uid: %v", err)
		}
		bad := e2eClient(t, nodes, func(cfg *client.Config) { cfg.APIKey = "wrong" })
		if _, err := bad.Objects(ctx, "", 1); !errors.Is(err, client.ErrUnauthorized) {
			t.Errorf("wrong key: %v", err)
		}
	})

	t.Run("cluster", func(t *testing.T) {
		st, err := c.ClusterStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.ID != "n1" || st.Leader.ID != "n1" || len(st.Members) != 1 || st.FSMHash == "" {
			t.Errorf("status %+v", st)
		}
		ns, err := c.ClusterNodes(ctx)
		if err != nil || len(ns) != 1 || !ns[0].Reachable || !ns[0].Leader {
			t.Errorf("nodes %+v %v", ns, err)
		}
		p, _ := randomFile(t, dir, "proxy.bin", 3*chunk)
		res, err := c.PutFile(ctx, p, client.PutOptions{ChunkSize: chunk, StateDir: "-"})
		if err != nil {
			t.Fatal(err)
		}
		// Staged data may already be tiered and collected; only the call is checked.
		if addrs, err := c.Proxy(ctx, res.UID); err != nil {
			t.Errorf("proxy: %v %v", addrs, err)
		}
		if v, err := c.Metric(ctx, "", "process_resident_memory_bytes"); err != nil || v <= 0 {
			t.Errorf("rss metric: %v %v", v, err)
		}
	})
}

func TestE2EThreeNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real nodes")
	}
	// Known server gap (2026-11-23): a download or upload on one node right
	// after a write acknowledged by another answers 409 "still uploading" /
	// 404, violating read-your-writes (SPEC §1). Enable once fixed.
	nodes := mustNodes(t, 3)
	c := e2eClient(t, nodes) // round-robin over all three
	ctx := ctxFor(t)
	dir := t.TempDir()
	const chunk = 128 << 10
	for _, n := range []int{10, 5*chunk + 3} {
		p, content := randomFile(t, dir, fmt.Sprintf("f%d.bin", n), n)
		res, err := c.PutFile(ctx, p, client.PutOptions{ChunkSize: chunk, Parallel: 3, StateDir: "-"})
		if err != nil {
			t.Fatalf("size %d: PutFile: %v", n, err)
		}
		for range nodes { // each read lands on another node
			out := filepath.Join(dir, "out.bin")
			if _, err := c.GetFile(ctx, res.UID, out, client.GetOptions{}); err != nil {
				t.Fatalf("size %d: GetFile: %v", n, err)
			}
			if got, _ := os.ReadFile(out); !bytes.Equal(got, content) {
				t.Fatalf("size %d: content differs", n)
			}
			os.Remove(out)
		}
	}
	// Read-your-writes across nodes: link on one node, upload on the next.
	for i := range 20 {
		links, err := c.LinkUpload(ctx, []string{fmt.Sprintf("ryw-%d.txt", i)}, 0)
		if err != nil {
			t.Fatal(err)
		}
		body := []byte(fmt.Sprint("file ", i))
		if err := c.Upload(ctx, links[0].URL.Single, sum(body), bytes.NewReader(body), int64(len(body)), client.UploadOptions{}); err != nil {
			t.Fatalf("upload %d right after link on another node: %v", i, err)
		}
	}
	st, err := c.ClusterStatus(ctx)
	if err != nil || len(st.Members) != 3 {
		t.Errorf("status %+v %v", st, err)
	}
}
