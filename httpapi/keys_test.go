package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osprey-storage/osprey"
)

// memKeys is Keys over a map (the node's is the FSM).
type memKeys struct {
	mu     sync.Mutex
	keys   map[string]KeyInfo
	hashes map[string]string
}

var _ Keys = (*memKeys)(nil)

func newMemKeys() *memKeys { return &memKeys{keys: map[string]KeyInfo{}, hashes: map[string]string{}} }

func (m *memKeys) CreateKey(_ context.Context, k NewKey) (KeyInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.keys[k.ID]; ok {
		return KeyInfo{}, fmt.Errorf("%w: key %s exists", osprey.ErrConflict, k.ID)
	}
	for _, p := range k.Prefixes {
		if p == "" {
			return KeyInfo{}, fmt.Errorf("%w: empty prefix", osprey.ErrInvalid)
		}
	}
	info := KeyInfo{ID: k.ID, Tenant: k.Tenant, ReadOnly: k.ReadOnly, Prefixes: append([]string{}, k.Prefixes...),
		Description: k.Description, CreatedAt: time.Date(2026, 12, 4, 5, 0, 0, 0, time.UTC)}
	if info.Tenant == "" {
		info.Tenant = k.ID
	}
	m.keys[k.ID], m.hashes[k.ID] = info, k.Hash
	return info, nil
}

func (m *memKeys) ListKeys(context.Context) ([]KeyInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []KeyInfo{}
	for _, k := range m.keys {
		out = append(out, k)
	}
	return out, nil
}

func (m *memKeys) RevokeKey(_ context.Context, id string) (KeyInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.keys[id]
	if !ok {
		return KeyInfo{}, fmt.Errorf("%w: key %q", osprey.ErrNotFound, id)
	}
	if k.RevokedAt == nil {
		at := time.Date(2026, 12, 4, 6, 0, 0, 0, time.UTC)
		k.RevokedAt = &at
		m.keys[id] = k
	}
	return k, nil
}

func (m *memKeys) LookupKey(id string) (KeyInfo, string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.keys[id]
	return k, m.hashes[id], ok
}

// createKey creates a key through the API and returns its token and id.
func (f *fixture) createKey(t *testing.T, body string) (token, id string) {
	t.Helper()
	rec := f.do("POST", "/cluster/keys", body, nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("create key: %d %s", rec.Code, rec.Body)
	}
	var env struct{ Data KeyCreateReply }
	if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
		t.Fatal(err)
	}
	return env.Data.Key, env.Data.ID
}

func bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

// TestScopedKeyAuth: a scoped key authenticates on the storage routes
// with its Principal in the context, is refused on admin routes, a
// read-only one on every write, names outside its prefixes are refused,
// and a wrong secret, an unknown id or a revoked key answer 401.
func TestScopedKeyAuth(t *testing.T) {
	keys := newMemKeys()
	f := mustFixture(t, func(c *Config) { c.Keys = keys })
	var seen []osprey.Principal
	var mu sync.Mutex
	f.storage.CreateFilesFn = func(ctx context.Context, items []NewFile) ([]osprey.UID, error) {
		mu.Lock()
		seen = append(seen, osprey.PrincipalFrom(ctx))
		mu.Unlock()
		return make([]osprey.UID, len(items)), nil
	}
	f.storage.StatFn = func(ctx context.Context, uid osprey.UID) (FileInfo, error) {
		return FileInfo{UID: uid, Name: "photos/a.jpg", State: "complete"}, nil
	}
	f.storage.ResumeFn = func(_ context.Context, items []ResumeItem) ([]osprey.UID, error) {
		return make([]osprey.UID, len(items)), nil
	}

	rw, rwID := f.createKey(t, `{"tenant":"acme","prefixes":["photos/"],"description":"app"}`)
	ro, _ := f.createKey(t, `{"read_only":true}`)
	if !strings.HasPrefix(rw, "osk_"+rwID+"_") || len(rw) != len("osk_")+16+1+43 {
		t.Fatalf("token %q for id %s", rw, rwID)
	}
	if keys.hashes[rwID] == "" || strings.Contains(keys.hashes[rwID], rw[len("osk_")+17:]) {
		t.Fatal("the store got no hash, or the secret itself")
	}
	if logs := f.logs.String(); strings.Contains(logs, rw) || strings.Contains(logs, ro) {
		t.Fatal("a key's secret reached the log")
	}

	link := func(path string) string { return `{"filePath":["` + path + `"]}` }
	cases := []struct {
		name, method, target, body string
		hdr                        map[string]string
		want                       int
	}{
		{"rw link in prefix", "POST", Prefix + "/link/upload", link("photos/cat.jpg"), bearer(rw), 200},
		{"rw link outside prefix", "POST", Prefix + "/link/upload", link("docs/a.pdf"), bearer(rw), 403},
		{"rw resume outside prefix", "POST", Prefix + "/resume", `{"data":[{"md5":"` + strings.Repeat("a", 32) + `","path":"x.jpg"}]}`, bearer(rw), 403},
		{"rw resume in prefix", "POST", Prefix + "/resume", `{"data":[{"md5":"` + strings.Repeat("a", 32) + `","path":"photos/x.jpg"}]}`, bearer(rw), 200},
		{"rw object", "GET", Prefix + "/object?uid=5", "", bearer(rw), 200},
		{"rw admin route", "GET", "/cluster/status", "", bearer(rw), 403},
		{"rw keys route", "GET", "/cluster/keys", "", bearer(rw), 403},
		{"rw creates no key", "POST", "/cluster/keys", `{}`, bearer(rw), 403},
		{"rw pprof", "GET", "/debug/pprof/heap", "", bearer(rw), 403},
		{"ro link", "POST", Prefix + "/link/upload", link("a.jpg"), bearer(ro), 403},
		{"ro resume", "POST", Prefix + "/resume", `{"data":[{"md5":"` + strings.Repeat("a", 32) + `","path":"x.jpg"}]}`, bearer(ro), 403},
		{"ro delete", "DELETE", Prefix + "/object?uid=5", "", bearer(ro), 403},
		{"ro upload with a link", "PUT", Prefix + "/upload?uid=5", "abc", bearer(ro), 403},
		{"ro chunk with a link", "PUT", Prefix + "/upload/multi?uid=5", "abc", bearer(ro), 403},
		{"ro merge with a link", "PUT", Prefix + "/upload/merge?uid=5", "", bearer(ro), 403},
		{"ro object", "GET", Prefix + "/object?uid=5", "", bearer(ro), 200},
		{"ro download links", "POST", Prefix + "/link/download", `{"uid":["5"]}`, bearer(ro), 200},
		{"wrong secret", "GET", Prefix + "/object?uid=5", "", bearer(rw[:len(rw)-3] + "xyz"), 401},
		{"unknown id", "GET", Prefix + "/object?uid=5", "", bearer("osk_0000000000000000_" + strings.Repeat("A", 43)), 401},
		{"malformed", "GET", Prefix + "/object?uid=5", "", bearer("osk_nosecret"), 401},
		{"static key still admin", "GET", "/cluster/keys", "", nil, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := f.do(tc.method, tc.target, tc.body, tc.hdr)
			if rec.Code != tc.want {
				t.Fatalf("%s %s: %d, want %d: %s", tc.method, tc.target, rec.Code, tc.want, rec.Body)
			}
		})
	}
	mu.Lock()
	if len(seen) != 1 || seen[0].KeyID != rwID || seen[0].Tenant != "acme" || seen[0].ReadOnly ||
		len(seen[0].Prefixes) != 1 || seen[0].Prefixes[0] != "photos/" {
		t.Fatalf("principals seen by storage: %+v", seen)
	}
	mu.Unlock()

	// Revoke: the key stops authenticating; an unknown id is 404.
	if rec := f.do("DELETE", "/cluster/keys/"+rwID, "", nil); rec.Code != 200 || !strings.Contains(rec.Body.String(), "revoked_at") {
		t.Fatalf("revoke: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do("GET", Prefix+"/object?uid=5", "", bearer(rw)); rec.Code != 401 || !strings.Contains(rec.Body.String(), "revoked") {
		t.Fatalf("revoked key: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do("DELETE", "/cluster/keys/nope", "", nil); rec.Code != 404 {
		t.Fatalf("revoke unknown: %d %s", rec.Code, rec.Body)
	}
	// The listing shows no secret and no hash.
	rec := f.do("GET", "/cluster/keys", "", nil)
	if rec.Code != 200 || strings.Contains(rec.Body.String(), keys.hashes[rwID]) || strings.Contains(rec.Body.String(), "osk_") {
		t.Fatalf("list: %d %s", rec.Code, rec.Body)
	}
}

// TestScopedKeyProtectedMode: with no static key a loopback client is an
// admin, and a scoped key works from anywhere (scoped).
func TestScopedKeyProtectedMode(t *testing.T) {
	f := mustFixture(t, func(c *Config) { c.APIKeys, c.Keys = nil, newMemKeys() })
	f.storage.StatFn = func(ctx context.Context, uid osprey.UID) (FileInfo, error) {
		return FileInfo{UID: uid, State: "complete"}, nil
	}
	loop := func(r *http.Request) *http.Request { r.RemoteAddr = "127.0.0.1:5000"; return r }
	rec := f.serve(loop(newRequest("POST", "/cluster/keys", strings.NewReader(`{"read_only":true}`), map[string]string{"Authorization": ""})))
	if rec.Code != 200 {
		t.Fatalf("loopback create: %d %s", rec.Code, rec.Body)
	}
	var env struct{ Data KeyCreateReply }
	if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
		t.Fatal(err)
	}
	if rec := f.do("GET", Prefix+"/object?uid=5", "", bearer(env.Data.Key)); rec.Code != 200 {
		t.Fatalf("remote scoped read: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do("GET", Prefix+"/object?uid=5", "", map[string]string{"Authorization": ""}); rec.Code != 403 {
		t.Fatalf("remote without key: %d %s", rec.Code, rec.Body)
	}
	// A loopback client presenting a scoped key is that key, not an admin.
	if rec := f.serve(loop(newRequest("GET", "/cluster/keys", nil, bearer(env.Data.Key)))); rec.Code != 403 {
		t.Fatalf("loopback with a scoped key on an admin route: %d %s", rec.Code, rec.Body)
	}
}
