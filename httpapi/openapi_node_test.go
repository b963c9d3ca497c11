package httpapi_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/osprey-storage/osprey/httpapi"
	"github.com/osprey-storage/osprey/node"
)

// TestOpenAPIRealNode validates the replies of a real single-node cluster
// (node.New on loopback TCP, real FSM, chunk store and local backend)
// against httpapi/openapi.json, so the document is checked against what
// the real implementations return, not only the mocks.
func TestOpenAPIRealNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real node")
	}
	const key = "openapi-test-key-1"
	cfg := node.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.HTTPAddr, cfg.RaftAddr = freeAddr(t), freeAddr(t)
	cfg.JoinToken = "openapi-join-token"
	cfg.APIKeys = []string{key}
	cfg.GCGrace = 0
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	n, err := node.New(cfg)
	if err != nil {
		t.Fatalf("new node: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	if err := n.Start(context.Background()); err != nil {
		t.Fatalf("start node: %v", err)
	}
	base := "http://" + n.HTTPAddr()
	client := &http.Client{Timeout: 30 * time.Second}

	// call sends a request, checks the reply against the document and
	// returns its status and body.
	call := func(t *testing.T, method, route, target, body string) (int, []byte) {
		t.Helper()
		if !strings.HasPrefix(target, "/") {
			t.Fatalf("target %q is not a path", target)
		}
		req, err := http.NewRequest(method, base+target, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if err := httpapi.CheckOpenAPI(t, route, method, resp.StatusCode, resp.Header, b); err != nil {
			t.Errorf("%s %s → %d: %v", method, target, resp.StatusCode, err)
		}
		return resp.StatusCode, b
	}
	mustStatus := func(t *testing.T, want int, method, route, target, body string) []byte {
		t.Helper()
		got, b := call(t, method, route, target, body)
		if got != want {
			t.Fatalf("%s %s: status %d, want %d: %s", method, target, got, want, b)
		}
		return b
	}
	data := func(t *testing.T, b []byte, v any) {
		t.Helper()
		var env struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(b, &env); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(env.Data, v); err != nil {
			t.Fatalf("data: %v: %s", err, env.Data)
		}
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("node not ready after 30s")
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}

	mustStatus(t, 200, "GET", "/readyz", "/readyz", "")
	mustStatus(t, 200, "GET", "/livez", "/livez", "")
	mustStatus(t, 200, "GET", "/cluster/status", "/cluster/status", "")
	mustStatus(t, 200, "GET", "/cluster/nodes", "/cluster/nodes", "")
	mustStatus(t, 200, "GET", "/openapi.json", "/openapi.json", "")
	mustStatus(t, 200, "GET", "/console/info", "/console/info", "")

	content := []byte("hello, openapi")
	sum := md5.Sum(content)
	md5hex := hex.EncodeToString(sum[:])
	var links []struct {
		UID string `json:"uid"`
		URL struct {
			Single string `json:"single"`
		} `json:"url"`
	}
	data(t, mustStatus(t, 200, "POST", "/api/storage/v0/link/upload", httpapi.Prefix+"/link/upload", `{"filePath":["docs/a.txt"]}`), &links)
	mustStatus(t, 400, "POST", "/api/storage/v0/link/upload", httpapi.Prefix+"/link/upload", `{"filePath":["no-extension"]}`)
	uid := links[0].UID
	mustStatus(t, 200, "GET", "/api/storage/v0/checkpoint", httpapi.Prefix+"/checkpoint?uid="+uid, "")
	mustStatus(t, 200, "PUT", "/api/storage/v0/upload", links[0].URL.Single+"&md5="+md5hex, string(content))
	mustStatus(t, 200, "GET", "/api/storage/v0/object", httpapi.Prefix+"/object?uid="+uid, "")
	mustStatus(t, 200, "GET", "/api/storage/v0/object/detail", httpapi.Prefix+"/object/detail?uid="+uid, "")
	mustStatus(t, 200, "GET", "/api/storage/v0/objects", httpapi.Prefix+"/objects", "")
	mustStatus(t, 200, "GET", "/api/storage/v0/objects/search", httpapi.Prefix+"/objects/search?prefix=docs/", "")
	call(t, "GET", "/api/storage/v0/proxy", httpapi.Prefix+"/proxy?uid="+uid, "")
	mustStatus(t, 200, "POST", "/api/storage/v0/resume", httpapi.Prefix+"/resume", `{"data":[{"md5":"`+md5hex+`","path":"b.txt"}]}`)
	var dl []struct {
		URL string `json:"url"`
	}
	data(t, mustStatus(t, 200, "POST", "/api/storage/v0/link/download", httpapi.Prefix+"/link/download", `{"uid":["`+uid+`","1"]}`), &dl)
	if got := mustStatus(t, 200, "GET", "/api/storage/v0/download", dl[0].URL, ""); !bytes.Equal(got, content) {
		t.Fatalf("downloaded %q, want %q", got, content)
	}
	mustStatus(t, 200, "GET", "/tasks", "/tasks", "")
	mustStatus(t, 200, "GET", "/console/reports", "/console/reports", "")
	mustStatus(t, 200, "POST", "/cluster/snapshot", "/cluster/snapshot", "")
	mustStatus(t, 200, "GET", "/cluster/backup", "/cluster/backup", "")
	mustStatus(t, 200, "DELETE", "/api/storage/v0/object", httpapi.Prefix+"/object?uid="+uid, "")
	mustStatus(t, 404, "GET", "/api/storage/v0/object", httpapi.Prefix+"/object?uid="+uid, "")
	mustStatus(t, 404, "POST", "/tasks/{id}/retry", "/tasks/999999/retry", "")
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
