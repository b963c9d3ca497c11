package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/backend"
	"github.com/osprey-storage/osprey/backend/internal/objio"
)

// Part size limits imposed by S3.
const (
	MinPartSize = 5 << 20
	MaxPartSize = 5 << 30
)

// prefetchSize is the size of each of the two read-ahead buffers of a Put.
const prefetchSize = 1 << 20

// metaMD5 is the user-metadata key (x-amz-meta-osprey-md5) holding the
// object's md5.
const metaMD5 = "Osprey-Md5"

// Config configures the S3 backend.
type Config struct {
	// Endpoint is host[:port] of the S3 service, without a scheme
	// ("127.0.0.1:9000", "s3.eu-west-1.amazonaws.com"). Required.
	Endpoint string
	// AccessKey and SecretKey are the credentials. Both empty means
	// anonymous requests. The secret is never logged.
	AccessKey, SecretKey string
	// SessionToken is the optional token of temporary credentials.
	SessionToken string
	// UseSSL selects https.
	UseSSL bool
	// Region is the bucket region; "" lets the SDK discover it (an extra
	// request per bucket, cached).
	Region string
	// BucketPrefix is prepended to every logical bucket name to form the
	// physical bucket name, e.g. "acme-osprey-" → "acme-osprey-image".
	BucketPrefix string
	// PartSize is the multipart part size, in [MinPartSize, MaxPartSize].
	// Objects up to PartSize are sent in one PUT; it also bounds the memory
	// of each concurrent Put.
	PartSize int64
	// MaxAttempts is how often one HTTP request is tried (1 = no retries).
	// Only requests whose body can be replayed are retried; a streamed
	// single PUT never is.
	MaxAttempts int
	// Transport is the HTTP transport; nil means minio-go's default.
	Transport http.RoundTripper
	// Logger receives lifecycle messages. Nil means slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the defaults; Endpoint and credentials must still
// be set.
func DefaultConfig() Config {
	return Config{
		PartSize:    16 << 20,
		MaxAttempts: 3,
	}
}

// Validate reports whether the configuration is usable, including whether
// BucketPrefix yields legal bucket names for every logical bucket.
func (c Config) Validate() error {
	switch {
	case c.Endpoint == "":
		return errors.New("s3: Endpoint is required")
	case strings.Contains(c.Endpoint, "://") || strings.Contains(c.Endpoint, "/"):
		return fmt.Errorf("s3: Endpoint %q must be host[:port] without scheme or path (set UseSSL for https)", c.Endpoint)
	case (c.AccessKey == "") != (c.SecretKey == ""):
		return errors.New("s3: AccessKey and SecretKey must be set together")
	case c.PartSize < MinPartSize || c.PartSize > MaxPartSize:
		return fmt.Errorf("s3: PartSize %d outside [%d, %d]", c.PartSize, MinPartSize, MaxPartSize)
	case c.MaxAttempts < 1:
		return fmt.Errorf("s3: MaxAttempts %d must be at least 1", c.MaxAttempts)
	}
	for _, name := range osprey.Buckets {
		if err := s3utils.CheckValidBucketNameStrict(c.BucketPrefix + name); err != nil {
			return fmt.Errorf("s3: BucketPrefix %q gives an invalid bucket name %q: %v", c.BucketPrefix, c.BucketPrefix+name, err)
		}
	}
	return nil
}

// Backend stores objects in an S3-compatible service. It is safe for
// concurrent use.
type Backend struct {
	cfg       Config
	client    *minio.Client
	core      minio.Core
	transport *http.Transport // ours to close; nil if the caller gave one
	log       *slog.Logger
	closeOnce sync.Once
}

var _ backend.Backend = (*Backend)(nil)

// New validates cfg and returns a backend. It does not contact the server;
// use Check for that.
func New(cfg Config) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := &Backend{cfg: cfg}
	rt := cfg.Transport
	if rt == nil {
		tr, err := minio.DefaultTransport(cfg.UseSSL)
		if err != nil {
			return nil, fmt.Errorf("s3: transport: %v", err)
		}
		b.transport, rt = tr, tr
	}
	var creds *credentials.Credentials
	if cfg.AccessKey != "" {
		creds = credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)
	} else {
		creds = credentials.New(&credentials.Static{Value: credentials.Value{SignerType: credentials.SignatureAnonymous}})
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:      creds,
		Secure:     cfg.UseSSL,
		Region:     cfg.Region,
		Transport:  rt,
		MaxRetries: cfg.MaxAttempts,
	})
	if err != nil {
		return nil, fmt.Errorf("s3: client for %q: %v", cfg.Endpoint, err)
	}
	b.client = client
	b.core = minio.Core{Client: client}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	b.log = logger.With("component", "backend", "backend", "s3")
	b.log.Info("s3 backend ready", "endpoint", cfg.Endpoint, "ssl", cfg.UseSSL, "region", cfg.Region,
		"bucket_prefix", cfg.BucketPrefix, "part_size", cfg.PartSize)
	return b, nil
}

// Name returns "s3".
func (b *Backend) Name() string { return "s3" }

// bucketName validates a logical bucket name and returns the physical one.
func (b *Backend) bucketName(bucket string) (string, error) {
	if err := objio.ValidateBucket(bucket); err != nil {
		return "", err
	}
	phys := b.cfg.BucketPrefix + bucket
	if err := s3utils.CheckValidBucketNameStrict(phys); err != nil {
		return "", fmt.Errorf("%w: bucket name %q: %v", backend.ErrInvalid, phys, err)
	}
	return phys, nil
}

// names validates bucket and key and returns the physical bucket.
func (b *Backend) names(bucket, key string) (string, error) {
	phys, err := b.bucketName(bucket)
	if err != nil {
		return "", err
	}
	if err := objio.ValidateKey(key); err != nil {
		return "", err
	}
	return phys, nil
}

// EnsureBucket creates the physical bucket if it does not exist yet.
func (b *Backend) EnsureBucket(ctx context.Context, bucket string) error {
	phys, err := b.bucketName(bucket)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("s3: ensure bucket %s: %w", phys, err)
	}
	exists, err := b.client.BucketExists(ctx, phys)
	if err != nil {
		return fmt.Errorf("s3: ensure bucket %s: %w", phys, translate(err))
	}
	if exists {
		return nil
	}
	err = b.client.MakeBucket(ctx, phys, minio.MakeBucketOptions{Region: b.cfg.Region})
	switch code(err) {
	case "":
		if err == nil {
			b.log.Info("bucket created", "bucket", phys)
			return nil
		}
	case "BucketAlreadyOwnedByYou": // created concurrently
		return nil
	case "BucketAlreadyExists":
		return fmt.Errorf("s3: ensure bucket %s: %w: the name is taken by another account; choose another bucket prefix", phys, backend.ErrInvalid)
	}
	return fmt.Errorf("s3: ensure bucket %s: %w", phys, translate(err))
}

// Put streams exactly size bytes from r to bucket/key; see the package
// documentation for how the md5 is verified before the object becomes
// visible. It returns errors wrapping backend.ErrChecksum (md5 mismatch,
// short body), backend.ErrNotFound (no such bucket), backend.ErrInvalid,
// backend.ErrAuth, backend.ErrUnavailable, the context's error or the
// reader's error. The returned ObjectInfo always carries the md5.
func (b *Backend) Put(ctx context.Context, bucket, key string, r io.Reader, size int64, opts backend.PutOptions) (backend.ObjectInfo, error) {
	phys, err := b.names(bucket, key)
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	want, err := objio.ParseMD5(opts.MD5)
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	if size < 0 {
		return backend.ObjectInfo{}, fmt.Errorf("%w: negative size %d", backend.ErrInvalid, size)
	}
	wrap := func(err error) error { return fmt.Errorf("s3: put %s/%s: %w", phys, key, err) }
	if err := ctx.Err(); err != nil {
		return backend.ObjectInfo{}, wrap(err)
	}
	vr := objio.NewVerifyingReader(ctx, r, size, want)
	if size == 0 {
		// An empty body may never be read; check its md5 before sending.
		if _, err := vr.Verify(); err != nil {
			return backend.ObjectInfo{}, wrap(err)
		}
	}
	popts := minio.PutObjectOptions{
		ContentType: opts.ContentType,
		PartSize:    uint64(b.cfg.PartSize),
		NumThreads:  1,
	}
	if want != "" {
		popts.UserMetadata = map[string]string{metaMD5: want}
	}
	var body io.Reader = vr
	var pf *objio.Prefetcher
	if size > prefetchSize {
		// Hash the next MiB on another goroutine while the SDK signs and
		// sends this one.
		pf = objio.Prefetch(vr, prefetchSize)
		body = pf
	}
	// struct{io.Reader} hides Close and ReaderAt, so neither minio-go nor
	// net/http can close the body behind our back, and minio-go streams it
	// through one part buffer instead of its parallel ReaderAt uploader.
	up, err := b.client.PutObject(ctx, phys, key, struct{ io.Reader }{body}, size, popts)
	if pf != nil {
		pf.Close()
	}
	vr.Close() // waits for a Read still running on a transport goroutine
	if verr := vr.Err(); verr != nil {
		// The body's failure is the real cause; what the SDK says about
		// the request it aborted is a consequence.
		return backend.ObjectInfo{}, wrap(verr)
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return backend.ObjectInfo{}, wrap(fmt.Errorf("%w: %v", ctxErr, err))
		}
		return backend.ObjectInfo{}, wrap(translate(err))
	}
	sum, verr := vr.Verify()
	if verr != nil {
		// The SDK completed an upload without reading every byte through
		// the verifier. It should be impossible; do not leave an
		// unverified object behind.
		b.log.Error("upload completed without full verification; removing it", "bucket", phys, "key", key, "err", verr)
		_ = b.client.RemoveObject(context.WithoutCancel(ctx), phys, key, minio.RemoveObjectOptions{})
		return backend.ObjectInfo{}, wrap(verr)
	}
	mod := up.LastModified
	if mod.IsZero() {
		mod = time.Now() // PUT responses rarely carry Last-Modified
	}
	return backend.ObjectInfo{Bucket: bucket, Key: key, Size: size, MD5: sum, ModTime: mod}, nil
}

// Get returns a reader for length bytes of bucket/key from offset (length
// < 0: to the end; a length past the end is clamped; offset == size gives
// an empty reader). It returns errors wrapping backend.ErrNotFound,
// backend.ErrInvalid (offset outside [0, size]) and the others of
// translate. The caller MUST Close the reader; reads fail once ctx is done.
func (b *Backend) Get(ctx context.Context, bucket, key string, offset, length int64) (io.ReadCloser, error) {
	phys, err := b.names(bucket, key)
	if err != nil {
		return nil, err
	}
	wrap := func(err error) error { return fmt.Errorf("s3: get %s/%s: %w", phys, key, err) }
	if offset < 0 {
		return nil, wrap(fmt.Errorf("%w: negative offset %d", backend.ErrInvalid, offset))
	}
	if err := ctx.Err(); err != nil {
		return nil, wrap(err)
	}
	// emptyAt answers reads that S3 cannot express as a range (zero
	// length, or starting at the end): check the object and the offset.
	emptyAt := func() (io.ReadCloser, error) {
		info, err := b.statObject(ctx, phys, key)
		if err != nil {
			return nil, wrap(err)
		}
		if _, err := objio.ValidateRange(offset, length, info.Size); err != nil {
			return nil, wrap(err)
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	if length == 0 {
		return emptyAt()
	}
	if length > math.MaxInt64-offset { // offset+length would overflow: to the end
		length = -1
	}
	var opts minio.GetObjectOptions
	switch {
	case offset == 0 && length < 0: // the whole object: no Range, so empty objects work
	case length < 0:
		err = opts.SetRange(offset, 0) // bytes=offset-
	default:
		err = opts.SetRange(offset, offset+length-1)
	}
	if err != nil {
		return nil, wrap(fmt.Errorf("%w: %v", backend.ErrInvalid, err))
	}
	rc, _, _, err := b.core.GetObject(ctx, phys, key, opts)
	if err != nil {
		if code(err) == "InvalidRange" { // offset >= size: empty if ==, invalid if >
			return emptyAt()
		}
		return nil, wrap(translateCtx(ctx, err))
	}
	return &objectReader{ctx: ctx, rc: rc}, nil
}

// objectReader translates read errors of a Get body.
type objectReader struct {
	ctx context.Context
	rc  io.ReadCloser
}

func (r *objectReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, fmt.Errorf("s3: reading object: %w", err)
	}
	n, err := r.rc.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("s3: reading object: %w", translateCtx(r.ctx, err))
	}
	return n, err
}

func (r *objectReader) Close() error { return r.rc.Close() }

// Stat returns the object's size, modification time and, if it was stored
// with PutOptions.MD5, its md5. It returns an error wrapping
// backend.ErrNotFound if the object or bucket does not exist.
func (b *Backend) Stat(ctx context.Context, bucket, key string) (backend.ObjectInfo, error) {
	phys, err := b.names(bucket, key)
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return backend.ObjectInfo{}, fmt.Errorf("s3: stat %s/%s: %w", phys, key, err)
	}
	info, err := b.statObject(ctx, phys, key)
	if err != nil {
		return backend.ObjectInfo{}, fmt.Errorf("s3: stat %s/%s: %w", phys, key, err)
	}
	info.Bucket, info.Key = bucket, key
	return info, nil
}

func (b *Backend) statObject(ctx context.Context, phys, key string) (backend.ObjectInfo, error) {
	oi, err := b.client.StatObject(ctx, phys, key, minio.StatObjectOptions{})
	if err != nil {
		return backend.ObjectInfo{}, translateCtx(ctx, err)
	}
	info := backend.ObjectInfo{Size: oi.Size, ModTime: oi.LastModified}
	for k, v := range oi.UserMetadata {
		if strings.EqualFold(k, metaMD5) {
			if sum, err := objio.ParseMD5(v); err == nil {
				info.MD5 = sum
			}
		}
	}
	return info, nil
}

// Delete removes bucket/key. A missing object or bucket is not an error.
func (b *Backend) Delete(ctx context.Context, bucket, key string) error {
	phys, err := b.names(bucket, key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("s3: delete %s/%s: %w", phys, key, err)
	}
	err = b.client.RemoveObject(ctx, phys, key, minio.RemoveObjectOptions{})
	if err == nil || errors.Is(translate(err), backend.ErrNotFound) {
		return nil
	}
	return fmt.Errorf("s3: delete %s/%s: %w", phys, key, translateCtx(ctx, err))
}

// Check makes one cheap authenticated request (HEAD on the first bucket).
// A missing bucket is fine; bad credentials give backend.ErrAuth and an
// unreachable server backend.ErrUnavailable.
func (b *Backend) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("s3: check: %w", err)
	}
	if _, err := b.client.BucketExists(ctx, b.cfg.BucketPrefix+osprey.Buckets[0]); err != nil {
		return fmt.Errorf("s3: check %s: %w", b.cfg.Endpoint, translateCtx(ctx, err))
	}
	return nil
}

// Close closes idle connections of the backend's own transport. It is
// idempotent.
func (b *Backend) Close() error {
	b.closeOnce.Do(func() {
		if b.transport != nil {
			b.transport.CloseIdleConnections()
		}
	})
	return nil
}
