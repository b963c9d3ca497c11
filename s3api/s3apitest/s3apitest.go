package s3apitest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/osprey-storage/osprey/s3api"
)

// RunBackendTests runs the conformance suite. newBackend must return a
// fresh, empty backend for each call; the suite cleans nothing up itself.
func RunBackendTests(t *testing.T, newBackend func(t *testing.T) s3api.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b s3api.Backend)
	}{
		{"Buckets", testBuckets},
		{"Objects", testObjects},
		{"FailedPutKeepsOldObject", testFailedPut},
		{"Copy", testCopy},
		{"ListObjects", testListObjects},
		{"Multipart", testMultipart},
		{"ListMultipartUploads", testListUploads},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newBackend(t)) })
	}
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err %v, want %v", err, want)
	}
}

func mustNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func md5Hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func put(t *testing.T, b s3api.Backend, bucket, key string, data []byte, meta s3api.ObjectMeta) s3api.ObjectInfo {
	t.Helper()
	o, err := b.PutObject(context.Background(), bucket, key, bytes.NewReader(data), int64(len(data)), meta)
	if err != nil {
		t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
	return o
}

func get(t *testing.T, b s3api.Backend, bucket, key string, off, n int64) []byte {
	t.Helper()
	_, rc, err := b.GetObject(context.Background(), bucket, key, off, n)
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	return data
}

func testBuckets(t *testing.T, b s3api.Backend) {
	ctx := context.Background()
	wantErr(t, b.HeadBucket(ctx, "one"), s3api.ErrNoSuchBucket)
	mustNil(t, b.CreateBucket(ctx, "two"))
	mustNil(t, b.CreateBucket(ctx, "one"))
	wantErr(t, b.CreateBucket(ctx, "one"), s3api.ErrBucketExists)
	mustNil(t, b.HeadBucket(ctx, "one"))
	bs, err := b.ListBuckets(ctx)
	mustNil(t, err)
	if len(bs) != 2 || bs[0].Name != "one" || bs[1].Name != "two" || bs[0].Created.IsZero() {
		t.Fatalf("list buckets: %+v", bs)
	}
	put(t, b, "one", "k", []byte("x"), s3api.ObjectMeta{})
	wantErr(t, b.DeleteBucket(ctx, "one"), s3api.ErrBucketNotEmpty)
	mustNil(t, b.DeleteObject(ctx, "one", "k"))
	// An in-progress upload does not keep a bucket alive.
	_, err = b.CreateMultipartUpload(ctx, "one", "u", s3api.ObjectMeta{})
	mustNil(t, err)
	mustNil(t, b.DeleteBucket(ctx, "one"))
	wantErr(t, b.DeleteBucket(ctx, "one"), s3api.ErrNoSuchBucket)
	wantErr(t, b.HeadBucket(ctx, "one"), s3api.ErrNoSuchBucket)
}

func testObjects(t *testing.T, b s3api.Backend) {
	ctx := context.Background()
	mustNil(t, b.CreateBucket(ctx, "objs"))
	data := []byte("hello, conformance")
	meta := s3api.ObjectMeta{ContentType: "text/plain", ContentEncoding: "gzip", ContentDisposition: "inline",
		CacheControl: "no-cache", UserMeta: map[string]string{"a": "1", "b-c": "two words"}}
	o := put(t, b, "objs", "dir/k", data, meta)
	if o.ETag != md5Hex(data) || o.Size != int64(len(data)) || o.Key != "dir/k" || o.Bucket != "objs" || o.ModTime.IsZero() {
		t.Fatalf("put info: %+v", o)
	}
	h, err := b.HeadObject(ctx, "objs", "dir/k")
	mustNil(t, err)
	if h.ETag != o.ETag || h.Size != o.Size || fmt.Sprint(h.Meta) != fmt.Sprint(meta) {
		t.Fatalf("head: %+v", h)
	}
	for _, tc := range []struct {
		off, n int64
		want   string
	}{{0, -1, string(data)}, {7, -1, "conformance"}, {0, 5, "hello"}, {7, 100, "conformance"}, {int64(len(data)), -1, ""}} {
		if got := get(t, b, "objs", "dir/k", tc.off, tc.n); string(got) != tc.want {
			t.Fatalf("get(%d,%d) = %q, want %q", tc.off, tc.n, got, tc.want)
		}
	}
	put(t, b, "objs", "empty", nil, s3api.ObjectMeta{})
	if got := get(t, b, "objs", "empty", 0, -1); len(got) != 0 {
		t.Fatalf("empty object: %q", got)
	}
	// Overwrite.
	o2 := put(t, b, "objs", "dir/k", []byte("v2"), s3api.ObjectMeta{})
	if o2.ETag != md5Hex([]byte("v2")) || string(get(t, b, "objs", "dir/k", 0, -1)) != "v2" {
		t.Fatal("overwrite not visible")
	}
	mustNil(t, b.DeleteObject(ctx, "objs", "dir/k"))
	mustNil(t, b.DeleteObject(ctx, "objs", "dir/k"))
	_, err = b.HeadObject(ctx, "objs", "dir/k")
	wantErr(t, err, s3api.ErrNoSuchKey)
	_, _, err = b.GetObject(ctx, "objs", "dir/k", 0, -1)
	wantErr(t, err, s3api.ErrNoSuchKey)
	_, err = b.HeadObject(ctx, "nobucket", "k")
	wantErr(t, err, s3api.ErrNoSuchBucket)
	_, err = b.PutObject(ctx, "nobucket", "k", strings.NewReader("x"), 1, s3api.ObjectMeta{})
	wantErr(t, err, s3api.ErrNoSuchBucket)
	wantErr(t, b.DeleteObject(ctx, "nobucket", "k"), s3api.ErrNoSuchBucket)
}

// failingReader yields some bytes, then err.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func testFailedPut(t *testing.T, b s3api.Backend) {
	ctx := context.Background()
	mustNil(t, b.CreateBucket(ctx, "fail"))
	put(t, b, "fail", "k", []byte("original"), s3api.ObjectMeta{})
	boom := errors.New("boom")
	_, err := b.PutObject(ctx, "fail", "k", &failingReader{data: []byte("new"), err: boom}, 10, s3api.ObjectMeta{})
	wantErr(t, err, boom)
	if got := get(t, b, "fail", "k", 0, -1); string(got) != "original" {
		t.Fatalf("failed put replaced the object: %q", got)
	}
	_, err = b.PutObject(ctx, "fail", "new", &failingReader{data: []byte("new"), err: boom}, 10, s3api.ObjectMeta{})
	wantErr(t, err, boom)
	_, err = b.HeadObject(ctx, "fail", "new")
	wantErr(t, err, s3api.ErrNoSuchKey)
}

func testCopy(t *testing.T, b s3api.Backend) {
	ctx := context.Background()
	mustNil(t, b.CreateBucket(ctx, "csrc"))
	mustNil(t, b.CreateBucket(ctx, "cdst"))
	src := put(t, b, "csrc", "k", []byte("copy"), s3api.ObjectMeta{ContentType: "a/b", UserMeta: map[string]string{"x": "y"}})
	o, err := b.CopyObject(ctx, "csrc", "k", "cdst", "k2", nil)
	mustNil(t, err)
	if o.ETag != src.ETag || o.Meta.ContentType != "a/b" || o.Meta.UserMeta["x"] != "y" || o.Bucket != "cdst" || o.Key != "k2" {
		t.Fatalf("copy keep meta: %+v", o)
	}
	o, err = b.CopyObject(ctx, "csrc", "k", "csrc", "k", &s3api.ObjectMeta{ContentType: "c/d"})
	mustNil(t, err)
	h, err := b.HeadObject(ctx, "csrc", "k")
	mustNil(t, err)
	if h.Meta.ContentType != "c/d" || len(h.Meta.UserMeta) != 0 || string(get(t, b, "csrc", "k", 0, -1)) != "copy" {
		t.Fatalf("copy replace meta onto itself: %+v", h)
	}
	_, err = b.CopyObject(ctx, "csrc", "missing", "cdst", "x", nil)
	wantErr(t, err, s3api.ErrNoSuchKey)
	_, err = b.CopyObject(ctx, "csrc", "k", "nobucket", "x", nil)
	wantErr(t, err, s3api.ErrNoSuchBucket)
}

// listAll pages through ListObjects and returns keys and prefixes in order.
func listAll(t *testing.T, b s3api.Backend, bucket string, opts s3api.ListOptions) []string {
	t.Helper()
	var out []string
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("listing does not terminate")
		}
		res, err := b.ListObjects(context.Background(), bucket, opts)
		mustNil(t, err)
		if len(res.Objects)+len(res.CommonPrefixes) > opts.MaxKeys {
			t.Fatalf("page larger than MaxKeys %d", opts.MaxKeys)
		}
		// Merge the two sorted slices into one ordered page.
		i, j := 0, 0
		for i < len(res.Objects) || j < len(res.CommonPrefixes) {
			if j == len(res.CommonPrefixes) || i < len(res.Objects) && res.Objects[i].Key < res.CommonPrefixes[j] {
				out = append(out, res.Objects[i].Key)
				i++
			} else {
				out = append(out, res.CommonPrefixes[j])
				j++
			}
		}
		if !res.IsTruncated {
			return out
		}
		if res.NextStartAfter == "" || res.NextStartAfter <= opts.StartAfter {
			t.Fatalf("NextStartAfter %q does not advance past %q", res.NextStartAfter, opts.StartAfter)
		}
		opts.StartAfter = res.NextStartAfter
	}
}

func testListObjects(t *testing.T, b s3api.Backend) {
	ctx := context.Background()
	mustNil(t, b.CreateBucket(ctx, "lst"))
	keys := []string{"a", "b/1", "b/2", "b/c/3", "b0", "c", "d/e/f", "d/x"}
	for _, k := range keys {
		put(t, b, "lst", k, []byte(k), s3api.ObjectMeta{})
	}
	tests := []struct {
		opts s3api.ListOptions
		want string
	}{
		{s3api.ListOptions{}, strings.Join(keys, ",")},
		{s3api.ListOptions{Delimiter: "/"}, "a,b/,b0,c,d/"},
		{s3api.ListOptions{Prefix: "b/"}, "b/1,b/2,b/c/3"},
		{s3api.ListOptions{Prefix: "b/", Delimiter: "/"}, "b/1,b/2,b/c/"},
		{s3api.ListOptions{Prefix: "b", Delimiter: "/"}, "b/,b0"},
		{s3api.ListOptions{Delimiter: "/", StartAfter: "b/"}, "b0,c,d/"},
		{s3api.ListOptions{StartAfter: "b/2"}, "b/c/3,b0,c,d/e/f,d/x"},
		{s3api.ListOptions{Prefix: "zzz"}, ""},
	}
	for _, tt := range tests {
		for _, maxKeys := range []int{1, 2, 1000} {
			tt.opts.MaxKeys = maxKeys
			if got := strings.Join(listAll(t, b, "lst", tt.opts), ","); got != tt.want {
				t.Errorf("%+v: got %q, want %q", tt.opts, got, tt.want)
			}
		}
	}
	res, err := b.ListObjects(ctx, "lst", s3api.ListOptions{MaxKeys: 1})
	mustNil(t, err)
	if len(res.Objects) != 1 || res.Objects[0].ETag != md5Hex([]byte("a")) || res.Objects[0].Size != 1 {
		t.Fatalf("object info in listing: %+v", res.Objects)
	}
	_, err = b.ListObjects(ctx, "nobucket", s3api.ListOptions{MaxKeys: 1})
	wantErr(t, err, s3api.ErrNoSuchBucket)
}

func testMultipart(t *testing.T, b s3api.Backend) {
	ctx := context.Background()
	mustNil(t, b.CreateBucket(ctx, "mpb"))
	meta := s3api.ObjectMeta{ContentType: "x/y", UserMeta: map[string]string{"m": "1"}}
	id, err := b.CreateMultipartUpload(ctx, "mpb", "obj", meta)
	mustNil(t, err)
	p1 := bytes.Repeat([]byte{1}, s3api.MinPartSize)
	p2 := []byte("last")
	up := func(n int, data []byte) s3api.PartInfo {
		t.Helper()
		p, err := b.UploadPart(ctx, "mpb", "obj", id, n, bytes.NewReader(data), int64(len(data)))
		mustNil(t, err)
		if p.Number != n || p.ETag != md5Hex(data) || p.Size != int64(len(data)) {
			t.Fatalf("part info %+v", p)
		}
		return p
	}
	up(1, []byte("to be replaced"))
	i1 := up(1, p1)
	up(3, []byte("unused part"))
	i2 := up(2, p2)
	res, err := b.ListParts(ctx, "mpb", "obj", id, 0, 2)
	mustNil(t, err)
	if len(res.Parts) != 2 || res.Parts[0].Number != 1 || res.Parts[0].ETag != i1.ETag || res.Parts[1].Number != 2 || !res.IsTruncated || res.NextPartNumberMarker != 2 {
		t.Fatalf("list parts page 1: %+v", res)
	}
	res, err = b.ListParts(ctx, "mpb", "obj", id, 2, 2)
	mustNil(t, err)
	if len(res.Parts) != 1 || res.Parts[0].Number != 3 || res.IsTruncated {
		t.Fatalf("list parts page 2: %+v", res)
	}
	_, err = b.ListParts(ctx, "mpb", "other-key", id, 0, 10)
	wantErr(t, err, s3api.ErrNoSuchUpload)

	parts := []s3api.CompletePart{{Number: 1, ETag: i1.ETag}, {Number: 2, ETag: i2.ETag}}
	o, err := b.CompleteMultipartUpload(ctx, "mpb", "obj", id, parts)
	mustNil(t, err)
	wantETag, err := s3api.MultipartETag(parts)
	mustNil(t, err)
	if o.ETag != wantETag || !strings.HasSuffix(o.ETag, "-2") || o.Size != int64(len(p1)+len(p2)) {
		t.Fatalf("complete: %+v", o)
	}
	h, err := b.HeadObject(ctx, "mpb", "obj")
	mustNil(t, err)
	if h.ETag != wantETag || h.Meta.ContentType != "x/y" || h.Meta.UserMeta["m"] != "1" {
		t.Fatalf("head after complete: %+v", h)
	}
	if got := get(t, b, "mpb", "obj", int64(len(p1))-1, 3); !bytes.Equal(got, []byte{1, 'l', 'a'}) {
		t.Fatalf("range across parts: %v", got)
	}
	_, err = b.UploadPart(ctx, "mpb", "obj", id, 1, strings.NewReader("x"), 1)
	wantErr(t, err, s3api.ErrNoSuchUpload)
	wantErr(t, b.AbortMultipartUpload(ctx, "mpb", "obj", id), s3api.ErrNoSuchUpload)

	id2, err := b.CreateMultipartUpload(ctx, "mpb", "aborted", s3api.ObjectMeta{})
	mustNil(t, err)
	up2, err := b.UploadPart(ctx, "mpb", "aborted", id2, 1, strings.NewReader("x"), 1)
	mustNil(t, err)
	mustNil(t, b.AbortMultipartUpload(ctx, "mpb", "aborted", id2))
	_, err = b.CompleteMultipartUpload(ctx, "mpb", "aborted", id2, []s3api.CompletePart{{Number: 1, ETag: up2.ETag}})
	wantErr(t, err, s3api.ErrNoSuchUpload)
	_, err = b.HeadObject(ctx, "mpb", "aborted")
	wantErr(t, err, s3api.ErrNoSuchKey)
	_, err = b.CreateMultipartUpload(ctx, "nobucket", "k", s3api.ObjectMeta{})
	wantErr(t, err, s3api.ErrNoSuchBucket)
}

func testListUploads(t *testing.T, b s3api.Backend) {
	ctx := context.Background()
	mustNil(t, b.CreateBucket(ctx, "upl"))
	ids := map[string]string{}
	for _, k := range []string{"a", "b/1", "b/2", "c"} {
		id, err := b.CreateMultipartUpload(ctx, "upl", k, s3api.ObjectMeta{})
		mustNil(t, err)
		ids[k] = id
	}
	var got []string
	opts := s3api.UploadsOptions{MaxUploads: 1}
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("upload listing does not terminate")
		}
		res, err := b.ListMultipartUploads(ctx, "upl", opts)
		mustNil(t, err)
		for _, u := range res.Uploads {
			if ids[u.Key] != u.UploadID {
				t.Fatalf("upload %+v", u)
			}
			got = append(got, u.Key)
		}
		if !res.IsTruncated {
			break
		}
		opts.KeyMarker, opts.UploadIDMarker = res.NextKeyMarker, res.NextUploadIDMarker
	}
	if strings.Join(got, ",") != "a,b/1,b/2,c" {
		t.Fatalf("uploads %q", got)
	}
	res, err := b.ListMultipartUploads(ctx, "upl", s3api.UploadsOptions{Delimiter: "/", MaxUploads: 100})
	mustNil(t, err)
	if len(res.Uploads) != 2 || len(res.CommonPrefixes) != 1 || res.CommonPrefixes[0] != "b/" {
		t.Fatalf("uploads with delimiter: %+v", res)
	}
	res, err = b.ListMultipartUploads(ctx, "upl", s3api.UploadsOptions{Prefix: "b/", MaxUploads: 100})
	mustNil(t, err)
	if len(res.Uploads) != 2 {
		t.Fatalf("uploads with prefix: %+v", res)
	}
	_, err = b.ListMultipartUploads(ctx, "nobucket", s3api.UploadsOptions{MaxUploads: 1})
	wantErr(t, err, s3api.ErrNoSuchBucket)
}
