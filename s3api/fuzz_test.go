package s3api

import (
	"bytes"
	"io"
	"testing"
)

// FuzzParseAuthHeader: any Authorization header parses or is refused with
// an S3 error, never a panic.
func FuzzParseAuthHeader(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7")
	f.Add("AWS4-HMAC-SHA256 Credential=/, SignedHeaders=, Signature=")
	f.Add("AWS AKID:sig")
	f.Fuzz(func(t *testing.T, h string) {
		p, err := parseAuthHeader(h)
		if err == nil && p.signature == "" {
			t.Fatalf("%q parsed without a signature: %+v", h, p)
		}
	})
}

// FuzzChunkedReader: an aws-chunked body either decodes to exactly the
// declared length with every chunk signature verified, or fails; never a
// panic, never more bytes than declared.
func FuzzChunkedReader(f *testing.F) {
	a := &authInfo{payload: streamingPayload, key: []byte("k"), amzDate: "20260101T000000Z", scope: "20260101/us-east-1/s3/aws4_request", seedSig: "seed"}
	f.Add([]byte("5;chunk-signature=00\r\nhello\r\n0;chunk-signature=00\r\n\r\n"), int64(5))
	f.Add([]byte("ffffffffffffffff;chunk-signature=00\r\n"), int64(3))
	f.Add([]byte("0\r\n\r\n"), int64(0))
	f.Fuzz(func(t *testing.T, body []byte, n int64) {
		if n < 0 || n > 1<<20 {
			return
		}
		r := newChunkedReader(bytes.NewReader(body), a, n, nil)
		got, err := io.ReadAll(io.LimitReader(r, n+1))
		if int64(len(got)) > n {
			t.Fatalf("decoded %d bytes, declared %d", len(got), n)
		}
		if err == nil && len(body) > 0 && int64(len(got)) == n && n > 0 {
			// Decoding everything means every chunk signature verified
			// against key "k": fuzzed bodies do not get here.
			t.Fatalf("a body with made-up chunk signatures decoded: %q", body)
		}
	})
}
