package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/osprey-storage/osprey"
)

func TestConfigValidate(t *testing.T) {
	ok := Config{Cluster: &mockCluster{}, Internal: &mockInternal{}, Registry: prometheus.NewRegistry(),
		Limits: DefaultLimits(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr bool
	}{
		{"valid", func(*Config) {}, false},
		{"valid with keys", func(c *Config) { c.APIKeys = []string{"12345678"} }, false},
		{"no cluster", func(c *Config) { c.Cluster = nil }, true},
		{"no internal", func(c *Config) { c.Internal = nil }, true},
		{"no registry", func(c *Config) { c.Registry = nil }, true},
		{"short key", func(c *Config) { c.APIKeys = []string{"1234567"} }, true},
		{"zero limits", func(c *Config) { c.Limits = Limits{} }, true},
		{"max expiry below default", func(c *Config) { c.Limits.MaxExpiry = c.Limits.DefaultExpiry - 1 }, true},
		{"zero chunk size", func(c *Config) { c.Limits.MaxChunkSize = 0 }, true},
		{"zero upload size", func(c *Config) { c.Limits.MaxUploadSize = 0 }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			c.Registry = prometheus.NewRegistry()
			tt.mod(&c)
			err := c.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, wantErr %v", err, tt.wantErr)
			}
			if _, nerr := New(c); (nerr != nil) != tt.wantErr {
				t.Fatalf("New() = %v, wantErr %v", nerr, tt.wantErr)
			}
		})
	}
}

func TestNewRegistersMetricsOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := Config{Cluster: &mockCluster{}, Internal: &mockInternal{}, Registry: reg, Limits: DefaultLimits(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if _, err := New(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg); err == nil {
		t.Fatal("second New on the same registry succeeded; want a registration error")
	}
}

func TestHealthRoutes(t *testing.T) {
	f := mustFixture(t)
	for _, c := range []apiCase{
		{name: "ping", method: http.MethodGet, path: Prefix + "/ping", wantCode: 200, wantBody: `"data":"pong"`},
		{name: "health", method: http.MethodGet, path: Prefix + "/health", wantCode: 200, wantBody: `"data":"pong"`},
		{name: "livez", method: http.MethodGet, path: "/livez", wantCode: 200, wantBody: `"data":"pong"`},
		{name: "ping needs no key", method: http.MethodGet, path: Prefix + "/ping", header: map[string]string{"Authorization": ""}, wantCode: 200},
		{name: "readyz", method: http.MethodGet, path: "/readyz", wantCode: 200, wantBody: `"data":"ready"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, env := f.check(t, c)
			if env.Message != "ok" {
				t.Errorf("message %q, want ok", env.Message)
			}
		})
	}
	// Health endpoints never touch the cluster (SPEC: /health does not
	// touch Raft).
	if n := f.cluster.Total("NotReady"); n != 0 {
		t.Errorf("health routes called the cluster %d times", n)
	}
}

func TestReadyzNotReady(t *testing.T) {
	f := mustFixture(t)
	f.cluster.NotReadyFn = func(context.Context) []string { return []string{"no leader", "store closed"} }
	rec := f.do(http.MethodGet, "/readyz", "", nil)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", rec.Code)
	}
	if rec.Header().Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	env := decodeEnvelope(t, rec)
	if env.Code != CodeUnavailable {
		t.Errorf("code %d, want %d", env.Code, CodeUnavailable)
	}
	var reasons []string
	mustData(t, env, &reasons)
	if strings.Join(reasons, ",") != "no leader,store closed" {
		t.Errorf("reasons %v", reasons)
	}
}

func TestRequestID(t *testing.T) {
	f := mustFixture(t)
	hexID := regexp.MustCompile(`^[0-9a-f]{16}$`)
	tests := []struct {
		name   string
		method string
		path   string
		sent   string
		want   string // "" means generated
	}{
		{"echo on success", http.MethodGet, Prefix + "/ping", "client-id-1", "client-id-1"},
		{"generated on success", http.MethodGet, Prefix + "/ping", "", ""},
		{"echo on 404", http.MethodGet, "/no/such/route", "client-id-2", "client-id-2"},
		{"generated on 404", http.MethodGet, "/no/such/route", "", ""},
		{"echo on 405", http.MethodPost, Prefix + "/ping", "client-id-3", "client-id-3"},
		{"echo on 401", http.MethodGet, "/cluster/status", "client-id-4", "client-id-4"},
		{"too long is replaced", http.MethodGet, Prefix + "/ping", strings.Repeat("x", 129), ""},
		{"128 bytes is kept", http.MethodGet, Prefix + "/ping", strings.Repeat("y", 128), strings.Repeat("y", 128)},
		{"metrics", http.MethodGet, "/metrics", "client-id-5", "client-id-5"},
		{"metrics generated", http.MethodGet, "/metrics", "", ""},
		{"automatic OPTIONS", http.MethodOptions, Prefix + "/upload", "client-id-6", "client-id-6"},
		{"trailing slash redirect", http.MethodGet, Prefix + "/ping/", "client-id-7", "client-id-7"},
		{"download (not JSON)", http.MethodGet, Prefix + "/download?uid=1", "client-id-8", "client-id-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{HeaderRequestID: tt.sent}
			if tt.name == "echo on 401" {
				hdr["Authorization"] = ""
			}
			rec := f.do(tt.method, tt.path, "", hdr)
			got := rec.Header().Values(HeaderRequestID)
			if len(got) != 1 {
				t.Fatalf("%s values %q, want exactly one", HeaderRequestID, got)
			}
			switch {
			case tt.want != "" && got[0] != tt.want:
				t.Errorf("request id %q, want %q", got[0], tt.want)
			case tt.want == "" && !hexID.MatchString(got[0]):
				t.Errorf("generated request id %q, want 16 hex digits", got[0])
			}
			if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
				if env := decodeEnvelope(t, rec); env.RequestID != got[0] {
					t.Errorf("body request_id %q, header %q", env.RequestID, got[0])
				}
			}
		})
	}
	t.Run("generated ids differ", func(t *testing.T) {
		a := f.do(http.MethodGet, Prefix+"/ping", "", nil).Header().Get(HeaderRequestID)
		b := f.do(http.MethodGet, Prefix+"/ping", "", nil).Header().Get(HeaderRequestID)
		if a == b {
			t.Errorf("two requests got the same id %q", a)
		}
	})
	t.Run("handlers see the id", func(t *testing.T) {
		var seen string
		f.cluster.StatusFn = func(ctx context.Context) (ClusterStatus, error) {
			seen = RequestID(ctx)
			return ClusterStatus{}, nil
		}
		rec := f.do(http.MethodGet, "/cluster/status", "", map[string]string{HeaderRequestID: "ctx-id"})
		if rec.Code != 200 || seen != "ctx-id" {
			t.Errorf("status %d, handler saw request id %q", rec.Code, seen)
		}
	})
}

func TestUnknownRoutes404(t *testing.T) {
	f := mustFixture(t)
	for _, c := range []apiCase{
		{name: "root", method: http.MethodGet, path: "/nope", wantCode: 404, wantBody: "no route GET /nope"},
		{name: "under prefix", method: http.MethodGet, path: Prefix + "/nope", wantCode: 404},
		{name: "old version", method: http.MethodGet, path: "/api/storage/v1/ping", wantCode: 404},
		{name: "post unknown", method: http.MethodPost, path: "/upload", body: "{}", wantCode: 404},
		{name: "chunk without shard", method: http.MethodGet, path: "/internal/v1/chunks/1/2", wantCode: 404},
		{name: "internal unknown", method: http.MethodGet, path: "/internal/v1/nope", wantCode: 404},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, env := f.check(t, c)
			if env.Code != CodeNotFound {
				t.Errorf("code %d, want %d", env.Code, CodeNotFound)
			}
		})
	}
	if n := f.storage.Total(); n != 0 {
		t.Errorf("storage called %d times", n)
	}
}

func TestStorageRoutesAbsentWithoutStorage(t *testing.T) {
	f := mustFixture(t, func(c *Config) { c.Storage = nil })
	for _, p := range []string{"/resume", "/checkpoint", "/link/upload", "/download", "/upload", "/object"} {
		rec := f.do(http.MethodGet, Prefix+p, "", nil)
		if rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", p, rec.Code)
		}
	}
	if rec := f.do(http.MethodGet, Prefix+"/ping", "", nil); rec.Code != 200 {
		t.Errorf("ping: %d", rec.Code)
	}
}

// Test_405Routes: every registered path answers other methods with a JSON
// 405 and an Allow header, without reaching any dependency.
func Test_405Routes(t *testing.T) {
	f := mustFixture(t)
	tests := []struct {
		method, path, allow string
	}{
		{http.MethodGet, Prefix + "/upload", "PUT"},
		{http.MethodPost, Prefix + "/upload", "PUT"},
		{http.MethodGet, Prefix + "/upload/multi", "PUT"},
		{http.MethodPost, Prefix + "/upload/merge", "PUT"},
		{http.MethodPost, Prefix + "/download", "GET"},
		{http.MethodPut, Prefix + "/download", "HEAD"},
		{http.MethodDelete, Prefix + "/download", "GET"},
		{http.MethodGet, Prefix + "/resume", "POST"},
		{http.MethodPut, Prefix + "/resume", "POST"},
		{http.MethodGet, Prefix + "/link/upload", "POST"},
		{http.MethodGet, Prefix + "/link/download", "POST"},
		{http.MethodPost, Prefix + "/checkpoint", "GET"},
		{http.MethodPost, Prefix + "/proxy", "GET"},
		{http.MethodPost, Prefix + "/object", "DELETE"},
		{http.MethodPut, Prefix + "/object", "GET"},
		{http.MethodPost, Prefix + "/objects", "GET"},
		{http.MethodPost, Prefix + "/ping", "GET"},
		{http.MethodPost, Prefix + "/health", "GET"},
		{http.MethodPost, "/readyz", "GET"},
		{http.MethodPost, "/cluster/status", "GET"},
		{http.MethodGet, "/cluster/join", "POST"},
		{http.MethodPost, "/cluster/nodes/n1", "DELETE"},
		{http.MethodGet, "/cluster/leader-transfer", "POST"},
		{http.MethodGet, "/internal/v1/apply", "POST"},
		{http.MethodPost, "/internal/v1/readindex", "GET"},
		{http.MethodPost, "/internal/v1/chunks/1/2/3", "PUT"},
		{http.MethodPost, "/internal/v1/bootstrap-info", "GET"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			rec, env := f.check(t, apiCase{method: tt.method, path: tt.path, wantCode: http.StatusMethodNotAllowed})
			if env.Code != CodeMethod {
				t.Errorf("code %d, want %d", env.Code, CodeMethod)
			}
			if allow := rec.Header().Get("Allow"); !strings.Contains(allow, tt.allow) {
				t.Errorf("Allow %q does not list %s", allow, tt.allow)
			}
		})
	}
	if n := f.storage.Total(); n != 0 {
		t.Errorf("storage called %d times", n)
	}
	if n := f.cluster.Total(); n != 0 {
		t.Errorf("cluster called %d times", n)
	}
}

// reachAll makes every mock method answer with ErrConflict, so a request
// that passes authorisation is recognisable by the mock being called.
func reachAll(f *fixture) {
	conflict := osprey.ErrConflict
	s := f.storage
	s.CreateFilesFn = func(context.Context, []NewFile) ([]osprey.UID, error) { return nil, conflict }
	s.ResumeFn = func(context.Context, []ResumeItem) ([]osprey.UID, error) { return nil, conflict }
	s.StatFn = func(context.Context, osprey.UID) (FileInfo, error) { return FileInfo{}, conflict }
	s.CheckpointFn = func(context.Context, osprey.UID) ([]uint32, error) { return nil, conflict }
	s.UploadFn = func(context.Context, osprey.UID, io.Reader, string) (FileInfo, error) { return FileInfo{}, conflict }
	s.UploadChunkFn = func(context.Context, osprey.UID, uint32, io.Reader, int64, string) error { return conflict }
	s.MergeFn = func(context.Context, osprey.UID, uint32, int64, string) (FileInfo, error) {
		return FileInfo{}, conflict
	}
	s.OpenFn = func(context.Context, osprey.UID) (*Object, error) { return nil, conflict }
	s.DeleteFn = func(context.Context, osprey.UID) error { return conflict }
	s.ListFn = func(context.Context, osprey.UID, int) ([]FileInfo, osprey.UID, error) { return nil, 0, conflict }
	s.LocateFn = func(context.Context, osprey.UID) ([]string, error) { return nil, conflict }
	s.PutLocalChunkFn = func(context.Context, ChunkRef, io.Reader, int64, CopyOrigin) (uint64, error) { return 0, conflict }
	s.GetLocalChunkFn = func(context.Context, ChunkRef, int64, int64) (io.ReadCloser, int64, error) { return nil, 0, conflict }
	s.DeleteLocalChunkFn = func(context.Context, ChunkRef, CopyOrigin, uint64) error { return conflict }
	c := f.cluster
	c.StatusFn = func(context.Context) (ClusterStatus, error) { return ClusterStatus{}, conflict }
	c.NodesFn = func(context.Context) ([]NodeInfo, error) { return nil, conflict }
	c.JoinFn = func(context.Context, JoinRequest) (JoinResult, error) { return JoinResult{}, conflict }
	c.RemoveFn = func(context.Context, string) error { return conflict }
	c.TransferLeadershipFn = func(context.Context, string) error { return conflict }
	f.internal.ApplyEncodedFn = func(context.Context, []byte) ([]byte, error) { return nil, conflict }
	f.internal.ReadIndexFn = func(context.Context) (uint64, error) { return 0, conflict }
}

// businessRequests are valid requests to every business endpoint.
var businessRequests = []struct{ method, path, body string }{
	{http.MethodGet, "/cluster/status", ""},
	{http.MethodGet, "/cluster/nodes", ""},
	{http.MethodDelete, "/cluster/nodes/n2", ""},
	{http.MethodPost, "/cluster/leader-transfer", `{"id":"n2"}`},
	{http.MethodPost, Prefix + "/resume", `{"data":[{"md5":"0123456789abcdef0123456789abcdef","path":"a.jpg"}]}`},
	{http.MethodGet, Prefix + "/checkpoint?uid=7", ""},
	{http.MethodPost, Prefix + "/link/upload", `{"filePath":["a.jpg"]}`},
	{http.MethodPost, Prefix + "/link/download", `{"uid":["7"]}`},
	{http.MethodGet, Prefix + "/proxy?uid=7", ""},
	{http.MethodGet, Prefix + "/object?uid=7", ""},
	{http.MethodDelete, Prefix + "/object?uid=7", ""},
	{http.MethodGet, Prefix + "/objects", ""},
}

// reached reports whether the request got past authorisation: some mock
// other than the credential lookups was called.
func reached(f *fixture) int {
	return f.storage.Total() + f.cluster.Total("IsLeader", "LeaderHTTP") + f.internal.Total("NodeAuthToken")
}

func TestAuthAPIKeys(t *testing.T) {
	tests := []struct {
		name      string
		header    map[string]string
		wantCode  int // 0: authorised (the mock is reached)
		wantInMsg string
	}{
		{"missing key", map[string]string{"Authorization": ""}, 401, "missing API key"},
		{"not bearer", map[string]string{"Authorization": "Basic " + testKey}, 401, "missing API key"},
		{"empty bearer", map[string]string{"Authorization": "Bearer "}, 401, "missing API key"},
		{"lowercase scheme", map[string]string{"Authorization": "bearer " + testKey}, 401, ""},
		{"wrong key", map[string]string{"Authorization": "Bearer wrong-key-000"}, 403, "unknown API key"},
		{"key prefix", map[string]string{"Authorization": "Bearer " + testKey[:len(testKey)-1]}, 403, ""},
		{"key with suffix", map[string]string{"Authorization": "Bearer " + testKey + "x"}, 403, ""},
		{"right key", nil, 0, ""},
		{"second key", map[string]string{"Authorization": "Bearer another-key-02"}, 0, ""},
		{"node auth", map[string]string{"Authorization": "", HeaderNodeAuth: testNodeToken}, 0, ""},
		{"wrong node auth", map[string]string{"Authorization": "", HeaderNodeAuth: "nope"}, 401, ""},
		{"wrong key beats node auth", map[string]string{"Authorization": "Bearer wrong-key-000", HeaderNodeAuth: testNodeToken}, 403, ""},
	}
	for _, br := range businessRequests {
		for _, tt := range tests {
			t.Run(br.method+" "+br.path+"/"+tt.name, func(t *testing.T) {
				f := mustFixture(t, func(c *Config) { c.APIKeys = []string{testKey, "another-key-02"} })
				reachAll(f)
				rec := f.do(br.method, br.path, br.body, tt.header)
				if tt.wantCode == 0 {
					if rec.Code == 401 || rec.Code == 403 || reached(f) == 0 {
						t.Fatalf("status %d, mock calls %d: want the request authorised; body %s", rec.Code, reached(f), rec.Body.String())
					}
					return
				}
				if rec.Code != tt.wantCode {
					t.Fatalf("status %d, want %d; body %s", rec.Code, tt.wantCode, rec.Body.String())
				}
				env := mustEnvelope(t, rec)
				if !strings.Contains(env.Message, tt.wantInMsg) {
					t.Errorf("message %q does not contain %q", env.Message, tt.wantInMsg)
				}
				if n := reached(f); n != 0 {
					t.Errorf("unauthorised request reached the mocks (%d calls)", n)
				}
			})
		}
	}
}

func TestAuthProtectedMode(t *testing.T) {
	tests := []struct {
		name       string
		remote     string
		header     map[string]string
		authorised bool
	}{
		{"ipv4 loopback", "127.0.0.1:5555", nil, true},
		{"other 127/8", "127.1.2.3:5555", nil, true},
		{"ipv6 loopback", "[::1]:5555", nil, true},
		{"private address", "10.0.0.1:5555", nil, false},
		{"documentation address", testRemote, nil, false},
		{"ipv6 remote", "[2001:db8::1]:5555", nil, false},
		{"no port", "127.0.0.1", nil, false},
		{"empty remote", "", nil, false},
		{"remote with a key", "10.0.0.1:5555", map[string]string{"Authorization": "Bearer " + testKey}, false},
		{"remote with node auth", "10.0.0.1:5555", map[string]string{HeaderNodeAuth: testNodeToken}, true},
		{"remote with wrong node auth", "10.0.0.1:5555", map[string]string{HeaderNodeAuth: "x"}, false},
	}
	for _, br := range businessRequests {
		for _, tt := range tests {
			t.Run(br.method+" "+br.path+"/"+tt.name, func(t *testing.T) {
				f := mustFixture(t, func(c *Config) { c.APIKeys = nil })
				reachAll(f)
				var body io.Reader
				if br.body != "" {
					body = strings.NewReader(br.body)
				}
				hdr := map[string]string{"Authorization": ""}
				for k, v := range tt.header {
					hdr[k] = v
				}
				r := newRequest(br.method, br.path, body, hdr)
				r.RemoteAddr = tt.remote
				rec := f.serve(r)
				if tt.authorised {
					if rec.Code == 401 || rec.Code == 403 || reached(f) == 0 {
						t.Fatalf("status %d, mock calls %d; want authorised; body %s", rec.Code, reached(f), rec.Body.String())
					}
					return
				}
				if rec.Code != http.StatusForbidden {
					t.Fatalf("status %d, want 403; body %s", rec.Code, rec.Body.String())
				}
				if env := mustEnvelope(t, rec); !strings.Contains(env.Message, "protected mode") {
					t.Errorf("message %q does not explain protected mode", env.Message)
				}
				if n := reached(f); n != 0 {
					t.Errorf("rejected request reached the mocks (%d calls)", n)
				}
			})
		}
	}
	t.Run("data endpoints serve remote clients without keys", func(t *testing.T) {
		f := mustFixture(t, func(c *Config) { c.APIKeys = nil })
		okUploads(f)
		content := []byte("0123456789")
		fo := &fakeObject{content: content}
		f.storage.OpenFn = func(context.Context, osprey.UID) (*Object, error) { return fo.object("a.jpg", modTime), nil }
		for _, c := range []apiCase{
			{method: http.MethodPut, path: Prefix + "/upload?" + uploadLink(testUID, "md5", md5hex(content)).Encode()},
			{method: http.MethodPut, path: Prefix + "/upload/multi?" + uploadLink(testUID, "md5", md5hex(content), "chunkNum", "1").Encode()},
			{method: http.MethodPut, path: Prefix + "/upload/merge?" + uploadLink(testUID, "md5", md5hex(content), "num", "1", "size", "10").Encode()},
			{method: http.MethodGet, path: dlPath("a.jpg", "1")},
			{method: http.MethodHead, path: dlPath("a.jpg", "1")},
		} {
			r := newRequest(c.method, c.path, strings.NewReader(string(content)), map[string]string{"Authorization": ""})
			r.RemoteAddr = "203.0.113.9:40000"
			if rec := f.serve(r); rec.Code != http.StatusOK {
				t.Errorf("%s %s from a remote client in protected mode: %d %s", c.method, c.path, rec.Code, rec.Body.String())
			}
		}
	})
	t.Run("warning logged at start", func(t *testing.T) {
		f := mustFixture(t, func(c *Config) { c.APIKeys = nil })
		if !strings.Contains(f.logs.String(), "protected mode") {
			t.Errorf("no protected-mode warning in the log: %s", f.logs.String())
		}
	})
}

func TestAuthNodeRoutes(t *testing.T) {
	routes := []struct{ method, path, body string }{
		{http.MethodPost, "/internal/v1/apply", "cmd"},
		{http.MethodGet, "/internal/v1/readindex", ""},
		{http.MethodPut, "/internal/v1/chunks/1/2/0", "abc"},
		{http.MethodGet, "/internal/v1/chunks/1/2/0", ""},
		{http.MethodDelete, "/internal/v1/chunks/1/2/0", ""},
	}
	tests := []struct {
		name       string
		token      string // what the node expects
		header     map[string]string
		remote     string
		keys       []string
		authorised bool
	}{
		{"right token", testNodeToken, map[string]string{HeaderNodeAuth: testNodeToken}, testRemote, []string{testKey}, true},
		{"no token", testNodeToken, nil, testRemote, []string{testKey}, false},
		{"wrong token", testNodeToken, map[string]string{HeaderNodeAuth: "wrong"}, testRemote, []string{testKey}, false},
		{"token prefix", testNodeToken, map[string]string{HeaderNodeAuth: testNodeToken[:5]}, testRemote, []string{testKey}, false},
		{"API key is not enough", testNodeToken, map[string]string{"Authorization": "Bearer " + testKey}, testRemote, []string{testKey}, false},
		{"loopback is not enough", testNodeToken, nil, "127.0.0.1:1", nil, false},
		{"node token unknown yet", "", map[string]string{HeaderNodeAuth: "anything"}, "127.0.0.1:1", nil, false},
	}
	for _, rt := range routes {
		for _, tt := range tests {
			t.Run(rt.method+" "+rt.path+"/"+tt.name, func(t *testing.T) {
				f := mustFixture(t, func(c *Config) { c.APIKeys = tt.keys })
				token := tt.token
				f.internal.NodeAuthTokenFn = func() string { return token }
				reachAll(f)
				hdr := map[string]string{"Authorization": ""}
				for k, v := range tt.header {
					hdr[k] = v
				}
				var body io.Reader
				if rt.body != "" {
					body = strings.NewReader(rt.body)
				}
				r := newRequest(rt.method, rt.path, body, hdr)
				r.RemoteAddr = tt.remote
				rec := f.serve(r)
				if tt.authorised {
					if rec.Code == 401 || rec.Code == 403 || reached(f) == 0 {
						t.Fatalf("status %d, mock calls %d; want authorised; body %s", rec.Code, reached(f), rec.Body.String())
					}
					return
				}
				if rec.Code != http.StatusForbidden {
					t.Fatalf("status %d, want 403; body %s", rec.Code, rec.Body.String())
				}
				mustEnvelope(t, rec)
				if n := reached(f); n != 0 {
					t.Errorf("rejected request reached the mocks (%d calls)", n)
				}
			})
		}
	}
}

func TestNodeAuthToken(t *testing.T) {
	if got := NodeAuthToken(nil); got != "" {
		t.Errorf("NodeAuthToken(nil) = %q, want empty", got)
	}
	a, b := NodeAuthToken([]byte("secret-a")), NodeAuthToken([]byte("secret-b"))
	if a == "" || a == b || a != NodeAuthToken([]byte("secret-a")) {
		t.Errorf("tokens not deterministic per secret: %q %q", a, b)
	}
	if strings.Contains(a, "secret") || len(a) != 64 {
		t.Errorf("token %q should be a 64-hex HMAC, not the secret", a)
	}
	if a == signFields([]byte("secret-a"), "osprey node rpc v1") {
		t.Errorf("node token must not be usable as a link signature")
	}
}

func TestBootstrapInfo(t *testing.T) {
	f := mustFixture(t)
	f.internal.CheckJoinTokenFn = func(tok string) bool { return tok == "join-me" }
	f.internal.BootstrapInfoFn = func() BootstrapInfo {
		return BootstrapInfo{ID: "n1", RaftAddr: "10.0.0.1:7000", HTTPAddr: "10.0.0.1:8080", ClusterID: "c1"}
	}
	for _, c := range []apiCase{
		{name: "no token", method: http.MethodGet, path: "/internal/v1/bootstrap-info", wantCode: 403, wantBody: "join token"},
		{name: "wrong token", method: http.MethodGet, path: "/internal/v1/bootstrap-info", header: map[string]string{"X-Osprey-Join-Token": "x"}, wantCode: 403},
		{name: "right token without key", method: http.MethodGet, path: "/internal/v1/bootstrap-info",
			header: map[string]string{"X-Osprey-Join-Token": "join-me", "Authorization": ""}, wantCode: 200,
			wantBody: `"data":{"id":"n1","raft_addr":"10.0.0.1:7000","http_addr":"10.0.0.1:8080","has_state":false,"cluster_id":"c1","leader":""}`},
	} {
		t.Run(c.name, func(t *testing.T) { f.check(t, c) })
	}
}

func TestClusterRoutes(t *testing.T) {
	f := mustFixture(t)
	wid := int64(3)
	f.cluster.StatusFn = func(context.Context) (ClusterStatus, error) {
		return ClusterStatus{ID: "n1", ClusterID: "c1", State: "Leader", Term: 4,
			Members: []MemberInfo{{ID: "n1", RaftAddr: "r1", HTTPAddr: "h1", Suffrage: "Voter", WorkerID: &wid}}}, nil
	}
	f.cluster.NodesFn = func(context.Context) ([]NodeInfo, error) {
		return []NodeInfo{{MemberInfo: MemberInfo{ID: "n1"}, Leader: true, Reachable: true, RTTMillis: 0.5}}, nil
	}
	var joined JoinRequest
	f.cluster.JoinFn = func(_ context.Context, req JoinRequest) (JoinResult, error) {
		if req.Token != "good" {
			return JoinResult{}, osprey.ErrForbidden
		}
		joined = req
		return JoinResult{ClusterID: "c1", Leader: "n1"}, nil
	}
	var removed string
	f.cluster.RemoveFn = func(_ context.Context, id string) error {
		if id == "ghost" {
			return osprey.ErrNotFound
		}
		removed = id
		return nil
	}
	var transferTo = "unset"
	f.cluster.TransferLeadershipFn = func(_ context.Context, id string) error { transferTo = id; return nil }
	f.cluster.LeaderHTTPFn = func() string { return "10.0.0.2:8080" }

	for _, c := range []apiCase{
		{name: "status", method: http.MethodGet, path: "/cluster/status", wantCode: 200,
			wantBody: `"members":[{"id":"n1","raft_addr":"r1","http_addr":"h1","suffrage":"Voter","worker_id":3}]`},
		{name: "nodes", method: http.MethodGet, path: "/cluster/nodes", wantCode: 200,
			wantBody: `"leader":true,"reachable":true,"rtt_ms":0.5`},
		{name: "join", method: http.MethodPost, path: "/cluster/join", header: map[string]string{"Authorization": ""},
			body: `{"id":"n2","raft_addr":"r2","http_addr":"h2","token":"good"}`, wantCode: 200,
			wantBody: `"data":{"cluster_id":"c1","leader":"n1"}`},
		{name: "join bad token", method: http.MethodPost, path: "/cluster/join",
			body: `{"id":"n2","raft_addr":"r2","token":"bad"}`, wantCode: 403},
		{name: "join no token", method: http.MethodPost, path: "/cluster/join",
			body: `{"id":"n2","raft_addr":"r2"}`, wantCode: 401, wantBody: "join token missing"},
		{name: "join no id", method: http.MethodPost, path: "/cluster/join",
			body: `{"raft_addr":"r2","token":"good"}`, wantCode: 400, wantBody: "id is required"},
		{name: "join no raft addr", method: http.MethodPost, path: "/cluster/join",
			body: `{"id":"n2","token":"good"}`, wantCode: 400, wantBody: "raft_addr is required"},
		{name: "join malformed", method: http.MethodPost, path: "/cluster/join", body: `{"id":`, wantCode: 400, wantBody: "malformed JSON"},
		{name: "join trailing data", method: http.MethodPost, path: "/cluster/join", body: `{"id":"a"} {}`, wantCode: 400, wantBody: "trailing data"},
		{name: "join too large", method: http.MethodPost, path: "/cluster/join",
			body: `{"id":"` + strings.Repeat("a", 64<<10) + `"}`, wantCode: 413},
		{name: "remove", method: http.MethodDelete, path: "/cluster/nodes/n3", wantCode: 200, wantBody: `"data":{"removed":"n3"}`},
		{name: "remove unknown", method: http.MethodDelete, path: "/cluster/nodes/ghost", wantCode: 404},
		{name: "transfer to id", method: http.MethodPost, path: "/cluster/leader-transfer", body: `{"id":"n2"}`,
			wantCode: 200, wantBody: `"data":{"leader":"10.0.0.2:8080"}`},
		{name: "transfer bad body", method: http.MethodPost, path: "/cluster/leader-transfer", body: `[`, wantCode: 400},
	} {
		t.Run(c.name, func(t *testing.T) { f.check(t, c) })
	}
	if joined.ID != "n2" || joined.RaftAddr != "r2" || joined.HTTPAddr != "h2" {
		t.Errorf("Join got %+v", joined)
	}
	if removed != "n3" {
		t.Errorf("Remove got %q", removed)
	}
	if transferTo != "n2" {
		t.Errorf("TransferLeadership got %q", transferTo)
	}
	t.Run("transfer without body", func(t *testing.T) {
		transferTo = "unset"
		f.check(t, apiCase{method: http.MethodPost, path: "/cluster/leader-transfer", wantCode: 200})
		if transferTo != "" {
			t.Errorf("TransferLeadership got %q, want \"\" (any follower)", transferTo)
		}
	})
	if n := f.cluster.Calls("Join"); n != 2 {
		t.Errorf("Join called %d times, want 2 (invalid bodies must not reach it)", n)
	}
}

func TestInternalRoutes(t *testing.T) {
	f := mustFixture(t)
	var gotCmd []byte
	f.internal.ApplyEncodedFn = func(_ context.Context, cmd []byte) ([]byte, error) {
		gotCmd = cmd
		if string(cmd) == "follower" {
			return nil, osprey.ErrNotLeader
		}
		return []byte(`{"ok":true,"n":2}`), nil
	}
	f.internal.ReadIndexFn = func(context.Context) (uint64, error) { return 18446744073709551615, nil }
	node := map[string]string{"Authorization": "", HeaderNodeAuth: testNodeToken}
	for _, c := range []apiCase{
		{name: "apply", method: http.MethodPost, path: "/internal/v1/apply", header: node, body: "\x01\x02cmd",
			wantCode: 200, wantBody: `"data":{"data":{"ok":true,"n":2}}`},
		{name: "apply on follower", method: http.MethodPost, path: "/internal/v1/apply", header: node, body: "follower", wantCode: 503},
		{name: "apply too large", method: http.MethodPost, path: "/internal/v1/apply", header: node,
			body: strings.Repeat("x", 1<<20+1), wantCode: 413},
		{name: "readindex as decimal string", method: http.MethodGet, path: "/internal/v1/readindex", header: node,
			wantCode: 200, wantBody: `"data":"18446744073709551615"`},
	} {
		t.Run(c.name, func(t *testing.T) { f.check(t, c) })
	}
	if string(gotCmd) != "follower" {
		t.Errorf("last command %q", gotCmd)
	}
	if n := f.internal.Calls("ApplyEncoded"); n != 2 {
		t.Errorf("ApplyEncoded called %d times, want 2 (not for the oversized body)", n)
	}
}

func TestPanicIsInternalError(t *testing.T) {
	f := mustFixture(t)
	f.cluster.StatusFn = func(context.Context) (ClusterStatus, error) { panic("secret detail 42") }
	rec, env := f.check(t, apiCase{method: http.MethodGet, path: "/cluster/status", wantCode: 500})
	if env.Message != "internal error" || env.Code != CodeInternal {
		t.Errorf("envelope %+v", env)
	}
	if strings.Contains(rec.Body.String(), "secret detail") {
		t.Errorf("panic value leaked: %s", rec.Body.String())
	}
	if !strings.Contains(f.logs.String(), "secret detail 42") {
		t.Errorf("panic not logged")
	}
}

func TestMetrics(t *testing.T) {
	f := mustFixture(t)
	f.do(http.MethodGet, Prefix+"/ping", "", nil)
	f.do(http.MethodGet, Prefix+"/ping", "", nil)
	f.do(http.MethodGet, "/cluster/status", "", map[string]string{"Authorization": ""})
	rec := f.do(http.MethodGet, "/metrics", "", nil)
	if rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	body := rec.Body.String()
	for _, want := range []string{
		`osprey_http_requests_total{code="200",method="GET",route="/api/storage/v0/ping"} 2`,
		`osprey_http_requests_total{code="401",method="GET",route="/cluster/status"} 1`,
		`osprey_http_request_duration_seconds_count{route="/api/storage/v0/ping"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestMetricsClientGone: a request whose client went away before the
// answer is counted as 499, not as the 200 the handler never delivered.
func TestMetricsClientGone(t *testing.T) {
	f := mustFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	f.cluster.StatusFn = func(context.Context) (ClusterStatus, error) {
		cancel() // the client disconnects while the handler runs
		return ClusterStatus{ID: "n1"}, nil
	}
	f.serve(newRequest(http.MethodGet, "/cluster/status", nil, nil).WithContext(ctx))
	body := f.do(http.MethodGet, "/metrics", "", nil).Body.String()
	if want := `osprey_http_requests_total{code="499",method="GET",route="/cluster/status"} 1`; !strings.Contains(body, want) {
		t.Errorf("metrics lack %q:\n%s", want, body)
	}
	if strings.Contains(body, `code="200",method="GET",route="/cluster/status"`) {
		t.Error("the abandoned request was counted as 200")
	}
}

// --- leader forwarding ---

// leaderStub is an httptest server standing in for the leader; it records
// what reaches it.
type leaderStub struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []*http.Request
	bod []string
}

func newLeaderStub(t *testing.T, h http.HandlerFunc) *leaderStub {
	t.Helper()
	ls := &leaderStub{}
	ls.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ls.mu.Lock()
		ls.got = append(ls.got, r.Clone(context.Background()))
		ls.bod = append(ls.bod, string(b))
		ls.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(ls.srv.Close)
	return ls
}

func (ls *leaderStub) addr() string { return strings.TrimPrefix(ls.srv.URL, "http://") }

func (ls *leaderStub) requests() ([]*http.Request, []string) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return append([]*http.Request(nil), ls.got...), append([]string(nil), ls.bod...)
}

func follower(f *fixture, leader string) {
	f.cluster.IsLeaderFn = func() bool { return false }
	f.cluster.LeaderHTTPFn = func() string { return leader }
	reachAll(f)
}

func TestLeaderOnlyRedirect(t *testing.T) {
	f := mustFixture(t)
	follower(f, "10.0.0.9:8080")
	body := `{"id":"n2","raft_addr":"r2","token":"t"}`
	rec, env := f.check(t, apiCase{method: http.MethodPost, path: "/cluster/join?redirect", body: body, wantCode: http.StatusTemporaryRedirect})
	loc, err := url.Parse(rec.Header().Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if loc.Scheme != "http" || loc.Host != "10.0.0.9:8080" || loc.Path != "/cluster/join" {
		t.Errorf("Location %q", loc)
	}
	if !strings.Contains(env.Message, "10.0.0.9:8080") {
		t.Errorf("message %q does not name the leader", env.Message)
	}
	if n := f.cluster.Calls("Join"); n != 0 {
		t.Errorf("Join called on a follower")
	}
	// The business routes behind leaderOnly redirect too, with their path.
	rec, _ = f.check(t, apiCase{method: http.MethodDelete, path: "/cluster/nodes/n7?redirect=1", wantCode: http.StatusTemporaryRedirect})
	if loc := rec.Header().Get("Location"); loc != "http://10.0.0.9:8080/cluster/nodes/n7?redirect=1" {
		t.Errorf("Location %q", loc)
	}
}

func TestLeaderOnlyProxies(t *testing.T) {
	ls := newLeaderStub(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set(HeaderRequestID, r.Header.Get(HeaderRequestID))
		w.Header().Set("X-From", "leader")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"code":0,"message":"ok","data":{"cluster_id":"c9","leader":"n1"},"request_id":"`+r.Header.Get(HeaderRequestID)+`"}`+"\n")
	})
	tests := []struct {
		name   string
		keys   []string
		method string
		path   string
		body   string
		header map[string]string
	}{
		{"join", []string{testKey}, http.MethodPost, "/cluster/join?x=1", `{"id":"n2","raft_addr":"r2","token":"t"}`, map[string]string{"Authorization": ""}},
		{"remove with key", []string{testKey}, http.MethodDelete, "/cluster/nodes/n3", "", nil},
		{"transfer in protected mode", nil, http.MethodPost, "/cluster/leader-transfer", `{"id":"n2"}`, map[string]string{"Authorization": ""}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustFixture(t, func(c *Config) { c.APIKeys = tt.keys })
			follower(f, ls.addr())
			r := newRequest(tt.method, tt.path, strings.NewReader(tt.body), tt.header)
			if tt.keys == nil {
				r.RemoteAddr = "127.0.0.1:4242" // protected mode serves loopback
			}
			r.Header.Set(HeaderRequestID, "fwd-"+tt.name)
			rec := f.serve(r)
			if rec.Code != http.StatusAccepted {
				t.Fatalf("status %d, want the leader's 202; body %s", rec.Code, rec.Body.String())
			}
			if rec.Header().Get("X-From") != "leader" {
				t.Errorf("leader's headers not relayed")
			}
			if ids := rec.Header().Values(HeaderRequestID); len(ids) != 1 || ids[0] != "fwd-"+tt.name {
				t.Errorf("%s values %q, want exactly [fwd-%s]", HeaderRequestID, ids, tt.name)
			}
			env := decodeEnvelope(t, rec)
			if !strings.Contains(string(env.Data), "c9") {
				t.Errorf("leader's body not relayed: %s", rec.Body.String())
			}
			got, bodies := ls.requests()
			if len(got) != i+1 {
				t.Fatalf("leader saw %d requests, want %d", len(got), i+1)
			}
			lr, lb := got[i], bodies[i]
			if lr.Method != tt.method || lr.URL.RequestURI() != tt.path || lb != tt.body {
				t.Errorf("leader got %s %s %q, want %s %s %q", lr.Method, lr.URL.RequestURI(), lb, tt.method, tt.path, tt.body)
			}
			if lr.Header.Get(HeaderForwarded) == "" {
				t.Errorf("forwarded request lacks %s", HeaderForwarded)
			}
			if lr.Header.Get(HeaderRequestID) != "fwd-"+tt.name {
				t.Errorf("forwarded request id %q", lr.Header.Get(HeaderRequestID))
			}
			if lr.Host != ls.addr() {
				t.Errorf("forwarded Host %q, want %q", lr.Host, ls.addr())
			}
			if tt.header == nil && lr.Header.Get("Authorization") != "Bearer "+testKey {
				t.Errorf("API key not forwarded: %q", lr.Header.Get("Authorization"))
			}
			// The follower already authorised the request; the leader
			// must not refuse it for coming from a non-loopback peer.
			if lr.Header.Get(HeaderNodeAuth) != testNodeToken {
				t.Errorf("forwarded request lacks node credentials (%q)", lr.Header.Get(HeaderNodeAuth))
			}
			if n := f.cluster.Total("IsLeader", "LeaderHTTP"); n != 0 {
				t.Errorf("follower ran the handler itself (%d calls)", n)
			}
		})
	}
}

func TestLeaderOnlyUnavailable(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closedAddr := strings.TrimPrefix(closed.URL, "http://")
	closed.Close()

	hangup := newLeaderStub(t, func(w http.ResponseWriter, r *http.Request) {
		// The leader got the request and died before answering.
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})

	tests := []struct {
		name      string
		leader    string
		header    map[string]string
		wantCode  int
		wantInMsg string
	}{
		{"no leader", "", nil, 503, "no leader"},
		{"already forwarded", "10.0.0.9:8080", map[string]string{HeaderForwarded: "1"}, 503, "no leader"},
		{"no leader and forwarded", "", map[string]string{HeaderForwarded: "1"}, 503, ""},
		{"leader unreachable", closedAddr, nil, 503, "leader unreachable"},
		{"leader hung up", hangup.addr(), nil, 504, "forwarding to leader"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustFixture(t)
			follower(f, tt.leader)
			_, env := f.check(t, apiCase{method: http.MethodPost, path: "/cluster/join", header: tt.header,
				body: `{"id":"n2","raft_addr":"r2","token":"t"}`, wantCode: tt.wantCode, wantBody: tt.wantInMsg})
			if tt.wantCode == 503 && env.Code != CodeUnavailable || tt.wantCode == 504 && env.Code != CodeIndeterminate {
				t.Errorf("code %d", env.Code)
			}
			if n := f.cluster.Calls("Join"); n != 0 {
				t.Errorf("Join ran on a follower")
			}
		})
	}
}

func TestLeaderOnlyOnLeader(t *testing.T) {
	f := mustFixture(t)
	f.cluster.JoinFn = func(context.Context, JoinRequest) (JoinResult, error) { return JoinResult{ClusterID: "c1"}, nil }
	// A request forwarded by a follower is served by the leader itself.
	f.check(t, apiCase{method: http.MethodPost, path: "/cluster/join", header: map[string]string{HeaderForwarded: "1"},
		body: `{"id":"n2","raft_addr":"r2","token":"t"}`, wantCode: 200})
	f.check(t, apiCase{method: http.MethodPost, path: "/cluster/join?redirect",
		body: `{"id":"n2","raft_addr":"r2","token":"t"}`, wantCode: 200})
	if n := f.cluster.Calls("Join"); n != 2 {
		t.Errorf("Join called %d times, want 2", n)
	}
	if n := f.cluster.Calls("LeaderHTTP"); n != 0 {
		t.Errorf("leader looked up the leader %d times", n)
	}
}

func TestLeaderOnlyChecksAuthFirst(t *testing.T) {
	ls := newLeaderStub(t, func(w http.ResponseWriter, r *http.Request) {})
	f := mustFixture(t)
	follower(f, ls.addr())
	f.check(t, apiCase{method: http.MethodDelete, path: "/cluster/nodes/n2", header: map[string]string{"Authorization": ""}, wantCode: 401})
	f.check(t, apiCase{method: http.MethodDelete, path: "/cluster/nodes/n2?redirect", header: map[string]string{"Authorization": "Bearer nope-nope-nope"}, wantCode: 403})
	if got, _ := ls.requests(); len(got) != 0 {
		t.Errorf("unauthorised request forwarded to the leader")
	}
}

// The forwarded request must carry the original request's context: a
// client that hangs up cancels the forwarded call too.
func TestLeaderOnlyForwardsOverRealServer(t *testing.T) {
	ls := newLeaderStub(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"code":0,"message":"ok","data":null,"request_id":"x"}`)
	})
	f := mustFixture(t)
	follower(f, ls.addr())
	front := httptest.NewServer(f.srv)
	t.Cleanup(front.Close)
	resp, err := http.Post(front.URL+"/cluster/join", "application/json", strings.NewReader(`{"id":"a","raft_addr":"b","token":"c"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if got, _ := ls.requests(); len(got) != 1 {
		t.Fatalf("leader saw %d requests", len(got))
	}
}

// TestNoSniffEverywhere: every answer, JSON, error or probe, tells the
// browser not to sniff it into an active type.
func TestNoSniffEverywhere(t *testing.T) {
	f := mustFixture(t)
	for _, target := range []string{"/nope", "/livez", Prefix + "/ping", "/cluster/status"} {
		rec := f.do(http.MethodGet, target, "", nil)
		if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s (%d): X-Content-Type-Options %q", target, rec.Code, got)
		}
	}
}

// TestMetricsRequireKey: /metrics is open by default and needs an API key
// with MetricsRequireKey.
func TestMetricsRequireKey(t *testing.T) {
	open := mustFixture(t)
	if rec := open.do(http.MethodGet, "/metrics", "", map[string]string{"Authorization": ""}); rec.Code != 200 {
		t.Fatalf("default /metrics without a key: %d", rec.Code)
	}
	f := mustFixture(t, func(c *Config) { c.MetricsRequireKey = true })
	if rec := f.do(http.MethodGet, "/metrics", "", map[string]string{"Authorization": ""}); rec.Code != http.StatusUnauthorized {
		t.Fatalf("/metrics without a key: %d", rec.Code)
	}
	if rec := f.do(http.MethodGet, "/metrics", "", map[string]string{"Authorization": "Bearer wrong-key-000"}); rec.Code != http.StatusForbidden {
		t.Fatalf("/metrics with a wrong key: %d", rec.Code)
	}
	if rec := f.do(http.MethodGet, "/metrics", "", nil); rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics with the key: %d", rec.Code)
	}
}
