package fsm

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/osprey-storage/osprey"
)

// clusterMeta is the FSM's singleton record: cluster identity, id counters
// and settings. It is small and kept decoded in memory.
type clusterMeta struct {
	ClusterID     string   `json:"cluster_id"`
	Secret        []byte   `json:"secret"`
	JoinTokenHash string   `json:"join_token_hash"`
	CreatedAt     int64    `json:"created_at"`
	NextWorkerID  uint32   `json:"next_worker_id"`
	NextTaskID    uint64   `json:"next_task_id"`
	Settings      Settings `json:"settings"`
	// Rebalance is the rebalance progress (rebalance.go); absent until
	// the first plan.
	Rebalance *RebalanceProgress `json:"rebalance,omitempty"`
	// OpenGC is the gc task tiered contents add their staged chunks to
	// (see collectTiered); 0 if none was opened yet.
	OpenGC uint64 `json:"open_gc,omitempty"`
}

// counters are maintained by every write, so metrics never scan.
type counters struct {
	Files        int64                  `json:"files"`
	Contents     int64                  `json:"contents"`
	ContentBytes int64                  `json:"content_bytes"`
	Tasks        map[TaskState]int64    `json:"tasks,omitempty"`
	ContentState map[ContentState]int64 `json:"content_state,omitempty"`
	// ObjectHolders counts contents by the number of members holding their
	// local-backend object (contents without such copies are not counted).
	ObjectHolders map[int]int64 `json:"object_holders,omitempty"`
	// S3 namespace: buckets, bound keys and multipart uploads in progress.
	Buckets          int64 `json:"buckets,omitempty"`
	Objects          int64 `json:"objects,omitempty"`
	MultipartUploads int64 `json:"multipart_uploads,omitempty"`
	// Live counts the tasks in the runnable index (pending or leased) by
	// type. It is derived and kept in memory only: install counts it from
	// the index (liveTasks), so stores of earlier builds need nothing new.
	// A runner whose types have none skips its scan of the index, which
	// holds every other type's backlog.
	Live map[string]int64 `json:"-"`
}

func (c counters) clone() counters {
	out := c
	out.Tasks = make(map[TaskState]int64, len(c.Tasks))
	for k, v := range c.Tasks {
		out.Tasks[k] = v
	}
	out.ContentState = make(map[ContentState]int64, len(c.ContentState))
	for k, v := range c.ContentState {
		out.ContentState[k] = v
	}
	out.ObjectHolders = make(map[int]int64, len(c.ObjectHolders))
	for k, v := range c.ObjectHolders {
		out.ObjectHolders[k] = v
	}
	out.Live = maps.Clone(c.Live)
	if out.Live == nil {
		out.Live = map[string]int64{}
	}
	return out
}

// live adds d to the live count of typ, dropping a count that reaches 0.
func (c *counters) live(typ string, d int64) {
	if c.Live[typ] += d; c.Live[typ] == 0 {
		delete(c.Live, typ)
	}
}

// stateHash is an order-independent digest of every replicated key and
// value: the lane-wise sum (mod 2^64) of sha256(key, value) over all of
// them. A write subtracts the old pair's digest and adds the new one's, so
// the hash is maintained in O(1) per write and equal on replicas holding
// the same keys and values, however they got there.
type stateHash [4]uint64

func pairDigest(k, v []byte) stateHash {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(k)))])
	h.Write(k)
	h.Write(v)
	var sum [32]byte
	h.Sum(sum[:0])
	var d stateHash
	for i := range d {
		d[i] = binary.BigEndian.Uint64(sum[i*8:])
	}
	return d
}

func (s *stateHash) add(k, v []byte) {
	d := pairDigest(k, v)
	for i := range s {
		s[i] += d[i]
	}
}

func (s *stateHash) sub(k, v []byte) {
	d := pairDigest(k, v)
	for i := range s {
		s[i] -= d[i]
	}
}

func (s stateHash) String() string {
	var b [32]byte
	for i, v := range s {
		binary.BigEndian.PutUint64(b[i*8:], v)
	}
	return fmt.Sprintf("%x", b)
}

// hashed reports whether a key is part of the replicated state hash: the
// primary records (cluster record, members, files, upload chunks,
// contents, the md5 index, tasks, S3 buckets, bindings and multipart
// uploads, API keys). Secondary indexes, the applied index,
// counters and the hash itself are derived from them (tests rebuild and
// compare them: checkIndexes), so writing one needs no read of its old
// value.
func hashed(k []byte) bool {
	if len(k) < 2 {
		return true
	}
	switch k[1] {
	case tMeta:
		return string(k[2:]) == metaCluster
	case tRunnable, tDead, tUploadAge, tOwner, tStaged, tBucketCnt, tS3Ref:
		return false
	}
	return true
}

// tx is the working set of one Apply: an indexed batch (reads see its own
// writes) plus the in-memory singletons it may change. Nothing reaches the
// database until commit; a failed command's tx is discarded.
type tx struct {
	b    *pebble.Batch // writes; nil in a read-only view
	r    reader        // reads: the indexed batch b, or the DB for a read-only view
	meta clusterMeta
	cnt  counters
	hash stateHash
	// minRunnable is the earliest due time this tx put into the runnable
	// index (maxTimeID if none); see scanHint.
	minRunnable timeID
	// minUpload is the same for the upload-age index.
	minUpload timeID
	// uploadFrom is a lower bound of the live keys in the upload-age
	// index (FSM.upload.hint), where Expire starts its scan.
	uploadFrom timeID
	// cache holds the primary records this tx read or wrote (nil value:
	// absent), so a record read, changed and written back costs one read
	// of the store.
	cache map[string][]byte
	// gc remembers the open gc task's payload across entries (see gcJoin);
	// nil outside Apply.
	gc *gcJoin
	// nodesChanged is set when the tx writes a member record: commit
	// reloads FSM.nodes.
	nodesChanged bool
	// members is FSM.nodes as the tx began (sorted by id; nil: not
	// known): node reads it, not the store, until the tx writes a member.
	members []Node
}

// get returns the value of k (a copy, not to be modified), or nil.
func (t *tx) get(k []byte) []byte {
	if v, ok := t.cache[string(k)]; ok {
		return v
	}
	v := t.load(k)
	if t.cache != nil {
		t.cache[string(k)] = v
	}
	return v
}

func (t *tx) load(k []byte) []byte {
	v, closer, err := t.r.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil
	}
	if err != nil {
		panic(fmt.Sprintf("fsm: read %x: %v", k, err))
	}
	out := append([]byte{}, v...)
	_ = closer.Close()
	return out
}

func (t *tx) set(k, v []byte) {
	if hashed(k) {
		if old := t.get(k); old != nil {
			t.hash.sub(k, old)
		}
		t.hash.add(k, v)
	}
	if t.cache != nil {
		t.cache[string(k)] = v
	}
	if err := t.b.Set(k, v, nil); err != nil {
		panic(fmt.Sprintf("fsm: write %x: %v", k, err))
	}
}

func (t *tx) del(k []byte) {
	if hashed(k) {
		old := t.get(k)
		if old == nil {
			return
		}
		t.hash.sub(k, old)
	}
	if t.cache != nil {
		t.cache[string(k)] = nil
	}
	if err := t.b.Delete(k, nil); err != nil {
		panic(fmt.Sprintf("fsm: delete %x: %v", k, err))
	}
}

func (t *tx) setJSON(k []byte, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("fsm: encode %T: %v", v, err))
	}
	t.set(k, b)
}

func getJSON[T any](t *tx, k []byte) (*T, bool) {
	b := t.get(k)
	if b == nil {
		return nil, false
	}
	return decodeJSON[T](k, b), true
}

// decodeJSON decodes the record b stored at k.
func decodeJSON[T any](k, b []byte) *T {
	v := new(T)
	if err := json.Unmarshal(b, v); err != nil {
		panic(fmt.Sprintf("fsm: decode %T at %x: %v", v, k, err))
	}
	return v
}

// scan calls fn for every key in [lo, hi) in order, reading through the
// batch; fn's slices are valid only during the call. fn returns false to
// stop.
func (t *tx) scan(lo, hi []byte, fn func(k, v []byte) bool) {
	it, err := t.r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		panic(fmt.Sprintf("fsm: iterate: %v", err))
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if !fn(it.Key(), it.Value()) {
			return
		}
	}
	if err := it.Error(); err != nil {
		panic(fmt.Sprintf("fsm: iterate: %v", err))
	}
}

// keys returns copies of the keys in [lo, hi).
func (t *tx) keys(lo, hi []byte) [][]byte {
	var out [][]byte
	t.scan(lo, hi, func(k, _ []byte) bool {
		out = append(out, append([]byte(nil), k...))
		return true
	})
	return out
}

// --- typed records ---

func (t *tx) setMeta() { t.setJSON(metaKey(metaCluster), t.meta) }

func (t *tx) node(id osprey.NodeID) (*Node, bool) {
	if t.members != nil && !t.nodesChanged {
		// Decoded already: every chunk an upload records checks its owners.
		i, ok := slices.BinarySearchFunc(t.members, id, func(n Node, id osprey.NodeID) int { return cmp.Compare(n.ID, id) })
		if !ok {
			return nil, false
		}
		n := t.members[i]
		return &n, true
	}
	return getJSON[Node](t, nodeKey(id))
}

func (t *tx) putNode(n *Node) {
	t.setJSON(nodeKey(n.ID), n)
	t.nodesChanged = true
}

// nodes returns every member record in id order.
func (t *tx) nodes() []Node {
	out := []Node{}
	lo, hi := tableBounds(tNode)
	t.scan(lo, hi, func(_, v []byte) bool {
		var n Node
		if err := json.Unmarshal(v, &n); err != nil {
			panic(fmt.Sprintf("fsm: decode node: %v", err))
		}
		out = append(out, n)
		return true
	})
	return out
}

// file returns uid's record without its upload chunks.
func (t *tx) file(uid osprey.UID) (*File, bool) { return getJSON[File](t, fileKey(uid)) }

// fileWithChunks returns uid's record with its upload chunks.
func (t *tx) fileWithChunks(uid osprey.UID) (*File, bool) {
	f, ok := t.file(uid)
	if ok {
		f.Chunks = t.upChunks(uid)
	}
	return f, ok
}

// putFile writes a file record (its Chunks field is not stored: upload
// chunks have keys of their own) and keeps the upload-age index and the
// counters in step.
func (t *tx) putFile(f *File) {
	old, existed := t.file(f.UID)
	if existed && old.State == StateUploading {
		t.del(uploadAgeKey(old.UpdatedAt, old.UID))
	}
	if !existed {
		t.cnt.Files++
	}
	if f.State == StateUploading {
		t.set(uploadAgeKey(f.UpdatedAt, f.UID), nil)
		t.minUpload = t.minUpload.min(timeID{f.UpdatedAt, uint64(f.UID)})
	}
	rec := *f
	rec.Chunks = nil
	t.setJSON(fileKey(f.UID), &rec)
}

// deleteFile removes uid's record and its upload chunks, and the S3
// binding or multipart upload naming it, so every way a file goes (delete,
// expiry, an overwriting bind) keeps the S3 indexes in step.
func (t *tx) deleteFile(uid osprey.UID) {
	old, ok := t.file(uid)
	if !ok {
		return
	}
	t.dropS3Ref(uid)
	if old.State == StateUploading {
		t.del(uploadAgeKey(old.UpdatedAt, uid))
	}
	t.deleteUpChunks(uid, nil)
	t.del(fileKey(uid))
	t.cnt.Files--
}

// upChunks returns uid's upload chunks by number (nil if none).
func (t *tx) upChunks(uid osprey.UID) map[uint32]*Chunk {
	var out map[uint32]*Chunk
	lo, hi := prefixBounds(upChunkPrefix(uid))
	t.scan(lo, hi, func(k, v []byte) bool {
		ch := new(Chunk)
		if err := json.Unmarshal(v, ch); err != nil {
			panic(fmt.Sprintf("fsm: decode chunk at %x: %v", k, err))
		}
		if out == nil {
			out = map[uint32]*Chunk{}
		}
		out[ch.Num] = ch
		return true
	})
	return out
}

func (t *tx) upChunk(uid osprey.UID, num uint32) (*Chunk, bool) {
	return getJSON[Chunk](t, upChunkKey(uid, num))
}

// putUpChunk writes an upload chunk and its owner-index entries.
func (t *tx) putUpChunk(uid osprey.UID, ch *Chunk) {
	ref := ownerRef{kind: refUpload, id: uint64(uid), n: ch.Num}
	var old []osprey.NodeID
	if o, ok := t.upChunk(uid, ch.Num); ok {
		old = chunkHolders(o)
	}
	t.reindexOwners(ref, old, chunkHolders(ch))
	t.setJSON(upChunkKey(uid, ch.Num), ch)
}

// deleteUpChunks deletes uid's upload chunks; chunks is what upChunks
// returned for it in this tx (nil: read them).
func (t *tx) deleteUpChunks(uid osprey.UID, chunks map[uint32]*Chunk) {
	if chunks == nil {
		chunks = t.upChunks(uid)
	}
	for num, ch := range chunks {
		t.reindexOwners(ownerRef{kind: refUpload, id: uint64(uid), n: num}, chunkHolders(ch), nil)
		t.del(upChunkKey(uid, num))
	}
}

func (t *tx) content(id osprey.UID) (*Content, bool) { return getJSON[Content](t, contentKey(id)) }

// putContent writes a content record and keeps the owner index, the staged
// index and the counters in step.
func (t *tx) putContent(ct *Content) {
	old, existed := t.content(ct.ID)
	t.reindexContent(old, ct)
	if existed {
		t.cnt.ContentState[old.State]--
		t.cnt.ContentBytes -= old.Size
		t.countHolders(old, -1)
	} else {
		t.cnt.Contents++
	}
	t.cnt.ContentState[ct.State]++
	t.cnt.ContentBytes += ct.Size
	t.countHolders(ct, 1)
	if len(ct.Chunks) > 0 {
		t.set(stagedKey(ct.ID), nil)
	} else if existed && len(old.Chunks) > 0 {
		t.del(stagedKey(ct.ID))
	}
	t.setJSON(contentKey(ct.ID), ct)
}

func (t *tx) deleteContent(id osprey.UID) {
	old, ok := t.content(id)
	if !ok {
		return
	}
	t.reindexContent(old, nil)
	t.cnt.Contents--
	t.cnt.ContentState[old.State]--
	t.cnt.ContentBytes -= old.Size
	t.countHolders(old, -1)
	t.del(stagedKey(id))
	t.del(contentKey(id))
}

func (t *tx) countHolders(ct *Content, d int64) {
	if ct.Location == nil || len(ct.Location.Nodes) == 0 {
		return
	}
	n := len(ct.Location.Nodes)
	t.cnt.ObjectHolders[n] += d
	if t.cnt.ObjectHolders[n] == 0 {
		delete(t.cnt.ObjectHolders, n)
	}
}

func (t *tx) reindexContent(old, cur *Content) {
	var id osprey.UID
	var oldChunks, newChunks []Chunk
	var oldLoc, newLoc []osprey.NodeID
	if old != nil {
		id, oldChunks = old.ID, old.Chunks
		if old.Location != nil {
			oldLoc = old.Location.Nodes
		}
	}
	if cur != nil {
		id, newChunks = cur.ID, cur.Chunks
		if cur.Location != nil {
			newLoc = cur.Location.Nodes
		}
	}
	for i := 0; i < max(len(oldChunks), len(newChunks)); i++ {
		var o, n []osprey.NodeID
		if i < len(oldChunks) {
			o = chunkHolders(&oldChunks[i])
		}
		if i < len(newChunks) {
			n = chunkHolders(&newChunks[i])
		}
		t.reindexOwners(ownerRef{kind: refContent, id: uint64(id), n: uint32(i)}, o, n)
	}
	t.reindexOwners(ownerRef{kind: refContent, id: uint64(id), n: refObject}, oldLoc, newLoc)
}

// reindexOwners replaces ref's owner-index entries for old holders by
// entries for cur.
func (t *tx) reindexOwners(ref ownerRef, old, cur []osprey.NodeID) {
	for _, o := range old {
		if !hasOwner(cur, o) {
			t.del(ref.key(o))
		}
	}
	for _, o := range cur {
		if !hasOwner(old, o) {
			t.set(ref.key(o), nil)
		}
	}
}

// chunkHolders lists every member holding a copy or shard of ch.
func chunkHolders(ch *Chunk) []osprey.NodeID {
	out := make([]osprey.NodeID, 0, len(ch.Owners))
	for _, o := range ch.Owners {
		if o != "" && !hasOwner(out, o) {
			out = append(out, o)
		}
	}
	if ch.EC != nil {
		for _, sh := range ch.EC.Shards {
			if sh.Owner != "" && !hasOwner(out, sh.Owner) {
				out = append(out, sh.Owner)
			}
		}
	}
	return out
}

func (t *tx) task(id uint64) (*Task, bool) { return getJSON[Task](t, taskKey(id)) }

// taskType reads task id's record and returns its type, and the task if
// it had to be decoded to learn the type (see peekTaskType); decode
// returns the task either way without reading the record again. ok is
// false when there is no such task.
func (t *tx) taskType(id uint64) (typ string, decode func() *Task, ok bool) {
	k := taskKey(id)
	raw := t.get(k)
	if raw == nil {
		return "", nil, false
	}
	if typ, ok := peekTaskType(raw); ok {
		return typ, func() *Task { return decodeJSON[Task](k, raw) }, true
	}
	tk := decodeJSON[Task](k, raw)
	return tk.Type, func() *Task { return tk }, true
}

// taskDue is where a task sits in the runnable index, or false when it is
// in none (dead).
func taskDue(tk *Task) (int64, bool) {
	switch tk.State {
	case TaskPending:
		return tk.NextAttempt, true
	case TaskLeased:
		return tk.LeaseExpiry, true
	}
	return 0, false
}

func (t *tx) unindexTask(tk *Task) {
	if due, ok := taskDue(tk); ok {
		t.del(runnableKey(due, tk.ID))
		t.cnt.live(tk.Type, -1)
	}
	if tk.State == TaskDead {
		t.del(deadKey(tk.ID))
	}
	t.cnt.Tasks[tk.State]--
}

func (t *tx) putTask(tk *Task) {
	old, _ := t.task(tk.ID)
	t.replaceTask(old, tk)
}

// replaceTask writes tk over old, its stored record (nil if none), which
// the caller read before changing a copy of it: putTask without reading
// the record again (the open gc task's is tens of KiB).
func (t *tx) replaceTask(old, tk *Task) {
	if old != nil {
		t.unindexTask(old)
	}
	if due, ok := taskDue(tk); ok {
		t.set(runnableKey(due, tk.ID), nil)
		t.minRunnable = t.minRunnable.min(timeID{due, tk.ID})
		t.cnt.live(tk.Type, 1)
	}
	if tk.State == TaskDead {
		t.set(deadKey(tk.ID), nil)
	}
	t.cnt.Tasks[tk.State]++
	t.setJSON(taskKey(tk.ID), tk)
}

func (t *tx) deleteTask(id uint64) {
	old, ok := t.task(id)
	if !ok {
		return
	}
	t.unindexTask(old)
	t.del(taskKey(id))
}

// --- reading the committed state ---

// reader is the read side used by accessors: a pebble.Reader (the DB or a
// point-in-time snapshot).
type reader interface {
	Get(key []byte) ([]byte, io.Closer, error)
	NewIter(o *pebble.IterOptions) (*pebble.Iterator, error)
}

func readJSON[T any](r reader, k []byte) (*T, bool, error) {
	b, closer, err := r.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("fsm: read: %w", err)
	}
	defer closer.Close()
	v := new(T)
	if err := json.Unmarshal(b, v); err != nil {
		return nil, false, fmt.Errorf("fsm: decode %T: %w", v, err)
	}
	return v, true, nil
}

// iterate calls fn for every key in [lo, hi); fn returns false to stop.
func iterate(r reader, lo, hi []byte, fn func(k, v []byte) (bool, error)) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("fsm: iterate: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		more, err := fn(it.Key(), it.Value())
		if err != nil {
			_ = it.Close()
			return err
		}
		if !more {
			break
		}
	}
	if err := it.Error(); err != nil {
		_ = it.Close()
		return fmt.Errorf("fsm: iterate: %w", err)
	}
	return it.Close()
}

func readUpChunks(r reader, uid osprey.UID) (map[uint32]*Chunk, error) {
	var out map[uint32]*Chunk
	lo, hi := prefixBounds(upChunkPrefix(uid))
	err := iterate(r, lo, hi, func(k, v []byte) (bool, error) {
		ch := new(Chunk)
		if err := json.Unmarshal(v, ch); err != nil {
			return false, fmt.Errorf("fsm: decode chunk: %w", err)
		}
		if out == nil {
			out = map[uint32]*Chunk{}
		}
		out[ch.Num] = ch
		return true, nil
	})
	return out, err
}

// mustDecode decodes a stored JSON value; a value that does not decode is
// a corrupt store, which no replica can recover from by itself.
func mustDecode[T any](v []byte) *T {
	out := new(T)
	if err := json.Unmarshal(v, out); err != nil {
		panic(fmt.Sprintf("fsm: decode %T: %v", out, err))
	}
	return out
}
