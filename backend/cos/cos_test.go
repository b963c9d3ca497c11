package cos_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/osprey-storage/osprey/backend"
	"github.com/osprey-storage/osprey/backend/cos"
	"github.com/osprey-storage/osprey/backend/cos/cosfake"
	"github.com/osprey-storage/osprey/backend/internal/fakestore"
	"github.com/osprey-storage/osprey/backend/internal/providertest"
)

const appID = "1250000000"

// physical returns the COS bucket name for a logical one.
func physical(bucket string) string { return "osprey-" + bucket + "-" + appID }

// TestProvider runs the provider suite (and through it the conformance
// suite) against the COS backend and cosfake.
func TestProvider(t *testing.T) {
	providertest.Run(t, providertest.Provider{
		MinPartSize: cos.MinPartSize,
		NewFake: func(t *testing.T, accounts map[string]string) *fakestore.Core {
			return newFake(t, accounts).Core
		},
		NewBackend: func(t *testing.T, f *fakestore.Core, o providertest.Options) (backend.Backend, error) {
			cfg := testConfig(t, f.URL())
			cfg.SecretID, cfg.SecretKey = o.KeyID, o.Secret
			if o.PartSize != 0 {
				cfg.PartSize = o.PartSize
			}
			if o.IOTimeout != 0 {
				cfg.IOTimeout = o.IOTimeout
			}
			return cos.New(cfg)
		},
		Physical: physical,
		// The SDK tries a part (its body can be replayed) MaxAttempts times.
		FailedPartCalls: []string{"InitiateMultipartUpload", "UploadPart", "UploadPart", "UploadPart", "UploadPart", "AbortMultipartUpload"},
		// The SDK's Copy cannot name a source key holding '?', so Put
		// leaves such keys' md5 unrecorded.
		MD5MayBeUnknown: func(key string) bool { return strings.Contains(key, "?") },
	})
}

func newFake(t *testing.T, accounts map[string]string) *cosfake.Server {
	t.Helper()
	cfg := cosfake.DefaultConfig()
	cfg.Credentials = accounts
	f, err := cosfake.New(cfg)
	if err != nil {
		t.Fatalf("cosfake.New: %v", err)
	}
	return f
}

func mustFake(t *testing.T) *cosfake.Server {
	t.Helper()
	f := newFake(t, map[string]string{providertest.KeyID: providertest.Secret, providertest.OtherKeyID: providertest.OtherSecret})
	t.Cleanup(f.Close)
	return f
}

func testConfig(t *testing.T, baseURL string) cos.Config {
	cfg := cos.DefaultConfig()
	cfg.Region = "ap-nanjing"
	cfg.AppID = appID
	cfg.BaseURL = baseURL
	cfg.SecretID = providertest.KeyID
	cfg.SecretKey = providertest.Secret
	cfg.BucketPrefix = "osprey-"
	cfg.Logger = providertest.Logger(t)
	return cfg
}

func mustBackend(t *testing.T, cfg cos.Config) *cos.Backend {
	t.Helper()
	b, err := cos.New(cfg)
	if err != nil {
		t.Fatalf("cos.New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestRetryRecovers(t *testing.T) {
	f := mustFake(t)
	cfg := testConfig(t, f.URL())
	cfg.PartSize = cos.MinPartSize
	b := mustBackend(t, cfg)
	providertest.MustEnsure(t, b, "video")
	var mu sync.Mutex
	failed := map[string]bool{}
	f.SetFault(func(c cosfake.Call) cosfake.Fault {
		mu.Lock()
		defer mu.Unlock()
		id := fmt.Sprintf("%s/%d", c.Op, c.PartNumber)
		if failed[id] {
			return cosfake.FaultNone
		}
		failed[id] = true
		return cosfake.FaultUnavailable
	})
	data := providertest.RandomBytes(2*cos.MinPartSize+3, 8)
	if _, err := b.Put(context.Background(), "video", "k", bytes.NewReader(data), int64(len(data)), backend.PutOptions{}); err != nil {
		t.Fatalf("Put with one 503 per call: %v", err)
	}
	if got := providertest.MustGet(t, b, "video", "k", 0, -1); !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
}

// TestAddressing checks that every request names its bucket in the Host
// header, whether BaseURL is the fake's address (the Host header is set
// explicitly) or a template resolved through DialContext.
func TestAddressing(t *testing.T) {
	tests := []struct {
		name    string
		baseURL func(f *cosfake.Server) string
		dial    bool
	}{
		{"address", func(f *cosfake.Server) string { return f.URL() }, false},
		{"template", func(*cosfake.Server) string { return "http://{bucket}.cos.{region}.myqcloud.com" }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustFake(t)
			cfg := testConfig(t, f.URL())
			cfg.BaseURL = tt.baseURL(f)
			if tt.dial {
				cfg.DialContext = f.DialContext
				cfg.ServiceURL = "http://service.cos.myqcloud.com"
			}
			cfg.PartSize = cos.MinPartSize
			b := mustBackend(t, cfg)
			providertest.MustEnsure(t, b, "audio")
			data := providertest.RandomBytes(cos.MinPartSize+5, 4)
			if _, err := b.Put(context.Background(), "audio", "x/y.mp3", bytes.NewReader(data), int64(len(data)), backend.PutOptions{}); err != nil {
				t.Fatalf("Put: %v", err)
			}
			if got := providertest.MustGet(t, b, "audio", "x/y.mp3", 8, -1); !bytes.Equal(got, data[8:]) {
				t.Fatalf("Get returned %d bytes", len(got))
			}
			if _, ok := f.Object(physical("audio"), "x/y.mp3"); !ok {
				t.Fatal("object not stored in the bucket named by the host")
			}
			if err := b.Check(context.Background()); err != nil {
				t.Fatalf("Check: %v", err)
			}
			for _, c := range f.Calls() {
				wantHost := physical("audio") + ".cos.ap-nanjing.myqcloud.com"
				if c.Op == "GetService" {
					wantHost = "service.cos.myqcloud.com"
				}
				if host, _, _ := strings.Cut(c.Host, ":"); host != wantHost {
					t.Errorf("%s sent Host %q, want %q", c.Op, c.Host, wantHost)
				}
			}
		})
	}
}

func TestBucketDomainTooLong(t *testing.T) {
	f := mustFake(t)
	b := mustBackend(t, testConfig(t, f.URL()))
	// osprey-<26 chars>-1250000000.cos.ap-nanjing.myqcloud.com is 72
	// characters; COS allows 60.
	if err := b.EnsureBucket(context.Background(), strings.Repeat("a", 26)); !errors.Is(err, backend.ErrInvalid) {
		t.Fatalf("EnsureBucket with a long name: %v, want ErrInvalid", err)
	}
	if len(f.Calls()) != 0 {
		t.Fatalf("a request was sent: %+v", f.Calls())
	}
}

func TestManyBucketsConcurrently(t *testing.T) {
	f := mustFake(t)
	b := mustBackend(t, testConfig(t, f.URL()))
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := []string{"image", "video", "audio", "doc", "archive", "unknown"}[i%6]
			if err := b.EnsureBucket(context.Background(), name); err != nil {
				errs <- err
				return
			}
			key := fmt.Sprintf("k%d", i)
			if _, err := b.Put(context.Background(), name, key, strings.NewReader(key), int64(len(key)), backend.PutOptions{}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, name := range []string{"image", "video", "audio", "doc", "archive", "unknown"} {
		if !f.HasBucket(physical(name)) {
			t.Errorf("bucket %s missing", physical(name))
		}
	}
}

func TestConfigValidate(t *testing.T) {
	valid := func() cos.Config {
		c := cos.DefaultConfig()
		c.Region = "ap-nanjing"
		c.AppID = appID
		c.SecretID = "id"
		c.SecretKey = "key"
		return c
	}
	tests := []struct {
		name   string
		mutate func(*cos.Config)
		ok     bool
	}{
		{"valid", func(*cos.Config) {}, true},
		{"template base", func(c *cos.Config) { c.BaseURL = "https://{bucket}.cos.accelerate.myqcloud.com" }, true},
		{"address base", func(c *cos.Config) { c.BaseURL = "http://127.0.0.1:9000" }, true},
		{"service url", func(c *cos.Config) { c.ServiceURL = "https://service.cos.myqcloud.com" }, true},
		{"no region", func(c *cos.Config) { c.Region = "" }, false},
		{"bad region", func(c *cos.Config) { c.Region = "AP_Nanjing" }, false},
		{"no app id", func(c *cos.Config) { c.AppID = "" }, false},
		{"app id not numeric", func(c *cos.Config) { c.AppID = "12ab" }, false},
		{"no secret", func(c *cos.Config) { c.SecretKey = "" }, false},
		{"spaced id", func(c *cos.Config) { c.SecretID = "id " }, false},
		{"part too small", func(c *cos.Config) { c.PartSize = cos.MinPartSize - 1 }, false},
		{"part too large", func(c *cos.Config) { c.PartSize = cos.MaxPartSize + 1 }, false},
		{"prefix upper case", func(c *cos.Config) { c.BucketPrefix = "Osprey-" }, false},
		{"prefix leading dash", func(c *cos.Config) { c.BucketPrefix = "-osprey" }, false},
		{"base with path", func(c *cos.Config) { c.BaseURL = "http://127.0.0.1:9000/x" }, false},
		{"base without scheme", func(c *cos.Config) { c.BaseURL = "127.0.0.1:9000" }, false},
		{"zero attempts", func(c *cos.Config) { c.MaxAttempts = 0 }, false},
		{"zero timeout", func(c *cos.Config) { c.ResponseHeaderTimeout = 0 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(&c)
			err := c.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if _, nerr := cos.New(c); (nerr == nil) != tt.ok {
				t.Fatalf("New() = %v, want ok=%v", nerr, tt.ok)
			}
		})
	}
}

func TestSecretNotLogged(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	cfg := cos.DefaultConfig()
	cfg.SecretKey = "super-secret-value"
	logger.Info("config", "cfg", cfg)
	if strings.Contains(buf.String(), "super-secret-value") {
		t.Fatalf("secret in log output: %s", buf.String())
	}
}
