package repair

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/chunkstore"
	"github.com/osprey-storage/osprey/erasure"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
	"github.com/osprey-storage/osprey/ring"
	"github.com/osprey-storage/osprey/tasks"
)

// State is the part of the FSM repair reads.
type State interface {
	ChunkRecord(file, content osprey.UID, blob uint64) (fsm.Chunk, bool)
	Content(id osprey.UID) (fsm.Content, bool)
	Node(id osprey.NodeID) (fsm.Node, bool)
	Nodes() []fsm.Node
	// LiveTasks counts the queued and running tasks of a type; Tasks
	// lists tasks (all states for "").
	LiveTasks(typ string) int
	Tasks(state fsm.TaskState) []fsm.Task
}

// Data is the part of the data path repair reads and writes copies
// through.
type Data interface {
	// ReadPiece reads at most max bytes under the buffer budget; the
	// caller MUST call release.
	ReadPiece(ctx context.Context, r io.Reader, max, reserve int64) (buf []byte, release func(), err error)
	OpenCopies(ctx context.Context, ch fsm.Chunk, off, length int64) io.ReadCloser
	OpenECRange(ctx context.Context, ch fsm.Chunk, off, length int64, skip osprey.NodeID) io.ReadCloser
	OpenTiered(ctx context.Context, ct fsm.Content, off, length int64) (io.ReadCloser, error)
	PutChunkOn(ctx context.Context, owner string, ref httpapi.ChunkRef, buf []byte, sum uint64) error
	PutObjectOn(ctx context.Context, owner, bucket, key string, body io.Reader, size int64, md5 string) error
}

// Placement says where a rebuilt copy goes.
type Placement interface {
	Ring() (*ring.Ring, error)
	NewOwners(key []byte, have []osprey.NodeID) ([]string, error)
	WantCopies() int
	EC() erasure.Policy
}

// Config configures the repair Handler.
type Config struct {
	// ID is this node's member id.
	ID        string
	State     State
	Data      Data
	Placement Placement
	// BatchSize is how many repairs a node leases and records together
	// (one Raft entry per batch; 0: DefaultBatchSize); Parallel how many
	// copies it rebuilds at once (0: DefaultParallel).
	BatchSize, Parallel int
}

// Defaults of Config.BatchSize and Config.Parallel.
const (
	DefaultBatchSize = 64
	DefaultParallel  = 16
)

// Validate reports a missing dependency.
func (c Config) Validate() error {
	if c.ID == "" || c.State == nil || c.Data == nil || c.Placement == nil {
		return errors.New("repair: ID, State, Data and Placement are required")
	}
	if c.BatchSize < 0 || c.BatchSize > 126 || c.Parallel < 0 {
		return errors.New("repair: batch size must be 0..126 and parallel ≥ 0")
	}
	return nil
}

var _ tasks.Batcher = (*Handler)(nil)

// New returns the repair task handler.
func New(cfg Config) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.Parallel == 0 {
		cfg.Parallel = DefaultParallel
	}
	cfg.Data = boundedData{cfg.Data}
	return &Handler{cfg: cfg}, nil
}

// boundedData bounds every transfer of a repair: a chunk (held in
// memory) by a deadline for its size (tasks.CopyDeadline), an object
// stream by its progress (tasks.GuardStall, on PutObjectOn's body: the
// object read from a holder is that body, so one watch covers both ends). A hung member costs one
// bounded attempt, after which the next candidate is tried (or the task
// retried), instead of holding the repair until the member comes back.
type boundedData struct{ Data }

func (b boundedData) OpenCopies(ctx context.Context, ch fsm.Chunk, off, length int64) io.ReadCloser {
	// Time to try every owner in turn, a hung one included.
	ctx, cancel := context.WithTimeout(ctx, tasks.CopyDeadline(length)*time.Duration(max(1, len(ch.Owners))))
	return cancelOnClose{b.Data.OpenCopies(ctx, ch, off, length), cancel}
}

func (b boundedData) OpenECRange(ctx context.Context, ch fsm.Chunk, off, length int64, skip osprey.NodeID) io.ReadCloser {
	ctx, cancel := context.WithTimeout(ctx, tasks.CopyDeadline(length))
	return cancelOnClose{b.Data.OpenECRange(ctx, ch, off, length, skip), cancel}
}

func (b boundedData) PutChunkOn(ctx context.Context, owner string, ref httpapi.ChunkRef, buf []byte, sum uint64) error {
	ctx, cancel := context.WithTimeout(ctx, tasks.CopyDeadline(int64(len(buf))))
	defer cancel()
	return b.Data.PutChunkOn(ctx, owner, ref, buf, sum)
}

func (b boundedData) PutObjectOn(ctx context.Context, owner, bucket, key string, body io.Reader, size int64, md5 string) error {
	stall, ctx, stop := tasks.GuardStall(ctx, tasks.CopyMinTime)
	defer stop()
	return tasks.WithStall(ctx, b.Data.PutObjectOn(ctx, owner, bucket, key, stall.Reader(body), size, md5))
}

// cancelOnClose ends a reader's context when it is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// Chunks is the part of this node's chunk store the scrubber walks.
type Chunks interface {
	Scan(ctx context.Context, fn func(chunkstore.Key, chunkstore.Info) error) error
	Verify(ctx context.Context, k chunkstore.Key) (chunkstore.Info, error)
	// Gen names the write stored under a key; DeleteGen removes it only
	// while it is still that write.
	Gen(ctx context.Context, k chunkstore.Key) (uint64, error)
	DeleteGen(ctx context.Context, k chunkstore.Key, gen uint64) (bool, error)
}

// ScrubState is the part of the FSM the scrubber reads: the copies the
// records name a member the holder of, a page at a time (fsm.FSM.HeldBy).
type ScrubState interface {
	HeldBy(node osprey.NodeID, cursor []byte, limit int) ([]fsm.Held, []byte)
	ChunkRecord(file, content osprey.UID, blob uint64) (fsm.Chunk, bool)
	Content(id osprey.UID) (fsm.Content, bool)
}

// ScrubData is the part of the data path the scrubber heals through.
type ScrubData interface {
	ReadPiece(ctx context.Context, r io.Reader, max, reserve int64) (buf []byte, release func(), err error)
	OpenCopies(ctx context.Context, ch fsm.Chunk, off, length int64) io.ReadCloser
	OpenECRange(ctx context.Context, ch fsm.Chunk, off, length int64, skip osprey.NodeID) io.ReadCloser
	PutChunkOn(ctx context.Context, owner string, ref httpapi.ChunkRef, buf []byte, sum uint64) error
	OpenTiered(ctx context.Context, ct fsm.Content, off, length int64) (io.ReadCloser, error)
	PutObjectOn(ctx context.Context, owner, bucket, key string, body io.Reader, size int64, md5 string) error
}

// ScrubObjects is this node's local-disk backend, which holds its copies
// of tiered objects when the backend is each node's disk (local.Backend).
type ScrubObjects interface {
	Get(ctx context.Context, bucket, key string, offset, length int64) (io.ReadCloser, error)
	// Walk lists the objects stored with their versions; DeleteVersion
	// removes one only while it is still that write; RemoveStaleTemps
	// removes the temporary files of Puts interrupted longer than age ago.
	Walk(ctx context.Context, fn func(bucket, key string, size int64, version string) error) error
	DeleteVersion(ctx context.Context, bucket, key, version string) (bool, error)
	RemoveStaleTemps(ctx context.Context, age time.Duration) (int, int64, error)
}

var _ Chunks = (*chunkstore.Store)(nil)

// ScrubConfig configures a Scrubber.
type ScrubConfig struct {
	// ID is this node's member id.
	ID string
	// Rate is how many staged bytes per second are verified (≤ 0: off);
	// Pause separates full passes (0: back to back).
	Rate   int64
	Pause  time.Duration
	Chunks Chunks
	State  ScrubState
	Data   ScrubData
	// Objects, when the backend is each node's local disk, is this node's
	// backend: a second walk, in passes of its own at Rate, reads every
	// object copy the records name this node the holder of, checks it
	// against its content's size and md5, and rewrites a bad or missing
	// one from another holder. nil: no object copies here (a shared
	// backend checks its own objects).
	Objects ScrubObjects
	// ObjectOrphans also collects, with OrphanGrace, the objects in
	// Objects that no content record names this node a holder of, and
	// the temporary files of interrupted Puts. Leave it off when another
	// node may write the same directory.
	ObjectOrphans bool
	// OrphanGrace turns on collecting orphaned copies (0: off): a copy no
	// record names this node the holder of, seen so by passes at least
	// OrphanGrace apart with the same generation, is deleted after Barrier
	// and a fresh look at the records (see Scrubber.collect). It must
	// exceed the longest time between writing a copy and recording it.
	OrphanGrace time.Duration
	// Barrier brings this node's FSM up to the leader's commit index
	// (consensus.Proposer.ReadBarrier); required with OrphanGrace. With
	// it, each pass starts with one, so a node still catching up does not
	// act on stale records.
	Barrier func(ctx context.Context) error
	// Metrics; optional. Repaired counts bad and missing copies rewritten.
	Bytes, Corrupt, Missing, Repaired, Passes prometheus.Counter
	// Orphans and OrphanBytes count the orphaned copies deleted.
	Orphans, OrphanBytes prometheus.Counter
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Validate reports a missing dependency.
func (c ScrubConfig) Validate() error {
	if c.ID == "" || c.Chunks == nil || c.State == nil || c.Data == nil {
		return errors.New("repair: scrubber needs ID, Chunks, State and Data")
	}
	if c.OrphanGrace < 0 || c.OrphanGrace > 0 && c.Barrier == nil {
		return errors.New("repair: OrphanGrace must be ≥ 0, and needs Barrier")
	}
	return nil
}

// Scrubber verifies this node's staged copies and heals bad ones.
type Scrubber struct {
	cfg                                       ScrubConfig
	log                                       *slog.Logger
	bytes, corrupt, missing, repaired, passes prometheus.Counter
	orphans, orphanBytes                      prometheus.Counter
	// suspects are the copies no record named this node the holder of in
	// the last pass, with the write seen and since when. Only Run's
	// goroutine touches it.
	suspects map[chunkstore.Key]suspect
	// objSuspects are the same for local object copies, by bucket/key.
	objSuspects map[objectKey]objSuspect
	// lastHeld is how many copies the last pass walked (sizes the next
	// pass's filter).
	lastHeld int
	now      func() time.Time // time.Now; tests move it
	// reports are contents whose local object copy a read found bad
	// (CheckObject), checked ahead of the passes; reported dedups them.
	reports  chan osprey.UID
	reportMu sync.Mutex
	reported map[osprey.UID]bool
}

// NewScrubber returns a Scrubber; Run starts it.
func NewScrubber(cfg ScrubConfig) (*Scrubber, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Data = boundedData{cfg.Data} // a hung member costs a rewrite one bounded attempt
	s := &Scrubber{cfg: cfg, log: cfg.Logger, bytes: cfg.Bytes, corrupt: cfg.Corrupt, missing: cfg.Missing, repaired: cfg.Repaired, passes: cfg.Passes,
		orphans: cfg.Orphans, orphanBytes: cfg.OrphanBytes, suspects: map[chunkstore.Key]suspect{},
		objSuspects: map[objectKey]objSuspect{}, now: time.Now,
		reports: make(chan osprey.UID, maxReports), reported: map[osprey.UID]bool{}}
	if s.log == nil {
		s.log = slog.Default()
	}
	for _, c := range []*prometheus.Counter{&s.bytes, &s.corrupt, &s.missing, &s.repaired, &s.passes, &s.orphans, &s.orphanBytes} {
		if *c == nil {
			*c = prometheus.NewCounter(prometheus.CounterOpts{Name: "osprey_scrub_unregistered_total"})
		}
	}
	return s, nil
}
