package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/osprey-storage/osprey"
)

func TestTaskRoutes(t *testing.T) {
	tasks := &mockTasks{}
	f := mustFixture(t, func(c *Config) { c.Tasks = tasks })
	var gotState string
	tasks.ListTasksFn = func(_ context.Context, state string) ([]TaskInfo, error) {
		gotState = state
		if state == "dead" {
			return []TaskInfo{{ID: 9, Type: "tier", Target: "123", State: "dead", Attempts: 5, LastError: "backend down", CreatedAt: "2026-01-01T00:00:00Z"}}, nil
		}
		return nil, nil
	}
	tasks.RetryTaskFn = func(_ context.Context, id uint64) (TaskInfo, error) {
		switch id {
		case 9:
			return TaskInfo{ID: 9, Type: "tier", State: "pending"}, nil
		case 10:
			return TaskInfo{}, fmt.Errorf("task 10 is pending, not dead: %w", osprey.ErrConflict)
		}
		return TaskInfo{}, fmt.Errorf("task %d: %w", id, osprey.ErrNotFound)
	}
	for _, c := range []apiCase{
		{name: "list all", method: http.MethodGet, path: "/tasks", wantCode: 200, wantBody: `"data":[]`},
		{name: "list dead", method: http.MethodGet, path: "/tasks?state=dead", wantCode: 200,
			wantBody: `"data":[{"id":9,"type":"tier","target":"123","state":"dead","attempts":5,"lease_holder":"","last_error":"backend down","created_at":"2026-01-01T00:00:00Z"}]`},
		{name: "list bad state", method: http.MethodGet, path: "/tasks?state=zombie", wantCode: 400, wantBody: "state must be"},
		{name: "list needs a key", method: http.MethodGet, path: "/tasks", header: map[string]string{"Authorization": ""}, wantCode: 401},
		{name: "retry", method: http.MethodPost, path: "/tasks/9/retry", wantCode: 200, wantBody: `"id":9,"type":"tier"`},
		{name: "retry not dead", method: http.MethodPost, path: "/tasks/10/retry", wantCode: 409, wantBody: "not dead"},
		{name: "retry unknown", method: http.MethodPost, path: "/tasks/11/retry", wantCode: 404},
		{name: "retry bad id", method: http.MethodPost, path: "/tasks/x/retry", wantCode: 400, wantBody: "task id"},
		{name: "retry negative id", method: http.MethodPost, path: "/tasks/-1/retry", wantCode: 400},
		{name: "retry needs a key", method: http.MethodPost, path: "/tasks/9/retry", header: map[string]string{"Authorization": "Bearer wrong-key-000"}, wantCode: 403},
		{name: "retry with GET", method: http.MethodGet, path: "/tasks/9/retry", wantCode: 405},
		{name: "list with POST", method: http.MethodPost, path: "/tasks", wantCode: 405},
	} {
		t.Run(c.name, func(t *testing.T) { f.check(t, c) })
	}
	if gotState != "dead" {
		t.Errorf("last ListTasks state %q", gotState)
	}
	if tasks.Calls("ListTasks") != 2 || tasks.Calls("RetryTask") != 3 {
		t.Errorf("calls: ListTasks %d, RetryTask %d; rejected requests must not reach the queue", tasks.Calls("ListTasks"), tasks.Calls("RetryTask"))
	}
	t.Run("absent without Tasks", func(t *testing.T) {
		g := mustFixture(t)
		g.check(t, apiCase{method: http.MethodGet, path: "/tasks", wantCode: 404})
	})
}

func TestReplicaRoutes(t *testing.T) {
	node := map[string]string{"Authorization": "", HeaderNodeAuth: testNodeToken}
	mk := func(t *testing.T) (*fixture, *mockReplicas) {
		rep := &mockReplicas{}
		return mustFixture(t, func(c *Config) { c.Replicas = rep }), rep
	}
	t.Run("put", func(t *testing.T) {
		f, rep := mk(t)
		var got []string
		rep.PutLocalObjectFn = func(_ context.Context, bucket, key string, body io.Reader, size int64, md5 string) error {
			b, _ := io.ReadAll(body)
			got = []string{bucket, key, string(b), fmt.Sprint(size), md5}
			return nil
		}
		f.check(t, apiCase{method: http.MethodPut, path: "/internal/v1/objects/image/7.jpg?md5=abc", header: node, body: "bytes", wantCode: 200, wantBody: `"data":null`})
		if fmt.Sprint(got) != "[image 7.jpg bytes 5 abc]" {
			t.Errorf("PutLocalObject got %v", got)
		}
		r := newRequest(http.MethodPut, "/internal/v1/objects/image/7.jpg", io.MultiReader(strings.NewReader("x")), node)
		if rec := f.serve(r); rec.Code != 400 {
			t.Errorf("put without Content-Length: %d", rec.Code)
		}
		if rep.Calls("PutLocalObject") != 1 {
			t.Errorf("PutLocalObject called %d times", rep.Calls("PutLocalObject"))
		}
	})
	t.Run("get", func(t *testing.T) {
		f, rep := mk(t)
		var got string
		rc := &closeRecorder{Reader: strings.NewReader("cde")}
		rep.GetLocalObjectFn = func(_ context.Context, bucket, key string, off, n int64) (io.ReadCloser, error) {
			got = fmt.Sprint(bucket, " ", key, " ", off, " ", n)
			return rc, nil
		}
		rec := f.serve(newRequest(http.MethodGet, "/internal/v1/objects/doc/8.pdf?off=2&n=3", nil, node))
		if rec.Code != 200 || rec.Body.String() != "cde" || rec.Header().Get("Content-Length") != "3" {
			t.Fatalf("status %d body %q headers %v", rec.Code, rec.Body.String(), rec.Header())
		}
		if got != "doc 8.pdf 2 3" || !rc.isClosed() {
			t.Errorf("GetLocalObject got %q, closed %v", got, rc.isClosed())
		}
		for _, q := range []string{"", "?off=1", "?n=1", "?off=-1&n=1", "?off=0&n=-1", "?off=a&n=1"} {
			f.check(t, apiCase{method: http.MethodGet, path: "/internal/v1/objects/doc/8.pdf" + q, header: node, wantCode: 400})
		}
		if rep.Calls("GetLocalObject") != 1 {
			t.Errorf("GetLocalObject called %d times", rep.Calls("GetLocalObject"))
		}
	})
	t.Run("get checked", func(t *testing.T) {
		f, rep := mk(t)
		var got string
		rep.GetCheckedObjectFn = func(_ context.Context, bucket, key string, id osprey.UID, off, n int64) (io.ReadCloser, error) {
			got = fmt.Sprint(bucket, " ", key, " ", id, " ", off, " ", n)
			if id == 13 {
				return nil, fmt.Errorf("%w: copy does not match its checksum", osprey.ErrBackend)
			}
			return io.NopCloser(strings.NewReader("cde")), nil
		}
		rec := f.serve(newRequest(http.MethodGet, "/internal/v1/objects/doc/8.pdf?off=2&n=3&content=12", nil, node))
		if rec.Code != 200 || rec.Body.String() != "cde" || got != "doc 8.pdf 12 2 3" {
			t.Fatalf("status %d body %q, GetCheckedObject got %q", rec.Code, rec.Body.String(), got)
		}
		// A bad first chunk is an error status, not a body cut short.
		f.check(t, apiCase{method: http.MethodGet, path: "/internal/v1/objects/doc/8.pdf?off=2&n=3&content=13", header: node, wantCode: 502})
		f.check(t, apiCase{method: http.MethodGet, path: "/internal/v1/objects/doc/8.pdf?off=2&n=3&content=x", header: node, wantCode: 400})
		if rep.Calls("GetLocalObject") != 0 || rep.Calls("GetCheckedObject") != 2 {
			t.Errorf("GetLocalObject called %d times, GetCheckedObject %d", rep.Calls("GetLocalObject"), rep.Calls("GetCheckedObject"))
		}
	})
	t.Run("get short read aborts", func(t *testing.T) {
		f, rep := mk(t)
		rep.GetLocalObjectFn = func(context.Context, string, string, int64, int64) (io.ReadCloser, error) {
			return io.NopCloser(strings.NewReader("ab")), nil
		}
		srv := httptest.NewServer(f.srv)
		defer srv.Close()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/internal/v1/objects/doc/8.pdf?off=0&n=10", nil)
		req.Header.Set(HeaderNodeAuth, testNodeToken)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil {
				t.Fatalf("short object read looked complete")
			}
		}
	})
	t.Run("delete", func(t *testing.T) {
		f, rep := mk(t)
		var got string
		rep.DeleteLocalObjectFn = func(_ context.Context, bucket, key, version string) error {
			got = bucket + "/" + key + "@" + version
			if key == "gone.jpg" {
				return osprey.ErrNotFound
			}
			return nil
		}
		f.check(t, apiCase{method: http.MethodDelete, path: "/internal/v1/objects/image/7.jpg", header: node, wantCode: 200})
		if got != "image/7.jpg@" {
			t.Errorf("DeleteLocalObject got %q", got)
		}
		f.check(t, apiCase{method: http.MethodDelete, path: "/internal/v1/objects/image/7.jpg?version=5-6", header: node, wantCode: 200})
		if got != "image/7.jpg@5-6" {
			t.Errorf("DeleteLocalObject with a version got %q", got)
		}
		f.check(t, apiCase{method: http.MethodDelete, path: "/internal/v1/objects/image/gone.jpg", header: node, wantCode: 404})
	})
	t.Run("head", func(t *testing.T) {
		f, rep := mk(t)
		rep.LocalObjectVersionFn = func(_ context.Context, bucket, key string) (string, error) {
			switch key {
			case "gone.jpg":
				return "", osprey.ErrNotFound
			case "s3.jpg":
				return "", fmt.Errorf("backend s3: %w", errors.ErrUnsupported)
			}
			return "9-" + bucket, nil
		}
		rec := f.do(http.MethodHead, "/internal/v1/objects/image/7.jpg", "", node)
		if got := rec.Header().Get(HeaderObjectVersion); rec.Code != 200 || got != "9-image" {
			t.Errorf("status %d, %s = %q; want 200, 9-image", rec.Code, HeaderObjectVersion, got)
		}
		f.check(t, apiCase{method: http.MethodHead, path: "/internal/v1/objects/image/gone.jpg", header: node, wantCode: 404})
		// A backend without versions answers as a build before them did.
		f.check(t, apiCase{method: http.MethodHead, path: "/internal/v1/objects/image/s3.jpg", header: node, wantCode: 405})
	})
	t.Run("node credentials required", func(t *testing.T) {
		for _, m := range []string{http.MethodPut, http.MethodGet, http.MethodHead, http.MethodDelete} {
			f, rep := mk(t)
			f.check(t, apiCase{method: m, path: "/internal/v1/objects/image/7.jpg?off=0&n=1", body: "x", wantCode: 403})
			f.check(t, apiCase{method: m, path: "/internal/v1/objects/image/7.jpg?off=0&n=1", body: "x",
				header: map[string]string{HeaderNodeAuth: "wrong"}, wantCode: 403})
			if n := rep.Total(); n != 0 {
				t.Errorf("%s: replicas called %d times without credentials", m, n)
			}
		}
	})
}

func TestReadyzDetails(t *testing.T) {
	mc := &mockCluster{}
	f := mustFixture(t, func(c *Config) {
		c.Cluster = readyCluster{mockCluster: mc, ReadyDetailsFn: func() map[string]string {
			return map[string]string{"backend": "unreachable: dial tcp"}
		}}
	})
	// Details are shown but do not fail readiness.
	f.check(t, apiCase{method: http.MethodGet, path: "/readyz", wantCode: 200,
		wantBody: `"data":{"checks":{"backend":"unreachable: dial tcp"},"status":"ready"}`})
	mc.NotReadyFn = func(context.Context) []string { return []string{"no leader"} }
	rec := f.do(http.MethodGet, "/readyz", "", nil)
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), "no leader") {
		t.Errorf("not ready: status %d body %s", rec.Code, rec.Body.String())
	}
}
