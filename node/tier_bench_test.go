package node_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/osprey-storage/osprey/backend/s3/s3test"
	"github.com/osprey-storage/osprey/node"
)

// BenchmarkTier measures background tiering throughput (merge → verified
// in the backend) for one 256 MiB file, next to the physical limit measured
// in the same run: a raw write+fsync of the same bytes to the same disk
// (local backend) and a direct minio-go PutObject (MinIO backend).
//
//	go test -run ^$ -bench Tier -benchtime 3x ./node/
func BenchmarkTier(b *testing.B) {
	const size = 256 << 20
	data := content(99, size)
	b.Run("local", func(b *testing.B) {
		dir := b.TempDir()
		raw := rawWrite(b, dir, data)
		c := newClusterWith(b, 1, nil)
		got := tierRate(b, c.nodes[0], data)
		b.ReportMetric(got, "tier_MB/s")
		b.ReportMetric(raw, "raw_write_MB/s")
		b.ReportMetric(got/raw, "ratio")
	})
	b.Run("minio", func(b *testing.B) {
		srv := s3test.StartServer(b)
		direct := minioPut(b, srv, data)
		c := newClusterWith(b, 1, func(_ int, cfg *node.Config) {
			cfg.Backend.Type = "s3"
			cfg.Backend.S3.Endpoint, cfg.Backend.S3.AccessKey, cfg.Backend.S3.SecretKey = srv.Endpoint(), srv.AccessKey(), srv.SecretKey()
		})
		got := tierRate(b, c.nodes[0], data)
		b.ReportMetric(got, "tier_MB/s")
		b.ReportMetric(direct, "minio_put_MB/s")
		b.ReportMetric(got/direct, "ratio")
	})
}

// tierRate uploads data b.N times (distinct names, same bytes would
// deduplicate, so each run changes the first byte) and returns MB/s from
// merge to tiered.
func tierRate(b *testing.B, n *node.Node, data []byte) float64 {
	var total time.Duration
	for i := 0; i < b.N; i++ {
		d := bytes.Clone(data)
		d[0] = byte(i + 1)
		t0 := time.Now()
		uid := uploadChunkedSimple(b, n, d)
		t1 := time.Now()
		waitFor(b, 5*time.Minute, "tiered", func() bool {
			info, err := n.Storage().Stat(context.Background(), mustUID(b, uid))
			return err == nil && info.State == "tiered"
		})
		total += time.Since(t1)
		b.Logf("upload %s, tier %s", t1.Sub(t0), time.Since(t1))
	}
	return float64(len(data)) * float64(b.N) / total.Seconds() / 1e6
}

func uploadChunkedSimple(b *testing.B, n *node.Node, data []byte) string {
	a := apiOf(b, n)
	link := a.link("bench.bin")[0]
	const chunk = 8 << 20
	num := 0
	for off := 0; off < len(data); off += chunk {
		num++
		part := data[off:min(off+chunk, len(data))]
		if code, env, _ := a.do("PUT", fmt.Sprintf("%s&md5=%s&chunkNum=%d", link.URL.Multi.Upload, md5hex(part), num), bytes.NewReader(part), nil); code != 200 {
			b.Fatalf("chunk: %d %s", code, env.Message)
		}
	}
	if code, env, _ := a.do("PUT", fmt.Sprintf("%s&md5=%s&num=%d&size=%d", link.URL.Multi.Merge, md5hex(data), num, len(data)), nil, nil); code != 200 {
		b.Fatalf("merge: %d %s", code, env.Message)
	}
	return link.UID
}

func rawWrite(b *testing.B, dir string, data []byte) float64 {
	t0 := time.Now()
	f, err := os.Create(filepath.Join(dir, "raw"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	return float64(len(data)) / time.Since(t0).Seconds() / 1e6
}

func minioPut(b *testing.B, srv *s3test.Server, data []byte) float64 {
	cl, err := minio.New(srv.Endpoint(), &minio.Options{Creds: credentials.NewStaticV4(srv.AccessKey(), srv.SecretKey(), "")})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := cl.MakeBucket(ctx, "baseline", minio.MakeBucketOptions{}); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	if _, err := cl.PutObject(ctx, "baseline", "raw", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{PartSize: 16 << 20}); err != nil {
		b.Fatal(err)
	}
	return float64(len(data)) / time.Since(t0).Seconds() / 1e6
}
