package s3api_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/signer"

	"github.com/osprey-storage/osprey/s3api"
)

func md5Hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func TestBucketOperations(t *testing.T) {
	ts := mustServer(t)
	c := ts.root(t)
	ctx := context.Background()
	mustBucket(t, c, "alpha")
	mustBucket(t, c, "beta")
	wantCode(t, c.MakeBucket(ctx, "alpha", minio.MakeBucketOptions{}), "BucketAlreadyOwnedByYou")
	wantCode(t, c.MakeBucket(ctx, "xn--punycode", minio.MakeBucketOptions{}), "InvalidBucketName")

	bs, err := c.ListBuckets(ctx)
	if err != nil || len(bs) != 2 || bs[0].Name != "alpha" || bs[1].Name != "beta" {
		t.Fatalf("list buckets: %v %+v", err, bs)
	}
	if ok, err := c.BucketExists(ctx, "alpha"); err != nil || !ok {
		t.Fatalf("bucket exists: %v %v", ok, err)
	}
	if ok, err := c.BucketExists(ctx, "gamma"); err != nil || ok {
		t.Fatalf("missing bucket exists: %v %v", ok, err)
	}
	loc, err := c.GetBucketLocation(ctx, "alpha")
	if err != nil || loc != testRegion {
		t.Fatalf("location %q %v", loc, err)
	}
	v, err := c.GetBucketVersioning(ctx, "alpha")
	if err != nil || v.Status != "" {
		t.Fatalf("versioning %+v %v", v, err)
	}
	_, err = c.GetBucketLifecycle(ctx, "alpha")
	wantCode(t, err, "NoSuchLifecycleConfiguration")
	_, err = c.GetBucketTagging(ctx, "alpha")
	wantCode(t, err, "NoSuchTagSet")

	mustPut(t, c, "alpha", "obj", []byte("x"), minio.PutObjectOptions{})
	wantCode(t, c.RemoveBucket(ctx, "alpha"), "BucketNotEmpty")
	if err := c.RemoveObject(ctx, "alpha", "obj", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveBucket(ctx, "alpha"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.RemoveBucket(ctx, "alpha"), "NoSuchBucket")

	// Probes minio-go has no call for, as data.
	for _, tc := range []struct {
		method, path string
		status       int
		code, want   string
	}{
		{"GET", "/beta?acl", 200, "", "<Permission>FULL_CONTROL</Permission>"},
		{"GET", "/beta?policy", 404, "NoSuchBucketPolicy", ""},
		{"GET", "/beta?cors", 404, "NoSuchCORSConfiguration", ""},
		{"GET", "/beta?versioning", 200, "", "<VersioningConfiguration"},
		{"GET", "/beta?website", 501, "NotImplemented", ""},
		{"PUT", "/beta?tagging", 501, "NotImplemented", ""},
		{"GET", "/?website", 501, "NotImplemented", ""},
		{"GET", "/nosuch?lifecycle", 404, "NoSuchBucket", ""},
		{"GET", "/beta/" + strings.Repeat("k", 1025), 400, "KeyTooLongError", ""},
		{"GET", "/beta/missing", 404, "NoSuchKey", ""},
		{"PUT", "/Bad_Bucket", 400, "InvalidBucketName", ""},
		{"PUT", "/ab", 400, "InvalidBucketName", ""},
	} {
		t.Run(tc.method+tc.path[:min(len(tc.path), 30)], func(t *testing.T) {
			resp, body := do(t, ts.signedRequest(t, tc.method, tc.path, nil, "", nil))
			if tc.code != "" {
				wantXMLError(t, resp, body, tc.status, tc.code)
				return
			}
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.want) {
				t.Fatalf("got %d %s", resp.StatusCode, body)
			}
		})
	}
}

func TestObjectOperations(t *testing.T) {
	for _, style := range []struct {
		name   string
		lookup minio.BucketLookupType
	}{{"path", minio.BucketLookupPath}, {"virtual-host", minio.BucketLookupDNS}} {
		t.Run(style.name, func(t *testing.T) {
			ts := mustServer(t)
			c := ts.client(t, testAccessKey, testSecret, style.lookup)
			ctx := context.Background()
			mustBucket(t, c, "objects")
			data := bytes.Repeat([]byte("0123456789"), 20000) // 200 kB: several aws-chunked chunks
			key := "dir/sub dir/ünïcode+key.txt"
			info := mustPut(t, c, "objects", key, data, minio.PutObjectOptions{
				ContentType: "text/plain", ContentEncoding: "identity", ContentDisposition: "attachment; filename=\"a.txt\"",
				CacheControl: "max-age=60", UserMetadata: map[string]string{"Color": "blue"},
			})
			if info.ETag != md5Hex(data) {
				t.Fatalf("etag %q, want md5 %q", info.ETag, md5Hex(data))
			}
			if !ts.sawPayload("PUT", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD") {
				t.Fatal("PutObject did not use the streaming signature")
			}
			st, err := c.StatObject(ctx, "objects", key, minio.StatObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if st.Size != int64(len(data)) || st.ETag != md5Hex(data) || st.ContentType != "text/plain" ||
				st.Metadata.Get("X-Amz-Meta-Color") != "blue" || st.Metadata.Get("Content-Disposition") != "attachment; filename=\"a.txt\"" ||
				st.Metadata.Get("Cache-Control") != "max-age=60" || st.Metadata.Get("Content-Encoding") != "identity" {
				t.Fatalf("stat: %+v", st)
			}
			if got := mustGet(t, c, "objects", key); !bytes.Equal(got, data) {
				t.Fatal("get: data differs")
			}

			// Unsigned and signed (hex sha256) payloads.
			u := ts.client(t, testAccessKey, testSecret, style.lookup)
			if _, err := u.Client.PutObject(ctx, "objects", "unsigned", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{DisableContentSha256: true}); err != nil {
				t.Fatal(err)
			}
			if !ts.sawPayload("PUT", "UNSIGNED-PAYLOAD") {
				t.Fatal("no UNSIGNED-PAYLOAD put seen")
			}
			if _, err := c.PutObject(ctx, "objects", "signed", bytes.NewReader(data), int64(len(data)), "", sha256Hex(data), minio.PutObjectOptions{DisableContentSha256: true}); err != nil {
				t.Fatal(err)
			}
			if !ts.sawPayload("PUT", sha256Hex(data)) {
				t.Fatal("no signed-payload put seen")
			}
			for _, k := range []string{"unsigned", "signed"} {
				if got := mustGet(t, c, "objects", k); !bytes.Equal(got, data) {
					t.Fatalf("%s: data differs", k)
				}
			}
			// Empty object.
			mustPut(t, c, "objects", "empty", nil, minio.PutObjectOptions{})
			if got := mustGet(t, c, "objects", "empty"); len(got) != 0 {
				t.Fatal("empty object not empty")
			}

			if err := c.RemoveObject(ctx, "objects", key, minio.RemoveObjectOptions{}); err != nil {
				t.Fatal(err)
			}
			_, err = c.StatObject(ctx, "objects", key, minio.StatObjectOptions{})
			wantCode(t, err, "NoSuchKey")
			if err := c.RemoveObject(ctx, "objects", key, minio.RemoveObjectOptions{}); err != nil {
				t.Fatalf("delete of a missing key: %v", err)
			}
			_, _, _, err = c.GetObject(ctx, "nosuchbucket", "k", minio.GetObjectOptions{})
			wantCode(t, err, "NoSuchBucket")
			_, _, _, err = c.GetObject(ctx, "objects", "nosuchkey", minio.GetObjectOptions{})
			wantCode(t, err, "NoSuchKey")
			_, err = c.Client.PutObject(ctx, "nosuchbucket", "k", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
			wantCode(t, err, "NoSuchBucket")
		})
	}
}

func TestRangesAndConditionals(t *testing.T) {
	ts := mustServer(t)
	c := ts.root(t)
	ctx := context.Background()
	mustBucket(t, c, "ranges")
	data := []byte("abcdefghijklmnopqrstuvwxyz")
	info := mustPut(t, c, "ranges", "k", data, minio.PutObjectOptions{ContentType: "text/plain"})
	get := func(t *testing.T, opts minio.GetObjectOptions) ([]byte, http.Header, error) {
		t.Helper()
		rc, _, hdr, err := c.GetObject(ctx, "ranges", "k", opts)
		if err != nil {
			return nil, hdr, err
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		return b, hdr, err
	}
	rangeTests := []struct {
		name       string
		start, end int64
		want       string
		contRange  string
	}{
		{"first bytes", 0, 4, "abcde", "bytes 0-4/26"},
		{"open ended", 20, 0, "uvwxyz", "bytes 20-25/26"},
		{"suffix", 0, -3, "xyz", "bytes 23-25/26"},
		{"past the end", 24, 100, "yz", "bytes 24-25/26"},
		{"suffix longer than object", 0, -100, string(data), "bytes 0-25/26"},
	}
	for _, tt := range rangeTests {
		t.Run(tt.name, func(t *testing.T) {
			var o minio.GetObjectOptions
			if err := o.SetRange(tt.start, tt.end); err != nil {
				t.Fatal(err)
			}
			b, hdr, err := get(t, o)
			if err != nil || string(b) != tt.want || hdr.Get("Content-Range") != tt.contRange {
				t.Fatalf("got %q %q %v", b, hdr.Get("Content-Range"), err)
			}
		})
	}
	t.Run("unsatisfiable", func(t *testing.T) {
		resp, body := do(t, ts.signedRequest(t, "GET", "/ranges/k", nil, "", http.Header{"Range": {"bytes=26-"}}))
		wantXMLError(t, resp, body, 416, "InvalidRange")
		if resp.Header.Get("Content-Range") != "bytes */26" {
			t.Fatalf("Content-Range %q", resp.Header.Get("Content-Range"))
		}
	})
	t.Run("range status", func(t *testing.T) {
		resp, body := do(t, ts.signedRequest(t, "GET", "/ranges/k", nil, "", http.Header{"Range": {"bytes=-2"}}))
		if resp.StatusCode != 206 || string(body) != "yz" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	})

	past := time.Now().Add(-time.Hour)
	future := time.Now().Add(time.Hour)
	condTests := []struct {
		name   string
		set    func(o *minio.GetObjectOptions)
		status int // 0 = success
	}{
		{"if-match ok", func(o *minio.GetObjectOptions) { _ = o.SetMatchETag(info.ETag) }, 0},
		{"if-match fails", func(o *minio.GetObjectOptions) { _ = o.SetMatchETag("0123") }, 412},
		{"if-none-match hits", func(o *minio.GetObjectOptions) { _ = o.SetMatchETagExcept(info.ETag) }, 304},
		{"if-none-match misses", func(o *minio.GetObjectOptions) { _ = o.SetMatchETagExcept("0123") }, 0},
		{"if-modified-since past", func(o *minio.GetObjectOptions) { _ = o.SetModified(past) }, 0},
		{"if-modified-since future", func(o *minio.GetObjectOptions) { _ = o.SetModified(future) }, 304},
		{"if-unmodified-since past", func(o *minio.GetObjectOptions) { _ = o.SetUnmodified(past) }, 412},
		{"if-unmodified-since future", func(o *minio.GetObjectOptions) { _ = o.SetUnmodified(future) }, 0},
	}
	for _, tt := range condTests {
		t.Run(tt.name, func(t *testing.T) {
			var o minio.GetObjectOptions
			tt.set(&o)
			b, _, err := get(t, o)
			if tt.status == 0 {
				if err != nil || !bytes.Equal(b, data) {
					t.Fatalf("got %q %v", b, err)
				}
				return
			}
			if err == nil || minio.ToErrorResponse(err).StatusCode != tt.status {
				t.Fatalf("got %v (%+v), want status %d", err, minio.ToErrorResponse(err), tt.status)
			}
		})
	}
	t.Run("head if-none-match", func(t *testing.T) {
		resp, _ := do(t, ts.signedRequest(t, "HEAD", "/ranges/k", nil, "", http.Header{"If-None-Match": {`"` + info.ETag + `"`}}))
		if resp.StatusCode != 304 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	t.Run("response overrides", func(t *testing.T) {
		q := url.Values{"response-content-type": {"application/x-test"}, "response-content-disposition": {"inline"}}
		resp, _ := do(t, ts.signedRequest(t, "GET", "/ranges/k?"+q.Encode(), nil, "", nil))
		if resp.Header.Get("Content-Type") != "application/x-test" || resp.Header.Get("Content-Disposition") != "inline" {
			t.Fatalf("headers %v", resp.Header)
		}
	})
}

func TestCopyObject(t *testing.T) {
	ts := mustServer(t)
	c := ts.root(t)
	ctx := context.Background()
	mustBucket(t, c, "src")
	mustBucket(t, c, "dst")
	data := []byte("copy me")
	mustPut(t, c, "src", "a", data, minio.PutObjectOptions{ContentType: "text/plain", UserMetadata: map[string]string{"Origin": "src"}})

	if _, err := c.Client.CopyObject(ctx, minio.CopyDestOptions{Bucket: "dst", Object: "copied"}, minio.CopySrcOptions{Bucket: "src", Object: "a"}); err != nil {
		t.Fatal(err)
	}
	st, err := c.StatObject(ctx, "dst", "copied", minio.StatObjectOptions{})
	if err != nil || st.ETag != md5Hex(data) || st.ContentType != "text/plain" || st.Metadata.Get("X-Amz-Meta-Origin") != "src" {
		t.Fatalf("COPY directive: %+v %v", st, err)
	}
	if _, err := c.Client.CopyObject(ctx, minio.CopyDestOptions{Bucket: "dst", Object: "replaced", ReplaceMetadata: true, UserMetadata: map[string]string{"Origin": "new", "Content-Type": "application/json"}},
		minio.CopySrcOptions{Bucket: "src", Object: "a"}); err != nil {
		t.Fatal(err)
	}
	st, err = c.StatObject(ctx, "dst", "replaced", minio.StatObjectOptions{})
	if err != nil || st.ContentType != "application/json" || st.Metadata.Get("X-Amz-Meta-Origin") != "new" {
		t.Fatalf("REPLACE directive: %+v %v", st, err)
	}
	if got := mustGet(t, c, "dst", "replaced"); !bytes.Equal(got, data) {
		t.Fatal("copied data differs")
	}
	_, err = c.Client.CopyObject(ctx, minio.CopyDestOptions{Bucket: "dst", Object: "x"}, minio.CopySrcOptions{Bucket: "src", Object: "missing"})
	wantCode(t, err, "NoSuchKey")
	_, err = c.Client.CopyObject(ctx, minio.CopyDestOptions{Bucket: "src", Object: "a"}, minio.CopySrcOptions{Bucket: "src", Object: "a"})
	wantCode(t, err, "InvalidRequest")
	_, err = c.Client.CopyObject(ctx, minio.CopyDestOptions{Bucket: "dst", Object: "y"}, minio.CopySrcOptions{Bucket: "src", Object: "a", MatchETag: "0000"})
	wantCode(t, err, "PreconditionFailed")
}

func TestDeleteObjects(t *testing.T) {
	ts := mustServer(t)
	c := ts.root(t)
	ctx := context.Background()
	mustBucket(t, c, "del")
	for i := 0; i < 5; i++ {
		mustPut(t, c, "del", fmt.Sprintf("k%d", i), []byte("x"), minio.PutObjectOptions{})
	}
	ch := make(chan minio.ObjectInfo, 4)
	for _, k := range []string{"k0", "k1", "k2", "never-existed"} {
		ch <- minio.ObjectInfo{Key: k}
	}
	close(ch)
	n := 0
	for res := range c.Client.RemoveObjectsWithResult(ctx, "del", ch, minio.RemoveObjectsOptions{}) {
		if res.Err != nil {
			t.Fatalf("%s: %v", res.ObjectName, res.Err)
		}
		n++
	}
	if n != 4 {
		t.Fatalf("%d results, want 4", n)
	}

	// Quiet mode answers only errors.
	body := []byte(`<Delete><Quiet>true</Quiet><Object><Key>k3</Key></Object><Object><Key>k4</Key><VersionId>v7</VersionId></Object></Delete>`)
	resp, out := do(t, ts.signedRequest(t, "POST", "/del?delete", body, sha256Hex(body), nil))
	if resp.StatusCode != 200 || strings.Contains(string(out), "<Deleted>") || !strings.Contains(string(out), "<Key>k4</Key><Code>NotImplemented</Code>") {
		t.Fatalf("quiet delete: %d %s", resp.StatusCode, out)
	}
	left, err := c.ListObjectsV2("del", "", "", "", "", 100)
	if err != nil || len(left.Contents) != 1 || left.Contents[0].Key != "k4" {
		t.Fatalf("left: %+v %v", left.Contents, err)
	}
	resp, out = do(t, ts.signedRequest(t, "POST", "/del?delete", []byte("<Delete>"), sha256Hex([]byte("<Delete>")), nil))
	wantXMLError(t, resp, out, 400, "MalformedXML")
}

func TestListObjects(t *testing.T) {
	ts := mustServer(t)
	c := ts.root(t)
	mustBucket(t, c, "list")
	keys := []string{"a", "b/1", "b/2", "b/c/3", "c d/x", "d", "e/1", "e/2", "f", "g%h", "ü/1", "z"}
	for _, k := range keys {
		mustPut(t, c, "list", k, []byte(k), minio.PutObjectOptions{})
	}
	wantTop := []string{"a", "b/", "c d/", "d", "e/", "f", "g%h", "z", "ü/"}
	for _, maxKeys := range []int{1, 2, 3, 1000} {
		t.Run(fmt.Sprintf("v2 delimiter max-keys %d", maxKeys), func(t *testing.T) {
			var got []string
			token := ""
			for pages := 0; ; pages++ {
				if pages > 20 {
					t.Fatal("too many pages")
				}
				res, err := c.ListObjectsV2("list", "", "", token, "/", maxKeys)
				if err != nil {
					t.Fatal(err)
				}
				if n := len(res.Contents) + len(res.CommonPrefixes); n > maxKeys {
					t.Fatalf("%d entries for max-keys %d", n, maxKeys)
				}
				for _, o := range res.Contents {
					got = append(got, o.Key)
				}
				for _, p := range res.CommonPrefixes {
					got = append(got, p.Prefix)
				}
				if !res.IsTruncated {
					break
				}
				token = res.NextContinuationToken
			}
			sort.Strings(got)
			if strings.Join(got, ",") != strings.Join(wantTop, ",") {
				t.Fatalf("got %q, want %q", got, wantTop)
			}
		})
	}
	t.Run("v2 prefix and start-after", func(t *testing.T) {
		res, err := c.ListObjectsV2("list", "b/", "b/1", "", "", 1000)
		if err != nil || len(res.Contents) != 2 || res.Contents[0].Key != "b/2" || res.Contents[1].Key != "b/c/3" {
			t.Fatalf("%+v %v", res.Contents, err)
		}
		res, err = c.ListObjectsV2("list", "b/", "", "", "/", 1000)
		if err != nil || len(res.Contents) != 2 || len(res.CommonPrefixes) != 1 || res.CommonPrefixes[0].Prefix != "b/c/" {
			t.Fatalf("%+v %+v %v", res.Contents, res.CommonPrefixes, err)
		}
	})
	t.Run("v1 marker pagination", func(t *testing.T) {
		var got []string
		marker := ""
		for {
			res, err := c.ListObjects("list", "", marker, "", 5)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range res.Contents {
				got = append(got, o.Key)
				marker = o.Key
			}
			if !res.IsTruncated {
				break
			}
			if res.NextMarker != "" {
				marker = res.NextMarker
			}
		}
		want := append([]string(nil), keys...)
		sort.Strings(want)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
	t.Run("high-level iterator", func(t *testing.T) {
		var got []string
		for o := range c.Client.ListObjects(context.Background(), "list", minio.ListObjectsOptions{Recursive: true, MaxKeys: 2}) {
			if o.Err != nil {
				t.Fatal(o.Err)
			}
			got = append(got, o.Key)
		}
		if len(got) != len(keys) {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("encoding-type url", func(t *testing.T) {
		resp, body := do(t, ts.signedRequest(t, "GET", "/list?list-type=2&prefix=c%20d%2F&encoding-type=url", nil, "", nil))
		if resp.StatusCode != 200 || !strings.Contains(string(body), "<Key>c%20d/x</Key>") || !strings.Contains(string(body), "<EncodingType>url</EncodingType>") {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})
	t.Run("bad continuation token", func(t *testing.T) {
		resp, body := do(t, ts.signedRequest(t, "GET", "/list?list-type=2&continuation-token=%25%25", nil, "", nil))
		wantXMLError(t, resp, body, 400, "InvalidArgument")
	})
	t.Run("missing bucket", func(t *testing.T) {
		_, err := c.ListObjectsV2("nolist", "", "", "", "", 10)
		wantCode(t, err, "NoSuchBucket")
	})
}

func TestMultipartUpload(t *testing.T) {
	ts := mustServer(t)
	c := ts.root(t)
	ctx := context.Background()
	mustBucket(t, c, "mpu")
	parts := [][]byte{
		bytes.Repeat([]byte("1"), s3api.MinPartSize),
		bytes.Repeat([]byte("2"), s3api.MinPartSize),
		[]byte("tail"),
	}
	id, err := c.NewMultipartUpload(ctx, "mpu", "big", minio.PutObjectOptions{ContentType: "application/x-big", UserMetadata: map[string]string{"Kind": "mpu"}})
	if err != nil {
		t.Fatal(err)
	}
	var complete []minio.CompletePart
	sum := md5.New()
	for i, p := range parts {
		op, err := c.PutObjectPart(ctx, "mpu", "big", id, i+1, bytes.NewReader(p), int64(len(p)), minio.PutObjectPartOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if op.ETag != md5Hex(p) {
			t.Fatalf("part %d etag %s", i+1, op.ETag)
		}
		raw, _ := hex.DecodeString(op.ETag)
		sum.Write(raw)
		complete = append(complete, minio.CompletePart{PartNumber: i + 1, ETag: op.ETag})
	}
	lp, err := c.ListObjectParts(ctx, "mpu", "big", id, 0, 2)
	if err != nil || len(lp.ObjectParts) != 2 || !lp.IsTruncated || lp.NextPartNumberMarker != 2 {
		t.Fatalf("list parts page 1: %+v %v", lp, err)
	}
	lp, err = c.ListObjectParts(ctx, "mpu", "big", id, 2, 2)
	if err != nil || len(lp.ObjectParts) != 1 || lp.IsTruncated || lp.ObjectParts[0].Size != 4 {
		t.Fatalf("list parts page 2: %+v %v", lp, err)
	}
	lu, err := c.ListMultipartUploads(ctx, "mpu", "", "", "", "", 10)
	if err != nil || len(lu.Uploads) != 1 || lu.Uploads[0].UploadID != id || lu.Uploads[0].Key != "big" {
		t.Fatalf("list uploads: %+v %v", lu, err)
	}

	// Rejected completions leave the upload intact.
	_, err = c.CompleteMultipartUpload(ctx, "mpu", "big", id, []minio.CompletePart{complete[1], complete[0], complete[2]}, minio.PutObjectOptions{})
	wantCode(t, err, "InvalidPartOrder")
	bad := append([]minio.CompletePart(nil), complete...)
	bad[1].ETag = md5Hex([]byte("other"))
	_, err = c.CompleteMultipartUpload(ctx, "mpu", "big", id, bad, minio.PutObjectOptions{})
	wantCode(t, err, "InvalidPart")
	_, err = c.CompleteMultipartUpload(ctx, "mpu", "big", id, append(complete, minio.CompletePart{PartNumber: 9, ETag: md5Hex(nil)}), minio.PutObjectOptions{})
	wantCode(t, err, "InvalidPart")

	ui, err := c.CompleteMultipartUpload(ctx, "mpu", "big", id, complete, minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantETag := hex.EncodeToString(sum.Sum(nil)) + "-3"
	if ui.ETag != wantETag {
		t.Fatalf("etag %s, want %s", ui.ETag, wantETag)
	}
	st, err := c.StatObject(ctx, "mpu", "big", minio.StatObjectOptions{})
	if err != nil || st.ETag != wantETag || st.Size != 2*s3api.MinPartSize+4 || st.ContentType != "application/x-big" || st.Metadata.Get("X-Amz-Meta-Kind") != "mpu" {
		t.Fatalf("stat: %+v %v", st, err)
	}
	got := mustGet(t, c, "mpu", "big")
	if !bytes.Equal(got, bytes.Join(parts, nil)) {
		t.Fatal("assembled data differs")
	}
	_, err = c.PutObjectPart(ctx, "mpu", "big", id, 1, bytes.NewReader([]byte("x")), 1, minio.PutObjectPartOptions{})
	wantCode(t, err, "NoSuchUpload")

	t.Run("entity too small", func(t *testing.T) {
		id, err := c.NewMultipartUpload(ctx, "mpu", "small", minio.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var cp []minio.CompletePart
		for i := 1; i <= 2; i++ {
			op, err := c.PutObjectPart(ctx, "mpu", "small", id, i, strings.NewReader("tiny"), 4, minio.PutObjectPartOptions{})
			if err != nil {
				t.Fatal(err)
			}
			cp = append(cp, minio.CompletePart{PartNumber: i, ETag: op.ETag})
		}
		_, err = c.CompleteMultipartUpload(ctx, "mpu", "small", id, cp, minio.PutObjectOptions{})
		wantCode(t, err, "EntityTooSmall")
		if err := c.AbortMultipartUpload(ctx, "mpu", "small", id); err != nil {
			t.Fatal(err)
		}
		wantCode(t, c.AbortMultipartUpload(ctx, "mpu", "small", id), "NoSuchUpload")
		_, err = c.ListObjectParts(ctx, "mpu", "small", id, 0, 10)
		wantCode(t, err, "NoSuchUpload")
	})
	t.Run("upload part copy", func(t *testing.T) {
		id, err := c.NewMultipartUpload(ctx, "mpu", "copied", minio.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p1, err := c.CopyObjectPart(ctx, "mpu", "big", "mpu", "copied", id, 1, 0, s3api.MinPartSize, nil)
		if err != nil {
			t.Fatal(err)
		}
		p2, err := c.CopyObjectPart(ctx, "mpu", "big", "mpu", "copied", id, 2, 2*s3api.MinPartSize, 4, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.CompleteMultipartUpload(ctx, "mpu", "copied", id, []minio.CompletePart{p1, p2}, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		if got := mustGet(t, c, "mpu", "copied"); !bytes.Equal(got, append(append([]byte(nil), parts[0]...), parts[2]...)) {
			t.Fatal("copied parts differ")
		}
	})
}

func TestPresignedURLs(t *testing.T) {
	ts := mustServer(t)
	c := ts.root(t)
	ctx := context.Background()
	mustBucket(t, c, "pre")
	mustPut(t, c, "pre", "obj", []byte("presigned body"), minio.PutObjectOptions{})

	getURL, err := c.Client.PresignedGetObject(ctx, "pre", "obj", time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := http.NewRequest("GET", getURL.String(), nil)
	resp, body := do(t, r)
	if resp.StatusCode != 200 || string(body) != "presigned body" {
		t.Fatalf("presigned get: %d %s", resp.StatusCode, body)
	}

	putURL, err := c.Client.PresignedPutObject(ctx, "pre", "uploaded", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	r, _ = http.NewRequest("PUT", putURL.String(), strings.NewReader("via presigned put"))
	resp, body = do(t, r)
	if resp.StatusCode != 200 {
		t.Fatalf("presigned put: %d %s", resp.StatusCode, body)
	}
	if got := mustGet(t, c, "pre", "uploaded"); string(got) != "via presigned put" {
		t.Fatalf("got %q", got)
	}

	t.Run("tampered", func(t *testing.T) {
		for name, mutate := range map[string]func(u *url.URL){
			"key":     func(u *url.URL) { u.Path = "/pre/uploaded" },
			"expires": func(u *url.URL) { q := u.Query(); q.Set("X-Amz-Expires", "7200"); u.RawQuery = q.Encode() },
			"signature": func(u *url.URL) {
				q := u.Query()
				s := []byte(q.Get("X-Amz-Signature"))
				s[0] ^= 1
				q.Set("X-Amz-Signature", string(s))
				u.RawQuery = q.Encode()
			},
		} {
			t.Run(name, func(t *testing.T) {
				u := *getURL
				mutate(&u)
				r, _ := http.NewRequest("GET", u.String(), nil)
				resp, body := do(t, r)
				wantXMLError(t, resp, body, 403, "SignatureDoesNotMatch")
			})
		}
	})
	t.Run("expired", func(t *testing.T) {
		short, err := c.Client.PresignedGetObject(ctx, "pre", "obj", time.Second, nil)
		if err != nil {
			t.Fatal(err)
		}
		ts.offset.Store(int64(time.Minute))
		defer ts.offset.Store(0)
		r, _ := http.NewRequest("GET", short.String(), nil)
		resp, body := do(t, r)
		wantXMLError(t, resp, body, 403, "AccessDenied")
	})
}

func TestAuthFailures(t *testing.T) {
	ts := mustServer(t)
	mustBucket(t, ts.root(t), "auth")
	ctx := context.Background()

	_, err := ts.client(t, testAccessKey, "wrong-secret", minio.BucketLookupPath).ListBuckets(ctx)
	wantCode(t, err, "SignatureDoesNotMatch")
	_, err = ts.client(t, "NOSUCHKEY", testSecret, minio.BucketLookupPath).ListBuckets(ctx)
	wantCode(t, err, "InvalidAccessKeyId")
	_, err = ts.client(t, "USER2KEY", "user2-secret-key", minio.BucketLookupPath).ListBuckets(ctx)
	if err != nil {
		t.Fatalf("second credential: %v", err)
	}

	ts.offset.Store(int64(20 * time.Minute))
	_, err = ts.root(t).ListBuckets(ctx)
	ts.offset.Store(0)
	wantCode(t, err, "RequestTimeTooSkewed")

	r, _ := http.NewRequest("GET", ts.srv.URL+"/auth", nil)
	resp, body := do(t, r)
	wantXMLError(t, resp, body, 403, "AccessDenied")
}

// TestStreamingCorruptedChunk sends a hand-built aws-chunked body (signed by
// minio-go's streaming signer) whose second chunk signature is corrupted.
func TestStreamingCorruptedChunk(t *testing.T) {
	ts := mustServer(t)
	c := ts.root(t)
	mustBucket(t, c, "stream")
	data := bytes.Repeat([]byte("s"), 150<<10) // three 64 KiB chunks

	build := func(t *testing.T, corrupt bool) *http.Request {
		r, _ := http.NewRequest("PUT", ts.srv.URL+"/stream/obj", bytes.NewReader(data))
		r = signer.StreamingSignV4(r, testAccessKey, testSecret, "", testRegion, int64(len(data)), time.Now().UTC(), sha256Hasher{sha256New()})
		encoded, err := io.ReadAll(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		if corrupt {
			first := bytes.Index(encoded, []byte("chunk-signature="))
			second := first + 1 + bytes.Index(encoded[first+1:], []byte("chunk-signature="))
			encoded[second+len("chunk-signature=")] ^= 1
		}
		r.Body = io.NopCloser(bytes.NewReader(encoded))
		r.ContentLength = int64(len(encoded))
		return r
	}
	resp, body := do(t, build(t, true))
	wantXMLError(t, resp, body, 403, "SignatureDoesNotMatch")
	_, err := c.StatObject(context.Background(), "stream", "obj", minio.StatObjectOptions{})
	wantCode(t, err, "NoSuchKey")

	resp, body = do(t, build(t, false))
	if resp.StatusCode != 200 {
		t.Fatalf("valid streaming put: %d %s", resp.StatusCode, body)
	}
	if got := mustGet(t, c, "stream", "obj"); !bytes.Equal(got, data) {
		t.Fatal("streamed data differs")
	}
}

func TestSignedPayloadMismatch(t *testing.T) {
	ts := mustServer(t)
	c := ts.root(t)
	mustBucket(t, c, "sha")
	body := []byte("the real body")
	resp, out := do(t, ts.signedRequest(t, "PUT", "/sha/obj", body, sha256Hex([]byte("another body")), nil))
	wantXMLError(t, resp, out, 400, "XAmzContentSHA256Mismatch")
	_, err := c.StatObject(context.Background(), "sha", "obj", minio.StatObjectOptions{})
	wantCode(t, err, "NoSuchKey")

	resp, out = do(t, ts.signedRequest(t, "PUT", "/sha/obj", body, sha256Hex(body), http.Header{"Content-Md5": {"AAAAAAAAAAAAAAAAAAAAAA=="}}))
	wantXMLError(t, resp, out, 400, "BadDigest")
	resp, out = do(t, ts.signedRequest(t, "PUT", "/sha/obj", body, sha256Hex(body), http.Header{"X-Amz-Meta-Big": {strings.Repeat("m", 2100)}}))
	wantXMLError(t, resp, out, 400, "MetadataTooLarge")
}

func TestLoadCredentialsFile(t *testing.T) {
	dir := t.TempDir()
	write := func(t *testing.T, content string) string {
		t.Helper()
		p := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_"))
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		content string
		want    map[string]string
		wantErr string
	}{
		{"ok", "# comment\n\nAK1 secret-one-1\n  AK2\tsecret-two-2  \n", map[string]string{"AK1": "secret-one-1", "AK2": "secret-two-2"}, ""},
		{"three fields", "AK1 secret-one-1\nAK2 a b\n", nil, "line 2"},
		{"duplicate", "AK1 secret-one-1\nAK1 secret-one-2\n", nil, "line 2: duplicate"},
		{"short secret", "AK1 short\n", nil, "line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s3api.LoadCredentialsFile(write(t, tt.content))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "secret-one") {
					t.Fatalf("error leaks a secret: %v", err)
				}
				return
			}
			if err != nil || fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got %v %v", got, err)
			}
		})
	}
	if _, err := s3api.LoadCredentialsFile(filepath.Join(dir, "missing")); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("missing file: %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}
