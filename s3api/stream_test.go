package s3api_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/osprey-storage/osprey/s3api"
	"github.com/osprey-storage/osprey/s3api/s3mem"
)

// zeroReader yields n zero bytes.
type zeroReader struct{ n int64 }

func (z *zeroReader) Read(p []byte) (int, error) {
	if z.n == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > z.n {
		p = p[:z.n]
	}
	clear(p)
	z.n -= int64(len(p))
	return len(p), nil
}

// sinkBackend discards PUT bodies and serves GETs of generated zeros, so
// that only the handler's own buffering shows up in allocations.
type sinkBackend struct {
	*s3mem.Backend
	size int64
}

func (b *sinkBackend) PutObject(ctx context.Context, bucket, key string, body io.Reader, size int64, meta s3api.ObjectMeta) (s3api.ObjectInfo, error) {
	h := md5.New()
	n, err := io.Copy(h, body)
	if err != nil {
		return s3api.ObjectInfo{}, err
	}
	if n != size {
		return s3api.ObjectInfo{}, fmt.Errorf("got %d bytes, want %d", n, size)
	}
	return s3api.ObjectInfo{Bucket: bucket, Key: key, Size: n, ETag: hex.EncodeToString(h.Sum(nil)), ModTime: time.Now()}, nil
}

func (b *sinkBackend) HeadObject(ctx context.Context, bucket, key string) (s3api.ObjectInfo, error) {
	return s3api.ObjectInfo{Bucket: bucket, Key: key, Size: b.size, ETag: "00", ModTime: time.Now()}, nil
}

func (b *sinkBackend) GetObject(ctx context.Context, bucket, key string, off, n int64) (s3api.ObjectInfo, io.ReadCloser, error) {
	if n < 0 {
		n = b.size - off
	}
	info, _ := b.HeadObject(ctx, bucket, key)
	return info, io.NopCloser(&zeroReader{n: n}), nil
}

// TestBoundedMemory streams a 64 MiB object in (aws-chunked) and out and
// checks that the allocations stay far below the object size.
func TestBoundedMemory(t *testing.T) {
	const size = 64 << 20
	b := &sinkBackend{Backend: s3mem.New(), size: size}
	if err := b.CreateBucket(context.Background(), "big"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s3api.NewHandler(b, s3api.Config{
		Credentials: s3api.StaticCredentials(map[string]string{testAccessKey: testSecret}),
		Logger:      slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}))
	t.Cleanup(srv.Close)
	c, err := minio.New(srv.Listener.Addr().String(), &minio.Options{Creds: credentials.NewStaticV4(testAccessKey, testSecret, ""), Region: testRegion})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	// Streaming signature, single PUT (multipart disabled): the body goes
	// through the chunk decoder.
	if _, err := c.PutObject(ctx, "big", "obj", &zeroReader{n: size}, size, minio.PutObjectOptions{DisableMultipart: true}); err != nil {
		t.Fatal(err)
	}
	o, err := c.GetObject(ctx, "big", "obj", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, o)
	o.Close()
	if err != nil || n != size {
		t.Fatalf("get: %d bytes, %v", n, err)
	}
	runtime.ReadMemStats(&after)
	// Client and server share the process; both stream. Allow a generous
	// margin, far below the 128 MiB that buffering either body would cost.
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %.1f MiB", float64(alloc)/(1<<20))
	if alloc > 24<<20 {
		t.Fatalf("allocated %d MiB to move 2x%d MiB", alloc>>20, size>>20)
	}
}

// TestConcurrentClients runs several clients at once (under -race).
func TestConcurrentClients(t *testing.T) {
	ts := mustServer(t)
	c := ts.root(t)
	mustBucket(t, c, "conc")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for i := 0; i < 10; i++ {
				key := fmt.Sprintf("w%d/%d", w, i%3)
				data := bytes.Repeat([]byte{byte(w)}, 1000+i)
				if _, err := c.Client.PutObject(ctx, "conc", key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
					errs <- err
					return
				}
				o, err := c.Client.GetObject(ctx, "conc", key, minio.GetObjectOptions{})
				if err != nil {
					errs <- err
					return
				}
				got, err := io.ReadAll(o)
				o.Close()
				if err != nil || !bytes.Equal(got, data) {
					errs <- fmt.Errorf("%s: read back %d bytes, %v", key, len(got), err)
					return
				}
				if _, err := c.ListObjectsV2("conc", "", "", "", "/", 2); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// staleHeadBackend answers the first HeadObject with an older version of
// the object, as if it were overwritten between the handler's HEAD and GET.
type staleHeadBackend struct {
	*s3mem.Backend
	mu    sync.Mutex
	stale int // how many stale answers remain
}

func (b *staleHeadBackend) HeadObject(ctx context.Context, bucket, key string) (s3api.ObjectInfo, error) {
	o, err := b.Backend.HeadObject(ctx, bucket, key)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil && b.stale > 0 {
		b.stale--
		o.Size, o.ETag = 3, "0123456789abcdef0123456789abcdef"
	}
	return o, err
}

func TestGetObjectRedecidesAfterOverwrite(t *testing.T) {
	for _, tc := range []struct {
		stale  int
		status int
	}{{1, 206}, {3, 503}} {
		t.Run(fmt.Sprintf("stale=%d", tc.stale), func(t *testing.T) {
			b := &staleHeadBackend{Backend: s3mem.New()}
			ctx := context.Background()
			if err := b.CreateBucket(ctx, "race"); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Backend.PutObject(ctx, "race", "k", bytes.NewReader([]byte("0123456789")), 10, s3api.ObjectMeta{}); err != nil {
				t.Fatal(err)
			}
			b.stale = tc.stale
			ts := &testServer{}
			ts.srv = httptest.NewServer(s3api.NewHandler(b, s3api.Config{
				Credentials: s3api.StaticCredentials(map[string]string{testAccessKey: testSecret}),
				Logger:      slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
			}))
			t.Cleanup(ts.srv.Close)
			// "bytes=-5" against the stale 3-byte head would be bytes 0-2.
			resp, body := do(t, ts.signedRequest(t, "GET", "/race/k", nil, "", http.Header{"Range": {"bytes=-5"}}))
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d %s", resp.StatusCode, body)
			}
			if tc.status == 206 && (string(body) != "56789" || resp.Header.Get("Content-Range") != "bytes 5-9/10") {
				t.Fatalf("got %q %s", body, resp.Header.Get("Content-Range"))
			}
		})
	}
}
