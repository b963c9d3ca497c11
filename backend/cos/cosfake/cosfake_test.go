package cosfake_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	cossdk "github.com/tencentyun/cos-go-sdk-v5"

	"github.com/osprey-storage/osprey/backend/cos/cosfake"
)

const (
	secretID  = "AKIDFakeTest"
	secretKey = "fake-test-key"
	otherID   = "AKIDOther"
	otherKey  = "other-key"
	appID     = "1250000000"
	region    = "ap-nanjing"
)

func mustFake(t *testing.T, mutate ...func(*cosfake.Config)) *cosfake.Server {
	t.Helper()
	cfg := cosfake.DefaultConfig()
	cfg.Credentials = map[string]string{secretID: secretKey, otherID: otherKey}
	for _, m := range mutate {
		m(&cfg)
	}
	f, err := cosfake.New(cfg)
	if err != nil {
		t.Fatalf("cosfake.New: %v", err)
	}
	t.Cleanup(f.Close)
	return f
}

func host(bucket string) string { return bucket + "-" + appID + ".cos." + region + ".myqcloud.com" }

// client returns an SDK client for bucket (without the appid suffix) that
// sends to the fake with the bucket's host name.
func client(t *testing.T, f *cosfake.Server, bucket, id, key string) *cossdk.Client {
	t.Helper()
	u, _ := url.Parse(f.URL())
	c := cossdk.NewClient(&cossdk.BaseURL{BucketURL: u, ServiceURL: u}, &http.Client{
		Transport: &cossdk.AuthorizationTransport{SecretID: id, SecretKey: key},
	})
	c.Host = host(bucket)
	c.Conf.RetryOpt.Count = 1
	return c
}

func mustBucket(t *testing.T, f *cosfake.Server, bucket string) *cossdk.Client {
	t.Helper()
	c := client(t, f, bucket, secretID, secretKey)
	if _, err := c.Bucket.Put(context.Background(), nil); err != nil {
		t.Fatalf("Bucket.Put: %v", err)
	}
	return c
}

func code(err error) string {
	var er *cossdk.ErrorResponse
	if errors.As(err, &er) {
		if er.Code == "" && er.Response != nil {
			return fmt.Sprint(er.Response.StatusCode)
		}
		return er.Code
	}
	return ""
}

func hmacHex(key, msg string) string {
	m := hmac.New(sha1.New, []byte(key))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

// TestSignatureByHand signs a request without the SDK, spelling out the
// HttpString, so the fake is checked against the documented algorithm and
// not only against the SDK's implementation of it.
func TestSignatureByHand(t *testing.T) {
	f := mustFake(t)
	mustBucket(t, f, "hand")
	now := time.Now().Unix()
	window := fmt.Sprintf("%d;%d", now-10, now+600)
	h := host("hand")
	// Headers and parameters sorted by (lower-case) name, values
	// percent-encoded; "content-type" sorts before "content-type-x".
	httpString := "put\n/dir/a b.txt\n" +
		"partnumber=1&uploadid=NO%2FPE\n" +
		"content-type=text%2Fplain&content-type-x=y&host=" + h + "&x-cos-meta-a=a%20%C3%A9\n"
	sum := sha1.Sum([]byte(httpString))
	stringToSign := "sha1\n" + window + "\n" + hex.EncodeToString(sum[:]) + "\n"
	signature := hmacHex(hmacHex(secretKey, window), stringToSign)

	send := func(signature string, tamper func(*http.Request)) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodPut, f.URL()+"/dir/a%20b.txt?partNumber=1&uploadId=NO%2FPE", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = h
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Content-Type-X", "y")
		req.Header.Set("x-cos-meta-a", "a é")
		req.Header.Set("Authorization", "q-sign-algorithm=sha1&q-ak="+secretID+"&q-sign-time="+window+
			"&q-key-time="+window+"&q-header-list=content-type;content-type-x;host;x-cos-meta-a"+
			"&q-url-param-list=partnumber;uploadid&q-signature="+signature)
		if tamper != nil {
			tamper(req)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	tests := []struct {
		name      string
		signature string
		tamper    func(*http.Request)
		want      int
	}{
		// Past authentication, the upload ID is unknown: 404.
		{"correct", signature, nil, http.StatusNotFound},
		{"unsigned header changed", signature, func(r *http.Request) { r.Header.Set("User-Agent", "x") }, http.StatusNotFound},
		{"signed header changed", signature, func(r *http.Request) { r.Header.Set("Content-Type-X", "z") }, http.StatusForbidden},
		{"host changed", signature, func(r *http.Request) { r.Host = host("hand2") }, http.StatusForbidden},
		{"path changed", signature, func(r *http.Request) { r.URL.Path = "/dir/a c.txt"; r.URL.RawPath = "" }, http.StatusForbidden},
		{"signed param changed", signature, func(r *http.Request) { r.URL.RawQuery = "partNumber=2&uploadId=NO%2FPE" }, http.StatusForbidden},
		{"wrong signature", hmacHex("wrong", stringToSign), nil, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if resp := send(tt.signature, tt.tamper); resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

func TestAuthFailures(t *testing.T) {
	f := mustFake(t)
	mustBucket(t, f, "auth")
	late := mustFake(t, func(c *cosfake.Config) {
		c.Now = func() time.Time { return time.Now().Add(2 * time.Hour) } // past the SDK's 1h signature
	})
	tests := []struct {
		name    string
		f       *cosfake.Server
		id, key string
		want    string
	}{
		{"wrong key", f, secretID, "wrong", "SignatureDoesNotMatch"},
		{"unknown id", f, "AKIDNobody", secretKey, "InvalidAccessKeyId"},
		{"another account's bucket", f, otherID, otherKey, "AccessDenied"},
		{"expired signature", late, secretID, secretKey, "AccessDenied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := client(t, tt.f, "auth", tt.id, tt.key)
			_, err := c.Object.Put(context.Background(), "k", strings.NewReader("x"), nil)
			if code(err) != tt.want {
				t.Fatalf("Put: %v, want %s", err, tt.want)
			}
		})
	}
	t.Run("anonymous", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, f.URL()+"/k", nil)
		req.Host = host("auth")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Code, Resource string }
		_ = xml.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || e.Code != "AccessDenied" || resp.Header.Get("x-cos-request-id") == "" {
			t.Fatalf("status %d code %q", resp.StatusCode, e.Code)
		}
	})
	t.Run("presigned url", func(t *testing.T) {
		c := client(t, f, "auth", secretID, secretKey)
		if _, err := c.Object.Put(context.Background(), "p", strings.NewReader("signed"), nil); err != nil {
			t.Fatal(err)
		}
		// Presign against the real host name, then send it to the fake.
		real, _ := url.Parse("https://" + host("auth"))
		pc := cossdk.NewClient(&cossdk.BaseURL{BucketURL: real}, nil)
		u, err := pc.Object.GetPresignedURL(context.Background(), http.MethodGet, "p", secretID, secretKey, time.Minute, nil)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, f.URL()+u.RequestURI(), nil)
		req.Host = host("auth")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(got) != "signed" {
			t.Fatalf("presigned GET: %d %q", resp.StatusCode, got)
		}
	})
}

func TestRouting(t *testing.T) {
	f := mustFake(t)
	mustBucket(t, f, "route")
	u, _ := url.Parse(f.URL())
	for _, tt := range []struct {
		host string
		want string
	}{
		{"127.0.0.1", "InvalidURI"},
		{"route-" + appID + ".cos.ap-beijing.myqcloud.com", "NoSuchBucket"},
		{"missing-" + appID + ".cos." + region + ".myqcloud.com", "NoSuchBucket"},
	} {
		c := cossdk.NewClient(&cossdk.BaseURL{BucketURL: u}, &http.Client{
			Transport: &cossdk.AuthorizationTransport{SecretID: secretID, SecretKey: secretKey},
		})
		c.Host = tt.host
		c.Conf.RetryOpt.Count = 1
		if _, err := c.Object.Put(context.Background(), "k", strings.NewReader("x"), nil); code(err) != tt.want {
			t.Errorf("Host %s: %v, want %s", tt.host, err, tt.want)
		}
	}
}

func TestBuckets(t *testing.T) {
	f := mustFake(t)
	ctx := context.Background()
	for _, name := range []string{"noappid", "-lead", "upper-Case", strings.Repeat("a", 30)} {
		c := client(t, f, name, secretID, secretKey)
		if name == "noappid" {
			c.Host = "noappid.cos." + region + ".myqcloud.com"
		}
		if _, err := c.Bucket.Put(ctx, nil); code(err) != "InvalidBucketName" {
			t.Errorf("Put bucket %q: %v, want InvalidBucketName", name, err)
		}
	}
	c := mustBucket(t, f, "mine")
	if _, err := c.Bucket.Put(ctx, nil); code(err) != "BucketAlreadyOwnedByYou" {
		t.Fatalf("second Put: %v, want BucketAlreadyOwnedByYou", err)
	}
	other := client(t, f, "mine", otherID, otherKey)
	if _, err := other.Bucket.Put(ctx, nil); code(err) != "BucketAlreadyExists" {
		t.Fatalf("Put by another account: %v, want BucketAlreadyExists", err)
	}
	if _, err := other.Bucket.Head(ctx); code(err) != "403" {
		t.Fatalf("Head by another account: %v, want 403", err)
	}
	if _, err := client(t, f, "absent", secretID, secretKey).Bucket.Head(ctx); code(err) != "404" {
		t.Fatalf("Head of a missing bucket: %v, want 404", err)
	}
	if _, err := c.Bucket.Head(ctx); err != nil {
		t.Fatalf("Head: %v", err)
	}
	if _, err := c.Object.Put(ctx, "k", strings.NewReader("x"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Bucket.Delete(ctx); code(err) != "BucketNotEmpty" {
		t.Fatalf("Delete non-empty: %v, want BucketNotEmpty", err)
	}
	for range 2 {
		if _, err := c.Object.Delete(ctx, "k"); err != nil {
			t.Fatalf("Delete object: %v", err)
		}
	}
	if _, err := c.Bucket.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	svc := client(t, f, "", secretID, secretKey)
	svc.Host = "service.cos.myqcloud.com"
	res, _, err := svc.Service.Get(ctx)
	if err != nil || len(res.Buckets) != 0 {
		t.Fatalf("Service.Get: %+v, %v", res, err)
	}
}

func TestMultipartValidation(t *testing.T) {
	f := mustFake(t)
	c := mustBucket(t, f, "mpu")
	ctx := context.Background()
	big := bytes.Repeat([]byte("a"), 1<<20)
	small := []byte("tail")
	upload := func(t *testing.T, parts ...[]byte) (string, []cossdk.Object) {
		t.Helper()
		res, _, err := c.Object.InitiateMultipartUpload(ctx, "obj", nil)
		if err != nil {
			t.Fatal(err)
		}
		var out []cossdk.Object
		for i, p := range parts {
			resp, err := c.Object.UploadPart(ctx, "obj", res.UploadID, i+1, bytes.NewReader(p), nil)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, cossdk.Object{PartNumber: i + 1, ETag: resp.Header.Get("ETag")})
		}
		return res.UploadID, out
	}
	tests := []struct {
		name  string
		parts [][]byte
		edit  func([]cossdk.Object) []cossdk.Object
		want  string
	}{
		{"misordered", [][]byte{big, big, small}, func(p []cossdk.Object) []cossdk.Object {
			return []cossdk.Object{p[1], p[0], p[2]}
		}, "InvalidPartOrder"},
		{"duplicate", [][]byte{big, small}, func(p []cossdk.Object) []cossdk.Object {
			return []cossdk.Object{p[0], p[0], p[1]}
		}, "InvalidPartOrder"},
		{"missing part", [][]byte{big, small}, func(p []cossdk.Object) []cossdk.Object {
			return append(p, cossdk.Object{PartNumber: 3, ETag: p[1].ETag})
		}, "InvalidPart"},
		{"gap", [][]byte{big, big, small}, func(p []cossdk.Object) []cossdk.Object {
			return []cossdk.Object{p[0], p[2]}
		}, "InvalidPart"},
		{"wrong etag", [][]byte{big, small}, func(p []cossdk.Object) []cossdk.Object {
			p[1].ETag = `"00000000000000000000000000000000"`
			return p
		}, "InvalidPart"},
		{"small part", [][]byte{small, big}, nil, "EntityTooSmall"},
		{"empty list", [][]byte{big}, func([]cossdk.Object) []cossdk.Object { return nil }, "MalformedXML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, parts := upload(t, tt.parts...)
			if tt.edit != nil {
				parts = tt.edit(parts)
			}
			_, _, err := c.Object.CompleteMultipartUpload(ctx, "obj", id, &cossdk.CompleteMultipartUploadOptions{Parts: parts})
			if code(err) != tt.want {
				t.Fatalf("complete: %v, want %s", err, tt.want)
			}
			if _, ok := f.Object("mpu-"+appID, "obj"); ok {
				t.Fatal("a refused complete made the object visible")
			}
			if _, err := c.Object.AbortMultipartUpload(ctx, "obj", id); err != nil {
				t.Fatalf("abort: %v", err)
			}
			if _, err := c.Object.AbortMultipartUpload(ctx, "obj", id); code(err) != "NoSuchUpload" {
				t.Fatalf("second abort: %v, want NoSuchUpload", err)
			}
		})
	}
	t.Run("complete", func(t *testing.T) {
		id, parts := upload(t, big, small)
		res, _, err := c.Object.CompleteMultipartUpload(ctx, "obj", id, &cossdk.CompleteMultipartUploadOptions{Parts: parts})
		if err != nil {
			t.Fatal(err)
		}
		obj, ok := f.Object("mpu-"+appID, "obj")
		if !ok || len(obj.Data) != len(big)+len(small) || !obj.Multipart || res.ETag != obj.ETag || !strings.HasSuffix(obj.ETag, `-2"`) {
			t.Fatalf("object %v %d bytes etag %s (result %s)", ok, len(obj.Data), obj.ETag, res.ETag)
		}
	})
}

func TestObjects(t *testing.T) {
	f := mustFake(t)
	c := mustBucket(t, f, "obj")
	ctx := context.Background()
	meta := http.Header{"x-cos-meta-md5": {"abc"}}
	if _, err := c.Object.Put(ctx, "a b+c", strings.NewReader("0123456789"), &cossdk.ObjectPutOptions{
		ObjectPutHeaderOptions: &cossdk.ObjectPutHeaderOptions{XCosMetaXXX: &meta, ContentMD5: "bad"},
	}); code(err) != "InvalidDigest" {
		t.Fatalf("Put with a malformed Content-MD5: %v, want InvalidDigest", err)
	}
	// The SDK checks the CRC-64 the fake returns.
	if _, err := c.Object.Put(ctx, "a b+c", strings.NewReader("0123456789"), &cossdk.ObjectPutOptions{
		ObjectPutHeaderOptions: &cossdk.ObjectPutHeaderOptions{XCosMetaXXX: &meta},
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Object.Head(ctx, "a b+c", nil)
	if err != nil || resp.Header.Get("x-cos-meta-md5") != "abc" || resp.Header.Get("Content-Length") != "10" {
		t.Fatalf("Head: %v %v", err, resp)
	}
	for _, tt := range []struct {
		rng, want, code string
	}{
		{"bytes=2-4", "234", ""},
		{"bytes=8-", "89", ""},
		{"bytes=-3", "789", ""},
		{"bytes=5-100", "56789", ""},
		{"bytes=10-", "", "InvalidRange"},
		{"bytes=-0", "", "InvalidRange"},
	} {
		resp, err := c.Object.Get(ctx, "a b+c", &cossdk.ObjectGetOptions{Range: tt.rng})
		if tt.code != "" {
			if code(err) != tt.code {
				t.Errorf("Range %s: %v, want %s", tt.rng, err, tt.code)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Range %s: %v", tt.rng, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(got) != tt.want || resp.StatusCode != http.StatusPartialContent {
			t.Errorf("Range %s: %d %q, want 206 %q", tt.rng, resp.StatusCode, got, tt.want)
		}
	}
	if _, err := c.Object.Head(ctx, "missing", nil); code(err) != "404" {
		t.Fatalf("Head missing: %v, want 404", err)
	}

	src := host("obj") + "/a b+c"
	if _, _, err := c.Object.Copy(ctx, "a b+c", src, nil); code(err) != "InvalidRequest" {
		t.Fatalf("copy onto itself without Replaced: %v, want InvalidRequest", err)
	}
	if _, _, err := c.Object.Copy(ctx, "a b+c", src, &cossdk.ObjectCopyOptions{ObjectCopyHeaderOptions: &cossdk.ObjectCopyHeaderOptions{
		XCosMetadataDirective: "Replaced", XCosCopySourceIfMatch: `"nope"`,
	}}); code(err) != "PreconditionFailed" {
		t.Fatalf("copy with a failing If-Match: %v, want PreconditionFailed", err)
	}
	repl := http.Header{"x-cos-meta-md5": {"def"}}
	if _, _, err := c.Object.Copy(ctx, "a b+c", src, &cossdk.ObjectCopyOptions{ObjectCopyHeaderOptions: &cossdk.ObjectCopyHeaderOptions{
		XCosMetadataDirective: "Replaced", XCosMetaXXX: &repl,
	}}); err != nil {
		t.Fatalf("copy with Replaced: %v", err)
	}
	if obj, _ := f.Object("obj-"+appID, "a b+c"); obj.Meta["md5"] != "def" || string(obj.Data) != "0123456789" {
		t.Fatalf("after copy: meta %v data %q", obj.Meta, obj.Data)
	}
}

func TestFaults(t *testing.T) {
	f := mustFake(t)
	c := mustBucket(t, f, "faults")
	ctx := context.Background()
	if _, err := c.Object.Put(ctx, "k", strings.NewReader(strings.Repeat("z", 4096)), nil); err != nil {
		t.Fatal(err)
	}
	f.ResetCalls()
	f.SetFault(func(call cosfake.Call) cosfake.Fault {
		switch call.Op {
		case "HeadObject":
			return cosfake.FaultInternalError
		case "DeleteObject":
			return cosfake.FaultDropConnection
		case "GetObject":
			return cosfake.FaultTruncateBody
		}
		return cosfake.FaultNone
	})
	if _, err := c.Object.Head(ctx, "k", nil); code(err) != "500" {
		t.Errorf("HEAD: %v, want 500", err)
	}
	if _, err := c.Object.Delete(ctx, "k"); err == nil || code(err) != "" {
		t.Errorf("DELETE on a dropped connection: %v, want a transport error", err)
	}
	resp, err := c.Object.Get(ctx, "k", nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil || n != 2048 {
		t.Errorf("truncated GET read %d bytes, err %v", n, err)
	}
	calls := f.Calls()
	if len(calls) < 3 || calls[0].Op != "HeadObject" || calls[0].Status != 500 || calls[0].ErrorCode != "InternalError" {
		t.Errorf("calls = %+v", calls)
	}
}
