package fsm

import (
	"fmt"

	"github.com/osprey-storage/osprey"
)

// Domain errors returned inside a Result. They are values, identical on every
// replica, never panics.
var (
	// ErrNotFound is returned when the uid, node or content does not exist.
	ErrNotFound = fmt.Errorf("fsm: %w", osprey.ErrNotFound)
	// ErrConflict is returned when the command conflicts with current state
	// (merge with missing chunks, chunk after merge, ...).
	ErrConflict = fmt.Errorf("fsm: %w", osprey.ErrConflict)
	// ErrInvalid is returned for a command whose arguments are invalid.
	ErrInvalid = fmt.Errorf("fsm: %w", osprey.ErrInvalid)
)

// Error is a domain error carried in a Result. Kind is one of ErrNotFound,
// ErrConflict or ErrInvalid, so callers match with errors.Is.
type Error struct {
	Kind error
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// Unwrap lets errors.Is match the kind.
func (e *Error) Unwrap() error { return e.Kind }

func errorf(kind error, format string, args ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Node is a cluster member as recorded by the FSM.
type Node struct {
	ID       osprey.NodeID `json:"id"`
	RaftAddr string        `json:"raft_addr"`
	HTTPAddr string        `json:"http_addr"`
	// WorkerID is the snowflake worker id the FSM assigned when the node
	// joined. It is unique across the cluster's whole history.
	WorkerID uint32 `json:"worker_id"`
	Removed  bool   `json:"removed,omitempty"`
	// Down is set while the member is unreachable past the repair grace
	// period: its copies are being rebuilt elsewhere and it gets no new ones.
	Down     bool  `json:"down,omitempty"`
	JoinedAt int64 `json:"joined_at"` // unix milliseconds, from the command
	// Level is the feature level of the build the member last announced
	// (FeatureLevel of that build; 0 for builds before levels existed).
	Level uint32 `json:"level,omitempty"`
}

// FileState is the lifecycle of a file (SPEC §3 object states).
type FileState string

// File states.
const (
	StateUploading FileState = "uploading"
	StateComplete  FileState = "complete"
	StateTiered    FileState = "tiered"
	StateFailed    FileState = "failed"
)

// Chunk records one stored chunk of an upload: where its bytes are and how
// to check them. Chunk bytes never enter the log.
type Chunk struct {
	// Blob is the storage id of this copy of the chunk: a fresh snowflake id
	// per upload attempt, so replacing a chunk never overwrites the bytes
	// an existing record points to.
	Blob   uint64          `json:"blob"`
	Num    uint32          `json:"num"`
	Size   int64           `json:"size"`
	MD5    string          `json:"md5"`
	Sum    uint64          `json:"sum"` // xxhash64 of the bytes, as stored
	Owners []osprey.NodeID `json:"owners"`
	// Workers is set only in the commands that record new copies
	// (ChunkPut, FileComplete, ObjectPut): per Owners entry, that member's
	// worker id when the proposer's ring chose it (nil: not known). A member
	// removed, wiped and joined again while the copy was written (or while
	// the command was in flight) has a new worker id; the FSM queues a
	// repair for such an owner instead of counting it a holder, and never
	// stores Workers.
	Workers []uint32 `json:"workers,omitempty"`
	// EC is set when the chunk is erasure-coded: its shards and their
	// holders (Owners then lists every shard holder).
	EC *ECLayout `json:"ec,omitempty"`
}

// ECLayout records an erasure-coded chunk: K data and M parity shards.
type ECLayout struct {
	K      int       `json:"k"`
	M      int       `json:"m"`
	Shards []ECShard `json:"shards"`
}

// ECShard is one shard of an erasure-coded chunk, stored under shard
// number Index+1 on Owner.
type ECShard struct {
	Index      int           `json:"index"`
	Owner      osprey.NodeID `json:"owner"`
	Size       int64         `json:"size"`
	Sum        uint64        `json:"sum"`
	StripeSums []uint64      `json:"stripe_sums"`
}

// cloneChunk deep-copies a chunk record.
func cloneChunk(c Chunk) Chunk {
	c.Owners = append([]osprey.NodeID(nil), c.Owners...)
	c.Workers = append([]uint32(nil), c.Workers...)
	if c.EC != nil {
		ec := *c.EC
		ec.Shards = make([]ECShard, len(c.EC.Shards))
		for i, sh := range c.EC.Shards {
			sh.StripeSums = append([]uint64(nil), sh.StripeSums...)
			ec.Shards[i] = sh
		}
		c.EC = &ec
	}
	return c
}

// File is one uid's record.
type File struct {
	UID    osprey.UID `json:"uid"`
	Name   string     `json:"name"`
	Bucket string     `json:"bucket"`
	// Tenant owns the file (osprey.Principal.Tenant); "" is the shared
	// namespace of admin credentials.
	Tenant string    `json:"tenant,omitempty"`
	State  FileState `json:"state"`
	Size   int64     `json:"size"`
	MD5    string    `json:"md5,omitempty"`
	// Content is the id of the content holding the bytes once complete.
	Content osprey.UID `json:"content,omitempty"`
	// Chunks holds the chunks received while uploading, keyed by number.
	Chunks    map[uint32]*Chunk `json:"chunks,omitempty"`
	CreatedAt int64             `json:"created_at"`
	UpdatedAt int64             `json:"updated_at"`
}

// ContentState tells where a content's bytes live.
type ContentState string

// Content states.
const (
	ContentStaged ContentState = "staged"
	ContentTiered ContentState = "tiered"
	ContentFailed ContentState = "failed"
	// ContentLost marks a content whose bytes no member or backend holds
	// any more: it was only staged when the backup it was restored from
	// was taken, and the members that staged it are gone. It is never
	// served and never deduplicated onto.
	ContentLost ContentState = "lost"
)

// Location is where a tiered content lives in the backend.
type Location struct {
	Bucket string `json:"bucket"`
	Key    string `json:"key"`
	// Nodes lists the members holding a copy when the backend is each
	// node's local disk (replicated so a node's loss loses nothing); empty
	// for a shared backend (S3, OSS, COS).
	Nodes []osprey.NodeID `json:"nodes,omitempty"`
}

// Content is a stored byte sequence, shared by every file with the same md5
// (dedup). It is reference-counted by files.
type Content struct {
	ID     osprey.UID   `json:"id"` // uid of the file that uploaded the bytes
	MD5    string       `json:"md5"`
	Size   int64        `json:"size"`
	State  ContentState `json:"state"`
	Chunks []Chunk      `json:"chunks"` // staged chunks in order
	// Verified is true once the whole-file md5 was checked against the bytes.
	Verified bool `json:"verified"`
	// SHA256 is the hex SHA-256 of the bytes, computed as they arrived
	// (single uploads) or by the tiering pass that verifies the md5; ""
	// until known (contents of earlier builds, merges not tiered yet).
	SHA256 string `json:"sha256,omitempty"`
	// Tenant is the tenant the content was first stored under; it is
	// shared (deduplicated onto) only by files of that tenant.
	Tenant string `json:"tenant,omitempty"`
	// Bucket and Key name the backend object the content tiers to.
	Bucket   string    `json:"bucket"`
	Key      string    `json:"key"`
	Refs     int       `json:"refs"`
	Location *Location `json:"location,omitempty"`
	// Inline is set on a small content whose staged chunks are its final
	// copy (Settings.InlineMax): it is never tiered, its chunks stay
	// (repaired, rebalanced and scrubbed like any staged chunk) until its
	// last reference goes.
	Inline bool `json:"inline,omitempty"`
	// Sums are the sizes and xxhash64 sums of the chunks a tiered content
	// was staged as, in order (TierDone.KeepSums; for one chunk only with
	// KeepOneSum; nil for contents tiered by earlier builds): a client
	// reading ranges in parallel verifies each chunk instead of one serial
	// md5 of the file, and the holders of a local-disk copy check what they
	// serve by them.
	Sums []ChunkSum `json:"sums,omitempty"`
}

// ChunkSum is the size and xxhash64 of one chunk of a content's bytes.
type ChunkSum struct {
	Size int64  `json:"size"`
	Sum  uint64 `json:"sum"`
}

// keptSums is Content.Sums for staged chunks: nil for fewer than two
// (fewer than one with one), or when a chunk's sum is not known (0:
// records of early builds).
func keptSums(chunks []Chunk, one bool) []ChunkSum {
	if len(chunks) < 2 && !(one && len(chunks) == 1) {
		return nil
	}
	out := make([]ChunkSum, len(chunks))
	for i, ch := range chunks {
		if ch.Sum == 0 {
			return nil
		}
		out[i] = ChunkSum{Size: ch.Size, Sum: ch.Sum}
	}
	return out
}

// ChunkSums returns the sizes and xxhash64 sums of the content's chunks in
// order, whether staged or tiered, or nil when they are not known.
func (c Content) ChunkSums() []ChunkSum {
	if c.Location == nil {
		return keptSums(c.Chunks, false)
	}
	return c.Sums
}

// state is everything the FSM replicates. Maps are encoded with sorted keys
// by encoding/json, which keeps snapshots and the state hash deterministic.
type state struct {
	ClusterID     string                  `json:"cluster_id"`
	Secret        []byte                  `json:"secret"`
	JoinTokenHash string                  `json:"join_token_hash"`
	CreatedAt     int64                   `json:"created_at"`
	Nodes         map[osprey.NodeID]*Node `json:"nodes"`
	NextWorkerID  uint32                  `json:"next_worker_id"`
	Files         map[osprey.UID]*File    `json:"files"`
	Contents      map[osprey.UID]*Content `json:"contents"`
	MD5Index      map[string]osprey.UID   `json:"md5_index"` // v1/v2 snapshots only
	// Dedup is the dedup index ('H') keyed by the encoded key; not part of
	// the legacy JSON snapshots (tests' reference model and dumps).
	Dedup map[string]osprey.UID `json:"-"`
	Tasks map[uint64]*Task      `json:"tasks"`
	// taskOrder lists task ids in creation (= id) order so finding runnable
	// tasks does not sort the whole queue; ids of finished tasks are
	// skipped and compacted away. Derived, so not in snapshots.
	taskOrder  []uint64
	NextTaskID uint64   `json:"next_task_id"`
	Settings   Settings `json:"settings"`
	OpenGC     uint64   `json:"open_gc,omitempty"`
}

func newState() *state {
	return &state{
		Nodes:    map[osprey.NodeID]*Node{},
		Files:    map[osprey.UID]*File{},
		Contents: map[osprey.UID]*Content{},
		MD5Index: map[string]osprey.UID{},
		Dedup:    map[string]osprey.UID{},
		Tasks:    map[uint64]*Task{},
	}
}
