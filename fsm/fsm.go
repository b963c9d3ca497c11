package fsm

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/osprey-storage/osprey"
)

// Result is what Apply returns for every entry. Data is the command's typed
// result; Err is a domain error (*Error) or nil. Both are identical on every
// replica.
type Result struct {
	Data any
	Err  error
}

// FSM is the replicated state machine. It is safe for concurrent use: Apply
// is called by raft on one goroutine, reads come from request handlers.
type FSM struct {
	mu      sync.RWMutex
	s       *state
	applied uint64 // index of the last applied entry
}

var _ raft.FSM = (*FSM)(nil)

// New returns an empty FSM.
func New() *FSM { return &FSM{s: newState()} }

// Apply applies one committed log entry. It panics on an entry it cannot
// decode: skipping it would make this replica diverge from the others.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	t, payload, err := Decode(l.Data)
	if err != nil {
		panic(fmt.Sprintf("fsm: entry %d: %v", l.Index, err))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = l.Index
	data, err := f.s.apply(t, payload)
	return &Result{Data: data, Err: err}
}

func decodeInto[T any](payload []byte) *T {
	v := new(T)
	if len(payload) > 0 {
		if err := json.Unmarshal(payload, v); err != nil {
			panic(fmt.Sprintf("fsm: decode payload %T: %v", v, err))
		}
	}
	return v
}

// apply dispatches one decoded command. It is the only place that knows
// every command type.
func (s *state) apply(t CommandType, payload []byte) (any, error) {
	switch t {
	case CmdNoop:
		return nil, nil
	case CmdInitCluster:
		return s.applyInit(decodeInto[InitCluster](payload))
	case CmdNodeUpsert:
		return s.applyNodeUpsert(decodeInto[NodeUpsert](payload))
	case CmdNodeRemove:
		return s.applyNodeRemove(decodeInto[NodeRemove](payload))
	case CmdFilesCreate:
		return s.applyFilesCreate(decodeInto[FilesCreate](payload))
	case CmdChunkPut:
		return s.applyChunkPut(decodeInto[ChunkPut](payload))
	case CmdFileComplete:
		return s.applyFileComplete(decodeInto[FileComplete](payload))
	case CmdMerge:
		return s.applyMerge(decodeInto[Merge](payload))
	case CmdResume:
		return s.applyResume(decodeInto[Resume](payload))
	case CmdFileDelete:
		return s.applyFileDelete(decodeInto[FileDelete](payload))
	case CmdTaskLease:
		return s.applyTaskLease(decodeInto[TaskLease](payload))
	case CmdTaskFail:
		return s.applyTaskFail(decodeInto[TaskFail](payload))
	case CmdTaskDone:
		return s.applyTaskDone(decodeInto[TaskDone](payload))
	case CmdTierDone:
		return s.applyTierDone(decodeInto[TierDone](payload))
	case CmdTierFailed:
		return s.applyTierFailed(decodeInto[TierFailed](payload))
	case CmdTaskRetry:
		return s.applyTaskRetry(decodeInto[TaskRetry](payload))
	case CmdExpire:
		return s.applyExpire(decodeInto[Expire](payload))
	case CmdSetSettings:
		return s.applySetSettings(decodeInto[SetSettings](payload))
	case CmdChunkMoved:
		return s.applyChunkMoved(decodeInto[ChunkMoved](payload))
	case CmdObjectMoved:
		return s.applyObjectMoved(decodeInto[ObjectMoved](payload))
	case CmdChunkConverted:
		return s.applyChunkConverted(decodeInto[ChunkConverted](payload))
	case CmdNodeDown:
		return s.applyNodeDown(decodeInto[NodeDown](payload))
	case CmdNodeUp:
		return s.applyNodeUp(decodeInto[NodeUp](payload))
	default:
		panic(fmt.Sprintf("fsm: no handler for command %s", t))
	}
}

// Snapshot format (integers big endian):
//
//	v1: magic[8] | version u32 = 1 | JSON state
//	v2: magic[8] | version u32 = 2 | applied index u64 | JSON state
//
// v2 carries the index of the last applied command, so a replica that
// restores a snapshot (at startup or from the leader) reports the index its
// state reflects; read barriers compare it across nodes.
var snapshotMagic = [8]byte{'O', 'S', 'P', 'R', 'S', 'N', 'A', 'P'}

// SnapshotVersion is the snapshot format version written by this build.
// The meaning of a version never changes; Restore also reads version 1.
const SnapshotVersion uint32 = 2

// ErrBadSnapshot is returned by Restore for a stream that is not a snapshot
// of a known format.
var ErrBadSnapshot = errors.New("fsm: bad snapshot")

// Snapshot captures an immutable copy of the state. The copy is the encoded
// form, so Persist only writes bytes and never races with Apply.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var buf bytes.Buffer
	buf.Write(snapshotMagic[:])
	_ = binary.Write(&buf, binary.BigEndian, SnapshotVersion)
	_ = binary.Write(&buf, binary.BigEndian, f.applied)
	if err := json.NewEncoder(&buf).Encode(f.s); err != nil {
		return nil, fmt.Errorf("fsm: encode snapshot: %w", err)
	}
	return &snapshot{data: buf.Bytes()}, nil
}

type snapshot struct{ data []byte }

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.data); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("fsm: persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *snapshot) Release() {}

// Restore replaces the whole state with the snapshot's. The new state is
// decoded aside and swapped in at once, so a failed restore leaves the old
// state untouched. AppliedIndex becomes the snapshot's; a version 1
// snapshot carries none, so the index is left as it was until the next
// Apply.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	s, applied, hasIndex, err := decodeState(bufio.NewReader(rc))
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.s = s
	if hasIndex {
		f.applied = applied
	}
	f.mu.Unlock()
	return nil
}

func decodeState(r io.Reader) (s *state, applied uint64, hasIndex bool, err error) {
	var magic [8]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil || magic != snapshotMagic {
		return nil, 0, false, fmt.Errorf("%w: missing magic", ErrBadSnapshot)
	}
	var v uint32
	if err := binary.Read(r, binary.BigEndian, &v); err != nil {
		return nil, 0, false, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	switch v {
	case 1:
	case 2:
		if err := binary.Read(r, binary.BigEndian, &applied); err != nil {
			return nil, 0, false, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
		}
		hasIndex = true
	default:
		return nil, 0, false, fmt.Errorf("%w: unknown version %d", ErrBadSnapshot, v)
	}
	s = newState()
	if err := json.NewDecoder(r).Decode(s); err != nil {
		return nil, 0, false, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	// JSON null maps decode to nil; keep them usable.
	if s.Nodes == nil {
		s.Nodes = map[osprey.NodeID]*Node{}
	}
	if s.Files == nil {
		s.Files = map[osprey.UID]*File{}
	}
	if s.Contents == nil {
		s.Contents = map[osprey.UID]*Content{}
	}
	if s.MD5Index == nil {
		s.MD5Index = map[string]osprey.UID{}
	}
	if s.Tasks == nil {
		s.Tasks = map[uint64]*Task{}
	}
	s.rebuildTaskOrder()
	return s, applied, hasIndex, nil
}

// Hash returns a hex sha256 of the JSON-encoded state and the index of the
// last applied command. Replicas at the same applied index have the same
// hash (encoding/json writes map keys sorted).
func (f *FSM) Hash() (string, uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := json.Marshal(f.s)
	if err != nil {
		return "", f.applied
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), f.applied
}

// AppliedIndex returns the index of the last entry applied.
func (f *FSM) AppliedIndex() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.applied
}

// ClusterID returns the cluster id, or "" before InitCluster.
func (f *FSM) ClusterID() string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.s.ClusterID
}

// Secret returns a copy of the link-signing secret (nil before InitCluster).
func (f *FSM) Secret() []byte {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return append([]byte(nil), f.s.Secret...)
}

// JoinTokenHash returns the hex sha256 of the cluster's join token.
func (f *FSM) JoinTokenHash() string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.s.JoinTokenHash
}

// Node returns the member record for id.
func (f *FSM) Node(id osprey.NodeID) (Node, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n, ok := f.s.Nodes[id]
	if !ok {
		return Node{}, false
	}
	return *n, true
}

// Nodes returns all member records (removed ones included), sorted by id.
func (f *FSM) Nodes() []Node {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Node, 0, len(f.s.Nodes))
	for _, n := range f.s.Nodes {
		out = append(out, *n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// File returns a copy of uid's record, or false.
func (f *FSM) File(uid osprey.UID) (File, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	x, ok := f.s.Files[uid]
	if !ok {
		return File{}, false
	}
	return x.clone(), true
}

// Content returns a copy of a content record, or false.
func (f *FSM) Content(id osprey.UID) (Content, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	c, ok := f.s.Contents[id]
	if !ok {
		return Content{}, false
	}
	return c.clone(), true
}

// ContentByMD5 returns the complete content with the given md5, or false.
func (f *FSM) ContentByMD5(md5 string) (Content, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	id, ok := f.s.MD5Index[md5]
	if !ok {
		return Content{}, false
	}
	return f.s.Contents[id].clone(), true
}

// Files returns up to limit files with uid > after, in uid order.
func (f *FSM) Files(after osprey.UID, limit int) []File {
	f.mu.RLock()
	defer f.mu.RUnlock()
	uids := make([]osprey.UID, 0, len(f.s.Files))
	for u := range f.s.Files {
		if u > after {
			uids = append(uids, u)
		}
	}
	sort.Slice(uids, func(i, j int) bool { return uids[i] < uids[j] })
	if len(uids) > limit {
		uids = uids[:limit]
	}
	out := make([]File, len(uids))
	for i, u := range uids {
		out[i] = f.s.Files[u].clone()
	}
	return out
}

// Tasks returns all tasks (optionally only those in state), in id order.
func (f *FSM) Tasks(state TaskState) []Task {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Task, 0, len(f.s.Tasks))
	for _, t := range f.s.Tasks {
		if state == "" || t.State == state {
			out = append(out, cloneTask(t))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Task returns one task.
func (f *FSM) Task(id uint64) (Task, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t, ok := f.s.Tasks[id]
	if !ok {
		return Task{}, false
	}
	return cloneTask(t), true
}

// RunnableTasks returns up to limit tasks of the given types that may be
// leased at now (unix ms), oldest first.
func (f *FSM) RunnableTasks(now int64, types map[string]bool, limit int) []Task {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []Task
	for _, id := range f.s.taskOrder {
		t, ok := f.s.Tasks[id]
		if ok && types[t.Type] && t.Runnable(now) {
			out = append(out, cloneTask(t))
			if len(out) == limit {
				break
			}
		}
	}
	return out
}

// Settings returns the cluster-wide settings.
func (f *FSM) Settings() Settings {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.s.Settings
}

// Stats counts files, contents and tasks by state, for metrics.
func (f *FSM) Stats() map[string]int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	m := map[string]int{"files": len(f.s.Files), "contents": len(f.s.Contents)}
	for _, t := range f.s.Tasks {
		m["tasks_"+string(t.State)]++
	}
	for _, c := range f.s.Contents {
		m["contents_"+string(c.State)]++
	}
	return m
}

// HasUploadsBefore reports whether an upload was last touched before t.
func (f *FSM) HasUploadsBefore(t int64) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, x := range f.s.Files {
		if x.State == StateUploading && x.UpdatedAt < t {
			return true
		}
	}
	return false
}
