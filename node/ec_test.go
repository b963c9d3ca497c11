package node_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/erasure"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/node"
)

// ecProtected reports whether every staged chunk of uids has all K+M shards
// on distinct active members (tolerates M more losses), from the FSM.
func ecProtected(t *testing.T, c *cluster, uids []string) bool {
	t.Helper()
	f := c.Leader().FSM()
	active := map[osprey.NodeID]bool{}
	for _, n := range f.Nodes() {
		if !n.Removed {
			active[n.ID] = true
		}
	}
	for _, u := range uids {
		file, ok := f.File(mustUID(t, u))
		if !ok {
			return false
		}
		ct, _ := f.Content(file.Content)
		for _, ch := range ct.Chunks {
			if ch.EC == nil {
				t.Fatalf("chunk %d of %s is not erasure-coded", ch.Num, u)
			}
			seen := map[osprey.NodeID]bool{}
			for _, sh := range ch.EC.Shards {
				if !active[sh.Owner] || seen[sh.Owner] {
					return false
				}
				seen[sh.Owner] = true
			}
		}
	}
	return true
}

func TestErasureCodedStagingSurvivesNodeLossAndRepairs(t *testing.T) {
	// Tiering goes to an unreachable S3 so files stay staged (in EC) for
	// the whole test.
	dead := freeAddr(t)
	c := newClusterWith(t, 4, func(_ int, cfg *node.Config) {
		cfg.EC = erasure.Policy{K: 2, M: 1}
		cfg.Backend.Type = "s3"
		cfg.Backend.S3.Endpoint, cfg.Backend.S3.AccessKey, cfg.Backend.S3.SecretKey = dead, "k", "secretsecret"
		cfg.Backend.S3.MaxAttempts = 1
	})
	var uids []string
	var datas [][]byte
	for i, size := range []int{0, 1, 300_000, mib + 1, 3*mib + 5} {
		data := content(60+i, size)
		datas = append(datas, data)
		if size > mib {
			link := apiOf(t, c.nodes[0]).link(fmt.Sprintf("ec%d.zip", i))[0]
			uploadChunked(t, c.nodes, link, data, c.nodes[1])
			uids = append(uids, link.UID)
		} else {
			uids = append(uids, uploadSingle(t, c.nodes[i%4], fmt.Sprintf("ec%d.zip", i), data))
		}
	}
	if !ecProtected(t, c, uids) {
		t.Fatal("shards not on distinct members after upload")
	}
	for i, u := range uids {
		checkDownload(t, c.nodes[3], u, datas[i])
	}

	// Lose a node for good: kill it, delete its data dir, remove it.
	victim := c.nodes[2]
	victim.Kill()
	c.nodes[2] = nil
	if err := os.RemoveAll(c.cfgs[2].DataDir); err != nil {
		t.Fatal(err)
	}
	// Degraded reads reconstruct from the remaining shards.
	for i, u := range uids {
		checkDownload(t, c.nodes[0], u, datas[i])
	}
	if err := c.Leader().Cluster().Remove(context.Background(), victim.ID()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "full protection restored", func() bool {
		for _, tk := range c.Leader().FSM().Tasks("") {
			if tk.Type == fsm.TaskRepair {
				return false
			}
		}
		return ecProtected(t, c, uids)
	})
	// One more loss is tolerated again.
	c.nodes[3].Kill()
	c.nodes[3] = nil
	for i, u := range uids {
		checkDownload(t, c.nodes[1], u, datas[i])
	}
}

// With three nodes and ec:2+1, losing one leaves too few members for three
// distinct shards: repair keeps the same tolerance by replicating the
// affected chunks twice.
func TestErasureCodedThreeNodesFallBackToReplicas(t *testing.T) {
	dead := freeAddr(t)
	c := newClusterWith(t, 3, func(_ int, cfg *node.Config) {
		cfg.EC = erasure.Policy{K: 2, M: 1}
		cfg.Backend.Type = "s3"
		cfg.Backend.S3.Endpoint, cfg.Backend.S3.AccessKey, cfg.Backend.S3.SecretKey = dead, "k", "secretsecret"
		cfg.Backend.S3.MaxAttempts = 1
	})
	var uids []string
	var datas [][]byte
	for i := 0; i < 4; i++ {
		data := content(80+i, 200_000*i+3)
		datas = append(datas, data)
		uids = append(uids, uploadSingle(t, c.nodes[i%3], fmt.Sprintf("f%d.png", i), data))
	}
	victim := c.nodes[0]
	victim.Kill()
	c.nodes[0] = nil
	os.RemoveAll(c.cfgs[0].DataDir)
	l := c.Leader()
	if err := l.Cluster().Remove(context.Background(), victim.ID()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "protection restored", func() bool {
		st, err := c.Leader().Cluster().Status(context.Background())
		return err == nil && st.Storage.UnderProtected == 0 && st.Storage.Tasks["repair_pending"] == 0 && st.Storage.Tasks["repair_leased"] == 0
	})
	for i, u := range uids {
		for _, n := range c.live() {
			checkDownload(t, n, u, datas[i])
		}
	}
}
