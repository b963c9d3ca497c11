package s3mem

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/osprey-storage/osprey/s3api"
)

// Backend is an in-memory s3api.Backend, safe for concurrent use. Stored
// byte slices are never modified after being stored, so readers may hold
// them without the lock.
type Backend struct {
	mu      sync.Mutex
	now     func() time.Time
	buckets map[string]*bucket
}

var _ s3api.Backend = (*Backend)(nil)

type bucket struct {
	created time.Time
	objects map[string]*object
	uploads map[string]*upload
}

type object struct {
	info s3api.ObjectInfo
	data []byte
}

type upload struct {
	key       string
	id        string
	initiated time.Time
	meta      s3api.ObjectMeta
	parts     map[int]*part
}

type part struct {
	info s3api.PartInfo
	data []byte
}

// New returns an empty Backend using time.Now for timestamps.
func New() *Backend {
	return &Backend{now: time.Now, buckets: map[string]*bucket{}}
}

func (b *Backend) bucket(name string) (*bucket, error) {
	bk, ok := b.buckets[name]
	if !ok {
		return nil, fmt.Errorf("s3mem: bucket %q: %w", name, s3api.ErrNoSuchBucket)
	}
	return bk, nil
}

func cloneMeta(m s3api.ObjectMeta) s3api.ObjectMeta {
	if m.UserMeta != nil {
		um := make(map[string]string, len(m.UserMeta))
		for k, v := range m.UserMeta {
			um[k] = v
		}
		m.UserMeta = um
	}
	return m
}

func cloneInfo(o s3api.ObjectInfo) s3api.ObjectInfo {
	o.Meta = cloneMeta(o.Meta)
	return o
}

// readExactly reads exactly size bytes from body (outside the lock).
func readExactly(body io.Reader, size int64) ([]byte, error) {
	data := make([]byte, size)
	if _, err := io.ReadFull(body, data); err != nil {
		return nil, fmt.Errorf("s3mem: read body: %w", err)
	}
	return data, nil
}

// ListBuckets implements s3api.Backend.
func (b *Backend) ListBuckets(ctx context.Context) ([]s3api.BucketInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]s3api.BucketInfo, 0, len(b.buckets))
	for name, bk := range b.buckets {
		out = append(out, s3api.BucketInfo{Name: name, Created: bk.created})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// CreateBucket implements s3api.Backend.
func (b *Backend) CreateBucket(ctx context.Context, name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.buckets[name]; ok {
		return fmt.Errorf("s3mem: bucket %q: %w", name, s3api.ErrBucketExists)
	}
	b.buckets[name] = &bucket{created: b.now().UTC(), objects: map[string]*object{}, uploads: map[string]*upload{}}
	return nil
}

// HeadBucket implements s3api.Backend.
func (b *Backend) HeadBucket(ctx context.Context, name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, err := b.bucket(name)
	return err
}

// DeleteBucket implements s3api.Backend.
func (b *Backend) DeleteBucket(ctx context.Context, name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	bk, err := b.bucket(name)
	if err != nil {
		return err
	}
	if len(bk.objects) > 0 {
		return fmt.Errorf("s3mem: bucket %q: %w", name, s3api.ErrBucketNotEmpty)
	}
	delete(b.buckets, name)
	return nil
}

// PutObject implements s3api.Backend.
func (b *Backend) PutObject(ctx context.Context, bucketName, key string, body io.Reader, size int64, meta s3api.ObjectMeta) (s3api.ObjectInfo, error) {
	if err := b.HeadBucket(ctx, bucketName); err != nil {
		return s3api.ObjectInfo{}, err
	}
	data, err := readExactly(body, size)
	if err != nil {
		return s3api.ObjectInfo{}, err
	}
	sum := md5.Sum(data)
	return b.store(bucketName, key, data, hex.EncodeToString(sum[:]), meta)
}

func (b *Backend) store(bucketName, key string, data []byte, etag string, meta s3api.ObjectMeta) (s3api.ObjectInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bk, err := b.bucket(bucketName)
	if err != nil {
		return s3api.ObjectInfo{}, err
	}
	info := s3api.ObjectInfo{
		Bucket: bucketName, Key: key, Size: int64(len(data)), ETag: etag,
		ModTime: b.now().UTC(), Meta: cloneMeta(meta),
	}
	bk.objects[key] = &object{info: info, data: data}
	return cloneInfo(info), nil
}

func (b *Backend) object(bucketName, key string) (*object, error) {
	bk, err := b.bucket(bucketName)
	if err != nil {
		return nil, err
	}
	o, ok := bk.objects[key]
	if !ok {
		return nil, fmt.Errorf("s3mem: %s/%s: %w", bucketName, key, s3api.ErrNoSuchKey)
	}
	return o, nil
}

// GetObject implements s3api.Backend.
func (b *Backend) GetObject(ctx context.Context, bucketName, key string, offset, length int64) (s3api.ObjectInfo, io.ReadCloser, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	o, err := b.object(bucketName, key)
	if err != nil {
		return s3api.ObjectInfo{}, nil, err
	}
	size := int64(len(o.data))
	if offset < 0 || offset > size {
		return s3api.ObjectInfo{}, nil, fmt.Errorf("s3mem: offset %d of %d-byte object: %w", offset, size, s3api.ErrInvalidRange)
	}
	end := size
	if length >= 0 && offset+length < size {
		end = offset + length
	}
	return cloneInfo(o.info), io.NopCloser(bytes.NewReader(o.data[offset:end])), nil
}

// HeadObject implements s3api.Backend.
func (b *Backend) HeadObject(ctx context.Context, bucketName, key string) (s3api.ObjectInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	o, err := b.object(bucketName, key)
	if err != nil {
		return s3api.ObjectInfo{}, err
	}
	return cloneInfo(o.info), nil
}

// DeleteObject implements s3api.Backend.
func (b *Backend) DeleteObject(ctx context.Context, bucketName, key string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	bk, err := b.bucket(bucketName)
	if err != nil {
		return err
	}
	delete(bk.objects, key)
	return nil
}

// CopyObject implements s3api.Backend.
func (b *Backend) CopyObject(ctx context.Context, srcBucket, srcKey, dstBucket, dstKey string, meta *s3api.ObjectMeta) (s3api.ObjectInfo, error) {
	b.mu.Lock()
	src, err := b.object(srcBucket, srcKey)
	b.mu.Unlock()
	if err != nil {
		return s3api.ObjectInfo{}, err
	}
	m := src.info.Meta
	if meta != nil {
		m = *meta
	}
	return b.store(dstBucket, dstKey, src.data, src.info.ETag, m)
}

// ListObjects implements s3api.Backend (delimiter-aware, see
// s3api.ListOptions).
func (b *Backend) ListObjects(ctx context.Context, bucketName string, opts s3api.ListOptions) (s3api.ListResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bk, err := b.bucket(bucketName)
	if err != nil {
		return s3api.ListResult{}, err
	}
	keys := make([]string, 0, len(bk.objects))
	for k := range bk.objects {
		if strings.HasPrefix(k, opts.Prefix) && k > opts.StartAfter {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var res s3api.ListResult
	count := 0
	last := ""
	for _, k := range keys {
		cp := ""
		if opts.Delimiter != "" {
			if i := strings.Index(k[len(opts.Prefix):], opts.Delimiter); i >= 0 {
				cp = k[:len(opts.Prefix)+i+len(opts.Delimiter)]
			}
		}
		if cp != "" && (cp <= opts.StartAfter || cp == last) {
			continue // already returned, or before the resume point
		}
		if count == opts.MaxKeys {
			res.IsTruncated = true
			res.NextStartAfter = last
			break
		}
		if cp != "" {
			res.CommonPrefixes = append(res.CommonPrefixes, cp)
			last = cp
		} else {
			res.Objects = append(res.Objects, cloneInfo(bk.objects[k].info))
			last = k
		}
		count++
	}
	return res, nil
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// CreateMultipartUpload implements s3api.Backend.
func (b *Backend) CreateMultipartUpload(ctx context.Context, bucketName, key string, meta s3api.ObjectMeta) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bk, err := b.bucket(bucketName)
	if err != nil {
		return "", err
	}
	u := &upload{key: key, id: newID(), initiated: b.now().UTC(), meta: cloneMeta(meta), parts: map[int]*part{}}
	bk.uploads[u.id] = u
	return u.id, nil
}

func (b *Backend) upload(bucketName, key, id string) (*bucket, *upload, error) {
	bk, err := b.bucket(bucketName)
	if err != nil {
		return nil, nil, err
	}
	u, ok := bk.uploads[id]
	if !ok || u.key != key {
		return nil, nil, fmt.Errorf("s3mem: upload %q: %w", id, s3api.ErrNoSuchUpload)
	}
	return bk, u, nil
}

// UploadPart implements s3api.Backend.
func (b *Backend) UploadPart(ctx context.Context, bucketName, key, uploadID string, num int, body io.Reader, size int64) (s3api.PartInfo, error) {
	b.mu.Lock()
	_, _, err := b.upload(bucketName, key, uploadID)
	b.mu.Unlock()
	if err != nil {
		return s3api.PartInfo{}, err
	}
	data, err := readExactly(body, size)
	if err != nil {
		return s3api.PartInfo{}, err
	}
	sum := md5.Sum(data)
	b.mu.Lock()
	defer b.mu.Unlock()
	_, u, err := b.upload(bucketName, key, uploadID)
	if err != nil {
		return s3api.PartInfo{}, err
	}
	p := &part{info: s3api.PartInfo{Number: num, ETag: hex.EncodeToString(sum[:]), Size: size, ModTime: b.now().UTC()}, data: data}
	u.parts[num] = p
	return p.info, nil
}

func sortedParts(u *upload) []s3api.PartInfo {
	out := make([]s3api.PartInfo, 0, len(u.parts))
	for _, p := range u.parts {
		out = append(out, p.info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out
}

// CompleteMultipartUpload implements s3api.Backend. It re-checks the part
// list with s3api.ValidateCompleteParts.
func (b *Backend) CompleteMultipartUpload(ctx context.Context, bucketName, key, uploadID string, parts []s3api.CompletePart) (s3api.ObjectInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bk, u, err := b.upload(bucketName, key, uploadID)
	if err != nil {
		return s3api.ObjectInfo{}, err
	}
	if err := s3api.ValidateCompleteParts(parts, sortedParts(u)); err != nil {
		return s3api.ObjectInfo{}, fmt.Errorf("s3mem: complete: %w", err)
	}
	etag, err := s3api.MultipartETag(parts)
	if err != nil {
		return s3api.ObjectInfo{}, fmt.Errorf("s3mem: complete: %w", err)
	}
	var size int
	for _, p := range parts {
		size += len(u.parts[p.Number].data)
	}
	data := make([]byte, 0, size)
	for _, p := range parts {
		data = append(data, u.parts[p.Number].data...)
	}
	info := s3api.ObjectInfo{Bucket: bucketName, Key: key, Size: int64(size), ETag: etag, ModTime: b.now().UTC(), Meta: u.meta}
	bk.objects[key] = &object{info: info, data: data}
	delete(bk.uploads, uploadID)
	return cloneInfo(info), nil
}

// AbortMultipartUpload implements s3api.Backend.
func (b *Backend) AbortMultipartUpload(ctx context.Context, bucketName, key, uploadID string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	bk, _, err := b.upload(bucketName, key, uploadID)
	if err != nil {
		return err
	}
	delete(bk.uploads, uploadID)
	return nil
}

// ListParts implements s3api.Backend.
func (b *Backend) ListParts(ctx context.Context, bucketName, key, uploadID string, marker, max int) (s3api.PartsResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, u, err := b.upload(bucketName, key, uploadID)
	if err != nil {
		return s3api.PartsResult{}, err
	}
	var res s3api.PartsResult
	for _, p := range sortedParts(u) {
		if p.Number <= marker {
			continue
		}
		if len(res.Parts) == max {
			res.IsTruncated = true
			break
		}
		res.Parts = append(res.Parts, p)
		res.NextPartNumberMarker = p.Number
	}
	return res, nil
}

// ListMultipartUploads implements s3api.Backend.
func (b *Backend) ListMultipartUploads(ctx context.Context, bucketName string, opts s3api.UploadsOptions) (s3api.UploadsResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bk, err := b.bucket(bucketName)
	if err != nil {
		return s3api.UploadsResult{}, err
	}
	var all []*upload
	for _, u := range bk.uploads {
		if !strings.HasPrefix(u.key, opts.Prefix) {
			continue
		}
		if u.key < opts.KeyMarker || (u.key == opts.KeyMarker && (opts.UploadIDMarker == "" || u.id <= opts.UploadIDMarker)) {
			continue
		}
		all = append(all, u)
	}
	sort.Slice(all, func(i, j int) bool {
		a, c := all[i], all[j]
		if a.key != c.key {
			return a.key < c.key
		}
		return a.id < c.id
	})
	var res s3api.UploadsResult
	lastPrefix := ""
	for _, u := range all {
		cp := ""
		if opts.Delimiter != "" {
			if i := strings.Index(u.key[len(opts.Prefix):], opts.Delimiter); i >= 0 {
				cp = u.key[:len(opts.Prefix)+i+len(opts.Delimiter)]
			}
		}
		if cp != "" && (cp <= opts.KeyMarker || cp == lastPrefix) {
			continue
		}
		if len(res.Uploads)+len(res.CommonPrefixes) == opts.MaxUploads {
			res.IsTruncated = true
			break
		}
		if cp != "" {
			res.CommonPrefixes = append(res.CommonPrefixes, cp)
			lastPrefix = cp
			res.NextKeyMarker, res.NextUploadIDMarker = cp, ""
			continue
		}
		res.Uploads = append(res.Uploads, s3api.UploadInfo{Key: u.key, UploadID: u.id, Initiated: u.initiated})
		res.NextKeyMarker, res.NextUploadIDMarker = u.key, u.id
	}
	return res, nil
}
