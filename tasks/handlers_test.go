package tasks_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/backend"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/ring"
	"github.com/osprey-storage/osprey/tasks"
)

type contents map[osprey.UID]fsm.Content

func (c contents) Content(id osprey.UID) (fsm.Content, bool) { v, ok := c[id]; return v, ok }

// fakeData serves staged bytes from memory and records object copies.
type fakeData struct {
	staged   []byte
	mu       sync.Mutex
	objects  map[string][]byte // owner/bucket/key
	deleted  []string
	PutErrFn func(owner string) error
	// DialErrFn, when it returns an error for owner, fails that copy the
	// way net/http does when it cannot connect: the body is closed
	// unread, then the error returned.
	DialErrFn func(owner string) error
}

func (d *fakeData) OpenStaged(_ context.Context, _ []fsm.Chunk, off, length int64) io.ReadCloser {
	return io.NopCloser(bytes.NewReader(d.staged[off : off+length]))
}

func (d *fakeData) PutObjectOn(_ context.Context, owner, bucket, key string, body io.Reader, _ int64, _ string) error {
	if d.DialErrFn != nil {
		if err := d.DialErrFn(owner); err != nil {
			if c, ok := body.(io.Closer); ok {
				c.Close()
			}
			return err
		}
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	if d.PutErrFn != nil {
		if err := d.PutErrFn(owner); err != nil {
			return err
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.objects[owner+"/"+bucket+"/"+key] = b
	return nil
}

func (d *fakeData) DeleteChunks(_ context.Context, chunks []fsm.Chunk) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range chunks {
		d.deleted = append(d.deleted, fmt.Sprintf("chunk %d/%d", c.Blob, c.Num))
	}
	return nil
}

func (d *fakeData) DeleteObjectOn(_ context.Context, owner, bucket, key string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.deleted = append(d.deleted, "object "+owner+"/"+bucket+"/"+key)
	return nil
}

// memBackend is a shared backend that verifies md5 like the real ones.
type memBackend struct {
	objects map[string][]byte
	ctype   string
}

func (b *memBackend) EnsureBucket(context.Context, string) error { return nil }
func (b *memBackend) Put(_ context.Context, bucket, key string, r io.Reader, _ int64, o backend.PutOptions) (backend.ObjectInfo, error) {
	body, err := io.ReadAll(r)
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	if got := md5hex(body); got != o.MD5 {
		return backend.ObjectInfo{}, fmt.Errorf("%w: got %s", backend.ErrChecksum, got)
	}
	b.objects[bucket+"/"+key], b.ctype = body, o.ContentType
	return backend.ObjectInfo{}, nil
}
func (b *memBackend) Delete(_ context.Context, bucket, key string) error {
	delete(b.objects, bucket+"/"+key)
	return nil
}

type fixedRing struct {
	r        *ring.Ring
	replicas int
}

func (f fixedRing) Ring() (*ring.Ring, error) { return f.r, nil }
func (f fixedRing) RingWorkers() (*ring.Ring, map[osprey.NodeID]uint32, error) {
	return f.r, nil, nil
}
func (f fixedRing) Replicas() int { return f.replicas }

func md5hex(b []byte) string {
	s := md5Sum(b)
	return hex.EncodeToString(s[:])
}

func mustRing(t *testing.T, ids ...string) *ring.Ring {
	t.Helper()
	r, err := ring.New(ring.DefaultConfig(), ids)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestTierToSharedBackend(t *testing.T) {
	body := []byte("the staged bytes")
	tests := []struct {
		name    string
		md5     string
		wantCmd fsm.CommandType
	}{
		{"verified", md5hex(body), fsm.CmdTierDone},
		{"bytes differ from the declared md5", md5hex([]byte("other")), fsm.CmdTierFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := &memBackend{objects: map[string][]byte{}}
			st := contents{5: {ID: 5, MD5: tt.md5, Size: int64(len(body)), State: fsm.ContentStaged, Bucket: "img", Key: "a.png"}}
			h := tasks.NewTier(tasks.TierConfig{Logger: testLogger(t), ID: "n1", State: st, Data: &fakeData{staged: body}, Objects: be,
				Placement: fixedRing{mustRing(t, "n1"), 1}})
			comp, err := h.Run(context.Background(), fsm.Task{ID: 9, Type: fsm.TaskTier, Target: "5"})
			if err != nil {
				t.Fatal(err)
			}
			if comp == nil || comp.Type != tt.wantCmd {
				t.Fatalf("completion %+v, want %s", comp, tt.wantCmd)
			}
			if tt.wantCmd == fsm.CmdTierDone {
				done := comp.Payload.(fsm.TierDone)
				if done.Location.Bucket != "img" || done.Location.Key != "a.png" || len(done.Location.Nodes) != 0 || done.TaskID != 9 {
					t.Fatalf("done %+v", done)
				}
				// The SHA-256 (dedup key) comes from the same pass.
				if sum := sha256.Sum256(body); done.SHA256 != hex.EncodeToString(sum[:]) {
					t.Fatalf("tier done sha256 %q", done.SHA256)
				}
				if !bytes.Equal(be.objects["img/a.png"], body) || be.ctype != "image/png" {
					t.Fatalf("backend holds %q (%s)", be.objects["img/a.png"], be.ctype)
				}
			} else if len(be.objects) != 0 {
				t.Fatal("a mismatching object became visible")
			}
		})
	}
}

func TestTierToLocalBackendsCopiesToReplicas(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 100_000)
	data := &fakeData{staged: body, objects: map[string][]byte{}}
	st := contents{5: {ID: 5, MD5: md5hex(body), Size: int64(len(body)), State: fsm.ContentStaged, Bucket: "b", Key: "k"}}
	h := tasks.NewTier(tasks.TierConfig{Logger: testLogger(t), ID: "n1", LocalBackend: true, State: st, Data: data,
		Placement: fixedRing{mustRing(t, "n1", "n2", "n3"), 2}})
	comp, err := h.Run(context.Background(), fsm.Task{ID: 1, Target: "5"})
	if err != nil {
		t.Fatal(err)
	}
	nodes := comp.Payload.(fsm.TierDone).Location.Nodes
	if sum := sha256.Sum256(body); comp.Payload.(fsm.TierDone).SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatal("tier done carries no sha256 of the copied bytes")
	}
	if len(nodes) != 2 || len(data.objects) != 2 {
		t.Fatalf("nodes %v objects %d, want 2 copies", nodes, len(data.objects))
	}
	for _, n := range nodes {
		if !bytes.Equal(data.objects[string(n)+"/b/k"], body) {
			t.Fatalf("copy on %s differs", n)
		}
	}
	// One copy failing fails the task (retried), nothing is recorded.
	data.PutErrFn = func(owner string) error {
		if owner == string(nodes[1]) {
			return osprey.ErrUnavailable
		}
		return nil
	}
	if _, err := h.Run(context.Background(), fsm.Task{ID: 1, Target: "5"}); !errors.Is(err, osprey.ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	// A copy whose client closed the body unread (an owner that refuses
	// connections) is named with its own error, not the copy loop's
	// "read/write on closed pipe".
	data.PutErrFn = nil
	data.DialErrFn = func(owner string) error {
		if owner == string(nodes[1]) {
			return fmt.Errorf("%w: dial tcp: connection refused", osprey.ErrUnavailable)
		}
		return nil
	}
	_, err = h.Run(context.Background(), fsm.Task{ID: 1, Target: "5"})
	if !errors.Is(err, osprey.ErrUnavailable) || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), string(nodes[1])) {
		t.Fatalf("err = %v, want the failed copy's own error naming %s", err, nodes[1])
	}
}

func TestTierSkipsContentNoLongerStaged(t *testing.T) {
	h := tasks.NewTier(tasks.TierConfig{Logger: testLogger(t), ID: "n1", State: contents{5: {ID: 5, State: fsm.ContentTiered}}, Data: &fakeData{},
		Objects: &memBackend{}, Placement: fixedRing{mustRing(t, "n1"), 1}})
	for _, target := range []string{"5", "6"} {
		if comp, err := h.Run(context.Background(), fsm.Task{Target: target}); comp != nil || err != nil {
			t.Fatalf("target %s: %v %v", target, comp, err)
		}
	}
	if _, err := h.Run(context.Background(), fsm.Task{Target: "not-a-uid"}); err == nil {
		t.Fatal("a bad target was accepted")
	}
}

type nodes map[osprey.NodeID]fsm.Node

func (n nodes) Node(id osprey.NodeID) (fsm.Node, bool) { v, ok := n[id]; return v, ok }

func TestDeleteRemovesChunksAndLiveCopies(t *testing.T) {
	data := &fakeData{}
	h := tasks.NewDelete(tasks.DeleteConfig{State: nodes{"n1": {ID: "n1"}, "n2": {ID: "n2", Removed: true}}, Data: data, Objects: &memBackend{}})
	p, _ := json.Marshal(fsm.DeletePayload{Content: fsm.Content{ID: 3, Chunks: []fsm.Chunk{{Blob: 3, Num: 1}},
		Location: &fsm.Location{Bucket: "b", Key: "k", Nodes: []osprey.NodeID{"n1", "n2"}}}})
	if _, err := h.Run(context.Background(), fsm.Task{Payload: p}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(data.deleted)
	if len(data.deleted) != 2 || data.deleted[0] != "chunk 3/1" || data.deleted[1] != "object n1/b/k" {
		t.Fatalf("deleted %v (a removed member's copy went with it)", data.deleted)
	}
}

func TestWebhookSignsDelivery(t *testing.T) {
	secret := []byte("hooksecret")
	var got struct {
		sig, event, delivery string
		body                 []byte
	}
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.sig, got.event, got.delivery = r.Header.Get("X-Osprey-Signature"), r.Header.Get("X-Osprey-Event"), r.Header.Get("X-Osprey-Delivery")
		got.body, _ = io.ReadAll(r.Body)
		w.WriteHeader(status)
	}))
	defer srv.Close()
	h := tasks.NewWebhook(srv.URL, secret, srv.Client())
	payload, _ := json.Marshal(fsm.WebhookPayload{Event: "file.tiered", UID: 42, MD5: "abc"})
	if _, err := h.Run(context.Background(), fsm.Task{ID: 77, Payload: payload}); err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, secret)
	m.Write(got.body)
	if got.sig != "sha256="+hex.EncodeToString(m.Sum(nil)) || got.event != "file.tiered" || got.delivery != "77" {
		t.Fatalf("delivery %+v", got)
	}
	status = http.StatusBadGateway
	if _, err := h.Run(context.Background(), fsm.Task{ID: 78, Payload: payload}); err == nil {
		t.Fatal("a 502 answer counted as delivered")
	}
	if _, err := h.Run(context.Background(), fsm.Task{ID: 79, Payload: []byte("{")}); err == nil {
		t.Fatal("a bad payload was delivered")
	}
}

func md5Sum(b []byte) [16]byte { return md5.Sum(b) }

// leveled is a State whose members run the given feature levels.
type leveled struct {
	contents
	levels []uint32
}

func (l leveled) Nodes() []fsm.Node {
	var out []fsm.Node
	for i, lv := range l.levels {
		out = append(out, fsm.Node{ID: osprey.NodeID(fmt.Sprint("n", i+1)), Level: lv})
	}
	return out
}

// TestTierKeepsSumsAtLevel3: the tier pass asks the FSM to keep the
// chunks' sums only once every member's build keeps them (several chunks
// at level 3, one chunk too at level 4).
func TestTierKeepsSumsAtLevel3(t *testing.T) {
	body := []byte("the staged bytes")
	for _, tt := range []struct {
		levels  []uint32
		want    bool
		wantOne bool
	}{
		{[]uint32{fsm.FeatureLevelOneSum, fsm.FeatureLevelOneSum}, true, true},
		{[]uint32{fsm.FeatureLevelOneSum, fsm.FeatureLevelSums}, true, false},
		{[]uint32{fsm.FeatureLevelSums, fsm.FeatureLevelSums}, true, false},
		{[]uint32{fsm.FeatureLevelSums, fsm.FeatureLevelWorkers}, false, false},
	} {
		st := leveled{contents{5: {ID: 5, MD5: md5hex(body), Size: int64(len(body)), State: fsm.ContentStaged, Bucket: "img", Key: "a.png"}}, tt.levels}
		h := tasks.NewTier(tasks.TierConfig{Logger: testLogger(t), ID: "n1", State: st, Data: &fakeData{staged: body},
			Objects: &memBackend{objects: map[string][]byte{}}, Placement: fixedRing{mustRing(t, "n1"), 1}})
		comp, err := h.Run(context.Background(), fsm.Task{ID: 9, Type: fsm.TaskTier, Target: "5"})
		if err != nil {
			t.Fatal(err)
		}
		if d := comp.Payload.(fsm.TierDone); d.KeepSums != tt.want || d.KeepOneSum != tt.wantOne {
			t.Fatalf("levels %v: KeepSums %v KeepOneSum %v, want %v %v", tt.levels, d.KeepSums, d.KeepOneSum, tt.want, tt.wantOne)
		}
	}
}
