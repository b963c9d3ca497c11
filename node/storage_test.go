package node_test

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/osprey-storage/osprey/node"
)

const mib = 1 << 20

// uploadChunked sends data as 1 MiB chunks, spreading them over nodes, and
// merges on mergeOn. Chunks go five at a time, like osproxy's client.
func uploadChunked(t *testing.T, nodes []*node.Node, link uploadLink, data []byte, mergeOn *node.Node) {
	t.Helper()
	num := (len(data) + mib - 1) / mib
	if num == 0 {
		num = 1
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 5)
	for i := 0; i < num; i++ {
		lo, hi := i*mib, min((i+1)*mib, len(data))
		part := data[lo:hi]
		a := apiOf(t, nodes[i%len(nodes)])
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			path := fmt.Sprintf("%s&md5=%s&chunkNum=%d", link.URL.Multi.Upload, md5hex(part), i+1)
			code, env, _ := a.do("PUT", path, bytes.NewReader(part), map[string]string{"Content-Type": "application/octet-stream"})
			if code != 200 {
				t.Errorf("chunk %d: %d %s", i+1, code, env.Message)
			}
		}()
	}
	wg.Wait()
	path := fmt.Sprintf("%s&md5=%s&num=%d&size=%d", link.URL.Multi.Merge, md5hex(data), num, len(data))
	if code, env, _ := apiOf(t, mergeOn).do("PUT", path, nil, nil); code != 200 {
		t.Fatalf("merge: %d %s", code, env.Message)
	}
}

func checkDownload(t *testing.T, n *node.Node, uid string, want []byte) {
	t.Helper()
	a := apiOf(t, n)
	u := a.downloadURL(uid)
	code, got, hdr := a.get(u, nil)
	if code != 200 || !bytes.Equal(got, want) {
		t.Fatalf("download %s via %s: status %d, %d bytes (want %d), md5 %s want %s", uid, n.ID(), code, len(got), len(want), md5hex(got), md5hex(want))
	}
	if hdr.Get("ETag") != `"`+md5hex(want)+`"` {
		t.Fatalf("ETag %s", hdr.Get("ETag"))
	}
	size := len(want)
	if size == 0 {
		return
	}
	for _, r := range []struct {
		hdr    string
		lo, hi int
	}{
		{"bytes=0-0", 0, 0},
		{fmt.Sprintf("bytes=%d-", size-1), size - 1, size - 1},
		{fmt.Sprintf("bytes=%d-%d", size/3, size-1), size / 3, size - 1},
		{"bytes=-1", size - 1, size - 1},
		{fmt.Sprintf("bytes=%d-%d", max(0, size/2-7), min(size-1, size/2+mib)), max(0, size/2-7), min(size-1, size/2+mib)},
	} {
		code, got, hdr := a.get(u, map[string]string{"Range": r.hdr})
		if code != http.StatusPartialContent || !bytes.Equal(got, want[r.lo:r.hi+1]) {
			t.Fatalf("%s of %d bytes: status %d, got %d bytes", r.hdr, size, code, len(got))
		}
		if cr := hdr.Get("Content-Range"); cr != fmt.Sprintf("bytes %d-%d/%d", r.lo, r.hi, size) {
			t.Fatalf("%s: Content-Range %q", r.hdr, cr)
		}
	}
	if code, _, _ := a.get(u, map[string]string{"Range": fmt.Sprintf("bytes=%d-", size)}); code != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("range past EOF: %d", code)
	}
}

func TestChunkedUploadAcrossNodesDownloadsEverywhere(t *testing.T) {
	c := newCluster(t, 3)
	a, b, cc := c.nodes[0], c.nodes[1], c.nodes[2]
	sizes := []int{0, 1, mib - 1, mib, mib + 1, 5*mib + 3}
	type file struct {
		uid  string
		data []byte
	}
	var files []file
	for i, size := range sizes {
		data := content(i, size)
		link := apiOf(t, a).link(fmt.Sprintf("dir/file-%d.bin", size))[0]
		uploadChunked(t, []*node.Node{b, cc}, link, data, cc)
		files = append(files, file{link.UID, data})
		// Downloadable at once, on every node.
		for _, n := range c.nodes {
			checkDownload(t, n, link.UID, data)
		}
	}
	// Single-request uploads, multipart form and raw body.
	for i, size := range []int{0, 1, mib + 1, 9*mib + 5} {
		data := content(100+i, size)
		link := apiOf(t, b).link("single.jpg")[0]
		path := link.URL.Single + "&md5=" + md5hex(data)
		var body bytes.Buffer
		hdr := map[string]string{"Content-Type": "application/octet-stream"}
		if i%2 == 0 {
			body.WriteString("--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"single.jpg\"\r\n\r\n")
			body.Write(data)
			body.WriteString("\r\n--XyZ--\r\n")
			hdr["Content-Type"] = "multipart/form-data; boundary=XyZ"
		} else {
			body.Write(data)
		}
		if code, env, _ := apiOf(t, cc).do("PUT", path, &body, hdr); code != 200 {
			t.Fatalf("single upload of %d bytes: %d %s", size, code, env.Message)
		}
		files = append(files, file{link.UID, data})
		checkDownload(t, a, link.UID, data)
	}

	// Kill one node: every file still downloads from the survivors.
	victim := c.nodes[1]
	victim.Kill()
	c.nodes[1] = nil
	c.Leader()
	for _, f := range files {
		for _, n := range c.live() {
			checkDownload(t, n, f.uid, f.data)
		}
	}
}

func TestMergeWithMissingChunksKeepsThem(t *testing.T) {
	c := newCluster(t, 3)
	data := content(7, 3*mib)
	link := apiOf(t, c.nodes[0]).link("m.mp4")[0]
	a := apiOf(t, c.nodes[1])
	put := func(i int) {
		part := data[i*mib : (i+1)*mib]
		path := fmt.Sprintf("%s&md5=%s&chunkNum=%d", link.URL.Multi.Upload, md5hex(part), i+1)
		if code, env, _ := a.do("PUT", path, bytes.NewReader(part), nil); code != 200 {
			t.Fatalf("chunk %d: %d %s", i+1, code, env.Message)
		}
	}
	put(0)
	put(2)
	merge := fmt.Sprintf("%s&md5=%s&num=3&size=%d", link.URL.Multi.Merge, md5hex(data), len(data))
	code, env, _ := a.do("PUT", merge, nil, nil)
	if code != http.StatusConflict || !bytes.Contains([]byte(env.Message), []byte("missing chunks 2")) {
		t.Fatalf("merge with a missing chunk: %d %q", code, env.Message)
	}
	var cp []int
	apiOf(t, c.nodes[2]).ok("GET", "/api/storage/v0/checkpoint?uid="+link.UID, nil, &cp)
	if fmt.Sprint(cp) != "[1 3]" {
		t.Fatalf("checkpoint after failed merge: %v", cp)
	}
	// Wrong size is refused too, and changes nothing.
	if code, _, _ := a.do("PUT", fmt.Sprintf("%s&md5=%s&num=3&size=%d", link.URL.Multi.Merge, md5hex(data), len(data)+1), nil, nil); code != http.StatusConflict {
		t.Fatalf("merge with wrong size: %d", code)
	}
	put(1)
	if code, env, _ := a.do("PUT", merge, nil, nil); code != 200 {
		t.Fatalf("merge: %d %s", code, env.Message)
	}
	// Merging twice is idempotent.
	if code, env, _ := apiOf(t, c.nodes[0]).do("PUT", merge, nil, nil); code != 200 {
		t.Fatalf("second merge: %d %s", code, env.Message)
	}
	checkDownload(t, c.nodes[0], link.UID, data)
}

func TestDedupByResumeAndByUpload(t *testing.T) {
	c := newCluster(t, 3)
	data := content(9, 2*mib+11)
	a := apiOf(t, c.nodes[0])
	link := a.link("orig.pdf")[0]
	uploadChunked(t, c.nodes, link, data, c.nodes[2])

	var res []struct {
		MD5 string `json:"md5"`
		UID string `json:"uid"`
	}
	resume := func() {
		res = nil
		apiOf(t, c.nodes[1]).ok("POST", "/api/storage/v0/resume", map[string]any{"data": []map[string]string{
			{"md5": md5hex(data), "path": "copy.pdf"},
			{"md5": md5hex([]byte("unknown")), "path": "nope.pdf"},
		}}, &res)
	}
	// A merge declares its md5; until tiering has checked the bytes
	// against it, the content is no dedup target.
	if ct, ok := c.nodes[0].FSM().Content(mustUID(t, link.UID)); !ok || !ct.Verified {
		resume()
		if len(res) != 2 || res[0].UID != "" {
			t.Fatalf("resume onto an unverified merge: %+v", res)
		}
	}
	waitFor(t, 20*time.Second, "tiering to verify the merged content", func() bool {
		ct, ok := c.nodes[1].FSM().Content(mustUID(t, link.UID))
		return ok && ct.Verified
	})
	resume()
	if len(res) != 2 || res[0].UID == "" || res[0].UID == link.UID || res[1].UID != "" {
		t.Fatalf("resume: %+v", res)
	}
	checkDownload(t, c.nodes[2], res[0].UID, data)

	// Uploading known content again stores a new file sharing the content.
	link2 := a.link("again.pdf")[0]
	if code, env, _ := a.do("PUT", link2.URL.Single+"&md5="+md5hex(data), bytes.NewReader(data), nil); code != 200 {
		t.Fatalf("upload: %d %s", code, env.Message)
	}
	checkDownload(t, c.nodes[1], link2.UID, data)
	f1, _ := c.nodes[0].FSM().File(mustUID(t, link.UID))
	f2, _ := c.nodes[0].FSM().File(mustUID(t, link2.UID))
	if f1.Content != f2.Content {
		t.Fatalf("content not shared: %d vs %d", f1.Content, f2.Content)
	}
	ct, _ := c.nodes[0].FSM().Content(f1.Content)
	if ct.Refs != 3 {
		t.Fatalf("refs = %d, want 3", ct.Refs)
	}
	// Deleting two of three references keeps the content.
	for _, uid := range []string{link.UID, res[0].UID} {
		a.ok("DELETE", "/api/storage/v0/object?uid="+uid, nil, nil)
	}
	checkDownload(t, c.nodes[0], link2.UID, data)
}
