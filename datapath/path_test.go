package datapath_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/backend/local"
	"github.com/osprey-storage/osprey/chunkstore"
	"github.com/osprey-storage/osprey/datapath"
	"github.com/osprey-storage/osprey/erasure"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
	"github.com/osprey-storage/osprey/ring"
)

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// recordComplete makes the fake proposer apply FileComplete the way the
// FSM does: the file becomes complete with its own content.
func (w *world) recordComplete() {
	w.prop.ApplyFn = func(t fsm.CommandType, payload any) (any, error) {
		if t != fsm.CmdFileComplete {
			return nil, nil
		}
		fc := payload.(fsm.FileComplete)
		w.state.mu.Lock()
		defer w.state.mu.Unlock()
		f := w.state.files[fc.UID]
		f.State, f.Size, f.MD5, f.Content = fsm.StateComplete, fc.Size, fc.MD5, fc.UID
		w.state.files[fc.UID] = f
		w.state.contents[fc.UID] = fsm.Content{ID: fc.UID, MD5: fc.MD5, Size: fc.Size, State: fsm.ContentStaged, Chunks: fc.Chunks, SHA256: fc.SHA256}
		return fsm.CompleteResult{File: f}, nil
	}
}

func (w *world) download(t *testing.T, uid osprey.UID) []byte {
	t.Helper()
	obj, err := w.path.Open(context.Background(), uid)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := obj.Reader(context.Background(), 0, obj.Size)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUploadStoresReplicasThenRecords(t *testing.T) {
	w := mustWorld(t, []string{"n1", "n2", "n3"}, 2, erasure.Policy{})
	w.recordComplete()
	w.addFile(1)
	body := randomBytes(5<<19, 1) // 2.5 pieces of 1 MiB
	info, err := w.path.Upload(context.Background(), 1, bytes.NewReader(body), int64(len(body)), md5hex(body))
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(body)) || info.State != string(fsm.StateComplete) {
		t.Fatalf("info %+v", info)
	}
	ct, _ := w.state.Content(1)
	if len(ct.Chunks) != 3 {
		t.Fatalf("%d chunks, want 3", len(ct.Chunks))
	}
	for _, ch := range ct.Chunks {
		if len(ch.Owners) != 2 {
			t.Fatalf("chunk %d has owners %v, want 2", ch.Num, ch.Owners)
		}
		for _, o := range ch.Owners {
			if !w.peers.stores[string(o)].has(key2(ch)) {
				t.Fatalf("chunk %d is recorded on %s but not stored there", ch.Num, o)
			}
		}
	}
	if w.copies() != 6 {
		t.Fatalf("%d copies stored, want 6", w.copies())
	}
	if got := w.download(t, 1); !bytes.Equal(got, body) {
		t.Fatal("downloaded bytes differ")
	}
	// The SHA-256 (dedup key) was hashed in the same pass as the md5.
	if sum := sha256.Sum256(body); ct.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("recorded sha256 %q", ct.SHA256)
	}
}

// TestUploadNamesOwnersWorkers: once every member is at
// fsm.FeatureLevelWorkers (the placement gives worker ids) each recorded
// copy carries its owner's worker id as the ring saw it (fsm.Chunk.Workers,
// so the FSM can tell a copy written to an incarnation that is gone); a
// cluster below that level gets none. Replicated and erasure-coded.
func TestUploadNamesOwnersWorkers(t *testing.T) {
	all := map[osprey.NodeID]uint32{"n1": 0, "n2": 5, "n3": 9, "n4": 11}
	for _, tc := range []struct {
		name    string
		workers map[osprey.NodeID]uint32
		ec      erasure.Policy
	}{
		{"replicas", all, erasure.Policy{}},
		{"replicas, below the level", nil, erasure.Policy{}},
		{"erasure-coded", all, erasure.Policy{K: 2, M: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := mustWorld(t, []string{"n1", "n2", "n3", "n4"}, 2, tc.ec, func(c *datapath.Config) {
				p := c.Placement.(fixedPlacement)
				p.workers = tc.workers
				c.Placement = p
			})
			w.recordComplete()
			w.addFile(1)
			body := randomBytes(5<<19, 3)
			if _, err := w.path.Upload(context.Background(), 1, bytes.NewReader(body), int64(len(body)), md5hex(body)); err != nil {
				t.Fatal(err)
			}
			ct, _ := w.state.Content(1)
			if len(ct.Chunks) != 3 {
				t.Fatalf("%d chunks", len(ct.Chunks))
			}
			for _, ch := range ct.Chunks {
				if tc.workers == nil {
					if ch.Workers != nil {
						t.Fatalf("chunk %d: workers %v below the level", ch.Num, ch.Workers)
					}
					continue
				}
				if len(ch.Workers) != len(ch.Owners) {
					t.Fatalf("chunk %d: workers %v for owners %v", ch.Num, ch.Workers, ch.Owners)
				}
				for i, o := range ch.Owners {
					if ch.Workers[i] != tc.workers[o] {
						t.Fatalf("chunk %d: owner %s worker %d, want %d", ch.Num, o, ch.Workers[i], tc.workers[o])
					}
				}
			}
		})
	}
}

func key2(ch fsm.Chunk) chunkstore.Key { return chunkstore.Key{UID: ch.Blob, Chunk: ch.Num} }

func refOf(ch fsm.Chunk) httpapi.ChunkRef { return httpapi.ChunkRef{Blob: ch.Blob, Num: ch.Num} }

func TestUploadMD5MismatchKeepsNothing(t *testing.T) {
	w := mustWorld(t, []string{"n1", "n2", "n3"}, 2, erasure.Policy{})
	w.recordComplete()
	w.addFile(1)
	body := randomBytes(3000, 2)
	_, err := w.path.Upload(context.Background(), 1, bytes.NewReader(body), int64(len(body)), md5hex([]byte("something else")))
	if !errors.Is(err, osprey.ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	for _, c := range w.prop.commands() {
		if c == fsm.CmdFileComplete {
			t.Fatal("a mismatching upload was recorded")
		}
	}
	w.path.Close() // waits for the background cleanup
	if n := w.copies(); n != 0 {
		t.Fatalf("%d unrecorded copies left behind", n)
	}
}

func TestStoreSkipsUnreachableOwner(t *testing.T) {
	w := mustWorld(t, []string{"n1", "n2", "n3"}, 2, erasure.Policy{})
	w.recordComplete()
	w.peers.setDown("n2")
	for uid := osprey.UID(1); uid <= 5; uid++ {
		w.addFile(uid)
		body := randomBytes(1000, uint64(uid))
		if _, err := w.path.Upload(context.Background(), uid, bytes.NewReader(body), int64(len(body)), md5hex(body)); err != nil {
			t.Fatal(err)
		}
		ct, _ := w.state.Content(uid)
		for _, ch := range ct.Chunks {
			if len(ch.Owners) != 2 || ch.Owners[0] == "n2" || ch.Owners[1] == "n2" {
				t.Fatalf("owners %v: want two reachable members", ch.Owners)
			}
		}
	}
	// With two members down, two copies cannot be stored: the upload fails
	// as certainly-not-stored and leaves nothing behind.
	w.peers.setDown("n3")
	w.addFile(9)
	body := randomBytes(1000, 9)
	if _, err := w.path.Upload(context.Background(), 9, bytes.NewReader(body), int64(len(body)), md5hex(body)); !errors.Is(err, osprey.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

// TestStoreHedgesAStalledOwner: a ring owner that takes a copy and never
// answers (paused, or cut off without a refusal) does not hold the upload:
// once the other copy is durable and the stalled one lags well behind, a
// spare copy goes to the next candidate, the stalled call is cancelled,
// and the chunk is recorded on the two that answered.
func TestStoreHedgesAStalledOwner(t *testing.T) {
	w := mustWorld(t, []string{"n1", "n2", "n3"}, 2, erasure.Policy{},
		func(c *datapath.Config) { c.CopyHedgeAfter = 20 * time.Millisecond })
	w.recordComplete()
	w.peers.stalled["n2"] = true
	for uid := osprey.UID(1); uid <= 8; uid++ {
		w.addFile(uid)
		body := randomBytes(1000, uint64(uid))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := w.path.Upload(ctx, uid, bytes.NewReader(body), int64(len(body)), md5hex(body))
		cancel()
		if err != nil {
			t.Fatalf("upload %d with n2 stalled: %v", uid, err)
		}
		ct, _ := w.state.Content(uid)
		for _, ch := range ct.Chunks {
			if len(ch.Owners) != 2 || ch.Owners[0] == "n2" || ch.Owners[1] == "n2" {
				t.Fatalf("owners %v: want the two members that answered", ch.Owners)
			}
		}
	}
	if n := w.copies(); n != 16 {
		t.Fatalf("%d copies stored, want 16 (2 per file)", n)
	}
}

// TestLateCleanupKeepsRebalancedCopy replays the race a chaos run lost an
// acknowledged file to: an upload gives up a ring owner that lags (cut
// off by a partition), records the chunk on the others and sends the
// owner a cleanup delete, which sits in the partitioned connection;
// after the heal, rebalance copies the recorded chunk to that owner (its
// ring owner) and releases the off-ring copy; then the delete arrives.
// It must remove only the upload's own copy, not rebalance's.
func TestLateCleanupKeepsRebalancedCopy(t *testing.T) {
	w := mustWorld(t, []string{"n1", "n2", "n3"}, 2, erasure.Policy{},
		func(c *datapath.Config) { c.CopyHedgeAfter = 20 * time.Millisecond })
	w.recordComplete()
	w.peers.stalled["n2"] = true
	gate := make(chan struct{})
	w.peers.deleteGate["n2"] = gate
	r, err := ring.New(ring.DefaultConfig(), []string{"n1", "n2", "n3"})
	if err != nil {
		t.Fatal(err)
	}
	// Upload until a chunk has n2 among its first two ring owners: its
	// copy there lags, and its cleanup delete is held at the gate.
	var (
		ch   fsm.Chunk
		body []byte
	)
	for uid := osprey.UID(1); ; uid++ {
		if uid > 40 {
			t.Fatal("n2 was not a first ring owner of 40 uploads")
		}
		w.addFile(uid)
		body = randomBytes(1000, uint64(uid))
		if _, err := w.path.Upload(context.Background(), uid, bytes.NewReader(body), int64(len(body)), md5hex(body)); err != nil {
			t.Fatalf("upload %d with n2 stalled: %v", uid, err)
		}
		ct, _ := w.state.Content(uid)
		ch = ct.Chunks[0]
		if slices.Contains(r.Owners(ring.ChunkKey(ch.Blob, ch.Num), 2), "n2") {
			break
		}
	}
	waitFor(t, "the cleanup of n2's copy", func() bool { return w.peers.gated.Load() == 1 })
	// The partition heals; rebalance copies the chunk to n2.
	w.peers.mu.Lock()
	w.peers.stalled["n2"] = false
	w.peers.mu.Unlock()
	if err := w.path.PutChunkOn(context.Background(), "n2", refOf(ch), body, ch.Sum); err != nil {
		t.Fatal(err)
	}
	before := w.peers.deletes.Load()
	close(gate) // the delayed cleanup arrives
	waitFor(t, "the delayed cleanup", func() bool { return w.peers.deletes.Load() > before })
	if !w.peers.stores["n2"].has(key(refOf(ch))) {
		t.Fatal("a late upload cleanup deleted the copy rebalance wrote after it")
	}
	// The copy the upload itself wrote and gave up is still collected.
	n3 := w.peers.stores["n3"]
	k := chunkstore.Key{UID: 1 << 40, Chunk: 1}
	if _, err := n3.PutUpload(context.Background(), k, bytes.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
	if err := w.peers.DeleteChunk(context.Background(), "n3", httpapi.ChunkRef{Blob: k.UID, Num: k.Chunk}, httpapi.CopyUpload, 0); err != nil || n3.has(k) {
		t.Fatalf("upload cleanup of the upload's own copy: %v, still there %v", err, n3.has(k))
	}
}

// TestLateReleaseKeepsLaterMove is the release's version of the race
// above: rebalance releases an off-ring copy on n2 (its record names n2
// no more), the delete is held in the network, the ring flips back and a
// later move writes the chunk to n2 again, and then the old delete
// arrives. It names the generation it checked, so the later copy stays.
func TestLateReleaseKeepsLaterMove(t *testing.T) {
	for _, local := range []bool{false, true} {
		t.Run(map[bool]string{false: "remote", true: "local"}[local], func(t *testing.T) {
			w := mustWorld(t, []string{"n1", "n2", "n3"}, 2, erasure.Policy{})
			owner := "n2"
			if local {
				owner = "n1" // the node running the release holds the copy
			}
			ref := httpapi.ChunkRef{Blob: 77, Num: 1}
			body := randomBytes(1000, 77)
			ctx := context.Background()
			if err := w.path.PutChunkOn(ctx, owner, ref, body, xxhash.Sum64(body)); err != nil {
				t.Fatal(err)
			}
			// Nothing names the copy: it is released, but the delete is
			// held (a remote one at the network gate, a local one by
			// letting the move land between the generation read and
			// the delete, through keep).
			gate := make(chan struct{})
			w.peers.deleteGate[owner] = gate
			released := make(chan error, 1)
			moved := false
			keep := func() bool {
				if local && !moved {
					moved = true
					if err := w.path.PutChunkOn(ctx, owner, ref, body, xxhash.Sum64(body)); err != nil {
						t.Error(err)
					}
				}
				return false
			}
			go func() { released <- w.path.ReleaseCopy(ctx, osprey.NodeID(owner), ref, keep) }()
			if !local {
				waitFor(t, "the release's delete", func() bool { return w.peers.gated.Load() == 1 })
				// The move back lands while the delete is held.
				if err := w.path.PutChunkOn(ctx, owner, ref, body, xxhash.Sum64(body)); err != nil {
					t.Fatal(err)
				}
			}
			close(gate)
			if err := <-released; err != nil {
				t.Fatal(err)
			}
			if !w.peers.stores[owner].has(key(ref)) {
				t.Fatal("a late release deleted the copy a later move wrote")
			}
			// With nothing written since, a release removes the copy,
			// and one of a copy already gone is not an error.
			if err := w.path.ReleaseCopy(ctx, osprey.NodeID(owner), ref, func() bool { return false }); err != nil {
				t.Fatal(err)
			}
			if w.peers.stores[owner].has(key(ref)) {
				t.Fatal("the release kept a copy nothing wrote since")
			}
			if err := w.path.ReleaseCopy(ctx, osprey.NodeID(owner), ref, func() bool { return false }); err != nil {
				t.Fatalf("release of a copy already gone: %v", err)
			}
			// keep, asked after the generation was read, can still save it.
			if err := w.path.PutChunkOn(ctx, owner, ref, body, xxhash.Sum64(body)); err != nil {
				t.Fatal(err)
			}
			if err := w.path.ReleaseCopy(ctx, osprey.NodeID(owner), ref, func() bool { return true }); err != nil || !w.peers.stores[owner].has(key(ref)) {
				t.Fatalf("release that keep refused: %v, copy there %v", err, w.peers.stores[owner].has(key(ref)))
			}
		})
	}
}

// TestLateReleaseKeepsLaterObject: the same for an object copy on a
// local-disk backend: a later move writes the object again between the
// release's version read and its delete, which then removes nothing. A
// backend without versions gets the plain delete.
func TestLateReleaseKeepsLaterObject(t *testing.T) {
	cfg := local.DefaultConfig()
	cfg.Dir, cfg.Logger = t.TempDir(), slog.New(slog.DiscardHandler)
	lb, err := local.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := mustWorld(t, []string{"n1", "n2"}, 2, erasure.Policy{}, func(c *datapath.Config) { c.Objects = lb })
	ctx := context.Background()
	body := randomBytes(5000, 5)
	put := func() {
		t.Helper()
		if err := w.path.PutObjectOn(ctx, "n1", "doc", "5.pdf", bytes.NewReader(body), int64(len(body)), md5hex(body)); err != nil {
			t.Fatal(err)
		}
	}
	present := func() bool {
		_, err := lb.Stat(ctx, "doc", "5.pdf")
		return err == nil
	}
	put()
	moved := false
	err = w.path.ReleaseObject(ctx, "n1", "doc", "5.pdf", func() bool {
		if !moved {
			moved = true
			put() // the move back lands after the version was read
		}
		return false
	})
	if err != nil || !present() {
		t.Fatalf("late release: %v; later object there %v", err, present())
	}
	if err := w.path.ReleaseObject(ctx, "n1", "doc", "5.pdf", func() bool { return false }); err != nil || present() {
		t.Fatalf("release with nothing written since: %v; still there %v", err, present())
	}
	if err := w.path.ReleaseObject(ctx, "n1", "doc", "5.pdf", func() bool { return false }); err != nil {
		t.Fatalf("release of an object already gone: %v", err)
	}
	if _, err := w.path.LocalObjectVersion(ctx, "doc", "5.pdf"); !errors.Is(err, osprey.ErrNotFound) {
		t.Fatalf("version of a missing object: %v", err)
	}
	// A backend without versions: the version read says so.
	w2 := mustWorld(t, []string{"n1"}, 1, erasure.Policy{})
	if _, err := w2.path.LocalObjectVersion(ctx, "doc", "5.pdf"); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("version on a backend without them: %v", err)
	}
	if err := w2.path.DeleteLocalObject(ctx, "doc", "5.pdf", "1-2"); !errors.Is(err, osprey.ErrInvalid) {
		t.Fatalf("versioned delete on a backend without versions: %v", err)
	}
}

// TestLocalCopiesSyncWithLog: with the Raft log in the chunk store's
// Pebble instance, only this node's own one-block upload copies skip
// their sync while it leads (the log append that records them syncs
// them; a follower syncs its copy alongside the other owners); copies
// sent to other owners, and copies other nodes send here, sync as always.
func TestLocalCopiesSyncWithLog(t *testing.T) {
	for _, tc := range []struct{ on, follower bool }{{false, false}, {true, false}, {true, true}} {
		on := tc.on && !tc.follower // a follower syncs its copy as it stores it
		w := mustWorld(t, []string{"n1", "n2"}, 2, erasure.Policy{},
			func(c *datapath.Config) { c.LocalCopiesSyncWithLog = tc.on })
		w.prop.follower.Store(tc.follower)
		w.recordComplete()
		w.addFile(1)
		body := randomBytes(1000, 1)
		if _, err := w.path.Upload(context.Background(), 1, bytes.NewReader(body), int64(len(body)), md5hex(body)); err != nil {
			t.Fatal(err)
		}
		want := int64(0)
		if on {
			want = 1
		}
		if got := w.peers.stores["n1"].nosync.Load(); got != want {
			t.Fatalf("%+v: %d unsynced local copies, want %d", tc, got, want)
		}
		if got := w.peers.stores["n2"].nosync.Load(); got != 0 {
			t.Fatalf("%+v: %d unsynced copies on another node", tc, got)
		}
		// A copy another node sends here is synced.
		ref := httpapi.ChunkRef{Blob: 1 << 40, Num: 1}
		if _, err := w.path.PutLocalChunk(context.Background(), ref, bytes.NewReader(body), int64(len(body)), httpapi.CopyUpload); err != nil {
			t.Fatal(err)
		}
		if got := w.peers.stores["n1"].nosync.Load(); got != want {
			t.Fatalf("%+v: a copy from another node went unsynced", tc)
		}
	}
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestDownloadRereadsAMovedRecord: a replica whose record lags (a member
// that just rejoined) names holders whose copies have since moved: one
// released its copy (404), the other is unreachable. The download reads
// the record again after a read barrier and serves from the holders it
// names now; with the record unchanged it reports the holders' errors.
func TestDownloadRereadsAMovedRecord(t *testing.T) {
	w := mustWorld(t, []string{"n1", "n2", "n3", "n4"}, 2, erasure.Policy{})
	body := randomBytes(5000, 3)
	const bucket, key = "archive", "9.zip"
	w.peers.objects = map[string][]byte{"n4/" + bucket + "/" + key: body}
	w.peers.down["n3"] = true
	stale := fsm.Content{ID: 9, Size: int64(len(body)), State: fsm.ContentTiered,
		Location: &fsm.Location{Bucket: bucket, Key: key, Nodes: []osprey.NodeID{"n2", "n3"}}}
	moved := stale
	moved.Location = &fsm.Location{Bucket: bucket, Key: key, Nodes: []osprey.NodeID{"n3", "n4"}}
	w.state.mu.Lock()
	w.state.files[9] = fsm.File{UID: 9, Name: key, State: fsm.StateTiered, Size: int64(len(body)), Content: 9}
	w.state.contents[9] = stale
	w.state.mu.Unlock()
	w.prop.onBarrier = func() { // the replica catches up: the move applies
		w.state.mu.Lock()
		w.state.contents[9] = moved
		w.state.mu.Unlock()
	}
	obj, err := w.path.Open(context.Background(), 9)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := obj.Reader(context.Background(), 0, int64(len(body)))
	if err != nil {
		t.Fatalf("read after the record moved: %v", err)
	}
	got, _ := io.ReadAll(rc)
	_ = rc.Close()
	if !bytes.Equal(got, body) {
		t.Fatalf("read %d bytes, not the file's", len(got))
	}
	if n := w.prop.barriers.Load(); n != 1 {
		t.Fatalf("%d read barriers, want 1", n)
	}
	// Nothing moved: the holders' errors are the answer.
	w.prop.onBarrier = nil
	w.peers.mu.Lock()
	delete(w.peers.objects, "n4/"+bucket+"/"+key)
	w.peers.mu.Unlock()
	if _, err := obj.Reader(context.Background(), 0, int64(len(body))); !errors.Is(err, osprey.ErrUnavailable) {
		t.Fatalf("no copy anywhere: %v", err)
	}
}

// TestDownloadRereadsMovedStagedCopies: a staged content's copies were
// moved to other members (a rebalance) and the old ones released, but this
// replica's record still names the old owners. The download reads the
// chunks this replica places correctly, fails on the moved one, takes one
// read barrier, and continues from the owners the fresh record names.
func TestDownloadRereadsMovedStagedCopies(t *testing.T) {
	members := []string{"n1", "n2", "n3", "n4"}
	w := mustWorld(t, members, 2, erasure.Policy{})
	w.recordComplete()
	w.addFile(1)
	body := randomBytes(5<<19, 7)
	if _, err := w.path.Upload(context.Background(), 1, bytes.NewReader(body), int64(len(body)), md5hex(body)); err != nil {
		t.Fatal(err)
	}
	moved, _ := w.state.Content(1)
	if len(moved.Chunks) < 2 {
		t.Fatalf("%d chunks, want several", len(moved.Chunks))
	}
	// The stale record names, for the last chunk, the two members that do
	// not hold it (its copies "moved away" from them).
	stale := moved
	stale.Chunks = slices.Clone(moved.Chunks)
	last := &stale.Chunks[len(stale.Chunks)-1]
	var others []osprey.NodeID
	for _, m := range members {
		if !slices.Contains(last.Owners, osprey.NodeID(m)) {
			others = append(others, osprey.NodeID(m))
		}
	}
	last.Owners = others
	w.state.mu.Lock()
	w.state.contents[1] = stale
	w.state.mu.Unlock()
	w.prop.onBarrier = func() {
		w.state.mu.Lock()
		w.state.contents[1] = moved
		w.state.mu.Unlock()
	}
	if got := w.download(t, 1); !bytes.Equal(got, body) {
		t.Fatalf("read %d bytes, not the file's", len(got))
	}
	if n := w.prop.barriers.Load(); n != 1 {
		t.Fatalf("%d read barriers, want 1", n)
	}

	// A range starting inside the moved chunk, read through WriteTo (the
	// download handler's io.Copy).
	w.state.mu.Lock()
	w.state.contents[1] = stale
	w.state.mu.Unlock()
	obj, err := w.path.Open(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	off := int64(len(body)) - last.Size/2
	rc, err := obj.Reader(context.Background(), off, int64(len(body))-off)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, rc); err != nil {
		t.Fatalf("ranged read after the move: %v", err)
	}
	_ = rc.Close()
	if !bytes.Equal(buf.Bytes(), body[off:]) {
		t.Fatal("ranged read returned other bytes")
	}

	// Nothing moved: the owners' errors are the answer, after one barrier.
	w.prop.onBarrier = nil
	w.state.mu.Lock()
	w.state.contents[1] = stale
	w.state.mu.Unlock()
	before := w.prop.barriers.Load()
	obj, err = w.path.Open(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	rc, err = obj.Reader(context.Background(), 0, int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	_ = rc.Close()
	if !errors.Is(err, osprey.ErrUnavailable) {
		t.Fatalf("no copy where the record says: %v", err)
	}
	if n := w.prop.barriers.Load() - before; n != 1 {
		t.Fatalf("%d read barriers, want 1", n)
	}
}
func TestDownloadFallsBackToAnotherCopy(t *testing.T) {
	w := mustWorld(t, []string{"n1", "n2", "n3"}, 2, erasure.Policy{})
	w.recordComplete()
	w.addFile(1)
	body := randomBytes(3<<19, 3)
	if _, err := w.path.Upload(context.Background(), 1, bytes.NewReader(body), int64(len(body)), md5hex(body)); err != nil {
		t.Fatal(err)
	}
	// Lose the first copy of every chunk (the one read first when this
	// node holds it): the reader must resume from the second.
	ct, _ := w.state.Content(1)
	for _, ch := range ct.Chunks {
		if err := w.peers.stores[string(ch.Owners[0])].Delete(context.Background(), key(refOf(ch))); err != nil {
			t.Fatal(err)
		}
	}
	if got := w.download(t, 1); !bytes.Equal(got, body) {
		t.Fatal("downloaded bytes differ after losing copies")
	}
}

func TestUploadChunkResendIsNoop(t *testing.T) {
	w := mustWorld(t, []string{"n1", "n2"}, 2, erasure.Policy{})
	body := []byte("hello chunk")
	w.addFile(1)
	f, _ := w.state.File(1)
	f.Chunks[1] = &fsm.Chunk{Num: 1, Size: int64(len(body)), MD5: md5hex(body)}
	w.state.files[1] = f
	if err := w.path.UploadChunk(context.Background(), 1, 1, bytes.NewReader(body), int64(len(body)), md5hex(body)); err != nil {
		t.Fatal(err)
	}
	if len(w.prop.commands()) != 0 || w.peers.puts.Load() != 0 || w.copies() != 0 {
		t.Fatalf("a re-sent chunk was stored again: commands %v", w.prop.commands())
	}
}

func TestUploadChunkRecordFailure(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		wantKept  int
		wantError error
	}{
		{"not applied: copies collected", osprey.ErrUnavailable, 0, osprey.ErrUnavailable},
		{"outcome unknown: copies kept", osprey.ErrIndeterminate, 2, osprey.ErrIndeterminate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := mustWorld(t, []string{"n1", "n2", "n3"}, 2, erasure.Policy{})
			w.prop.ApplyFn = func(fsm.CommandType, any) (any, error) { return nil, tt.err }
			w.addFile(1)
			body := randomBytes(4096, 4)
			err := w.path.UploadChunk(context.Background(), 1, 1, bytes.NewReader(body), int64(len(body)), md5hex(body))
			if !errors.Is(err, tt.wantError) {
				t.Fatalf("err = %v", err)
			}
			w.path.Close()
			if n := w.copies(); n != tt.wantKept {
				t.Fatalf("%d copies left, want %d", n, tt.wantKept)
			}
		})
	}
}

func TestErasureCodedUploadSurvivesTwoLosses(t *testing.T) {
	w := mustWorld(t, []string{"n1", "n2", "n3", "n4", "n5", "n6"}, 2, erasure.Policy{K: 4, M: 2})
	w.recordComplete()
	w.addFile(1)
	body := randomBytes(200_000, 5)
	if _, err := w.path.Upload(context.Background(), 1, bytes.NewReader(body), int64(len(body)), md5hex(body)); err != nil {
		t.Fatal(err)
	}
	ct, _ := w.state.Content(1)
	ch := ct.Chunks[0]
	if ch.EC == nil || len(ch.EC.Shards) != 6 || w.copies() != 6 {
		t.Fatalf("layout %+v, %d copies", ch.EC, w.copies())
	}
	w.peers.setDown("n2", "n5")
	if got := w.download(t, 1); !bytes.Equal(got, body) {
		t.Fatal("decoded bytes differ")
	}
}

func TestDeleteChunksSkipsRemovedOwners(t *testing.T) {
	w := mustWorld(t, []string{"n1", "n2", "n3"}, 2, erasure.Policy{})
	w.recordComplete()
	w.addFile(1)
	body := randomBytes(1000, 6)
	if _, err := w.path.Upload(context.Background(), 1, bytes.NewReader(body), int64(len(body)), md5hex(body)); err != nil {
		t.Fatal(err)
	}
	ct, _ := w.state.Content(1)
	gone := ct.Chunks[0].Owners[0]
	w.state.nodes[gone] = fsm.Node{ID: gone, Removed: true}
	w.peers.setDown(string(gone)) // a removed member is unreachable too
	if err := w.path.DeleteChunks(context.Background(), ct.Chunks); err != nil {
		t.Fatalf("deleting with a removed owner: %v", err)
	}
	w.peers.down = map[string]bool{}
	if n := w.copies(); n != 1 {
		t.Fatalf("%d copies left, want only the removed member's", n)
	}
}

func TestReadPieceBoundedByBudget(t *testing.T) {
	w := mustWorld(t, []string{"n1"}, 1, erasure.Policy{})
	full := bytes.Repeat([]byte("a"), 8<<20)
	buf, release, err := w.path.ReadPiece(context.Background(), bytes.NewReader(full), 16<<20, 8<<20)
	if err != nil || !bytes.Equal(buf, full) {
		t.Fatalf("read %d bytes, err %v", len(buf), err)
	}
	// The whole budget is held: another reader waits, and gives up as
	// certainly-not-stored when its ctx ends.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, _, err := w.path.ReadPiece(ctx, bytes.NewReader([]byte("x")), 10, 1); !errors.Is(err, osprey.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable while the budget is held", err)
	}
	got := make(chan error, 1)
	go func() {
		_, rel, err := w.path.ReadPiece(context.Background(), bytes.NewReader([]byte("y")), 10, 1)
		if err == nil {
			rel()
		}
		got <- err
	}()
	release()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}

// TestReadPieceTrickleHoldsOnlyWhatArrived: a client that declares a large
// body and then stalls holds the budget for what it sent, not for what it
// declared, so other uploads go on.
func TestReadPieceTrickleHoldsOnlyWhatArrived(t *testing.T) {
	w := mustWorld(t, []string{"n1"}, 1, erasure.Policy{})
	var stalled []*io.PipeWriter
	defer func() {
		for _, pw := range stalled {
			pw.CloseWithError(errors.New("test over"))
		}
	}()
	done := make(chan error, 4)
	for range 4 { // four stalled uploads, each declaring the whole budget
		pr, pw := io.Pipe()
		stalled = append(stalled, pw)
		go func() {
			_, rel, err := w.path.ReadPiece(context.Background(), pr, 8<<20, 8<<20)
			if err == nil {
				rel()
			}
			done <- err
		}()
		if _, err := pw.Write([]byte("abc")); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body := bytes.Repeat([]byte("b"), 2<<20)
	buf, release, err := w.path.ReadPiece(ctx, bytes.NewReader(body), 8<<20, 8<<20)
	if err != nil || len(buf) != len(body) {
		t.Fatalf("an upload behind four stalled ones: %d bytes, %v", len(buf), err)
	}
	release()
	for _, pw := range stalled {
		pw.Close()
	}
	stalled = nil
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// writeCounter counts Write calls (it has no ReadFrom, like a socket
// wrapped by middleware).
type writeCounter struct {
	n, bytes int
}

func (c *writeCounter) Write(p []byte) (int, error) {
	c.n++
	c.bytes += len(p)
	return len(p), nil
}

// TestStagedDownloadWritesLarge: io.Copy of a staged download (what the
// download handler does) writes in chunk-store blocks, not 32 KiB pieces.
func TestStagedDownloadWritesLarge(t *testing.T) {
	w := mustWorld(t, []string{"n1"}, 1, erasure.Policy{})
	w.recordComplete()
	w.addFile(1)
	body := randomBytes(4<<20, 4)
	if _, err := w.path.Upload(context.Background(), 1, bytes.NewReader(body), int64(len(body)), md5hex(body)); err != nil {
		t.Fatal(err)
	}
	obj, err := w.path.Open(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := obj.Reader(context.Background(), 0, obj.Size)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var c writeCounter
	if n, err := io.Copy(&c, rc); err != nil || n != int64(len(body)) {
		t.Fatalf("copy = %d, %v", n, err)
	}
	// 4 MiB in 32 KiB writes would be 128.
	if c.n > 16 {
		t.Fatalf("%d writes for %d bytes, want at most 16", c.n, c.bytes)
	}
	// The tier pass reads through OpenStaged directly.
	ct, _ := w.state.Content(1)
	st := w.path.OpenStaged(context.Background(), ct.Chunks, 0, ct.Size)
	defer st.Close()
	c = writeCounter{}
	if n, err := io.Copy(&c, st); err != nil || n != int64(len(body)) {
		t.Fatalf("staged copy = %d, %v", n, err)
	}
	if c.n > 16 {
		t.Fatalf("OpenStaged: %d writes for %d bytes, want at most 16", c.n, c.bytes)
	}
}

// TestUploadAfterCreateOnLaggingFollower: a node whose FSM has not yet
// applied the file it just created through the leader (a follower learns
// the commit with raft's next append) uploads to it without a read
// barrier, and the leader's FileComplete decides; a uid this node did not
// create still takes the barrier and is not found.
func TestUploadAfterCreateOnLaggingFollower(t *testing.T) {
	w := mustWorld(t, []string{"n1", "n2", "n3"}, 2, erasure.Policy{})
	var completed []osprey.UID
	w.prop.ApplyFn = func(ct fsm.CommandType, payload any) (any, error) {
		switch ct {
		case fsm.CmdFilesCreate:
			return nil, nil // acknowledged by the leader, not applied here yet
		case fsm.CmdFileComplete:
			fc := payload.(fsm.FileComplete)
			completed = append(completed, fc.UID)
			if fc.UID >= 999998 {
				return nil, fmt.Errorf("%w: uid %s not found", osprey.ErrNotFound, fc.UID)
			}
			return fsm.CompleteResult{File: fsm.File{UID: fc.UID, Name: "a.bin", State: fsm.StateComplete, Size: fc.Size, MD5: fc.MD5}}, nil
		}
		return nil, nil
	}
	uids, err := w.path.CreateFiles(context.Background(), []httpapi.NewFile{{Name: "a.bin"}})
	if err != nil {
		t.Fatal(err)
	}
	body := randomBytes(4096, 7)
	info, err := w.path.Upload(context.Background(), uids[0], bytes.NewReader(body), int64(len(body)), md5hex(body))
	if err != nil {
		t.Fatal(err)
	}
	if info.State != string(fsm.StateComplete) || len(completed) != 1 || completed[0] != uids[0] {
		t.Fatalf("info %+v, completed %v", info, completed)
	}
	if n := w.prop.barriers.Load(); n != 0 {
		t.Fatalf("%d read barriers for a file this node created", n)
	}
	// A chunked upload's chunk finds it too.
	if err := w.path.UploadChunk(context.Background(), uids[0], 1, bytes.NewReader(body), int64(len(body)), md5hex(body)); err != nil {
		t.Fatal(err)
	}
	if n := w.prop.barriers.Load(); n != 0 {
		t.Fatalf("%d read barriers for a chunk of a file this node created", n)
	}
	// A small body for a uid this node has not seen (linked through
	// another node) is uploaded without a barrier: the leader's
	// FileComplete decides, here that the uid does not exist, and the
	// copies are collected.
	before := w.copies()
	_, err = w.path.Upload(context.Background(), 999999, bytes.NewReader(body), int64(len(body)), md5hex(body))
	if !errors.Is(err, osprey.ErrNotFound) {
		t.Fatalf("unknown uid: %v", err)
	}
	if n := w.prop.barriers.Load(); n != 0 {
		t.Fatalf("%d read barriers for a small upload of a uid created elsewhere", n)
	}
	if got := completed[len(completed)-1]; got != 999999 {
		t.Fatalf("FileComplete proposed for %v, want the unknown uid", got)
	}
	waitFor(t, "the unknown uid's copies collected", func() bool { return w.copies() == before })
	// A body larger than one piece takes the barrier first, and nothing
	// is stored for a uid that does not exist.
	big := randomBytes(int(2<<20), 8)
	proposed := len(completed)
	_, err = w.path.Upload(context.Background(), 999998, bytes.NewReader(big), int64(len(big)), md5hex(big))
	if !errors.Is(err, osprey.ErrNotFound) {
		t.Fatalf("unknown uid, large body: %v", err)
	}
	if n := w.prop.barriers.Load(); n != 1 {
		t.Fatalf("%d read barriers for a large upload of an unknown uid, want 1", n)
	}
	if len(completed) != proposed || w.copies() != before {
		t.Fatalf("a large body of an unknown uid was stored (%d proposals, %d copies, want %d, %d)",
			len(completed)-proposed, w.copies(), 0, before)
	}
}

// TestChunkStreamsToOwnersWhileSending: a chunk of known size reaches its
// owners while the client is still sending it (issue 13.2): with half the
// body sent, both owners have read that half; the rest then completes the
// chunk, recorded with both owners and the right checksum.
func TestChunkStreamsToOwnersWhileSending(t *testing.T) {
	w := mustWorld(t, []string{"n1", "n2", "n3"}, 2, erasure.Policy{})
	w.addFile(1)
	var rec fsm.ChunkPut
	w.prop.ApplyFn = func(ct fsm.CommandType, payload any) (any, error) {
		if ct == fsm.CmdChunkPut {
			rec = payload.(fsm.ChunkPut)
		}
		return nil, nil
	}
	body := randomBytes(768<<10, 3)
	half := len(body) / 2
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		errc <- w.path.UploadChunk(context.Background(), 1, 1, pr, int64(len(body)), md5hex(body))
	}()
	if _, err := pw.Write(body[:half]); err != nil {
		t.Fatal(err)
	}
	if got := w.waitOwnersRead(2, int64(half)); got < 2 {
		t.Fatalf("with half the chunk sent, %d owners had read it (want 2): copies wait for the whole chunk", got)
	}
	if _, err := pw.Write(body[half:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	ch := rec.Chunk
	if len(ch.Owners) != 2 || ch.Size != int64(len(body)) || ch.MD5 != md5hex(body) || ch.Sum != xxhash.Sum64(body) {
		t.Fatalf("recorded %+v", ch)
	}
	for _, o := range ch.Owners {
		if got := w.peers.stores[string(o)].data[key2(ch)]; !bytes.Equal(got, body) {
			t.Fatalf("copy on %s differs (%d bytes)", o, len(got))
		}
	}
}

// TestStreamedChunkFailureKeepsNothing: a streamed chunk whose md5 does not
// match, or whose body ends short, is refused and the copies its owners
// had written are collected.
func TestStreamedChunkFailureKeepsNothing(t *testing.T) {
	body := randomBytes(512<<10, 4)
	for _, tc := range []struct {
		name string
		send []byte
		md5  string
		want error
	}{
		{"md5 mismatch", body, md5hex(body[1:]), osprey.ErrInvalid},
		{"short body", body[:len(body)-100], md5hex(body), osprey.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := mustWorld(t, []string{"n1", "n2", "n3"}, 2, erasure.Policy{})
			w.addFile(1)
			err := w.path.UploadChunk(context.Background(), 1, 1, bytes.NewReader(tc.send), int64(len(body)), tc.md5)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if cmds := w.prop.commands(); len(cmds) != 0 {
				t.Fatalf("recorded %v", cmds)
			}
			for deadline := time.Now().Add(10 * time.Second); w.copies() != 0; {
				if time.Now().After(deadline) {
					t.Fatalf("%d copies left", w.copies())
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
}

// TestSmallUploadsReserveTheirSize: a single upload of declared size takes
// that much of the buffer budget (and a buffer that size), not a whole
// piece's: sixteen 4 KiB uploads stalled mid-body leave the 8 MiB budget
// free for another, which completes at once. (Taking 1 MiB each, the
// sixteen held the whole budget and every later upload waited.)
func TestSmallUploadsReserveTheirSize(t *testing.T) {
	w := mustWorld(t, []string{"n1"}, 1, erasure.Policy{})
	w.recordComplete()
	body := randomBytes(4096, 9)
	var writers []*io.PipeWriter
	errc := make(chan error, 16)
	consumed := make(chan struct{}, 16)
	for i := range 16 {
		uid := osprey.UID(100 + i)
		w.addFile(uid)
		pr, pw := io.Pipe()
		writers = append(writers, pw)
		go func() {
			_, err := w.path.Upload(context.Background(), uid, pr, int64(len(body)), md5hex(body))
			errc <- err
		}()
		go func() { // then stalls before its end
			if _, err := pw.Write(body[:4000]); err == nil {
				consumed <- struct{}{}
			}
		}()
	}
	// Every stalled upload is reading its body (holding its budget).
	for i := range 16 {
		select {
		case <-consumed:
		case <-time.After(10 * time.Second):
			for _, pw := range writers {
				pw.CloseWithError(errors.New("test over"))
			}
			t.Fatalf("only %d of 16 stalled 4 KiB uploads got buffer budget", i)
		}
	}
	w.addFile(1)
	done := make(chan error, 1)
	go func() {
		_, err := w.path.Upload(context.Background(), 1, bytes.NewReader(body), int64(len(body)), md5hex(body))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		for _, pw := range writers {
			pw.CloseWithError(errors.New("test over"))
		}
		t.Fatal("a 4 KiB upload waited for buffer budget held by sixteen stalled 4 KiB uploads")
	}
	for _, pw := range writers {
		go func() {
			pw.Write(body[4000:])
			pw.Close()
		}()
	}
	for range writers {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

// TestSingleUploadStreamsPieces: a single upload of declared length streams
// each piece to its owners as it arrives (with part of the first piece sent,
// its owners have read it), stores the whole body; one that ends before its
// declared length is refused and keeps nothing.
func TestSingleUploadStreamsPieces(t *testing.T) {
	w := mustWorld(t, []string{"n1", "n2", "n3"}, 2, erasure.Policy{})
	w.recordComplete()
	w.addFile(1)
	body := randomBytes(5<<19, 5) // 2.5 pieces of 1 MiB
	sent := 600 << 10
	pr, pw := io.Pipe()
	type out struct {
		info httpapi.FileInfo
		err  error
	}
	res := make(chan out, 1)
	go func() {
		info, err := w.path.Upload(context.Background(), 1, pr, int64(len(body)), md5hex(body))
		res <- out{info, err}
	}()
	if _, err := pw.Write(body[:sent]); err != nil {
		t.Fatal(err)
	}
	if got := w.waitOwnersRead(2, int64(sent)); got < 2 {
		t.Fatalf("with %d bytes of the first piece sent, %d owners had read them (want 2)", sent, got)
	}
	go func() {
		pw.Write(body[sent:])
		pw.Close()
	}()
	r := <-res
	if r.err != nil || r.info.Size != int64(len(body)) {
		t.Fatalf("upload: %+v %v", r.info, r.err)
	}
	if ct, _ := w.state.Content(1); len(ct.Chunks) != 3 {
		t.Fatalf("%d pieces recorded, want 3", len(ct.Chunks))
	}
	if got := w.download(t, 1); !bytes.Equal(got, body) {
		t.Fatal("downloaded bytes differ")
	}

	w.addFile(2)
	short := body[:3<<19] // 1.5 of 2.5 pieces, then the body ends
	_, err := w.path.Upload(context.Background(), 2, bytes.NewReader(short), int64(len(body)), md5hex(body))
	if !errors.Is(err, osprey.ErrInvalid) {
		t.Fatalf("short body: %v", err)
	}
	before := 6 // the first upload's copies
	for deadline := time.Now().Add(10 * time.Second); w.copies() != before; {
		if time.Now().After(deadline) {
			t.Fatalf("%d copies, want the first upload's %d: the short one's were not collected", w.copies(), before)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestDownloadChecksLocalObjectCopies: a content tiered to the local-disk
// backends of n1 (this node) and n2. n1's copy is checked chunk by chunk
// against the content's sums before its bytes go out; a bad chunk is
// reported (BadObjectCopy, the corrupt-read counter) and the read goes on
// from n2 at the same offset, through Read and through WriteTo alike, so
// the download is the file's bytes. With n2 down too the read fails
// before the bad chunk's first byte.
func TestDownloadChecksLocalObjectCopies(t *testing.T) {
	lb, dir := localBackend(t)
	var reported []osprey.UID
	var mu sync.Mutex
	w := mustWorld(t, []string{"n1", "n2", "n3"}, 2, erasure.Policy{}, func(c *datapath.Config) {
		c.Objects = lb
		c.BadObjectCopy = func(id osprey.UID) {
			mu.Lock()
			defer mu.Unlock()
			reported = append(reported, id)
		}
	})
	ctx := context.Background()
	const bucket, key = "doc", "9.bin"
	body := randomBytes(2500, 9)
	sizes := []int64{1000, 1000, 500}
	var sums []fsm.ChunkSum
	var pos int64
	for _, n := range sizes {
		sums = append(sums, fsm.ChunkSum{Size: n, Sum: xxhash.Sum64(body[pos : pos+n])})
		pos += n
	}
	ct := fsm.Content{ID: 9, Size: int64(len(body)), MD5: md5hex(body), State: fsm.ContentTiered, Sums: sums,
		Location: &fsm.Location{Bucket: bucket, Key: key, Nodes: []osprey.NodeID{"n2", "n1"}}}
	w.state.mu.Lock()
	w.state.files[9] = fsm.File{UID: 9, Name: key, State: fsm.StateTiered, Size: int64(len(body)), Content: 9}
	w.state.contents[9] = ct
	w.state.mu.Unlock()
	w.peers.objects = map[string][]byte{"n2/" + bucket + "/" + key: body}
	file := filepath.Join(dir, bucket, key)
	write := func(b []byte) {
		t.Helper()
		if err := os.WriteFile(file, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.path.PutObjectOn(ctx, "n1", bucket, key, bytes.NewReader(body), int64(len(body)), md5hex(body)); err != nil {
		t.Fatal(err)
	}
	obj, err := w.path.Open(ctx, 9)
	if err != nil {
		t.Fatal(err)
	}
	// read reads [off, off+n) through Read (io.ReadAll) or WriteTo (io.Copy).
	read := func(off, n int64, writeTo bool) ([]byte, error) {
		rc, err := obj.Reader(ctx, off, n)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		if writeTo {
			var buf bytes.Buffer
			_, err := io.Copy(&buf, rc)
			return buf.Bytes(), err
		}
		return io.ReadAll(rc)
	}
	reports := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(reported)
	}
	for _, tc := range []struct {
		name     string
		copy     func() []byte // n1's copy
		off, n   int64
		reported bool
	}{
		{"good copy", func() []byte { return body }, 0, 2500, false},
		{"bad second chunk", func() []byte { b := bytes.Clone(body); b[1500] ^= 1; return b }, 0, 2500, true},
		{"bad first chunk", func() []byte { b := bytes.Clone(body); b[10] ^= 1; return b }, 0, 2500, true},
		{"bad last chunk, range", func() []byte { b := bytes.Clone(body); b[2499] ^= 1; return b }, 1200, 1300, true},
		{"small range on the bad byte", func() []byte { b := bytes.Clone(body); b[1500] ^= 1; return b }, 1490, 20, true},
		{"small range beside the bad byte", func() []byte { b := bytes.Clone(body); b[1500] ^= 1; return b }, 1900, 200, true},
		{"copy cut short", func() []byte { return body[:1800] }, 0, 2500, true},
		{"missing copy", nil, 0, 2500, false},
	} {
		for _, writeTo := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/writeTo=%v", tc.name, writeTo), func(t *testing.T) {
				if tc.copy == nil {
					_ = os.Remove(file)
					defer write(body)
				} else {
					write(tc.copy())
				}
				before := reports()
				got, err := read(tc.off, tc.n, writeTo)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, body[tc.off:tc.off+tc.n]) {
					t.Fatalf("read %d bytes, not the file's", len(got))
				}
				if r := reports() > before; r != tc.reported {
					t.Fatalf("bad copy reported: %v, want %v", r, tc.reported)
				}
			})
		}
	}
	if reported[0] != 9 {
		t.Fatalf("reported content %d, want 9", reported[0])
	}

	// n2 down and n1's third chunk bad: the read stops at the end of the
	// second chunk, with none of the bad chunk's bytes.
	bad := bytes.Clone(body)
	bad[2100] ^= 1
	write(bad)
	w.peers.mu.Lock()
	w.peers.down["n2"] = true
	w.peers.mu.Unlock()
	for _, writeTo := range []bool{false, true} {
		got, err := read(0, 2500, writeTo)
		if !errors.Is(err, osprey.ErrUnavailable) {
			t.Fatalf("writeTo=%v: no good copy: err %v", writeTo, err)
		}
		if !bytes.Equal(got, body[:2000]) {
			t.Fatalf("writeTo=%v: %d bytes went out before the error, want the first 2000", writeTo, len(got))
		}
	}
}

// localBackend is a local-disk backend in a temporary directory.
func localBackend(t *testing.T) (*local.Backend, string) {
	t.Helper()
	cfg := local.DefaultConfig()
	cfg.Dir, cfg.Logger = t.TempDir(), slog.New(slog.DiscardHandler)
	lb, err := local.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return lb, cfg.Dir
}

// TestDownloadMovesOnFromAHolderLostMidRead: a content tiered to n2 and
// n3 (not this node); n2's answer breaks off after 1,500 bytes, and the
// read continues from n3 at that offset.
func TestDownloadMovesOnFromAHolderLostMidRead(t *testing.T) {
	w := mustWorld(t, []string{"n1", "n2", "n3"}, 2, erasure.Policy{})
	const bucket, key = "doc", "7.bin"
	body := randomBytes(4000, 7)
	w.peers.objects = map[string][]byte{"n2/" + bucket + "/" + key: body, "n3/" + bucket + "/" + key: body}
	w.peers.cut = map[string]int64{"n2/" + bucket + "/" + key: 1500}
	w.state.mu.Lock()
	w.state.files[7] = fsm.File{UID: 7, Name: key, State: fsm.StateTiered, Size: int64(len(body)), Content: 7}
	w.state.contents[7] = fsm.Content{ID: 7, Size: int64(len(body)), MD5: md5hex(body), State: fsm.ContentTiered,
		Location: &fsm.Location{Bucket: bucket, Key: key, Nodes: []osprey.NodeID{"n2", "n3"}}}
	w.state.mu.Unlock()
	obj, err := w.path.Open(context.Background(), 7)
	if err != nil {
		t.Fatal(err)
	}
	for _, writeTo := range []bool{false, true} {
		rc, err := obj.Reader(context.Background(), 0, int64(len(body)))
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		if writeTo {
			var buf bytes.Buffer
			_, err = io.Copy(&buf, rc)
			got = buf.Bytes()
		} else {
			got, err = io.ReadAll(rc)
		}
		rc.Close()
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("writeTo=%v: read %d bytes (err %v), want the file's %d", writeTo, len(got), err, len(body))
		}
	}
}

// TestUncheckedObjectReads: with UncheckedObjectReads (--check-reads=false)
// a holder serves its copy as it reads it, trusting its filesystem.
func TestUncheckedObjectReads(t *testing.T) {
	lb, dir := localBackend(t)
	reported := false
	w := mustWorld(t, []string{"n1", "n2"}, 2, erasure.Policy{}, func(c *datapath.Config) {
		c.Objects, c.UncheckedObjectReads = lb, true
		c.BadObjectCopy = func(osprey.UID) { reported = true }
	})
	ctx := context.Background()
	body := randomBytes(3000, 4)
	if err := w.path.PutObjectOn(ctx, "n1", "doc", "4.bin", bytes.NewReader(body), int64(len(body)), md5hex(body)); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(body)
	bad[100] ^= 1
	if err := os.WriteFile(filepath.Join(dir, "doc", "4.bin"), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	w.state.mu.Lock()
	w.state.contents[4] = fsm.Content{ID: 4, Size: int64(len(body)), MD5: md5hex(body), State: fsm.ContentTiered,
		Location: &fsm.Location{Bucket: "doc", Key: "4.bin", Nodes: []osprey.NodeID{"n1", "n2"}}}
	w.state.mu.Unlock()
	rc, err := w.path.GetCheckedObject(ctx, "doc", "4.bin", 4, 0, int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, bad) || reported {
		t.Fatalf("read %d bytes (err %v, the copy's own: %v), reported %v", len(got), err, bytes.Equal(got, bad), reported)
	}
}
