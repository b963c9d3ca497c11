package oss_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osprey-storage/osprey/backend"
	"github.com/osprey-storage/osprey/backend/oss"
	"github.com/osprey-storage/osprey/backend/oss/ossfake"
)

const (
	testKeyID   = "LTAI5tOspreyTestKey"
	testSecret  = "osprey-test-secret-0123456789"
	otherKeyID  = "LTAI5tSomeoneElse"
	otherSecret = "someone-else-secret"
)

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func mustFake(t *testing.T) *ossfake.Server {
	t.Helper()
	cfg := ossfake.DefaultConfig()
	cfg.Credentials = map[string]string{testKeyID: testSecret, otherKeyID: otherSecret}
	f, err := ossfake.New(cfg)
	if err != nil {
		t.Fatalf("ossfake.New: %v", err)
	}
	t.Cleanup(f.Close)
	return f
}

func testConfig(t *testing.T, f *ossfake.Server) oss.Config {
	cfg := oss.DefaultConfig()
	cfg.Endpoint = f.URL()
	cfg.AccessKeyID = testKeyID
	cfg.AccessKeySecret = testSecret
	cfg.BucketPrefix = "osprey-"
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
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

func mustEnsure(t *testing.T, b backend.Backend, bucket string) {
	t.Helper()
	if err := b.EnsureBucket(context.Background(), bucket); err != nil {
		t.Fatalf("EnsureBucket(%q): %v", bucket, err)
	}
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 42))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func mustGet(t *testing.T, b backend.Backend, bucket, key string, offset, length int64) []byte {
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

// ops returns the operation names the fake saw, in order.
func ops(f *ossfake.Server) []string {
	var out []string
	for _, c := range f.Calls() {
		out = append(out, c.Op)
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name      string
		partSize  int64
		size      int
		giveMD5   bool
		wantType  string // object type OSS reports
		wantParts int
	}{
		{"empty", 16 * mib, 0, true, "Normal", 0},
		{"one byte", 16 * mib, 1, false, "Normal", 0},
		{"1MiB-1", 16 * mib, mib - 1, true, "Normal", 0},
		{"1MiB", 16 * mib, mib, false, "Normal", 0},
		{"1MiB+1", 16 * mib, mib + 1, true, "Normal", 0},
		{"exactly one part", oss.MinPartSize, oss.MinPartSize, true, "Normal", 0},
		{"part plus one byte", oss.MinPartSize, oss.MinPartSize + 1, true, "Multipart", 2},
		{"multipart md5 given", oss.MinPartSize, 3*oss.MinPartSize + 17, true, "Multipart", 4},
		{"multipart md5 computed", oss.MinPartSize, 3*oss.MinPartSize + 17, false, "Multipart", 4},
		{"multipart 1MiB+1", oss.MinPartSize, mib + 1, false, "Multipart", 11},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustFake(t)
			cfg := testConfig(t, f)
			cfg.PartSize = tt.partSize
			b := mustBackend(t, cfg)
			mustEnsure(t, b, "image")
			data := randomBytes(tt.size, uint64(i))
			opts := backend.PutOptions{ContentType: "image/png"}
			if tt.giveMD5 {
				opts.MD5 = md5hex(data)
			}
			f.ResetCalls()
			info, err := b.Put(context.Background(), "image", "a/b c+d.png", bytes.NewReader(data), int64(len(data)), opts)
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			if info.Size != int64(len(data)) || info.MD5 != md5hex(data) || info.Bucket != "image" || info.Key != "a/b c+d.png" {
				t.Fatalf("Put info = %+v, want size %d md5 %s", info, len(data), md5hex(data))
			}
			parts := 0
			for _, c := range f.Calls() {
				if c.Op == "UploadPart" {
					parts++
				}
			}
			if parts != tt.wantParts {
				t.Errorf("UploadPart calls = %d, want %d (calls %v)", parts, tt.wantParts, ops(f))
			}

			got := mustGet(t, b, "image", "a/b c+d.png", 0, -1)
			if !bytes.Equal(got, data) {
				t.Fatalf("Get returned %d bytes (md5 %s), want %d (md5 %s)", len(got), md5hex(got), len(data), md5hex(data))
			}
			st, err := b.Stat(context.Background(), "image", "a/b c+d.png")
			if err != nil {
				t.Fatalf("Stat: %v", err)
			}
			if st.Size != int64(len(data)) || st.MD5 != md5hex(data) || st.ModTime.IsZero() {
				t.Errorf("Stat = %+v, want size %d md5 %s", st, len(data), md5hex(data))
			}
			obj, ok := f.Object("osprey-image", "a/b c+d.png")
			if !ok {
				t.Fatal("object missing from the fake")
			}
			if obj.Multipart != (tt.wantType == "Multipart") || obj.Meta["md5"] != md5hex(data) || obj.ContentType != "image/png" {
				t.Errorf("stored multipart %v meta %v content type %q; want type %q md5 %s image/png", obj.Multipart, obj.Meta, obj.ContentType, tt.wantType, md5hex(data))
			}
		})
	}
}

func TestOverwriteReplacesObject(t *testing.T) {
	f := mustFake(t)
	b := mustBackend(t, testConfig(t, f))
	mustEnsure(t, b, "doc")
	ctx := context.Background()
	for _, s := range []string{"first version", "second"} {
		if _, err := b.Put(ctx, "doc", "k", strings.NewReader(s), int64(len(s)), backend.PutOptions{}); err != nil {
			t.Fatalf("Put(%q): %v", s, err)
		}
	}
	if got := string(mustGet(t, b, "doc", "k", 0, -1)); got != "second" {
		t.Fatalf("Get = %q, want %q", got, "second")
	}
}

func TestRangedGet(t *testing.T) {
	f := mustFake(t)
	b := mustBackend(t, testConfig(t, f))
	mustEnsure(t, b, "video")
	ctx := context.Background()
	data := randomBytes(1000, 7)
	if _, err := b.Put(ctx, "video", "v", bytes.NewReader(data), 1000, backend.PutOptions{}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if _, err := b.Put(ctx, "video", "empty", bytes.NewReader(nil), 0, backend.PutOptions{}); err != nil {
		t.Fatalf("Put empty: %v", err)
	}
	tests := []struct {
		name           string
		key            string
		offset, length int64
		want           []byte
		wantErr        error
	}{
		{"whole", "v", 0, -1, data, nil},
		{"prefix", "v", 0, 10, data[:10], nil},
		{"first byte", "v", 0, 1, data[:1], nil},
		{"tail from offset", "v", 10, -1, data[10:], nil},
		{"middle", "v", 100, 200, data[100:300], nil},
		{"last byte", "v", 999, 1, data[999:], nil},
		{"last byte open", "v", 999, -1, data[999:], nil},
		{"length past end clamps", "v", 995, 100, data[995:], nil},
		{"length overflowing int64", "v", 10, math.MaxInt64, data[10:], nil},
		{"zero length", "v", 10, 0, []byte{}, nil},
		{"offset at end", "v", 1000, -1, []byte{}, nil},
		{"offset at end with length", "v", 1000, 5, []byte{}, nil},
		{"offset beyond end", "v", 1001, -1, nil, backend.ErrInvalid},
		{"offset beyond end zero length", "v", 2000, 0, nil, backend.ErrInvalid},
		{"negative offset", "v", -1, 5, nil, backend.ErrInvalid},
		{"empty object whole", "empty", 0, -1, []byte{}, nil},
		{"empty object with length", "empty", 0, 10, []byte{}, nil},
		{"empty object beyond", "empty", 1, -1, nil, backend.ErrInvalid},
		{"missing object", "nope", 5, 5, nil, backend.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, err := b.Get(ctx, "video", tt.key, tt.offset, tt.length)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					if rc != nil {
						rc.Close()
					}
					t.Fatalf("Get err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("got %d bytes, want %d", len(got), len(tt.want))
			}
		})
	}
	// Ranged reads must ask OSS for standard range behaviour; the fake
	// would otherwise answer an unsatisfiable range with the whole object.
	for _, c := range f.Calls() {
		if c.Op == "GetObject" && c.Range == "" && c.Status == 206 {
			t.Errorf("206 without a Range header: %+v", c)
		}
	}
}

func TestNotFound(t *testing.T) {
	f := mustFake(t)
	b := mustBackend(t, testConfig(t, f))
	mustEnsure(t, b, "image")
	ctx := context.Background()
	if _, err := b.Stat(ctx, "image", "missing"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Stat missing key: %v, want ErrNotFound", err)
	}
	if _, err := b.Get(ctx, "image", "missing", 0, -1); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Get missing key: %v, want ErrNotFound", err)
	}
	if _, err := b.Stat(ctx, "audio", "k"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Stat in missing bucket: %v, want ErrNotFound", err)
	}
	if _, err := b.Put(ctx, "audio", "k", strings.NewReader("x"), 1, backend.PutOptions{}); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Put in missing bucket: %v, want ErrNotFound", err)
	}
	if err := b.Delete(ctx, "image", "missing"); err != nil {
		t.Errorf("Delete missing key: %v", err)
	}
	if err := b.Delete(ctx, "audio", "missing"); err != nil {
		t.Errorf("Delete in missing bucket: %v", err)
	}
	if _, err := b.Put(ctx, "image", "k", strings.NewReader("x"), 1, backend.PutOptions{}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if err := b.Delete(ctx, "image", "k"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := b.Stat(ctx, "image", "k"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Stat after Delete: %v, want ErrNotFound", err)
	}
}

func TestInvalidArguments(t *testing.T) {
	f := mustFake(t)
	b := mustBackend(t, testConfig(t, f))
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
	}{
		{"bad bucket", func() error { return b.EnsureBucket(ctx, "Bad_Name") }},
		{"empty key", func() error {
			_, err := b.Put(ctx, "image", "", strings.NewReader(""), 0, backend.PutOptions{})
			return err
		}},
		{"bad md5", func() error {
			_, err := b.Put(ctx, "image", "k", strings.NewReader(""), 0, backend.PutOptions{MD5: "xyz"})
			return err
		}},
		{"negative size", func() error {
			_, err := b.Put(ctx, "image", "k", strings.NewReader(""), -1, backend.PutOptions{})
			return err
		}},
		{"leading slash", func() error { _, err := b.Stat(ctx, "image", "/k"); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, backend.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestWrongCredentials(t *testing.T) {
	f := mustFake(t)
	good := mustBackend(t, testConfig(t, f))
	mustEnsure(t, good, "image")
	if _, err := good.Put(context.Background(), "image", "k", strings.NewReader("x"), 1, backend.PutOptions{}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	tests := []struct {
		name     string
		id, key  string
		wantCode string
	}{
		{"wrong secret", testKeyID, "not-the-secret", "SignatureDoesNotMatch"},
		{"unknown key id", "LTAI5tNobody", testSecret, "InvalidAccessKeyId"},
		{"another account", otherKeyID, otherSecret, "AccessDenied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, f)
			cfg.AccessKeyID, cfg.AccessKeySecret = tt.id, tt.key
			b := mustBackend(t, cfg)
			ctx := context.Background()
			f.ResetCalls()
			if _, err := b.Stat(ctx, "image", "k"); !errors.Is(err, backend.ErrAuth) {
				t.Errorf("Stat: %v, want ErrAuth", err)
			}
			if _, err := b.Get(ctx, "image", "k", 0, -1); !errors.Is(err, backend.ErrAuth) {
				t.Errorf("Get: %v, want ErrAuth", err)
			}
			if _, err := b.Put(ctx, "image", "k2", strings.NewReader("y"), 1, backend.PutOptions{}); !errors.Is(err, backend.ErrAuth) {
				t.Errorf("Put: %v, want ErrAuth", err)
			}
			if err := b.EnsureBucket(ctx, "image"); !errors.Is(err, backend.ErrAuth) {
				t.Errorf("EnsureBucket: %v, want ErrAuth", err)
			}
			if tt.wantCode != "AccessDenied" {
				if err := b.Check(ctx); !errors.Is(err, backend.ErrAuth) {
					t.Errorf("Check: %v, want ErrAuth", err)
				}
			}
			for _, c := range f.Calls() {
				if c.Op == "PutBucket" {
					continue // answered 409 BucketAlreadyExists before the probe
				}
				if c.ErrorCode != tt.wantCode {
					t.Errorf("%s answered %d %q, want %q", c.Op, c.Status, c.ErrorCode, tt.wantCode)
				}
			}
		})
	}
	if _, ok := f.Object("osprey-image", "k2"); ok {
		t.Error("an unauthenticated Put stored an object")
	}
}

func TestOutage(t *testing.T) {
	faults := []struct {
		name  string
		fault ossfake.Fault
	}{
		{"503", ossfake.FaultUnavailable},
		{"500", ossfake.FaultInternalError},
		{"dropped connection", ossfake.FaultDropConnection},
	}
	for _, ft := range faults {
		t.Run(ft.name, func(t *testing.T) {
			f := mustFake(t)
			b := mustBackend(t, testConfig(t, f))
			mustEnsure(t, b, "image")
			ctx := context.Background()
			if _, err := b.Put(ctx, "image", "k", strings.NewReader("hello"), 5, backend.PutOptions{}); err != nil {
				t.Fatalf("Put: %v", err)
			}
			f.SetFault(func(ossfake.Call) ossfake.Fault { return ft.fault })
			checks := map[string]error{
				"Check":        b.Check(ctx),
				"EnsureBucket": b.EnsureBucket(ctx, "video"),
				"Delete":       b.Delete(ctx, "image", "k"),
			}
			_, checks["Put"] = b.Put(ctx, "image", "k2", strings.NewReader("x"), 1, backend.PutOptions{})
			_, checks["Stat"] = b.Stat(ctx, "image", "k")
			_, checks["Get"] = b.Get(ctx, "image", "k", 0, -1)
			for op, err := range checks {
				if !errors.Is(err, backend.ErrUnavailable) {
					t.Errorf("%s during outage: %v, want ErrUnavailable", op, err)
				}
			}
			f.SetFault(nil)
			if got := string(mustGet(t, b, "image", "k", 0, -1)); got != "hello" {
				t.Errorf("after outage Get = %q", got)
			}
		})
	}
}

func TestServerGone(t *testing.T) {
	f := mustFake(t)
	b := mustBackend(t, testConfig(t, f))
	f.Close()
	if err := b.Check(context.Background()); !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("Check with the server gone: %v, want ErrUnavailable", err)
	}
}

func TestTruncatedBody(t *testing.T) {
	f := mustFake(t)
	b := mustBackend(t, testConfig(t, f))
	mustEnsure(t, b, "video")
	data := randomBytes(64<<10, 3)
	ctx := context.Background()
	if _, err := b.Put(ctx, "video", "k", bytes.NewReader(data), int64(len(data)), backend.PutOptions{}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	f.SetFault(func(c ossfake.Call) ossfake.Fault {
		if c.Op == "GetObject" {
			return ossfake.FaultTruncateBody
		}
		return ossfake.FaultNone
	})
	for _, r := range []struct{ off, n int64 }{{0, -1}, {10, 5000}} {
		rc, err := b.Get(ctx, "video", "k", r.off, r.n)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		_, err = io.ReadAll(rc)
		rc.Close()
		if !errors.Is(err, backend.ErrUnavailable) {
			t.Errorf("reading a truncated body (%d, %d): %v, want ErrUnavailable", r.off, r.n, err)
		}
	}
}

func TestStalledBody(t *testing.T) {
	f := mustFake(t)
	cfg := testConfig(t, f)
	cfg.IOTimeout = 200 * time.Millisecond
	b := mustBackend(t, cfg)
	mustEnsure(t, b, "video")
	data := randomBytes(64<<10, 3)
	ctx := context.Background()
	if _, err := b.Put(ctx, "video", "k", bytes.NewReader(data), int64(len(data)), backend.PutOptions{}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	f.SetFault(func(c ossfake.Call) ossfake.Fault {
		if c.Op == "GetObject" {
			return ossfake.FaultStallBody
		}
		return ossfake.FaultNone
	})
	rc, err := b.Get(ctx, "video", "k", 0, -1)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	if !errors.Is(err, backend.ErrUnavailable) || n != int64(len(data)/2) {
		t.Fatalf("reading a stalled body: %d bytes, %v; want %d bytes and ErrUnavailable", n, err, len(data)/2)
	}
}

func TestChecksumMismatchStoresNothing(t *testing.T) {
	tests := []struct {
		name string
		size int
	}{
		{"single", 1000},
		{"multipart", 2*oss.MinPartSize + 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustFake(t)
			cfg := testConfig(t, f)
			cfg.PartSize = oss.MinPartSize
			b := mustBackend(t, cfg)
			mustEnsure(t, b, "archive")
			ctx := context.Background()
			old := []byte("the old object")
			if _, err := b.Put(ctx, "archive", "k", bytes.NewReader(old), int64(len(old)), backend.PutOptions{}); err != nil {
				t.Fatalf("Put: %v", err)
			}
			data := randomBytes(tt.size, 9)
			f.ResetCalls()
			_, err := b.Put(ctx, "archive", "k", bytes.NewReader(data), int64(len(data)), backend.PutOptions{MD5: md5hex([]byte("something else"))})
			if !errors.Is(err, backend.ErrChecksum) {
				t.Fatalf("Put with wrong md5: %v, want ErrChecksum", err)
			}
			_, err = b.Put(ctx, "archive", "new", bytes.NewReader(data), int64(len(data)), backend.PutOptions{MD5: md5hex([]byte("something else"))})
			if !errors.Is(err, backend.ErrChecksum) {
				t.Fatalf("Put with wrong md5: %v, want ErrChecksum", err)
			}
			if got := string(mustGet(t, b, "archive", "k", 0, -1)); got != string(old) {
				t.Errorf("old object replaced by a failed Put: %q", got)
			}
			if _, err := b.Stat(ctx, "archive", "new"); !errors.Is(err, backend.ErrNotFound) {
				t.Errorf("Stat of a failed new object: %v, want ErrNotFound", err)
			}
			if n := f.Uploads("osprey-archive"); n != 0 {
				t.Errorf("%d multipart uploads left behind", n)
			}
			for _, c := range f.Calls() {
				if c.Op == "PutObject" || c.Op == "CompleteMultipartUpload" || c.Op == "CopyObject" {
					t.Errorf("a mismatched Put sent %s", c.Op)
				}
			}
		})
	}
}

// TestShortBodyStoresNothing gives Put one byte less than it announces.
func TestShortBodyStoresNothing(t *testing.T) {
	for _, size := range []int{1000, 3 * oss.MinPartSize} {
		f := mustFake(t)
		cfg := testConfig(t, f)
		cfg.PartSize = oss.MinPartSize
		b := mustBackend(t, cfg)
		mustEnsure(t, b, "archive")
		data := randomBytes(size-1, 1)
		_, err := b.Put(context.Background(), "archive", "k", bytes.NewReader(data), int64(size), backend.PutOptions{})
		if !errors.Is(err, backend.ErrChecksum) {
			t.Fatalf("size %d: short Put: %v, want ErrChecksum", size, err)
		}
		if _, ok := f.Object("osprey-archive", "k"); ok {
			t.Errorf("size %d: a short Put stored an object", size)
		}
		if n := f.Uploads("osprey-archive"); n != 0 {
			t.Errorf("size %d: %d multipart uploads left behind", size, n)
		}
	}
}

func TestMultipartSequence(t *testing.T) {
	tests := []struct {
		name    string
		giveMD5 bool
		want    []string
	}{
		{"md5 given", true, []string{"InitiateMultipartUpload", "UploadPart", "UploadPart", "UploadPart", "CompleteMultipartUpload"}},
		{"md5 computed", false, []string{"InitiateMultipartUpload", "UploadPart", "UploadPart", "UploadPart", "CompleteMultipartUpload", "CopyObject"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustFake(t)
			cfg := testConfig(t, f)
			cfg.PartSize = oss.MinPartSize
			b := mustBackend(t, cfg)
			mustEnsure(t, b, "video")
			data := randomBytes(2*oss.MinPartSize+1, 5)
			opts := backend.PutOptions{}
			if tt.giveMD5 {
				opts.MD5 = md5hex(data)
			}
			f.ResetCalls()
			if _, err := b.Put(context.Background(), "video", "movie.mp4", bytes.NewReader(data), int64(len(data)), opts); err != nil {
				t.Fatalf("Put: %v", err)
			}
			calls := f.Calls()
			if got := ops(f); strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("calls = %v, want %v", got, tt.want)
			}
			uploadID := calls[0].UploadID
			for i, c := range calls[1:4] {
				if c.PartNumber != i+1 || c.UploadID != uploadID || c.Status != 200 || c.Key != "movie.mp4" || c.Bucket != "osprey-video" {
					t.Errorf("part call %d = %+v", i+1, c)
				}
			}
			if c := calls[4]; c.UploadID != uploadID || c.Status != 200 {
				t.Errorf("complete = %+v", c)
			}
			obj, _ := f.Object("osprey-video", "movie.mp4")
			if !strings.HasSuffix(obj.ETag, `-3"`) || obj.Meta["md5"] != md5hex(data) || obj.ContentType != "video/mp4" {
				t.Errorf("stored etag %s meta %v content type %q", obj.ETag, obj.Meta, obj.ContentType)
			}
		})
	}
}

func TestFailedPartAborts(t *testing.T) {
	f := mustFake(t)
	cfg := testConfig(t, f)
	cfg.PartSize = oss.MinPartSize
	b := mustBackend(t, cfg)
	mustEnsure(t, b, "video")
	f.SetFault(func(c ossfake.Call) ossfake.Fault {
		if c.Op == "UploadPart" && c.PartNumber == 2 {
			return ossfake.FaultUnavailable
		}
		return ossfake.FaultNone
	})
	f.ResetCalls()
	data := randomBytes(3*oss.MinPartSize, 2)
	_, err := b.Put(context.Background(), "video", "k", bytes.NewReader(data), int64(len(data)), backend.PutOptions{})
	if !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("Put: %v, want ErrUnavailable", err)
	}
	want := "InitiateMultipartUpload,UploadPart,UploadPart,AbortMultipartUpload"
	if got := strings.Join(ops(f), ","); got != want {
		t.Errorf("calls = %s, want %s", got, want)
	}
	if n := f.Uploads("osprey-video"); n != 0 {
		t.Errorf("%d uploads left", n)
	}
}

func TestCancelledContextAborts(t *testing.T) {
	f := mustFake(t)
	cfg := testConfig(t, f)
	cfg.PartSize = oss.MinPartSize
	b := mustBackend(t, cfg)
	mustEnsure(t, b, "video")
	ctx, cancel := context.WithCancel(context.Background())
	// Cancel once the first part is uploaded.
	f.SetFault(func(c ossfake.Call) ossfake.Fault {
		if c.Op == "UploadPart" && c.PartNumber == 2 {
			cancel()
		}
		return ossfake.FaultNone
	})
	data := randomBytes(4*oss.MinPartSize, 2)
	_, err := b.Put(ctx, "video", "k", bytes.NewReader(data), int64(len(data)), backend.PutOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Put: %v, want context.Canceled", err)
	}
	if n := f.Uploads("osprey-video"); n != 0 {
		t.Errorf("%d uploads left after a cancelled Put", n)
	}
	if _, ok := f.Object("osprey-video", "k"); ok {
		t.Error("a cancelled Put stored an object")
	}
}

func TestEnsureBucket(t *testing.T) {
	f := mustFake(t)
	b := mustBackend(t, testConfig(t, f))
	ctx := context.Background()
	for range 2 { // idempotent
		if err := b.EnsureBucket(ctx, "image"); err != nil {
			t.Fatalf("EnsureBucket: %v", err)
		}
	}
	if !f.HasBucket("osprey-image") {
		t.Fatal("bucket not created with the prefix")
	}
	// A bucket name taken by another account is not ours to use.
	cfg := testConfig(t, f)
	cfg.AccessKeyID, cfg.AccessKeySecret = otherKeyID, otherSecret
	other := mustBackend(t, cfg)
	if err := other.EnsureBucket(ctx, "image"); !errors.Is(err, backend.ErrAuth) {
		t.Fatalf("EnsureBucket on another account's bucket: %v, want ErrAuth", err)
	}
	if err := b.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

func TestVirtualHostedAddressing(t *testing.T) {
	f := mustFake(t)
	cfg := testConfig(t, f)
	cfg.Endpoint = "http://oss-cn-hangzhou.aliyuncs.com"
	cfg.DialContext = f.DialContext
	b := mustBackend(t, cfg)
	mustEnsure(t, b, "audio")
	data := []byte("virtual hosted")
	if _, err := b.Put(context.Background(), "audio", "x/y.mp3", bytes.NewReader(data), int64(len(data)), backend.PutOptions{}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if got := mustGet(t, b, "audio", "x/y.mp3", 8, -1); string(got) != "hosted" {
		t.Fatalf("Get = %q", got)
	}
	if _, ok := f.Object("osprey-audio", "x/y.mp3"); !ok {
		t.Fatal("object not stored under the virtual-hosted bucket")
	}
	if err := b.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

func TestConcurrentPuts(t *testing.T) {
	f := mustFake(t)
	cfg := testConfig(t, f)
	cfg.PartSize = oss.MinPartSize
	b := mustBackend(t, cfg)
	mustEnsure(t, b, "image")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := randomBytes(oss.MinPartSize+i*1000, uint64(i))
			key := "k" + string(rune('a'+i))
			if _, err := b.Put(context.Background(), "image", key, bytes.NewReader(data), int64(len(data)), backend.PutOptions{MD5: md5hex(data)}); err != nil {
				errs <- err
				return
			}
			st, err := b.Stat(context.Background(), "image", key)
			if err != nil || st.MD5 != md5hex(data) {
				errs <- errors.Join(err, errors.New("stat mismatch "+key))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestClose(t *testing.T) {
	f := mustFake(t)
	b := mustBackend(t, testConfig(t, f))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := b.Stat(context.Background(), "image", "k"); !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("Stat after Close: %v, want ErrUnavailable", err)
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

// TestMultipartOddKeys covers keys that need escaping in the copy source
// when Put records the md5 of a multipart upload after the fact.
func TestMultipartOddKeys(t *testing.T) {
	f := mustFake(t)
	cfg := testConfig(t, f)
	cfg.PartSize = oss.MinPartSize
	b := mustBackend(t, cfg)
	mustEnsure(t, b, "doc")
	data := randomBytes(oss.MinPartSize+1, 6)
	for _, key := range []string{"q?x=1#frag", "a b+c/%41&z", "dir/子目录/文件.pdf"} {
		if _, err := b.Put(context.Background(), "doc", key, bytes.NewReader(data), int64(len(data)), backend.PutOptions{}); err != nil {
			t.Fatalf("Put(%q): %v", key, err)
		}
		if got := mustGet(t, b, "doc", key, 0, -1); !bytes.Equal(got, data) {
			t.Fatalf("Get(%q): content differs", key)
		}
		st, err := b.Stat(context.Background(), "doc", key)
		if err != nil || st.MD5 != md5hex(data) {
			t.Fatalf("Stat(%q) = %+v, %v; want md5 %s", key, st, err, md5hex(data))
		}
	}
}
