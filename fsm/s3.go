package fsm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/cockroachdb/pebble/v2"

	"github.com/osprey-storage/osprey"
)

// The S3 namespace: buckets, and bucket/key as an on-disk index onto uids.
// A PUT is a single upload (FilesCreate, FileComplete) followed by
// ObjectBind; a multipart upload is a chunked upload whose parts are its
// chunks (MultipartCreate, ChunkPut per part, MultipartComplete). Nothing
// of it is kept in memory: every read is a point or range read of the
// store (keys.go: tables B, b, O, M, x).

// S3 domain errors. Each wraps ErrNotFound, ErrConflict or ErrInvalid, so
// errors.Is matches both the S3 condition and its generic kind.
var (
	// ErrNoSuchBucket is returned when the bucket does not exist.
	ErrNoSuchBucket = fmt.Errorf("fsm: no such bucket: %w", ErrNotFound)
	// ErrBucketExists is returned by BucketCreate for an existing bucket.
	ErrBucketExists = fmt.Errorf("fsm: bucket exists: %w", ErrConflict)
	// ErrBucketNotEmpty is returned by BucketDelete while the bucket holds
	// keys or multipart uploads.
	ErrBucketNotEmpty = fmt.Errorf("fsm: bucket not empty: %w", ErrConflict)
	// ErrNoSuchUpload is returned when bucket/key has no multipart upload
	// with that id.
	ErrNoSuchUpload = fmt.Errorf("fsm: no such upload: %w", ErrNotFound)
	// ErrInvalidPart is returned by MultipartComplete when a listed part
	// was not uploaded, or the parts do not add up to the declared size.
	ErrInvalidPart = fmt.Errorf("fsm: invalid part: %w", ErrConflict)
)

// Limits of S3 names. The FSM only checks lengths (its encodings need
// them); the S3 front door checks the character rules.
const (
	MinBucketLen = 3
	MaxBucketLen = 63
	MaxKeyLen    = 1024
	// DefaultListMax is the page size of the list reads when max ≤ 0.
	DefaultListMax = 1000
)

// ObjectMeta is the S3 metadata stored with a key.
type ObjectMeta struct {
	ETag               string            `json:"etag,omitempty"`
	ContentType        string            `json:"content_type,omitempty"`
	ContentEncoding    string            `json:"content_encoding,omitempty"`
	ContentDisposition string            `json:"content_disposition,omitempty"`
	CacheControl       string            `json:"cache_control,omitempty"`
	UserMeta           map[string]string `json:"user_meta,omitempty"`
}

func (m ObjectMeta) clone() ObjectMeta {
	if m.UserMeta != nil {
		um := make(map[string]string, len(m.UserMeta))
		for k, v := range m.UserMeta {
			um[k] = v
		}
		m.UserMeta = um
	}
	return m
}

// BucketCreate creates a bucket; ErrBucketExists if it exists.
type BucketCreate struct {
	Name string `json:"name"`
	Time int64  `json:"time"`
}

// BucketDelete deletes an empty bucket: ErrNoSuchBucket, or
// ErrBucketNotEmpty while it has keys or multipart uploads.
type BucketDelete struct {
	Name string `json:"name"`
}

// ObjectBind binds bucket/key to a complete file. A file the key was bound
// to before is deleted in the same entry, exactly as FileDelete does, so a
// reader sees the old or the new object, never neither.
type ObjectBind struct {
	Bucket string     `json:"bucket"`
	Key    string     `json:"key"`
	UID    osprey.UID `json:"uid"`
	Meta   ObjectMeta `json:"meta"`
	Time   int64      `json:"time"`
}

// BindResult is the result of ObjectBind (and part of MultipartComplete's).
type BindResult struct {
	// Replaced is the uid the key was bound to before (0 if none, or if
	// it was bound to this uid already); its file was deleted.
	Replaced osprey.UID `json:"replaced,omitempty"`
	// Deleted is what deleting the replaced file freed (as FileDelete).
	Deleted *DeleteResult `json:"deleted,omitempty"`
}

// ObjectUnbind removes bucket/key and deletes its file. A missing key is
// not an error (S3 DeleteObject); a missing bucket is ErrNoSuchBucket.
type ObjectUnbind struct {
	Bucket string `json:"bucket"`
	Key    string `json:"key"`
	Time   int64  `json:"time"`
}

// UnbindResult is the result of ObjectUnbind.
type UnbindResult struct {
	// UID is the file that was bound (0: the key did not exist).
	UID     osprey.UID   `json:"uid,omitempty"`
	Deleted DeleteResult `json:"deleted"`
}

// ObjectPut is an S3 PUT in one entry: it creates UID (as FilesCreate),
// completes it from the chunks the proposer stored (as FileComplete, so it
// deduplicates onto known content) and binds bucket/key to it (as
// ObjectBind, deleting the file the key held). One consensus round trip
// per PUT instead of three.
type ObjectPut struct {
	Bucket string     `json:"bucket"`
	Key    string     `json:"key"`
	UID    osprey.UID `json:"uid"`
	// Name and FileBucket are the file's name and (backend) bucket; an
	// empty Name means the last path element of Key, an empty FileBucket
	// means Bucket.
	Name       string  `json:"name,omitempty"`
	FileBucket string  `json:"file_bucket,omitempty"`
	Chunks     []Chunk `json:"chunks"`
	Size       int64   `json:"size"`
	MD5        string  `json:"md5"`
	// SHA256 is the hex SHA-256 of the body (dedup key); "" from earlier
	// builds.
	SHA256 string     `json:"sha256,omitempty"`
	Meta   ObjectMeta `json:"meta"`
	Time   int64      `json:"time"`
}

// ObjectPutResult is the result of ObjectPut.
type ObjectPutResult struct {
	CompleteResult
	BindResult
}

// MultipartCreate starts a multipart upload: an uploading file (as
// FilesCreate) whose chunks are the parts, indexed under bucket/key.
type MultipartCreate struct {
	Bucket string     `json:"bucket"`
	Key    string     `json:"key"`
	UID    osprey.UID `json:"uid"` // the upload id, minted by the proposer
	// Name is the file's name (its extension names the backend object);
	// empty means the last path element of Key.
	Name string `json:"name,omitempty"`
	// FileBucket is the file's (backend) bucket; empty means Bucket.
	FileBucket string     `json:"file_bucket,omitempty"`
	Meta       ObjectMeta `json:"meta"`
	Time       int64      `json:"time"`
}

// MultipartComplete completes a multipart upload from exactly the listed
// parts, in that order, and binds the key to it (as ObjectBind), in one
// entry. Uploaded parts not listed become garbage.
type MultipartComplete struct {
	Bucket string     `json:"bucket"`
	Key    string     `json:"key"`
	UID    osprey.UID `json:"uid"`
	// Parts are part (chunk) numbers, strictly ascending, possibly with
	// gaps (1, 3, 7).
	Parts []uint32 `json:"parts"`
	Size  int64    `json:"size"`
	// MD5 is the whole-object md5 when the proposer knows it; "" (this
	// build) leaves it to the tiering pass, which reads every byte anyway
	// and records it with TierDone.MD5: the content is not a dedup target
	// until then. Entries of earlier builds carry it.
	MD5  string `json:"md5"`
	ETag string `json:"etag"` // "<hex>-N"
	// Meta replaces the metadata given at MultipartCreate; nil keeps it.
	Meta *ObjectMeta `json:"meta,omitempty"`
	Time int64       `json:"time"`
}

// MultipartCompleteResult is the result of MultipartComplete.
type MultipartCompleteResult struct {
	CompleteResult
	BindResult
}

// MultipartAbort drops a multipart upload and its parts (garbage).
type MultipartAbort struct {
	Bucket string     `json:"bucket"`
	Key    string     `json:"key"`
	UID    osprey.UID `json:"uid"`
	Time   int64      `json:"time"`
}

// Bucket is an S3 bucket as read back.
type Bucket struct {
	Name    string `json:"name"`
	Created int64  `json:"created"`
	// Objects and Uploads count its keys and multipart uploads.
	Objects int64 `json:"objects"`
	Uploads int64 `json:"uploads"`
}

// bucketRecord is the stored value of a bucket (its name is the key).
type bucketRecord struct {
	Created int64 `json:"created"`
}

// Object is a bound key as read back.
type Object struct {
	Bucket string     `json:"bucket"`
	Key    string     `json:"key"`
	UID    osprey.UID `json:"uid"`
	Meta   ObjectMeta `json:"meta"`
	Size   int64      `json:"size"`
	MD5    string     `json:"md5"`
	Time   int64      `json:"time"` // of the bind: S3 LastModified
}

// objectRecord is the stored value of a binding. Size and md5 are copied
// from the (immutable once complete) file, so listing reads one range.
type objectRecord struct {
	UID  osprey.UID `json:"uid"`
	Meta ObjectMeta `json:"meta"`
	Size int64      `json:"size"`
	MD5  string     `json:"md5"`
	Time int64      `json:"time"`
}

// MultipartUpload is a multipart upload in progress.
type MultipartUpload struct {
	Bucket    string     `json:"bucket"`
	Key       string     `json:"key"`
	UID       osprey.UID `json:"uid"`
	Meta      ObjectMeta `json:"meta"`
	Initiated int64      `json:"initiated"`
}

// multipartRecord is the stored value of a multipart upload.
type multipartRecord struct {
	Meta      ObjectMeta `json:"meta"`
	Initiated int64      `json:"initiated"`
}

// ObjectList is a page of ListObjects.
type ObjectList struct {
	Objects        []Object
	CommonPrefixes []string
	// IsTruncated is true when more keys or prefixes follow; Next is the
	// last key or common prefix returned, the startAfter of the next page.
	IsTruncated bool
	Next        string
	// visited counts the records the listing read (tests check that a
	// common prefix costs one seek, not one step per key under it).
	visited int
}

// UploadList is a page of MultipartUploads.
type UploadList struct {
	Uploads     []MultipartUpload
	IsTruncated bool
	// NextKey and NextUID are the last upload returned: the keyMarker and
	// uploadMarker of the next page.
	NextKey string
	NextUID osprey.UID
}

// PartList is a page of MultipartParts.
type PartList struct {
	Parts       []Chunk // by part number; Chunk.Num is the part number
	IsTruncated bool
	Next        uint32 // last part number returned
}

// CheckName returns an *Error wrapping ErrInvalid if bucket (and key,
// unless empty) cannot be stored: a bucket of MinBucketLen-MaxBucketLen
// bytes, a key of 1-MaxKeyLen bytes, both valid UTF-8. Proposers check
// names with it before proposing, because a command's JSON payload would
// replace invalid UTF-8 with U+FFFD and so store another name.
func CheckName(bucket, key string) error {
	if len(bucket) < MinBucketLen || len(bucket) > MaxBucketLen || !utf8.ValidString(bucket) {
		return errorf(ErrInvalid, "bucket name of %d bytes, want %d-%d bytes of UTF-8", len(bucket), MinBucketLen, MaxBucketLen)
	}
	if len(key) > MaxKeyLen || !utf8.ValidString(key) {
		return errorf(ErrInvalid, "key of %d bytes, want 1-%d bytes of UTF-8", len(key), MaxKeyLen)
	}
	return nil
}

func checkBucket(name string) error { return CheckName(name, "") }

func checkKey(bucket, key string) error {
	if key == "" {
		return errorf(ErrInvalid, "empty key")
	}
	return CheckName(bucket, key)
}

// --- typed records ---

func (t *tx) bucket(name string) (*bucketRecord, bool) {
	return getJSON[bucketRecord](t, bucketKey(name))
}

// bucketCounts returns the number of keys and multipart uploads of a bucket.
func (t *tx) bucketCounts(name string) (objects, uploads int64) {
	return decodeBucketCounts(t.get(bucketCntKey(name)))
}

func decodeBucketCounts(v []byte) (objects, uploads int64) {
	if len(v) != 16 {
		return 0, 0
	}
	return int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint64(v[8:]))
}

func (t *tx) addBucketCounts(name string, dObjects, dUploads int64) {
	o, u := t.bucketCounts(name)
	v := binary.BigEndian.AppendUint64(nil, uint64(o+dObjects))
	t.set(bucketCntKey(name), binary.BigEndian.AppendUint64(v, uint64(u+dUploads)))
	t.cnt.Objects += dObjects
	t.cnt.MultipartUploads += dUploads
}

func (t *tx) object(bucket, key string) (*objectRecord, bool) {
	return getJSON[objectRecord](t, s3ObjectKey(bucket, key))
}

func (t *tx) multipart(bucket, key string, uid osprey.UID) (*multipartRecord, bool) {
	return getJSON[multipartRecord](t, multipartKey(bucket, key, uid))
}

// objectMD5Known copies f's md5, learnt by the tiering pass, into the S3
// object record f is bound to, if any: the record mirrors the file.
func (t *tx) objectMD5Known(f *File) {
	ref, ok := t.s3Ref(f.UID)
	if !ok || ref.kind != refBound {
		return
	}
	if r, ok := t.object(ref.bucket, ref.key); ok && r.UID == f.UID && r.MD5 == "" {
		r.MD5 = f.MD5
		t.setJSON(s3ObjectKey(ref.bucket, ref.key), r)
	}
}

func (t *tx) s3Ref(uid osprey.UID) (s3Ref, bool) {
	v := t.get(s3RefKey(uid))
	if v == nil {
		return s3Ref{}, false
	}
	r, ok := decodeS3Ref(v)
	if !ok {
		panic(fmt.Sprintf("fsm: corrupt s3 back-reference of %s: %x", uid, v))
	}
	return r, true
}

// dropS3Ref removes the binding or multipart upload naming uid, its
// back-reference and its counts. It is called whenever a file goes.
func (t *tx) dropS3Ref(uid osprey.UID) {
	ref, ok := t.s3Ref(uid)
	if !ok {
		return
	}
	switch ref.kind {
	case refBound:
		if o, ok := t.object(ref.bucket, ref.key); ok && o.UID == uid {
			t.del(s3ObjectKey(ref.bucket, ref.key))
			t.addBucketCounts(ref.bucket, -1, 0)
		}
	case refMultipart:
		if _, ok := t.multipart(ref.bucket, ref.key, uid); ok {
			t.del(multipartKey(ref.bucket, ref.key, uid))
			t.addBucketCounts(ref.bucket, 0, -1)
		}
	}
	t.del(s3RefKey(uid))
}

// bind points bucket/key at the complete file f, deleting the file it
// pointed at before.
func (t *tx) bind(bucket, key string, f *File, meta ObjectMeta, now int64) BindResult {
	res := BindResult{}
	old, had := t.object(bucket, key)
	if had && old.UID != f.UID {
		// Unbind first, so the old file's delete finds no binding (and a
		// missing old file cannot leave a stale one).
		t.dropS3Ref(old.UID)
		if _, ok := t.file(old.UID); ok {
			d := t.removeFile(old.UID, now)
			res.Deleted = &d
		}
		res.Replaced = old.UID
		had = false
	}
	if meta.ETag == "" {
		meta.ETag = f.MD5
	}
	t.setJSON(s3ObjectKey(bucket, key), &objectRecord{UID: f.UID, Meta: meta, Size: f.Size, MD5: f.MD5, Time: now})
	if !had {
		t.set(s3RefKey(f.UID), s3Ref{kind: refBound, bucket: bucket, key: key}.encode())
		t.addBucketCounts(bucket, 1, 0)
	}
	return res
}

// --- commands ---

func (t *tx) applyBucketCreate(c *BucketCreate) (any, error) {
	if err := checkBucket(c.Name); err != nil {
		return nil, err
	}
	if _, ok := t.bucket(c.Name); ok {
		return nil, errorf(ErrBucketExists, "bucket %q exists", c.Name)
	}
	t.setJSON(bucketKey(c.Name), &bucketRecord{Created: c.Time})
	t.set(bucketCntKey(c.Name), make([]byte, 16))
	t.cnt.Buckets++
	return Bucket{Name: c.Name, Created: c.Time}, nil
}

func (t *tx) applyBucketDelete(c *BucketDelete) (any, error) {
	if _, ok := t.bucket(c.Name); !ok {
		return nil, errorf(ErrNoSuchBucket, "bucket %q not found", c.Name)
	}
	if o, u := t.bucketCounts(c.Name); o != 0 || u != 0 {
		return nil, errorf(ErrBucketNotEmpty, "bucket %q holds %d keys and %d multipart uploads", c.Name, o, u)
	}
	t.del(bucketKey(c.Name))
	t.del(bucketCntKey(c.Name))
	t.cnt.Buckets--
	return nil, nil
}

func (t *tx) needBucket(name string) error {
	if _, ok := t.bucket(name); !ok {
		return errorf(ErrNoSuchBucket, "bucket %q not found", name)
	}
	return nil
}

func (t *tx) applyObjectBind(c *ObjectBind) (any, error) {
	if err := checkKey(c.Bucket, c.Key); err != nil {
		return nil, err
	}
	if err := t.needBucket(c.Bucket); err != nil {
		return nil, err
	}
	f, ok := t.file(c.UID)
	if !ok {
		return nil, errorf(ErrNotFound, "uid %s not found", c.UID)
	}
	if f.State != StateComplete && f.State != StateTiered {
		return nil, errorf(ErrConflict, "uid %s is %s, not complete", c.UID, f.State)
	}
	if ref, ok := t.s3Ref(c.UID); ok && (ref.kind != refBound || ref.bucket != c.Bucket || ref.key != c.Key) {
		return nil, errorf(ErrConflict, "uid %s is bound to %s/%s", c.UID, ref.bucket, ref.key)
	}
	return t.bind(c.Bucket, c.Key, f, c.Meta, c.Time), nil
}

func (t *tx) applyObjectPut(c *ObjectPut) (any, error) {
	if err := checkKey(c.Bucket, c.Key); err != nil {
		return nil, err
	}
	if err := t.needBucket(c.Bucket); err != nil {
		return nil, err
	}
	if c.UID == 0 {
		return nil, errorf(ErrInvalid, "object put: missing uid")
	}
	if _, ok := t.file(c.UID); ok {
		return nil, errorf(ErrConflict, "uid %s already exists", c.UID)
	}
	name, fileBucket := c.Name, c.FileBucket
	if name == "" {
		name = path.Base(c.Key)
	}
	if fileBucket == "" {
		fileBucket = c.Bucket
	}
	t.createFile(c.UID, name, fileBucket, "", c.Time)
	done, err := t.applyFileComplete(&FileComplete{UID: c.UID, Chunks: c.Chunks, Size: c.Size, MD5: c.MD5, SHA256: c.SHA256, Time: c.Time})
	if err != nil {
		return nil, err // the entry's writes are discarded
	}
	f, _ := t.file(c.UID)
	return ObjectPutResult{CompleteResult: done.(CompleteResult), BindResult: t.bind(c.Bucket, c.Key, f, c.Meta, c.Time)}, nil
}

func (t *tx) applyObjectUnbind(c *ObjectUnbind) (any, error) {
	if err := checkKey(c.Bucket, c.Key); err != nil {
		return nil, err
	}
	if err := t.needBucket(c.Bucket); err != nil {
		return nil, err
	}
	o, ok := t.object(c.Bucket, c.Key)
	if !ok {
		return UnbindResult{}, nil
	}
	t.dropS3Ref(o.UID)
	res := UnbindResult{UID: o.UID}
	if _, ok := t.file(o.UID); ok {
		res.Deleted = t.removeFile(o.UID, c.Time)
	}
	return res, nil
}

func (t *tx) applyMultipartCreate(c *MultipartCreate) (any, error) {
	if err := checkKey(c.Bucket, c.Key); err != nil {
		return nil, err
	}
	if c.UID == 0 {
		return nil, errorf(ErrInvalid, "multipart create: missing uid")
	}
	if err := t.needBucket(c.Bucket); err != nil {
		return nil, err
	}
	if _, ok := t.file(c.UID); ok {
		return nil, errorf(ErrConflict, "uid %s already exists", c.UID)
	}
	name := c.Name
	if name == "" {
		name = c.Key[strings.LastIndexByte(c.Key, '/')+1:]
		if name == "" {
			name = c.Key
		}
	}
	fileBucket := c.FileBucket
	if fileBucket == "" {
		fileBucket = c.Bucket
	}
	t.createFile(c.UID, name, fileBucket, "", c.Time)
	t.setJSON(multipartKey(c.Bucket, c.Key, c.UID), &multipartRecord{Meta: c.Meta, Initiated: c.Time})
	t.set(s3RefKey(c.UID), s3Ref{kind: refMultipart, bucket: c.Bucket, key: c.Key}.encode())
	t.addBucketCounts(c.Bucket, 0, 1)
	return MultipartUpload{Bucket: c.Bucket, Key: c.Key, UID: c.UID, Meta: c.Meta.clone(), Initiated: c.Time}, nil
}

func (t *tx) applyMultipartComplete(c *MultipartComplete) (any, error) {
	if err := checkKey(c.Bucket, c.Key); err != nil {
		return nil, err
	}
	up, ok := t.multipart(c.Bucket, c.Key, c.UID)
	if !ok {
		// A retry of a complete that went through is answered as such.
		if ref, ok := t.s3Ref(c.UID); ok && ref.kind == refBound && ref.bucket == c.Bucket && ref.key == c.Key {
			if f, ok := t.file(c.UID); ok && (c.MD5 == "" || f.MD5 == c.MD5) && f.Size == c.Size {
				return MultipartCompleteResult{CompleteResult: CompleteResult{File: f.clone(), Already: true}}, nil
			}
		}
		return nil, errorf(ErrNoSuchUpload, "no upload %s for %s/%s", c.UID, c.Bucket, c.Key)
	}
	f, ok := t.file(c.UID)
	if !ok || f.State != StateUploading {
		// The index and the file are kept in step, so this is unreachable;
		// refuse rather than guess.
		return nil, errorf(ErrConflict, "multipart upload %s has no uploading file", c.UID)
	}
	if len(c.Parts) == 0 {
		return nil, errorf(ErrInvalid, "multipart complete: no parts")
	}
	chunks := make([]Chunk, 0, len(c.Parts))
	var missing []uint32
	var total int64
	for i, n := range c.Parts {
		if n == 0 || i > 0 && n <= c.Parts[i-1] {
			return nil, errorf(ErrInvalid, "multipart complete: parts not strictly ascending at %d", n)
		}
		ch, ok := t.upChunk(c.UID, n)
		if !ok {
			missing = append(missing, n)
			continue
		}
		total += ch.Size
		chunks = append(chunks, *ch)
	}
	if len(missing) > 0 {
		return nil, errorf(ErrInvalidPart, "parts %s were not uploaded", formatNums(missing))
	}
	if total != c.Size {
		return nil, errorf(ErrInvalidPart, "parts hold %d bytes, complete says size %d", total, c.Size)
	}
	meta := up.Meta
	if c.Meta != nil {
		meta = c.Meta.clone()
	}
	if c.ETag != "" {
		meta.ETag = c.ETag
	}
	t.dropS3Ref(c.UID)
	// Earlier builds computed MD5 by reading the stored parts back, so the
	// content was verified and a dedup target at once; without it the
	// tiering pass computes and records the md5 (applyTierDone).
	res := MultipartCompleteResult{CompleteResult: t.complete(f, chunks, c.Size, c.MD5, "", c.MD5 != "", c.Time)}
	res.BindResult = t.bind(c.Bucket, c.Key, f, meta, c.Time)
	return res, nil
}

func (t *tx) applyMultipartAbort(c *MultipartAbort) (any, error) {
	if err := checkKey(c.Bucket, c.Key); err != nil {
		return nil, err
	}
	if _, ok := t.multipart(c.Bucket, c.Key, c.UID); !ok {
		return nil, errorf(ErrNoSuchUpload, "no upload %s for %s/%s", c.UID, c.Bucket, c.Key)
	}
	return t.removeFile(c.UID, c.Time), nil
}

// --- reads ---

// Buckets returns every bucket, by name.
func (f *FSM) Buckets() []Bucket {
	out := []Bucket{}
	f.read(func(t *tx) {
		lo, hi := tableBounds(tBucket)
		t.scan(lo, hi, func(k, v []byte) bool {
			out = append(out, Bucket{Name: string(k[2:]), Created: mustDecode[bucketRecord](v).Created})
			return true
		})
		for i := range out {
			out[i].Objects, out[i].Uploads = t.bucketCounts(out[i].Name)
		}
	})
	return out
}

// Bucket returns one bucket, or false.
func (f *FSM) Bucket(name string) (b Bucket, ok bool) {
	f.read(func(t *tx) {
		var r *bucketRecord
		if r, ok = t.bucket(name); ok {
			b = Bucket{Name: name, Created: r.Created}
			b.Objects, b.Uploads = t.bucketCounts(name)
		}
	})
	return b, ok
}

// Object returns the binding of bucket/key, or false.
func (f *FSM) Object(bucket, key string) (o Object, ok bool) {
	if checkKey(bucket, key) != nil {
		return o, false
	}
	f.read(func(t *tx) {
		var r *objectRecord
		if r, ok = t.object(bucket, key); ok {
			o = r.object(bucket, key)
		}
	})
	return o, ok
}

func (r *objectRecord) object(bucket, key string) Object {
	return Object{Bucket: bucket, Key: key, UID: r.UID, Meta: r.Meta, Size: r.Size, MD5: r.MD5, Time: r.Time}
}

// ObjectKeyOf returns the bucket and key uid is bound to, or false (not
// bound, or a multipart upload in progress: see MultipartUploadOf).
func (f *FSM) ObjectKeyOf(uid osprey.UID) (bucket, key string, ok bool) {
	f.read(func(t *tx) {
		var r s3Ref
		if r, ok = t.s3Ref(uid); ok && r.kind == refBound {
			bucket, key = r.bucket, r.key
		} else {
			ok = false
		}
	})
	return bucket, key, ok
}

// MultipartUploadOf returns the multipart upload uid is, or false.
func (f *FSM) MultipartUploadOf(uid osprey.UID) (u MultipartUpload, ok bool) {
	f.read(func(t *tx) {
		var r s3Ref
		if r, ok = t.s3Ref(uid); !ok || r.kind != refMultipart {
			ok = false
			return
		}
		var m *multipartRecord
		if m, ok = t.multipart(r.bucket, r.key, uid); ok {
			u = MultipartUpload{Bucket: r.bucket, Key: r.key, UID: uid, Meta: m.Meta, Initiated: m.Initiated}
		}
	})
	return u, ok
}

// listIter opens an iterator over [lo, hi) of the committed state.
func listIter(t *tx, lo, hi []byte) *pebble.Iterator {
	it, err := t.r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		panic(fmt.Sprintf("fsm: iterate: %v", err))
	}
	return it
}

func closeIter(it *pebble.Iterator) {
	err := it.Error()
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		panic(fmt.Sprintf("fsm: iterate: %v", err))
	}
}

// ListObjects returns up to max keys of bucket beginning with prefix and
// greater than startAfter, in byte order (max ≤ 0 means DefaultListMax).
// With a delimiter, keys whose remainder after prefix contains it are
// rolled up into one common prefix (prefix up to and including the first
// delimiter), which counts once towards max; the rest of a common prefix
// is skipped with one seek, so the cost is proportional to what is
// returned, not to the keys under a prefix. A startAfter that is itself a
// common prefix (the Next of a previous page) skips that whole prefix. It
// returns an *Error wrapping ErrNoSuchBucket if the bucket does not exist.
func (f *FSM) ListObjects(bucket, prefix, startAfter, delimiter string, max int) (ObjectList, error) {
	out := ObjectList{Objects: []Object{}, CommonPrefixes: []string{}}
	if max <= 0 {
		max = DefaultListMax
	}
	var err error
	f.read(func(t *tx) {
		if checkBucket(bucket) != nil {
			err = errorf(ErrNoSuchBucket, "bucket %q not found", bucket)
			return
		}
		if err = t.needBucket(bucket); err != nil {
			return
		}
		base := objectPrefix(bucket)
		lo, hi := prefixBounds(append(append([]byte(nil), base...), prefix...))
		if hi == nil {
			_, hi = tableBounds(tObject)
		}
		it := listIter(t, lo, hi)
		defer closeIter(it)
		valid := it.First()
		if startAfter != "" && startAfter >= prefix {
			from := append(append([]byte(nil), base...), startAfter...)
			if rest, ok := strings.CutPrefix(startAfter, prefix); ok && delimiter != "" &&
				strings.Index(rest, delimiter) == len(rest)-len(delimiter) && strings.HasSuffix(rest, delimiter) {
				_, from = prefixBounds(from) // a common prefix: skip all of it
			} else {
				from = append(from, 0) // the successor of startAfter
			}
			valid = from != nil && it.SeekGE(from)
		}
		n := 0
		for valid {
			out.visited++
			key := string(it.Key()[len(base):])
			if delimiter != "" {
				if i := strings.Index(key[len(prefix):], delimiter); i >= 0 {
					if n == max {
						out.IsTruncated = true
						return
					}
					cp := key[:len(prefix)+i+len(delimiter)]
					out.CommonPrefixes = append(out.CommonPrefixes, cp)
					out.Next = cp
					n++
					_, next := prefixBounds(append(append([]byte(nil), base...), cp...))
					if next == nil || bytes.Compare(next, hi) >= 0 {
						return
					}
					valid = it.SeekGE(next)
					continue
				}
			}
			if n == max {
				out.IsTruncated = true
				return
			}
			r := mustDecode[objectRecord](it.Value())
			out.Objects = append(out.Objects, r.object(bucket, key))
			out.Next = key
			n++
			valid = it.Next()
		}
	})
	return out, err
}

// MultipartUploads lists up to max multipart uploads of bucket whose key
// begins with prefix, by key and then upload id, starting after
// (keyMarker, uploadMarker) as S3 does: with uploadMarker 0, after every
// upload of keyMarker; otherwise after that upload of keyMarker. max ≤ 0
// means DefaultListMax. It returns an *Error wrapping ErrNoSuchBucket if
// the bucket does not exist.
func (f *FSM) MultipartUploads(bucket, prefix, keyMarker string, uploadMarker osprey.UID, max int) (UploadList, error) {
	out := UploadList{Uploads: []MultipartUpload{}}
	if max <= 0 {
		max = DefaultListMax
	}
	var err error
	f.read(func(t *tx) {
		if checkBucket(bucket) != nil {
			err = errorf(ErrNoSuchBucket, "bucket %q not found", bucket)
			return
		}
		if err = t.needBucket(bucket); err != nil {
			return
		}
		lo, hi := prefixBounds(escapeKey(multipartPrefix(bucket), prefix))
		if keyMarker != "" {
			var from []byte
			if uploadMarker != 0 && uploadMarker != ^osprey.UID(0) {
				from = multipartKey(bucket, keyMarker, uploadMarker+1)
			} else {
				_, from = prefixBounds(multipartKeyPrefix(bucket, keyMarker))
			}
			if from == nil {
				return
			}
			if bytes.Compare(from, lo) > 0 {
				lo = from
			}
		}
		if hi != nil && bytes.Compare(lo, hi) >= 0 {
			return
		}
		if hi == nil {
			_, hi = tableBounds(tMultipart)
		}
		t.scan(lo, hi, func(k, v []byte) bool {
			if len(out.Uploads) == max {
				out.IsTruncated = true
				return false
			}
			key, uid := decodeMultipartKey(k, bucket)
			r := mustDecode[multipartRecord](v)
			out.Uploads = append(out.Uploads, MultipartUpload{Bucket: bucket, Key: key, UID: uid, Meta: r.Meta, Initiated: r.Initiated})
			out.NextKey, out.NextUID = key, uid
			return true
		})
	})
	return out, err
}

// MultipartParts lists up to max parts (max ≤ 0 means DefaultListMax) of
// the multipart upload uid of bucket/key with a number above after, by
// number. It returns an *Error wrapping ErrNoSuchUpload if there is no
// such upload.
func (f *FSM) MultipartParts(bucket, key string, uid osprey.UID, after uint32, max int) (PartList, error) {
	out := PartList{Parts: []Chunk{}}
	if max <= 0 {
		max = DefaultListMax
	}
	if checkKey(bucket, key) != nil {
		return out, errorf(ErrNoSuchUpload, "no upload %s for %s/%s", uid, bucket, key)
	}
	var err error
	f.read(func(t *tx) {
		if _, ok := t.multipart(bucket, key, uid); !ok {
			err = errorf(ErrNoSuchUpload, "no upload %s for %s/%s", uid, bucket, key)
			return
		}
		_, hi := prefixBounds(upChunkPrefix(uid))
		if after == ^uint32(0) {
			return
		}
		t.scan(upChunkKey(uid, after+1), hi, func(k, v []byte) bool {
			if len(out.Parts) == max {
				out.IsTruncated = true
				return false
			}
			ch := mustDecode[Chunk](v)
			out.Parts = append(out.Parts, *ch)
			out.Next = ch.Num
			return true
		})
	})
	return out, err
}
