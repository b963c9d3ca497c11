package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/osprey-storage/osprey"
)

// mockMetadata implements Metadata with function fields.
type mockMetadata struct {
	callCounter
	BackupFn   func(ctx context.Context, w io.Writer, started func(index uint64)) error
	RestoreFn  func(ctx context.Context, r io.Reader) (RestoreResult, error)
	SnapshotFn func(ctx context.Context) (SnapshotResult, error)
}

var _ Metadata = (*mockMetadata)(nil)

func (m *mockMetadata) Backup(ctx context.Context, w io.Writer, started func(index uint64)) error {
	m.called("Backup")
	if m.BackupFn == nil {
		return errNotMocked
	}
	return m.BackupFn(ctx, w, started)
}

func (m *mockMetadata) Restore(ctx context.Context, r io.Reader) (RestoreResult, error) {
	m.called("Restore")
	if m.RestoreFn == nil {
		return RestoreResult{}, errNotMocked
	}
	return m.RestoreFn(ctx, r)
}

func (m *mockMetadata) Snapshot(ctx context.Context) (SnapshotResult, error) {
	m.called("Snapshot")
	if m.SnapshotFn == nil {
		return SnapshotResult{}, errNotMocked
	}
	return m.SnapshotFn(ctx)
}

// fullFixture is a fixture with every optional capability wired (tasks,
// replicas, metadata, console), so the router holds every route there is.
type fullFixture struct {
	*fixture
	console  *mockConsoleStorage
	tasks    *mockTasks
	replicas *mockReplicas
	metadata *mockMetadata
	keys     *memKeys
	dedup    *mockDedup
}

func mustFullFixture(t *testing.T) *fullFixture {
	t.Helper()
	ff := &fullFixture{
		console:  &mockConsoleStorage{mockStorage: &mockStorage{LinkSecretFn: func() ([]byte, error) { return testSecret, nil }}},
		tasks:    &mockTasks{},
		replicas: &mockReplicas{},
		metadata: &mockMetadata{},
		keys:     newMemKeys(),
		dedup:    &mockDedup{},
	}
	ff.fixture = mustFixture(t, func(c *Config) {
		c.Storage, c.Tasks, c.Replicas, c.Metadata, c.Keys = ff.console, ff.tasks, ff.replicas, ff.metadata, ff.keys
		c.Dedup = ff.dedup
	})
	ff.storage = ff.console.mockStorage
	return ff
}

// routerRoutes lists every route registered on r as "METHOD /path" in
// httprouter syntax (":id", "*path"). httprouter has no public way to
// enumerate its routes, so this walks its trees by reflection; if a new
// httprouter version changes them the test says so instead of passing.
func routerRoutes(t *testing.T, r *httprouter.Router) []string {
	t.Helper()
	trees := reflect.ValueOf(r).Elem().FieldByName("trees")
	if !trees.IsValid() || trees.Kind() != reflect.Map {
		t.Fatal("httprouter.Router has no trees map any more: update routerRoutes")
	}
	var out []string
	var walk func(n reflect.Value, method, prefix string)
	walk = func(n reflect.Value, method, prefix string) {
		n = n.Elem()
		path, handle, children := n.FieldByName("path"), n.FieldByName("handle"), n.FieldByName("children")
		if !path.IsValid() || !handle.IsValid() || !children.IsValid() {
			t.Fatal("httprouter's tree node changed: update routerRoutes")
		}
		full := prefix + path.String()
		if !handle.IsNil() {
			out = append(out, method+" "+full)
		}
		for i := 0; i < children.Len(); i++ {
			walk(children.Index(i), method, full)
		}
	}
	for _, k := range trees.MapKeys() {
		walk(trees.MapIndex(k), k.String(), "")
	}
	sort.Strings(out)
	return out
}

var routeParamRe = regexp.MustCompile(`[:*]([A-Za-z_]+)`)

// openAPIPath turns an httprouter path into an OpenAPI path template.
func openAPIPath(p string) string { return routeParamRe.ReplaceAllString(p, "{$1}") }

// openAPIDoc is the parsed document, enough to find operations.
type openAPIDoc struct {
	Paths map[string]map[string]json.RawMessage `json:"paths"`
}

func mustOpenAPIDoc(t *testing.T) openAPIDoc {
	t.Helper()
	var d openAPIDoc
	if err := json.Unmarshal(OpenAPI, &d); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return d
}

// documentedRoutes lists "METHOD /path" of every operation in the document.
func (d openAPIDoc) documentedRoutes() []string {
	var out []string
	for p, ops := range d.Paths {
		for m := range ops {
			switch m {
			case "get", "put", "post", "delete", "options", "head", "patch", "trace":
				out = append(out, strings.ToUpper(m)+" "+p)
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestOpenAPIRoutes fails when the router has a route the document lacks,
// or the document lists one the router does not have.
func TestOpenAPIRoutes(t *testing.T) {
	f := mustFullFixture(t)
	var registered []string
	for _, r := range routerRoutes(t, f.srv.router) {
		method, path, _ := strings.Cut(r, " ")
		registered = append(registered, method+" "+openAPIPath(path))
	}
	// Guard the walker itself: routes registered in server.go, a catch-all
	// and a parameter route must be among what it found.
	for _, want := range []string{"GET /metrics", "GET /openapi.json", "GET /ui/{path}", "DELETE /cluster/nodes/{id}",
		"PUT /internal/v1/chunks/{blob}/{num}/{shard}", "GET /api/storage/v0/download"} {
		if !contains(registered, want) {
			t.Fatalf("route walker missed %q; found %v", want, registered)
		}
	}
	documented := mustOpenAPIDoc(t).documentedRoutes()
	for _, r := range registered {
		if !contains(documented, r) {
			t.Errorf("route %s is registered but not in httpapi/openapi.json", r)
		}
	}
	for _, r := range documented {
		if !contains(registered, r) {
			t.Errorf("httpapi/openapi.json documents %s, which the router does not have", r)
		}
	}
	t.Logf("%d routes, all documented", len(registered))
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// openAPIValidator validates replies against the document's schemas.
type openAPIValidator struct {
	doc      map[string]any
	compiler *jsonschema.Compiler
	cache    map[string]*jsonschema.Schema
}

const openAPIURL = "mem://osprey/openapi.json"

func mustOpenAPIValidator(t *testing.T) *openAPIValidator {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(OpenAPI))
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020) // OpenAPI 3.1's schema dialect
	c.AssertFormat()
	if err := c.AddResource(openAPIURL, doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return &openAPIValidator{doc: doc.(map[string]any), compiler: c, cache: map[string]*jsonschema.Schema{}}
}

// escapePtr escapes one JSON pointer token.
func escapePtr(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// lookup returns the value at a JSON pointer of the document.
func (v *openAPIValidator) lookup(ptr string) (any, bool) {
	var cur any = v.doc
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[tok]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// response returns the JSON pointer of the response object documented for
// status (or "default"), following a $ref.
func (v *openAPIValidator) response(path, method string, status int) (string, error) {
	base := "/paths/" + escapePtr(path) + "/" + strings.ToLower(method)
	if _, ok := v.lookup(base); !ok {
		return "", fmt.Errorf("no operation %s %s in the document", method, path)
	}
	ptr := fmt.Sprintf("%s/responses/%d", base, status)
	r, ok := v.lookup(ptr)
	if !ok {
		ptr = base + "/responses/default"
		if r, ok = v.lookup(ptr); !ok {
			return "", fmt.Errorf("%s %s: status %d is not documented and there is no default", method, path, status)
		}
	}
	if ref, ok := r.(map[string]any)["$ref"].(string); ok {
		ptr = strings.TrimPrefix(ref, "#")
		if _, ok := v.lookup(ptr); !ok {
			return "", fmt.Errorf("dangling $ref %s", ref)
		}
	}
	return ptr, nil
}

// check validates one reply: its status must be documented, its media type
// listed, and a JSON body must match the schema.
func (v *openAPIValidator) check(path, method string, status int, header http.Header, body []byte) error {
	ptr, err := v.response(path, method, status)
	if err != nil {
		return err
	}
	if method == http.MethodHead || len(body) == 0 {
		return nil
	}
	mt, _, err := mime.ParseMediaType(header.Get("Content-Type"))
	if err != nil {
		return fmt.Errorf("bad Content-Type %q: %v", header.Get("Content-Type"), err)
	}
	content, _ := v.lookup(ptr + "/content")
	cm, _ := content.(map[string]any)
	key := mt
	if _, ok := cm[mt]; !ok {
		if _, ok := cm["*/*"]; !ok {
			return fmt.Errorf("media type %s not documented for status %d (have %v)", mt, status, keys(cm))
		}
		key = "*/*"
	}
	if mt != "application/json" {
		return nil
	}
	sch, err := v.schema(ptr + "/content/" + escapePtr(key) + "/schema")
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("reply is not JSON: %v", err)
	}
	if err := sch.Validate(inst); err != nil {
		return fmt.Errorf("reply does not match the schema: %#v\nbody: %s", err, body)
	}
	return nil
}

// checkRequest checks what a request the server accepted sends: every
// query parameter is documented for the operation, and a JSON body matches
// the documented request body.
func (v *openAPIValidator) checkRequest(path, method string, target *url.URL, body string) error {
	base := "/paths/" + escapePtr(path) + "/" + strings.ToLower(method)
	documented := map[string]bool{}
	for _, ptr := range []string{base + "/parameters", "/paths/" + escapePtr(path) + "/parameters"} {
		params, _ := v.lookup(ptr)
		list, _ := params.([]any)
		for _, p := range list {
			if pm, ok := p.(map[string]any); ok && pm["in"] == "query" {
				documented[pm["name"].(string)] = true
			}
		}
	}
	for name := range target.Query() {
		if !documented[name] {
			return fmt.Errorf("query parameter %q is not documented for %s %s", name, method, path)
		}
	}
	if body == "" {
		return nil
	}
	if _, ok := v.lookup(base + "/requestBody"); !ok {
		return fmt.Errorf("%s %s takes a body but documents no requestBody", method, path)
	}
	ptr := base + "/requestBody/content/application~1json/schema"
	if _, ok := v.lookup(ptr); !ok {
		return nil // not a JSON body
	}
	sch, err := v.schema(ptr)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("request body is not JSON: %v", err)
	}
	if err := sch.Validate(inst); err != nil {
		return fmt.Errorf("accepted request body does not match the documented one: %#v", err)
	}
	return nil
}

func (v *openAPIValidator) schema(ptr string) (*jsonschema.Schema, error) {
	if s, ok := v.cache[ptr]; ok {
		return s, nil
	}
	s, err := v.compiler.Compile(openAPIURL + "#" + ptr)
	if err != nil {
		return nil, fmt.Errorf("compile %s: %v", ptr, err)
	}
	v.cache[ptr] = s
	return s, nil
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestOpenAPISchemasCompile compiles every schema the document has, so a
// typo in one that no request reaches still fails.
func TestOpenAPISchemasCompile(t *testing.T) {
	v := mustOpenAPIValidator(t)
	schemas, _ := v.lookup("/components/schemas")
	for name := range schemas.(map[string]any) {
		if _, err := v.schema("/components/schemas/" + escapePtr(name)); err != nil {
			t.Error(err)
		}
	}
	for path, ops := range v.doc["paths"].(map[string]any) {
		for method, op := range ops.(map[string]any) {
			resps, _ := op.(map[string]any)["responses"].(map[string]any)
			for st := range resps {
				ptr := "/paths/" + escapePtr(path) + "/" + method + "/responses/" + st
				r, _ := v.lookup(ptr)
				if ref, ok := r.(map[string]any)["$ref"].(string); ok {
					ptr = strings.TrimPrefix(ref, "#")
				}
				content, _ := v.lookup(ptr + "/content")
				cm, _ := content.(map[string]any) // nil: no body (HEAD, 416 …)
				for mt := range cm {
					if _, err := v.schema(ptr + "/content/" + escapePtr(mt) + "/schema"); err != nil {
						t.Errorf("%s %s %s %s: %v", method, path, st, mt, err)
					}
				}
			}
		}
	}
}

// TestOpenAPIResponses sends real requests to a real HTTP server (the
// Server on a loopback listener, with the mocks the other tests use) and
// validates every reply, success and error, against the document.
func TestOpenAPIResponses(t *testing.T) {
	ff := mustFullFixture(t)
	ts := httptest.NewServer(ff.srv)
	t.Cleanup(ts.Close)
	v := mustOpenAPIValidator(t)

	now := time.Date(2026, 12, 4, 5, 0, 0, 0, time.UTC)
	info := FileInfo{UID: testUID, Name: "photos/cat.jpg", Size: 3, MD5: md5hex([]byte("abc")), ContentType: "image/jpeg",
		Bucket: "image", State: "complete", Location: "staged", Chunks: 1, CreatedAt: now, UpdatedAt: now}
	uploading := info
	uploading.MD5, uploading.State, uploading.Size, uploading.Chunks = "", "uploading", 0, 0
	st := ff.storage
	st.StatFn = func(_ context.Context, uid osprey.UID) (FileInfo, error) {
		if uid != testUID {
			return FileInfo{}, fmt.Errorf("%w: uid %s", osprey.ErrNotFound, uid)
		}
		return info, nil
	}
	st.OpenFn = func(_ context.Context, uid osprey.UID) (*Object, error) {
		return &Object{FileInfo: info, ObjectKey: testUID.String() + ".jpg", Reader: func(_ context.Context, off, n int64) (io.ReadCloser, error) {
			return io.NopCloser(strings.NewReader("abc"[off : off+n])), nil
		}}, nil
	}
	st.CreateFilesFn = func(_ context.Context, items []NewFile) ([]osprey.UID, error) {
		out := make([]osprey.UID, len(items))
		for i := range out {
			out[i] = testUID + osprey.UID(i)
		}
		return out, nil
	}
	st.ResumeFn = func(_ context.Context, items []ResumeItem) ([]osprey.UID, error) {
		return make([]osprey.UID, len(items)), nil
	}
	st.CheckpointFn = func(context.Context, osprey.UID) ([]uint32, error) { return []uint32{1, 2}, nil }
	st.UploadFn = func(_ context.Context, _ osprey.UID, body io.Reader, _ string) (FileInfo, error) {
		_, err := io.Copy(io.Discard, body)
		return info, err
	}
	st.UploadChunkFn = func(_ context.Context, _ osprey.UID, _ uint32, body io.Reader, _ int64, _ string) error {
		_, err := io.Copy(io.Discard, body)
		return err
	}
	st.MergeFn = func(_ context.Context, _ osprey.UID, num uint32, _ int64, _ string) (FileInfo, error) {
		if num > 1 {
			return FileInfo{}, fmt.Errorf("%w: chunk 2 missing", osprey.ErrConflict)
		}
		return info, nil
	}
	st.DeleteFn = func(context.Context, osprey.UID) error { return nil }
	st.ListFn = func(context.Context, osprey.UID, int) ([]FileInfo, osprey.UID, error) {
		return []FileInfo{info, uploading}, testUID, nil
	}
	st.LocateFn = func(context.Context, osprey.UID) ([]string, error) { return []string{"10.0.0.1:8080"}, nil }
	st.PutLocalChunkFn = func(_ context.Context, _ ChunkRef, body io.Reader, _ int64, _ CopyOrigin) (uint64, error) {
		_, err := io.Copy(io.Discard, body)
		return 42, err
	}
	st.GetLocalChunkFn = func(context.Context, ChunkRef, int64, int64) (io.ReadCloser, int64, error) {
		return io.NopCloser(strings.NewReader("abc")), 3, nil
	}
	st.DeleteLocalChunkFn = func(context.Context, ChunkRef, CopyOrigin, uint64) error { return nil }
	st.LocalChunkGenFn = func(context.Context, ChunkRef) (uint64, error) { return 7, nil }

	workerID := int64(1)
	member := MemberInfo{ID: "n1", RaftAddr: "10.0.0.1:8081", HTTPAddr: "10.0.0.1:8080", Suffrage: "Voter", WorkerID: &workerID}
	since := now.Add(-time.Minute)
	cl := ff.cluster
	cl.StatusFn = func(context.Context) (ClusterStatus, error) {
		return ClusterStatus{ID: "n1", ClusterID: "c1", State: "Leader", Leader: LeaderInfo{ID: "n1", HTTPAddr: "10.0.0.1:8080", RaftAddr: "10.0.0.1:8081"},
			Term: 2, CommitIndex: 10, AppliedIndex: 10, FSMHash: "ab", FSMIndex: 10, Version: map[string]string{"version": "v1", "go": "go1.26"},
			Members: []MemberInfo{member, {ID: "n2", RaftAddr: "10.0.0.2:8081", Suffrage: "Voter"}},
			Storage: &StorageInfo{Redundancy: "replicas:2", Backend: "local", Files: 3, StagedCopies: 2, UnderProtected: 1,
				Tasks: map[string]int{"tier": 1}, Protection: "degraded",
				Degraded: []DegradedMember{{ID: "n2", UnreachableSince: &since, RepairAt: &now}}}}, nil
	}
	cl.NodesFn = func(context.Context) ([]NodeInfo, error) {
		return []NodeInfo{{MemberInfo: member, Leader: true, Reachable: true, RTTMillis: 0.4},
			{MemberInfo: MemberInfo{ID: "n2", Suffrage: "Voter"}, Error: "dial tcp: refused"}}, nil
	}
	cl.JoinFn = func(context.Context, JoinRequest) (JoinResult, error) {
		return JoinResult{ClusterID: "c1", Leader: "n1"}, nil
	}
	cl.RemoveFn = func(_ context.Context, id string) error {
		if id != "n2" {
			return fmt.Errorf("%w: node %s", osprey.ErrNotFound, id)
		}
		return nil
	}
	cl.TransferLeadershipFn = func(context.Context, string) error { return nil }
	cl.LeaderHTTPFn = func() string { return "10.0.0.2:8080" }
	in := ff.internal
	in.ApplyEncodedFn = func(context.Context, []byte) ([]byte, error) { return []byte(`{"uid":"1"}`), nil }
	in.ReadIndexFn = func(context.Context) (uint64, error) { return 17, nil }
	in.BootstrapInfoFn = func() BootstrapInfo {
		return BootstrapInfo{ID: "n1", RaftAddr: "10.0.0.1:8081", HTTPAddr: "10.0.0.1:8080"}
	}
	in.CheckJoinTokenFn = func(tok string) bool { return tok == "join-token" }
	ff.tasks.ListTasksFn = func(context.Context, string) ([]TaskInfo, error) {
		return []TaskInfo{{ID: 7, Type: "tier", Target: testUID.String(), State: "dead", Attempts: 5, LastError: "boom", CreatedAt: now.Format(time.RFC3339)}}, nil
	}
	ff.tasks.RetryTaskFn = func(_ context.Context, id uint64) (TaskInfo, error) {
		if id != 7 {
			return TaskInfo{}, fmt.Errorf("%w: task %d", osprey.ErrNotFound, id)
		}
		return TaskInfo{ID: 7, Type: "tier", Target: testUID.String(), State: "pending", CreatedAt: now.Format(time.RFC3339)}, nil
	}
	ff.replicas.PutLocalObjectFn = func(_ context.Context, _, _ string, body io.Reader, _ int64, _ string) error {
		_, err := io.Copy(io.Discard, body)
		return err
	}
	ff.replicas.GetLocalObjectFn = func(context.Context, string, string, int64, int64) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader("abc")), nil
	}
	ff.replicas.DeleteLocalObjectFn = func(context.Context, string, string, string) error { return nil }
	ff.replicas.LocalObjectVersionFn = func(context.Context, string, string) (string, error) { return "12-34", nil }
	ff.metadata.BackupFn = func(_ context.Context, w io.Writer, started func(uint64)) error {
		started(10)
		_, err := w.Write([]byte("backup"))
		return err
	}
	ff.metadata.RestoreFn = func(_ context.Context, r io.Reader) (RestoreResult, error) {
		b, _ := io.ReadAll(r)
		if string(b) != "backup" {
			return RestoreResult{}, fmt.Errorf("%w: not a backup", osprey.ErrInvalid)
		}
		return RestoreResult{Index: 10, Files: 3, Removed: []string{"n9"}}, nil
	}
	ff.metadata.SnapshotFn = func(context.Context) (SnapshotResult, error) {
		return SnapshotResult{Index: 10, Bytes: 4096, Millis: 1.5}, nil
	}
	ff.console.FileDetailFn = func(_ context.Context, uid osprey.UID) (FileDetail, error) {
		if uid != testUID {
			return FileDetail{}, fmt.Errorf("%w: uid %s", osprey.ErrNotFound, uid)
		}
		return FileDetail{FileInfo: info, Content: "c1", Refs: 1, Verified: true,
			Tier:  &TierInfo{Bucket: "image", Key: "1.jpg", Holders: []Holder{{ID: "n1", HTTPAddr: "10.0.0.1:8080"}}},
			Parts: []ChunkDetail{{Num: 1, Size: 3, MD5: info.MD5, Layout: "ec:2+1", Holders: []Holder{{ID: "n1", Shard: 1}, {ID: "n2", Shard: 2, Down: true}}}}}, nil
	}
	ff.console.SearchFilesFn = func(context.Context, string, osprey.UID, int) ([]FileInfo, osprey.UID, error) {
		return []FileInfo{info}, 0, nil
	}
	reports := t.TempDir()
	ff.console.ReportsDir = reports
	if err := os.MkdirAll(filepath.Join(reports, "run-1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(reports, "run-1", "summary.json"), []byte(`{"ok":true}`), 0o644); err != nil {
		t.Fatal(err)
	}

	wall := time.Now()
	upQ := signUpload(testSecret, testUID, wall, time.Hour)
	upURL := func(path string, extra ...string) string {
		q := url.Values{}
		for k, vs := range upQ {
			q[k] = vs
		}
		for i := 0; i+1 < len(extra); i += 2 {
			q.Set(extra[i], extra[i+1])
		}
		return Prefix + path + "?" + q.Encode()
	}
	dq := url.Values{}
	dq.Set("uid", testUID.String())
	dq.Set("name", info.Name)
	dq.Set("online", "1")
	dq.Set("bucket", info.Bucket)
	dq.Set("object", testUID.String()+".jpg")
	downURL := Prefix + "/download?" + signDownload(testSecret, dq, wall, time.Hour).Encode()
	rdate, rexp := wall.UTC().Format(time.RFC3339), "600"
	rq := url.Values{"date": {rdate}, "expire": {rexp}, "signature": {signFields(testSecret, reportFields("run-1", "summary.json", rdate, rexp)...)}}
	md5abc := md5hex([]byte("abc"))
	nodeHdr := map[string]string{"Authorization": "", HeaderNodeAuth: testNodeToken}

	type tc struct {
		name   string
		method string
		route  string // OpenAPI path template; "" = not a route (router's own replies)
		target string
		body   string
		hdr    map[string]string
		before func()
		want   int
	}
	cases := []tc{
		{"ping", "GET", "/api/storage/v0/ping", Prefix + "/ping", "", nil, nil, 200},
		{"health", "GET", "/api/storage/v0/health", Prefix + "/health", "", nil, nil, 200},
		{"livez", "GET", "/livez", "/livez", "", nil, nil, 200},
		{"readyz", "GET", "/readyz", "/readyz", "", nil, nil, 200},
		{"readyz not ready", "GET", "/readyz", "/readyz", "", nil, func() {
			cl.NotReadyFn = func(context.Context) []string { return []string{"no raft leader"} }
		}, 503},
		{"metrics", "GET", "/metrics", "/metrics", "", nil, func() { cl.NotReadyFn = nil }, 200},
		{"openapi", "GET", "/openapi.json", "/openapi.json", "", nil, nil, 200},
		{"pprof index", "GET", "/debug/pprof/", "/debug/pprof/", "", nil, nil, 200},
		{"pprof heap", "GET", "/debug/pprof/heap", "/debug/pprof/heap", "", nil, nil, 200},
		{"pprof allocs text", "GET", "/debug/pprof/allocs", "/debug/pprof/allocs?debug=1", "", nil, nil, 200},
		{"pprof goroutine", "GET", "/debug/pprof/goroutine", "/debug/pprof/goroutine?debug=1", "", nil, nil, 200},
		{"pprof profile", "GET", "/debug/pprof/profile", "/debug/pprof/profile?seconds=1", "", nil, nil, 200},
		{"pprof block", "GET", "/debug/pprof/block", "/debug/pprof/block?seconds=1", "", nil, nil, 200},
		{"pprof mutex", "GET", "/debug/pprof/mutex", "/debug/pprof/mutex?seconds=1", "", nil, nil, 200},
		{"pprof block bad seconds", "GET", "/debug/pprof/block", "/debug/pprof/block?seconds=0", "", nil, nil, 400},
		{"pprof without key", "GET", "/debug/pprof/heap", "/debug/pprof/heap", "", map[string]string{"Authorization": ""}, nil, 401},

		{"cluster status", "GET", "/cluster/status", "/cluster/status", "", nil, nil, 200},
		{"cluster status wrong key", "GET", "/cluster/status", "/cluster/status", "", map[string]string{"Authorization": "Bearer wrong-key-123"}, nil, 403},
		{"cluster nodes", "GET", "/cluster/nodes", "/cluster/nodes", "", nil, nil, 200},
		{"join", "POST", "/cluster/join", "/cluster/join", `{"id":"n4","raft_addr":"10.0.0.4:8081","http_addr":"10.0.0.4:8080","token":"t"}`, nil, nil, 200},
		{"join without token", "POST", "/cluster/join", "/cluster/join", `{"id":"n4","raft_addr":"10.0.0.4:8081"}`, nil, nil, 401},
		{"join malformed", "POST", "/cluster/join", "/cluster/join", `{`, nil, nil, 400},
		{"join redirect on a follower", "POST", "/cluster/join", "/cluster/join?redirect", `{}`, nil, func() {
			cl.IsLeaderFn = func() bool { return false }
		}, 307},
		{"join no leader", "POST", "/cluster/join", "/cluster/join", `{}`, nil, func() { cl.LeaderHTTPFn = func() string { return "" } }, 503},
		{"remove", "DELETE", "/cluster/nodes/{id}", "/cluster/nodes/n2", "", nil, func() {
			cl.IsLeaderFn, cl.LeaderHTTPFn = nil, func() string { return "10.0.0.2:8080" }
		}, 200},
		{"remove unknown", "DELETE", "/cluster/nodes/{id}", "/cluster/nodes/n9", "", nil, nil, 404},
		{"leader transfer", "POST", "/cluster/leader-transfer", "/cluster/leader-transfer", `{"id":"n2"}`, nil, nil, 200},
		{"backup", "GET", "/cluster/backup", "/cluster/backup", "", nil, nil, 200},
		{"restore", "POST", "/cluster/restore", "/cluster/restore", "backup", nil, nil, 200},
		{"restore corrupt", "POST", "/cluster/restore", "/cluster/restore", "junk", nil, nil, 400},
		{"snapshot", "POST", "/cluster/snapshot", "/cluster/snapshot", "", nil, nil, 200},
		{"key create", "POST", "/cluster/keys", "/cluster/keys", `{"tenant":"acme","read_only":true,"prefixes":["photos/"],"description":"d"}`, nil, nil, 200},
		{"key create bad prefix", "POST", "/cluster/keys", "/cluster/keys", `{"prefixes":[""]}`, nil, nil, 400},
		{"key create redirect", "POST", "/cluster/keys", "/cluster/keys?redirect", `{}`, nil, func() {
			cl.IsLeaderFn = func() bool { return false }
		}, 307},
		{"key list", "GET", "/cluster/keys", "/cluster/keys", "", nil, func() { cl.IsLeaderFn = nil }, 200},
		{"key revoke", "DELETE", "/cluster/keys/{id}", "/cluster/keys/x", "", nil, func() {
			_, _ = ff.keys.CreateKey(context.Background(), NewKey{ID: "x", Hash: strings.Repeat("0", 64)})
		}, 200},
		{"key revoke unknown", "DELETE", "/cluster/keys/{id}", "/cluster/keys/y", "", nil, nil, 404},
		{"key revoke redirect", "DELETE", "/cluster/keys/{id}", "/cluster/keys/x?redirect", "", nil, func() {
			cl.IsLeaderFn = func() bool { return false }
		}, 307},
		{"scoped key on an admin route", "GET", "/cluster/keys", "/cluster/keys", "", nil, func() {
			cl.IsLeaderFn = nil
			_, _ = ff.keys.CreateKey(context.Background(), NewKey{ID: "s1", Hash: hashSecret("sec")})
		}, 200},
		{"scoped key refused", "GET", "/cluster/keys", "/cluster/keys", "", bearer("osk_s1_sec"), nil, 403},
		{"scoped key revoked", "GET", "/api/storage/v0/object", Prefix + "/object?uid=" + testUID.String(), "", bearer("osk_s1_sec"), func() {
			_, _ = ff.keys.RevokeKey(context.Background(), "s1")
		}, 401},

		{"apply", "POST", "/internal/v1/apply", "/internal/v1/apply", "cmd", nodeHdr, nil, 200},
		{"apply without node auth", "POST", "/internal/v1/apply", "/internal/v1/apply", "cmd", nil, nil, 403},
		{"readindex", "GET", "/internal/v1/readindex", "/internal/v1/readindex", "", nodeHdr, nil, 200},
		{"readindex not leader", "GET", "/internal/v1/readindex", "/internal/v1/readindex", "", nodeHdr, func() {
			in.ReadIndexFn = func(context.Context) (uint64, error) { return 0, osprey.ErrNotLeader }
		}, 503},
		{"bootstrap info", "GET", "/internal/v1/bootstrap-info", "/internal/v1/bootstrap-info", "", map[string]string{"X-Osprey-Join-Token": "join-token"}, nil, 200},
		{"bootstrap info bad token", "GET", "/internal/v1/bootstrap-info", "/internal/v1/bootstrap-info", "", nil, nil, 403},
		{"chunk put", "PUT", "/internal/v1/chunks/{blob}/{num}/{shard}", "/internal/v1/chunks/5/1/0", "abc", nodeHdr, nil, 200},
		{"chunk put bad ref", "PUT", "/internal/v1/chunks/{blob}/{num}/{shard}", "/internal/v1/chunks/x/1/0", "abc", nodeHdr, nil, 400},
		{"chunk get", "GET", "/internal/v1/chunks/{blob}/{num}/{shard}", "/internal/v1/chunks/5/1/0?off=0&n=3", "", nodeHdr, nil, 200},
		{"chunk delete", "DELETE", "/internal/v1/chunks/{blob}/{num}/{shard}", "/internal/v1/chunks/5/1/0", "", nodeHdr, nil, 200},
		{"chunk delete gen", "DELETE", "/internal/v1/chunks/{blob}/{num}/{shard}", "/internal/v1/chunks/5/1/0?gen=7", "", nodeHdr, nil, 200},
		{"chunk head", "HEAD", "/internal/v1/chunks/{blob}/{num}/{shard}", "/internal/v1/chunks/5/1/0", "", nodeHdr, nil, 200},
		{"object put", "PUT", "/internal/v1/objects/{bucket}/{key}", "/internal/v1/objects/image/1.jpg?md5=" + md5abc, "abc", nodeHdr, nil, 200},
		{"object get", "GET", "/internal/v1/objects/{bucket}/{key}", "/internal/v1/objects/image/1.jpg?off=0&n=3", "", nodeHdr, nil, 200},
		{"object get bad range", "GET", "/internal/v1/objects/{bucket}/{key}", "/internal/v1/objects/image/1.jpg?off=x", "", nodeHdr, nil, 400},
		{"object delete", "DELETE", "/internal/v1/objects/{bucket}/{key}", "/internal/v1/objects/image/1.jpg", "", nodeHdr, nil, 200},
		{"object delete version", "DELETE", "/internal/v1/objects/{bucket}/{key}", "/internal/v1/objects/image/1.jpg?version=12-34", "", nodeHdr, nil, 200},
		{"object head", "HEAD", "/internal/v1/objects/{bucket}/{key}", "/internal/v1/objects/image/1.jpg", "", nodeHdr, nil, 200},

		{"resume", "POST", "/api/storage/v0/resume", Prefix + "/resume", `{"data":[{"md5":"` + md5abc + `","path":"a.jpg"}]}`, nil, nil, 200},
		{"resume bad md5", "POST", "/api/storage/v0/resume", Prefix + "/resume", `{"data":[{"md5":"x","path":"a.jpg"}]}`, nil, nil, 400},
		{"dedup challenge", "POST", "/api/storage/v0/dedup/challenge", Prefix + "/dedup/challenge",
			`{"md5":"` + md5abc + `","size":3,"sha256":"` + strings.Repeat("ab", 32) + `","path":"a.jpg"}`, nil, nil, 200},
		{"dedup challenge no sha256", "POST", "/api/storage/v0/dedup/challenge", Prefix + "/dedup/challenge",
			`{"md5":"` + md5abc + `","size":3,"path":"a.jpg"}`, nil, nil, 400},
		{"dedup prove wrong", "POST", "/api/storage/v0/dedup/prove", Prefix + "/dedup/prove",
			`{"challenge":"c.s","proof":"` + strings.Repeat("00", 32) + `"}`, nil, nil, 403},
		{"dedup prove", "POST", "/api/storage/v0/dedup/prove", Prefix + "/dedup/prove",
			`{"challenge":"c.s","proof":"` + strings.Repeat("00", 32) + `"}`, nil, func() {
				ff.dedup.ProveFn = func(context.Context, string, string) (string, osprey.UID, error) { return md5abc, testUID, nil }
			}, 200},
		{"link upload", "POST", "/api/storage/v0/link/upload", Prefix + "/link/upload", `{"filePath":["a.jpg","b.mp4"],"expire":60}`, nil, nil, 200},
		{"link upload without key", "POST", "/api/storage/v0/link/upload", Prefix + "/link/upload", `{"filePath":["a.jpg"]}`, map[string]string{"Authorization": ""}, nil, 401},
		{"link download", "POST", "/api/storage/v0/link/download", Prefix + "/link/download", `{"uid":["` + testUID.String() + `","1","x"]}`, nil, nil, 200},
		{"upload", "PUT", "/api/storage/v0/upload", upURL("/upload", "md5", md5abc), "abc", map[string]string{"Authorization": ""}, nil, 200},
		{"upload bad signature", "PUT", "/api/storage/v0/upload", upURL("/upload", "md5", md5abc, "signature", strings.Repeat("0", 64)), "abc", nil, nil, 403},
		{"upload chunk", "PUT", "/api/storage/v0/upload/multi", upURL("/upload/multi", "md5", md5abc, "chunkNum", "1"), "abc", nil, nil, 200},
		{"upload chunk no number", "PUT", "/api/storage/v0/upload/multi", upURL("/upload/multi", "md5", md5abc), "abc", nil, nil, 400},
		{"merge", "PUT", "/api/storage/v0/upload/merge", upURL("/upload/merge", "md5", md5abc, "num", "1", "size", "3"), "", nil, nil, 200},
		{"merge missing chunks", "PUT", "/api/storage/v0/upload/merge", upURL("/upload/merge", "md5", md5abc, "num", "2", "size", "6"), "", nil, nil, 409},
		{"download", "GET", "/api/storage/v0/download", downURL, "", nil, nil, 200},
		{"download range", "GET", "/api/storage/v0/download", downURL, "", map[string]string{"Range": "bytes=1-"}, nil, 206},
		{"download bad range", "GET", "/api/storage/v0/download", downURL, "", map[string]string{"Range": "bytes=9-"}, nil, 416},
		{"download head", "HEAD", "/api/storage/v0/download", downURL, "", nil, nil, 200},
		{"download unsigned", "GET", "/api/storage/v0/download", Prefix + "/download?uid=" + testUID.String(), "", nil, nil, 403},
		{"checkpoint", "GET", "/api/storage/v0/checkpoint", Prefix + "/checkpoint?uid=" + testUID.String(), "", nil, nil, 200},
		{"checkpoint no uid", "GET", "/api/storage/v0/checkpoint", Prefix + "/checkpoint", "", nil, nil, 400},
		{"proxy", "GET", "/api/storage/v0/proxy", Prefix + "/proxy?uid=" + testUID.String(), "", nil, nil, 200},
		{"object", "GET", "/api/storage/v0/object", Prefix + "/object?uid=" + testUID.String(), "", nil, nil, 200},
		{"object unknown", "GET", "/api/storage/v0/object", Prefix + "/object?uid=1", "", nil, nil, 404},
		{"object backend down", "GET", "/api/storage/v0/object", Prefix + "/object?uid=" + testUID.String(), "", nil, func() {
			st.StatFn = func(context.Context, osprey.UID) (FileInfo, error) {
				return FileInfo{}, fmt.Errorf("%w: s3 down", osprey.ErrBackend)
			}
		}, 502},
		{"object internal error", "GET", "/api/storage/v0/object", Prefix + "/object?uid=" + testUID.String(), "", nil, func() {
			st.StatFn = func(context.Context, osprey.UID) (FileInfo, error) { return FileInfo{}, fmt.Errorf("disk on fire") }
		}, 500},
		{"delete object", "DELETE", "/api/storage/v0/object", Prefix + "/object?uid=" + testUID.String(), "", nil, nil, 200},
		{"delete object redirect", "DELETE", "/api/storage/v0/object", Prefix + "/object?redirect&uid=" + testUID.String(), "", nil, func() {
			cl.IsLeaderFn = func() bool { return false }
		}, 307},
		{"objects", "GET", "/api/storage/v0/objects", Prefix + "/objects?limit=2", "", nil, func() { cl.IsLeaderFn = nil }, 200},
		{"objects bad limit", "GET", "/api/storage/v0/objects", Prefix + "/objects?limit=0", "", nil, nil, 400},
		{"object detail", "GET", "/api/storage/v0/object/detail", Prefix + "/object/detail?uid=" + testUID.String(), "", nil, nil, 200},
		{"object detail unknown", "GET", "/api/storage/v0/object/detail", Prefix + "/object/detail?uid=1", "", nil, nil, 404},
		{"objects search", "GET", "/api/storage/v0/objects/search", Prefix + "/objects/search?prefix=photos/", "", nil, nil, 200},

		{"tasks", "GET", "/tasks", "/tasks?state=dead", "", nil, nil, 200},
		{"tasks bad state", "GET", "/tasks", "/tasks?state=sleeping", "", nil, nil, 400},
		{"task retry", "POST", "/tasks/{id}/retry", "/tasks/7/retry", "", nil, nil, 200},
		{"task retry unknown", "POST", "/tasks/{id}/retry", "/tasks/8/retry", "", nil, nil, 404},

		{"console", "GET", "/ui/{path}", "/ui/", "", nil, nil, 200},
		{"console head", "HEAD", "/ui/{path}", "/ui/", "", nil, nil, 200},
		{"console info", "GET", "/console/info", "/console/info", "", nil, nil, 200},
		{"console reports", "GET", "/console/reports", "/console/reports", "", nil, nil, 200},
		{"console report", "GET", "/console/reports/{run}/{file}", "/console/reports/run-1/summary.json?" + rq.Encode(), "", nil, nil, 200},
		{"console report unsigned", "GET", "/console/reports/{run}/{file}", "/console/reports/run-1/summary.json", "", nil, nil, 403},

		{"no such route", "GET", "", "/nowhere", "", nil, nil, 404},
		{"method not allowed", "POST", "", "/livez", "", nil, nil, 405},
	}
	seen := map[string]bool{}
	ran := 0
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			ran++
			if tt.before != nil {
				tt.before()
			}
			req, err := http.NewRequest(tt.method, ts.URL+tt.target, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+testKey)
			for k, v := range tt.hdr {
				if v == "" {
					req.Header.Del(k)
					continue
				}
				req.Header.Set(k, v)
			}
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, body)
			}
			if resp.Header.Get(HeaderRequestID) == "" {
				t.Error("reply has no X-Request-Id")
			}
			if tt.route == "" {
				// The router's own replies (404, 405) use the error envelope.
				sch, err := v.schema("/components/schemas/Error")
				if err != nil {
					t.Fatal(err)
				}
				inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
				if err != nil {
					t.Fatalf("not JSON: %v: %s", err, body)
				}
				if err := sch.Validate(inst); err != nil {
					t.Fatalf("does not match Error: %#v: %s", err, body)
				}
				return
			}
			seen[tt.method+" "+tt.route] = true
			if err := v.check(tt.route, tt.method, resp.StatusCode, resp.Header, body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode < 300 {
				if err := v.checkRequest(tt.route, tt.method, req.URL, tt.body); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	if ran < len(cases) {
		return // filtered with -run
	}
	// Every documented operation is exercised at least once.
	for _, r := range mustOpenAPIDoc(t).documentedRoutes() {
		if !seen[r] {
			t.Errorf("no request exercised %s", r)
		}
	}
}

// TestOpenAPISecurity checks each operation's documented security against
// what the server enforces: a request from a non-loopback client with no
// credentials gets 401 where the document asks for the API key, 403 where
// it asks for node credentials or the join token, and neither where it
// asks for nothing (signed links are checked by the handler, not here).
func TestOpenAPISecurity(t *testing.T) {
	f := mustFullFixture(t)
	var doc struct {
		Security []map[string]any                     `json:"security"`
		Paths    map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	params := regexp.MustCompile(`\{[a-z]+\}`)
	for path, ops := range doc.Paths {
		for method, op := range ops {
			want := "open"
			sec := doc.Security
			if raw, ok := op["security"]; ok {
				sec = nil
				for _, r := range raw.([]any) {
					sec = append(sec, r.(map[string]any))
				}
			}
			if len(sec) > 0 {
				for k := range sec[0] {
					want = k
				}
			}
			target := params.ReplaceAllString(path, "1")
			t.Run(strings.ToUpper(method)+" "+path, func(t *testing.T) {
				rec := f.serve(newRequest(strings.ToUpper(method), target, strings.NewReader(""), map[string]string{"Authorization": ""}))
				switch got := rec.Code; want {
				case "apiKey":
					if got != http.StatusUnauthorized {
						t.Errorf("documented as needing the API key, but without one: %d %s", got, rec.Body)
					}
				case "nodeAuth", "joinToken":
					if got != http.StatusForbidden {
						t.Errorf("documented as needing %s, but without it: %d %s", want, got, rec.Body)
					}
				case "open":
					if got == http.StatusUnauthorized || (got == http.StatusForbidden && !strings.Contains(rec.Body.String(), "signature")) {
						t.Errorf("documented as open, but without credentials: %d %s", got, rec.Body)
					}
				default:
					t.Errorf("unknown security scheme %q", want)
				}
			})
		}
	}
}
