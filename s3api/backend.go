package s3api

import (
	"context"
	"io"
	"time"
)

// Backend is what the S3 front door needs from storage. It is declared here,
// at the consumer. Implementations must be safe for concurrent use.
//
// Error contract: methods return (possibly wrapped) sentinels of this package;
// any other error becomes a 500 InternalError (details are logged, not sent).
type Backend interface {
	// ListBuckets returns all buckets, sorted by name.
	ListBuckets(ctx context.Context) ([]BucketInfo, error)
	// CreateBucket creates bucket; ErrBucketExists if it already exists.
	CreateBucket(ctx context.Context, bucket string) error
	// HeadBucket returns ErrNoSuchBucket if bucket does not exist.
	HeadBucket(ctx context.Context, bucket string) error
	// DeleteBucket removes an empty bucket; ErrNoSuchBucket, ErrBucketNotEmpty.
	// In-progress multipart uploads do not make a bucket non-empty; they
	// are discarded with it.
	DeleteBucket(ctx context.Context, bucket string) error
	// PutObject stores body under bucket/key, replacing any existing object.
	// body yields exactly size bytes; if reading it fails (for example the
	// payload signature did not verify) the backend must return that error
	// wrapped and leave any previous object untouched. The backend computes
	// the ETag as the unquoted lowercase hex md5 of the data.
	PutObject(ctx context.Context, bucket, key string, body io.Reader, size int64, meta ObjectMeta) (ObjectInfo, error)
	// GetObject returns the object's info and a reader over length bytes
	// starting at offset (length -1 = to the end). The handler has already
	// validated the range against HeadObject's size. The caller MUST Close
	// the reader. ErrNoSuchBucket, ErrNoSuchKey.
	GetObject(ctx context.Context, bucket, key string, offset, length int64) (ObjectInfo, io.ReadCloser, error)
	// HeadObject returns the object's info; ErrNoSuchBucket, ErrNoSuchKey.
	HeadObject(ctx context.Context, bucket, key string) (ObjectInfo, error)
	// DeleteObject removes the object; it returns nil if the key is missing
	// and ErrNoSuchBucket if the bucket is.
	DeleteObject(ctx context.Context, bucket, key string) error
	// CopyObject copies an object server-side. meta nil keeps the source's
	// metadata. ErrNoSuchBucket, ErrNoSuchKey (source).
	CopyObject(ctx context.Context, srcBucket, srcKey, dstBucket, dstKey string, meta *ObjectMeta) (ObjectInfo, error)
	// ListObjects lists keys in lexical (byte) order. The backend is
	// delimiter-aware, see ListOptions and ListResult.
	ListObjects(ctx context.Context, bucket string, opts ListOptions) (ListResult, error)
	// CreateMultipartUpload starts an upload and returns its opaque ID.
	CreateMultipartUpload(ctx context.Context, bucket, key string, meta ObjectMeta) (uploadID string, err error)
	// UploadPart stores part number part (1..10000) of an upload, replacing
	// an earlier upload of the same number. body yields exactly size bytes.
	// The part ETag is the lowercase hex md5 of the data. ErrNoSuchUpload.
	UploadPart(ctx context.Context, bucket, key, uploadID string, part int, body io.Reader, size int64) (PartInfo, error)
	// CompleteMultipartUpload assembles the listed parts into the object.
	// The handler has already checked the list against ListParts with
	// ValidateCompleteParts (order, ETags, minimum part size), so a backend
	// may trust it, although s3mem checks again. The object's ETag must be
	// MultipartETag(parts). ErrNoSuchUpload, ErrInvalidPart.
	CompleteMultipartUpload(ctx context.Context, bucket, key, uploadID string, parts []CompletePart) (ObjectInfo, error)
	// AbortMultipartUpload discards an upload and its parts; ErrNoSuchUpload.
	AbortMultipartUpload(ctx context.Context, bucket, key, uploadID string) error
	// ListParts lists up to max parts with numbers > marker, ascending.
	// ErrNoSuchUpload.
	ListParts(ctx context.Context, bucket, key, uploadID string, marker, max int) (PartsResult, error)
	// ListMultipartUploads lists in-progress uploads ordered by (key,
	// upload ID). ErrNoSuchBucket.
	ListMultipartUploads(ctx context.Context, bucket string, opts UploadsOptions) (UploadsResult, error)
}

// BucketInfo describes one bucket.
type BucketInfo struct {
	Name    string
	Created time.Time
}

// ObjectMeta is the client-supplied metadata stored with an object.
type ObjectMeta struct {
	ContentType        string
	ContentEncoding    string
	ContentDisposition string
	CacheControl       string
	// UserMeta holds x-amz-meta-* headers, keys lower-case without the prefix.
	UserMeta map[string]string
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Bucket  string
	Key     string
	Size    int64
	ETag    string // unquoted: hex md5, or hex md5 + "-N" for multipart
	ModTime time.Time
	Meta    ObjectMeta
	UID     string // native osprey uid; may be empty
}

// ListOptions selects keys for Backend.ListObjects.
type ListOptions struct {
	// Prefix restricts the listing to keys starting with it.
	Prefix string
	// Delimiter, if non-empty, rolls up keys that contain it after Prefix
	// into one common prefix (Prefix + text up to and including the first
	// Delimiter), returned once in ListResult.CommonPrefixes.
	Delimiter string
	// StartAfter: only entries (keys or common prefixes) strictly greater
	// than it are returned. A common prefix that is <= StartAfter is skipped
	// entirely, so a NextStartAfter that names a common prefix resumes after
	// all the keys it rolls up.
	StartAfter string
	// MaxKeys bounds len(Objects)+len(CommonPrefixes); > 0.
	MaxKeys int
}

// ListResult is one page of a listing. Objects and CommonPrefixes are each
// sorted; together they hold at most MaxKeys entries, the smallest ones.
type ListResult struct {
	Objects        []ObjectInfo
	CommonPrefixes []string
	// IsTruncated reports that more entries follow.
	IsTruncated bool
	// NextStartAfter is the greatest key or common prefix returned; pass it
	// as StartAfter to continue. Set when IsTruncated.
	NextStartAfter string
}

// PartInfo describes one uploaded part.
type PartInfo struct {
	Number  int
	ETag    string // unquoted hex md5
	Size    int64
	ModTime time.Time
}

// CompletePart names one part in a CompleteMultipartUpload request.
type CompletePart struct {
	Number int
	ETag   string // unquoted
}

// PartsResult is one page of ListParts.
type PartsResult struct {
	Parts                []PartInfo
	IsTruncated          bool
	NextPartNumberMarker int
}

// UploadsOptions selects uploads for ListMultipartUploads.
type UploadsOptions struct {
	Prefix string
	// Delimiter rolls up keys like ListOptions.Delimiter; a rolled-up
	// prefix is reported once in UploadsResult.CommonPrefixes and counts
	// as one entry towards MaxUploads.
	Delimiter      string
	KeyMarker      string // uploads for keys > KeyMarker, or == KeyMarker with ID > UploadIDMarker
	UploadIDMarker string
	MaxUploads     int
}

// UploadInfo describes an in-progress multipart upload.
type UploadInfo struct {
	Key       string
	UploadID  string
	Initiated time.Time
}

// UploadsResult is one page of ListMultipartUploads.
type UploadsResult struct {
	Uploads            []UploadInfo
	CommonPrefixes     []string
	IsTruncated        bool
	NextKeyMarker      string
	NextUploadIDMarker string
}
