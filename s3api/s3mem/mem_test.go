package s3mem_test

import (
	"testing"

	"github.com/osprey-storage/osprey/s3api"
	"github.com/osprey-storage/osprey/s3api/s3apitest"
	"github.com/osprey-storage/osprey/s3api/s3mem"
)

func TestConformance(t *testing.T) {
	s3apitest.RunBackendTests(t, func(t *testing.T) s3api.Backend { return s3mem.New() })
}
