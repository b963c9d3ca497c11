package datapath

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/backend"
	"github.com/osprey-storage/osprey/chunkstore"
	"github.com/osprey-storage/osprey/erasure"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
	"github.com/osprey-storage/osprey/ring"
)

// State is the part of the FSM the data path reads.
type State interface {
	File(uid osprey.UID) (fsm.File, bool)
	Files(after osprey.UID, limit int) []fsm.File
	Content(id osprey.UID) (fsm.Content, bool)
	ContentByMD5(tenant, md5 string) (fsm.Content, bool)
	DedupTarget(tenant, md5 string, size int64, sha256 string) (fsm.Content, bool)
	Node(id osprey.NodeID) (fsm.Node, bool)
	Secret() []byte
	ObjectKeyOf(uid osprey.UID) (bucket, key string, ok bool)
}

// Proposer proposes commands and makes local reads linearizable.
type Proposer interface {
	Apply(ctx context.Context, t fsm.CommandType, payload, out any) error
	ReadBarrier(ctx context.Context) error
	// IsLeader reports whether this node leads now.
	IsLeader() bool
}

// UIDs mints cluster-unique ids (file uids and blob ids).
type UIDs interface {
	NextUID() (osprey.UID, error)
}

// Placement says where copies go.
type Placement interface {
	Ring() (*ring.Ring, error)
	// RingWorkers is Ring with the active members' worker ids
	// (placement.Placement.RingWorkers).
	RingWorkers() (*ring.Ring, map[osprey.NodeID]uint32, error)
	Replicas() int
	ECEnabled() bool
	ECFits() bool
	EC() erasure.Policy
}

// Peers reaches the copies other members hold.
type Peers interface {
	// PutChunkStream stores size bytes of body as a chunk copy on owner
	// and returns the checksum (xxhash64) the owner computed.
	// origin says whose copy it is (httpapi.CopyOrigin).
	PutChunkStream(ctx context.Context, owner string, ref httpapi.ChunkRef, body io.Reader, size int64, origin httpapi.CopyOrigin) (uint64, error)
	// ChunkGen returns the generation of owner's copy of ref;
	// errors.ErrUnsupported from a build that cannot tell.
	ChunkGen(ctx context.Context, owner string, ref httpapi.ChunkRef) (uint64, error)
	// DeleteChunk deletes owner's copy of ref as origin says; gen, if not
	// 0, deletes it only if it is still that generation.
	DeleteChunk(ctx context.Context, owner string, ref httpapi.ChunkRef, origin httpapi.CopyOrigin, gen uint64) error
	OpenChunk(ctx context.Context, owner string, ref httpapi.ChunkRef, off, length int64) (io.ReadCloser, error)
	PutObject(ctx context.Context, owner, bucket, key string, body io.Reader, size int64, md5 string) error
	// OpenObject reads part of owner's object copy; with a content id
	// (not 0) the owner checks the bytes against that content's chunk
	// sums as it reads them (Path.GetCheckedObject).
	OpenObject(ctx context.Context, owner, bucket, key string, content osprey.UID, off, length int64) (io.ReadCloser, error)
	// ObjectVersion names owner's stored write of an object copy;
	// errors.ErrUnsupported from a build or backend that cannot tell.
	ObjectVersion(ctx context.Context, owner, bucket, key string) (string, error)
	// DeleteObject deletes owner's object copy; a version other than ""
	// deletes it only if it is still that write.
	DeleteObject(ctx context.Context, owner, bucket, key, version string) error
}

// Chunks is this node's chunk store.
type Chunks interface {
	Put(ctx context.Context, k chunkstore.Key, r io.Reader, size int64) (chunkstore.Info, error)
	PutUpload(ctx context.Context, k chunkstore.Key, r io.Reader, size int64) (chunkstore.Info, error)
	PutUploadNoSync(ctx context.Context, k chunkstore.Key, r io.Reader, size int64) (chunkstore.Info, error)
	Get(ctx context.Context, k chunkstore.Key, off, n int64) (io.ReadCloser, chunkstore.Info, error)
	Delete(ctx context.Context, k chunkstore.Key) error
	DeleteUpload(ctx context.Context, k chunkstore.Key) (bool, error)
	Gen(ctx context.Context, k chunkstore.Key) (uint64, error)
	DeleteGen(ctx context.Context, k chunkstore.Key, gen uint64) (bool, error)
}

// Objects is the part of the object backend the data path uses.
type Objects interface {
	EnsureBucket(ctx context.Context, bucket string) error
	Put(ctx context.Context, bucket, key string, r io.Reader, size int64, opts backend.PutOptions) (backend.ObjectInfo, error)
	Get(ctx context.Context, bucket, key string, offset, length int64) (io.ReadCloser, error)
	Delete(ctx context.Context, bucket, key string) error
}

var (
	_ Chunks           = (*chunkstore.Store)(nil)
	_ Objects          = (backend.Backend)(nil)
	_ httpapi.Storage  = (*Path)(nil)
	_ httpapi.Replicas = (*Path)(nil)
)

// Config configures a Path.
type Config struct {
	// ID is this node's member id: copies it owns are read and written
	// locally, the others through Peers.
	ID string
	// Limits bounds uploads (MaxChunkSize, MaxUploadSize).
	Limits httpapi.Limits
	// BufferBudget bounds the bytes all upload requests may hold in memory
	// at once; further uploads wait.
	BufferBudget int64
	// The dependencies, each a small interface declared above.
	State     State
	Proposer  Proposer
	UIDs      UIDs
	Placement Placement
	Peers     Peers
	Chunks    Chunks
	Objects   Objects
	// CorruptReads counts corrupt shards and object copies found while
	// reading; optional.
	CorruptReads prometheus.Counter
	// BadObjectCopy, optional, is told of a content whose copy in this
	// node's local-disk backend failed its checksum as it was read (the
	// scrubber rechecks and rewrites it: repair.Scrubber.CheckObject).
	BadObjectCopy func(content osprey.UID)
	// UncheckedObjectReads serves this node's object copies without the
	// checks of GetCheckedObject.
	UncheckedObjectReads bool
	// LocalCopiesSyncWithLog says that this node's Raft log lives in
	// Chunks' Pebble instance and that the proposer syncs Chunks
	// (chunkstore.Store.SyncWAL) before forwarding a command to another
	// node's leader. An upload's local copy of one block then commits
	// without its own sync (chunkstore.Store.PutUploadNoSync) while this
	// node leads: the entry that records it is appended to this node's
	// log, synced, before it can commit here, and a forwarded one (the
	// leader moved meanwhile) is preceded by the sync. A follower syncs
	// its copy as it stores it, alongside the other owners, rather than
	// after them. Copies on other nodes are synced by their owners as
	// always.
	LocalCopiesSyncWithLog bool
	// CopyHedgeAfter is how long a chunk copy may lag behind one already
	// durable (at least twice as long as that one took) before a spare copy
	// starts on the next ring candidate; 0 means DefaultCopyHedgeAfter.
	CopyHedgeAfter time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// DefaultCopyHedgeAfter is Config.CopyHedgeAfter's default.
const DefaultCopyHedgeAfter = time.Second

// hedgeAfter is the configured CopyHedgeAfter or its default.
func (p *Path) hedgeAfter() time.Duration {
	if p.cfg.CopyHedgeAfter > 0 {
		return p.cfg.CopyHedgeAfter
	}
	return DefaultCopyHedgeAfter
}

// Validate reports a missing dependency or a bad limit.
func (c Config) Validate() error {
	switch {
	case c.ID == "":
		return errors.New("datapath: ID is required")
	case c.State == nil || c.Proposer == nil || c.UIDs == nil || c.Placement == nil || c.Peers == nil || c.Chunks == nil || c.Objects == nil:
		return errors.New("datapath: State, Proposer, UIDs, Placement, Peers, Chunks and Objects are required")
	case c.BufferBudget < 8<<20:
		return errors.New("datapath: buffer budget must be at least 8 MiB")
	}
	return c.Limits.Validate()
}

// Path is the data path of one node: uploads, downloads, the placement of
// staged copies and the node-to-node copy endpoints. It implements
// httpapi.Storage and httpapi.Replicas. Safe for concurrent use; the
// caller MUST Close it.
type Path struct {
	cfg        Config
	id         string
	log        *slog.Logger
	budget     *budget
	corrupt    prometheus.Counter
	lastUpload atomic.Int64 // unix nanos of the last upload request
	// created holds files this node created moments ago, for the upload
	// that follows before a follower applied them (see created).
	created *created
	used    usedChallenges
	// challengeTTL overrides ChallengeTTL when not 0 (SetChallengeTTL).
	challengeTTL atomic.Int64

	// Background best-effort cleanup (collect) runs under ctx; Close
	// cancels it and waits.
	ctx       context.Context
	cancel    context.CancelFunc
	mu        sync.Mutex
	closed    bool
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New returns a Path.
func New(cfg Config) (*Path, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.Default()
	}
	p := &Path{cfg: cfg, id: cfg.ID, log: lg.With("component", "datapath"), budget: newBudget(cfg.BufferBudget), corrupt: cfg.CorruptReads,
		created: newCreated()}
	if p.corrupt == nil {
		p.corrupt = prometheus.NewCounter(prometheus.CounterOpts{Name: "osprey_corrupt_reads_total"})
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p, nil
}

// Close cancels background cleanup and waits for it. Idempotent.
func (p *Path) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		p.cancel()
		p.wg.Wait()
	})
	return nil
}

// background runs fn in a goroutine Close waits for; after Close it does
// nothing (the work is best effort).
func (p *Path) background(fn func(ctx context.Context)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		fn(p.ctx)
	}()
}

// LastUpload returns when the last upload request arrived (zero if none):
// background work yields to uploads.
func (p *Path) LastUpload() time.Time {
	if ns := p.lastUpload.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}
