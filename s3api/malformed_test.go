package s3api_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestMalformedRequests sends deliberately broken or unsupported requests
// (signed with minio-go's signer) and checks the S3 error.
func TestMalformedRequests(t *testing.T) {
	ts := mustServer(t)
	c := ts.root(t)
	mustBucket(t, c, "mal")
	mustPut(t, c, "mal", "obj", []byte("data"), minioPutOpts())
	xml := []byte("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>")
	tests := []struct {
		name         string
		method, path string
		body         []byte
		hdr          http.Header
		status       int
		code         string
	}{
		{"object tagging", "PUT", "/mal/obj?tagging", nil, nil, 501, "NotImplemented"},
		{"object retention", "GET", "/mal/obj?retention", nil, nil, 501, "NotImplemented"},
		{"post without subresource", "POST", "/mal/obj", nil, nil, 501, "NotImplemented"},
		{"list object versions", "GET", "/mal?versions", nil, nil, 501, "NotImplemented"},
		{"specific version", "GET", "/mal/obj?versionId=abc", nil, nil, 501, "NotImplemented"},
		{"bucket website put", "PUT", "/mal?website", nil, nil, 501, "NotImplemented"},
		{"service delete", "DELETE", "/", nil, nil, 501, "NotImplemented"},
		{"bad part number", "PUT", "/mal/obj?partNumber=0&uploadId=x", []byte("x"), nil, 400, "InvalidArgument"},
		{"part number too big", "PUT", "/mal/obj?partNumber=10001&uploadId=x", []byte("x"), nil, 400, "InvalidArgument"},
		{"upload to unknown upload", "PUT", "/mal/obj?partNumber=1&uploadId=nope", []byte("x"), nil, 404, "NoSuchUpload"},
		{"complete unknown upload", "POST", "/mal/obj?uploadId=nope", xml, nil, 404, "NoSuchUpload"},
		{"complete malformed xml", "POST", "/mal/obj?uploadId=nope", []byte("<Complete"), nil, 400, "MalformedXML"},
		{"negative max-keys", "GET", "/mal?list-type=2&max-keys=-1", nil, nil, 400, "InvalidArgument"},
		{"bad encoding type", "GET", "/mal?list-type=2&encoding-type=base64", nil, nil, 400, "InvalidArgument"},
		{"bad content-md5", "PUT", "/mal/x", []byte("x"), http.Header{"Content-Md5": {"nope"}}, 400, "InvalidDigest"},
		{"streaming without decoded length", "PUT", "/mal/x", []byte("x"), http.Header{"X-Amz-Content-Sha256-Override": {"1"}}, 411, "MissingContentLength"},
		{"copy from missing bucket", "PUT", "/mal/x", nil, http.Header{"X-Amz-Copy-Source": {"/nosuchbucket/obj"}}, 404, "NoSuchBucket"},
		{"copy bad directive", "PUT", "/mal/x", nil, http.Header{"X-Amz-Copy-Source": {"/mal/obj"}, "X-Amz-Metadata-Directive": {"MERGE"}}, 400, "InvalidArgument"},
		{"copy source without key", "PUT", "/mal/x", nil, http.Header{"X-Amz-Copy-Source": {"/mal"}}, 400, "InvalidArgument"},
		{"bad location constraint", "PUT", "/newbucket", []byte("<CreateBucketConfiguration><LocationConstraint>mars-1</LocationConstraint></CreateBucketConfiguration>"), nil, 400, "InvalidLocationConstraint"},
		{"delete objects too many", "POST", "/mal?delete", []byte("<Delete>" + strings.Repeat("<Object><Key>k</Key></Object>", 1001) + "</Delete>"), nil, 400, "MalformedXML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hash := ""
			if tt.body != nil {
				hash = sha256Hex(tt.body)
			}
			if tt.hdr.Get("X-Amz-Content-Sha256-Override") != "" {
				tt.hdr.Del("X-Amz-Content-Sha256-Override")
				hash = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
			}
			resp, body := do(t, ts.signedRequest(t, tt.method, tt.path, tt.body, hash, tt.hdr))
			wantXMLError(t, resp, body, tt.status, tt.code)
		})
	}

	authTests := []struct {
		name   string
		mutate func(r *http.Request)
		status int
		code   string
	}{
		{"signature v2", func(r *http.Request) { r.Header.Set("Authorization", "AWS "+testAccessKey+":c2lnbmF0dXJl") }, 400, "InvalidRequest"},
		{"malformed v4 header", func(r *http.Request) { r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=x") }, 400, "AuthorizationHeaderMalformed"},
		{"bad payload mode", func(r *http.Request) {}, 400, "InvalidArgument"},
		{"presign missing params", func(r *http.Request) {
			r.Header.Del("Authorization")
			r.URL.RawQuery = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" + testAccessKey + "%2F20240101%2Fus-east-1%2Fs3%2Faws4_request"
		}, 400, "AuthorizationQueryParametersError"},
	}
	for _, tt := range authTests {
		t.Run(tt.name, func(t *testing.T) {
			hash := ""
			if tt.name == "bad payload mode" {
				hash = "NOT-A-MODE"
			}
			r := ts.signedRequest(t, "GET", "/mal/obj", nil, hash, nil)
			tt.mutate(r)
			resp, body := do(t, r)
			wantXMLError(t, resp, body, tt.status, tt.code)
		})
	}

	t.Run("head errors have no body", func(t *testing.T) {
		resp, body := do(t, ts.signedRequest(t, "HEAD", "/mal/missing", nil, "", nil))
		if resp.StatusCode != 404 || len(body) != 0 {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	})
}
