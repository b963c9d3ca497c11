package node_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/osprey-storage/osprey/node"
)

// keyed is the test API client acting with a bearer token.
type keyed struct {
	api
	token string
}

func (k keyed) call(method, path string, body any) (int, envelope) {
	k.t.Helper()
	var r *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	} else {
		r = bytes.NewReader(nil)
	}
	code, env, _ := k.do(method, path, r, map[string]string{"Authorization": "Bearer " + k.token})
	return code, env
}

type createdKey struct {
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	Key    string `json:"key"`
}

func createKey(t *testing.T, admin api, req map[string]any) createdKey {
	t.Helper()
	var k createdKey
	admin.ok("POST", "/cluster/keys", req, &k)
	if !strings.HasPrefix(k.Key, "osk_"+k.ID+"_") {
		t.Fatalf("key %+v", k)
	}
	return k
}

// uploadAs creates name with k's key and uploads data through the link.
func uploadAs(t *testing.T, k keyed, name string, data []byte) string {
	t.Helper()
	code, env := k.call("POST", "/api/storage/v0/link/upload", map[string]any{"filePath": []string{name}})
	if code != 200 {
		t.Fatalf("link %s: %d %s", name, code, env.Message)
	}
	var links []uploadLink
	if err := json.Unmarshal(env.Data, &links); err != nil {
		t.Fatal(err)
	}
	if code, env, _ := k.do("PUT", links[0].URL.Single+"&md5="+md5hex(data), bytes.NewReader(data), nil); code != 200 {
		t.Fatalf("upload %s: %d %s", name, code, env.Message)
	}
	return links[0].UID
}

func listed(t *testing.T, k keyed) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	cursor := ""
	for {
		code, env := k.call("GET", "/api/storage/v0/objects?limit=2&cursor="+cursor, nil)
		if code != 200 {
			t.Fatalf("objects: %d %s", code, env.Message)
		}
		var page struct {
			Items []struct {
				UID string `json:"uid"`
			} `json:"items"`
			Next string `json:"next_cursor"`
		}
		if err := json.Unmarshal(env.Data, &page); err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			out[it.UID] = true
		}
		if page.Next == "" {
			return out
		}
		cursor = page.Next
	}
}

// TestScopedKeys runs scoped API keys on a real 3-node cluster (protected
// mode: the loopback test client is the admin): a prefix key of tenant
// acme creates files only under its prefix and its files carry the
// tenant; a read-only key of the same tenant reads them but every write
// answers 403; a key of another tenant gets 404 for acme's uids and never
// lists them; scoped keys get 403 on admin routes; a key revoked through
// one node stops working on another once the entry is applied.
func TestScopedKeys(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.Leader()
	var far *node.Node
	for _, n := range c.live() {
		if n != leader {
			far = n
		}
	}
	admin := apiOf(t, leader)
	acme := createKey(t, admin, map[string]any{"tenant": "acme", "prefixes": []string{"photos/"}, "description": "acme app"})
	acmeRO := createKey(t, admin, map[string]any{"tenant": "acme", "read_only": true})
	beta := createKey(t, admin, map[string]any{})
	if beta.Tenant != beta.ID {
		t.Fatalf("tenant of a key without one: %q, want its id %q", beta.Tenant, beta.ID)
	}
	rw := keyed{apiOf(t, far), acme.Key} // through a follower: forwarded commands keep the tenant
	ro := keyed{apiOf(t, leader), acmeRO.Key}
	other := keyed{apiOf(t, far), beta.Key}

	// Creation takes effect everywhere once applied.
	waitFor(t, 10*time.Second, "the keys on "+far.ID(), func() bool {
		code, _ := rw.call("GET", "/api/storage/v0/objects", nil)
		return code == 200
	})

	// Prefixes: acme names files under photos/ only.
	catUID := uploadAs(t, rw, "photos/cat.jpg", content(1, 1000))
	if code, env := rw.call("POST", "/api/storage/v0/link/upload", map[string]any{"filePath": []string{"docs/a.pdf"}}); code != 403 {
		t.Fatalf("link outside the prefix: %d %s", code, env.Message)
	}
	if code, env := rw.call("POST", "/api/storage/v0/resume", map[string]any{"data": []map[string]string{{"md5": md5hex(content(1, 1000)), "path": "x.jpg"}}}); code != 403 {
		t.Fatalf("resume outside the prefix: %d %s", code, env.Message)
	}
	for _, n := range c.live() {
		waitFor(t, 10*time.Second, "the file on "+n.ID(), func() bool {
			f, ok := n.FSM().File(mustUID(t, catUID))
			return ok && f.Tenant == "acme"
		})
	}
	betaUID := uploadAs(t, other, "b.jpg", content(2, 500))
	adminUID := admin.link("admin.jpg")[0].UID
	if f, _ := leader.FSM().File(mustUID(t, adminUID)); f.Tenant != "" {
		t.Fatalf("an admin's file has tenant %q", f.Tenant)
	}

	// Read-only: reads work, every write is 403.
	if code, env := ro.call("GET", "/api/storage/v0/object?uid="+catUID, nil); code != 200 {
		t.Fatalf("read-only read of its tenant's file: %d %s", code, env.Message)
	}
	for _, w := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/api/storage/v0/link/upload", map[string]any{"filePath": []string{"photos/x.jpg"}}},
		{"POST", "/api/storage/v0/resume", map[string]any{"data": []map[string]string{{"md5": md5hex(content(1, 1000)), "path": "photos/y.jpg"}}}},
		{"DELETE", "/api/storage/v0/object?uid=" + catUID, nil},
		{"POST", "/cluster/keys", map[string]any{}},
	} {
		if code, env := ro.call(w.method, w.path, w.body); code != 403 {
			t.Fatalf("read-only %s %s: %d %s", w.method, w.path, code, env.Message)
		}
	}

	// Tenants: another tenant's uid is 404, never 403, on every call.
	for _, p := range []string{"/api/storage/v0/object?uid=", "/api/storage/v0/checkpoint?uid=", "/api/storage/v0/proxy?uid="} {
		if code, env := other.call("GET", p+catUID, nil); code != 404 {
			t.Fatalf("beta GET %s acme's uid: %d %s", p, code, env.Message)
		}
		if code, env := other.call("GET", p+adminUID, nil); code != 404 {
			t.Fatalf("beta GET %s the admin's uid: %d %s", p, code, env.Message)
		}
	}
	if code, env := other.call("DELETE", "/api/storage/v0/object?uid="+catUID, nil); code != 404 {
		t.Fatalf("beta deletes acme's uid: %d %s", code, env.Message)
	}
	code, env := other.call("POST", "/api/storage/v0/link/download", map[string]any{"uid": []string{catUID, betaUID}})
	if code != 200 || !strings.Contains(string(env.Data), "not found") || strings.Count(string(env.Data), "/download?") != 1 {
		t.Fatalf("beta download links: %d %s", code, env.Data)
	}
	if code, env := rw.call("GET", "/api/storage/v0/object?uid="+betaUID, nil); code != 404 {
		t.Fatalf("acme reads beta's uid: %d %s", code, env.Message)
	}
	if got := listed(t, other); len(got) != 1 || !got[betaUID] {
		t.Fatalf("beta lists %v, want only %s", got, betaUID)
	}
	if got := listed(t, rw); len(got) != 1 || !got[catUID] {
		t.Fatalf("acme lists %v, want only %s", got, catUID)
	}
	if got := listed(t, keyed{admin, ""}); !got[catUID] || !got[betaUID] || !got[adminUID] {
		t.Fatalf("the admin lists %v", got)
	}
	if _, err := leader.FSM().File(mustUID(t, catUID)); !err {
		t.Fatal("beta's delete removed acme's file")
	}

	// Admin routes are admins' only.
	for _, p := range []string{"/cluster/status", "/cluster/keys", "/tasks"} {
		if code, env := rw.call("GET", p, nil); code != 403 {
			t.Fatalf("scoped GET %s: %d %s", p, code, env.Message)
		}
	}

	// The list shows the keys without secrets or hashes.
	var keys []map[string]any
	admin.ok("GET", "/cluster/keys", nil, &keys)
	if len(keys) != 3 {
		t.Fatalf("%d keys listed", len(keys))
	}
	for _, k := range keys {
		if _, ok := k["hash"]; ok {
			t.Fatalf("the listing shows a hash: %v", k)
		}
		if _, ok := k["key"]; ok {
			t.Fatalf("the listing shows a secret: %v", k)
		}
	}

	// Revocation through the leader reaches the far node.
	if code, env := other.call("GET", "/api/storage/v0/object?uid="+betaUID, nil); code != 200 {
		t.Fatalf("beta before revocation: %d %s", code, env.Message)
	}
	admin.ok("DELETE", "/cluster/keys/"+beta.ID, nil, nil)
	waitFor(t, 10*time.Second, "the revocation on "+far.ID(), func() bool {
		code, _ := other.call("GET", "/api/storage/v0/object?uid="+betaUID, nil)
		return code == 401
	})
	if code, _, _ := admin.do("DELETE", "/cluster/keys/"+strings.Repeat("0", 16), nil, nil); code != 404 {
		t.Fatalf("revoking an unknown key: %d", code)
	}
	// Still acme's.
	if code, env := rw.call("GET", "/api/storage/v0/object?uid="+catUID, nil); code != 200 {
		t.Fatalf("acme after beta's revocation: %d %s", code, env.Message)
	}
}
