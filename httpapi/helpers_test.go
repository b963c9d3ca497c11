package httpapi

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/osprey-storage/osprey"
)

const (
	testKey       = "test-api-key-0001"
	testNodeToken = "node-token-0123456789"
	// testRemote is a non-loopback client address (httptest's default).
	testRemote = "192.0.2.1:1234"
	testUID    = osprey.UID(1234567890123456789)
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// syncBuffer is a bytes.Buffer safe for concurrent writers, so tests can
// inspect what the server logged.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fixture is a Server wired to hand-written mocks.
type fixture struct {
	srv      *Server
	cluster  *mockCluster
	internal *mockInternal
	storage  *mockStorage
	logs     *syncBuffer
}

// mustFixture builds a Server with one API key, default limits, a node
// token, and a storage mock whose LinkSecret returns testSecret. opts may
// change the Config before New.
func mustFixture(t *testing.T, opts ...func(*Config)) *fixture {
	t.Helper()
	f := &fixture{
		cluster:  &mockCluster{},
		internal: &mockInternal{NodeAuthTokenFn: func() string { return testNodeToken }},
		storage:  &mockStorage{LinkSecretFn: func() ([]byte, error) { return testSecret, nil }},
		logs:     &syncBuffer{},
	}
	cfg := Config{
		Cluster:  f.cluster,
		Internal: f.internal,
		Storage:  f.storage,
		APIKeys:  []string{testKey},
		Registry: prometheus.NewRegistry(),
		Logger: slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), f.logs),
			&slog.HandlerOptions{Level: slog.LevelDebug})),
		Limits: DefaultLimits(),
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.srv = srv
	return f
}

// withLimits returns an option that changes the limits.
func withLimits(mod func(*Limits)) func(*Config) {
	return func(c *Config) { mod(&c.Limits) }
}

// newRequest builds a request from a non-loopback client carrying the API
// key, unless hdr sets "Authorization" itself (to "" for none).
func newRequest(method, target string, body io.Reader, hdr map[string]string) *http.Request {
	r := httptest.NewRequest(method, target, body)
	r.RemoteAddr = testRemote
	if _, ok := hdr["Authorization"]; !ok {
		r.Header.Set("Authorization", "Bearer "+testKey)
	}
	for k, v := range hdr {
		if v == "" {
			r.Header.Del(k)
			continue
		}
		r.Header.Set(k, v)
	}
	return r
}

// serve runs r through the server.
func (f *fixture) serve(r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, r)
	return rec
}

// do is newRequest plus serve; body is sent as is.
func (f *fixture) do(method, target, body string, hdr map[string]string) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	return f.serve(newRequest(method, target, rd, hdr))
}

// apiCase is one request and what it must answer (STYLE rule 40).
type apiCase struct {
	name     string
	method   string
	path     string
	header   map[string]string
	body     string
	wantCode int
	wantBody string // substring of the reply body
}

// check runs c and asserts status, body substring and the envelope shape.
func (f *fixture) check(t *testing.T, c apiCase) (*httptest.ResponseRecorder, envelope) {
	t.Helper()
	rec := f.do(c.method, c.path, c.body, c.header)
	if rec.Code != c.wantCode {
		t.Fatalf("%s %s: status %d, want %d; body %s", c.method, c.path, rec.Code, c.wantCode, rec.Body.String())
	}
	env := mustEnvelope(t, rec)
	if c.wantBody != "" && !strings.Contains(rec.Body.String(), c.wantBody) {
		t.Fatalf("%s %s: body %s does not contain %q", c.method, c.path, rec.Body.String(), c.wantBody)
	}
	return rec, env
}

// envelope is the decoded JSON reply; Data stays raw.
type envelope struct {
	Code      int             `json:"code"`
	Message   string          `json:"message"`
	Data      json.RawMessage `json:"data"`
	RequestID string          `json:"request_id"`
}

// mustEnvelope decodes a JSON reply and checks the invariants of SPEC §1:
// JSON content type, a request id header equal to the body's, code 0 exactly
// on success, no data on errors, Retry-After on every 503.
func mustEnvelope(t *testing.T, rec *httptest.ResponseRecorder) envelope {
	t.Helper()
	env := decodeEnvelope(t, rec)
	if rec.Code < 400 {
		if env.Code != CodeOK {
			t.Errorf("status %d with code %d, want 0", rec.Code, env.Code)
		}
	} else {
		if env.Code == CodeOK {
			t.Errorf("status %d with code 0", rec.Code)
		}
		if string(env.Data) != "null" {
			t.Errorf("error reply carries data %s", env.Data)
		}
		if env.Message == "" {
			t.Errorf("error reply without message")
		}
	}
	return env
}

// decodeEnvelope decodes a JSON envelope and checks the headers every JSON
// reply carries; it does not judge code or data.
func decodeEnvelope(t *testing.T, rec *httptest.ResponseRecorder) envelope {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q, want JSON; body %s", ct, rec.Body.String())
	}
	if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("JSON reply without X-Content-Type-Options: nosniff")
	}
	var env envelope
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		t.Fatalf("body is not an envelope: %v; body %s", err, rec.Body.String())
	}
	id := rec.Header().Get(HeaderRequestID)
	if id == "" {
		t.Errorf("reply has no %s header", HeaderRequestID)
	}
	if env.RequestID != id {
		t.Errorf("request_id %q, header %q", env.RequestID, id)
	}
	if rec.Code == http.StatusServiceUnavailable && rec.Header().Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	return env
}

// mustData unmarshals the envelope's data into v.
func mustData(t *testing.T, env envelope, v any) {
	t.Helper()
	if err := json.Unmarshal(env.Data, v); err != nil {
		t.Fatalf("data %s: %v", env.Data, err)
	}
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

// uploadLink returns a signed upload query for uid valid for an hour, plus
// the given extra parameters ("md5", "...", "chunkNum", "3").
func uploadLink(uid osprey.UID, extra ...string) url.Values {
	q := signUpload(testSecret, uid, time.Now(), time.Hour)
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return q
}

// downloadLink returns a signed download query for a file.
func downloadLink(uid osprey.UID, name, online, bucket, object string, now time.Time, exp time.Duration) url.Values {
	q := url.Values{}
	q.Set("uid", uid.String())
	q.Set("name", name)
	q.Set("online", online)
	q.Set("bucket", bucket)
	q.Set("object", object)
	return signDownload(testSecret, q, now, exp)
}

// withParam returns a copy of q with k set to v, signature untouched: a
// tampered link.
func withParam(q url.Values, k, v string) url.Values {
	out := url.Values{}
	for kk, vv := range q {
		out[kk] = append([]string(nil), vv...)
	}
	out.Set(k, v)
	return out
}
