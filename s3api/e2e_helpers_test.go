package s3api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/signer"

	"github.com/osprey-storage/osprey/s3api"
	"github.com/osprey-storage/osprey/s3api/s3mem"
)

const (
	testRegion    = "us-east-1"
	testAccessKey = "ROOTACCESSKEY"
	testSecret    = "root-secret-key-0123456789"
	testVHost     = "s3.local"
)

// testServer is an S3 handler over s3mem behind httptest, with a settable
// clock offset and a record of the payload modes it saw.
type testServer struct {
	srv      *httptest.Server
	offset   atomic.Int64 // added to time.Now, in nanoseconds
	mu       sync.Mutex
	payloads []string // "METHOD x-amz-content-sha256" per request
	noReqID  atomic.Int32
}

// tWriter routes slog output to t.Log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func mustServer(t *testing.T) *testServer {
	t.Helper()
	return newTestServer(t, false)
}

// newTestServer starts the server, over TLS if useTLS (clients then use
// ts.srv.Client(), which trusts its certificate).
func newTestServer(t *testing.T, useTLS bool) *testServer {
	t.Helper()
	ts := &testServer{}
	cfg := s3api.Config{
		Region: testRegion,
		Credentials: s3api.StaticCredentials(map[string]string{
			testAccessKey: testSecret,
			"USER2KEY":    "user2-secret-key",
		}),
		Logger:              slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Now:                 func() time.Time { return time.Now().Add(time.Duration(ts.offset.Load())) },
		VirtualHostSuffixes: []string{testVHost},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	h := s3api.NewHandler(s3mem.New(), cfg)
	ts.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.mu.Lock()
		ts.payloads = append(ts.payloads, r.Method+" "+r.Header.Get("X-Amz-Content-Sha256"))
		ts.mu.Unlock()
		h.ServeHTTP(w, r)
		if w.Header().Get("x-amz-request-id") == "" {
			ts.noReqID.Add(1)
		}
	}))
	if useTLS {
		ts.srv.StartTLS()
	} else {
		ts.srv.Start()
	}
	t.Cleanup(func() {
		ts.srv.Close()
		if n := ts.noReqID.Load(); n > 0 {
			t.Errorf("%d responses without x-amz-request-id", n)
		}
	})
	return ts
}

func (ts *testServer) sawPayload(method, mode string) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, p := range ts.payloads {
		if p == method+" "+mode {
			return true
		}
	}
	return false
}

func (ts *testServer) hostPort() string {
	return strings.TrimPrefix(strings.TrimPrefix(ts.srv.URL, "http://"), "https://")
}

// client returns a minio-go client; virtual-host style clients reach the
// server through a dialer that ignores the (fake) host name.
func (ts *testServer) client(t *testing.T, ak, sk string, lookup minio.BucketLookupType) *minio.Core {
	t.Helper()
	return ts.clientWith(t, &minio.Options{Creds: credentials.NewStaticV4(ak, sk, ""), Region: testRegion, BucketLookup: lookup})
}

// clientWith returns a minio-go client with the given options (endpoint,
// transport and TLS filled in).
func (ts *testServer) clientWith(t *testing.T, opts *minio.Options) *minio.Core {
	t.Helper()
	lookup := opts.BucketLookup
	endpoint := ts.hostPort()
	if lookup == minio.BucketLookupDNS {
		_, port, _ := net.SplitHostPort(endpoint)
		endpoint = testVHost + ":" + port
		addr := ts.hostPort()
		opts.Transport = &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}
	}
	if strings.HasPrefix(ts.srv.URL, "https://") {
		opts.Secure = true
		opts.Transport = ts.srv.Client().Transport
	}
	c, err := minio.New(endpoint, opts)
	if err != nil {
		t.Fatal(err)
	}
	return &minio.Core{Client: c}
}

func (ts *testServer) root(t *testing.T) *minio.Core {
	t.Helper()
	return ts.client(t, testAccessKey, testSecret, minio.BucketLookupPath)
}

func mustBucket(t *testing.T, c *minio.Core, name string) {
	t.Helper()
	if err := c.MakeBucket(context.Background(), name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("make bucket %s: %v", name, err)
	}
}

func mustPut(t *testing.T, c *minio.Core, bucket, key string, data []byte, opts minio.PutObjectOptions) minio.UploadInfo {
	t.Helper()
	info, err := c.Client.PutObject(context.Background(), bucket, key, bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
	return info
}

func mustGet(t *testing.T, c *minio.Core, bucket, key string) []byte {
	t.Helper()
	o, err := c.Client.GetObject(context.Background(), bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	defer o.Close()
	data, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	return data
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got success, want %s", code)
	}
	if got := minio.ToErrorResponse(err).Code; got != code {
		t.Fatalf("got code %q (%v), want %s", got, err, code)
	}
}

// sha256Hasher adapts crypto/sha256 to the hasher minio-go's signer wants.
type sha256Hasher struct{ hash.Hash }

func (sha256Hasher) Close() {}

// signedRequest builds a request signed with minio-go's SigV4 signer, for
// operations minio-go has no call for and for deliberately broken requests.
// payloadHash "" means UNSIGNED-PAYLOAD.
func (ts *testServer) signedRequest(t *testing.T, method, path string, body []byte, payloadHash string, hdr http.Header) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, ts.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		r.Header[k] = vs
	}
	if payloadHash == "" {
		payloadHash = "UNSIGNED-PAYLOAD"
	}
	r.Header.Set("X-Amz-Content-Sha256", payloadHash)
	return signer.SignV4(*r, testAccessKey, testSecret, "", testRegion)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func do(t *testing.T, r *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("x-amz-request-id") == "" {
		t.Errorf("%s %s: no x-amz-request-id", r.Method, r.URL.Path)
	}
	return resp, body
}

// wantXMLError checks an S3 XML error response.
func wantXMLError(t *testing.T, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	if resp.StatusCode != status || !bytes.Contains(body, []byte("<Code>"+code+"</Code>")) || !bytes.Contains(body, []byte("<RequestId>")) {
		t.Fatalf("got %d %s, want %d %s", resp.StatusCode, body, status, code)
	}
}

func sha256New() hash.Hash { return sha256.New() }

func minioPutOpts() minio.PutObjectOptions { return minio.PutObjectOptions{} }
