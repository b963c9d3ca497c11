// Package s3gw is the S3 gateway's storage side: it implements
// s3api.Backend over the same metadata (the fsm's bucket/key index) and
// the same data path as the native API. A PUT is a single upload bound to
// a key; a multipart upload is a chunked upload whose chunks are the parts;
// a copy is a dedup alias of the source's content. One storage pipeline,
// two front doors.
//
// Every read is linearizable (a read barrier first), so an object written
// through any node is read back through any other.
package s3gw

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/datapath"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
	"github.com/osprey-storage/osprey/s3api"
)

// State is what the gateway reads from the replicated state.
type State interface {
	Buckets() []fsm.Bucket
	Bucket(name string) (fsm.Bucket, bool)
	Object(bucket, key string) (fsm.Object, bool)
	ListObjects(bucket, prefix, startAfter, delimiter string, max int) (fsm.ObjectList, error)
	MultipartUploadOf(uid osprey.UID) (fsm.MultipartUpload, bool)
	MultipartUploads(bucket, prefix, keyMarker string, uploadMarker osprey.UID, max int) (fsm.UploadList, error)
	MultipartParts(bucket, key string, uid osprey.UID, after uint32, max int) (fsm.PartList, error)
}

// Proposer proposes commands and makes local reads linearizable.
type Proposer interface {
	Apply(ctx context.Context, t fsm.CommandType, payload, out any) error
	ReadBarrier(ctx context.Context) error
}

// Data is the part of the data path the gateway stores and reads bytes
// through.
type Data interface {
	StageHashed(ctx context.Context, body io.Reader, size int64, wantMD5 string) (datapath.Staged, error)
	Discard(chunks []fsm.Chunk)
	UploadPart(ctx context.Context, uid osprey.UID, num uint32, body io.Reader, size int64) (md5 string, err error)
	Resume(ctx context.Context, items []httpapi.ResumeItem) ([]osprey.UID, error)
	Open(ctx context.Context, uid osprey.UID) (*httpapi.Object, error)
	OpenStaged(ctx context.Context, chunks []fsm.Chunk, off, length int64) io.ReadCloser
	Delete(ctx context.Context, uid osprey.UID) error
}

// UIDs mints cluster-unique ids (multipart upload ids).
type UIDs interface {
	NextUID() (osprey.UID, error)
}

// Config configures a Gateway.
type Config struct {
	State    State
	Proposer Proposer
	Data     Data
	UIDs     UIDs
	// MaxPartSize is the largest part UploadPart takes (the data path's
	// chunk limit); larger parts answer EntityTooLarge.
	MaxPartSize int64
	Logger      *slog.Logger
}

// Gateway implements s3api.Backend.
type Gateway struct {
	cfg Config
	log *slog.Logger

	// known remembers buckets this replica found for bucketKnownFor, so a
	// PUT does not read and decode the bucket record again (5% of a node's
	// CPU under 4 KiB PUTs). Only a bucket's existence is remembered; every
	// write is checked against the bucket again when its entry applies.
	knownMu sync.Mutex
	known   map[string]time.Time // bucket → when it was seen
}

// bucketKnownFor is how long a bucket seen to exist is taken to exist
// without reading its record; a bucket deleted meanwhile (through another
// node) fails the write when its entry applies, as before.
const bucketKnownFor = time.Second

var _ s3api.Backend = (*Gateway)(nil)

// New returns a Gateway.
func New(cfg Config) (*Gateway, error) {
	if cfg.State == nil || cfg.Proposer == nil || cfg.Data == nil || cfg.UIDs == nil {
		return nil, errors.New("s3gw: State, Proposer, Data and UIDs are required")
	}
	if cfg.MaxPartSize <= 0 {
		return nil, errors.New("s3gw: MaxPartSize must be positive")
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.Default()
	}
	return &Gateway{cfg: cfg, log: lg.With("component", "s3gw"), known: map[string]time.Time{}}, nil
}

func now() int64 { return time.Now().UnixMilli() }

// --- buckets ---

// ListBuckets lists every bucket.
func (g *Gateway) ListBuckets(ctx context.Context) ([]s3api.BucketInfo, error) {
	if err := g.cfg.Proposer.ReadBarrier(ctx); err != nil {
		return nil, mapErr(err)
	}
	var out []s3api.BucketInfo
	for _, b := range g.cfg.State.Buckets() {
		out = append(out, s3api.BucketInfo{Name: b.Name, Created: time.UnixMilli(b.Created).UTC()})
	}
	return out, nil
}

// CreateBucket creates a bucket.
func (g *Gateway) CreateBucket(ctx context.Context, bucket string) error {
	return mapErr(g.cfg.Proposer.Apply(ctx, fsm.CmdBucketCreate, fsm.BucketCreate{Name: bucket, Time: now()}, nil),
		kindMap{osprey.ErrConflict, s3api.ErrBucketExists})
}

// HeadBucket reports whether a bucket exists.
func (g *Gateway) HeadBucket(ctx context.Context, bucket string) error {
	if err := g.cfg.Proposer.ReadBarrier(ctx); err != nil {
		return mapErr(err)
	}
	if _, ok := g.cfg.State.Bucket(bucket); !ok {
		return fmt.Errorf("%w: %s", s3api.ErrNoSuchBucket, bucket)
	}
	return nil
}

// DeleteBucket deletes a bucket without objects; multipart uploads still
// in progress in it are aborted first (as S3 does), their parts collected.
func (g *Gateway) DeleteBucket(ctx context.Context, bucket string) error {
	defer g.forgetBucket(bucket)
	if err := g.HeadBucket(ctx, bucket); err != nil {
		return err
	}
	if b, ok := g.cfg.State.Bucket(bucket); ok && b.Objects == 0 && b.Uploads > 0 {
		for {
			page, err := g.cfg.State.MultipartUploads(bucket, "", "", 0, 1000)
			if err != nil {
				return mapErr(err)
			}
			for _, u := range page.Uploads {
				abort := fsm.MultipartAbort{Bucket: bucket, Key: u.Key, UID: u.UID, Time: now()}
				if err := g.cfg.Proposer.Apply(ctx, fsm.CmdMultipartAbort, abort, nil); err != nil && !errors.Is(err, osprey.ErrNotFound) {
					return mapErr(err)
				}
			}
			if !page.IsTruncated {
				break
			}
		}
	}
	return mapErr(g.cfg.Proposer.Apply(ctx, fsm.CmdBucketDelete, fsm.BucketDelete{Name: bucket}, nil),
		bucketMissing, kindMap{osprey.ErrConflict, s3api.ErrBucketNotEmpty})
}

// bucketExists checks a bucket without a read barrier when this replica
// already knows it (buckets are rarely deleted, and a write into a bucket
// deleted meanwhile fails at the bind), with one when it does not.
func (g *Gateway) bucketExists(ctx context.Context, bucket string) error {
	g.knownMu.Lock()
	seen, ok := g.known[bucket]
	g.knownMu.Unlock()
	if ok && time.Since(seen) < bucketKnownFor {
		return nil
	}
	if _, ok := g.cfg.State.Bucket(bucket); !ok {
		if err := g.HeadBucket(ctx, bucket); err != nil {
			return err
		}
	}
	g.knownMu.Lock()
	if len(g.known) >= 4096 {
		clear(g.known) // bounded: the next PUT per bucket reads it again
	}
	g.known[bucket] = time.Now()
	g.knownMu.Unlock()
	return nil
}

// forgetBucket drops bucket from the buckets known to exist.
func (g *Gateway) forgetBucket(bucket string) {
	g.knownMu.Lock()
	delete(g.known, bucket)
	g.knownMu.Unlock()
}

// --- objects ---

// fileOf names the native file behind a key: the key's last element, and
// osproxy's bucket for its extension ("unknown" without one), which names
// the backend bucket the content is tiered to.
func fileOf(key string) httpapi.NewFile {
	name := path.Base(key)
	if name == "." || name == "/" || name == "" {
		name = key
	}
	nb, err := osprey.BucketFor(key)
	if err != nil {
		nb = "unknown"
	}
	return httpapi.NewFile{Name: name, Bucket: nb}
}

// PutObject stages body and records it in one entry (fsm.ObjectPut):
// the file is created, completed (deduplicated onto known content) and
// bound to the key together, so readers see the old object or the new
// one, never neither, and a PUT costs one consensus round trip.
func (g *Gateway) PutObject(ctx context.Context, bucket, key string, body io.Reader, size int64, meta s3api.ObjectMeta) (s3api.ObjectInfo, error) {
	if err := g.bucketExists(ctx, bucket); err != nil {
		return s3api.ObjectInfo{}, err
	}
	uid, err := g.cfg.UIDs.NextUID()
	if err != nil {
		return s3api.ObjectInfo{}, mapErr(err)
	}
	st, err := g.cfg.Data.StageHashed(ctx, body, size, "")
	chunks, n, sum := st.Chunks, st.Size, st.MD5
	if err == nil && size >= 0 && n != size {
		g.cfg.Data.Discard(chunks)
		err = fmt.Errorf("%w: body has %d bytes, Content-Length said %d", s3api.ErrIncompleteBody, n, size)
	}
	if err != nil {
		return s3api.ObjectInfo{}, mapErr(err)
	}
	f := fileOf(key)
	m := toFSMMeta(meta)
	m.ETag = sum
	t := now()
	cmd := fsm.ObjectPut{Bucket: bucket, Key: key, UID: uid, Name: f.Name, FileBucket: f.Bucket,
		Chunks: chunks, Size: n, MD5: sum, SHA256: st.SHA256, Meta: m, Time: t}
	if err := g.cfg.Proposer.Apply(ctx, fsm.CmdObjectPut, cmd, nil); err != nil {
		if !errors.Is(err, osprey.ErrIndeterminate) {
			g.cfg.Data.Discard(chunks) // certainly not recorded
		}
		return s3api.ObjectInfo{}, mapErr(err, bucketMissing)
	}
	return s3api.ObjectInfo{Bucket: bucket, Key: key, Size: n, ETag: sum, ModTime: time.UnixMilli(t).UTC(),
		Meta: meta, UID: uid.String()}, nil
}

// bind binds bucket/key to a complete uid.
func (g *Gateway) bind(ctx context.Context, bucket, key string, uid osprey.UID, size int64, md5hex string, meta s3api.ObjectMeta, etag string) (s3api.ObjectInfo, error) {
	m := toFSMMeta(meta)
	m.ETag = etag
	t := now()
	var res fsm.BindResult
	if err := g.cfg.Proposer.Apply(ctx, fsm.CmdObjectBind, fsm.ObjectBind{Bucket: bucket, Key: key, UID: uid, Meta: m, Time: t}, &res); err != nil {
		if !errors.Is(err, osprey.ErrIndeterminate) {
			g.abandon(uid)
		}
		return s3api.ObjectInfo{}, mapErr(err, bucketMissing)
	}
	return s3api.ObjectInfo{Bucket: bucket, Key: key, Size: size, ETag: etag, ModTime: time.UnixMilli(t).UTC(),
		Meta: meta, UID: uid.String()}, nil
}

// abandon deletes a file that never got bound (best effort: an uploading
// file left behind expires like any abandoned upload).
func (g *Gateway) abandon(uid osprey.UID) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.cfg.Data.Delete(ctx, uid); err != nil && !errors.Is(err, osprey.ErrNotFound) {
		g.log.Debug("abandoned upload not deleted; it expires", "uid", uid, "err", err)
	}
}

// lookup resolves a key after a read barrier.
func (g *Gateway) lookup(ctx context.Context, bucket, key string) (fsm.Object, error) {
	if err := g.cfg.Proposer.ReadBarrier(ctx); err != nil {
		return fsm.Object{}, mapErr(err)
	}
	if o, ok := g.cfg.State.Object(bucket, key); ok {
		return o, nil
	}
	if _, ok := g.cfg.State.Bucket(bucket); !ok {
		return fsm.Object{}, fmt.Errorf("%w: %s", s3api.ErrNoSuchBucket, bucket)
	}
	return fsm.Object{}, fmt.Errorf("%w: %s/%s", s3api.ErrNoSuchKey, bucket, key)
}

func objectInfo(o fsm.Object) s3api.ObjectInfo {
	etag := o.Meta.ETag
	if etag == "" {
		etag = o.MD5
	}
	return s3api.ObjectInfo{Bucket: o.Bucket, Key: o.Key, Size: o.Size, ETag: etag,
		ModTime: time.UnixMilli(o.Time).UTC(), Meta: fromFSMMeta(o.Meta), UID: o.UID.String()}
}

// HeadObject returns a key's metadata.
func (g *Gateway) HeadObject(ctx context.Context, bucket, key string) (s3api.ObjectInfo, error) {
	o, err := g.lookup(ctx, bucket, key)
	if err != nil {
		return s3api.ObjectInfo{}, err
	}
	return objectInfo(o), nil
}

// GetObject opens length bytes at offset of a key (length -1: to the end).
// If the key is overwritten between the lookup and the open (the old file
// deleted), it resolves the key again: a reader gets the old object or the
// new one.
func (g *Gateway) GetObject(ctx context.Context, bucket, key string, offset, length int64) (s3api.ObjectInfo, io.ReadCloser, error) {
	for attempt := 0; ; attempt++ {
		o, err := g.lookup(ctx, bucket, key)
		if err != nil {
			return s3api.ObjectInfo{}, nil, err
		}
		if length < 0 || offset+length > o.Size {
			length = o.Size - offset // to the end, as S3 clamps a range
		}
		if offset < 0 || length < 0 || offset+length > o.Size {
			return s3api.ObjectInfo{}, nil, fmt.Errorf("%w: %d+%d of %d bytes", s3api.ErrInvalidRange, offset, length, o.Size)
		}
		obj, err := g.cfg.Data.Open(ctx, o.UID)
		if errors.Is(err, osprey.ErrNotFound) && attempt < 3 {
			continue // overwritten or deleted meanwhile
		}
		if err != nil {
			return s3api.ObjectInfo{}, nil, mapErr(err)
		}
		rc, err := obj.Reader(ctx, offset, length)
		if err != nil {
			return s3api.ObjectInfo{}, nil, mapErr(err)
		}
		return objectInfo(o), rc, nil
	}
}

// DeleteObject removes a key (no error if it is absent).
func (g *Gateway) DeleteObject(ctx context.Context, bucket, key string) error {
	if err := g.bucketExists(ctx, bucket); err != nil {
		return err
	}
	return mapErr(g.cfg.Proposer.Apply(ctx, fsm.CmdObjectUnbind, fsm.ObjectUnbind{Bucket: bucket, Key: key, Time: now()}, nil), bucketMissing)
}

// CopyObject binds dst to a new uid sharing the source's content (no bytes
// move); meta nil keeps the source's metadata.
func (g *Gateway) CopyObject(ctx context.Context, srcBucket, srcKey, dstBucket, dstKey string, meta *s3api.ObjectMeta) (s3api.ObjectInfo, error) {
	src, err := g.lookup(ctx, srcBucket, srcKey)
	if err != nil {
		return s3api.ObjectInfo{}, err
	}
	if err := g.bucketExists(ctx, dstBucket); err != nil {
		return s3api.ObjectInfo{}, err
	}
	m := fromFSMMeta(src.Meta)
	if meta != nil {
		m = *meta
	}
	etag := src.Meta.ETag
	if etag == "" {
		etag = src.MD5
	}
	f := fileOf(dstKey)
	uids, err := g.cfg.Data.Resume(ctx, []httpapi.ResumeItem{{Name: f.Name, Bucket: f.Bucket, MD5: src.MD5}})
	if err == nil && len(uids) == 1 && uids[0] != 0 {
		return g.bind(ctx, dstBucket, dstKey, uids[0], src.Size, src.MD5, m, etag)
	}
	// The content is not a dedup target (failed or lost, say): copy the
	// bytes.
	_, rc, err := g.GetObject(ctx, srcBucket, srcKey, 0, -1)
	if err != nil {
		return s3api.ObjectInfo{}, err
	}
	defer rc.Close()
	info, err := g.PutObject(ctx, dstBucket, dstKey, rc, src.Size, m)
	if err != nil {
		return s3api.ObjectInfo{}, err
	}
	info.ETag = etag
	return info, nil
}

// ListObjects lists a bucket's keys in byte order.
func (g *Gateway) ListObjects(ctx context.Context, bucket string, opts s3api.ListOptions) (s3api.ListResult, error) {
	if err := g.HeadBucket(ctx, bucket); err != nil {
		return s3api.ListResult{}, err
	}
	page, err := g.cfg.State.ListObjects(bucket, opts.Prefix, opts.StartAfter, opts.Delimiter, opts.MaxKeys)
	if err != nil {
		return s3api.ListResult{}, mapErr(err)
	}
	res := s3api.ListResult{CommonPrefixes: page.CommonPrefixes, IsTruncated: page.IsTruncated, NextStartAfter: page.Next}
	for _, o := range page.Objects {
		res.Objects = append(res.Objects, objectInfo(o))
	}
	return res, nil
}

// --- multipart ---

// CreateMultipartUpload starts a multipart upload; its id is the uid of
// the file its parts become.
func (g *Gateway) CreateMultipartUpload(ctx context.Context, bucket, key string, meta s3api.ObjectMeta) (string, error) {
	if err := g.bucketExists(ctx, bucket); err != nil {
		return "", err
	}
	uid, err := g.cfg.UIDs.NextUID()
	if err != nil {
		return "", mapErr(err)
	}
	f := fileOf(key)
	cmd := fsm.MultipartCreate{Bucket: bucket, Key: key, UID: uid, Name: f.Name, FileBucket: f.Bucket, Meta: toFSMMeta(meta), Time: now()}
	if err := g.cfg.Proposer.Apply(ctx, fsm.CmdMultipartCreate, cmd, nil); err != nil {
		return "", mapErr(err, bucketMissing)
	}
	return uid.String(), nil
}

// upload resolves an upload id of bucket/key.
func (g *Gateway) upload(ctx context.Context, bucket, key, uploadID string, barrier bool) (osprey.UID, error) {
	uid, err := osprey.ParseUID(uploadID)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", s3api.ErrNoSuchUpload, uploadID)
	}
	u, ok := g.cfg.State.MultipartUploadOf(uid)
	if !ok && !barrier {
		return g.upload(ctx, bucket, key, uploadID, true)
	}
	if barrier {
		if err := g.cfg.Proposer.ReadBarrier(ctx); err != nil {
			return 0, mapErr(err)
		}
		u, ok = g.cfg.State.MultipartUploadOf(uid)
	}
	if !ok || u.Bucket != bucket || u.Key != key {
		return 0, fmt.Errorf("%w: %s for %s/%s", s3api.ErrNoSuchUpload, uploadID, bucket, key)
	}
	return uid, nil
}

// UploadPart stores one part as the upload's chunk number part.
func (g *Gateway) UploadPart(ctx context.Context, bucket, key, uploadID string, part int, body io.Reader, size int64) (s3api.PartInfo, error) {
	uid, err := g.upload(ctx, bucket, key, uploadID, false)
	if err != nil {
		return s3api.PartInfo{}, err
	}
	if size > g.cfg.MaxPartSize {
		return s3api.PartInfo{}, fmt.Errorf("%w: part of %d bytes; this cluster takes parts of at most %d bytes (--max-chunk-size)",
			s3api.ErrEntityTooLarge, size, g.cfg.MaxPartSize)
	}
	counted := &countingReader{r: body}
	sum, err := g.cfg.Data.UploadPart(ctx, uid, uint32(part), counted, size)
	if err != nil {
		return s3api.PartInfo{}, mapErr(err, uploadMissing, kindMap{osprey.ErrConflict, s3api.ErrNoSuchUpload})
	}
	return s3api.PartInfo{Number: part, ETag: sum, Size: counted.n, ModTime: time.Now().UTC()}, nil
}

// MinPartSize is the smallest part S3 allows but for the last.
const MinPartSize = 5 << 20

// CompleteMultipartUpload completes an upload from exactly the listed
// parts: each must be stored with the given ETag, in ascending order, all
// but the last at least MinPartSize. The object's md5 (the dedup key and
// what tiering verifies) is computed by reading the parts back once.
func (g *Gateway) CompleteMultipartUpload(ctx context.Context, bucket, key, uploadID string, parts []s3api.CompletePart) (s3api.ObjectInfo, error) {
	uid, err := g.upload(ctx, bucket, key, uploadID, true)
	if err != nil {
		return s3api.ObjectInfo{}, err
	}
	if len(parts) == 0 {
		return s3api.ObjectInfo{}, fmt.Errorf("%w: no parts listed", s3api.ErrInvalidPart)
	}
	stored := map[uint32]fsm.Chunk{}
	for after := uint32(0); ; {
		page, err := g.cfg.State.MultipartParts(bucket, key, uid, after, 1000)
		if err != nil {
			return s3api.ObjectInfo{}, mapErr(err)
		}
		for _, c := range page.Parts {
			stored[c.Num] = c
		}
		if !page.IsTruncated {
			break
		}
		after = page.Next
	}
	chunks := make([]fsm.Chunk, 0, len(parts))
	nums := make([]uint32, 0, len(parts))
	etags := md5.New()
	var size int64
	for i, p := range parts {
		if i > 0 && p.Number <= parts[i-1].Number {
			return s3api.ObjectInfo{}, fmt.Errorf("%w: part %d after part %d", s3api.ErrInvalidPartOrder, p.Number, parts[i-1].Number)
		}
		c, ok := stored[uint32(p.Number)]
		if !ok || p.Number < 1 || normETag(p.ETag) != c.MD5 {
			return s3api.ObjectInfo{}, fmt.Errorf("%w: part %d with ETag %s was not uploaded", s3api.ErrInvalidPart, p.Number, p.ETag)
		}
		if i < len(parts)-1 && c.Size < MinPartSize {
			return s3api.ObjectInfo{}, fmt.Errorf("%w: part %d has %d bytes; all but the last part need at least %d",
				s3api.ErrEntityTooSmall, p.Number, c.Size, MinPartSize)
		}
		sum, _ := hex.DecodeString(c.MD5)
		etags.Write(sum)
		chunks = append(chunks, c)
		nums = append(nums, c.Num)
		size += c.Size
	}
	// The whole-object md5 is not read back here (a second full read of
	// the object on the request path): the tiering pass, which streams
	// every byte anyway, computes and records it (fsm.TierDone.MD5).
	// Each part was verified against its own md5 as it arrived.
	etag := hex.EncodeToString(etags.Sum(nil)) + "-" + strconv.Itoa(len(parts))
	u, _ := g.cfg.State.MultipartUploadOf(uid)
	meta := u.Meta
	meta.ETag = etag
	t := now()
	cmd := fsm.MultipartComplete{Bucket: bucket, Key: key, UID: uid, Parts: nums, Size: size, ETag: etag, Meta: &meta, Time: t}
	if err := g.cfg.Proposer.Apply(ctx, fsm.CmdMultipartComplete, cmd, nil); err != nil {
		return s3api.ObjectInfo{}, mapErr(err, uploadMissing, kindMap{osprey.ErrConflict, s3api.ErrInvalidPart})
	}
	return s3api.ObjectInfo{Bucket: bucket, Key: key, Size: size, ETag: etag, ModTime: time.UnixMilli(t).UTC(),
		Meta: fromFSMMeta(meta), UID: uid.String()}, nil
}

// AbortMultipartUpload drops an upload and its parts.
func (g *Gateway) AbortMultipartUpload(ctx context.Context, bucket, key, uploadID string) error {
	uid, err := g.upload(ctx, bucket, key, uploadID, true)
	if err != nil {
		return err
	}
	return mapErr(g.cfg.Proposer.Apply(ctx, fsm.CmdMultipartAbort, fsm.MultipartAbort{Bucket: bucket, Key: key, UID: uid, Time: now()}, nil), uploadMissing)
}

// ListParts lists an upload's parts after marker.
func (g *Gateway) ListParts(ctx context.Context, bucket, key, uploadID string, marker, maxParts int) (s3api.PartsResult, error) {
	uid, err := g.upload(ctx, bucket, key, uploadID, true)
	if err != nil {
		return s3api.PartsResult{}, err
	}
	page, err := g.cfg.State.MultipartParts(bucket, key, uid, uint32(max(marker, 0)), maxParts)
	if err != nil {
		return s3api.PartsResult{}, mapErr(err)
	}
	res := s3api.PartsResult{IsTruncated: page.IsTruncated, NextPartNumberMarker: int(page.Next)}
	for _, c := range page.Parts {
		res.Parts = append(res.Parts, s3api.PartInfo{Number: int(c.Num), ETag: c.MD5, Size: c.Size})
	}
	return res, nil
}

// ListMultipartUploads lists a bucket's uploads in progress by key and
// upload id; with a delimiter, the keys under one common prefix are
// reported once, as that prefix (counting as one entry).
func (g *Gateway) ListMultipartUploads(ctx context.Context, bucket string, opts s3api.UploadsOptions) (s3api.UploadsResult, error) {
	if err := g.HeadBucket(ctx, bucket); err != nil {
		return s3api.UploadsResult{}, err
	}
	limit := opts.MaxUploads
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	keyMarker := opts.KeyMarker
	var marker osprey.UID
	if opts.UploadIDMarker != "" {
		if u, err := osprey.ParseUID(opts.UploadIDMarker); err == nil {
			marker = u
		}
	}
	var res s3api.UploadsResult
	entries := 0
	for {
		page, err := g.cfg.State.MultipartUploads(bucket, opts.Prefix, keyMarker, marker, limit)
		if err != nil {
			return s3api.UploadsResult{}, mapErr(err)
		}
		for i, u := range page.Uploads {
			if entries == limit {
				res.IsTruncated = true
				return res, nil
			}
			if cp, ok := commonPrefix(u.Key, opts.Prefix, opts.Delimiter); ok {
				if cp <= opts.KeyMarker || (len(res.CommonPrefixes) > 0 && res.CommonPrefixes[len(res.CommonPrefixes)-1] == cp) {
					continue // reported on an earlier page, or just now
				}
				res.CommonPrefixes = append(res.CommonPrefixes, cp)
				res.NextKeyMarker, res.NextUploadIDMarker = cp, ""
			} else {
				res.Uploads = append(res.Uploads, s3api.UploadInfo{Key: u.Key, UploadID: u.UID.String(),
					Initiated: time.UnixMilli(u.Initiated).UTC()})
				res.NextKeyMarker, res.NextUploadIDMarker = u.Key, u.UID.String()
			}
			entries++
			if i == len(page.Uploads)-1 {
				keyMarker, marker = u.Key, u.UID
			}
		}
		if !page.IsTruncated {
			return res, nil
		}
		keyMarker, marker = page.NextKey, page.NextUID
	}
}

// commonPrefix returns the prefix key rolls up into under delimiter, if
// any.
func commonPrefix(key, prefix, delimiter string) (string, bool) {
	if delimiter == "" || !strings.HasPrefix(key, prefix) {
		return "", false
	}
	i := strings.Index(key[len(prefix):], delimiter)
	if i < 0 {
		return "", false
	}
	return key[:len(prefix)+i+len(delimiter)], true
}

// --- helpers ---

func normETag(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	return s
}

func toFSMMeta(m s3api.ObjectMeta) fsm.ObjectMeta {
	return fsm.ObjectMeta{ContentType: m.ContentType, ContentEncoding: m.ContentEncoding,
		ContentDisposition: m.ContentDisposition, CacheControl: m.CacheControl, UserMeta: m.UserMeta}
}

func fromFSMMeta(m fsm.ObjectMeta) s3api.ObjectMeta {
	return s3api.ObjectMeta{ContentType: m.ContentType, ContentEncoding: m.ContentEncoding,
		ContentDisposition: m.ContentDisposition, CacheControl: m.CacheControl, UserMeta: m.UserMeta}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// mapErr turns the fsm's and the data path's errors into the S3 layer's
// sentinels (kept wrapped, so the message says what happened); what is
// not S3-specific keeps its osprey kind (unavailable, indeterminate, ...).
// A command a follower forwarded to the leader comes back with its kind
// (not found, conflict) and message only, so each operation also says what
// a bare kind means for it (see mapFor).
func mapErr(err error, kinds ...kindMap) error {
	if err == nil {
		return nil
	}
	for _, m := range []struct{ from, to error }{
		{fsm.ErrNoSuchBucket, s3api.ErrNoSuchBucket},
		{fsm.ErrBucketExists, s3api.ErrBucketExists},
		{fsm.ErrBucketNotEmpty, s3api.ErrBucketNotEmpty},
		{fsm.ErrNoSuchUpload, s3api.ErrNoSuchUpload},
		{fsm.ErrInvalidPart, s3api.ErrInvalidPart},
		{osprey.ErrTooLarge, s3api.ErrEntityTooLarge},
	} {
		if errors.Is(err, m.from) {
			return fmt.Errorf("%w: %w", m.to, err)
		}
	}
	for _, k := range kinds {
		if errors.Is(err, k.kind) {
			return fmt.Errorf("%w: %w", k.to, err)
		}
	}
	return err
}

// kindMap says what an osprey error kind means for one operation.
type kindMap struct{ kind, to error }

var (
	bucketMissing = kindMap{osprey.ErrNotFound, s3api.ErrNoSuchBucket}
	uploadMissing = kindMap{osprey.ErrNotFound, s3api.ErrNoSuchUpload}
)
