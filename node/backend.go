package node

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/osprey-storage/osprey/backend"
	"github.com/osprey-storage/osprey/backend/cos"
	"github.com/osprey-storage/osprey/backend/local"
	"github.com/osprey-storage/osprey/backend/oss"
	"github.com/osprey-storage/osprey/backend/s3"
)

// BackendConfig selects and configures the cluster-wide object backend.
type BackendConfig struct {
	// Type is local, s3, oss or cos.
	Type string
	// Local configures the local-disk backend; Dir defaults to
	// <data dir>/objects. In a multi-node cluster every tiered object is
	// copied to Replicas nodes' local disks, so losing one loses nothing.
	Local local.Config
	// S3, OSS and COS configure the remote backends.
	S3  s3.Config
	OSS oss.Config
	COS cos.Config
}

// DefaultBackendConfig is the local-disk backend.
func DefaultBackendConfig() BackendConfig {
	return BackendConfig{Type: "local", Local: local.DefaultConfig(), S3: s3.DefaultConfig(),
		OSS: oss.DefaultConfig(), COS: cos.DefaultConfig()}
}

// newBackend builds the configured backend. Adding a backend is a new
// package and one case here.
func newBackend(cfg BackendConfig, dataDir string, lg *slog.Logger) (backend.Backend, error) {
	switch cfg.Type {
	case "", "local":
		c := cfg.Local
		if c.Dir == "" {
			c.Dir = filepath.Join(dataDir, "objects")
		}
		c.Logger = lg
		return local.New(c)
	case "s3":
		c := cfg.S3
		c.Logger = lg
		return s3.New(c)
	case "oss":
		c := cfg.OSS
		c.Logger = lg
		return oss.New(c)
	case "cos":
		c := cfg.COS
		c.Logger = lg
		return cos.New(c)
	}
	return nil, fmt.Errorf("node: unknown backend %q (want local, s3, oss or cos)", cfg.Type)
}

// backendFingerprint identifies the backend every node must share: type
// and endpoint, never credentials.
func backendFingerprint(cfg BackendConfig) string {
	switch cfg.Type {
	case "s3":
		return fmt.Sprintf("s3 endpoint=%s ssl=%t region=%s prefix=%s", cfg.S3.Endpoint, cfg.S3.UseSSL, cfg.S3.Region, cfg.S3.BucketPrefix)
	case "oss":
		return fmt.Sprintf("oss endpoint=%s prefix=%s", cfg.OSS.Endpoint, cfg.OSS.BucketPrefix)
	case "cos":
		return fmt.Sprintf("cos region=%s app=%s prefix=%s", cfg.COS.Region, cfg.COS.AppID, cfg.COS.BucketPrefix)
	}
	return "local"
}

// isLocal reports whether objects live on each node's own disk.
func (cfg BackendConfig) isLocal() bool {
	return cfg.Type == "" || cfg.Type == "local"
}

// backendHealth runs the backend's Check every interval for /readyz and
// metrics, so probes never hammer the provider.
type backendHealth struct {
	backend interface {
		Name() string
		Check(ctx context.Context) error
	}
	log *slog.Logger
	up  atomic.Bool
	err atomic.Pointer[errBox]
}

type errBox struct{ err error }

// Run checks the backend now and every 10 seconds until ctx ends.
func (h *backendHealth) Run(ctx context.Context) {
	check := func() {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		err := h.backend.Check(cctx)
		if err != nil && ctx.Err() == nil {
			h.err.Store(&errBox{err})
			h.up.Store(false)
			h.log.Warn("backend check failed", "backend", h.backend.Name(), "err", err)
			return
		}
		h.up.Store(true)
		h.err.Store(nil)
	}
	check()
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			check()
		}
	}
}

// details reports the state of optional dependencies on /readyz. A
// backend outage does not make a node unready: staged files keep being
// uploaded and served, and tiering catches up when the backend returns.
func (h *backendHealth) details() map[string]string {
	d := map[string]string{"backend": h.backend.Name() + ": ok"}
	if b := h.err.Load(); b != nil {
		d["backend"] = h.backend.Name() + ": unreachable: " + b.err.Error()
	}
	return d
}
