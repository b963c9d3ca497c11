package ossfake_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	alioss "github.com/aliyun/aliyun-oss-go-sdk/oss"

	"github.com/osprey-storage/osprey/backend/oss/ossfake"
)

const (
	keyID  = "LTAI5tFakeTest"
	secret = "fake-test-secret"
)

func mustFake(t *testing.T, mutate ...func(*ossfake.Config)) *ossfake.Server {
	t.Helper()
	cfg := ossfake.DefaultConfig()
	cfg.Credentials = map[string]string{keyID: secret, "LTAI5tOther": "other-secret"}
	for _, m := range mutate {
		m(&cfg)
	}
	f, err := ossfake.New(cfg)
	if err != nil {
		t.Fatalf("ossfake.New: %v", err)
	}
	t.Cleanup(f.Close)
	return f
}

func mustClient(t *testing.T, f *ossfake.Server, id, key string) *alioss.Client {
	t.Helper()
	c, err := alioss.New(f.URL(), id, key)
	if err != nil {
		t.Fatalf("alioss.New: %v", err)
	}
	return c
}

func mustBucket(t *testing.T, f *ossfake.Server, name string) *alioss.Bucket {
	t.Helper()
	c := mustClient(t, f, keyID, secret)
	if err := c.CreateBucket(name); err != nil {
		t.Fatalf("CreateBucket: %v", err)
	}
	b, err := c.Bucket(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func code(err error) string {
	var se alioss.ServiceError
	if errors.As(err, &se) {
		return se.Code
	}
	return ""
}

func sign(toSign string) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(toSign))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// TestSignatureByHand signs requests without the SDK, spelling out the V1
// string to sign, so the fake is checked against the protocol and not
// only against the SDK's reading of it.
func TestSignatureByHand(t *testing.T) {
	f := mustFake(t)
	mustBucket(t, f, "hand")
	body := []byte("hello")
	sum := md5.Sum(body)
	contentMD5 := base64.StdEncoding.EncodeToString(sum[:])
	date := time.Now().UTC().Format(http.TimeFormat)
	// Header names sort before joining: x-oss-meta-a < x-oss-meta-a-b.
	toSign := "PUT\n" + contentMD5 + "\ntext/plain\n" + date + "\n" +
		"x-oss-meta-a:1\nx-oss-meta-a-b:2\n" + "/hand/dir/k%20x?partNumber=1&uploadId=NOPE"
	send := func(signature string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodPut, f.URL()+"/hand/dir/k%2520x?uploadId=NOPE&partNumber=1&unsigned=1", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-MD5", contentMD5)
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Date", date)
		req.Header.Set("X-Oss-Meta-A-B", "2")
		req.Header.Set("x-oss-meta-a", " 1")
		req.Header.Set("Authorization", "OSS "+keyID+":"+signature)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	// A correct signature gets past authentication: the upload ID is
	// unknown, so the answer is NoSuchUpload.
	resp := send(sign(toSign))
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("correctly signed request: status %d, want 404 NoSuchUpload", resp.StatusCode)
	}

	resp = send(sign(strings.Replace(toSign, "/hand/", "/other/", 1)))
	defer resp.Body.Close()
	var e struct {
		Code              string
		StringToSign      string
		SignatureProvided string
		RequestID         string `xml:"RequestId"`
	}
	if err := xml.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusForbidden || e.Code != "SignatureDoesNotMatch" {
		t.Fatalf("bad signature: %d %s, want 403 SignatureDoesNotMatch", resp.StatusCode, e.Code)
	}
	if e.StringToSign != toSign {
		t.Fatalf("fake's string to sign:\n%q\nwant:\n%q", e.StringToSign, toSign)
	}
	if e.RequestID == "" || resp.Header.Get("x-oss-request-id") != e.RequestID {
		t.Errorf("request id %q, header %q", e.RequestID, resp.Header.Get("x-oss-request-id"))
	}
}

func TestAuthFailures(t *testing.T) {
	f := mustFake(t)
	mustBucket(t, f, "auth")
	late := mustFake(t, func(c *ossfake.Config) {
		c.Now = func() time.Time { return time.Now().Add(20 * time.Minute) }
	})
	tests := []struct {
		name string
		f    *ossfake.Server
		id   string
		key  string
		want string
	}{
		{"wrong secret", f, keyID, "wrong", "SignatureDoesNotMatch"},
		{"unknown key id", f, "LTAI5tNobody", secret, "InvalidAccessKeyId"},
		{"another account's bucket", f, "LTAI5tOther", "other-secret", "AccessDenied"},
		{"clock skew", late, keyID, secret, "RequestTimeTooSkewed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := mustClient(t, tt.f, tt.id, tt.key).Bucket("auth")
			if err != nil {
				t.Fatal(err)
			}
			err = b.PutObject("k", strings.NewReader("x"))
			if code(err) != tt.want {
				t.Fatalf("PutObject: %v, want %s", err, tt.want)
			}
		})
	}

	t.Run("anonymous", func(t *testing.T) {
		resp, err := http.Get(f.URL() + "/auth/k")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("status %d, want 403", resp.StatusCode)
		}
	})
	t.Run("v4 not implemented", func(t *testing.T) {
		c, err := alioss.New(f.URL(), keyID, secret, alioss.AuthVersion(alioss.AuthV4), alioss.Region("cn-hangzhou"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := c.Bucket("auth")
		if err := b.PutObject("k", strings.NewReader("x")); code(err) != "InvalidArgument" {
			t.Fatalf("V4 request: %v, want InvalidArgument", err)
		}
	})
	t.Run("presigned url", func(t *testing.T) {
		b := mustBucket(t, f, "presigned")
		if err := b.PutObject("k", strings.NewReader("signed")); err != nil {
			t.Fatal(err)
		}
		u, err := b.SignURL("k", alioss.HTTPGet, 60)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(got) != "signed" {
			t.Fatalf("presigned GET: %d %q", resp.StatusCode, got)
		}
		resp, err = http.Get(strings.Replace(u, "/k?", "/other?", 1))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("presigned URL for another key: %d, want 403", resp.StatusCode)
		}
	})
}

func TestHeadErrorInHeader(t *testing.T) {
	f := mustFake(t)
	b := mustBucket(t, f, "head")
	_, err := b.GetObjectDetailedMeta("missing")
	if code(err) != "NoSuchKey" {
		t.Fatalf("HEAD missing: %v, want NoSuchKey decoded from x-oss-err", err)
	}
}

func TestMultipartValidation(t *testing.T) {
	f := mustFake(t)
	b := mustBucket(t, f, "mpu")
	big := bytes.Repeat([]byte("a"), 100<<10)
	small := []byte("tail")

	upload := func(t *testing.T, parts ...[]byte) (alioss.InitiateMultipartUploadResult, []alioss.UploadPart) {
		t.Helper()
		imur, err := b.InitiateMultipartUpload("obj", alioss.Meta("md5", "m"))
		if err != nil {
			t.Fatal(err)
		}
		var out []alioss.UploadPart
		for i, p := range parts {
			up, err := b.UploadPart(imur, bytes.NewReader(p), int64(len(p)), i+1)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, up)
		}
		return imur, out
	}
	complete := func(imur alioss.InitiateMultipartUploadResult, parts []alioss.UploadPart) error {
		// Not b.CompleteMultipartUpload, which sorts the parts.
		type completeXML struct {
			XMLName xml.Name            `xml:"CompleteMultipartUpload"`
			Part    []alioss.UploadPart `xml:"Part"`
		}
		body, _ := xml.Marshal(completeXML{Part: parts})
		resp, err := b.Do("POST", imur.Key, map[string]any{"uploadId": imur.UploadID}, nil, bytes.NewReader(body), nil)
		if resp != nil {
			resp.Body.Close()
		}
		return err
	}

	tests := []struct {
		name  string
		parts [][]byte
		edit  func([]alioss.UploadPart) []alioss.UploadPart
		want  string
	}{
		{"misordered", [][]byte{big, big, small}, func(p []alioss.UploadPart) []alioss.UploadPart {
			return []alioss.UploadPart{p[1], p[0], p[2]}
		}, "InvalidPartOrder"},
		{"duplicate", [][]byte{big, small}, func(p []alioss.UploadPart) []alioss.UploadPart {
			return []alioss.UploadPart{p[0], p[0], p[1]}
		}, "InvalidPartOrder"},
		{"missing part", [][]byte{big, small}, func(p []alioss.UploadPart) []alioss.UploadPart {
			return append(p, alioss.UploadPart{PartNumber: 3, ETag: p[1].ETag})
		}, "InvalidPart"},
		{"wrong etag", [][]byte{big, small}, func(p []alioss.UploadPart) []alioss.UploadPart {
			p[1].ETag = `"00000000000000000000000000000000"`
			return p
		}, "InvalidPart"},
		{"small part", [][]byte{small, big}, nil, "EntityTooSmall"},
		{"empty list", [][]byte{big}, func([]alioss.UploadPart) []alioss.UploadPart { return nil }, "MalformedXML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			imur, parts := upload(t, tt.parts...)
			if tt.edit != nil {
				parts = tt.edit(parts)
			}
			if err := complete(imur, parts); code(err) != tt.want {
				t.Fatalf("complete: %v, want %s", err, tt.want)
			}
			if _, ok := f.Object("mpu", "obj"); ok {
				t.Fatal("a refused complete made the object visible")
			}
			if err := b.AbortMultipartUpload(imur); err != nil {
				t.Fatalf("abort: %v", err)
			}
			if err := b.AbortMultipartUpload(imur); code(err) != "NoSuchUpload" {
				t.Fatalf("second abort: %v, want NoSuchUpload", err)
			}
		})
	}

	t.Run("gap and unlisted part", func(t *testing.T) {
		imur, parts := upload(t, big, small, []byte("unlisted"))
		parts = []alioss.UploadPart{parts[0], parts[1]}
		if err := complete(imur, parts); err != nil {
			t.Fatalf("complete: %v", err)
		}
		obj, ok := f.Object("mpu", "obj")
		if !ok || !bytes.Equal(obj.Data, append(append([]byte(nil), big...), small...)) || obj.Meta["md5"] != "m" || !obj.Multipart {
			t.Fatalf("object = %v, %d bytes, meta %v", ok, len(obj.Data), obj.Meta)
		}
		if !strings.HasSuffix(obj.ETag, `-2"`) {
			t.Errorf("etag %s", obj.ETag)
		}
		if err := complete(imur, parts); code(err) != "NoSuchUpload" {
			t.Fatalf("complete twice: %v, want NoSuchUpload", err)
		}
	})
	t.Run("part for another key", func(t *testing.T) {
		imur, _ := upload(t)
		imur.Key = "elsewhere"
		if _, err := b.UploadPart(imur, bytes.NewReader(small), int64(len(small)), 1); code(err) != "NoSuchUpload" {
			t.Fatalf("UploadPart to another key: %v, want NoSuchUpload", err)
		}
	})
	t.Run("part number out of range", func(t *testing.T) {
		imur, _ := upload(t)
		if _, err := b.UploadPart(imur, bytes.NewReader(small), int64(len(small)), 10001); code(err) != "InvalidArgument" {
			t.Fatalf("UploadPart 10001: %v, want InvalidArgument", err)
		}
	})
}

func TestContentMD5Checked(t *testing.T) {
	f := mustFake(t)
	b := mustBucket(t, f, "digest")
	wrong := md5.Sum([]byte("other"))
	err := b.PutObject("k", strings.NewReader("data"), alioss.ContentMD5(base64.StdEncoding.EncodeToString(wrong[:])))
	if code(err) != "InvalidDigest" {
		t.Fatalf("PutObject with a wrong Content-MD5: %v, want InvalidDigest", err)
	}
	if _, ok := f.Object("digest", "k"); ok {
		t.Fatal("object stored despite the digest mismatch")
	}
}

func TestRangeBehaviour(t *testing.T) {
	f := mustFake(t)
	b := mustBucket(t, f, "range")
	if err := b.PutObject("k", strings.NewReader("0123456789")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		rng      string
		standard bool
		want     string
		wantCode string
	}{
		{"first bytes", "0-3", false, "0123", ""},
		{"open end", "7-", false, "789", ""},
		{"suffix", "-2", false, "89", ""},
		{"end clamped", "8-100", true, "89", ""},
		{"legacy unsatisfiable returns whole", "10-", false, "0123456789", ""},
		{"standard unsatisfiable", "10-", true, "", "InvalidRange"},
		{"malformed ignored", "x-y", true, "0123456789", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := []alioss.Option{alioss.NormalizedRange(tt.rng)}
			if tt.standard {
				opts = append(opts, alioss.RangeBehavior("standard"))
			}
			rc, err := b.GetObject("k", opts...)
			if tt.wantCode != "" {
				if code(err) != tt.wantCode {
					t.Fatalf("GetObject: %v, want %s", err, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if string(got) != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBuckets(t *testing.T) {
	f := mustFake(t)
	c := mustClient(t, f, keyID, secret)
	// The SDK refuses bad names itself; send them without its checks.
	for _, name := range []string{"ab", "-abc", "abc-", "Upper"} {
		resp, err := c.Conn.Do("PUT", name, "", map[string]any{}, nil, nil, 0, nil)
		if resp != nil {
			resp.Body.Close()
		}
		if code(err) != "InvalidBucketName" {
			t.Errorf("CreateBucket(%q): %v, want InvalidBucketName", name, err)
		}
	}
	b := mustBucket(t, f, "owned")
	if err := c.CreateBucket("owned"); code(err) != "BucketAlreadyExists" {
		t.Fatalf("second create: %v, want BucketAlreadyExists", err)
	}
	other := mustClient(t, f, "LTAI5tOther", "other-secret")
	if err := other.CreateBucket("owned"); code(err) != "BucketAlreadyExists" {
		t.Fatalf("create by another account: %v, want BucketAlreadyExists", err)
	}
	if _, err := other.GetBucketInfo("owned"); code(err) != "AccessDenied" {
		t.Fatalf("bucket info by another account: %v, want AccessDenied", err)
	}
	if info, err := c.GetBucketInfo("owned"); err != nil || info.BucketInfo.Name != "owned" {
		t.Fatalf("bucket info: %+v, %v", info, err)
	}
	if err := b.PutObject("k", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteBucket("owned"); code(err) != "BucketNotEmpty" {
		t.Fatalf("delete non-empty: %v, want BucketNotEmpty", err)
	}
	if err := b.DeleteObject("k"); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteObject("k"); err != nil {
		t.Fatalf("deleting a missing key: %v", err)
	}
	if err := c.DeleteBucket("owned"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetObject("k"); code(err) != "NoSuchBucket" {
		t.Fatalf("get from a deleted bucket: %v, want NoSuchBucket", err)
	}
	res, err := c.ListBuckets()
	if err != nil || len(res.Buckets) != 0 {
		t.Fatalf("ListBuckets: %+v, %v", res, err)
	}
}

func TestCopyObject(t *testing.T) {
	f := mustFake(t)
	b := mustBucket(t, f, "copy")
	if err := b.PutObject("a b+c", strings.NewReader("payload"), alioss.Meta("x", "1")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CopyObject("a b+c", "dst"); err != nil {
		t.Fatalf("copy: %v", err)
	}
	if obj, _ := f.Object("copy", "dst"); string(obj.Data) != "payload" || obj.Meta["x"] != "1" {
		t.Fatalf("copied object %q meta %v", obj.Data, obj.Meta)
	}
	if _, err := b.CopyObject("a b+c", "a b+c"); code(err) != "InvalidArgument" {
		t.Fatalf("copy onto itself without REPLACE: %v, want InvalidArgument", err)
	}
	if _, err := b.CopyObject("a b+c", "a b+c", alioss.MetadataDirective(alioss.MetaReplace),
		alioss.Meta("y", "2"), alioss.CopySourceIfMatch(`"wrong"`)); code(err) != "PreconditionFailed" {
		t.Fatalf("copy with a failing if-match: %v, want PreconditionFailed", err)
	}
	src, _ := f.Object("copy", "a b+c")
	if _, err := b.CopyObject("a b+c", "a b+c", alioss.MetadataDirective(alioss.MetaReplace),
		alioss.Meta("y", "2"), alioss.CopySourceIfMatch(src.ETag)); err != nil {
		t.Fatalf("copy onto itself with REPLACE: %v", err)
	}
	if obj, _ := f.Object("copy", "a b+c"); obj.Meta["y"] != "2" || obj.Meta["x"] != "" {
		t.Fatalf("replaced meta %v", obj.Meta)
	}
}

func TestFaultsAndCalls(t *testing.T) {
	f := mustFake(t)
	b := mustBucket(t, f, "faults")
	if err := b.PutObject("k", strings.NewReader(strings.Repeat("z", 4096))); err != nil {
		t.Fatal(err)
	}
	f.ResetCalls()
	f.SetFault(func(c ossfake.Call) ossfake.Fault {
		switch c.Op {
		case "HeadObject":
			return ossfake.FaultUnavailable
		case "DeleteObject":
			return ossfake.FaultDropConnection
		case "GetObject":
			return ossfake.FaultTruncateBody
		}
		return ossfake.FaultNone
	})
	if _, err := b.GetObjectDetailedMeta("k"); code(err) != "ServiceUnavailable" {
		t.Errorf("HEAD: %v, want ServiceUnavailable", err)
	}
	if err := b.DeleteObject("k"); err == nil || code(err) != "" {
		t.Errorf("DELETE on a dropped connection: %v, want a transport error", err)
	}
	rc, err := b.GetObject("k")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, rc)
	rc.Close()
	if err == nil || n != 2048 {
		t.Errorf("truncated GET read %d bytes, err %v", n, err)
	}
	calls := f.Calls()
	if len(calls) < 3 || calls[0].Op != "HeadObject" || calls[0].Status != 503 || calls[0].ErrorCode != "ServiceUnavailable" {
		t.Errorf("calls = %+v", calls)
	}
	f.SetFault(nil)
	if _, ok := f.Object("faults", "k"); !ok {
		t.Error("a dropped DELETE removed the object")
	}
}

func TestVirtualHosted(t *testing.T) {
	f := mustFake(t)
	tr := &http.Transport{DialContext: f.DialContext}
	c, err := alioss.New("http://oss-cn-hangzhou.aliyuncs.com", keyID, secret, alioss.HTTPClient(&http.Client{Transport: tr}))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CreateBucket("vhost"); err != nil {
		t.Fatal(err)
	}
	b, _ := c.Bucket("vhost")
	if err := b.PutObject("x/y", strings.NewReader("v")); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Object("vhost", "x/y"); !ok {
		t.Fatal("virtual-hosted PUT not routed to the bucket")
	}
	for _, call := range f.Calls() {
		if call.Bucket != "vhost" {
			t.Errorf("call %+v not routed to vhost", call)
		}
	}
}
