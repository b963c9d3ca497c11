package cos

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
	"mime"
	"net"
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

// abortTimeout bounds the AbortMultipartUpload sent after a failed Put,
// which runs even when the Put's own context is already done.
const abortTimeout = 30 * time.Second

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
		IdleConnTimeout:       60 * time.Second,
		// Bytes must arrive as stored: transparent gzip would change the
		// length and the CRC the service reports.
		DisableCompression: true,
	}
	hc := &http.Client{
		// The SDK's transport signs every request, retries included.
		Transport: &cossdk.AuthorizationTransport{
			SecretID:  cfg.SecretID,
			SecretKey: cfg.SecretKey,
			Transport: tr,
		},
		// Set here (the SDK would set it on first use, racing with
		// concurrent client creation): COS answers 3xx only for
		// misdirected requests, and following them could leak signed
		// requests to another host.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
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

// Put implements backend.Backend. Objects up to PartSize bytes are read
// into memory and sent with one PUT carrying Content-MD5, so COS verifies
// them; larger ones go through a multipart upload, one PartSize buffer at
// a time. The md5 is stored as x-cos-meta-md5. Nothing becomes visible
// when the body is short or its md5 differs from opts.MD5: a single PUT is
// then never sent, and a multipart upload is aborted before
// CompleteMultipartUpload.
func (b *Backend) Put(ctx context.Context, bucket, key string, r io.Reader, size int64, opts backend.PutOptions) (backend.ObjectInfo, error) {
	c, err := b.client(bucket)
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	if err := objio.ValidateKey(key); err != nil {
		return backend.ObjectInfo{}, fmt.Errorf("cos: %w", err)
	}
	want, err := objio.ParseMD5(opts.MD5)
	if err != nil {
		return backend.ObjectInfo{}, fmt.Errorf("cos: %w", err)
	}
	if size < 0 {
		return backend.ObjectInfo{}, fmt.Errorf("cos: %w: negative size %d", backend.ErrInvalid, size)
	}
	ct := opts.ContentType
	if ct == "" {
		ct = mime.TypeByExtension(path.Ext(key))
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	r = &objio.CtxReader{Ctx: ctx, R: r}

	var sum string
	if size <= b.cfg.PartSize {
		sum, err = b.putSingle(ctx, c, key, r, size, want, ct)
	} else {
		sum, err = b.putMultipart(ctx, c, key, r, size, want, ct)
	}
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	b.logger.Debug("object stored", "bucket", c.name, "key", key, "size", size)
	return backend.ObjectInfo{Bucket: bucket, Key: key, Size: size, MD5: sum, ModTime: time.Now()}, nil
}

func md5Meta(sum string) *http.Header {
	return &http.Header{"x-cos-meta-md5": []string{sum}}
}

func (b *Backend) putSingle(ctx context.Context, c *bucketClient, key string, r io.Reader, size int64, want, ct string) (string, error) {
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", objio.BodyError("cos", ctx, err, size)
	}
	raw := md5.Sum(buf)
	sum := hex.EncodeToString(raw[:])
	if want != "" && sum != want {
		return "", fmt.Errorf("cos: %w: md5 of body is %s, expected %s", backend.ErrChecksum, sum, want)
	}
	_, err := c.Object.Put(ctx, key, bytes.NewReader(buf), &cossdk.ObjectPutOptions{
		ObjectPutHeaderOptions: &cossdk.ObjectPutHeaderOptions{
			ContentType: ct,
			ContentMD5:  base64.StdEncoding.EncodeToString(raw[:]),
			XCosMetaXXX: md5Meta(sum),
		},
	})
	if err != nil {
		return "", translate(ctx, "put "+c.name+"/"+key, err)
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

func (b *Backend) putMultipart(ctx context.Context, c *bucketClient, key string, r io.Reader, size int64, want, ct string) (string, error) {
	what := "put " + c.name + "/" + key
	hdr := &cossdk.ObjectPutHeaderOptions{ContentType: ct}
	if want != "" {
		// Known up front: record it now so the object never appears
		// without it.
		hdr.XCosMetaXXX = md5Meta(want)
	}
	init, _, err := c.Object.InitiateMultipartUpload(ctx, key, &cossdk.InitiateMultipartUploadOptions{ObjectPutHeaderOptions: hdr})
	if err != nil {
		return "", translate(ctx, what+": initiate multipart upload", err)
	}
	uploadID := init.UploadID
	completed := false
	defer func() {
		if !completed {
			b.abort(ctx, c, key, uploadID)
		}
	}()

	partSize := b.partSizeFor(size)
	buf := make([]byte, partSize)
	whole := md5.New()
	parts := make([]cossdk.Object, 0, (size+partSize-1)/partSize)
	for num, off := 1, int64(0); off < size; num++ {
		p := buf[:min(partSize, size-off)]
		if _, err := io.ReadFull(r, p); err != nil {
			return "", objio.BodyError("cos", ctx, err, size)
		}
		whole.Write(p)
		raw := md5.Sum(p)
		resp, err := c.Object.UploadPart(ctx, key, uploadID, num, bytes.NewReader(p), &cossdk.ObjectUploadPartOptions{
			ContentMD5: base64.StdEncoding.EncodeToString(raw[:]),
		})
		if err != nil {
			return "", translate(ctx, fmt.Sprintf("%s: upload part %d", what, num), err)
		}
		parts = append(parts, cossdk.Object{PartNumber: num, ETag: resp.Header.Get("ETag")})
		off += int64(len(p))
	}
	sum := hex.EncodeToString(whole.Sum(nil))
	if want != "" && sum != want {
		return "", fmt.Errorf("cos: %w: md5 of body is %s, expected %s", backend.ErrChecksum, sum, want)
	}
	res, _, err := c.Object.CompleteMultipartUpload(ctx, key, uploadID, &cossdk.CompleteMultipartUploadOptions{Parts: parts})
	if err != nil {
		return "", translate(ctx, what+": complete multipart upload", err)
	}
	completed = true
	// The SDK's Copy reads a '?' in the source key as the start of a
	// versionId query and cannot be told otherwise, so such keys keep an
	// unknown md5 rather than risk copying from the wrong object.
	if want == "" && size <= MaxCopySize && !strings.Contains(key, "?") {
		if err := b.recordMD5(ctx, c, key, sum, ct, res.ETag); err != nil {
			return "", err
		}
	}
	return sum, nil
}

// recordMD5 adds x-cos-meta-md5 to an object uploaded without a known md5
// by copying it onto itself with replaced metadata. The copy is
// conditional on the ETag just completed, so an object replaced
// concurrently is left alone.
func (b *Backend) recordMD5(ctx context.Context, c *bucketClient, key, sum, ct, etag string) error {
	_, _, err := c.Object.Copy(ctx, key, c.sourceHost+"/"+key, &cossdk.ObjectCopyOptions{
		ObjectCopyHeaderOptions: &cossdk.ObjectCopyHeaderOptions{
			XCosMetadataDirective: "Replaced",
			ContentType:           ct,
			XCosMetaXXX:           md5Meta(sum),
			XCosCopySourceIfMatch: etag,
		},
	})
	if err != nil && serviceCode(err) != "PreconditionFailed" {
		return translate(ctx, "put "+c.name+"/"+key+": recording md5", err)
	}
	return nil
}

// abort abandons a multipart upload. It runs after failures, including a
// cancelled ctx, so it uses a context of its own; a failure is only
// logged, since the Put already returns the error that caused it and COS
// lifecycle rules can reap leftover parts.
func (b *Backend) abort(ctx context.Context, c *bucketClient, key, uploadID string) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	if _, err := c.Object.AbortMultipartUpload(actx, key, uploadID); err != nil && serviceCode(err) != "NoSuchUpload" {
		b.logger.Warn("abort multipart upload failed", "bucket", c.name, "key", key,
			"upload_id", uploadID, "err", translate(actx, "abort", err))
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
	if err := objio.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("cos: %w", err)
	}
	if offset < 0 {
		return nil, fmt.Errorf("cos: %w: negative offset %d", backend.ErrInvalid, offset)
	}
	if length == 0 {
		return b.emptyRead(ctx, bucket, key, offset, length)
	}
	opt := &cossdk.ObjectGetOptions{}
	// A length reaching past what offset+length can express reads to the
	// end, like a negative one.
	toEnd := length < 0 || length-1 > math.MaxInt64-offset
	whole := offset == 0 && toEnd
	switch {
	case whole:
	case toEnd:
		opt.Range = fmt.Sprintf("bytes=%d-", offset)
	default:
		opt.Range = fmt.Sprintf("bytes=%d-%d", offset, offset+length-1)
	}
	resp, err := c.Object.Get(ctx, key, opt)
	if err != nil {
		if serviceCode(err) == "InvalidRange" {
			// offset == size is a valid, empty read; beyond is invalid.
			return b.emptyRead(ctx, bucket, key, offset, length)
		}
		return nil, translate(ctx, "get "+c.name+"/"+key, err)
	}
	or := &objio.ObjectReader{Prefix: "cos", Provider: "COS", Ctx: ctx, Body: resp.Body, Remaining: resp.ContentLength}
	if whole {
		if want, err := strconv.ParseUint(resp.Header.Get("x-cos-hash-crc64ecma"), 10, 64); err == nil {
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
		return nil, fmt.Errorf("cos: %w", err)
	}
	return io.NopCloser(bytes.NewReader(nil)), nil
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
