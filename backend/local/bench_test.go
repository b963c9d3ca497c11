package local

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/osprey-storage/osprey/backend"
)

// benchSize is the object size of BenchmarkPut.
const benchSize = 64 << 20

func benchData() ([]byte, string) {
	data := make([]byte, benchSize)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(data)
	sum := md5.Sum(data)
	return data, hex.EncodeToString(sum[:])
}

// readerOnly hides io.WriterTo/io.ReaderAt so neither side can shortcut
// the copy, as with a network body.
type readerOnly struct{ r io.Reader }

func (r readerOnly) Read(p []byte) (int, error) { return r.r.Read(p) }

// BenchmarkPut measures Put of a 64 MiB object (md5 verified) against the
// physical limit measured in the same run: writing the same bytes to a file
// in the same directory tree with one write and an fsync. Compare the MB/s
// of the two sub-benchmarks.
func BenchmarkPut(b *testing.B) {
	data, sum := benchData()
	b.Run("osprey", func(b *testing.B) {
		be := mustNew(b, b.TempDir())
		ctx := context.Background()
		if err := be.EnsureBucket(ctx, "video"); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(benchSize)
		for b.Loop() {
			if _, err := be.Put(ctx, "video", "bench/object.mp4", readerOnly{bytes.NewReader(data)}, benchSize, backend.PutOptions{MD5: sum}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline-write-fsync", func(b *testing.B) {
		dir := filepath.Join(b.TempDir(), "video", "bench")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(benchSize)
		for b.Loop() {
			f, err := os.Create(filepath.Join(dir, "object.mp4"))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := f.Write(data); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			if err := f.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPutSmall measures durable Puts of 4 KiB objects under distinct
// keys against the same in a raw durable file write: temp file, write,
// fsync, rename, fsync of the directory.
func BenchmarkPutSmall(b *testing.B) {
	data := make([]byte, 4<<10)
	_, _ = rand.NewChaCha8([32]byte{3}).Read(data)
	s := md5.Sum(data)
	sum := hex.EncodeToString(s[:])
	b.Run("osprey", func(b *testing.B) {
		be := mustNew(b, b.TempDir())
		ctx := context.Background()
		if err := be.EnsureBucket(ctx, "image"); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(data)))
		i := 0
		for b.Loop() {
			i++
			key := fmt.Sprintf("small/%d.jpg", i)
			if _, err := be.Put(ctx, "image", key, readerOnly{bytes.NewReader(data)}, int64(len(data)), backend.PutOptions{MD5: sum}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline-write-fsync-rename", func(b *testing.B) {
		dir := filepath.Join(b.TempDir(), "image", "small")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(data)))
		i := 0
		for b.Loop() {
			i++
			f, err := os.CreateTemp(dir, ".tmp-*")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := f.Write(data); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			if err := f.Close(); err != nil {
				b.Fatal(err)
			}
			if err := os.Rename(f.Name(), filepath.Join(dir, fmt.Sprintf("%d.jpg", i))); err != nil {
				b.Fatal(err)
			}
			if err := syncDir(dir); err != nil {
				b.Fatal(err)
			}
		}
	})
}
