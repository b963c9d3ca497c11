package node_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
	"github.com/osprey-storage/osprey/node"
)

// heldBy counts the object copies and staged chunk copies the FSM records
// on member id.
func heldBy(f *fsm.FSM, id osprey.NodeID) (objects, chunks int) {
	var cur []byte
	for {
		page, next := f.HeldBy(id, cur, 1024)
		for _, h := range page {
			if h.Object {
				objects++
			} else {
				chunks++
			}
		}
		if next == nil {
			return objects, chunks
		}
		cur = next
	}
}

// TestRebalanceOnJoin: a two-node cluster holds a few hundred small
// files (tiered to the local backend or kept inline, two copies each) and a few uploads
// in progress (staged chunks); a third node joins. Within the deadline
// the new node holds at least half its fair share (a third) of the
// copies, a reader sees every file byte for byte throughout, the old
// owners delete the copies they gave up (after the gc grace), and the
// unfinished uploads complete and read back.
//
// OSPREY_REBALANCE_FILES sets the number of files (default 300); the
// time the new node took to reach half its fair share is logged.
// OSPREY_REBALANCE_READER=0 leaves the reader out (to time the moves
// alone).
func TestRebalanceOnJoin(t *testing.T) {
	files := 300
	if v, err := strconv.Atoi(os.Getenv("OSPREY_REBALANCE_FILES")); err == nil && v > 0 {
		files = v
	}
	rate := int64(-1)
	if v, err := strconv.ParseInt(os.Getenv("OSPREY_REBALANCE_RATE"), 10, 64); err == nil {
		rate = v
	}
	adjust := func(i int, c *node.Config) {
		c.GCGrace = time.Second
		c.InlineMax = 1100 // files of 1,024–1,100 bytes kept inline, the larger ones tiered
		if rate >= 0 {
			c.RebalanceRate = rate
		}
	}
	c := newClusterWith(t, 2, adjust)
	datas := map[string][]byte{}
	var uids []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := 0; i < files; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			data := content(1000+i, 1024+i%3000)
			uid, err := tryUploadPatiently(t, c.nodes[i%2], fmt.Sprintf("rb/%d.bin", i), data)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			datas[uid] = data
			uids = append(uids, uid)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// Uploads in progress: one chunk each, staged on both nodes.
	type pending struct {
		link uploadLink
		data []byte
	}
	var inflight []pending
	for i := 0; i < 20; i++ {
		data := content(5000+i, 4096+i)
		a := apiOf(t, c.nodes[i%2])
		link := a.link(fmt.Sprintf("rb/up-%d.bin", i))[0]
		path := fmt.Sprintf("%s&md5=%s&chunkNum=1", link.URL.Multi.Upload, md5hex(data))
		if code, env, _ := a.do("PUT", path, bytes.NewReader(data), map[string]string{"Content-Type": "application/octet-stream"}); code != 200 {
			t.Fatalf("chunk of upload %d: %d %s", i, code, env.Message)
		}
		inflight = append(inflight, pending{link, data})
	}
	lead := c.Leader()
	waitFor(t, 120*time.Second, "every file tiered", func() bool {
		for _, u := range uids {
			f, ok := lead.FSM().File(mustUID(t, u))
			if !ok {
				return false
			}
			if ct, ok := lead.FSM().Content(f.Content); !ok || ct.State != fsm.ContentTiered && !ct.Inline {
				return false
			}
		}
		return true
	})

	// A reader downloads every file in turn from both old nodes while
	// the third joins and copies move; every answer must be complete.
	urls := map[string]string{}
	for _, u := range uids {
		urls[u] = apiOf(t, c.nodes[0]).downloadURL(u)
	}
	stop := make(chan struct{})
	var reads, bad atomic.Int64
	var firstBad atomic.Value
	readerDone := make(chan struct{})
	old := []*node.Node{c.nodes[0], c.nodes[1]}
	go func() {
		defer close(readerDone)
		if os.Getenv("OSPREY_REBALANCE_READER") == "0" {
			<-stop // measuring the moves alone
			return
		}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			u := uids[i%len(uids)]
			n := old[i%2]
			resp, err := http.Get("http://" + n.HTTPAddr() + urls[u])
			var got []byte
			if err == nil {
				got, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != 200 {
					err = fmt.Errorf("status %d: %s", resp.StatusCode, got)
				}
			}
			reads.Add(1)
			if err != nil || !bytes.Equal(got, datas[u]) {
				bad.Add(1)
				firstBad.CompareAndSwap(nil, fmt.Sprintf("uid %s via %s: %v (%d bytes)", u, n.ID(), err, len(got)))
			}
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-readerDone
	}()

	objects0, chunks0 := heldBy(lead.FSM(), "n1")
	cfg := testConfig(t, t.TempDir())
	cfg.NodeID = "n3"
	cfg.Join = []string{c.cfgs[0].HTTPAddr}
	adjust(2, &cfg)
	c.cfgs = append(c.cfgs, cfg)
	start := time.Now()
	n3 := mustStart(t, cfg)
	c.nodes = append(c.nodes, n3)
	c.waitMembers(3)
	if os.Getenv("OSPREY_REBALANCE_FOREGROUND") != "" {
		// Foreground uploads while the copies move (compare a run with
		// OSPREY_REBALANCE_RATE=0, where nothing moves).
		foreground(t, c.nodes, 8*time.Second)
		if rate == 0 {
			t.Skip("rebalancing off: foreground measured only")
		}
	}

	// Every file has two copies; the ring gives n3 a third of all copies.
	total := 2 * (len(uids) + len(inflight))
	half := total / 6
	var reached time.Duration
	waitFor(t, 60*time.Second, "n3 holding half its fair share", func() bool {
		o, ch := heldBy(c.Leader().FSM(), "n3")
		if o+ch >= half && reached == 0 {
			reached = time.Since(start)
		}
		return reached > 0
	})
	t.Logf("%d files (%d copies): n3 held half its fair share (%d copies) %s after it was started", len(uids)+len(inflight), total, half, reached.Round(time.Millisecond))
	waitFor(t, 120*time.Second, "rebalancing done and old copies released", func() bool {
		f := c.Leader().FSM()
		if f.Rebalance().Pending > 0 {
			return false
		}
		for _, tk := range f.Tasks("") {
			if tk.Type == fsm.TaskRebalance || tk.Type == fsm.TaskRelease {
				return false
			}
		}
		return true
	})
	t.Logf("rebalanced after %s: %+v", time.Since(start).Round(time.Millisecond), c.Leader().FSM().Rebalance())
	close(stop)
	<-readerDone
	if bad.Load() > 0 {
		t.Fatalf("%d of %d downloads during the move failed, first: %v", bad.Load(), reads.Load(), firstBad.Load())
	}
	t.Logf("%d downloads during the move, all complete", reads.Load())

	f := c.Leader().FSM()
	o3, ch3 := heldBy(f, "n3")
	if o3+ch3 < half {
		t.Fatalf("n3 holds %d objects and %d chunks, want at least %d copies", o3, ch3, half)
	}
	if ch3 == 0 {
		t.Fatal("no staged chunk copy moved to n3")
	}
	if o1, c1 := heldBy(f, "n1"); os.Getenv("OSPREY_REBALANCE_FOREGROUND") == "" && (o1 >= objects0 || c1 >= chunks0) {
		t.Fatalf("n1 still holds %d objects and %d chunks (had %d and %d)", o1, c1, objects0, chunks0)
	}
	// The local backends hold exactly the recorded copies: the new ones
	// arrived, the released ones were deleted.
	dirs := map[osprey.NodeID]string{"n1": c.cfgs[0].DataDir, "n2": c.cfgs[1].DataDir, "n3": c.cfgs[2].DataDir}
	inline := 0
	for _, u := range uids {
		file, _ := f.File(mustUID(t, u))
		ct, _ := f.Content(file.Content)
		if ct.Inline {
			// Kept in its staged chunks: two copies, on the ring owners,
			// and none elsewhere (a moved copy's old one was released
			// through HEAD and a generation-scoped DELETE).
			if ct.Location != nil || len(ct.Chunks) != 1 || len(ct.Chunks[0].Owners) != 2 {
				t.Fatalf("inline uid %s: location %+v chunks %+v", u, ct.Location, ct.Chunks)
			}
			ch := ct.Chunks[0]
			for i, n := range c.nodes {
				_, err := n.Storage().LocalChunkGen(context.Background(), httpapi.ChunkRef{Blob: ch.Blob, Num: ch.Num})
				if held := slices.Contains(ch.Owners, osprey.NodeID(n.ID())); held != (err == nil) {
					t.Fatalf("inline uid %s on n%d: recorded %v, copy present %v (%v)", u, i+1, held, err == nil, err)
				}
			}
			inline++
			continue
		}
		if ct.Location == nil || len(ct.Location.Nodes) != 2 {
			t.Fatalf("uid %s location %+v", u, ct.Location)
		}
		for id, dir := range dirs {
			_, err := os.Stat(filepath.Join(dir, "objects", ct.Location.Bucket, ct.Location.Key))
			held := false
			for _, h := range ct.Location.Nodes {
				held = held || h == id
			}
			if held && err != nil || !held && err == nil {
				t.Fatalf("uid %s on %s: recorded %v, file present %v", u, id, held, err == nil)
			}
		}
	}
	if inline == 0 || inline == len(uids) {
		t.Fatalf("%d of %d files inline, want some of each kind", inline, len(uids))
	}
	// Every file downloads from the new node, and the moved uploads
	// complete and read back.
	for _, u := range uids {
		code, got, _ := apiOf(t, n3).get(urls[u], nil)
		if code != 200 || !bytes.Equal(got, datas[u]) {
			t.Fatalf("download %s via n3: %d, %d bytes", u, code, len(got))
		}
	}
	for _, p := range inflight {
		path := fmt.Sprintf("%s&md5=%s&num=1&size=%d", p.link.URL.Multi.Merge, md5hex(p.data), len(p.data))
		if code, env, _ := apiOf(t, n3).do("PUT", path, nil, nil); code != 200 {
			t.Fatalf("merge %s: %d %s", p.link.UID, code, env.Message)
		}
		checkDownload(t, n3, p.link.UID, p.data)
	}
	st, err := n3.Cluster().Status(context.Background())
	if err != nil || st.Storage == nil || st.Storage.Rebalance == nil || st.Storage.Rebalance.MovedCopies < int64(half) {
		t.Fatalf("status %+v (%v)", st.Storage, err)
	}
}

// foreground uploads 4 KiB files with 8 clients across nodes for d and
// logs the rate.
func foreground(t *testing.T, nodes []*node.Node, d time.Duration) {
	var done atomic.Int64
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(end); i++ {
				data := content(900000+w*100000+i, 4096)
				a := apiOf(t, nodes[(w+i)%len(nodes)])
				link := a.link(fmt.Sprintf("fg/%d-%d.bin", w, i))[0]
				if code, _, _ := a.do("PUT", link.URL.Single+"&md5="+md5hex(data), bytes.NewReader(data), nil); code == 200 {
					done.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("foreground: %d uploads of 4 KiB in %s = %.0f/s", done.Load(), d, float64(done.Load())/d.Seconds())
}
