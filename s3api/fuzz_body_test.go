package s3api_test

import (
	"bytes"
	"encoding/xml"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/signer"

	"github.com/osprey-storage/osprey/s3api"
	"github.com/osprey-storage/osprey/s3api/s3mem"
)

// FuzzRequestBodies sends arbitrary, correctly signed request bodies to the
// operations that parse one (CompleteMultipartUpload, DeleteObjects,
// CreateBucket's configuration): each answers success or a 4xx S3 XML
// error, never a 5xx or a panic, and nothing but the request's own subject
// changes (the bucket's other object stays readable).
func FuzzRequestBodies(f *testing.F) {
	f.Add([]byte("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"x\"</ETag></Part></CompleteMultipartUpload>"))
	f.Add([]byte("<Delete><Quiet>true</Quiet><Object><Key>a</Key></Object></Delete>"))
	f.Add([]byte("<CreateBucketConfiguration><LocationConstraint>us-east-1</LocationConstraint></CreateBucketConfiguration>"))
	f.Add([]byte("<Delete><Object><Key></Key></Object><Object><Key>\x00</Key></Object></Delete>"))
	f.Add([]byte("<CompleteMultipartUpload><Part><PartNumber>-1</PartNumber></Part><Part><PartNumber>99999999999</PartNumber></Part></CompleteMultipartUpload>"))
	f.Add([]byte{})

	cfg := s3api.Config{
		Region:      testRegion,
		Credentials: s3api.StaticCredentials(map[string]string{testAccessKey: testSecret}),
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:         time.Now,
	}
	if err := cfg.Validate(); err != nil {
		f.Fatal(err)
	}
	h := s3api.NewHandler(s3mem.New(), cfg)
	serve := func(method, path string, body []byte) (int, []byte) {
		r := httptest.NewRequest(method, "http://s3.test"+path, bytes.NewReader(body))
		r.Header.Set("X-Amz-Content-Sha256", sha256Hex(body))
		r = signer.SignV4(*r, testAccessKey, testSecret, "", testRegion)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code, w.Body.Bytes()
	}
	must := func(method, path string, body []byte, want int) []byte {
		code, out := serve(method, path, body)
		if code != want {
			f.Fatalf("%s %s: %d %s", method, path, code, out)
		}
		return out
	}
	must("PUT", "/fuzz", nil, http.StatusOK)
	must("PUT", "/fuzz/keep", []byte("keep"), http.StatusOK)

	f.Fuzz(func(t *testing.T, body []byte) {
		// A fresh multipart upload with one part, so Complete reaches the
		// part checks when the body names part 1.
		out := must("POST", "/fuzz/mp?uploads", nil, http.StatusOK)
		var init struct {
			UploadID string `xml:"UploadId"`
		}
		if err := xml.Unmarshal(out, &init); err != nil || init.UploadID == "" {
			t.Fatalf("initiate: %v %s", err, out)
		}
		must("PUT", "/fuzz/mp?partNumber=1&uploadId="+init.UploadID, []byte("part"), http.StatusOK)

		for _, req := range []struct{ method, path string }{
			{"POST", "/fuzz/mp?uploadId=" + init.UploadID},
			{"POST", "/fuzz?delete"},
			{"PUT", "/fuzz-new"},
		} {
			code, out := serve(req.method, req.path, body)
			switch {
			case code == http.StatusOK:
			case code >= 400 && code < 500:
				if !bytes.Contains(out, []byte("<Code>")) {
					t.Fatalf("%s %s: %d without an S3 error document: %q", req.method, req.path, code, out)
				}
			default:
				t.Fatalf("%s %s with body %q: %d %s", req.method, req.path, body, code, out)
			}
		}
		serve("DELETE", "/fuzz-new", nil)
		serve("DELETE", "/fuzz/mp?uploadId="+init.UploadID, nil)
		// A Delete body naming "keep" may remove it; put it back, then
		// check it reads whole.
		if code, _ := serve("GET", "/fuzz/keep", nil); code == http.StatusNotFound {
			must("PUT", "/fuzz/keep", []byte("keep"), http.StatusOK)
		}
		if code, got := serve("GET", "/fuzz/keep", nil); code != http.StatusOK || string(got) != "keep" {
			t.Fatalf("other object after the bodies: %d %q", code, got)
		}
	})
}
