package s3api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/signer"
)

func crc32cB64(b []byte) string {
	s := crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))
	return base64.StdEncoding.EncodeToString([]byte{byte(s >> 24), byte(s >> 16), byte(s >> 8), byte(s)})
}

// TestAWSSDKOverTLS: over HTTPS the AWS SDK does not sign payloads
// (UNSIGNED-PAYLOAD) and adds its default CRC32 checksum, which the server
// verifies.
func TestAWSSDKOverTLS(t *testing.T) {
	ts := newTestServer(t, true)
	c := ts.awsClient(t, true)
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("tls")}); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("trailer "), 50000)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("tls"), Key: aws.String("k"), Body: bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
	if !ts.sawPayload("PUT", "UNSIGNED-PAYLOAD") {
		t.Fatalf("SDK did not use UNSIGNED-PAYLOAD over TLS: %q", ts.payloads)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("tls"), Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if !bytes.Equal(got, data) {
		t.Fatal("data differs")
	}
}

// TestMinioTrailingHeaders: minio-go with TrailingHeaders adds CRC32C
// checksums to its uploads; the server verifies them.
func TestMinioTrailingHeaders(t *testing.T) {
	ts := mustServer(t)
	c := ts.clientWith(t, &minio.Options{Creds: credentials.NewStaticV4(testAccessKey, testSecret, ""), Region: testRegion, TrailingHeaders: true})
	mustBucket(t, c, "trl")
	data := bytes.Repeat([]byte("minio trailer "), 30000)
	body := struct{ io.Reader }{bytes.NewReader(data)}
	if _, err := c.Client.PutObject(context.Background(), "trl", "k", body, int64(len(data)), minio.PutObjectOptions{DisableContentSha256: true}); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, c, "trl", "k"); !bytes.Equal(got, data) {
		t.Fatal("data differs")
	}
}

// TestSignedTrailer uses minio-go's streaming signer with a trailer
// (STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER), valid and with a forged
// checksum (the trailer signature then fails).
func TestSignedTrailer(t *testing.T) {
	ts := mustServer(t)
	c := ts.root(t)
	mustBucket(t, c, "strl")
	data := bytes.Repeat([]byte("signed trailer "), 10000)
	for _, tc := range []struct {
		name     string
		checksum string
		status   int
		code     string
	}{
		{"valid", crc32cB64(data), 200, ""},
		{"wrong checksum value", crc32cB64([]byte("other")), 400, "BadDigest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest("PUT", ts.srv.URL+"/strl/"+strings.ReplaceAll(tc.name, " ", "-"), bytes.NewReader(data))
			r.Trailer = http.Header{"X-Amz-Checksum-Crc32c": {tc.checksum}}
			r = signer.StreamingSignV4(r, testAccessKey, testSecret, "", testRegion, int64(len(data)), time.Now().UTC(), sha256Hasher{sha256New()})
			if r.Header.Get("X-Amz-Content-Sha256") != "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" {
				t.Fatalf("signer mode %q", r.Header.Get("X-Amz-Content-Sha256"))
			}
			resp, body := do(t, r)
			if tc.code != "" {
				wantXMLError(t, resp, body, tc.status, tc.code)
				return
			}
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			if got := mustGet(t, c, "strl", "valid"); !bytes.Equal(got, data) {
				t.Fatal("data differs")
			}
		})
	}
	t.Run("tampered trailer", func(t *testing.T) {
		r, _ := http.NewRequest("PUT", ts.srv.URL+"/strl/tampered", bytes.NewReader(data))
		r.Trailer = http.Header{"X-Amz-Checksum-Crc32c": {crc32cB64(data)}}
		r = signer.StreamingSignV4(r, testAccessKey, testSecret, "", testRegion, int64(len(data)), time.Now().UTC(), sha256Hasher{sha256New()})
		enc, _ := io.ReadAll(r.Body)
		i := bytes.Index(enc, []byte("x-amz-trailer-signature:"))
		enc[i+len("x-amz-trailer-signature:")] ^= 1
		r.Body = io.NopCloser(bytes.NewReader(enc))
		resp, body := do(t, r)
		wantXMLError(t, resp, body, 403, "SignatureDoesNotMatch")
	})
}

// TestUnsignedTrailerChecksumMismatch hand-builds an unsigned-trailer body
// whose CRC32C trailer does not match the data.
func TestUnsignedTrailerChecksumMismatch(t *testing.T) {
	ts := mustServer(t)
	mustBucket(t, ts.root(t), "utrl")
	data := []byte("hello trailer")
	for _, tc := range []struct {
		name, sum string
		status    int
	}{{"match", crc32cB64(data), 200}, {"mismatch", crc32cB64([]byte("nope")), 400}} {
		t.Run(tc.name, func(t *testing.T) {
			body := fmt.Sprintf("%x\r\n%s\r\n0\r\nx-amz-checksum-crc32c:%s\r\n\r\n", len(data), data, tc.sum)
			r, _ := http.NewRequest("PUT", ts.srv.URL+"/utrl/k", strings.NewReader(body))
			r.Header.Set("Content-Encoding", "aws-chunked")
			r.Header.Set("X-Amz-Decoded-Content-Length", fmt.Sprint(len(data)))
			r.Header.Set("X-Amz-Trailer", "x-amz-checksum-crc32c")
			r.Header.Set("X-Amz-Content-Sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
			r = signer.SignV4(*r, testAccessKey, testSecret, "", testRegion)
			resp, out := do(t, r)
			if tc.status != 200 {
				wantXMLError(t, resp, out, tc.status, "BadDigest")
				return
			}
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, out)
			}
		})
	}
	t.Run("header checksum mismatch", func(t *testing.T) {
		resp, out := do(t, ts.signedRequest(t, "PUT", "/utrl/h", data, sha256Hex(data), http.Header{"X-Amz-Checksum-Crc32c": {crc32cB64([]byte("nope"))}}))
		wantXMLError(t, resp, out, 400, "BadDigest")
	})
}
