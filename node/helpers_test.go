package node_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/node"
)

const testToken = "test-join-token-0123456789"

// tlog routes logs to t.Log until the test's cleanup has run.
type tlog struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *tlog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	w := &tlog{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// freeAddr returns a loopback address with a currently free port; used
// only where an address must be known before the node starts
// (--bootstrap-expect peer lists, restarts on the same address).
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func testConfig(t testing.TB, dir string) node.Config {
	c := node.DefaultConfig()
	c.DataDir = dir
	c.HTTPAddr, c.RaftAddr = freeAddr(t), freeAddr(t)
	c.JoinToken = testToken
	c.JoinRetry = 50 * time.Millisecond
	// Short enough for quick failover tests, long enough that a loaded
	// 2-core machine running -race does not miss heartbeats and hold
	// elections in the middle of a test (300 ms did, under CI load).
	c.Raft.HeartbeatTimeout = 800 * time.Millisecond
	c.Raft.ElectionTimeout = 800 * time.Millisecond
	c.Raft.LeaderLeaseTimeout = 400 * time.Millisecond
	c.Raft.ApplyTimeout = 5 * time.Second
	c.TaskPoll = 50 * time.Millisecond
	c.TaskLease = 2 * time.Second
	c.GCGrace = 0
	c.Logger = testLogger(t)
	return c
}

func mustStart(t testing.TB, cfg node.Config) *node.Node {
	t.Helper()
	n, err := node.New(cfg)
	if err != nil {
		t.Fatalf("new node: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	if err := n.Start(context.Background()); err != nil {
		t.Fatalf("start node: %v", err)
	}
	return n
}

// startFresh is mustStart for a node nobody knows the addresses of yet:
// if a port freeAddr picked for it was taken by someone else before the
// node bound it (freeAddr closes its listener), it starts again on new
// ports and a new data dir, unless the test chose those itself. cfg is
// updated to what the node started with.
func startFresh(t testing.TB, cfg *node.Config, picked node.Config) *node.Node {
	t.Helper()
	for attempt := 0; ; attempt++ {
		n, err := node.New(*cfg)
		if err == nil {
			t.Cleanup(func() { n.Close() })
			if err := n.Start(context.Background()); err != nil {
				t.Fatalf("start node: %v", err)
			}
			return n
		}
		ours := cfg.HTTPAddr == picked.HTTPAddr && cfg.RaftAddr == picked.RaftAddr && cfg.DataDir == picked.DataDir
		if !ours || attempt == 3 || !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("new node: %v", err)
		}
		t.Logf("new node: %v; starting again on other ports", err)
		cfg.HTTPAddr, cfg.RaftAddr, cfg.DataDir = freeAddr(t), freeAddr(t), t.TempDir()
		picked.HTTPAddr, picked.RaftAddr, picked.DataDir = cfg.HTTPAddr, cfg.RaftAddr, cfg.DataDir
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

// cluster is a set of in-process nodes on loopback TCP.
type cluster struct {
	t     testing.TB
	nodes []*node.Node
	cfgs  []node.Config
}

// newCluster starts n1 with --bootstrap and joins the others through it.
func newCluster(t testing.TB, size int) *cluster {
	return newClusterWith(t, size, nil)
}

// newClusterWith is newCluster with a hook to adjust each node's config.
func newClusterWith(t testing.TB, size int, adjust func(i int, c *node.Config)) *cluster {
	t.Helper()
	c := &cluster{t: t}
	for i := 0; i < size; i++ {
		cfg := testConfig(t, t.TempDir())
		picked := cfg
		cfg.NodeID = fmt.Sprintf("n%d", i+1)
		if adjust != nil {
			adjust(i, &cfg)
		}
		if i == 0 {
			cfg.Bootstrap = true
		} else {
			cfg.Join = []string{c.cfgs[0].HTTPAddr}
		}
		n := startFresh(t, &cfg, picked)
		c.cfgs = append(c.cfgs, cfg)
		c.nodes = append(c.nodes, n)
		if i == 0 {
			c.waitReady(c.nodes[0])
		}
	}
	for _, n := range c.nodes {
		c.waitReady(n)
	}
	c.waitMembers(size)
	return c
}

func (c *cluster) waitReady(n *node.Node) {
	c.t.Helper()
	waitFor(c.t, 15*time.Second, "node "+n.ID()+" ready", func() bool {
		return len(n.Cluster().NotReady(context.Background())) == 0
	})
}

func (c *cluster) live() []*node.Node {
	var out []*node.Node
	for _, n := range c.nodes {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

func (c *cluster) waitMembers(size int) {
	c.t.Helper()
	waitFor(c.t, 15*time.Second, fmt.Sprintf("%d members everywhere", size), func() bool {
		for _, n := range c.live() {
			st, err := n.Cluster().Status(context.Background())
			if err != nil || len(st.Members) != size {
				return false
			}
			for _, m := range st.Members {
				if m.WorkerID == nil || m.HTTPAddr == "" {
					return false
				}
			}
		}
		return true
	})
}

// Leader returns the live leader, waiting for one.
func (c *cluster) Leader() *node.Node {
	c.t.Helper()
	var l *node.Node
	waitFor(c.t, 15*time.Second, "a leader", func() bool {
		for _, n := range c.live() {
			if n.IsLeader() {
				l = n
				return true
			}
		}
		return false
	})
	return l
}

func (c *cluster) follower() *node.Node {
	l := c.Leader()
	for _, n := range c.live() {
		if n != l {
			return n
		}
	}
	c.t.Fatal("no follower")
	return nil
}

func (c *cluster) index(n *node.Node) int {
	for i, m := range c.nodes {
		if m == n {
			return i
		}
	}
	return -1
}

// --- a small HTTP client for the storage API ---

type api struct {
	t    testing.TB
	addr string
}

func apiOf(t testing.TB, n *node.Node) api { return api{t: t, addr: "http://" + n.HTTPAddr()} }

type envelope struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

func (a api) do(method, path string, body io.Reader, hdr map[string]string) (int, envelope, http.Header) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.addr+path, body)
	if err != nil {
		a.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var env envelope
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &env)
	return resp.StatusCode, env, resp.Header
}

func (a api) ok(method, path string, body any, out any) {
	a.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	code, env, _ := a.do(method, path, r, nil)
	if code != 200 {
		a.t.Fatalf("%s %s: %d %s", method, path, code, env.Message)
	}
	if out != nil {
		if err := json.Unmarshal(env.Data, out); err != nil {
			a.t.Fatalf("decode %s: %v", env.Data, err)
		}
	}
}

type uploadLink struct {
	UID string `json:"uid"`
	URL struct {
		Single string `json:"single"`
		Multi  struct {
			Upload string `json:"upload"`
			Merge  string `json:"merge"`
		} `json:"multi"`
	} `json:"url"`
}

func (a api) link(paths ...string) []uploadLink {
	var out []uploadLink
	a.ok("POST", "/api/storage/v0/link/upload", map[string]any{"filePath": paths, "expire": 3600}, &out)
	return out
}

func (a api) downloadURL(uid string) string {
	a.t.Helper()
	var out []struct {
		URL   string `json:"url"`
		Error string `json:"error"`
	}
	a.ok("POST", "/api/storage/v0/link/download", map[string]any{"uid": []string{uid}}, &out)
	if out[0].Error != "" {
		a.t.Fatalf("download link for %s: %s", uid, out[0].Error)
	}
	return out[0].URL
}

func (a api) get(path string, hdr map[string]string) (int, []byte, http.Header) {
	a.t.Helper()
	req, _ := http.NewRequest("GET", a.addr+path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatalf("GET %s body: %v", path, err)
	}
	return resp.StatusCode, b, resp.Header
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func content(seed, size int) []byte {
	b := make([]byte, size)
	x := uint32(seed*2654435761 + 1)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func mustUID(t testing.TB, s string) osprey.UID {
	t.Helper()
	u, err := osprey.ParseUID(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// uploadPatiently is uploadSingle retrying what a loaded machine may
// answer with 5xx (an election during the commit: outcome unknown), for
// tests about something else (repair, rebalance, entry counts). A retried
// link may leave an extra uploading file behind; a retried upload of the
// same link is idempotent.
func uploadPatiently(t *testing.T, n *node.Node, name string, data []byte) string {
	t.Helper()
	uid, err := tryUploadPatiently(t, n, name, data)
	if err != nil {
		t.Fatal(err)
	}
	return uid
}

// tryUploadPatiently is uploadPatiently returning its error, for
// goroutines other than the test's.
func tryUploadPatiently(t *testing.T, n *node.Node, name string, data []byte) (string, error) {
	a := apiOf(t, n)
	var link uploadLink
	deadline := time.Now().Add(30 * time.Second)
	body, _ := json.Marshal(map[string]any{"filePath": []string{name}, "expire": 3600})
	for {
		code, env, _ := a.do("POST", "/api/storage/v0/link/upload", bytes.NewReader(body), nil)
		var links []uploadLink
		if code == 200 && json.Unmarshal(env.Data, &links) == nil && len(links) == 1 {
			link = links[0]
			break
		}
		if code < 500 || time.Now().After(deadline) {
			return "", fmt.Errorf("link %s: %d %s", name, code, env.Message)
		}
		time.Sleep(100 * time.Millisecond) // retry pause, not synchronisation
	}
	for {
		code, env, _ := a.do("PUT", link.URL.Single+"&md5="+md5hex(data), bytes.NewReader(data), nil)
		if code == 200 {
			return link.UID, nil
		}
		if code < 500 || time.Now().After(deadline) {
			return "", fmt.Errorf("upload %s: %d %s", name, code, env.Message)
		}
		time.Sleep(100 * time.Millisecond) // retry pause, not synchronisation
	}
}
