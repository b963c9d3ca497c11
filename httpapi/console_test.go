package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/console"
)

// mockConsoleStorage is a Storage that also provides the Console
// capability, with function fields.
type mockConsoleStorage struct {
	*mockStorage
	FileDetailFn  func(ctx context.Context, uid osprey.UID) (FileDetail, error)
	SearchFilesFn func(ctx context.Context, prefix string, cursor osprey.UID, limit int) ([]FileInfo, osprey.UID, error)
	ReportsDir    string
}

var _ Console = (*mockConsoleStorage)(nil)

func (m *mockConsoleStorage) FileDetail(ctx context.Context, uid osprey.UID) (FileDetail, error) {
	m.called("FileDetail")
	if m.FileDetailFn == nil {
		return FileDetail{}, errNotMocked
	}
	return m.FileDetailFn(ctx, uid)
}

func (m *mockConsoleStorage) SearchFiles(ctx context.Context, prefix string, cursor osprey.UID, limit int) ([]FileInfo, osprey.UID, error) {
	m.called("SearchFiles")
	if m.SearchFilesFn == nil {
		return nil, 0, errNotMocked
	}
	return m.SearchFilesFn(ctx, prefix, cursor, limit)
}

func (m *mockConsoleStorage) ChaosReportsDir() string { return m.ReportsDir }
func (m *mockConsoleStorage) Version() string         { return "v1.2.3-test" }

func consoleFixture(t *testing.T) (*fixture, *mockConsoleStorage) {
	t.Helper()
	cs := &mockConsoleStorage{mockStorage: &mockStorage{LinkSecretFn: func() ([]byte, error) { return testSecret, nil }}}
	f := mustFixture(t, func(c *Config) { c.Storage = cs })
	return f, cs
}

func TestConsoleStaticFiles(t *testing.T) {
	f := mustFixture(t)
	cases := []struct {
		path     string
		wantCode int
		wantType string
		wantBody string
	}{
		{"/ui/", 200, "text/html", `<script type="module" src="app.js"></script>`},
		{"/ui/index.html", 200, "text/html", "osprey console"},
		{"/ui/app.js", 200, "javascript", "sessionStorage"},
		{"/ui/app.css", 200, "text/css", ":root"},
		{"/ui/md5worker.js", 200, "javascript", "importScripts('vendor/spark-md5.js')"},
		{"/ui/vendor/spark-md5.js", 200, "javascript", "SparkMD5"},
		{"/ui/missing.js", 404, "text/plain", "not found"},
		{"/ui/../cluster/status", 404, "", ""}, // cleaned by the router, never escapes /ui/ into the API unauthenticated
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			// Static files need no key: they hold no data.
			rec := f.do("GET", c.path, "", map[string]string{"Authorization": ""})
			if c.path == "/ui/../cluster/status" {
				if rec.Code == 200 {
					t.Fatalf("%s answered 200 without a key: %s", c.path, rec.Body.String())
				}
				return
			}
			if rec.Code != c.wantCode {
				t.Fatalf("status %d, want %d", rec.Code, c.wantCode)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.Contains(ct, c.wantType) {
				t.Fatalf("Content-Type %q, want %q", ct, c.wantType)
			}
			if !strings.Contains(rec.Body.String(), c.wantBody) {
				t.Fatalf("body does not contain %q", c.wantBody)
			}
			if got := rec.Header().Get("Content-Security-Policy"); got != console.CSP {
				t.Fatalf("CSP %q", got)
			}
			for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"} {
				if got := rec.Header().Get(h); got != want {
					t.Fatalf("%s = %q, want %q", h, got, want)
				}
			}
		})
	}
	// /ui redirects to /ui/.
	if rec := f.do("GET", "/ui", "", nil); rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "/ui/" {
		t.Fatalf("GET /ui: %d %q", rec.Code, rec.Header().Get("Location"))
	}
	// ETag revalidation.
	rec := f.do("GET", "/ui/app.js", "", nil)
	if rec2 := f.do("GET", "/ui/app.js", "", map[string]string{"If-None-Match": rec.Header().Get("ETag")}); rec2.Code != http.StatusNotModified {
		t.Fatalf("revalidation: %d", rec2.Code)
	}
}

func TestConsoleRoutesNeedKey(t *testing.T) {
	f, _ := consoleFixture(t)
	for _, p := range []string{"/console/info", "/console/reports", Prefix + "/object/detail?uid=1", Prefix + "/objects/search?prefix=a"} {
		f.check(t, apiCase{name: p, method: "GET", path: p, header: map[string]string{"Authorization": ""}, wantCode: 401})
	}
}

func TestConsoleInfo(t *testing.T) {
	f, _ := consoleFixture(t)
	_, env := f.check(t, apiCase{method: "GET", path: "/console/info", wantCode: 200, wantBody: `"version":"v1.2.3-test"`})
	var info struct{ Auth string }
	mustData(t, env, &info)
	if info.Auth != "api-key" {
		t.Fatalf("auth %q", info.Auth)
	}
	// Without the Console capability the info still answers, without features.
	plain := mustFixture(t)
	plain.check(t, apiCase{method: "GET", path: "/console/info", wantCode: 200, wantBody: `"features":[]`})
	plain.check(t, apiCase{method: "GET", path: Prefix + "/object/detail?uid=1", wantCode: 404})
}

func TestConsoleObjectDetailAndSearch(t *testing.T) {
	f, cs := consoleFixture(t)
	cs.FileDetailFn = func(_ context.Context, uid osprey.UID) (FileDetail, error) {
		if uid != 42 {
			return FileDetail{}, fmt.Errorf("%w: uid %s", osprey.ErrNotFound, uid)
		}
		return FileDetail{FileInfo: FileInfo{UID: 42, Name: "a.jpg"}, Parts: []ChunkDetail{{Num: 1, Layout: "replicas",
			Holders: []Holder{{ID: "n1", HTTPAddr: "127.0.0.1:1"}, {ID: "n2", Down: true}}}}}, nil
	}
	var gotPrefix string
	var gotCursor osprey.UID
	var gotLimit int
	cs.SearchFilesFn = func(_ context.Context, prefix string, cursor osprey.UID, limit int) ([]FileInfo, osprey.UID, error) {
		gotPrefix, gotCursor, gotLimit = prefix, cursor, limit
		return []FileInfo{{UID: 7, Name: prefix + "x.png"}}, 9, nil
	}
	cases := []apiCase{
		{name: "detail", method: "GET", path: Prefix + "/object/detail?uid=42", wantCode: 200, wantBody: `"holders":[{"id":"n1","http_addr":"127.0.0.1:1"},{"id":"n2","down":true}]`},
		{name: "detail unknown", method: "GET", path: Prefix + "/object/detail?uid=43", wantCode: 404},
		{name: "detail bad uid", method: "GET", path: Prefix + "/object/detail?uid=x", wantCode: 400, wantBody: "uid"},
		{name: "search", method: "GET", path: Prefix + "/objects/search?prefix=" + url.QueryEscape("dir/a b") + "&cursor=5&limit=20", wantCode: 200, wantBody: `"next_cursor":"9"`},
		{name: "search bad cursor", method: "GET", path: Prefix + "/objects/search?prefix=a&cursor=zz", wantCode: 400, wantBody: "cursor"},
		{name: "search bad limit", method: "GET", path: Prefix + "/objects/search?prefix=a&limit=5000", wantCode: 400, wantBody: "limit"},
		{name: "search long prefix", method: "GET", path: Prefix + "/objects/search?prefix=" + strings.Repeat("a", 1025), wantCode: 400, wantBody: "prefix"},
		{name: "detail is read-only", method: "POST", path: Prefix + "/object/detail?uid=42", wantCode: 405},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { f.check(t, c) })
	}
	if gotPrefix != "dir/a b" || gotCursor != 5 || gotLimit != 20 {
		t.Fatalf("search got prefix %q cursor %d limit %d", gotPrefix, gotCursor, gotLimit)
	}
}

func TestConsoleReports(t *testing.T) {
	f, cs := consoleFixture(t)
	dir := t.TempDir()
	cs.ReportsDir = dir
	// Empty or missing directory: an empty list.
	_, env := f.check(t, apiCase{method: "GET", path: "/console/reports", wantCode: 200})
	var list struct {
		Dir  string     `json:"dir"`
		Runs []ChaosRun `json:"runs"`
	}
	mustData(t, env, &list)
	if len(list.Runs) != 0 {
		t.Fatalf("runs %+v", list.Runs)
	}

	run := "20261204-101010-seed7"
	mustWrite := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite(filepath.Join(dir, run, "report.html"), "<title>r</title>timeline")
	mustWrite(filepath.Join(dir, run, "summary.txt"), "all invariants held")
	mustWrite(filepath.Join(dir, run, "history.jsonl"), "private")
	mustWrite(filepath.Join(dir, "not a run!", "report.html"), "skipped: bad name")
	mustWrite(filepath.Join(dir, "empty-run", "n1.log"), "no report files")

	_, env = f.check(t, apiCase{method: "GET", path: "/console/reports", wantCode: 200})
	mustData(t, env, &list)
	if len(list.Runs) != 1 || list.Runs[0].Name != run || len(list.Runs[0].Files) != 2 {
		t.Fatalf("runs %+v", list.Runs)
	}
	var reportURL string
	for _, rf := range list.Runs[0].Files {
		if rf.Name == "report.html" {
			reportURL = rf.URL
		}
	}

	// The signed link opens without a key, sandboxed.
	rec := f.do("GET", reportURL, "", map[string]string{"Authorization": ""})
	if rec.Code != 200 || rec.Body.String() != "<title>r</title>timeline" {
		t.Fatalf("report: %d %q", rec.Code, rec.Body.String())
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") || strings.Contains(csp, "script-src") {
		t.Fatalf("report CSP %q", csp)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("report type %q", ct)
	}

	u, _ := url.Parse(reportURL)
	q := u.Query()
	tampered := func(k, v string) string {
		q2 := url.Values{}
		for kk, vv := range q {
			q2[kk] = vv
		}
		q2.Set(k, v)
		return u.Path + "?" + q2.Encode()
	}
	for _, c := range []apiCase{
		{name: "no signature", method: "GET", path: u.Path, wantCode: 403},
		{name: "bad signature", method: "GET", path: tampered("signature", strings.Repeat("0", 64)), wantCode: 403},
		{name: "longer expiry", method: "GET", path: tampered("expire", "999999"), wantCode: 403},
		{name: "other file, same signature", method: "GET", path: "/console/reports/" + run + "/summary.txt?" + q.Encode(), wantCode: 403},
		{name: "private file", method: "GET", path: "/console/reports/" + run + "/history.jsonl?" + q.Encode(), wantCode: 404},
		{name: "traversal", method: "GET", path: "/console/reports/..%2F" + run + "/report.html?" + q.Encode(), wantCode: 404},
		{name: "unknown run", method: "GET", path: "/console/reports/nope/report.html?" + q.Encode(), wantCode: 403},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.header = map[string]string{"Authorization": ""}
			f.check(t, c)
		})
	}

	// No directory configured: nothing listed, nothing served.
	cs.ReportsDir = ""
	_, env = f.check(t, apiCase{method: "GET", path: "/console/reports", wantCode: 200})
	var raw map[string]json.RawMessage
	mustData(t, env, &raw)
	if string(raw["runs"]) != "[]" {
		t.Fatalf("runs %s", raw["runs"])
	}
	f.check(t, apiCase{method: "GET", path: reportURL, header: map[string]string{"Authorization": ""}, wantCode: 404})
}
