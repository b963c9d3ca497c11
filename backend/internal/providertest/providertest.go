// Package providertest is the wire-level test suite every provider backend
// (backend/oss, backend/cos) runs against its protocol-faithful fake: the
// round trip through single and multipart uploads, ranges, errors and
// their sentinels, wrong credentials, outages, truncated and stalled
// bodies, checksum mismatches and short bodies that must store nothing,
// the exact multipart call sequence and its abort on failure, and the
// shared conformance suite (backend/backendtest). A provider supplies a
// Provider; the tests of what is its own alone (addressing, its Config)
// stay in its package.
//
// It is internal to backend/...
package providertest

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/osprey-storage/osprey/backend"
	"github.com/osprey-storage/osprey/backend/backendtest"
	"github.com/osprey-storage/osprey/backend/internal/fakestore"
)

// The accounts every fake started by the suite knows.
const (
	KeyID       = "OspreyTestKeyId0123456789"
	Secret      = "osprey-test-secret-0123456789"
	OtherKeyID  = "OspreyOtherKeyId"
	OtherSecret = "someone-else-secret"
)

// Options are what a test changes in the provider's test configuration.
// Zero values keep the provider's defaults.
type Options struct {
	PartSize  int64
	IOTimeout time.Duration
	// KeyID and Secret replace the credentials (KeyID, Secret).
	KeyID, Secret string
}

// Provider is what the suite needs from one provider backend.
type Provider struct {
	// MinPartSize is the backend's smallest part size.
	MinPartSize int
	// NewFake starts the provider's fake knowing accounts (key id →
	// secret) and returns its core; the suite closes it.
	NewFake func(t *testing.T, accounts map[string]string) *fakestore.Core
	// NewBackend builds a backend talking to fake, with the bucket prefix
	// "osprey-", the logger Logger(t) and o applied.
	NewBackend func(t *testing.T, fake *fakestore.Core, o Options) (backend.Backend, error)
	// Physical returns the provider's bucket name for a logical one.
	Physical func(bucket string) string
	// FailedPartCalls is the call sequence of a three-part Put whose
	// second part fails with 503 (SDKs differ in retrying parts).
	FailedPartCalls []string
	// MD5MayBeUnknown reports keys for which a multipart Put without a
	// known md5 may leave it unrecorded.
	MD5MayBeUnknown func(key string) bool
}

func (p Provider) fake(t *testing.T) *fakestore.Core {
	t.Helper()
	f := p.NewFake(t, map[string]string{KeyID: Secret, OtherKeyID: OtherSecret})
	t.Cleanup(f.Close)
	return f
}

func (p Provider) backend(t *testing.T, f *fakestore.Core, o Options) backend.Backend {
	t.Helper()
	if o.KeyID == "" {
		o.KeyID, o.Secret = KeyID, Secret
	}
	b, err := p.NewBackend(t, f, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// Run runs the suite, each test as a subtest of t.
func Run(t *testing.T, p Provider) {
	tests := []struct {
		name string
		run  func(*testing.T, Provider)
	}{
		{"RoundTrip", testRoundTrip},
		{"OverwriteReplacesObject", testOverwriteReplacesObject},
		{"RangedGet", testRangedGet},
		{"NotFound", testNotFound},
		{"InvalidArguments", testInvalidArguments},
		{"WrongCredentials", testWrongCredentials},
		{"Outage", testOutage},
		{"ServerGone", testServerGone},
		{"TruncatedBody", testTruncatedBody},
		{"StalledBody", testStalledBody},
		{"ChecksumMismatchStoresNothing", testChecksumMismatchStoresNothing},
		{"ShortBodyStoresNothing", testShortBodyStoresNothing},
		{"MultipartSequence", testMultipartSequence},
		{"FailedPartAborts", testFailedPartAborts},
		{"CancelledContextAborts", testCancelledContextAborts},
		{"EnsureBucket", testEnsureBucket},
		{"ConcurrentPuts", testConcurrentPuts},
		{"Close", testClose},
		{"MultipartOddKeys", testMultipartOddKeys},
		{"Conformance", testConformance},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, p) })
	}
}

// testConformance runs the shared backend suite against a fresh fake per
// backend. Parts of 5 MiB make the suite's LargeSize objects multipart
// uploads.
func testConformance(t *testing.T, p Provider) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		f := p.fake(t)
		b, err := p.NewBackend(t, f, Options{PartSize: 5 << 20, KeyID: KeyID, Secret: Secret})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return b
	})
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Logger logs at debug level to t.Log.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// MustEnsure creates bucket or fails t.
func MustEnsure(t *testing.T, b backend.Backend, bucket string) {
	t.Helper()
	if err := b.EnsureBucket(context.Background(), bucket); err != nil {
		t.Fatalf("EnsureBucket(%q): %v", bucket, err)
	}
}

// RandomBytes returns n bytes determined by seed.
func RandomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 42))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// MD5Hex is the hex md5 of b.
func MD5Hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

// MustGet reads bucket/key[offset:offset+length] or fails t.
func MustGet(t *testing.T, b backend.Backend, bucket, key string, offset, length int64) []byte {
	t.Helper()
	rc, err := b.Get(context.Background(), bucket, key, offset, length)
	if err != nil {
		t.Fatalf("Get(%s, %d, %d): %v", key, offset, length, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading Get(%s, %d, %d): %v", key, offset, length, err)
	}
	return got
}

// ops returns the operation names of calls, in order.
func ops(calls []fakestore.Call) []string {
	var out []string
	for _, c := range calls {
		out = append(out, c.Op)
	}
	return out
}
