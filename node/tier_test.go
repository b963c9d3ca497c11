package node_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/backend/s3/s3test"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
	"github.com/osprey-storage/osprey/node"
)

// uploadSingle uploads data in one request through n and returns its uid.
func uploadSingle(t *testing.T, n *node.Node, name string, data []byte) string {
	t.Helper()
	a := apiOf(t, n)
	link := a.link(name)[0]
	if code, env, _ := a.do("PUT", link.URL.Single+"&md5="+md5hex(data), bytes.NewReader(data), nil); code != 200 {
		t.Fatalf("upload %s: %d %s", name, code, env.Message)
	}
	return link.UID
}

func waitState(t *testing.T, n *node.Node, uid, state string) {
	t.Helper()
	waitFor(t, 30*time.Second, uid+" "+state, func() bool {
		info, err := n.Storage().Stat(context.Background(), mustUID(t, uid))
		return err == nil && info.State == state
	})
}

func TestTierLocalBackendReplicatedAndCollected(t *testing.T) {
	c := newCluster(t, 3)
	data := content(21, 3*mib+17)
	uid := uploadSingle(t, c.nodes[0], "photo.jpg", data)
	waitState(t, c.nodes[1], uid, "tiered")
	// Node 0's FSM is read directly below: let it catch up first (Stat is
	// a linearizable read, so it waits for node 0 to apply the tiering).
	waitState(t, c.nodes[0], uid, "tiered")

	f, _ := c.nodes[0].FSM().File(mustUID(t, uid))
	ct, _ := c.nodes[0].FSM().Content(f.Content)
	if ct.Location == nil || len(ct.Location.Nodes) != 2 || ct.Location.Bucket != "image" {
		t.Fatalf("location %+v, want two local holders in bucket image", ct.Location)
	}
	// Each holder has the object in its local backend directory.
	for _, h := range ct.Location.Nodes {
		i := map[osprey.NodeID]int{"n1": 0, "n2": 1, "n3": 2}[h]
		got, err := os.ReadFile(filepath.Join(c.cfgs[i].DataDir, "objects", "image", ct.Location.Key))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("object on %s: %v (%d bytes)", h, err, len(got))
		}
	}
	// The gc task removes the staged chunks once the copy is verified.
	waitFor(t, 30*time.Second, "no pending tasks", func() bool { return len(c.nodes[0].FSM().Tasks("")) == 0 })
	checkDownload(t, c.nodes[2], uid, data)

	// Losing one holder loses nothing.
	victim := c.nodes[map[osprey.NodeID]int{"n1": 0, "n2": 1, "n3": 2}[ct.Location.Nodes[0]]]
	victim.Kill()
	c.nodes[c.index(victim)] = nil
	c.Leader()
	for _, n := range c.live() {
		checkDownload(t, n, uid, data)
	}
}

func TestDeleteRemovesBackendObjectAndRespectsReferences(t *testing.T) {
	c := newCluster(t, 1)
	data := content(22, 200_000) // above --inline-max: tiered
	a := apiOf(t, c.nodes[0])
	uid1 := uploadSingle(t, c.nodes[0], "a.pdf", data)
	uid2 := uploadSingle(t, c.nodes[0], "b.pdf", data) // same content, deduplicated
	waitState(t, c.nodes[0], uid1, "tiered")
	f, _ := c.nodes[0].FSM().File(mustUID(t, uid1))
	ct, _ := c.nodes[0].FSM().Content(f.Content)
	obj := filepath.Join(c.cfgs[0].DataDir, "objects", "doc", ct.Location.Key)
	if _, err := os.Stat(obj); err != nil {
		t.Fatal(err)
	}
	a.ok("DELETE", "/api/storage/v0/object?uid="+uid1, nil, nil)
	checkDownload(t, c.nodes[0], uid2, data)
	a.ok("DELETE", "/api/storage/v0/object?uid="+uid2, nil, nil)
	waitFor(t, 30*time.Second, "backend object deleted", func() bool {
		_, err := os.Stat(obj)
		return os.IsNotExist(err)
	})
	if code, _, _ := a.do("GET", "/api/storage/v0/object?uid="+uid2, nil, nil); code != 404 {
		t.Fatalf("stat after delete: %d", code)
	}
}

func TestMD5MismatchMarksFileFailedAndKeepsData(t *testing.T) {
	// Three nodes: the local backend's copies go over the wire, and the
	// mismatch must still be recognised as one.
	c := newCluster(t, 3)
	data := content(23, 2*mib)
	a := apiOf(t, c.nodes[0])
	link := a.link("clip.mp4")[0]
	for i := 0; i < 2; i++ {
		part := data[i*mib : (i+1)*mib]
		if code, env, _ := a.do("PUT", fmt.Sprintf("%s&md5=%s&chunkNum=%d", link.URL.Multi.Upload, md5hex(part), i+1), bytes.NewReader(part), nil); code != 200 {
			t.Fatalf("chunk: %d %s", code, env.Message)
		}
	}
	wrong := md5hex([]byte("not the content"))
	if code, env, _ := a.do("PUT", fmt.Sprintf("%s&md5=%s&num=2&size=%d", link.URL.Multi.Merge, wrong, len(data)), nil, nil); code != 200 {
		t.Fatalf("merge: %d %s", code, env.Message)
	}
	waitState(t, c.nodes[0], link.UID, "failed")
	f, _ := c.nodes[0].FSM().File(mustUID(t, link.UID))
	ct, _ := c.nodes[0].FSM().Content(f.Content)
	if ct.State != fsm.ContentFailed || len(ct.Chunks) != 2 {
		t.Fatalf("content %+v: want failed with its chunks kept", ct)
	}
	// Nothing may deduplicate onto failed content.
	var res []struct{ UID string }
	a.ok("POST", "/api/storage/v0/resume", map[string]any{"data": []map[string]string{{"md5": wrong, "path": "x.mp4"}}}, &res)
	if res[0].UID != "" {
		t.Fatalf("resume deduplicated onto failed content")
	}
}

func TestWebhookSignedEvents(t *testing.T) {
	var (
		mu     sync.Mutex
		events []fsm.WebhookPayload
	)
	const secret = "hook-secret-1234"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(body)
		if r.Header.Get("X-Osprey-Signature") != "sha256="+hex.EncodeToString(m.Sum(nil)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var ev fsm.WebhookPayload
		_ = json.Unmarshal(body, &ev)
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	}))
	defer srv.Close()
	c := newClusterWith(t, 1, func(_ int, cfg *node.Config) { cfg.WebhookURL, cfg.WebhookSecret = srv.URL, secret })
	waitFor(t, 10*time.Second, "webhook enabled", func() bool { return c.nodes[0].FSM().Settings().WebhookEnabled })
	uid := uploadSingle(t, c.nodes[0], "w.png", content(24, 1000))
	waitFor(t, 30*time.Second, "complete and tiered events", func() bool {
		mu.Lock()
		defer mu.Unlock()
		seen := map[string]bool{}
		for _, e := range events {
			if e.UID.String() == uid {
				seen[e.Event] = true
			}
		}
		return seen["complete"] && seen["tiered"]
	})
}

func TestTaskDeadLetterAfterMaxAttemptsAndRetry(t *testing.T) {
	// An S3 backend nobody listens on: every tier attempt fails.
	c := newClusterWith(t, 1, func(_ int, cfg *node.Config) {
		cfg.Backend.Type = "s3"
		cfg.Backend.S3.Endpoint = freeAddr(t)
		cfg.Backend.S3.AccessKey, cfg.Backend.S3.SecretKey = "k", "secretsecret"
		cfg.Backend.S3.MaxAttempts = 1
		cfg.TaskMaxAttempts = 2
	})
	data := content(25, 5000)
	uid := uploadSingle(t, c.nodes[0], "d.zip", data)
	var dead []fsm.Task
	waitFor(t, 60*time.Second, "a dead tier task", func() bool {
		dead = c.nodes[0].FSM().Tasks(fsm.TaskDead)
		return len(dead) == 1
	})
	if dead[0].Type != fsm.TaskTier || dead[0].Attempts != 2 || dead[0].LastError == "" {
		t.Fatalf("dead task %+v", dead[0])
	}
	// Staged data still serves the file.
	checkDownload(t, c.nodes[0], uid, data)
	// Operators see it and can retry it.
	var listed []struct {
		ID    uint64 `json:"id"`
		State string `json:"state"`
	}
	apiOf(t, c.nodes[0]).ok("GET", "/tasks?state=dead", nil, &listed)
	if len(listed) != 1 || listed[0].ID != dead[0].ID {
		t.Fatalf("GET /tasks?state=dead: %+v", listed)
	}
	apiOf(t, c.nodes[0]).ok("POST", fmt.Sprintf("/tasks/%d/retry", dead[0].ID), nil, nil)
	if tk, _ := c.nodes[0].FSM().Task(dead[0].ID); tk.State == fsm.TaskDead {
		t.Fatalf("task still dead after retry")
	}
}

func TestTierToMinIOSurvivesOutage(t *testing.T) {
	srv := s3test.StartServer(t)
	c := newClusterWith(t, 3, func(_ int, cfg *node.Config) {
		cfg.Backend.Type = "s3"
		cfg.Backend.S3.Endpoint, cfg.Backend.S3.AccessKey, cfg.Backend.S3.SecretKey = srv.Endpoint(), srv.AccessKey(), srv.SecretKey()
		cfg.Backend.S3.MaxAttempts = 1
	})
	data := content(27, 6*mib+3)
	uid := uploadSingle(t, c.nodes[1], "m.tar", data)
	waitState(t, c.nodes[0], uid, "tiered")
	checkDownload(t, c.nodes[2], uid, data)

	// Backend down: uploads and downloads of staged files keep working,
	// tier tasks back off, and complete once it returns.
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	data2 := content(28, 3*mib)
	uid2 := uploadSingle(t, c.nodes[2], "n.tar", data2)
	checkDownload(t, c.nodes[0], uid2, data2)
	waitFor(t, 30*time.Second, "a failed tier attempt", func() bool {
		for _, tk := range c.nodes[0].FSM().Tasks("") {
			if tk.Type == fsm.TaskTier && tk.LastError != "" {
				return true
			}
		}
		return false
	})
	// A node dies holding the task's lease: the task is taken over once
	// the lease expires. (The lease is granted to n3 through raft, exactly
	// as its own worker would, and n3 is then killed.)
	var task fsm.Task
	for _, tk := range c.nodes[0].FSM().Tasks("") {
		if tk.Type == fsm.TaskTier {
			task = tk
		}
	}
	victim := c.nodes[2]
	victim.Kill()
	c.nodes[2] = nil
	var leased fsm.TaskLeaseResult
	waitFor(t, 30*time.Second, "the dead node holding the lease", func() bool {
		now := time.Now().UnixMilli()
		err := c.nodes[0].Apply(context.Background(), fsm.CmdTaskLease, fsm.TaskLease{Node: osprey.NodeID(victim.ID()),
			IDs: []uint64{task.ID}, Now: now, LeaseMillis: 3000}, &leased)
		return err == nil && len(leased.Tasks) == 1
	})
	if err := srv.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitState(t, c.nodes[0], uid2, "tiered")
	if tk, ok := c.nodes[0].FSM().Task(task.ID); ok {
		t.Fatalf("task still queued: %+v", tk)
	}
	checkDownload(t, c.nodes[1], uid2, data2)
	checkDownload(t, c.nodes[1], uid, data)
}

func TestAbandonedUploadsExpireAndChunksAreReclaimed(t *testing.T) {
	c := newClusterWith(t, 1, func(_ int, cfg *node.Config) { cfg.ExpireUploads = 2 * time.Second })
	a := apiOf(t, c.nodes[0])
	link := a.link("left.bin")[0]
	part := content(90, 1000)
	if code, env, _ := a.do("PUT", fmt.Sprintf("%s&md5=%s&chunkNum=1", link.URL.Multi.Upload, md5hex(part)), bytes.NewReader(part), nil); code != 200 {
		t.Fatalf("chunk: %d %s", code, env.Message)
	}
	waitFor(t, 30*time.Second, "the abandoned upload to expire", func() bool {
		_, ok := c.nodes[0].FSM().File(mustUID(t, link.UID))
		return !ok
	})
	waitFor(t, 30*time.Second, "its chunk reclaimed", func() bool {
		return metricValue(t, c.nodes[0], "osprey_chunkstore_bytes") == 0 && len(c.nodes[0].FSM().Tasks("")) == 0
	})
	if code, _, _ := a.do("GET", "/api/storage/v0/checkpoint?uid="+link.UID, nil, nil); code != 404 {
		t.Fatalf("checkpoint of an expired upload: %d", code)
	}
}

// TestSmallFilesKeptInline: with the local backend a small file uploaded
// in one request is stored once the upload is acknowledged (tiered at
// "inline", its staged copies on two members), is never copied into
// objects/, survives the loss of a holder, and its copies go when it is
// deleted; a file above --inline-max is tiered as before.
func TestSmallFilesKeptInline(t *testing.T) {
	c := newCluster(t, 3)
	for _, n := range c.Leader().FSM().Nodes() {
		if n.Level != fsm.FeatureLevel {
			t.Fatalf("member %s recorded at level %d", n.ID, n.Level)
		}
	}
	if got := c.Leader().FSM().Settings().InlineMax; got != node.DefaultConfig().InlineMax {
		t.Fatalf("cluster InlineMax %d", got)
	}
	small := content(31, 4096)
	uid := uploadSingle(t, c.nodes[0], "note.txt", small)
	info, err := c.nodes[1].Storage().Stat(context.Background(), mustUID(t, uid))
	if err != nil || info.State != "tiered" || info.Location != "inline" {
		t.Fatalf("stat right after the upload: %+v %v", info, err)
	}
	large := content(32, 200<<10)
	big := uploadSingle(t, c.nodes[0], "big.bin", large)
	waitState(t, c.nodes[0], big, "tiered")
	if info, _ := c.nodes[0].Storage().Stat(context.Background(), mustUID(t, big)); !strings.HasPrefix(info.Location, "backend:") {
		t.Fatalf("large file location %q", info.Location)
	}
	waitFor(t, 30*time.Second, "no pending tasks", func() bool { return len(c.nodes[0].FSM().Tasks("")) == 0 })

	f, _ := c.nodes[0].FSM().File(mustUID(t, uid))
	ct, _ := c.nodes[0].FSM().Content(f.Content)
	if !ct.Inline || ct.Location != nil || len(ct.Chunks) != 1 || len(ct.Chunks[0].Owners) != 2 {
		t.Fatalf("inline content %+v", ct)
	}
	for i := range c.nodes {
		if _, err := os.Stat(filepath.Join(c.cfgs[i].DataDir, "objects", ct.Bucket, ct.Key)); !os.IsNotExist(err) {
			t.Fatalf("node %d has a backend object for an inline file: %v", i, err)
		}
	}
	checkDownload(t, c.nodes[2], uid, small)

	// Losing one holder loses nothing.
	victim := c.nodes[map[osprey.NodeID]int{"n1": 0, "n2": 1, "n3": 2}[ct.Chunks[0].Owners[0]]]
	victim.Kill()
	c.nodes[c.index(victim)] = nil
	c.Leader()
	for _, n := range c.live() {
		checkDownload(t, n, uid, small)
	}

	// Deleting it queues the removal of its staged copies (no backend
	// object to remove).
	a := apiOf(t, c.live()[0])
	a.ok("DELETE", "/api/storage/v0/object?uid="+uid, nil, nil)
	if code, _, _ := a.do("GET", "/api/storage/v0/object?uid="+uid, nil, nil); code != 404 {
		t.Fatalf("stat after delete: %d", code)
	}
	if _, ok := c.Leader().FSM().Content(ct.ID); ok {
		t.Fatal("content kept after its last reference went")
	}
}

// TestUploadAnswerMatchesStat: the upload's answer is built from the
// completion's result instead of reading the records back; it must say
// what a Stat says right after: a small file kept inline, a larger one
// staged, and a duplicate deduplicated onto the inline content (on a
// follower and on the leader).
func TestUploadAnswerMatchesStat(t *testing.T) {
	c := newCluster(t, 3)
	for i, tc := range []struct {
		name string
		data []byte
	}{
		{"small.txt", content(41, 4096)},
		{"large.bin", content(42, 300<<10)},
		{"again.txt", content(41, 4096)},
	} {
		n := c.nodes[i%len(c.nodes)]
		a := apiOf(t, n)
		link := a.link(tc.name)[0]
		code, env, _ := a.do("PUT", link.URL.Single+"&md5="+md5hex(tc.data), bytes.NewReader(tc.data), nil)
		if code != 200 {
			t.Fatalf("upload %s: %d %s", tc.name, code, env.Message)
		}
		var got httpapi.FileInfo
		if err := json.Unmarshal(env.Data, &got); err != nil {
			t.Fatal(err)
		}
		want, err := n.Storage().Stat(context.Background(), mustUID(t, link.UID))
		if err != nil {
			t.Fatal(err)
		}
		if tc.name == "large.bin" && want.State != "complete" {
			// Tiered meanwhile: the answer described the moment before.
			want.State, want.Location, want.UpdatedAt = "complete", "staging", got.UpdatedAt
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: upload answered\n%+v\nstat says\n%+v", tc.name, got, want)
		}
	}
}
