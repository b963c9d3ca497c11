package node

import (
	"context"
	"fmt"
	"path/filepath"
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
func (n *Node) newBackend(cfg BackendConfig) (backend.Backend, error) {
	switch cfg.Type {
	case "", "local":
		c := cfg.Local
		if c.Dir == "" {
			c.Dir = filepath.Join(n.cfg.DataDir, "objects")
		}
		c.Logger = n.log
		return local.New(c)
	case "s3":
		c := cfg.S3
		c.Logger = n.log
		return s3.New(c)
	case "oss":
		c := cfg.OSS
		c.Logger = n.log
		return oss.New(c)
	case "cos":
		c := cfg.COS
		c.Logger = n.log
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

// isLocalBackend reports whether objects live on each node's own disk.
func (n *Node) isLocalBackend() bool {
	return n.cfg.Backend.Type == "" || n.cfg.Backend.Type == "local"
}

// backendCheck runs the backend's Check every interval for /readyz and
// metrics, so probes never hammer the provider.
func (n *Node) backendCheckLoop() {
	check := func() {
		ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
		defer cancel()
		err := n.backend.Check(ctx)
		if err != nil && n.ctx.Err() == nil {
			n.backendErr.Store(&errBox{err})
			n.backendUp.Store(false)
			n.log.Warn("backend check failed", "backend", n.backend.Name(), "err", err)
			return
		}
		n.backendUp.Store(true)
		n.backendErr.Store(nil)
	}
	check()
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			check()
		}
	}
}

type errBox struct{ err error }
