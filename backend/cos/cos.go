package cos

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cossdk "github.com/tencentyun/cos-go-sdk-v5"

	"github.com/osprey-storage/osprey/backend"
	"github.com/osprey-storage/osprey/backend/internal/objio"
)

// Backend stores objects in Tencent COS. It is safe for concurrent use.
type Backend struct {
	cfg       Config
	http      *http.Client
	transport *http.Transport
	logger    *slog.Logger
	closed    atomic.Bool

	// COS addresses every bucket by its own host name, so each bucket
	// gets its own SDK client, made on first use.
	mu      sync.Mutex
	buckets map[string]*bucketClient
	service *cossdk.Client
}

// bucketClient is the SDK client for one COS bucket.
type bucketClient struct {
	*cossdk.Client
	name       string // full COS bucket name "<prefix><bucket>-<appid>"
	sourceHost string // host naming the bucket in x-cos-copy-source
}

var _ backend.Backend = (*Backend)(nil)

// New returns a Backend for cfg. It does not contact COS; use Check for
// that.
func New(cfg Config) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tr := objio.NewTransport(objio.TransportConfig{
		Dial:                  cfg.DialContext,
		ConnectTimeout:        cfg.ConnectTimeout,
		ResponseHeaderTimeout: cfg.ResponseHeaderTimeout,
		IOTimeout:             cfg.IOTimeout,
		IdleConnTimeout:       60 * time.Second,
	})
	hc := &http.Client{
		// The SDK's transport signs every request, retries included.
		Transport: &cossdk.AuthorizationTransport{
			SecretID:  cfg.SecretID,
			SecretKey: cfg.SecretKey,
			Transport: tr,
		},
		// Set here: the SDK would set it on first use, racing with
		// concurrent client creation.
		CheckRedirect: objio.NoRedirects,
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	b := &Backend{
		cfg:       cfg,
		http:      hc,
		transport: tr,
		logger:    logger.With("component", "backend", "backend", "cos"),
		buckets:   make(map[string]*bucketClient),
	}
	svc, err := cfg.serviceEndpoints()
	if err != nil {
		return nil, fmt.Errorf("cos: %w: %v", backend.ErrInvalid, err)
	}
	b.service = b.newClient(&cossdk.BaseURL{ServiceURL: svc.url}, svc.host)
	return b, nil
}

func (b *Backend) newClient(u *cossdk.BaseURL, host string) *cossdk.Client {
	c := cossdk.NewClient(u, b.http)
	c.Host = host
	c.UserAgent = "osprey-cos-backend " + cossdk.UserAgent
	c.Conf.RetryOpt.Count = b.cfg.MaxAttempts
	c.Conf.EnableCRC = true
	return c
}

// Name implements backend.Backend.
func (b *Backend) Name() string { return "cos" }

// Close releases idle connections. It is idempotent; calls made after
// Close fail with backend.ErrUnavailable.
func (b *Backend) Close() error {
	if b.closed.CompareAndSwap(false, true) {
		b.transport.CloseIdleConnections()
	}
	return nil
}

// client returns the SDK client for a logical bucket, creating it on
// first use.
func (b *Backend) client(bucket string) (*bucketClient, error) {
	if b.closed.Load() {
		return nil, fmt.Errorf("cos: %w: backend is closed", backend.ErrUnavailable)
	}
	if err := objio.ValidateBucket(bucket); err != nil {
		return nil, fmt.Errorf("cos: %w", err)
	}
	full := b.cfg.BucketPrefix + bucket + "-" + b.cfg.AppID
	if n := len(full + ".cos." + b.cfg.Region + ".myqcloud.com"); n > maxHostLen {
		return nil, fmt.Errorf("cos: %w: bucket %q makes a %d-character domain, COS allows %d", backend.ErrInvalid, full, n, maxHostLen)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := b.buckets[full]; c != nil {
		return c, nil
	}
	ep, err := b.cfg.bucketEndpoints(full)
	if err != nil {
		return nil, fmt.Errorf("cos: %w: %v", backend.ErrInvalid, err)
	}
	c := &bucketClient{
		Client:     b.newClient(&cossdk.BaseURL{BucketURL: ep.url}, ep.host),
		name:       full,
		sourceHost: ep.sourceHost,
	}
	b.buckets[full] = c
	return c, nil
}

// EnsureBucket implements backend.Backend. A bucket we already own is
// fine; a name taken by another account yields backend.ErrAuth.
func (b *Backend) EnsureBucket(ctx context.Context, bucket string) error {
	c, err := b.client(bucket)
	if err != nil {
		return err
	}
	_, err = c.Bucket.Put(ctx, nil)
	switch code := serviceCode(err); {
	case err == nil:
		b.logger.Info("bucket created", "bucket", c.name)
		return nil
	case code == "BucketAlreadyOwnedByYou":
		return nil
	case code == "BucketAlreadyExists":
		// Ours only if we can read it.
		if _, err := c.Bucket.Head(ctx); err != nil {
			return translate(ctx, "bucket "+c.name+" exists; checking access", err)
		}
		return nil
	default:
		return translate(ctx, "create bucket "+c.name, err)
	}
}

// Check implements backend.Backend by listing the account's buckets,
// which needs valid credentials and the GetService permission.
func (b *Backend) Check(ctx context.Context) error {
	if b.closed.Load() {
		return fmt.Errorf("cos: %w: backend is closed", backend.ErrUnavailable)
	}
	_, _, err := b.service.Service.Get(ctx)
	return translate(ctx, "check", err)
}

// Put implements backend.Backend through objio.Uploader: objects up to
// PartSize bytes go in one PUT carrying Content-MD5, so COS verifies
// them; larger ones through a multipart upload. The md5 is stored as
// x-cos-meta-md5. Nothing becomes visible when the body is short or its
// md5 differs from opts.MD5.
func (b *Backend) Put(ctx context.Context, bucket, key string, r io.Reader, size int64, opts backend.PutOptions) (backend.ObjectInfo, error) {
	c, err := b.client(bucket)
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	want, err := objio.PutArgs("cos", key, opts.MD5, size)
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	ct := opts.ContentType
	if ct == "" {
		ct = mime.TypeByExtension(path.Ext(key))
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	t := &putTarget{b: b, c: c, key: key, ct: ct, what: "put " + c.name + "/" + key}
	sum, err := b.uploader().Put(ctx, t, r, size, want)
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	b.logger.Debug("object stored", "bucket", c.name, "key", key, "size", size)
	return backend.ObjectInfo{Bucket: bucket, Key: key, Size: size, MD5: sum, ModTime: time.Now()}, nil
}

func (b *Backend) uploader() objio.Uploader {
	return objio.Uploader{Prefix: "cos", PartSize: b.cfg.PartSize, MaxParts: MaxParts}
}

func md5Meta(sum string) *http.Header {
	return &http.Header{"x-cos-meta-md5": []string{sum}}
}

// putTarget is one object being Put (objio.PutTarget).
type putTarget struct {
	b    *Backend
	c    *bucketClient
	key  string
	ct   string
	what string // "put <bucket>/<key>", for messages

	uploadID string
	parts    []cossdk.Object
}

func (t *putTarget) PutSingle(ctx context.Context, body []byte, raw [md5.Size]byte, sum string) error {
	_, err := t.c.Object.Put(ctx, t.key, bytes.NewReader(body), &cossdk.ObjectPutOptions{
		ObjectPutHeaderOptions: &cossdk.ObjectPutHeaderOptions{
			ContentType: t.ct,
			ContentMD5:  base64.StdEncoding.EncodeToString(raw[:]),
			XCosMetaXXX: md5Meta(sum),
		},
	})
	return translate(ctx, t.what, err)
}

func (t *putTarget) Initiate(ctx context.Context, sum string) (objio.MultipartUpload, error) {
	hdr := &cossdk.ObjectPutHeaderOptions{ContentType: t.ct}
	if sum != "" {
		hdr.XCosMetaXXX = md5Meta(sum)
	}
	init, _, err := t.c.Object.InitiateMultipartUpload(ctx, t.key, &cossdk.InitiateMultipartUploadOptions{ObjectPutHeaderOptions: hdr})
	if err != nil {
		return nil, translate(ctx, t.what+": initiate multipart upload", err)
	}
	t.uploadID = init.UploadID
	return t, nil
}

func (t *putTarget) UploadPart(ctx context.Context, num int, p []byte, raw [md5.Size]byte) error {
	resp, err := t.c.Object.UploadPart(ctx, t.key, t.uploadID, num, bytes.NewReader(p), &cossdk.ObjectUploadPartOptions{
		ContentMD5: base64.StdEncoding.EncodeToString(raw[:]),
	})
	if err != nil {
		return translate(ctx, fmt.Sprintf("%s: upload part %d", t.what, num), err)
	}
	t.parts = append(t.parts, cossdk.Object{PartNumber: num, ETag: resp.Header.Get("ETag")})
	return nil
}

func (t *putTarget) Complete(ctx context.Context) (string, error) {
	res, _, err := t.c.Object.CompleteMultipartUpload(ctx, t.key, t.uploadID, &cossdk.CompleteMultipartUploadOptions{Parts: t.parts})
	if err != nil {
		return "", translate(ctx, t.what+": complete multipart upload", err)
	}
	return res.ETag, nil
}

// RecordMD5 adds x-cos-meta-md5 by copying the object onto itself with
// replaced metadata, if a single copy takes objects of its size. The
// SDK's Copy reads a '?' in the source key as the start of a versionId
// query and cannot be told otherwise, so such keys keep an unknown md5
// rather than risk copying from the wrong object.
func (t *putTarget) RecordMD5(ctx context.Context, sum, etag string, size int64) error {
	if size > MaxCopySize || strings.Contains(t.key, "?") {
		return nil
	}
	_, _, err := t.c.Object.Copy(ctx, t.key, t.c.sourceHost+"/"+t.key, &cossdk.ObjectCopyOptions{
		ObjectCopyHeaderOptions: &cossdk.ObjectCopyHeaderOptions{
			XCosMetadataDirective: "Replaced",
			ContentType:           t.ct,
			XCosMetaXXX:           md5Meta(sum),
			XCosCopySourceIfMatch: etag,
		},
	})
	if err != nil && serviceCode(err) != "PreconditionFailed" {
		return translate(ctx, t.what+": recording md5", err)
	}
	return nil
}

func (t *putTarget) Abort(ctx context.Context) {
	if _, err := t.c.Object.AbortMultipartUpload(ctx, t.key, t.uploadID); err != nil && serviceCode(err) != "NoSuchUpload" {
		t.b.logger.Warn("abort multipart upload failed", "bucket", t.c.name, "key", t.key,
			"upload_id", t.uploadID, "err", translate(ctx, "abort", err))
	}
}

// Get implements backend.Backend. A read of the whole object is checked
// against the CRC-64 COS reports and fails with backend.ErrChecksum on a
// mismatch; a connection lost mid-body fails with backend.ErrUnavailable.
func (b *Backend) Get(ctx context.Context, bucket, key string, offset, length int64) (io.ReadCloser, error) {
	c, err := b.client(bucket)
	if err != nil {
		return nil, err
	}
	rr, err := objio.GetArgs("cos", key, offset, length)
	if err != nil {
		return nil, err
	}
	stat := func(ctx context.Context) (backend.ObjectInfo, error) { return b.Stat(ctx, bucket, key) }
	if rr.Empty {
		return objio.EmptyRead(ctx, "cos", stat, offset, length)
	}
	opt := &cossdk.ObjectGetOptions{}
	switch {
	case rr.Whole:
	case rr.ToEnd:
		opt.Range = fmt.Sprintf("bytes=%d-", offset)
	default:
		opt.Range = fmt.Sprintf("bytes=%d-%d", offset, rr.Last)
	}
	resp, err := c.Object.Get(ctx, key, opt)
	if err != nil {
		if serviceCode(err) == "InvalidRange" {
			// offset == size is a valid, empty read; beyond is invalid.
			return objio.EmptyRead(ctx, "cos", stat, offset, length)
		}
		return nil, translate(ctx, "get "+c.name+"/"+key, err)
	}
	or := &objio.ObjectReader{Prefix: "cos", Provider: "COS", Ctx: ctx, Body: resp.Body, Remaining: resp.ContentLength}
	if rr.Whole {
		if want, err := strconv.ParseUint(resp.Header.Get("x-cos-hash-crc64ecma"), 10, 64); err == nil {
			or.CheckCRC(want)
		}
	}
	return or, nil
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, bucket, key string) (backend.ObjectInfo, error) {
	c, err := b.client(bucket)
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	if err := objio.ValidateKey(key); err != nil {
		return backend.ObjectInfo{}, fmt.Errorf("cos: %w", err)
	}
	resp, err := c.Object.Head(ctx, key, nil)
	if err != nil {
		return backend.ObjectInfo{}, translate(ctx, "stat "+c.name+"/"+key, err)
	}
	h := resp.Header
	return objio.InfoFromHeaders("cos: stat "+c.name+"/"+key, bucket, key, h, "X-Cos-Meta-Md5")
}

// Delete implements backend.Backend. A missing object or bucket is not an
// error.
func (b *Backend) Delete(ctx context.Context, bucket, key string) error {
	c, err := b.client(bucket)
	if err != nil {
		return err
	}
	if err := objio.ValidateKey(key); err != nil {
		return fmt.Errorf("cos: %w", err)
	}
	_, err = c.Object.Delete(ctx, key)
	err = translate(ctx, "delete "+c.name+"/"+key, err)
	if errors.Is(err, backend.ErrNotFound) {
		return nil
	}
	return err
}
