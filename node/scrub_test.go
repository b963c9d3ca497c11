package node_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/erasure"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/node"
)

func metricValue(t *testing.T, n *node.Node, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + n.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// overwriteCopy replaces a stored copy on its holder with other bytes of
// the same length, as bitrot would, through the node-to-node chunk route.
func overwriteCopy(t *testing.T, holder *node.Node, blob uint64, num uint32, shard int, data []byte) {
	t.Helper()
	bad := bytes.Clone(data)
	bad[len(bad)/2] ^= 0x40
	if code := chunkRequest(t, holder, http.MethodPut, blob, num, shard, bad); code != 200 {
		t.Fatalf("overwrite copy: %d", code)
	}
}

// chunkRequest sends one request to n's node-to-node chunk route and
// returns the status.
func chunkRequest(t *testing.T, n *node.Node, method string, blob uint64, num uint32, shard int, body []byte) int {
	t.Helper()
	url := fmt.Sprintf("http://%s/internal/v1/chunks/%d/%d/%d", n.HTTPAddr(), blob, num, shard)
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	req.Header.Set("X-Osprey-Node-Auth", n.Cluster().NodeAuthToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// newScrubCluster starts three nodes whose backend is unreachable (files
// stay staged) and whose scrubbers pass every 50ms; adjust may change more.
func newScrubCluster(t *testing.T, adjust func(cfg *node.Config)) *cluster {
	t.Helper()
	dead := freeAddr(t)
	return newClusterWith(t, 3, func(_ int, cfg *node.Config) {
		cfg.Backend.Type = "s3"
		cfg.Backend.S3.Endpoint, cfg.Backend.S3.AccessKey, cfg.Backend.S3.SecretKey = dead, "k", "secretsecret"
		cfg.Backend.S3.MaxAttempts = 1
		cfg.ScrubRate, cfg.ScrubPause = 1<<30, 50*time.Millisecond
		if adjust != nil {
			adjust(cfg)
		}
	})
}

// readFromOnly kills other and reads the file back through holder, which
// then holds the only copy.
func readFromOnly(t *testing.T, c *cluster, holder, other *node.Node, uid string, data []byte) {
	t.Helper()
	for i, n := range c.nodes {
		if n == other {
			n.Kill()
			c.nodes[i] = nil
		}
	}
	c.Leader()
	checkDownload(t, holder, uid, data)
}

// uploadStaged uploads data through the first node and returns its uid
// and the record of its first chunk.
func uploadStaged(t *testing.T, c *cluster, name string, data []byte) (string, fsm.Chunk) {
	t.Helper()
	uid := uploadSingle(t, c.nodes[0], name, data)
	f, _ := c.nodes[0].FSM().File(mustUID(t, uid))
	ct, _ := c.nodes[0].FSM().Content(f.Content)
	return uid, ct.Chunks[0]
}

func TestScrubberRepairsFlippedShard(t *testing.T) {
	c := newScrubCluster(t, func(cfg *node.Config) {
		cfg.EC = erasure.Policy{K: 2, M: 1}
	})
	data := content(77, 700_001)
	uid, ch := uploadStaged(t, c, "s.7z", data)
	shards, _, err := erasure.Encode(erasure.Policy{K: 2, M: 1}, data)
	if err != nil {
		t.Fatal(err)
	}
	// Flip a byte in data shard 0 on its holder.
	sh := ch.EC.Shards[0]
	var holder *node.Node
	for _, n := range c.nodes {
		if n.ID() == string(sh.Owner) {
			holder = n
		}
	}
	before := metricValue(t, holder, "osprey_scrub_repaired_total")
	overwriteCopy(t, holder, ch.Blob, ch.Num, 1, shards[0])
	// Reads stay correct meanwhile: the bad shard fails its stripe checksum
	// and is reconstructed from the others.
	checkDownload(t, c.nodes[1], uid, data)
	waitFor(t, 30*time.Second, "scrubber repair", func() bool {
		return metricValue(t, holder, "osprey_scrub_repaired_total") > before
	})
	// Prove the repaired shard is good: lose another holder, so the chunk
	// can only be decoded with it.
	for i, n := range c.nodes {
		if n.ID() == string(ch.EC.Shards[2].Owner) && n != holder {
			n.Kill()
			c.nodes[i] = nil
			break
		}
	}
	c.Leader()
	checkDownload(t, holder, uid, data)
}

func TestScrubberRepairsBadReplica(t *testing.T) {
	c := newScrubCluster(t, nil)
	data := content(78, 500_000)
	uid, ch := uploadStaged(t, c, "r.7z", data)
	var holder, other *node.Node
	for _, n := range c.nodes {
		if n.ID() == string(ch.Owners[0]) {
			holder = n
		} else if n.ID() == string(ch.Owners[1]) {
			other = n
		}
	}
	before := metricValue(t, holder, "osprey_scrub_repaired_total")
	overwriteCopy(t, holder, ch.Blob, ch.Num, 0, data)
	waitFor(t, 30*time.Second, "scrubber repair", func() bool {
		return metricValue(t, holder, "osprey_scrub_repaired_total") > before
	})
	// Only the repaired copy is left to serve it.
	readFromOnly(t, c, holder, other, uid, data)
}

// chunkPresent asks a node over the node-to-node route whether it holds
// a copy under blob/num/shard.
func chunkPresent(t *testing.T, n *node.Node, blob uint64, num uint32, shard int) bool {
	t.Helper()
	switch code := chunkRequest(t, n, http.MethodHead, blob, num, shard, nil); code {
	case http.StatusOK:
		return true
	case http.StatusNotFound:
		return false
	default:
		t.Fatalf("HEAD chunk %d/%d/%d on %s: %d", blob, num, shard, n.ID(), code)
		return false
	}
}

// TestScrubberCollectsOrphans: copies no record names a node the holder
// of (a stray copy of a recorded chunk on a member that is not its owner,
// a copy of a chunk nothing records) are deleted by that node's scrubber
// once they have stayed so for --orphan-grace; the recorded copies stay
// and the file reads back.
func TestScrubberCollectsOrphans(t *testing.T) {
	c := newScrubCluster(t, func(cfg *node.Config) {
		cfg.OrphanGrace = 300 * time.Millisecond
	})
	data := content(79, 300_000)
	uid, ch := uploadStaged(t, c, "o.7z", data)
	var stranger *node.Node
	for _, n := range c.nodes {
		if n.ID() != string(ch.Owners[0]) && n.ID() != string(ch.Owners[1]) {
			stranger = n
		}
	}
	// Stray copies (overwriteCopy flips a byte: nothing reads them anyway).
	overwriteCopy(t, stranger, ch.Blob, ch.Num, 0, data)
	overwriteCopy(t, stranger, ch.Blob+1_000_000, 1, 0, data)
	if !chunkPresent(t, stranger, ch.Blob, ch.Num, 0) || !chunkPresent(t, stranger, ch.Blob+1_000_000, 1, 0) {
		t.Fatal("the stray copies were not written")
	}
	// The counter moves just after each delete: wait for both.
	waitFor(t, 30*time.Second, "orphans collected", func() bool {
		return !chunkPresent(t, stranger, ch.Blob, ch.Num, 0) && !chunkPresent(t, stranger, ch.Blob+1_000_000, 1, 0) &&
			metricValue(t, stranger, "osprey_scrub_orphans_deleted_total") >= 2
	})
	if got := metricValue(t, stranger, "osprey_scrub_orphans_deleted_total"); got != 2 {
		t.Fatalf("osprey_scrub_orphans_deleted_total = %v, want 2", got)
	}
	for _, n := range c.nodes {
		if n != stranger && !chunkPresent(t, n, ch.Blob, ch.Num, 0) {
			t.Fatalf("%s lost its recorded copy", n.ID())
		}
		if got := metricValue(t, n, "osprey_scrub_orphans_deleted_total"); n != stranger && got != 0 {
			t.Fatalf("%s deleted %v orphans", n.ID(), got)
		}
	}
	checkDownload(t, c.nodes[2], uid, data)
}

// TestScrubberRestoresMissingCopy: a copy deleted behind osprey's back on
// one of its recorded holders is restored by that holder's scrubber from
// the other one, which can then be lost.
func TestScrubberRestoresMissingCopy(t *testing.T) {
	c := newScrubCluster(t, nil)
	data := content(80, 400_000)
	uid, ch := uploadStaged(t, c, "m.7z", data)
	var holder, other *node.Node
	for _, n := range c.nodes {
		switch n.ID() {
		case string(ch.Owners[0]):
			holder = n
		case string(ch.Owners[1]):
			other = n
		}
	}
	if code := chunkRequest(t, holder, http.MethodDelete, ch.Blob, ch.Num, 0, nil); code != 200 {
		t.Fatalf("delete copy: %d", code)
	}
	waitFor(t, 30*time.Second, "missing copy restored", func() bool {
		return metricValue(t, holder, "osprey_scrub_missing_total") >= 1 && chunkPresent(t, holder, ch.Blob, ch.Num, 0)
	})
	readFromOnly(t, c, holder, other, uid, data)
}

// uploadTieredLocal uploads data (above --inline-max) through the first
// node of a local-backend cluster, waits until it is tiered, and returns
// its uid and content record (two holders).
func uploadTieredLocal(t *testing.T, c *cluster, name string, data []byte) (string, fsm.Content) {
	t.Helper()
	uid := uploadSingle(t, c.nodes[0], name, data)
	waitState(t, c.nodes[0], uid, "tiered")
	f, _ := c.nodes[0].FSM().File(mustUID(t, uid))
	ct, _ := c.nodes[0].FSM().Content(f.Content)
	if ct.Location == nil || len(ct.Location.Nodes) != 2 {
		t.Fatalf("location %+v, want two local holders", ct.Location)
	}
	return uid, ct
}

// TestScrubberRestoresLocalObjectCopies: with the local-disk backend the
// tiered object's copies on the members' disks are the file's only copies
// once its staged chunks are collected. A holder's copy that rots, and
// then one deleted behind osprey's back, is rewritten from the other
// holder, and then serves the file alone.
func TestScrubberRestoresLocalObjectCopies(t *testing.T) {
	c := newClusterWith(t, 3, func(_ int, cfg *node.Config) {
		cfg.ScrubRate, cfg.ScrubPause = 1<<30, 50*time.Millisecond
	})
	data := content(81, 300_000)
	uid, ct := uploadTieredLocal(t, c, "o.pdf", data)
	var holder, other *node.Node
	var path string
	for i, n := range c.nodes {
		switch osprey.NodeID(n.ID()) {
		case ct.Location.Nodes[0]:
			holder = n
			path = filepath.Join(c.cfgs[i].DataDir, "objects", ct.Location.Bucket, ct.Location.Key)
		case ct.Location.Nodes[1]:
			other = n
		}
	}
	restored := func(what, metric string) {
		t.Helper()
		waitFor(t, 30*time.Second, what+" object copy restored", func() bool {
			got, err := os.ReadFile(path)
			return metricValue(t, holder, metric) >= 1 && err == nil && bytes.Equal(got, data)
		})
	}
	bad := bytes.Clone(data)
	bad[len(bad)/3] ^= 0x08 // same size, same inode: only the bytes tell
	f2, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f2.WriteAt(bad[len(bad)/3:len(bad)/3+1], int64(len(bad)/3)); err != nil {
		t.Fatal(err)
	}
	f2.Close()
	restored("bad", "osprey_scrub_corrupt_total")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	restored("missing", "osprey_scrub_missing_total")
	readFromOnly(t, c, holder, other, uid, data)
}

// TestScrubberCollectsOrphanedLocalObjects: with the local-disk backend,
// object files on a member's disk that no content record names it a
// holder of (a stray copy of a tiered object, the object of a content
// that no longer exists) are deleted once they have stayed so for
// --orphan-grace, and so is a Put's temporary file as old; the holders'
// copies and files osprey would not have written stay.
func TestScrubberCollectsOrphanedLocalObjects(t *testing.T) {
	c := newClusterWith(t, 3, func(_ int, cfg *node.Config) {
		cfg.ScrubRate, cfg.ScrubPause = 1<<30, 50*time.Millisecond
		cfg.OrphanGrace = 300 * time.Millisecond
	})
	data := content(82, 300_000)
	uid, ct := uploadTieredLocal(t, c, "p.pdf", data)
	objects := func(n *node.Node) string { return filepath.Join(c.cfgs[c.index(n)].DataDir, "objects") }
	var stranger *node.Node
	for _, n := range c.nodes {
		if !slices.Contains(ct.Location.Nodes, osprey.NodeID(n.ID())) {
			stranger = n
		}
	}
	bucket := filepath.Join(objects(stranger), ct.Location.Bucket)
	if err := os.MkdirAll(bucket, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, age time.Duration) string {
		t.Helper()
		p := filepath.Join(bucket, name)
		if err := os.WriteFile(p, data[:1000], 0o644); err != nil {
			t.Fatal(err)
		}
		if age > 0 {
			old := time.Now().Add(-age)
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	stray := write(ct.Location.Key, 0)        // a copy the record does not name
	gone := write("12345.pdf", 0)             // the object of no content
	foreign := write("notes.txt", 0)          // not a name osprey writes
	temp := write(".osprey-tmp-1", time.Hour) // an interrupted Put's
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	waitFor(t, 30*time.Second, "orphaned objects collected", func() bool {
		return !exists(stray) && !exists(gone) && !exists(temp) &&
			metricValue(t, stranger, "osprey_scrub_orphans_deleted_total") >= 3 // counted just after each delete
	})
	if !exists(foreign) {
		t.Fatal("a file osprey did not write was deleted")
	}
	if got := metricValue(t, stranger, "osprey_scrub_orphans_deleted_total"); got != 3 {
		t.Fatalf("osprey_scrub_orphans_deleted_total = %v, want 3", got)
	}
	for _, n := range c.nodes {
		if n != stranger && !exists(filepath.Join(objects(n), ct.Location.Bucket, ct.Location.Key)) {
			t.Fatalf("holder %s lost its copy", n.ID())
		}
	}
	checkDownload(t, stranger, uid, data)
}

// TestDownloadHealsABadLocalObjectCopy: with the local-disk backend, a
// tiered copy that rots is found by the first download that reads the bad
// chunk, not by the next scrub pass (an hour away here): the download is
// the file's bytes, read on from the other holder where the bad chunk
// starts, whether the node serving it holds the bad copy or asks that
// holder for it, and the holder's scrubber rewrites its copy at once.
func TestDownloadHealsABadLocalObjectCopy(t *testing.T) {
	c := newClusterWith(t, 3, func(_ int, cfg *node.Config) {
		cfg.ScrubRate, cfg.ScrubPause = 1<<30, time.Hour
	})
	data := content(91, 3*mib+mib/2)
	link := apiOf(t, c.nodes[0]).link("v.bin")[0]
	uploadChunked(t, c.nodes, link, data, c.nodes[0])
	uid := link.UID
	waitState(t, c.nodes[0], uid, "tiered")
	f, _ := c.nodes[0].FSM().File(mustUID(t, uid))
	ct, _ := c.nodes[0].FSM().Content(f.Content)
	if ct.Location == nil || len(ct.Location.Nodes) != 2 || len(ct.Sums) != 4 {
		t.Fatalf("location %+v and %d chunk sums, want two local holders and 4 sums", ct.Location, len(ct.Sums))
	}
	// A file of one chunk keeps its sum too (feature level 4).
	if _, one := uploadTieredLocal(t, c, "one.bin", content(92, 300_000)); len(one.Sums) != 1 || one.Sums[0].Size != 300_000 {
		t.Fatalf("one-chunk content sums %+v, want one of 300000 bytes", one.Sums)
	}
	var holder, reader *node.Node
	var path string
	for i, n := range c.nodes {
		switch id := osprey.NodeID(n.ID()); {
		case id == ct.Location.Nodes[0]:
			holder = n
			path = filepath.Join(c.cfgs[i].DataDir, "objects", ct.Location.Bucket, ct.Location.Key)
		case id != ct.Location.Nodes[1]:
			reader = n // holds no copy: asks the holders
		}
	}
	rot := func() {
		t.Helper()
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		off := int64(2*mib + 12345) // inside the third chunk
		if _, err := f.WriteAt([]byte{data[off] ^ 0x20}, off); err != nil {
			t.Fatal(err)
		}
	}
	for round, via := range []*node.Node{holder, reader} {
		rot()
		a := apiOf(t, via)
		if code, got, _ := a.get(a.downloadURL(uid), nil); code != 200 || !bytes.Equal(got, data) {
			t.Fatalf("download via %s with a bad copy on %s: status %d, %d bytes, md5 %s want %s",
				via.ID(), holder.ID(), code, len(got), md5hex(got), md5hex(data))
		}
		waitFor(t, 30*time.Second, "the bad copy rewritten", func() bool {
			got, err := os.ReadFile(path)
			return metricValue(t, holder, "osprey_scrub_corrupt_total") >= float64(round+1) && err == nil && bytes.Equal(got, data)
		})
	}
	// One pass of each walk (staged chunks, objects) ran at start.
	if n := metricValue(t, holder, "osprey_scrub_passes_total"); n > 2 {
		t.Fatalf("%v scrub passes: the copy was rewritten by a pass, not on the download's report", n)
	}
}
