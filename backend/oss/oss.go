package oss

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	alioss "github.com/aliyun/aliyun-oss-go-sdk/oss"

	"github.com/osprey-storage/osprey/backend"
	"github.com/osprey-storage/osprey/backend/internal/objio"
)

// abortTimeout bounds the AbortMultipartUpload sent after a failed Put,
// which runs even when the Put's own context is already done.
const abortTimeout = 30 * time.Second

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
	dial := cfg.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           objio.WithIOTimeout(dial, cfg.IOTimeout),
		TLSHandshakeTimeout:   cfg.ConnectTimeout,
		ResponseHeaderTimeout: cfg.ResponseHeaderTimeout,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       50 * time.Second,
		// Bytes must arrive as stored: transparent gzip would change the
		// length and the CRC the service reports.
		DisableCompression: true,
	}
	hc := &http.Client{
		Transport: tr,
		// OSS answers 3xx only for misdirected requests; following them
		// could leak signed requests to another host.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
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

// Put implements backend.Backend. Objects up to PartSize bytes are read
// into memory and sent with one PutObject carrying Content-MD5, so OSS
// verifies them; larger ones go through a multipart upload, one
// PartSize buffer at a time. The md5 is stored as x-oss-meta-md5. Nothing
// becomes visible when the body is short or its md5 differs from
// opts.MD5: a single PutObject is then never sent, and a multipart upload
// is aborted before CompleteMultipartUpload.
func (b *Backend) Put(ctx context.Context, bucket, key string, r io.Reader, size int64, opts backend.PutOptions) (backend.ObjectInfo, error) {
	bkt, err := b.handle(bucket)
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	if err := objio.ValidateKey(key); err != nil {
		return backend.ObjectInfo{}, fmt.Errorf("oss: %w", err)
	}
	want, err := objio.ParseMD5(opts.MD5)
	if err != nil {
		return backend.ObjectInfo{}, fmt.Errorf("oss: %w", err)
	}
	if size < 0 {
		return backend.ObjectInfo{}, fmt.Errorf("oss: %w: negative size %d", backend.ErrInvalid, size)
	}
	ct := opts.ContentType
	if ct == "" {
		ct = alioss.TypeByExtension(key)
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	r = &objio.CtxReader{Ctx: ctx, R: r}

	var sum string
	if size <= b.cfg.PartSize {
		sum, err = b.putSingle(ctx, bkt, key, r, size, want, ct)
	} else {
		sum, err = b.putMultipart(ctx, bkt, key, r, size, want, ct)
	}
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	b.logger.Debug("object stored", "bucket", bkt.BucketName, "key", key, "size", size)
	return backend.ObjectInfo{Bucket: bucket, Key: key, Size: size, MD5: sum, ModTime: time.Now()}, nil
}

func (b *Backend) putSingle(ctx context.Context, bkt *alioss.Bucket, key string, r io.Reader, size int64, want, ct string) (string, error) {
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", objio.BodyError("oss", ctx, err, size)
	}
	raw := md5.Sum(buf)
	sum := hex.EncodeToString(raw[:])
	if want != "" && sum != want {
		return "", fmt.Errorf("oss: %w: md5 of body is %s, expected %s", backend.ErrChecksum, sum, want)
	}
	err := bkt.PutObject(key, bytes.NewReader(buf),
		alioss.WithContext(ctx),
		alioss.ContentType(ct),
		alioss.ContentMD5(base64.StdEncoding.EncodeToString(raw[:])),
		alioss.Meta("md5", sum),
	)
	if err != nil {
		return "", translate(ctx, "put "+bkt.BucketName+"/"+key, err)
	}
	return sum, nil
}

// partSizeFor returns the part size for an object of size bytes: the
// configured one, or a larger one when that would need more than MaxParts
// parts.
func (b *Backend) partSizeFor(size int64) int64 {
	ps := b.cfg.PartSize
	if min := (size + MaxParts - 1) / MaxParts; min > ps {
		const align = 1 << 20
		ps = (min + align - 1) / align * align
	}
	return ps
}

func (b *Backend) putMultipart(ctx context.Context, bkt *alioss.Bucket, key string, r io.Reader, size int64, want, ct string) (string, error) {
	what := "put " + bkt.BucketName + "/" + key
	initOpts := []alioss.Option{alioss.WithContext(ctx), alioss.ContentType(ct)}
	if want != "" {
		// Known up front: record it now so the object never appears
		// without it.
		initOpts = append(initOpts, alioss.Meta("md5", want))
	}
	imur, err := bkt.InitiateMultipartUpload(key, initOpts...)
	if err != nil {
		return "", translate(ctx, what+": initiate multipart upload", err)
	}
	completed := false
	defer func() {
		if !completed {
			b.abort(ctx, bkt, imur)
		}
	}()

	partSize := b.partSizeFor(size)
	buf := make([]byte, partSize)
	whole := md5.New()
	parts := make([]alioss.UploadPart, 0, (size+partSize-1)/partSize)
	for num, off := 1, int64(0); off < size; num++ {
		p := buf[:min(partSize, size-off)]
		if _, err := io.ReadFull(r, p); err != nil {
			return "", objio.BodyError("oss", ctx, err, size)
		}
		whole.Write(p)
		raw := md5.Sum(p)
		part, err := bkt.UploadPart(imur, bytes.NewReader(p), int64(len(p)), num,
			alioss.WithContext(ctx),
			alioss.ContentMD5(base64.StdEncoding.EncodeToString(raw[:])),
		)
		if err != nil {
			return "", translate(ctx, fmt.Sprintf("%s: upload part %d", what, num), err)
		}
		parts = append(parts, part)
		off += int64(len(p))
	}
	sum := hex.EncodeToString(whole.Sum(nil))
	if want != "" && sum != want {
		return "", fmt.Errorf("oss: %w: md5 of body is %s, expected %s", backend.ErrChecksum, sum, want)
	}
	res, err := bkt.CompleteMultipartUpload(imur, parts, alioss.WithContext(ctx))
	if err != nil {
		return "", translate(ctx, what+": complete multipart upload", err)
	}
	completed = true
	if want == "" && size <= MaxCopySize {
		if err := b.recordMD5(ctx, bkt, key, sum, ct, res.ETag); err != nil {
			return "", err
		}
	}
	return sum, nil
}

// recordMD5 adds x-oss-meta-md5 to an object uploaded without a known md5
// by copying it onto itself with replaced metadata. The copy is
// conditional on the ETag just completed, so an object replaced
// concurrently is left alone.
func (b *Backend) recordMD5(ctx context.Context, bkt *alioss.Bucket, key, sum, ct, etag string) error {
	opts := []alioss.Option{
		alioss.WithContext(ctx),
		alioss.MetadataDirective(alioss.MetaReplace),
		alioss.ContentType(ct),
		alioss.Meta("md5", sum),
	}
	if etag != "" {
		opts = append(opts, alioss.CopySourceIfMatch(etag))
	}
	_, err := bkt.CopyObject(key, key, opts...)
	if err != nil && serviceCode(err) != "PreconditionFailed" {
		return translate(ctx, "put "+bkt.BucketName+"/"+key+": recording md5", err)
	}
	return nil
}

// abort abandons a multipart upload. It runs after failures, including a
// cancelled ctx, so it uses a context of its own; a failure is only
// logged, since the Put already returns the error that caused it and OSS
// lifecycle rules can reap leftover parts.
func (b *Backend) abort(ctx context.Context, bkt *alioss.Bucket, imur alioss.InitiateMultipartUploadResult) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	if err := bkt.AbortMultipartUpload(imur, alioss.WithContext(actx)); err != nil && serviceCode(err) != "NoSuchUpload" {
		b.logger.Warn("abort multipart upload failed", "bucket", bkt.BucketName, "key", imur.Key,
			"upload_id", imur.UploadID, "err", translate(actx, "abort", err))
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
	if err := objio.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("oss: %w", err)
	}
	if offset < 0 {
		return nil, fmt.Errorf("oss: %w: negative offset %d", backend.ErrInvalid, offset)
	}
	if length == 0 {
		return b.emptyRead(ctx, bucket, key, offset, length)
	}
	opts := []alioss.Option{alioss.WithContext(ctx)}
	// A length reaching past what offset+length can express reads to the
	// end, like a negative one.
	toEnd := length < 0 || length-1 > math.MaxInt64-offset
	whole := offset == 0 && toEnd
	if !whole {
		// Without "standard", OSS ignores an unsatisfiable range and
		// returns the whole object.
		opts = append(opts, alioss.RangeBehavior("standard"))
		if toEnd {
			opts = append(opts, alioss.NormalizedRange(fmt.Sprintf("%d-", offset)))
		} else {
			opts = append(opts, alioss.Range(offset, offset+length-1))
		}
	}
	res, err := bkt.DoGetObject(&alioss.GetObjectRequest{ObjectKey: key}, opts)
	if err != nil {
		if serviceCode(err) == "InvalidRange" {
			// offset == size is a valid, empty read; beyond is invalid.
			return b.emptyRead(ctx, bucket, key, offset, length)
		}
		return nil, translate(ctx, "get "+bkt.BucketName+"/"+key, err)
	}
	or := &objio.ObjectReader{Prefix: "oss", Provider: "OSS", Ctx: ctx, Body: res.Response.Body, Remaining: -1}
	if n, err := strconv.ParseInt(res.Response.Headers.Get("Content-Length"), 10, 64); err == nil {
		or.Remaining = n
	}
	if whole {
		if want, err := strconv.ParseUint(res.Response.Headers.Get("x-oss-hash-crc64ecma"), 10, 64); err == nil {
			or.CheckCRC(want)
		}
	}
	return or, nil
}

// emptyRead answers a read that yields no bytes after checking that the
// object exists and offset is within it.
func (b *Backend) emptyRead(ctx context.Context, bucket, key string, offset, length int64) (io.ReadCloser, error) {
	info, err := b.Stat(ctx, bucket, key)
	if err != nil {
		return nil, err
	}
	if _, err := objio.ValidateRange(offset, length, info.Size); err != nil {
		return nil, fmt.Errorf("oss: %w", err)
	}
	return io.NopCloser(bytes.NewReader(nil)), nil
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
