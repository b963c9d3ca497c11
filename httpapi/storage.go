package httpapi

import (
	"context"
	"io"
	"time"

	"github.com/osprey-storage/osprey"
)

// Storage is what the storage API needs from a node.
type Storage interface {
	// LinkSecret returns the cluster's link-signing secret; ErrUnavailable
	// before the cluster is initialised.
	LinkSecret() ([]byte, error)
	// CreateFiles creates one uploading file per item, in order.
	CreateFiles(ctx context.Context, items []NewFile) ([]osprey.UID, error)
	// Resume creates, per item, a new uid sharing stored content with that
	// md5, or 0 when no complete content has it.
	Resume(ctx context.Context, items []ResumeItem) ([]osprey.UID, error)
	// Stat returns a file's metadata (linearizable).
	Stat(ctx context.Context, uid osprey.UID) (FileInfo, error)
	// Checkpoint lists the chunk numbers stored for an upload.
	Checkpoint(ctx context.Context, uid osprey.UID) ([]uint32, error)
	// Upload stores a whole file read from body (until EOF) whose md5 must
	// be md5; nothing is kept on mismatch. size is the body's declared
	// length, -1 if unknown (a hint for buffers: the body decides).
	Upload(ctx context.Context, uid osprey.UID, body io.Reader, size int64, md5 string) (FileInfo, error)
	// UploadChunk stores chunk num (size bytes, or -1 if unknown).
	UploadChunk(ctx context.Context, uid osprey.UID, num uint32, body io.Reader, size int64, md5 string) error
	// Merge declares a chunked upload complete.
	Merge(ctx context.Context, uid osprey.UID, num uint32, size int64, md5 string) (FileInfo, error)
	// Open returns a complete file for reading.
	Open(ctx context.Context, uid osprey.UID) (*Object, error)
	// Delete removes a file.
	Delete(ctx context.Context, uid osprey.UID) error
	// List pages through files in uid order after cursor.
	List(ctx context.Context, cursor osprey.UID, limit int) ([]FileInfo, osprey.UID, error)
	// Locate returns the HTTP addresses of the nodes holding uid's staged data.
	Locate(ctx context.Context, uid osprey.UID) ([]string, error)

	// Node-to-node chunk transfer.
	PutLocalChunk(ctx context.Context, key ChunkRef, body io.Reader, size int64, origin CopyOrigin) (uint64, error)
	GetLocalChunk(ctx context.Context, key ChunkRef, off, n int64) (io.ReadCloser, int64, error)
	// LocalChunkGen returns the generation of the local copy of key: every
	// write of a chunk on a node gets a new, larger one.
	LocalChunkGen(ctx context.Context, key ChunkRef) (uint64, error)
	// DeleteLocalChunk deletes the local copy of key as origin says; gen,
	// if not 0, deletes it only if it is still that generation.
	DeleteLocalChunk(ctx context.Context, key ChunkRef, origin CopyOrigin, gen uint64) error
}

// Dedup is proof-of-possession instant upload (POST /dedup/challenge,
// /dedup/prove). Both act for osprey.PrincipalFrom(ctx).Tenant.
type Dedup interface {
	// DedupChallenge issues a challenge for a claimed content, whether or
	// not it exists.
	DedupChallenge(ctx context.Context, c DedupClaim) (DedupChallenge, error)
	// DedupProve checks the answer to a challenge and returns the claimed
	// md5 and a new uid sharing the content (0 if it went away meanwhile).
	// A wrong answer and an absent content are the same ErrForbidden; an
	// expired, reused or forged challenge is ErrForbidden too.
	DedupProve(ctx context.Context, challenge, proof string) (md5 string, uid osprey.UID, err error)
}

// DedupClaim is what a client claims to hold, and the name for the new uid.
type DedupClaim struct {
	MD5    string
	Size   int64
	SHA256 string
	Name   string
	Bucket string
}

// DedupChallenge asks for HMAC-SHA256(hex-decoded Nonce, bytes[Offset :
// Offset+Length]) of the claimed content, hex, before ExpiresAt.
type DedupChallenge struct {
	ID        string    `json:"challenge"`
	Nonce     string    `json:"nonce"`
	Offset    int64     `json:"offset"`
	Length    int64     `json:"length"`
	ExpiresAt time.Time `json:"expires_at"`
}

// NewFile is one file of /link/upload.
type NewFile struct {
	Name   string
	Bucket string
}

// ResumeItem is one item of /resume.
type ResumeItem struct {
	MD5    string
	Name   string
	Bucket string
}

// ChunkRef names a stored chunk copy on a node.
type ChunkRef struct {
	Blob  uint64
	Num   uint32
	Shard uint16
}

// CopyOrigin says on whose behalf a chunk copy is written or deleted.
type CopyOrigin uint8

const (
	// CopyRecorded is a copy of a recorded chunk (repair, rebalance,
	// scrub), which replaces whatever is stored, or the deletion of
	// recorded garbage (gc, a rebalance's release), which removes it.
	CopyRecorded CopyOrigin = iota
	// CopyUpload is the upload that created the blob: it writes its own
	// copies (never replacing one already there) and cleans up the ones
	// it gave up on, removing only copies it wrote, so a late cleanup
	// cannot remove a copy that rebalance or repair wrote meanwhile.
	CopyUpload
)

// String is the origin's name on the wire (the "origin" query parameter).
func (o CopyOrigin) String() string {
	if o == CopyUpload {
		return "upload"
	}
	return "recorded"
}

// FileInfo is a file's metadata as the API shows it.
type FileInfo struct {
	UID         osprey.UID `json:"uid"`
	Name        string     `json:"name"`
	Size        int64      `json:"size"`
	MD5         string     `json:"md5"`
	ContentType string     `json:"content_type"`
	Bucket      string     `json:"bucket"`
	State       string     `json:"state"`
	Location    string     `json:"location"`
	Chunks      int        `json:"chunks"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	// S3Bucket and S3Key name the S3 key bound to this uid, if any.
	S3Bucket string `json:"s3_bucket,omitempty"`
	S3Key    string `json:"s3_key,omitempty"`
}

// Object is a complete file opened for reading.
type Object struct {
	FileInfo
	// ObjectKey is the backend object name shown in download links.
	ObjectKey string
	// Reader returns n bytes from off (n ≥ 0, off+n ≤ Size), streamed
	// with bounded memory. The caller MUST Close it.
	Reader func(ctx context.Context, off, n int64) (io.ReadCloser, error)
	// Sums are the sizes and xxhash64 sums of the file's chunks in order
	// (nil when not known), served on request (HeaderChunkSums).
	Sums []ChunkSum
}

// ChunkSum is the size and xxhash64 of one chunk of a file's bytes.
type ChunkSum struct {
	Size int64
	Sum  uint64
}
