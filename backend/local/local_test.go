package local

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osprey-storage/osprey/backend"
	"github.com/osprey-storage/osprey/backend/backendtest"
)

// testLogger routes logs to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// mustBucket creates bucket on b.
func mustBucket(t testing.TB, b *Backend, bucket string) {
	t.Helper()
	if err := b.EnsureBucket(context.Background(), bucket); err != nil {
		t.Fatal(err)
	}
}

func mustNew(t testing.TB, dir string) *Backend {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Dir = dir
	cfg.Logger = testLogger(t)
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		b := mustNew(t, t.TempDir())
		t.Cleanup(func() { mustNoTempFiles(t, b.dir) })
		return b
	})
}

// mustNoTempFiles fails if a temporary file was left behind.
func mustNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), tmpPrefix) {
			t.Errorf("temporary file left behind: %s", path)
		}
		return nil
	})
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr bool
	}{
		{"defaults with dir", func(c *Config) {}, false},
		{"no dir", func(c *Config) { c.Dir = "" }, true},
		{"tiny buffer", func(c *Config) { c.BufferSize = 10 }, true},
		{"huge buffer", func(c *Config) { c.BufferSize = 1 << 30 }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Dir = t.TempDir()
			tt.mutate(&cfg)
			err := cfg.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, wantErr %v", err, tt.wantErr)
			}
			if _, nerr := New(cfg); (nerr != nil) != tt.wantErr {
				t.Fatalf("New() = %v, wantErr %v", nerr, tt.wantErr)
			}
		})
	}
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func mustPut(t *testing.T, b *Backend, key string, data []byte) {
	t.Helper()
	if _, err := b.Put(context.Background(), "image", key, bytes.NewReader(data), int64(len(data)), backend.PutOptions{}); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func TestLayoutIsPlainFiles(t *testing.T) {
	dir := t.TempDir()
	b := mustNew(t, dir)
	mustBucket(t, b, "image")
	mustPut(t, b, "2024/01/photo.jpg", []byte("jpeg bytes"))
	got, err := os.ReadFile(filepath.Join(dir, "image", "2024", "01", "photo.jpg"))
	if err != nil || string(got) != "jpeg bytes" {
		t.Fatalf("file on disk = %q, %v", got, err)
	}
}

func TestKeyConflicts(t *testing.T) {
	b := mustNew(t, t.TempDir())
	ctx := context.Background()
	mustBucket(t, b, "image")
	mustPut(t, b, "a/b", []byte("leaf"))
	mustPut(t, b, "c/d/e", []byte("deep"))
	for _, key := range []string{"a/b/c", "c/d", "c", ".osprey-tmp-1", "x/.osprey-anything", strings.Repeat("n", 251)} {
		if _, err := b.Put(ctx, "image", key, strings.NewReader("x"), 1, backend.PutOptions{}); !errors.Is(err, backend.ErrInvalid) {
			t.Errorf("Put(%q) = %v, want ErrInvalid", key, err)
		}
	}
	// The refused puts changed nothing, not even sidecars.
	for _, stray := range []string{"c.json", "c/d.json"} {
		if _, err := os.Stat(filepath.Join(b.metaDir, "image", stray)); err == nil {
			t.Errorf("refused put left sidecar %s", stray)
		}
	}
	for key, want := range map[string]string{"a/b": "leaf", "c/d/e": "deep"} {
		rc, err := b.Get(ctx, "image", key, 0, -1)
		if err != nil {
			t.Fatalf("Get(%q): %v", key, err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if string(got) != want {
			t.Fatalf("Get(%q) = %q, want %q", key, got, want)
		}
	}
}

// withSidecars makes every Put in the test write an md5 sidecar, as a
// large object's does.
func withSidecars(t *testing.T) {
	old := sidecarMinSize
	sidecarMinSize = 0
	t.Cleanup(func() { sidecarMinSize = old })
}

func TestStatRecomputesStaleMD5(t *testing.T) {
	withSidecars(t)
	dir := t.TempDir()
	b := mustNew(t, dir)
	ctx := context.Background()
	mustBucket(t, b, "image")
	data := []byte("some content")
	metaPath := filepath.Join(dir, metaDirName, "image", "k.json")
	tests := []struct {
		name   string
		break_ func(t *testing.T)
	}{
		{"sidecar missing", func(t *testing.T) { os.Remove(metaPath) }},
		{"sidecar garbage", func(t *testing.T) { os.WriteFile(metaPath, []byte("{not json"), 0o600) }},
		{"sidecar of other content", func(t *testing.T) {
			// As after a crash between the sidecar and content renames.
			os.WriteFile(metaPath, []byte(`{"v":1,"md5":"00000000000000000000000000000000","size":12,"ino":1,"mtime_ns":1}`), 0o600)
		}},
		{"content replaced behind our back", func(t *testing.T) {
			os.WriteFile(filepath.Join(dir, "image", "k.tmp"), []byte("other bytes!"), 0o600)
			os.Rename(filepath.Join(dir, "image", "k.tmp"), filepath.Join(dir, "image", "k"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustPut(t, b, "k", data)
			tt.break_(t)
			content, _ := os.ReadFile(filepath.Join(dir, "image", "k"))
			info, err := b.Stat(ctx, "image", "k")
			if err != nil {
				t.Fatalf("Stat: %v", err)
			}
			if info.MD5 != md5hex(content) {
				t.Fatalf("Stat md5 = %s, want %s", info.MD5, md5hex(content))
			}
		})
	}
}

func TestDeletePrunesEmptyDirs(t *testing.T) {
	withSidecars(t)
	dir := t.TempDir()
	b := mustNew(t, dir)
	ctx := context.Background()
	mustBucket(t, b, "image")
	mustPut(t, b, "p/q/r/s", []byte("x"))
	if err := b.Delete(ctx, "image", "p/q/r/s"); err != nil {
		t.Fatal(err)
	}
	for _, root := range []string{filepath.Join(dir, "image"), filepath.Join(dir, metaDirName, "image")} {
		entries, err := os.ReadDir(root)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 0 {
			t.Errorf("%s not empty after delete: %v", root, entries)
		}
	}
	// An orphaned sidecar (no content) is cleared by Delete too.
	mustPut(t, b, "orphan", []byte("x"))
	os.Remove(filepath.Join(dir, "image", "orphan"))
	if err := b.Delete(ctx, "image", "orphan"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, metaDirName, "image", "orphan.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("orphaned sidecar still there: %v", err)
	}
}

// TestSmallObjectsHaveNoSidecar: a Put below sidecarMinSize writes no
// sidecar and removes one an earlier, larger object at the key left; Stat
// hashes the object instead and reports the right md5 either way.
func TestSmallObjectsHaveNoSidecar(t *testing.T) {
	dir := t.TempDir()
	b := mustNew(t, dir)
	ctx := context.Background()
	mustBucket(t, b, "image")
	metaPath := filepath.Join(dir, metaDirName, "image", "k.json")
	big := bytes.Repeat([]byte("large "), int(sidecarMinSize/6)+1)
	mustPut(t, b, "k", big)
	if _, err := os.Stat(metaPath); err != nil {
		t.Fatalf("a %d-byte object has no sidecar: %v", len(big), err)
	}
	small := []byte("small content")
	mustPut(t, b, "k", small)
	if _, err := os.Stat(metaPath); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the large object's sidecar is still there after a small Put: %v", err)
	}
	mustPut(t, b, "s", small)
	if _, err := os.Stat(filepath.Join(dir, metaDirName, "image", "s.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a small object got a sidecar: %v", err)
	}
	for _, key := range []string{"k", "s"} {
		info, err := b.Stat(ctx, "image", key)
		if err != nil || info.MD5 != md5hex(small) || info.Size != int64(len(small)) {
			t.Fatalf("Stat %s = %+v, %v; want md5 %s size %d", key, info, err, md5hex(small), len(small))
		}
	}
}

func TestEmptyLeftoverDirIsReplaced(t *testing.T) {
	dir := t.TempDir()
	b := mustNew(t, dir)
	ctx := context.Background()
	mustBucket(t, b, "image")
	// An empty directory where an object should go (left by a crash).
	if err := os.MkdirAll(filepath.Join(dir, "image", "k"), 0o755); err != nil {
		t.Fatal(err)
	}
	mustPut(t, b, "k", []byte("v"))
	info, err := b.Stat(ctx, "image", "k")
	if err != nil || info.Size != 1 {
		t.Fatalf("Stat = %+v, %v", info, err)
	}
}

func TestCheckFailsOnReadOnlyDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory permissions")
	}
	dir := t.TempDir()
	b := mustNew(t, dir)
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	if err := b.Check(context.Background()); err == nil {
		t.Fatal("Check on a read-only directory succeeded")
	}
}

// TestRangeWriteTo: the reader's WriteTo (the sendfile path of downloads)
// sends exactly the rest of the range after some bytes were Read.
func TestRangeWriteTo(t *testing.T) {
	b := mustNew(t, t.TempDir())
	ctx := context.Background()
	mustBucket(t, b, "image")
	data := make([]byte, 5000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	mustPut(t, b, "k", data)
	rc, err := b.Get(ctx, "image", "k", 10, 1000)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	head := make([]byte, 100)
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatal(err)
	}
	wt, ok := rc.(io.WriterTo)
	if !ok {
		t.Fatal("reader has no WriteTo")
	}
	var rest bytes.Buffer
	n, err := wt.WriteTo(&rest)
	if err != nil || n != 900 {
		t.Fatalf("WriteTo = %d, %v", n, err)
	}
	if !bytes.Equal(head, data[10:110]) || !bytes.Equal(rest.Bytes(), data[110:1010]) {
		t.Fatal("bytes differ")
	}
	if k, err := rc.Read(head); k != 0 || err != io.EOF {
		t.Fatalf("Read after WriteTo = %d, %v; want EOF", k, err)
	}
}

// TestDeleteVersionKeepsLaterPut: a rebalance release reads the version
// of an object copy and deletes that version only, so a release that
// arrives late, after a later move wrote the same bytes to the same key
// again, keeps the later write. Concurrent Puts and versioned deletes of
// one key never remove a write the delete did not name.
func TestDeleteVersionKeepsLaterPut(t *testing.T) {
	withSidecars(t)
	dir := t.TempDir()
	b := mustNew(t, dir)
	ctx := context.Background()
	mustBucket(t, b, "image")
	if _, err := b.Version(ctx, "image", "k"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Version of a missing object: %v", err)
	}
	if removed, err := b.DeleteVersion(ctx, "image", "k", "1-1"); err != nil || removed {
		t.Fatalf("DeleteVersion of a missing object = %v, %v", removed, err)
	}
	data := []byte("the same bytes both times")
	mustPut(t, b, "k", data)
	old, err := b.Version(ctx, "image", "k")
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, b, "k", data)
	later, err := b.Version(ctx, "image", "k")
	if err != nil || later == old {
		t.Fatalf("Version after a second Put = %q, %v; first was %q", later, err, old)
	}
	if removed, err := b.DeleteVersion(ctx, "image", "k", old); err != nil || removed {
		t.Fatalf("late DeleteVersion = %v, %v; want kept", removed, err)
	}
	if info, err := b.Stat(ctx, "image", "k"); err != nil || info.Size != int64(len(data)) {
		t.Fatalf("later write after a late release: %+v, %v", info, err)
	}
	if removed, err := b.DeleteVersion(ctx, "image", "k", later); err != nil || !removed {
		t.Fatalf("DeleteVersion of the current write = %v, %v", removed, err)
	}
	if _, err := b.Stat(ctx, "image", "k"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("object still there after DeleteVersion: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, metaDirName, "image", "k.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("sidecar left after DeleteVersion: %v", err)
	}

	// Race versioned deletes of the first write against Puts: whatever
	// the interleaving, the last Put's write survives.
	for round := 0; round < 20; round++ {
		mustPut(t, b, "r", data)
		v, err := b.Version(ctx, "image", "r")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := b.DeleteVersion(ctx, "image", "r", v)
			done <- err
		}()
		mustPut(t, b, "r", data)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if _, err := b.Stat(ctx, "image", "r"); err != nil {
			t.Fatalf("round %d: the Put after the delete's version was lost: %v", round, err)
		}
	}
}
