package objio

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/osprey-storage/osprey/backend"
)

func TestErrorMapper(t *testing.T) {
	sdkErr := errors.New("sdk answer")
	m := ErrorMapper{
		Prefix: "prov",
		Codes:  map[string]error{"Throttled": backend.ErrUnavailable, "NoSuchKey": backend.ErrInvalid},
		Inspect: func(err error) (Failure, bool) {
			if !errors.Is(err, sdkErr) {
				return Failure{}, false
			}
			return Failure{Status: 404, Code: "NoSuchBucket", Message: "gone", RequestID: "r1"}, true
		},
	}
	ctx := context.Background()
	if err := m.Translate(ctx, "get", nil); err != nil {
		t.Fatalf("Translate(nil) = %v", err)
	}
	err := m.Translate(ctx, "get b/k", sdkErr)
	if !errors.Is(err, backend.ErrNotFound) || errors.Is(err, sdkErr) ||
		!strings.HasPrefix(err.Error(), "prov: get b/k: ") || !strings.HasSuffix(err.Error(), ": 404 NoSuchBucket: gone (request id r1)") {
		t.Errorf("service error = %v", err)
	}
	if err := m.Translate(ctx, "put", errors.New("connection reset")); !errors.Is(err, backend.ErrUnavailable) {
		t.Errorf("transport error = %v, want ErrUnavailable", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := m.Translate(cctx, "put", sdkErr); !errors.Is(err, context.Canceled) || errors.Is(err, backend.ErrNotFound) {
		t.Errorf("cancelled = %v, want context.Canceled only", err)
	}
	tests := []struct {
		status int
		code   string
		want   error
	}{
		{400, "NoSuchKey", backend.ErrInvalid}, // the provider's table wins
		{503, "Throttled", backend.ErrUnavailable},
		{403, "SignatureDoesNotMatch", backend.ErrAuth},
		{400, "EntityTooSmall", backend.ErrInvalid},
		{404, "", backend.ErrNotFound},
		{401, "", backend.ErrAuth},
		{429, "Whatever", backend.ErrUnavailable},
		{502, "", backend.ErrUnavailable},
		{409, "BucketNotEmpty", backend.ErrInvalid},
	}
	for _, tt := range tests {
		if got := m.Sentinel(tt.status, tt.code); got != tt.want {
			t.Errorf("Sentinel(%d, %q) = %v, want %v", tt.status, tt.code, got, tt.want)
		}
	}
}
