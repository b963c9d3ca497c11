package cos_test

import (
	"testing"

	"github.com/osprey-storage/osprey/backend"
	"github.com/osprey-storage/osprey/backend/backendtest"
	"github.com/osprey-storage/osprey/backend/cos"
)

// TestConformance runs the shared backend suite against the COS backend
// talking to a fresh fake per backend. Parts of 5 MiB make the suite's
// LargeSize objects multipart uploads.
func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		f := mustFake(t)
		cfg := testConfig(t, f)
		cfg.PartSize = 5 << 20
		b, err := cos.New(cfg)
		if err != nil {
			t.Fatalf("cos.New: %v", err)
		}
		return b
	})
}
