package fakestore

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// newTestCore starts a core with a minimal third dialect: path-style
// addressing, "Authorization: TEST <id>:<secret>" and a plain-text error
// body. It is all a provider adds to the core.
func newTestCore(t *testing.T) *Core {
	t.Helper()
	cfg := Config{Credentials: map[string]string{"id": "secret", "other": "x"}, MinPartSize: 4, MaxPartNumber: 100, MaxClockSkew: time.Minute}
	c, err := New(cfg, Dialect{
		Name:            "testfake",
		HeaderPrefix:    "x-test-",
		Server:          "test",
		BadDigestCode:   "BadDigest",
		ContiguousParts: true,
		NewRequestID:    func(seq uint64) string { return strconv.FormatUint(seq, 10) },
		NewUploadID:     func(sum [md5.Size]byte, _ time.Time) string { return hex.EncodeToString(sum[:]) },
		ValidBucketName: func(name string) bool { return name != "" && !strings.Contains(name, "_") },
		ValidKey:        func(string) *Error { return nil },
		Location:        func(bucket, key string) string { return "/" + bucket + "/" + key },
		Classify: func(r *http.Request) *Request {
			q := r.URL.Query()
			bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
			op := r.Method + map[bool]string{true: "Bucket", false: "Object"}[key == ""]
			switch {
			case op == "PUTObject" && q.Has("partNumber"):
				op = "UploadPart"
			case op == "POSTObject" && q.Has("uploads"):
				op = "InitiateMultipartUpload"
			case op == "POSTObject":
				op = "CompleteMultipartUpload"
			case op == "DELETEObject" && q.Has("uploadId"):
				op = "AbortMultipartUpload"
			}
			if name, ok := map[string]string{"PUTBucket": "PutBucket", "HEADBucket": "HeadBucket", "DELETEBucket": "DeleteBucket",
				"PUTObject": "PutObject", "GETObject": "GetObject", "DELETEObject": "DeleteObject"}[op]; ok {
				op = name
			}
			n, _ := strconv.Atoi(q.Get("partNumber"))
			return &Request{Call: Call{Op: op, Bucket: bucket, Key: key, PartNumber: n, UploadID: q.Get("uploadId")},
				BucketName: bucket, Key: key, Query: q}
		},
		Authenticate: func(r *http.Request, _ *Request) (string, *Error) {
			id, secret, _ := strings.Cut(strings.TrimPrefix(r.Header.Get("Authorization"), "TEST "), ":")
			if s, ok := cfg.Credentials[id]; !ok || s != secret {
				return "", &Error{Status: http.StatusForbidden, Code: "SignatureDoesNotMatch"}
			}
			return id, nil
		},
		Serve: func(w http.ResponseWriter, r *http.Request, req *Request) *Error {
			if req.Call.Op != "GetObject" {
				return req.NotImplemented()
			}
			o, e := req.FindObject()
			if e != nil {
				return e
			}
			body, status, e := req.SelectRange(w, r, o, true)
			if e != nil {
				return e
			}
			req.SetObjectHeaders(w.Header(), o)
			return req.WriteBody(w, r, status, body)
		},
		WriteError: func(w http.ResponseWriter, _ *http.Request, _ string, e *Error) {
			w.WriteHeader(e.Status)
			_, _ = io.WriteString(w, e.Code)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// do sends a request as "id" and returns the status and body (the error
// code for errors).
func do(t *testing.T, c *Core, method, path, body string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, c.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "TEST id:secret")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out), resp.Header
}

func TestThirdDialect(t *testing.T) {
	c := newTestCore(t)
	if st, body, _ := do(t, c, "PUT", "/b_bad", ""); st != 400 || body != "InvalidBucketName" {
		t.Fatalf("bad bucket name: %d %s", st, body)
	}
	if st, _, _ := do(t, c, "PUT", "/b", ""); st != 200 {
		t.Fatalf("PutBucket: %d", st)
	}
	if st, body, _ := do(t, c, "PUT", "/b", ""); st != 409 || body != "BucketAlreadyExists" {
		t.Fatalf("PutBucket again: %d %s", st, body)
	}
	sum := md5.Sum([]byte("hello world"))
	st, _, h := do(t, c, "PUT", "/b/k", "hello world", "Content-MD5", base64.StdEncoding.EncodeToString(sum[:]), "x-test-meta-Md5", "m")
	if st != 200 || h.Get("ETag") != `"`+hex.EncodeToString(sum[:])+`"` || h.Get("x-test-hash-crc64ecma") == "" {
		t.Fatalf("PutObject: %d %v", st, h)
	}
	if st, body, _ := do(t, c, "PUT", "/b/k2", "hello", "Content-MD5", base64.StdEncoding.EncodeToString(sum[:])); st != 400 || body != "BadDigest" {
		t.Fatalf("wrong Content-MD5: %d %s", st, body)
	}
	if st, body, h := do(t, c, "GET", "/b/k", "", "Range", "bytes=6-"); st != 206 || body != "world" || h.Get("x-test-meta-md5") != "m" {
		t.Fatalf("ranged GET: %d %q %v", st, body, h)
	}
	if st, body, h := do(t, c, "GET", "/b/k", "", "Range", "bytes=11-"); st != 416 || body != "InvalidRange" || h.Get("Content-Range") != "bytes */11" {
		t.Fatalf("unsatisfiable GET: %d %q %v", st, body, h)
	}

	// Multipart: parts below MinPartSize but the last, gaps, wrong ETags.
	st, body, _ := do(t, c, "POST", "/b/big?uploads", "")
	id := between(body, "<UploadId>", "</UploadId>")
	if st != 200 || id == "" {
		t.Fatalf("Initiate: %d %s", st, body)
	}
	etags := map[int]string{}
	for n, p := range map[int]string{1: "abcd", 2: "ef", 3: "ghij", 5: "zz"} {
		st, _, h := do(t, c, "PUT", fmt.Sprintf("/b/big?partNumber=%d&uploadId=%s", n, id), p)
		if st != 200 {
			t.Fatalf("part %d: %d", n, st)
		}
		etags[n] = h.Get("ETag")
	}
	complete := func(nums ...int) (int, string) {
		var b bytes.Buffer
		b.WriteString("<CompleteMultipartUpload>")
		for _, n := range nums {
			fmt.Fprintf(&b, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>", n, etags[n])
		}
		b.WriteString("</CompleteMultipartUpload>")
		st, body, _ := do(t, c, "POST", "/b/big?uploadId="+id, b.String())
		return st, body
	}
	for _, tt := range []struct {
		nums []int
		want string
	}{
		{[]int{2, 1}, "InvalidPartOrder"},
		{[]int{0, 1}, "InvalidPartOrder"},
		{[]int{1, 3}, "InvalidPart"}, // a gap, refused by this dialect
		{[]int{1, 4}, "InvalidPart"},
		{[]int{2, 3}, "EntityTooSmall"},
	} {
		if st, body := complete(tt.nums...); st != 400 || body != tt.want {
			t.Errorf("complete %v: %d %s, want %s", tt.nums, st, body, tt.want)
		}
	}
	if st, body := complete(1, 2); st != 200 || !strings.Contains(body, `-2&#34;</ETag>`) {
		t.Fatalf("complete: %d %s", st, body)
	}
	if o, ok := c.Object("b", "big"); !ok || string(o.Data) != "abcdef" || !o.Multipart || c.Uploads("b") != 0 {
		t.Fatalf("stored %+v %v, %d uploads left", o, ok, c.Uploads("b"))
	}
	if st, body, _ := do(t, c, "DELETE", "/b", ""); st != 409 || body != "BucketNotEmpty" {
		t.Fatalf("DeleteBucket non-empty: %d %s", st, body)
	}

	// Faults and the call log.
	c.ResetCalls()
	c.SetFault(func(call Call) Fault {
		if call.Key == "k" {
			return FaultUnavailable
		}
		return FaultNone
	})
	if st, body, _ := do(t, c, "GET", "/b/k", ""); st != 503 || body != "ServiceUnavailable" {
		t.Fatalf("fault: %d %s", st, body)
	}
	c.SetFault(nil)
	if calls := c.Calls(); len(calls) != 1 || calls[0].Status != 503 || calls[0].ErrorCode != "ServiceUnavailable" {
		t.Fatalf("calls = %+v", calls)
	}
}

func between(s, a, b string) string {
	_, rest, _ := strings.Cut(s, a)
	v, _, _ := strings.Cut(rest, b)
	return v
}

func TestParseRange(t *testing.T) {
	tests := []struct {
		h               string
		size            int64
		want            byteRange
		ok, satisfiable bool
	}{
		{"bytes=0-4", 10, byteRange{0, 4}, true, true},
		{"bytes=5-", 10, byteRange{5, 9}, true, true},
		{"bytes=-3", 10, byteRange{7, 9}, true, true},
		{"bytes=-30", 10, byteRange{0, 9}, true, true},
		{"bytes=8-20", 10, byteRange{8, 9}, true, true},
		{"bytes=10-", 10, byteRange{}, true, false},
		{"bytes=-0", 10, byteRange{}, true, false},
		{"bytes=0-1,3-4", 10, byteRange{}, false, false},
		{"bytes=4-2", 10, byteRange{}, false, false},
		{"items=0-1", 10, byteRange{}, false, false},
	}
	for _, tt := range tests {
		br, ok, sat := parseRange(tt.h, tt.size)
		if br != tt.want || ok != tt.ok || sat != tt.satisfiable {
			t.Errorf("parseRange(%q, %d) = %v %v %v, want %v %v %v", tt.h, tt.size, br, ok, sat, tt.want, tt.ok, tt.satisfiable)
		}
	}
}
