package node_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/osprey-storage/osprey/node"
	"github.com/osprey-storage/osprey/s3api"
	"github.com/osprey-storage/osprey/s3api/s3apitest"
)

const (
	s3Access = "test-access-key"
	s3Secret = "test-secret-key-0123456789"
)

// s3Cluster starts size nodes with the S3 API on, and one minio-go client
// per node.
func s3Cluster(t *testing.T, size int) (*cluster, []*minio.Client, []minio.Core) {
	t.Helper()
	c := newClusterWith(t, size, func(i int, cfg *node.Config) {
		cfg.S3 = node.S3Config{Addr: "127.0.0.1:0", Credentials: map[string]string{s3Access: s3Secret}}
		cfg.Limits.MaxChunkSize = 8 << 20
	})
	var clients []*minio.Client
	var cores []minio.Core
	for _, n := range c.nodes {
		cl, err := minio.New(n.S3Addr(), &minio.Options{Creds: credentials.NewStaticV4(s3Access, s3Secret, ""), Region: "us-east-1"})
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, cl)
		cores = append(cores, minio.Core{Client: cl})
	}
	return c, clients, cores
}

func readAll(t *testing.T, cl *minio.Client, bucket, key string, opts minio.GetObjectOptions) []byte {
	t.Helper()
	obj, err := cl.GetObject(context.Background(), bucket, key, opts)
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("read %s/%s: %v", bucket, key, err)
	}
	return b
}

// TestS3AcrossNodes: what one node writes through S3, every other node
// reads back at once; overwrites, deletes, listings and the native API's
// view of the same objects agree.
func TestS3AcrossNodes(t *testing.T) {
	c, cl, _ := s3Cluster(t, 3)
	ctx := context.Background()
	if err := cl[0].MakeBucket(ctx, "photos", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	data := content(1, 300_000)
	info, err := cl[1].PutObject(ctx, "photos", "2026/cat.jpg", bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: "image/jpeg", UserMetadata: map[string]string{"Owner": "ana"}})
	if err != nil {
		t.Fatal(err)
	}
	if info.ETag != md5hex(data) {
		t.Fatalf("ETag %s, want md5 %s", info.ETag, md5hex(data))
	}
	for i := range cl {
		if got := readAll(t, cl[i], "photos", "2026/cat.jpg", minio.GetObjectOptions{}); !bytes.Equal(got, data) {
			t.Fatalf("node %d read %d bytes, want the %d written", i, len(got), len(data))
		}
	}
	st, err := cl[2].StatObject(ctx, "photos", "2026/cat.jpg", minio.StatObjectOptions{})
	if err != nil || st.ContentType != "image/jpeg" || st.UserMetadata["Owner"] != "ana" {
		t.Fatalf("stat %+v, %v", st, err)
	}

	// The native API sees the same object by uid, with its bucket and key.
	a := apiOf(t, c.nodes[0])
	var obj struct {
		UID      string `json:"uid"`
		S3Bucket string `json:"s3_bucket"`
		S3Key    string `json:"s3_key"`
		MD5      string `json:"md5"`
	}
	// The uid is in the x-osprey-uid header (read here through a presigned
	// HEAD: minio-go keeps only the metadata headers it knows).
	head, err := cl[0].Presign(ctx, http.MethodHead, "photos", "2026/cat.jpg", time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Head(head.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	uid := resp.Header.Get("X-Osprey-Uid")
	if resp.StatusCode != 200 || uid == "" {
		t.Fatalf("HEAD %d, no x-osprey-uid header: %v", resp.StatusCode, resp.Header)
	}
	a.ok(http.MethodGet, "/api/storage/v0/object?uid="+uid, nil, &obj)
	if obj.S3Bucket != "photos" || obj.S3Key != "2026/cat.jpg" || obj.MD5 != md5hex(data) {
		t.Fatalf("native view %+v", obj)
	}
	if code, body, _ := a.get(a.downloadURL(uid), nil); code != 200 || !bytes.Equal(body, data) {
		t.Fatalf("native download: %d, %d bytes", code, len(body))
	}

	// Overwrite through another node: everyone reads the new bytes.
	data2 := content(2, 1234)
	if _, err := cl[2].PutObject(ctx, "photos", "2026/cat.jpg", bytes.NewReader(data2), int64(len(data2)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := range cl {
		if got := readAll(t, cl[i], "photos", "2026/cat.jpg", minio.GetObjectOptions{}); !bytes.Equal(got, data2) {
			t.Fatalf("node %d after overwrite: %d bytes", i, len(got))
		}
	}
	// The replaced uid is gone from the native API.
	if code, _, _ := a.do(http.MethodGet, "/api/storage/v0/object?uid="+uid, nil, nil); code != http.StatusNotFound {
		t.Fatalf("replaced uid: status %d, want 404", code)
	}

	// Listing with a delimiter, through a third node.
	for _, k := range []string{"2026/dog.jpg", "2025/a.png", "top.txt"} {
		if _, err := cl[0].PutObject(ctx, "photos", k, strings.NewReader(k), int64(len(k)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var keys []string
	for o := range cl[1].ListObjects(ctx, "photos", minio.ListObjectsOptions{}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		keys = append(keys, o.Key)
	}
	sort.Strings(keys) // minio-go yields a page's keys, then its prefixes
	if fmt.Sprint(keys) != "[2025/ 2026/ top.txt]" {
		t.Fatalf("top level listing %v", keys)
	}
	keys = nil
	for o := range cl[2].ListObjects(ctx, "photos", minio.ListObjectsOptions{Prefix: "2026/", Recursive: true, MaxKeys: 1}) {
		keys = append(keys, o.Key)
	}
	if fmt.Sprint(keys) != "[2026/cat.jpg 2026/dog.jpg]" {
		t.Fatalf("prefix listing %v", keys)
	}

	// Delete, then the bucket: refused while not empty.
	if err := cl[0].RemoveBucket(ctx, "photos"); minio.ToErrorResponse(err).Code != "BucketNotEmpty" {
		t.Fatalf("removing a non-empty bucket: %v", err)
	}
	for _, k := range []string{"2026/cat.jpg", "2026/dog.jpg", "2025/a.png", "top.txt"} {
		if err := cl[1].RemoveObject(ctx, "photos", k, minio.RemoveObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl[2].StatObject(ctx, "photos", "top.txt", minio.StatObjectOptions{}); minio.ToErrorResponse(err).Code != "NoSuchKey" {
		t.Fatalf("stat after delete: %v", err)
	}
	if err := cl[2].RemoveBucket(ctx, "photos"); err != nil {
		t.Fatal(err)
	}
}

// TestS3MultipartGapsAndAbort: a multipart upload completed from parts
// 1, 3 and 4 (part 2 uploaded but left out) reads back as exactly those
// parts, on every node; an aborted upload is gone.
func TestS3MultipartGapsAndAbort(t *testing.T) {
	c, cl, core := s3Cluster(t, 3)
	ctx := context.Background()
	if err := cl[0].MakeBucket(ctx, "mpu", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	id, err := core[0].NewMultipartUpload(ctx, "mpu", "big.bin", minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	parts := map[int][]byte{1: content(11, 5<<20), 2: content(12, 5<<20), 3: content(13, 5<<20), 4: content(14, 1000)}
	var done []minio.CompletePart
	etags := md5.New()
	for _, num := range []int{1, 2, 3, 4} {
		p, err := core[num%3].PutObjectPart(ctx, "mpu", "big.bin", id, num, bytes.NewReader(parts[num]), int64(len(parts[num])), minio.PutObjectPartOptions{})
		if err != nil {
			t.Fatalf("part %d: %v", num, err)
		}
		if num != 2 {
			done = append(done, minio.CompletePart{PartNumber: num, ETag: p.ETag})
			sum := md5.Sum(parts[num])
			etags.Write(sum[:])
		}
	}
	lp, err := core[2].ListObjectParts(ctx, "mpu", "big.bin", id, 0, 1000)
	if err != nil || len(lp.ObjectParts) != 4 {
		t.Fatalf("list parts: %+v, %v", lp.ObjectParts, err)
	}
	info, err := core[1].CompleteMultipartUpload(ctx, "mpu", "big.bin", id, done, minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := hex.EncodeToString(etags.Sum(nil)) + "-3"; info.ETag != want {
		t.Fatalf("ETag %s, want %s", info.ETag, want)
	}
	want := append(append(append([]byte{}, parts[1]...), parts[3]...), parts[4]...)
	for i := range cl {
		if got := readAll(t, cl[i], "mpu", "big.bin", minio.GetObjectOptions{}); !bytes.Equal(got, want) {
			t.Fatalf("node %d read %d bytes (md5 %s), want %d (md5 %s)", i, len(got), md5hex(got), len(want), md5hex(want))
		}
	}
	// A range across the gap between parts 1 and 3.
	opts := minio.GetObjectOptions{}
	_ = opts.SetRange(5<<20-10, 5<<20+9)
	if got := readAll(t, cl[2], "mpu", "big.bin", opts); !bytes.Equal(got, want[5<<20-10:5<<20+10]) {
		t.Fatalf("range across parts: %d bytes", len(got))
	}

	// The object's md5 was not read back at completion; the tiering pass
	// computes it and every node's record of the file gets it.
	o, ok := c.nodes[0].FSM().Object("mpu", "big.bin")
	if !ok {
		t.Fatal("mpu/big.bin has no object record")
	}
	uid := o.UID
	for _, n := range c.nodes {
		waitFor(t, 30*time.Second, "the multipart object's md5 recorded by tiering", func() bool {
			f, ok := n.FSM().File(uid)
			return ok && f.MD5 == md5hex(want)
		})
	}

	// Abort: the upload and its parts go.
	id2, err := core[0].NewMultipartUpload(ctx, "mpu", "gone.bin", minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core[1].PutObjectPart(ctx, "mpu", "gone.bin", id2, 1, bytes.NewReader(parts[4]), 1000, minio.PutObjectPartOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := core[2].AbortMultipartUpload(ctx, "mpu", "gone.bin", id2); err != nil {
		t.Fatal(err)
	}
	if _, err := core[0].ListObjectParts(ctx, "mpu", "gone.bin", id2, 0, 1000); minio.ToErrorResponse(err).Code != "NoSuchUpload" {
		t.Fatalf("parts of an aborted upload: %v", err)
	}
	if _, err := core[0].PutObjectPart(ctx, "mpu", "gone.bin", id2, 2, bytes.NewReader(parts[4]), 1000, minio.PutObjectPartOptions{}); minio.ToErrorResponse(err).Code != "NoSuchUpload" {
		t.Fatalf("part into an aborted upload: %v", err)
	}
}

// TestS3OverwriteIsAtomic: readers racing an overwrite always get one
// whole version, old or new, never a mix or an error.
func TestS3OverwriteIsAtomic(t *testing.T) {
	_, cl, _ := s3Cluster(t, 3)
	ctx := context.Background()
	if err := cl[0].MakeBucket(ctx, "race", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	versions := map[string]bool{}
	put := func(i int) {
		b := bytes.Repeat([]byte{byte('a' + i)}, 200_000+i)
		versions[md5hex(b)] = true
		if _, err := cl[i%3].PutObject(ctx, "race", "k", bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
			t.Error(err)
		}
	}
	put(0)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				obj, err := cl[r].GetObject(ctx, "race", "k", minio.GetObjectOptions{})
				if err != nil {
					mu.Lock()
					bad = append(bad, err.Error())
					mu.Unlock()
					continue
				}
				b, err := io.ReadAll(obj)
				obj.Close()
				mu.Lock()
				if err != nil {
					bad = append(bad, err.Error())
				} else if sum := md5hex(b); !versions[sum] {
					bad = append(bad, "mixed or unknown content "+sum)
				}
				mu.Unlock()
			}
		}()
	}
	mu.Lock()
	for i := 1; i < 8; i++ {
		b := bytes.Repeat([]byte{byte('a' + i)}, 200_000+i)
		versions[md5hex(b)] = true
	}
	mu.Unlock()
	for i := 1; i < 8; i++ {
		b := bytes.Repeat([]byte{byte('a' + i)}, 200_000+i)
		if _, err := cl[i%3].PutObject(ctx, "race", "k", bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("%d bad reads, first: %s", len(bad), bad[0])
	}
}

// TestS3Auth: wrong secrets and unknown keys are refused on every node,
// presigned URLs work until they expire, and the S3 listener is off
// unless configured.
func TestS3Auth(t *testing.T) {
	c, cl, _ := s3Cluster(t, 1)
	ctx := context.Background()
	if err := cl[0].MakeBucket(ctx, "auth", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl[0].PutObject(ctx, "auth", "x.txt", strings.NewReader("secret"), 6, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	addr := c.nodes[0].S3Addr()
	for _, tc := range []struct{ key, secret, code string }{
		{s3Access, "wrong", "SignatureDoesNotMatch"},
		{"nobody", s3Secret, "InvalidAccessKeyId"},
	} {
		bad, _ := minio.New(addr, &minio.Options{Creds: credentials.NewStaticV4(tc.key, tc.secret, ""), Region: "us-east-1"})
		if _, err := bad.ListBuckets(ctx); minio.ToErrorResponse(err).Code != tc.code {
			t.Errorf("%s/%s: %v, want %s", tc.key, tc.secret, err, tc.code)
		}
	}
	// A URL valid for an hour serves the object; one valid for a second
	// (X-Amz-Date has whole seconds, and a loaded machine may take longer
	// than that to send the first GET) is refused once it expired.
	long, err := cl[0].PresignedGetObject(ctx, "auth", "x.txt", time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	u, err := cl[0].PresignedGetObject(ctx, "auth", "x.txt", time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(long.String())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "secret" {
		t.Fatalf("presigned GET: %d %q", resp.StatusCode, b)
	}
	waitFor(t, 10*time.Second, "the presigned URL to expire", func() bool {
		resp, err := http.Get(u.String())
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusForbidden
	})
	if c.nodes[0].S3Addr() == "" {
		t.Fatal("no S3 address")
	}
	cfg := node.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.S3 = node.S3Config{Addr: "127.0.0.1:0"}
	if _, err := node.New(cfg); err == nil || !strings.Contains(err.Error(), "credentials") {
		t.Fatalf("S3 API without credentials: %v", err)
	}
}

// TestS3GatewayConformance runs s3api's backend conformance suite (the
// contract s3mem also meets) against the real gateway of a running node.
func TestS3GatewayConformance(t *testing.T) {
	s3apitest.RunBackendTests(t, func(t *testing.T) s3api.Backend {
		c := newClusterWith(t, 1, func(i int, cfg *node.Config) {
			cfg.S3 = node.S3Config{Addr: "127.0.0.1:0", Credentials: map[string]string{s3Access: s3Secret}}
		})
		return c.nodes[0].S3()
	})
}

// TestS3PutIntoBucketDeletedElsewhere: a node remembers for a moment that
// a bucket exists (no record read per PUT); a PUT through it into a bucket
// another node deleted meanwhile still answers NoSuchBucket, from the
// entry's own check, and leaves no object behind.
func TestS3PutIntoBucketDeletedElsewhere(t *testing.T) {
	_, cl, _ := s3Cluster(t, 3)
	ctx := context.Background()
	if err := cl[0].MakeBucket(ctx, "brief", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	data := content(7, 4096)
	if _, err := cl[1].PutObject(ctx, "brief", "a.txt", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cl[2].RemoveObject(ctx, "brief", "a.txt", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cl[2].RemoveBucket(ctx, "brief"); err != nil {
		t.Fatal(err)
	}
	_, err := cl[1].PutObject(ctx, "brief", "b.txt", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
	if code := minio.ToErrorResponse(err).Code; code != "NoSuchBucket" {
		t.Fatalf("PUT into a deleted bucket: %v (code %q), want NoSuchBucket", err, code)
	}
	if ok, err := cl[1].BucketExists(ctx, "brief"); ok || err != nil {
		t.Fatalf("bucket exists %v, %v", ok, err)
	}
}
