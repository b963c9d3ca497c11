package oss

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	alioss "github.com/aliyun/aliyun-oss-go-sdk/oss"

	"github.com/osprey-storage/osprey/backend"
	"github.com/osprey-storage/osprey/backend/internal/objio"
)

// Backend stores objects in Aliyun OSS. It is safe for concurrent use.
type Backend struct {
	cfg       Config
	client    *alioss.Client
	transport *http.Transport
	logger    *slog.Logger
	closed    atomic.Bool
}

var _ backend.Backend = (*Backend)(nil)

// New returns a Backend for cfg. It does not contact OSS; use Check for
// that.
func New(cfg Config) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	endpoint, _ := cfg.endpointURL() // validated above
	tr := objio.NewTransport(objio.TransportConfig{
		Dial:                  cfg.DialContext,
		ConnectTimeout:        cfg.ConnectTimeout,
		ResponseHeaderTimeout: cfg.ResponseHeaderTimeout,
		IOTimeout:             cfg.IOTimeout,
		IdleConnTimeout:       50 * time.Second,
	})
	hc := &http.Client{
		Transport:     tr,
		CheckRedirect: objio.NoRedirects,
	}
	client, err := alioss.New(endpoint, cfg.AccessKeyID, cfg.AccessKeySecret,
		alioss.HTTPClient(hc),
		alioss.UserAgent("osprey-oss-backend"),
		alioss.EnableCRC(true),
	)
	if err != nil {
		return nil, fmt.Errorf("oss: %w: creating client: %v", backend.ErrInvalid, err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &Backend{
		cfg:       cfg,
		client:    client,
		transport: tr,
		logger:    logger.With("component", "backend", "backend", "oss"),
	}, nil
}

// Name implements backend.Backend.
func (b *Backend) Name() string { return "oss" }

// Close releases idle connections. It is idempotent; calls made after
// Close fail with backend.ErrUnavailable.
func (b *Backend) Close() error {
	if b.closed.CompareAndSwap(false, true) {
		b.transport.CloseIdleConnections()
	}
	return nil
}

// handle returns the SDK bucket for a logical bucket name.
func (b *Backend) handle(bucket string) (*alioss.Bucket, error) {
	if b.closed.Load() {
		return nil, fmt.Errorf("oss: %w: backend is closed", backend.ErrUnavailable)
	}
	if err := objio.ValidateBucket(bucket); err != nil {
		return nil, fmt.Errorf("oss: %w", err)
	}
	name := b.cfg.BucketPrefix + bucket
	if len(name) < 3 || len(name) > maxPhysicalBucketLen {
		return nil, fmt.Errorf("oss: %w: bucket name %q must be 3-%d characters with the prefix", backend.ErrInvalid, name, maxPhysicalBucketLen)
	}
	return &alioss.Bucket{Client: *b.client, BucketName: name}, nil
}

// EnsureBucket implements backend.Backend. It creates the bucket, and if
// OSS says the name is taken, checks that the bucket is ours by reading
// its info: a bucket owned by another account yields backend.ErrAuth.
func (b *Backend) EnsureBucket(ctx context.Context, bucket string) error {
	bkt, err := b.handle(bucket)
	if err != nil {
		return err
	}
	const body = `<?xml version="1.0" encoding="UTF-8"?>` +
		`<CreateBucketConfiguration><StorageClass>Standard</StorageClass></CreateBucketConfiguration>`
	resp, err := bkt.Do(http.MethodPut, "", map[string]any{},
		[]alioss.Option{alioss.WithContext(ctx), alioss.ContentType("application/xml")},
		strings.NewReader(body), nil)
	closeResponse(resp)
	if err == nil {
		b.logger.Info("bucket created", "bucket", bkt.BucketName)
		return nil
	}
	if code := serviceCode(err); code != "BucketAlreadyExists" && code != "BucketAlreadyOwnedByYou" {
		return translate(ctx, "create bucket "+bkt.BucketName, err)
	}
	resp, err = bkt.Do(http.MethodGet, "", map[string]any{"bucketInfo": nil},
		[]alioss.Option{alioss.WithContext(ctx)}, nil, nil)
	closeResponse(resp)
	if err != nil {
		return translate(ctx, "bucket "+bkt.BucketName+" exists; reading its info", err)
	}
	return nil
}

// Check implements backend.Backend by listing at most one bucket, which
// needs valid credentials and the oss:ListBuckets permission.
func (b *Backend) Check(ctx context.Context) error {
	if b.closed.Load() {
		return fmt.Errorf("oss: %w: backend is closed", backend.ErrUnavailable)
	}
	svc := &alioss.Bucket{Client: *b.client}
	params := map[string]any{"max-keys": "1"}
	if b.cfg.BucketPrefix != "" {
		params["prefix"] = b.cfg.BucketPrefix
	}
	resp, err := svc.Do(http.MethodGet, "", params, []alioss.Option{alioss.WithContext(ctx)}, nil, nil)
	closeResponse(resp)
	return translate(ctx, "check", err)
}

// Put implements backend.Backend through objio.Uploader: objects up to
// PartSize bytes go in one PutObject carrying Content-MD5, so OSS
// verifies them; larger ones through a multipart upload. The md5 is
// stored as x-oss-meta-md5. Nothing becomes visible when the body is
// short or its md5 differs from opts.MD5.
func (b *Backend) Put(ctx context.Context, bucket, key string, r io.Reader, size int64, opts backend.PutOptions) (backend.ObjectInfo, error) {
	bkt, err := b.handle(bucket)
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	want, err := objio.PutArgs("oss", key, opts.MD5, size)
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	ct := opts.ContentType
	if ct == "" {
		ct = alioss.TypeByExtension(key)
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	t := &putTarget{b: b, bkt: bkt, key: key, ct: ct, what: "put " + bkt.BucketName + "/" + key}
	sum, err := b.uploader().Put(ctx, t, r, size, want)
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	b.logger.Debug("object stored", "bucket", bkt.BucketName, "key", key, "size", size)
	return backend.ObjectInfo{Bucket: bucket, Key: key, Size: size, MD5: sum, ModTime: time.Now()}, nil
}

func (b *Backend) uploader() objio.Uploader {
	return objio.Uploader{Prefix: "oss", PartSize: b.cfg.PartSize, MaxParts: MaxParts}
}

// putTarget is one object being Put (objio.PutTarget).
type putTarget struct {
	b    *Backend
	bkt  *alioss.Bucket
	key  string
	ct   string
	what string // "put <bucket>/<key>", for messages

	imur  alioss.InitiateMultipartUploadResult
	parts []alioss.UploadPart
}

func (t *putTarget) PutSingle(ctx context.Context, body []byte, raw [md5.Size]byte, sum string) error {
	err := t.bkt.PutObject(t.key, bytes.NewReader(body),
		alioss.WithContext(ctx),
		alioss.ContentType(t.ct),
		alioss.ContentMD5(base64.StdEncoding.EncodeToString(raw[:])),
		alioss.Meta("md5", sum),
	)
	return translate(ctx, t.what, err)
}

func (t *putTarget) Initiate(ctx context.Context, sum string) (objio.MultipartUpload, error) {
	opts := []alioss.Option{alioss.WithContext(ctx), alioss.ContentType(t.ct)}
	if sum != "" {
		opts = append(opts, alioss.Meta("md5", sum))
	}
	imur, err := t.bkt.InitiateMultipartUpload(t.key, opts...)
	if err != nil {
		return nil, translate(ctx, t.what+": initiate multipart upload", err)
	}
	t.imur = imur
	return t, nil
}

func (t *putTarget) UploadPart(ctx context.Context, num int, p []byte, raw [md5.Size]byte) error {
	part, err := t.bkt.UploadPart(t.imur, bytes.NewReader(p), int64(len(p)), num,
		alioss.WithContext(ctx),
		alioss.ContentMD5(base64.StdEncoding.EncodeToString(raw[:])),
	)
	if err != nil {
		return translate(ctx, fmt.Sprintf("%s: upload part %d", t.what, num), err)
	}
	t.parts = append(t.parts, part)
	return nil
}

func (t *putTarget) Complete(ctx context.Context) (string, error) {
	res, err := t.bkt.CompleteMultipartUpload(t.imur, t.parts, alioss.WithContext(ctx))
	if err != nil {
		return "", translate(ctx, t.what+": complete multipart upload", err)
	}
	return res.ETag, nil
}

// RecordMD5 adds x-oss-meta-md5 by copying the object onto itself with
// replaced metadata, if CopyObject takes objects of its size.
func (t *putTarget) RecordMD5(ctx context.Context, sum, etag string, size int64) error {
	if size > MaxCopySize {
		return nil
	}
	opts := []alioss.Option{
		alioss.WithContext(ctx),
		alioss.MetadataDirective(alioss.MetaReplace),
		alioss.ContentType(t.ct),
		alioss.Meta("md5", sum),
	}
	if etag != "" {
		opts = append(opts, alioss.CopySourceIfMatch(etag))
	}
	_, err := t.bkt.CopyObject(t.key, t.key, opts...)
	if err != nil && serviceCode(err) != "PreconditionFailed" {
		return translate(ctx, t.what+": recording md5", err)
	}
	return nil
}

func (t *putTarget) Abort(ctx context.Context) {
	if err := t.bkt.AbortMultipartUpload(t.imur, alioss.WithContext(ctx)); err != nil && serviceCode(err) != "NoSuchUpload" {
		t.b.logger.Warn("abort multipart upload failed", "bucket", t.bkt.BucketName, "key", t.key,
			"upload_id", t.imur.UploadID, "err", translate(ctx, "abort", err))
	}
}

// Get implements backend.Backend. A read of the whole object is checked
// against the CRC-64 OSS reports and fails with backend.ErrChecksum on a
// mismatch; a connection lost mid-body fails with backend.ErrUnavailable.
func (b *Backend) Get(ctx context.Context, bucket, key string, offset, length int64) (io.ReadCloser, error) {
	bkt, err := b.handle(bucket)
	if err != nil {
		return nil, err
	}
	rr, err := objio.GetArgs("oss", key, offset, length)
	if err != nil {
		return nil, err
	}
	stat := func(ctx context.Context) (backend.ObjectInfo, error) { return b.Stat(ctx, bucket, key) }
	if rr.Empty {
		return objio.EmptyRead(ctx, "oss", stat, offset, length)
	}
	opts := []alioss.Option{alioss.WithContext(ctx)}
	if !rr.Whole {
		// Without "standard", OSS ignores an unsatisfiable range and
		// returns the whole object.
		opts = append(opts, alioss.RangeBehavior("standard"))
		if rr.ToEnd {
			opts = append(opts, alioss.NormalizedRange(fmt.Sprintf("%d-", offset)))
		} else {
			opts = append(opts, alioss.Range(offset, rr.Last))
		}
	}
	res, err := bkt.DoGetObject(&alioss.GetObjectRequest{ObjectKey: key}, opts)
	if err != nil {
		if serviceCode(err) == "InvalidRange" {
			// offset == size is a valid, empty read; beyond is invalid.
			return objio.EmptyRead(ctx, "oss", stat, offset, length)
		}
		return nil, translate(ctx, "get "+bkt.BucketName+"/"+key, err)
	}
	or := &objio.ObjectReader{Prefix: "oss", Provider: "OSS", Ctx: ctx, Body: res.Response.Body, Remaining: -1}
	if n, err := strconv.ParseInt(res.Response.Headers.Get("Content-Length"), 10, 64); err == nil {
		or.Remaining = n
	}
	if rr.Whole {
		if want, err := strconv.ParseUint(res.Response.Headers.Get("x-oss-hash-crc64ecma"), 10, 64); err == nil {
			or.CheckCRC(want)
		}
	}
	return or, nil
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, bucket, key string) (backend.ObjectInfo, error) {
	bkt, err := b.handle(bucket)
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	if err := objio.ValidateKey(key); err != nil {
		return backend.ObjectInfo{}, fmt.Errorf("oss: %w", err)
	}
	h, err := bkt.GetObjectDetailedMeta(key, alioss.WithContext(ctx))
	if err != nil {
		return backend.ObjectInfo{}, translate(ctx, "stat "+bkt.BucketName+"/"+key, err)
	}
	return objio.InfoFromHeaders("oss: stat "+bkt.BucketName+"/"+key, bucket, key, h, "X-Oss-Meta-Md5")
}

// Delete implements backend.Backend. A missing object or bucket is not an
// error.
func (b *Backend) Delete(ctx context.Context, bucket, key string) error {
	bkt, err := b.handle(bucket)
	if err != nil {
		return err
	}
	if err := objio.ValidateKey(key); err != nil {
		return fmt.Errorf("oss: %w", err)
	}
	err = translate(ctx, "delete "+bkt.BucketName+"/"+key, bkt.DeleteObject(key, alioss.WithContext(ctx)))
	if errors.Is(err, backend.ErrNotFound) {
		return nil
	}
	return err
}

func closeResponse(resp *alioss.Response) {
	if resp != nil && resp.Body != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}
}
