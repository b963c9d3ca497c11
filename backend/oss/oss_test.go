package oss_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/osprey-storage/osprey/backend"
	"github.com/osprey-storage/osprey/backend/internal/fakestore"
	"github.com/osprey-storage/osprey/backend/internal/providertest"
	"github.com/osprey-storage/osprey/backend/oss"
	"github.com/osprey-storage/osprey/backend/oss/ossfake"
)

// TestProvider runs the provider suite (and through it the conformance
// suite) against the OSS backend and ossfake.
func TestProvider(t *testing.T) {
	providertest.Run(t, providertest.Provider{
		MinPartSize: oss.MinPartSize,
		NewFake: func(t *testing.T, accounts map[string]string) *fakestore.Core {
			return newFake(t, accounts).Core
		},
		NewBackend: func(t *testing.T, f *fakestore.Core, o providertest.Options) (backend.Backend, error) {
			cfg := testConfig(t, f.URL())
			cfg.AccessKeyID, cfg.AccessKeySecret = o.KeyID, o.Secret
			if o.PartSize != 0 {
				cfg.PartSize = o.PartSize
			}
			if o.IOTimeout != 0 {
				cfg.IOTimeout = o.IOTimeout
			}
			return oss.New(cfg)
		},
		Physical:        func(bucket string) string { return "osprey-" + bucket },
		FailedPartCalls: []string{"InitiateMultipartUpload", "UploadPart", "UploadPart", "AbortMultipartUpload"},
		MD5MayBeUnknown: func(string) bool { return false },
	})
}

func newFake(t *testing.T, accounts map[string]string) *ossfake.Server {
	t.Helper()
	cfg := ossfake.DefaultConfig()
	cfg.Credentials = accounts
	f, err := ossfake.New(cfg)
	if err != nil {
		t.Fatalf("ossfake.New: %v", err)
	}
	return f
}

func mustFake(t *testing.T) *ossfake.Server {
	t.Helper()
	f := newFake(t, map[string]string{providertest.KeyID: providertest.Secret, providertest.OtherKeyID: providertest.OtherSecret})
	t.Cleanup(f.Close)
	return f
}

func testConfig(t *testing.T, endpoint string) oss.Config {
	cfg := oss.DefaultConfig()
	cfg.Endpoint = endpoint
	cfg.AccessKeyID = providertest.KeyID
	cfg.AccessKeySecret = providertest.Secret
	cfg.BucketPrefix = "osprey-"
	cfg.Logger = providertest.Logger(t)
	return cfg
}

func mustBackend(t *testing.T, cfg oss.Config) *oss.Backend {
	t.Helper()
	b, err := oss.New(cfg)
	if err != nil {
		t.Fatalf("oss.New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestVirtualHostedAddressing(t *testing.T) {
	f := mustFake(t)
	cfg := testConfig(t, f.URL())
	cfg.Endpoint = "http://oss-cn-hangzhou.aliyuncs.com"
	cfg.DialContext = f.DialContext
	b := mustBackend(t, cfg)
	providertest.MustEnsure(t, b, "audio")
	data := []byte("virtual hosted")
	if _, err := b.Put(context.Background(), "audio", "x/y.mp3", bytes.NewReader(data), int64(len(data)), backend.PutOptions{}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if got := providertest.MustGet(t, b, "audio", "x/y.mp3", 8, -1); string(got) != "hosted" {
		t.Fatalf("Get = %q", got)
	}
	if _, ok := f.Object("osprey-audio", "x/y.mp3"); !ok {
		t.Fatal("object not stored under the virtual-hosted bucket")
	}
	if err := b.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	valid := func() oss.Config {
		c := oss.DefaultConfig()
		c.Endpoint = "oss-cn-beijing.aliyuncs.com"
		c.AccessKeyID = "id"
		c.AccessKeySecret = "secret"
		return c
	}
	tests := []struct {
		name   string
		mutate func(*oss.Config)
		ok     bool
	}{
		{"valid", func(*oss.Config) {}, true},
		{"https endpoint", func(c *oss.Config) { c.Endpoint = "https://oss-cn-beijing.aliyuncs.com" }, true},
		{"no endpoint", func(c *oss.Config) { c.Endpoint = "" }, false},
		{"endpoint with path", func(c *oss.Config) { c.Endpoint = "https://x.com/path" }, false},
		{"ftp endpoint", func(c *oss.Config) { c.Endpoint = "ftp://x.com" }, false},
		{"no secret", func(c *oss.Config) { c.AccessKeySecret = "" }, false},
		{"spaced id", func(c *oss.Config) { c.AccessKeyID = " id" }, false},
		{"part too small", func(c *oss.Config) { c.PartSize = oss.MinPartSize - 1 }, false},
		{"part too large", func(c *oss.Config) { c.PartSize = oss.MaxPartSize + 1 }, false},
		{"prefix upper case", func(c *oss.Config) { c.BucketPrefix = "Osprey-" }, false},
		{"prefix leading dash", func(c *oss.Config) { c.BucketPrefix = "-osprey" }, false},
		{"prefix too long", func(c *oss.Config) { c.BucketPrefix = strings.Repeat("a", 24) }, false},
		{"zero timeout", func(c *oss.Config) { c.ConnectTimeout = 0 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(&c)
			err := c.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if _, nerr := oss.New(c); (nerr == nil) != tt.ok {
				t.Fatalf("New() = %v, want ok=%v", nerr, tt.ok)
			}
		})
	}
}

func TestSecretNotLogged(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	cfg := oss.DefaultConfig()
	cfg.AccessKeySecret = "super-secret-value"
	logger.Info("config", "cfg", cfg)
	if strings.Contains(buf.String(), "super-secret-value") {
		t.Fatalf("secret in log output: %s", buf.String())
	}
}
