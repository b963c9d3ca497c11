package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/osprey-storage/osprey/backend"
	"github.com/osprey-storage/osprey/backend/s3/s3test"
)

// benchSize is the object size of BenchmarkPut.
const benchSize = 64 << 20

// readerOnly hides io.ReaderAt/io.Seeker, as with a network body.
type readerOnly struct{ r io.Reader }

func (r readerOnly) Read(p []byte) (int, error) { return r.r.Read(p) }

// BenchmarkPut measures Put of a 64 MiB object (default 16 MiB parts, md5
// verified) into a local MinIO, with two baselines in the same run against
// the same server:
//
//   - minio-go-stream: minio-go PutObject of the same bytes from a plain
//     io.Reader with the same part size and one thread: the SDK's cost on the
//     path Put uses, so the ratio is the price of osprey's verification;
//   - minio-go-default: PutObject from a bytes.Reader with default options,
//     which lets the SDK upload parts in parallel from memory (not possible
//     for a streamed body): the best the SDK can do on this machine.
func BenchmarkPut(b *testing.B) {
	srv := s3test.StartServer(b)
	cfg := DefaultConfig()
	cfg.Endpoint, cfg.AccessKey, cfg.SecretKey = srv.Endpoint(), srv.AccessKey(), srv.SecretKey()
	cfg.BucketPrefix = "bench-"
	cfg.Logger = testLogger(b, nil)
	be := mustNew(b, cfg)
	ctx := context.Background()
	if err := be.EnsureBucket(ctx, "video"); err != nil {
		b.Fatal(err)
	}
	phys := cfg.BucketPrefix + "video"
	data := make([]byte, benchSize)
	_, _ = rand.NewChaCha8([32]byte{2}).Read(data)
	s := md5.Sum(data)
	sum := hex.EncodeToString(s[:])

	b.Run("osprey", func(b *testing.B) {
		b.SetBytes(benchSize)
		for b.Loop() {
			if _, err := be.Put(ctx, "video", "bench/osprey", readerOnly{bytes.NewReader(data)}, benchSize, backend.PutOptions{MD5: sum}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("minio-go-stream", func(b *testing.B) {
		b.SetBytes(benchSize)
		for b.Loop() {
			opts := minio.PutObjectOptions{PartSize: uint64(cfg.PartSize), NumThreads: 1}
			if _, err := be.client.PutObject(ctx, phys, "bench/stream", readerOnly{bytes.NewReader(data)}, benchSize, opts); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("minio-go-default", func(b *testing.B) {
		b.SetBytes(benchSize)
		for b.Loop() {
			if _, err := be.client.PutObject(ctx, phys, "bench/default", bytes.NewReader(data), benchSize, minio.PutObjectOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPutSmall measures Puts of 4 KiB objects under distinct keys
// against minio-go's PutObject of the same bytes.
func BenchmarkPutSmall(b *testing.B) {
	srv := s3test.StartServer(b)
	cfg := DefaultConfig()
	cfg.Endpoint, cfg.AccessKey, cfg.SecretKey = srv.Endpoint(), srv.AccessKey(), srv.SecretKey()
	cfg.BucketPrefix = "bench-"
	cfg.Logger = testLogger(b, nil)
	be := mustNew(b, cfg)
	ctx := context.Background()
	if err := be.EnsureBucket(ctx, "image"); err != nil {
		b.Fatal(err)
	}
	phys := cfg.BucketPrefix + "image"
	data := make([]byte, 4<<10)
	_, _ = rand.NewChaCha8([32]byte{4}).Read(data)
	s := md5.Sum(data)
	sum := hex.EncodeToString(s[:])
	b.Run("osprey", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		i := 0
		for b.Loop() {
			i++
			if _, err := be.Put(ctx, "image", fmt.Sprintf("osprey/%d.jpg", i), readerOnly{bytes.NewReader(data)}, int64(len(data)), backend.PutOptions{MD5: sum}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("minio-go", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		i := 0
		for b.Loop() {
			i++
			if _, err := be.client.PutObject(ctx, phys, fmt.Sprintf("direct/%d.jpg", i), bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
