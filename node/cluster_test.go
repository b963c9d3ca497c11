package node_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/httpapi"
	"github.com/osprey-storage/osprey/node"
)

func TestClusterFormsByJoin(t *testing.T) {
	c := newCluster(t, 3)
	seen := map[int64]string{}
	st, err := c.nodes[0].Cluster().Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st.Members {
		if m.Suffrage != "Voter" {
			t.Errorf("member %s is %s, want Voter", m.ID, m.Suffrage)
		}
		if other, dup := seen[*m.WorkerID]; dup {
			t.Errorf("worker id %d shared by %s and %s", *m.WorkerID, other, m.ID)
		}
		seen[*m.WorkerID] = m.ID
	}
}

func TestWriteThroughFollowerVisibleEverywhere(t *testing.T) {
	c := newCluster(t, 3)
	f := c.follower()
	uids, err := f.Storage().CreateFiles(context.Background(), []httpapi.NewFile{{Name: "a.jpg", Bucket: "image"}})
	if err != nil {
		t.Fatalf("write through follower: %v", err)
	}
	for _, n := range c.nodes {
		// Read-your-writes: a linearizable read on every node sees it at once.
		info, err := n.Storage().Stat(context.Background(), uids[0])
		if err != nil {
			t.Fatalf("node %s: stat: %v", n.ID(), err)
		}
		if info.Name != "a.jpg" || info.State != "uploading" {
			t.Fatalf("node %s: got %+v", n.ID(), info)
		}
	}
}

func TestLeaderKillFailover(t *testing.T) {
	c := newCluster(t, 3)
	old := c.Leader()
	i := c.index(old)
	start := time.Now()
	if err := old.Kill(); err != nil {
		t.Logf("kill: %v", err)
	}
	c.nodes[i] = nil
	var nl *node.Node
	waitFor(t, 15*time.Second, "a new leader", func() bool {
		for _, n := range c.live() {
			if n.IsLeader() {
				nl = n
				return true
			}
		}
		return false
	})
	elected := time.Since(start)
	// A forwarded raft command through the surviving follower succeeds.
	var other *node.Node
	for _, n := range c.live() {
		if n != nl {
			other = n
		}
	}
	var uids []osprey.UID
	waitFor(t, 15*time.Second, "a successful write after failover", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var err error
		uids, err = other.Storage().CreateFiles(ctx, []httpapi.NewFile{{Name: "after.png", Bucket: "image"}})
		return err == nil
	})
	t.Logf("failover: new leader after %s, first write after %s", elected, time.Since(start))
	if _, err := nl.Storage().Stat(context.Background(), uids[0]); err != nil {
		t.Fatalf("write not visible on the new leader: %v", err)
	}
}

func TestRestartWithSameCommandLineRejoins(t *testing.T) {
	c := newCluster(t, 3)
	f := c.follower()
	i := c.index(f)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	c.nodes[i] = nil
	// Restart with the original configuration (same data dir, addresses,
	// --join): it must resume, not register a second time.
	c.nodes[i] = mustStart(t, c.cfgs[i])
	c.waitReady(c.nodes[i])
	c.waitMembers(3)
	for _, n := range c.live() {
		st, _ := n.Cluster().Status(context.Background())
		ids := map[string]int{}
		for _, m := range st.Members {
			ids[m.ID]++
		}
		if len(ids) != 3 || ids[c.cfgs[i].NodeID] != 1 {
			t.Fatalf("node %s sees members %v", n.ID(), ids)
		}
	}
	if nodes := c.nodes[0].FSM().Nodes(); len(nodes) != 3 {
		t.Fatalf("fsm has %d node records, want 3", len(nodes))
	}
	// The restarted node serves writes again.
	if _, err := c.nodes[i].Storage().CreateFiles(context.Background(), []httpapi.NewFile{{Name: "x.pdf", Bucket: "doc"}}); err != nil {
		t.Fatal(err)
	}
}

func TestBootstrapExpectFormsOneCluster(t *testing.T) {
	var cfgs []node.Config
	var peers []string
	for i := 0; i < 3; i++ {
		cfg := testConfig(t, t.TempDir())
		cfg.NodeID = fmt.Sprintf("e%d", i+1)
		cfgs = append(cfgs, cfg)
		peers = append(peers, cfg.HTTPAddr)
	}
	c := &cluster{t: t, cfgs: cfgs}
	for i := range cfgs {
		cfgs[i].BootstrapExpect = 3
		cfgs[i].Join = peers
	}
	var wg sync.WaitGroup
	c.nodes = make([]*node.Node, 3)
	for i := range cfgs {
		c.nodes[i] = mustStart(t, cfgs[i])
	}
	wg.Wait()
	for _, n := range c.nodes {
		c.waitReady(n)
	}
	c.waitMembers(3)
	ids := map[string]bool{}
	for _, n := range c.nodes {
		ids[n.FSM().ClusterID()] = true
	}
	if len(ids) != 1 {
		t.Fatalf("nodes belong to %d clusters: %v", len(ids), ids)
	}
}

func TestWrongJoinTokenRefused(t *testing.T) {
	c := newCluster(t, 1)
	cfg := testConfig(t, t.TempDir())
	cfg.Join = []string{c.cfgs[0].HTTPAddr}
	cfg.JoinToken = "not-the-token"
	n := mustStart(t, cfg)
	select {
	case err := <-n.Err():
		if !errors.Is(err, osprey.ErrForbidden) || !strings.Contains(err.Error(), "wrong join token") {
			t.Fatalf("got %v, want a clear wrong-token refusal", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("join with a wrong token was not refused")
	}
	if st, _ := c.nodes[0].Cluster().Status(context.Background()); len(st.Members) != 1 {
		t.Fatalf("cluster has %d members after a refused join", len(st.Members))
	}
}

func TestUIDsUniqueAcrossNodes(t *testing.T) {
	c := newCluster(t, 3)
	const total = 200_000
	per := total / len(c.nodes)
	results := make([][]osprey.UID, len(c.nodes)*2)
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		for g := 0; g < 2; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out := make([]osprey.UID, 0, per/2)
				for k := 0; k < per/2; k++ {
					u, err := n.Cluster().NextUID()
					if err != nil {
						t.Error(err)
						return
					}
					out = append(out, u)
				}
				results[i*2+g] = out
			}()
		}
	}
	wg.Wait()
	seen := make(map[osprey.UID]struct{}, total)
	for _, r := range results {
		for _, u := range r {
			if _, dup := seen[u]; dup {
				t.Fatalf("uid %d minted twice", u)
			}
			seen[u] = struct{}{}
		}
	}
	if len(seen) < total-len(c.nodes)*2 {
		t.Fatalf("only %d uids", len(seen))
	}
}

func TestRedirectParamAnswers307ToLeader(t *testing.T) {
	c := newCluster(t, 3)
	f := c.follower()
	req, _ := http.NewRequest("POST", "http://"+f.HTTPAddr()+"/api/storage/v0/link/upload?redirect", strings.NewReader(`{"filePath":["a.jpg"]}`))
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.Contains(resp.Header.Get("Location"), c.Leader().HTTPAddr()) {
		t.Fatalf("got %d Location %q, want 307 to %s", resp.StatusCode, resp.Header.Get("Location"), c.Leader().HTTPAddr())
	}
	// Without ?redirect the follower serves it (forwarding the command).
	if code, env, _ := apiOf(t, f).do("POST", "/api/storage/v0/link/upload", strings.NewReader(`{"filePath":["a.jpg"]}`), nil); code != 200 {
		t.Fatalf("forwarded write: %d %s", code, env.Message)
	}
}

// A single node restarted at a new raft address (a container that got a
// new IP) re-addresses itself and becomes ready again.
func TestSingleNodeRestartAtNewAddress(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.Bootstrap = true
	n := mustStart(t, cfg)
	waitFor(t, 10*time.Second, "ready", func() bool { return len(n.Cluster().NotReady(context.Background())) == 0 })
	oldRaft := n.RaftAddr()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	cfg2 := testConfig(t, dir)
	cfg2.Bootstrap = true
	n2 := mustStart(t, cfg2)
	if n2.RaftAddr() == oldRaft {
		t.Fatalf("restart reused raft address %s", oldRaft)
	}
	var st httpapi.ClusterStatus
	waitFor(t, 15*time.Second, "ready and recorded at the new address", func() bool {
		var err error
		st, err = n2.Cluster().Status(context.Background())
		return err == nil && len(n2.Cluster().NotReady(context.Background())) == 0 && len(st.Members) == 1 &&
			st.Members[0].RaftAddr == n2.RaftAddr() && st.Members[0].HTTPAddr == n2.HTTPAddr()
	})
}
