package oss_test

import (
	"testing"

	"github.com/osprey-storage/osprey/backend"
	"github.com/osprey-storage/osprey/backend/backendtest"
	"github.com/osprey-storage/osprey/backend/oss"
)

// TestConformance runs the shared backend suite against the OSS backend
// talking to a fresh fake per backend. Parts of 5 MiB make the suite's
// LargeSize objects multipart uploads.
func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		f := mustFake(t)
		cfg := testConfig(t, f)
		cfg.PartSize = 5 << 20
		b, err := oss.New(cfg)
		if err != nil {
			t.Fatalf("oss.New: %v", err)
		}
		return b
	})
}
