package datapath_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/backend"
	"github.com/osprey-storage/osprey/chunkstore"
	"github.com/osprey-storage/osprey/datapath"
	"github.com/osprey-storage/osprey/erasure"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
	"github.com/osprey-storage/osprey/ring"
)

// memChunks is an in-memory chunk store.
type memChunks struct {
	mu   sync.Mutex
	data map[chunkstore.Key][]byte
	// upload marks values PutUpload wrote; discarded, keys DeleteUpload
	// cleaned up (chunkstore's semantics, unbounded here).
	upload, discarded map[chunkstore.Key]bool
	// gens holds each value's generation, lastGen the last one given.
	gens    map[chunkstore.Key]uint64
	lastGen uint64
	// nosync counts PutUploadNoSync calls.
	nosync atomic.Int64
	// read counts the bytes Put has read from its bodies so far.
	read atomic.Int64
}

// countingReader counts what is read through it into n.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func newMemChunks() *memChunks {
	return &memChunks{data: map[chunkstore.Key][]byte{}, upload: map[chunkstore.Key]bool{}, discarded: map[chunkstore.Key]bool{},
		gens: map[chunkstore.Key]uint64{}}
}

func (m *memChunks) Put(_ context.Context, k chunkstore.Key, r io.Reader, size int64) (chunkstore.Info, error) {
	return m.put(k, r, size, false)
}

func (m *memChunks) PutUpload(_ context.Context, k chunkstore.Key, r io.Reader, size int64) (chunkstore.Info, error) {
	return m.put(k, r, size, true)
}

// PutUploadNoSync is PutUpload: nothing here is ever lost.
func (m *memChunks) PutUploadNoSync(ctx context.Context, k chunkstore.Key, r io.Reader, size int64) (chunkstore.Info, error) {
	m.nosync.Add(1)
	return m.PutUpload(ctx, k, r, size)
}

func (m *memChunks) put(k chunkstore.Key, r io.Reader, size int64, upload bool) (chunkstore.Info, error) {
	b, err := io.ReadAll(countingReader{r, &m.read})
	if err != nil {
		return chunkstore.Info{}, err
	}
	if size >= 0 && int64(len(b)) != size {
		return chunkstore.Info{}, chunkstore.ErrSizeMismatch
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if upload {
		if m.discarded[k] {
			return chunkstore.Info{}, chunkstore.ErrDiscarded
		}
		if old, ok := m.data[k]; ok {
			return chunkstore.Info{Size: int64(len(old)), Sum: xxhash.Sum64(old)}, nil
		}
	}
	m.data[k] = b
	m.upload[k] = upload
	m.lastGen++
	m.gens[k] = m.lastGen
	return chunkstore.Info{Size: int64(len(b)), Sum: xxhash.Sum64(b)}, nil
}

func (m *memChunks) DeleteUpload(_ context.Context, k chunkstore.Key) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.discarded[k] = true
	if _, ok := m.data[k]; !ok || !m.upload[k] {
		return false, nil
	}
	delete(m.data, k)
	return true, nil
}

func (m *memChunks) Get(_ context.Context, k chunkstore.Key, off, n int64) (io.ReadCloser, chunkstore.Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.data[k]
	if !ok {
		return nil, chunkstore.Info{}, chunkstore.ErrNotFound
	}
	if n < 0 {
		n = int64(len(b)) - off
	}
	return io.NopCloser(bytes.NewReader(b[off : off+n])), chunkstore.Info{Size: int64(len(b)), Sum: xxhash.Sum64(b)}, nil
}

func (m *memChunks) Delete(_ context.Context, k chunkstore.Key) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.data[k]; !ok {
		return chunkstore.ErrNotFound
	}
	delete(m.data, k)
	return nil
}

func (m *memChunks) Gen(_ context.Context, k chunkstore.Key) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.data[k]; !ok {
		return 0, chunkstore.ErrNotFound
	}
	return m.gens[k], nil
}

func (m *memChunks) DeleteGen(_ context.Context, k chunkstore.Key, gen uint64) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.data[k]; !ok || m.gens[k] != gen {
		return false, nil
	}
	delete(m.data, k)
	return true, nil
}

func (m *memChunks) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.data)
}

func (m *memChunks) has(k chunkstore.Key) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.data[k]
	return ok
}

// memPeers is a cluster of in-memory chunk stores reached "remotely";
// members listed in down refuse every call.
type memPeers struct {
	stores map[string]*memChunks
	// objects holds local-backend object copies by "owner/bucket/key";
	// a read of one named in cut fails after that many bytes (a holder
	// lost mid-read).
	objects map[string][]byte
	cut     map[string]int64
	mu      sync.Mutex
	down    map[string]bool
	// stalled members take chunk copies and never answer (a paused or
	// cut-off node): PutChunk returns only when its context ends.
	stalled map[string]bool
	// deleteGate holds deletes sent to a member until the channel is
	// closed (a delete delayed in a partitioned connection).
	deleteGate map[string]chan struct{}
	puts       atomic.Int64
	// gated counts deletes that reached a gate, deletes those that ran.
	gated, deletes atomic.Int64
}

// setDown makes owners unreachable.
func (p *memPeers) setDown(owners ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, o := range owners {
		p.down[o] = true
	}
}

func (p *memPeers) isDown(owner string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.down[owner]
}

func (p *memPeers) store(owner string) (*memChunks, error) {
	s, ok := p.stores[owner]
	if !ok || p.isDown(owner) {
		return nil, fmt.Errorf("%w: %s unreachable", osprey.ErrUnavailable, owner)
	}
	return s, nil
}

func key(ref httpapi.ChunkRef) chunkstore.Key {
	return chunkstore.Key{UID: ref.Blob, Chunk: ref.Num, Shard: ref.Shard}
}

func (p *memPeers) PutChunkStream(ctx context.Context, owner string, ref httpapi.ChunkRef, body io.Reader, size int64, origin httpapi.CopyOrigin) (uint64, error) {
	p.mu.Lock()
	stalled := p.stalled[owner]
	p.mu.Unlock()
	if stalled {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	s, err := p.store(owner)
	if err != nil {
		return 0, err
	}
	p.puts.Add(1)
	put := s.Put
	if origin == httpapi.CopyUpload {
		put = s.PutUpload
	}
	info, err := put(ctx, key(ref), body, size)
	return info.Sum, err
}

func (p *memPeers) ChunkGen(ctx context.Context, owner string, ref httpapi.ChunkRef) (uint64, error) {
	s, err := p.store(owner)
	if err != nil {
		return 0, err
	}
	gen, err := s.Gen(ctx, key(ref))
	if errors.Is(err, chunkstore.ErrNotFound) {
		err = fmt.Errorf("%w: %w", osprey.ErrNotFound, err)
	}
	return gen, err
}

func (p *memPeers) DeleteChunk(ctx context.Context, owner string, ref httpapi.ChunkRef, origin httpapi.CopyOrigin, gen uint64) error {
	p.mu.Lock()
	gate := p.deleteGate[owner]
	p.mu.Unlock()
	if gate != nil {
		p.gated.Add(1)
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s, err := p.store(owner)
	if err != nil {
		return err
	}
	defer p.deletes.Add(1)
	switch {
	case origin == httpapi.CopyUpload:
		_, err := s.DeleteUpload(ctx, key(ref))
		return err
	case gen != 0:
		_, err := s.DeleteGen(ctx, key(ref), gen)
		return err
	}
	return s.Delete(ctx, key(ref))
}

func (p *memPeers) OpenChunk(ctx context.Context, owner string, ref httpapi.ChunkRef, off, length int64) (io.ReadCloser, error) {
	s, err := p.store(owner)
	if err != nil {
		return nil, err
	}
	rc, _, err := s.Get(ctx, key(ref), off, length)
	return rc, err
}

func (p *memPeers) PutObject(context.Context, string, string, string, io.Reader, int64, string) error {
	return errors.New("not used")
}

// OpenObject serves objects[owner/bucket/key]; a missing one is
// ErrNotFound, as an owner answers for a released copy. It checks nothing
// (the owner's checks are GetCheckedObject's, tested on their own).
func (p *memPeers) OpenObject(_ context.Context, owner, bucket, key string, _ osprey.UID, off, length int64) (io.ReadCloser, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down[owner] {
		return nil, fmt.Errorf("%w: %s is down", osprey.ErrUnavailable, owner)
	}
	b, ok := p.objects[owner+"/"+bucket+"/"+key]
	if !ok {
		return nil, fmt.Errorf("%w: object %s/%s on %s", osprey.ErrNotFound, bucket, key, owner)
	}
	var r io.Reader = bytes.NewReader(b[off : off+length])
	if n, ok := p.cut[owner+"/"+bucket+"/"+key]; ok {
		r = io.MultiReader(io.LimitReader(r, max(n-off, 0)), iotest.ErrReader(io.ErrUnexpectedEOF))
	}
	return io.NopCloser(r), nil
}
func (p *memPeers) DeleteObject(context.Context, string, string, string, string) error {
	return errors.New("not used")
}
func (p *memPeers) ObjectVersion(context.Context, string, string, string) (string, error) {
	return "", errors.New("not used")
}

// fakeState is an in-memory FSM view.
type fakeState struct {
	mu       sync.Mutex
	files    map[osprey.UID]fsm.File
	contents map[osprey.UID]fsm.Content
	nodes    map[osprey.NodeID]fsm.Node
}

func (s *fakeState) File(uid osprey.UID) (fsm.File, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.files[uid]
	return f, ok
}
func (s *fakeState) Files(osprey.UID, int) []fsm.File { return nil }
func (s *fakeState) Content(id osprey.UID) (fsm.Content, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.contents[id]
	return c, ok
}
func (s *fakeState) ContentByMD5(string, string) (fsm.Content, bool) { return fsm.Content{}, false }
func (s *fakeState) DedupTarget(string, string, int64, string) (fsm.Content, bool) {
	return fsm.Content{}, false
}
func (s *fakeState) Node(id osprey.NodeID) (fsm.Node, bool) {
	n, ok := s.nodes[id]
	return n, ok
}
func (s *fakeState) ObjectKeyOf(osprey.UID) (string, string, bool) { return "", "", false }
func (s *fakeState) Secret() []byte                                { return []byte("secret") }

// fakeProposer records commands and answers through ApplyFn.
type fakeProposer struct {
	mu       sync.Mutex
	applied  []fsm.CommandType
	barriers atomic.Int32
	follower atomic.Bool
	// onBarrier, if set, runs at each ReadBarrier (this replica catching up).
	onBarrier func()
	ApplyFn   func(t fsm.CommandType, payload any) (any, error)
}

func (p *fakeProposer) Apply(_ context.Context, t fsm.CommandType, payload, out any) error {
	p.mu.Lock()
	p.applied = append(p.applied, t)
	p.mu.Unlock()
	res, err := p.ApplyFn(t, payload)
	if err != nil || out == nil || res == nil {
		return err
	}
	b, _ := json.Marshal(res) // the real proposer decodes a JSON result too
	return json.Unmarshal(b, out)
}

func (p *fakeProposer) ReadBarrier(context.Context) error {
	p.barriers.Add(1)
	if p.onBarrier != nil {
		p.onBarrier()
	}
	return nil
}

// IsLeader: the fake leads unless follower is set.
func (p *fakeProposer) IsLeader() bool { return !p.follower.Load() }

func (p *fakeProposer) commands() []fsm.CommandType {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]fsm.CommandType(nil), p.applied...)
}

// counterUIDs mints increasing uids.
type counterUIDs struct{ n atomic.Uint64 }

func (c *counterUIDs) NextUID() (osprey.UID, error) { return osprey.UID(c.n.Add(1) + 1000), nil }

// fixedPlacement is an in-memory placement over a fixed member list.
type fixedPlacement struct {
	r        *ring.Ring
	replicas int
	ec       erasure.Policy
	workers  map[osprey.NodeID]uint32 // nil: a cluster below fsm.FeatureLevelWorkers
}

func (p fixedPlacement) Ring() (*ring.Ring, error) { return p.r, nil }
func (p fixedPlacement) RingWorkers() (*ring.Ring, map[osprey.NodeID]uint32, error) {
	return p.r, p.workers, nil
}
func (p fixedPlacement) Replicas() int      { return p.replicas }
func (p fixedPlacement) ECEnabled() bool    { return p.ec.K > 0 }
func (p fixedPlacement) ECFits() bool       { return p.r.Len() >= p.ec.K+p.ec.M }
func (p fixedPlacement) EC() erasure.Policy { return p.ec }

// noObjects is a backend the tests never reach.
type noObjects struct{}

func (noObjects) EnsureBucket(context.Context, string) error { return errors.New("no backend") }
func (noObjects) Put(context.Context, string, string, io.Reader, int64, backend.PutOptions) (backend.ObjectInfo, error) {
	return backend.ObjectInfo{}, errors.New("no backend")
}
func (noObjects) Get(context.Context, string, string, int64, int64) (io.ReadCloser, error) {
	return nil, errors.New("no backend")
}
func (noObjects) Delete(context.Context, string, string) error { return errors.New("no backend") }

// memObjects is a local-disk backend in memory: Get serves a
// *bytes.Reader (with WriteTo, as a local file's reader has).
type memObjects struct {
	noObjects
	mu   sync.Mutex
	objs map[string][]byte // by bucket/key
	gets atomic.Int64
}

func (o *memObjects) set(bucket, key string, b []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.objs[bucket+"/"+key] = bytes.Clone(b)
}

func (o *memObjects) Get(_ context.Context, bucket, key string, off, length int64) (io.ReadCloser, error) {
	o.gets.Add(1)
	o.mu.Lock()
	defer o.mu.Unlock()
	b, ok := o.objs[bucket+"/"+key]
	if !ok {
		return nil, fmt.Errorf("%s/%s: %w", bucket, key, backend.ErrNotFound)
	}
	if off > int64(len(b)) {
		return nil, fmt.Errorf("%s/%s: offset %d past the end", bucket, key, off)
	}
	// A file shorter than its record reads short, as a section would.
	end := min(off+length, int64(len(b)))
	return io.NopCloser(bytes.NewReader(b[off:end])), nil
}

// world is one data path ("n1") in a fake cluster of members.
type world struct {
	path  *datapath.Path
	state *fakeState
	prop  *fakeProposer
	peers *memPeers
}

func mustWorld(t testing.TB, members []string, replicas int, ec erasure.Policy, opts ...func(*datapath.Config)) *world {
	t.Helper()
	r, err := ring.New(ring.DefaultConfig(), members)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{
		state: &fakeState{files: map[osprey.UID]fsm.File{}, contents: map[osprey.UID]fsm.Content{}, nodes: map[osprey.NodeID]fsm.Node{}},
		peers: &memPeers{stores: map[string]*memChunks{}, down: map[string]bool{}, stalled: map[string]bool{}, deleteGate: map[string]chan struct{}{}},
		prop:  &fakeProposer{ApplyFn: func(fsm.CommandType, any) (any, error) { return nil, nil }},
	}
	for _, m := range members {
		w.peers.stores[m] = newMemChunks()
		w.state.nodes[osprey.NodeID(m)] = fsm.Node{ID: osprey.NodeID(m), HTTPAddr: m + ":80"}
	}
	limits := httpapi.DefaultLimits()
	limits.MaxChunkSize = 1 << 20
	cfg := datapath.Config{ID: "n1", Limits: limits, BufferBudget: 8 << 20, State: w.state, Proposer: w.prop,
		UIDs: &counterUIDs{}, Placement: fixedPlacement{r: r, replicas: replicas, ec: ec}, Peers: w.peers,
		Chunks: w.peers.stores["n1"], Objects: noObjects{}}
	for _, o := range opts {
		o(&cfg)
	}
	w.path, err = datapath.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.path.Close() })
	return w
}

// waitOwnersRead polls (10 s at most) until want members' chunk stores
// have read at least n bytes of their bodies, and returns how many have.
func (w *world) waitOwnersRead(want int, n int64) int {
	count := func() (owners int) {
		for _, s := range w.peers.stores {
			if s.read.Load() >= n {
				owners++
			}
		}
		return owners
	}
	for deadline := time.Now().Add(10 * time.Second); count() < want && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	return count()
}

// addFile records an uploading file.
func (w *world) addFile(uid osprey.UID) {
	w.state.mu.Lock()
	defer w.state.mu.Unlock()
	w.state.files[uid] = fsm.File{UID: uid, Name: "f.bin", State: fsm.StateUploading, Chunks: map[uint32]*fsm.Chunk{}}
}

// copies counts stored copies across all members.
func (w *world) copies() int {
	n := 0
	for _, s := range w.peers.stores {
		n += s.len()
	}
	return n
}
