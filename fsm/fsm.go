package fsm

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/cockroachdb/errors/oserror"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
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

// Config configures the FSM's metadata store.
type Config struct {
	// Dir is the directory of the metadata store (<data-dir>/meta); it is
	// created if missing.
	Dir string
	// FS is the filesystem; nil means the operating system's. Tests use
	// vfs.NewMem().
	FS vfs.FS
	// CacheSize is the Pebble block cache in bytes. Memory use is bounded
	// by it and MemTableSize, not by the number of files.
	CacheSize int64
	// MemTableSize is the size of one Pebble memtable in bytes.
	MemTableSize uint64
	// SnapshotRate paces snapshot and backup streams to this many bytes
	// of records per second (0 = as fast as the CPU allows), so that
	// compressing a large state does not take the CPU requests need.
	SnapshotRate int64
	// Logger receives Pebble's log lines; nil means slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the defaults for a metadata store in dir.
func DefaultConfig(dir string) Config {
	return Config{Dir: dir, CacheSize: 32 << 20, MemTableSize: 8 << 20, SnapshotRate: 64 << 20}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("fsm: Dir is required")
	case c.CacheSize < 1<<20:
		return fmt.Errorf("fsm: CacheSize %d is below 1 MiB", c.CacheSize)
	case c.MemTableSize < 1<<20:
		return fmt.Errorf("fsm: MemTableSize %d is below 1 MiB", c.MemTableSize)
	case c.SnapshotRate < 0:
		return fmt.Errorf("fsm: SnapshotRate %d is negative", c.SnapshotRate)
	}
	return nil
}

// handle is one open generation of the metadata store. Readers that
// outlive the FSM lock (snapshots, scans) hold a reference, so Restore
// closes a replaced generation only once they are done.
type handle struct {
	db   *pebble.DB
	dir  string
	refs sync.WaitGroup
}

// FSM is the replicated state machine. Its state lives in a Pebble instance
// of its own; memory use is bounded by the configured caches, independent
// of the number of files. It is safe for concurrent use: raft calls Apply,
// Snapshot and Restore from one goroutine, reads come from request handlers.
type FSM struct {
	cfg   Config
	fs    vfs.FS
	log   *slog.Logger
	cache *pebble.Cache

	// mu guards the fields below. Apply holds it only to commit a batch and
	// publish the in-memory singletons, so readers see both together.
	mu      sync.RWMutex
	h       *handle
	gen     uint64 // generation of h (its directory is db-<gen>)
	applied uint64 // index of the last applied entry
	meta    clusterMeta
	cnt     counters
	hash    stateHash
	closed  bool
	// run and upload are scan hints for the runnable and upload-age
	// indexes (see scanHint).
	run, upload scanHint
	// nodes holds the member records, sorted by id (never modified in
	// place: a change installs a new slice). Members are few and read on
	// every upload (the placement ring), so they are kept decoded.
	nodes []Node

	// gcJoin is touched only by Apply (raft calls it from one goroutine).
	gcJoin gcJoin
}

var _ raft.FSM = (*FSM)(nil)

// ErrClosed is returned by operations on a closed FSM.
var ErrClosed = errors.New("fsm: closed")

// New returns an empty FSM on an in-memory filesystem, for tests and
// tools. It panics if the store cannot be opened, which on an in-memory
// filesystem only a bug can cause.
func New() *FSM {
	cfg := DefaultConfig("meta")
	cfg.FS = vfs.NewMem()
	cfg.CacheSize, cfg.MemTableSize, cfg.SnapshotRate = 4<<20, 4<<20, 0
	f, err := Open(cfg)
	if err != nil {
		panic(fmt.Sprintf("fsm: open in-memory store: %v", err))
	}
	return f
}

// Open opens (or creates) the metadata store in cfg.Dir. The state it
// holds is exactly the prefix of the log up to AppliedIndex(). The caller
// MUST call Close.
func Open(cfg Config) (*FSM, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f := &FSM{cfg: cfg, fs: cfg.FS, log: cfg.Logger}
	if f.fs == nil {
		f.fs = vfs.Default
	}
	if f.log == nil {
		f.log = slog.Default()
	}
	f.log = f.log.With("component", "fsm")
	if err := f.fs.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("fsm: create %s: %w", cfg.Dir, err)
	}
	gen, err := f.readCurrent()
	if err != nil {
		return nil, err
	}
	fresh := gen == 0
	if fresh {
		gen = 1
	}
	f.cache = pebble.NewCache(cfg.CacheSize)
	h, err := f.openGen(gen)
	if err != nil {
		f.cache.Unref()
		return nil, err
	}
	if fresh {
		if err := f.writeCurrent(gen); err != nil {
			_ = h.db.Close()
			f.cache.Unref()
			return nil, err
		}
	}
	f.removeOtherGens(gen)
	if err := f.install(h, gen); err != nil {
		_ = h.db.Close()
		f.cache.Unref()
		return nil, err
	}
	if err := f.migrateDedupIndex(); err != nil {
		_ = h.db.Close()
		f.cache.Unref()
		return nil, err
	}
	return f, nil
}

func (f *FSM) genDir(gen uint64) string { return filepath.Join(f.cfg.Dir, fmt.Sprintf("db-%06d", gen)) }

// readCurrent returns the generation named by CURRENT, or 0 for a new
// store.
func (f *FSM) readCurrent() (uint64, error) {
	file, err := f.fs.Open(filepath.Join(f.cfg.Dir, "CURRENT"))
	if err != nil {
		if isNotExist(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("fsm: read CURRENT: %w", err)
	}
	defer file.Close()
	b, err := io.ReadAll(io.LimitReader(file, 64))
	if err != nil {
		return 0, fmt.Errorf("fsm: read CURRENT: %w", err)
	}
	var gen uint64
	if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "db-%d", &gen); err != nil || gen == 0 {
		return 0, fmt.Errorf("fsm: CURRENT holds %q, want db-<generation>", b)
	}
	return gen, nil
}

func isNotExist(err error) bool { return oserror.IsNotExist(err) }

// pebbleLogger routes Pebble's log lines to slog at their own level.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "source", "pebble")
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...), "source", "pebble")
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...), "source", "pebble")
	panic(fmt.Sprintf("fsm: pebble: "+format, args...))
}

// writeCurrent points CURRENT at gen atomically: write a temporary file,
// sync it, rename it over CURRENT and sync the directory.
func (f *FSM) writeCurrent(gen uint64) error {
	tmp := filepath.Join(f.cfg.Dir, "CURRENT.tmp")
	file, err := f.fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("fsm: write CURRENT: %w", err)
	}
	if _, err := fmt.Fprintf(file, "db-%06d\n", gen); err != nil {
		_ = file.Close()
		return fmt.Errorf("fsm: write CURRENT: %w", err)
	}
	if err := file.Sync(); err != nil {
		_ = file.Close()
		return fmt.Errorf("fsm: sync CURRENT: %w", err)
	}
	if err := file.Close(); err != nil {
		return fmt.Errorf("fsm: write CURRENT: %w", err)
	}
	if err := f.fs.Rename(tmp, filepath.Join(f.cfg.Dir, "CURRENT")); err != nil {
		return fmt.Errorf("fsm: rename CURRENT: %w", err)
	}
	dir, err := f.fs.OpenDir(f.cfg.Dir)
	if err != nil {
		return fmt.Errorf("fsm: sync %s: %w", f.cfg.Dir, err)
	}
	defer dir.Close()
	if err := dir.Sync(); err != nil {
		return fmt.Errorf("fsm: sync %s: %w", f.cfg.Dir, err)
	}
	return nil
}

// removeOtherGens deletes generations other than gen: leftovers of a
// restore that failed or was cut short.
func (f *FSM) removeOtherGens(gen uint64) {
	names, err := f.fs.List(f.cfg.Dir)
	if err != nil {
		return
	}
	keep := filepath.Base(f.genDir(gen))
	for _, name := range names {
		if strings.HasPrefix(name, "db-") && name != keep {
			if err := f.fs.RemoveAll(filepath.Join(f.cfg.Dir, name)); err != nil {
				f.log.Warn("remove stale metadata generation", "dir", name, "err", err)
			}
		}
	}
}

func (f *FSM) pebbleOptions() *pebble.Options {
	o := &pebble.Options{
		FS:                 f.fs,
		Cache:              f.cache,
		MemTableSize:       f.cfg.MemTableSize,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{f.log},
	}
	o.EnsureDefaults()
	for i := range o.Levels {
		// Most reads are point reads, many of keys that do not exist yet
		// (a new uid, a new task): filters keep those off the sstables.
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	return o
}

func (f *FSM) openGen(gen uint64) (*handle, error) {
	dir := f.genDir(gen)
	db, err := pebble.Open(dir, f.pebbleOptions())
	if err != nil {
		return nil, fmt.Errorf("fsm: open metadata store %s: %w", dir, err)
	}
	return &handle{db: db, dir: dir}, nil
}

// install loads the singletons of h and makes it the current generation.
// The caller holds no lock, or (from Restore) none yet.
func (f *FSM) install(h *handle, gen uint64) error {
	var applied uint64
	if b, closer, err := h.db.Get(metaKey(metaApplied)); err == nil {
		applied = binary.BigEndian.Uint64(b)
		_ = closer.Close()
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return fmt.Errorf("fsm: read applied index: %w", err)
	}
	meta, _, err := readJSON[clusterMeta](h.db, metaKey(metaCluster))
	if err != nil {
		return err
	}
	cnt, _, err := readJSON[counters](h.db, metaKey(metaCounters))
	if err != nil {
		return err
	}
	live := liveTasks(h.db)
	nodes := (&tx{r: h.db}).nodes()
	var hash stateHash
	if b, closer, err := h.db.Get(metaKey(metaHash)); err == nil {
		if len(b) != 32 {
			_ = closer.Close()
			return fmt.Errorf("fsm: state hash record of %d bytes", len(b))
		}
		for i := range hash {
			hash[i] = binary.BigEndian.Uint64(b[i*8:])
		}
		_ = closer.Close()
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return fmt.Errorf("fsm: read state hash: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.h, f.gen, f.applied, f.hash, f.nodes = h, gen, applied, hash, nodes
	f.run, f.upload = scanHint{hint: minTimeID}, scanHint{hint: minTimeID}
	f.meta = clusterMeta{}
	if meta != nil {
		f.meta = *meta
	}
	f.cnt = counters{}
	if cnt != nil {
		f.cnt = *cnt
	}
	f.cnt = f.cnt.clone()
	f.cnt.Live = live
	return nil
}

// liveTasks counts the tasks in db's runnable index by type (counters.Live),
// reading each task's type from its record's prefix.
func liveTasks(db *pebble.DB) map[string]int64 {
	live := map[string]int64{}
	t := &tx{r: db}
	t.scan(minTimeID.key(tRunnable), maxTimeID.key(tRunnable), func(k, _ []byte) bool {
		_, id := decodeTimeID(k)
		if typ, _, ok := t.taskType(id); ok {
			live[typ]++
		}
		return true
	})
	return live
}

// Close closes the metadata store. Outstanding snapshots are waited for.
func (f *FSM) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	h := f.h
	f.mu.Unlock()
	h.refs.Wait()
	err := h.db.Close()
	f.cache.Unref()
	if err != nil {
		return fmt.Errorf("fsm: close: %w", err)
	}
	return nil
}

// Apply applies one committed log entry as one Pebble batch that also
// records the entry's index, so the store always holds exactly a prefix of
// the log. An entry at or below the applied index is already in the state
// (raft replays from its last snapshot after a restart that skipped the
// restore) and is ignored. It panics on an entry it cannot decode: skipping
// it would make this replica diverge from the others.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	typ, payload, err := Decode(l.Data)
	if err != nil {
		panic(fmt.Sprintf("fsm: entry %d: %v", l.Index, err))
	}
	f.mu.RLock()
	h, applied, closed := f.h, f.applied, f.closed
	t := &tx{meta: f.meta, cnt: f.cnt.clone(), hash: f.hash, minRunnable: maxTimeID, minUpload: maxTimeID,
		uploadFrom: f.upload.hint, gc: &f.gcJoin, members: f.nodes}
	f.mu.RUnlock()
	if closed {
		panic(fmt.Sprintf("fsm: entry %d applied after Close", l.Index))
	}
	if l.Index <= applied {
		return nil
	}
	t.meta.Secret = append([]byte(nil), t.meta.Secret...)
	t.b = h.db.NewIndexedBatch()
	t.r = t.b
	if typ == CmdBatch {
		t.cache = map[string][]byte{}
		data := t.applyBatch(h.db, l.Index, decodeInto[Batch](payload))
		f.commit(t, l.Index)
		return &Result{Data: data}
	}
	base := *t
	t.cache = map[string][]byte{}
	base.cnt = t.cnt.clone()
	data, derr := t.apply(typ, payload)
	if derr != nil {
		// A failed command changes nothing but the applied index.
		_ = t.b.Close()
		t = &base
		t.b = h.db.NewBatch()
		t.r = h.db
	}
	f.commit(t, l.Index)
	return &Result{Data: data, Err: derr}
}

// commit writes the applied index and derived singletons into t's batch,
// commits it without fsync (the raft log is the durable record: entries
// past the store's applied index are applied again after a crash) and
// publishes the new singletons.
func (f *FSM) commit(t *tx, index uint64) {
	t.seal(index)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := t.b.Commit(pebble.NoSync); err != nil {
		panic(fmt.Sprintf("fsm: commit entry %d: %v", index, err))
	}
	_ = t.b.Close()
	f.applied, f.meta, f.cnt, f.hash = index, t.meta, t.cnt, t.hash
	if t.nodesChanged {
		f.nodes = (&tx{r: f.h.db}).nodes()
	}
	f.run.inserted(t.minRunnable)
	f.upload.inserted(t.minUpload)
}

// seal writes the applied index and the derived singletons into t's batch.
func (t *tx) seal(index uint64) {
	if err := t.b.Set(metaKey(metaApplied), binary.BigEndian.AppendUint64(nil, index), nil); err != nil {
		panic(fmt.Sprintf("fsm: write applied index: %v", err))
	}
	cnt, err := json.Marshal(t.cnt)
	if err != nil {
		panic(fmt.Sprintf("fsm: encode counters: %v", err))
	}
	if err := t.b.Set(metaKey(metaCounters), cnt, nil); err != nil {
		panic(fmt.Sprintf("fsm: write counters: %v", err))
	}
	var hb [32]byte
	for i, v := range t.hash {
		binary.BigEndian.PutUint64(hb[i*8:], v)
	}
	if err := t.b.Set(metaKey(metaHash), hb[:], nil); err != nil {
		panic(fmt.Sprintf("fsm: write state hash: %v", err))
	}
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
func (t *tx) apply(typ CommandType, payload []byte) (any, error) {
	switch typ {
	case CmdNoop:
		return nil, nil
	case CmdInitCluster:
		return t.applyInit(decodeInto[InitCluster](payload))
	case CmdNodeUpsert:
		return t.applyNodeUpsert(decodeInto[NodeUpsert](payload))
	case CmdNodeRemove:
		return t.applyNodeRemove(decodeInto[NodeRemove](payload))
	case CmdFilesCreate:
		return t.applyFilesCreate(decodeInto[FilesCreate](payload))
	case CmdChunkPut:
		return t.applyChunkPut(decodeInto[ChunkPut](payload))
	case CmdFileComplete:
		return t.applyFileComplete(decodeInto[FileComplete](payload))
	case CmdMerge:
		return t.applyMerge(decodeInto[Merge](payload))
	case CmdResume:
		return t.applyResume(decodeInto[Resume](payload))
	case CmdFileDelete:
		return t.applyFileDelete(decodeInto[FileDelete](payload))
	case CmdTaskLease:
		return t.applyTaskLease(decodeInto[TaskLease](payload))
	case CmdTaskFail:
		return t.applyTaskFail(decodeInto[TaskFail](payload))
	case CmdTaskDone:
		return t.applyTaskDone(decodeInto[TaskDone](payload))
	case CmdTierDone:
		return t.applyTierDone(decodeInto[TierDone](payload))
	case CmdTierFailed:
		return t.applyTierFailed(decodeInto[TierFailed](payload))
	case CmdTaskRetry:
		return t.applyTaskRetry(decodeInto[TaskRetry](payload))
	case CmdExpire:
		return t.applyExpire(decodeInto[Expire](payload))
	case CmdSetSettings:
		return t.applySetSettings(decodeInto[SetSettings](payload))
	case CmdChunkMoved:
		return t.applyChunkMoved(decodeInto[ChunkMoved](payload))
	case CmdObjectMoved:
		return t.applyObjectMoved(decodeInto[ObjectMoved](payload))
	case CmdChunkConverted:
		return t.applyChunkConverted(decodeInto[ChunkConverted](payload))
	case CmdNodeDown:
		return t.applyNodeDown(decodeInto[NodeDown](payload))
	case CmdNodeUp:
		return t.applyNodeUp(decodeInto[NodeUp](payload))
	case CmdRestored:
		return t.applyRestored(decodeInto[Restored](payload))
	case CmdBucketCreate:
		return t.applyBucketCreate(decodeInto[BucketCreate](payload))
	case CmdBucketDelete:
		return t.applyBucketDelete(decodeInto[BucketDelete](payload))
	case CmdObjectBind:
		return t.applyObjectBind(decodeInto[ObjectBind](payload))
	case CmdObjectUnbind:
		return t.applyObjectUnbind(decodeInto[ObjectUnbind](payload))
	case CmdMultipartCreate:
		return t.applyMultipartCreate(decodeInto[MultipartCreate](payload))
	case CmdMultipartComplete:
		return t.applyMultipartComplete(decodeInto[MultipartComplete](payload))
	case CmdMultipartAbort:
		return t.applyMultipartAbort(decodeInto[MultipartAbort](payload))
	case CmdObjectPut:
		return t.applyObjectPut(decodeInto[ObjectPut](payload))
	case CmdKeyCreate:
		return t.applyKeyCreate(decodeInto[KeyCreate](payload))
	case CmdKeyRevoke:
		return t.applyKeyRevoke(decodeInto[KeyRevoke](payload))
	case CmdDedupShare:
		return t.applyDedupShare(decodeInto[DedupShare](payload))
	case CmdRebalancePlan:
		return t.applyRebalancePlan(decodeInto[RebalancePlan](payload))
	case CmdRebalanceDone:
		return t.applyRebalanceDone(decodeInto[RebalanceDone](payload))
	default:
		panic(fmt.Sprintf("fsm: no handler for command %s", typ))
	}
}

// read runs fn on a read-only view of the committed state (a tx that reads
// a Pebble snapshot and has no batch to write to), so fn sees one applied
// index. The lock is held only to take the snapshot: a long scan (the task
// runners walk hundreds of tasks) must not hold off Apply's commit, which
// would stall the raft apply pipeline and every reader queued behind it.
func (f *FSM) read(fn func(t *tx)) {
	f.mu.RLock()
	if f.closed {
		// As before Close: the store's own error (pebble panics on a closed DB).
		defer f.mu.RUnlock()
		fn(&tx{r: f.h.db, meta: f.meta, cnt: f.cnt})
		return
	}
	h := f.h
	h.refs.Add(1) // Close and Restore wait for it before closing h.db
	snap := h.db.NewSnapshot()
	t := &tx{r: snap, meta: f.meta, cnt: f.cnt, members: f.nodes}
	f.mu.RUnlock()
	defer func() {
		_ = snap.Close()
		h.refs.Done()
	}()
	fn(t)
}

// Hash returns the digest of the replicated state and the index of the last
// applied command. Replicas at the same applied index have the same hash.
// It is maintained with every write, so this is O(1).
func (f *FSM) Hash() (string, uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.hash.String(), f.applied
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
	return f.meta.ClusterID
}

// Secret returns a copy of the link-signing secret (nil before InitCluster).
func (f *FSM) Secret() []byte {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return append([]byte(nil), f.meta.Secret...)
}

// JoinTokenHash returns the hex sha256 of the cluster's join token.
func (f *FSM) JoinTokenHash() string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.meta.JoinTokenHash
}

// Settings returns the cluster-wide settings.
func (f *FSM) Settings() Settings {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.meta.Settings
}

// Node returns the member record for id (from the decoded members: a
// follower looks its leader up on every command it forwards).
func (f *FSM) Node(id osprey.NodeID) (Node, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.nodes == nil {
		return Node{}, false // not opened (a tx without members would read the store)
	}
	if p, ok := (&tx{members: f.nodes}).node(id); ok {
		return *p, true
	}
	return Node{}, false
}

// ClusterLevel is the lowest feature level among the members in nodes that
// are not removed (0 when there are none): the features every member
// understands.
func ClusterLevel(nodes []Node) uint32 {
	level, any := uint32(0), false
	for _, n := range nodes {
		if n.Removed {
			continue
		}
		if !any || n.Level < level {
			level, any = n.Level, true
		}
	}
	return level
}

// Nodes returns all member records (removed ones included), sorted by id.
func (f *FSM) Nodes() []Node {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return append([]Node{}, f.nodes...)
}

// File returns uid's record (with its upload chunks while uploading), or
// false.
func (f *FSM) File(uid osprey.UID) (x File, ok bool) {
	f.read(func(t *tx) {
		var p *File
		if p, ok = t.fileWithChunks(uid); ok {
			x = *p
		}
	})
	return x, ok
}

// Content returns a content record, or false.
func (f *FSM) Content(id osprey.UID) (c Content, ok bool) {
	f.read(func(t *tx) {
		var p *Content
		if p, ok = t.content(id); ok {
			c = *p
		}
	})
	return c, ok
}

// ContentByMD5 returns the verified content of tenant that an md5-only
// lookup (/resume) resolves md5 to, or false.
func (f *FSM) ContentByMD5(tenant, md5 string) (c Content, ok bool) {
	f.read(func(t *tx) {
		id, found := t.dedupFirst(tenant, md5)
		if !found {
			return
		}
		var p *Content
		if p, ok = t.content(id); ok {
			c = *p
		}
	})
	return c, ok
}

// Files returns up to limit files with uid > after, in uid order. It reads
// a range of the store: the cost is proportional to limit, not to the
// number of files.
func (f *FSM) Files(after osprey.UID, limit int) []File {
	out := []File{}
	if limit <= 0 {
		return out
	}
	f.read(func(t *tx) {
		_, hi := tableBounds(tFile)
		t.scan(fileKey(after+1), hi, func(k, v []byte) bool {
			var x File
			if err := json.Unmarshal(v, &x); err != nil {
				panic(fmt.Sprintf("fsm: decode file: %v", err))
			}
			if x.UID <= after { // after+1 wrapped around
				return false
			}
			if x.State == StateUploading {
				x.Chunks = t.upChunks(x.UID)
			}
			out = append(out, x)
			return len(out) < limit
		})
	})
	return out
}

// Tasks returns all tasks (optionally only those in state), in id order.
// Dead tasks are read through their own index.
func (f *FSM) Tasks(state TaskState) []Task {
	out := []Task{}
	f.read(func(t *tx) {
		if state == TaskDead {
			lo, hi := tableBounds(tDead)
			for _, k := range t.keys(lo, hi) {
				if tk, ok := t.task(binary.BigEndian.Uint64(k[2:])); ok {
					out = append(out, *tk)
				}
			}
			return
		}
		lo, hi := tableBounds(tTask)
		t.scan(lo, hi, func(k, v []byte) bool {
			var tk Task
			if err := json.Unmarshal(v, &tk); err != nil {
				panic(fmt.Sprintf("fsm: decode task: %v", err))
			}
			if state == "" || tk.State == state {
				out = append(out, tk)
			}
			return true
		})
	})
	return out
}

// Task returns one task.
func (f *FSM) Task(id uint64) (tk Task, ok bool) {
	f.read(func(t *tx) {
		var p *Task
		if p, ok = t.task(id); ok {
			tk = *p
		}
	})
	return tk, ok
}

// RunnableTasks returns up to limit tasks of the given types that may be
// leased at now (unix ms), most overdue first (pending tasks by their next
// attempt, expired leases by their expiry; ties by id). It walks the
// runnable index, never the whole queue.
func (f *FSM) RunnableTasks(now int64, types map[string]bool, limit int) []Task {
	// The index holds every type's backlog (thousands of tier tasks under
	// load): a runner whose types have no live task, such as the repair
	// batcher between membership changes, does not walk it.
	f.mu.RLock()
	live := false
	for typ := range types {
		live = live || f.cnt.Live[typ] > 0
	}
	f.mu.RUnlock()
	if !live {
		return nil
	}
	var out []Task
	end := timeID{now + 1, 0}
	if now == math.MaxInt64 {
		end = maxTimeID
	}
	first := end
	from, gen := f.startScan(&f.run)
	f.read(func(t *tx) {
		t.scan(from.key(tRunnable), end.key(tRunnable), func(k, _ []byte) bool {
			due, id := decodeTimeID(k)
			if first == end {
				first = timeID{due, id}
			}
			// Another runner's task is not decoded (a gc task holds up
			// to 128 chunks).
			if typ, decode, ok := t.taskType(id); ok && types[typ] {
				if tk := decode(); tk.Runnable(now) {
					out = append(out, *tk)
				}
			}
			return len(out) < limit
		})
	})
	f.endScan(&f.run, gen, first)
	return out
}

// LiveTasks counts the tasks of type typ that are pending or leased (not
// dead): counters.Live, kept with every write, so a metrics scrape reads
// one number.
func (f *FSM) LiveTasks(typ string) int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return int(f.cnt.Live[typ])
}

// scanHint is a lower bound of the live keys of a (time, id) index.
// Deleted keys stay as tombstones at the front of such an index until a
// compaction drops them, and finished tasks and uploads delete keys all
// the time, so scans start at the hint instead of the range's start. A
// commit that inserts below the hint lowers it; a scan raises it to the
// first key it found, or to the end of its range if it found none, lowered
// to whatever was inserted since the scan started (floor, valid while gen
// is the scan's).
type scanHint struct {
	hint  timeID
	floor timeID
	gen   uint64
}

func (h *scanHint) inserted(k timeID) {
	if k == maxTimeID {
		return
	}
	h.floor = h.floor.min(k)
	h.hint = h.hint.min(k)
}

// startScan returns where a scan of h's index starts and its generation.
func (f *FSM) startScan(h *scanHint) (timeID, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h.gen++
	h.floor = maxTimeID
	return h.hint, h.gen
}

// endScan raises h's hint to first (no live key of the index lies below
// it), unless another scan started since.
func (f *FSM) endScan(h *scanHint, gen uint64, first timeID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h.gen != gen {
		return
	}
	if c := first.min(h.floor); h.hint.less(c) {
		h.hint = c
	}
}

// Stats counts files, contents, stored bytes and tasks and contents by
// state, for metrics. The counts are maintained by every write: this never
// scans.
func (f *FSM) Stats() map[string]int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	m := map[string]int{"files": int(f.cnt.Files), "contents": int(f.cnt.Contents)}
	for st, n := range f.cnt.Tasks {
		if n != 0 {
			m["tasks_"+string(st)] = int(n)
		}
	}
	for st, n := range f.cnt.ContentState {
		if n != 0 {
			m["contents_"+string(st)] = int(n)
		}
	}
	for name, n := range map[string]int64{"s3_buckets": f.cnt.Buckets, "s3_objects": f.cnt.Objects,
		"s3_multipart_uploads": f.cnt.MultipartUploads} {
		if n != 0 {
			m[name] = int(n)
		}
	}
	return m
}

// ContentBytes returns the bytes of all stored contents (each deduplicated
// content once).
func (f *FSM) ContentBytes() int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.cnt.ContentBytes
}

// HasUploadsBefore reports whether an upload was last touched before t. It
// reads the first key of the upload-age index.
func (f *FSM) HasUploadsBefore(before int64) bool {
	first := maxTimeID
	from, gen := f.startScan(&f.upload)
	f.read(func(t *tx) {
		_, hi := tableBounds(tUploadAge)
		t.scan(from.key(tUploadAge), hi, func(k, _ []byte) bool {
			first.at, first.id = decodeTimeID(k)
			return false
		})
	})
	f.endScan(&f.upload, gen, first)
	return first != maxTimeID && first.at < before
}

// sortedTasks sorts tasks by id.
func sortedTasks(ts []Task) []Task {
	sort.Slice(ts, func(i, j int) bool { return ts[i].ID < ts[j].ID })
	return ts
}
