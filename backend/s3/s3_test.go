package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/osprey-storage/osprey/backend"
	"github.com/osprey-storage/osprey/backend/backendtest"
	"github.com/osprey-storage/osprey/backend/s3/s3test"
)

// testLogger routes logs to t.Log and, if capture is not nil, into it.
func testLogger(t testing.TB, capture *syncBuffer) *slog.Logger {
	var w io.Writer = tWriter{t}
	if capture != nil {
		w = io.MultiWriter(w, capture)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var prefixes atomic.Int64

// testConfig returns a config for srv with a bucket prefix no other call
// uses, 5 MiB parts (so backendtest.LargeSize is a multipart upload) and no
// retries.
func testConfig(t testing.TB, srv *s3test.Server) Config {
	cfg := DefaultConfig()
	cfg.Endpoint = srv.Endpoint()
	cfg.AccessKey = srv.AccessKey()
	cfg.SecretKey = srv.SecretKey()
	cfg.BucketPrefix = fmt.Sprintf("t%d-", prefixes.Add(1))
	cfg.PartSize = MinPartSize
	cfg.MaxAttempts = 1
	cfg.Logger = testLogger(t, nil)
	return cfg
}

func mustNew(t testing.TB, cfg Config) *Backend {
	t.Helper()
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func TestConformance(t *testing.T) {
	srv := s3test.StartServer(t)
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return mustNew(t, testConfig(t, srv))
	})
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr bool
	}{
		{"ok", func(c *Config) {}, false},
		{"anonymous", func(c *Config) { c.AccessKey, c.SecretKey = "", "" }, false},
		{"ok prefix", func(c *Config) { c.BucketPrefix = "acme-osprey-" }, false},
		{"no endpoint", func(c *Config) { c.Endpoint = "" }, true},
		{"endpoint with scheme", func(c *Config) { c.Endpoint = "http://127.0.0.1:9000" }, true},
		{"endpoint with path", func(c *Config) { c.Endpoint = "127.0.0.1:9000/x" }, true},
		{"only access key", func(c *Config) { c.SecretKey = "" }, true},
		{"part too small", func(c *Config) { c.PartSize = MinPartSize - 1 }, true},
		{"part too large", func(c *Config) { c.PartSize = MaxPartSize + 1 }, true},
		{"no attempts", func(c *Config) { c.MaxAttempts = 0 }, true},
		{"upper-case prefix", func(c *Config) { c.BucketPrefix = "Acme-" }, true},
		{"underscore prefix", func(c *Config) { c.BucketPrefix = "acme_" }, true},
		{"prefix starting with dash", func(c *Config) { c.BucketPrefix = "-acme" }, true},
		{"prefix too long", func(c *Config) { c.BucketPrefix = strings.Repeat("a", 57) }, true},
		{"prefix with double dot", func(c *Config) { c.BucketPrefix = "a.." }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Endpoint, cfg.AccessKey, cfg.SecretKey = "127.0.0.1:9000", "ak", "secretsecret"
			cfg.Logger = testLogger(t, nil)
			tt.mutate(&cfg)
			err := cfg.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, wantErr %v", err, tt.wantErr)
			}
			if _, nerr := New(cfg); (nerr != nil) != tt.wantErr {
				t.Fatalf("New() = %v, wantErr %v", nerr, tt.wantErr)
			}
		})
	}
}

func TestTranslate(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"no such key", minio.ErrorResponse{Code: "NoSuchKey", StatusCode: 404}, backend.ErrNotFound},
		{"no such bucket", minio.ErrorResponse{Code: "NoSuchBucket", StatusCode: 404}, backend.ErrNotFound},
		{"bare 404", minio.ErrorResponse{Code: "404 Not Found", StatusCode: 404}, backend.ErrNotFound},
		{"access denied", minio.ErrorResponse{Code: "AccessDenied", StatusCode: 403}, backend.ErrAuth},
		{"bad access key", minio.ErrorResponse{Code: "InvalidAccessKeyId", StatusCode: 403}, backend.ErrAuth},
		{"bad signature", minio.ErrorResponse{Code: "SignatureDoesNotMatch", StatusCode: 403}, backend.ErrAuth},
		{"bare 401", minio.ErrorResponse{Code: "x", StatusCode: 401}, backend.ErrAuth},
		{"invalid range", minio.ErrorResponse{Code: "InvalidRange", StatusCode: 416}, backend.ErrInvalid},
		{"bad bucket name", minio.ErrorResponse{Code: "InvalidBucketName", StatusCode: 400}, backend.ErrInvalid},
		{"unknown 400", minio.ErrorResponse{Code: "Whatever", StatusCode: 400}, backend.ErrInvalid},
		{"bad digest", minio.ErrorResponse{Code: "BadDigest", StatusCode: 400}, backend.ErrChecksum},
		{"internal", minio.ErrorResponse{Code: "InternalError", StatusCode: 500}, backend.ErrUnavailable},
		{"slow down", minio.ErrorResponse{Code: "SlowDown", StatusCode: 503}, backend.ErrUnavailable},
		{"bare 502", minio.ErrorResponse{Code: "502 Bad Gateway", StatusCode: 502}, backend.ErrUnavailable},
		{"too many requests", minio.ErrorResponse{Code: "x", StatusCode: 429}, backend.ErrUnavailable},
		{"wrapped response", fmt.Errorf("op: %w", minio.ErrorResponse{Code: "NoSuchKey", StatusCode: 404}), backend.ErrNotFound},
		{"network", errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), backend.ErrUnavailable},
		{"canceled", context.Canceled, context.Canceled},
		{"wrapped deadline", fmt.Errorf("Get: %w", context.DeadlineExceeded), context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := translate(tt.err)
			if !errors.Is(got, tt.want) {
				t.Fatalf("translate(%v) = %v, want %v", tt.err, got, tt.want)
			}
			var er minio.ErrorResponse
			if errors.As(got, &er) {
				t.Fatalf("translate(%v) leaks minio.ErrorResponse", tt.err)
			}
		})
	}
	if translate(nil) != nil {
		t.Fatal("translate(nil) != nil")
	}
}

func TestBucketPrefix(t *testing.T) {
	srv := s3test.StartServer(t)
	cfg := testConfig(t, srv)
	cfg.BucketPrefix = "acme-osprey-"
	b := mustNew(t, cfg)
	ctx := ctxFor(t)
	if err := b.EnsureBucket(ctx, "video"); err != nil {
		t.Fatal(err)
	}
	ok, err := b.client.BucketExists(ctx, "acme-osprey-video")
	if err != nil || !ok {
		t.Fatalf("physical bucket acme-osprey-video exists = %v, %v", ok, err)
	}
}

// TestMultipart checks that large objects really are multipart uploads
// (so the conformance suite's large cases exercise that path), that Stat
// still reports the md5 although the ETag is not one, and that failed
// multipart uploads are aborted rather than left on the server.
func TestMultipart(t *testing.T) {
	srv := s3test.StartServer(t)
	b := mustNew(t, testConfig(t, srv))
	ctx := ctxFor(t)
	if err := b.EnsureBucket(ctx, "video"); err != nil {
		t.Fatal(err)
	}
	phys := b.cfg.BucketPrefix + "video"
	data := bytes.Repeat([]byte("0123456789abcdef"), backendtest.LargeSize/16)
	if _, err := b.Put(ctx, "video", "big", bytes.NewReader(data), int64(len(data)), backend.PutOptions{MD5: md5hex(data)}); err != nil {
		t.Fatal(err)
	}
	oi, err := b.client.StatObject(ctx, phys, "big", minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(oi.ETag, "-3") {
		t.Fatalf("ETag %q: want a 3-part multipart ETag", oi.ETag)
	}
	info, err := b.Stat(ctx, "video", "big")
	if err != nil || info.MD5 != md5hex(data) {
		t.Fatalf("Stat = %+v, %v; want md5 %s", info, err, md5hex(data))
	}

	// Failures at every stage of a multipart upload leave no upload behind.
	failures := []struct {
		name string
		put  func(ctx context.Context) error
	}{
		{"md5 mismatch", func(ctx context.Context) error {
			_, err := b.Put(ctx, "video", "fail", bytes.NewReader(data), int64(len(data)), backend.PutOptions{MD5: md5hex(nil)})
			return err
		}},
		{"short body", func(ctx context.Context) error {
			_, err := b.Put(ctx, "video", "fail", bytes.NewReader(data[:7<<20]), int64(len(data)), backend.PutOptions{})
			return err
		}},
		{"cancelled", func(ctx context.Context) error {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			r := &cancelAfter{r: bytes.NewReader(data), after: 6 << 20, cancel: cancel}
			_, err := b.Put(ctx, "video", "fail", r, int64(len(data)), backend.PutOptions{})
			return err
		}},
	}
	for _, f := range failures {
		t.Run(f.name, func(t *testing.T) {
			if err := f.put(ctx); err == nil {
				t.Fatal("Put succeeded")
			}
			for u := range b.client.ListIncompleteUploads(ctx, phys, "fail", true) {
				if u.Err != nil {
					t.Fatalf("listing uploads: %v", u.Err)
				}
				t.Errorf("incomplete upload left behind: %s %s", u.Key, u.UploadID)
			}
			if _, err := b.Stat(ctx, "video", "fail"); !errors.Is(err, backend.ErrNotFound) {
				t.Errorf("Stat after failed put = %v, want ErrNotFound", err)
			}
		})
	}
}

type cancelAfter struct {
	r      io.Reader
	n      int
	after  int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	if c.n >= c.after {
		c.cancel()
	}
	return n, err
}

// TestAuthAndSecrets checks that bad credentials give ErrAuth and that no
// secret reaches logs or error messages.
func TestAuthAndSecrets(t *testing.T) {
	srv := s3test.StartServer(t)
	var logs syncBuffer
	good := testConfig(t, srv)
	good.Logger = testLogger(t, &logs)
	gb := mustNew(t, good)
	ctx := ctxFor(t)
	if err := gb.EnsureBucket(ctx, "image"); err != nil {
		t.Fatal(err)
	}
	const wrongSecret = "wrong-secret-value-1234"
	tests := []struct {
		name   string
		mutate func(*Config)
	}{
		{"wrong secret", func(c *Config) { c.SecretKey = wrongSecret }},
		{"unknown access key", func(c *Config) { c.AccessKey = "nobody" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.mutate(&cfg)
			b := mustNew(t, cfg)
			var errs []error
			errs = append(errs, b.Check(ctx), b.EnsureBucket(ctx, "image"), b.Delete(ctx, "image", "k"))
			_, err := b.Put(ctx, "image", "k", strings.NewReader("x"), 1, backend.PutOptions{})
			errs = append(errs, err)
			_, err = b.Stat(ctx, "image", "k")
			errs = append(errs, err)
			_, err = b.Get(ctx, "image", "k", 0, -1)
			errs = append(errs, err)
			for i, err := range errs {
				if !errors.Is(err, backend.ErrAuth) {
					t.Errorf("call %d = %v, want ErrAuth", i, err)
				}
				if err != nil && (strings.Contains(err.Error(), srv.SecretKey()) || strings.Contains(err.Error(), wrongSecret)) {
					t.Errorf("error message contains a secret: %v", err)
				}
			}
		})
	}
	for _, secret := range []string{srv.SecretKey(), wrongSecret} {
		if strings.Contains(logs.String(), secret) {
			t.Fatal("logs contain a secret")
		}
	}
}

// TestUnavailableAndRecovery stops the server under a backend, checks that
// every call reports ErrUnavailable promptly, then restarts the server and
// checks that the same backend works again with the data intact.
func TestUnavailableAndRecovery(t *testing.T) {
	srv := s3test.StartServer(t)
	b := mustNew(t, testConfig(t, srv))
	ctx := ctxFor(t)
	if err := b.EnsureBucket(ctx, "doc"); err != nil {
		t.Fatal(err)
	}
	data := []byte("survives the outage")
	if _, err := b.Put(ctx, "doc", "k", bytes.NewReader(data), int64(len(data)), backend.PutOptions{MD5: md5hex(data)}); err != nil {
		t.Fatal(err)
	}

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Check", b.Check},
		{"EnsureBucket", func(ctx context.Context) error { return b.EnsureBucket(ctx, "audio") }},
		{"Put", func(ctx context.Context) error {
			_, err := b.Put(ctx, "doc", "new", bytes.NewReader(data), int64(len(data)), backend.PutOptions{})
			return err
		}},
		{"PutLarge", func(ctx context.Context) error {
			big := make([]byte, backendtest.LargeSize)
			_, err := b.Put(ctx, "doc", "new", bytes.NewReader(big), int64(len(big)), backend.PutOptions{})
			return err
		}},
		{"Get", func(ctx context.Context) error {
			rc, err := b.Get(ctx, "doc", "k", 0, -1)
			if err == nil {
				rc.Close()
			}
			return err
		}},
		{"Stat", func(ctx context.Context) error { _, err := b.Stat(ctx, "doc", "k"); return err }},
		{"Delete", func(ctx context.Context) error { return b.Delete(ctx, "doc", "k") }},
	}
	for _, c := range calls {
		t.Run("down/"+c.name, func(t *testing.T) {
			start := time.Now()
			err := c.call(ctx)
			if !errors.Is(err, backend.ErrUnavailable) {
				t.Fatalf("%s with server down = %v, want ErrUnavailable", c.name, err)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Fatalf("%s took %v to fail", c.name, d)
			}
		})
	}

	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	// Poll until the backend's connections recover, with a deadline.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := b.Check(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Check still failing 30s after restart: %v", err)
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	info, err := b.Stat(ctx, "doc", "k")
	if err != nil || info.MD5 != md5hex(data) {
		t.Fatalf("Stat after restart = %+v, %v", info, err)
	}
	rc, err := b.Get(ctx, "doc", "k", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get after restart = %q, %v", got, err)
	}
	if _, err := b.Put(ctx, "doc", "after", bytes.NewReader(data), int64(len(data)), backend.PutOptions{}); err != nil {
		t.Fatalf("Put after restart: %v", err)
	}
}
