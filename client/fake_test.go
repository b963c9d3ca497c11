package client

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
)

// fakeServer is an in-memory osprey node faithful to SPEC §3/§4 as far as
// the client can observe: envelope replies, API-key auth on business
// endpoints, signed (here: trivially) relative links, md5 checks, chunk
// bookkeeping, merge conflicts that delete nothing, Range/If-Range
// downloads. Hooks inject faults.
type fakeServer struct {
	t      *testing.T
	apiKey string

	mu        sync.Mutex
	nextUID   int
	files     map[string]*fakeFile
	calls     map[string]int // "METHOD path" -> count
	chunkPuts map[int]int    // chunkNum -> PUT count
	reqID     int

	// hook, when set, runs first; returning true means it answered.
	hook func(w http.ResponseWriter, r *http.Request) bool
	// corrupt flips a byte of every download body.
	corrupt bool
	// cutAfter aborts download bodies after this many bytes (0 = never).
	cutAfter int64
	// ignoreRange serves 200 with the whole body even for Range requests.
	ignoreRange bool
	// etag overrides the ETag (default quoted md5).
	etag string
	// sumChunk, when set, answers downloads that ask for chunk sums with
	// the xxhash64 of the stored bytes in chunks of this size.
	sumChunk int64
	// challenges are the open proof-of-possession challenges by id.
	challenges map[string]fakeChallenge
}

type fakeChallenge struct {
	md5, sha, path string
	size           int64
	nonce          []byte
	off, n         int64
}

type fakeFile struct {
	uid, name, md5, state string
	content               []byte
	chunks                map[int][]byte
	merged                bool
	created               time.Time
}

func newFakeServer(t *testing.T) *fakeServer {
	return &fakeServer{t: t, apiKey: "secret", nextUID: 1000, files: map[string]*fakeFile{},
		calls: map[string]int{}, chunkPuts: map[int]int{}, challenges: map[string]fakeChallenge{}}
}

// start serves f on a loopback listener and returns a Client for it.
func (f *fakeServer) start(t *testing.T) (*httptest.Server, *Client) {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv, mustClient(t, srv.URL, f.apiKey)
}

func mustClient(t *testing.T, addr, key string) *Client {
	t.Helper()
	c, err := New(Config{Addr: addr, APIKey: key, Logger: testLogger(t), MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (f *fakeServer) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[key]
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func (f *fakeServer) reply(w http.ResponseWriter, status int, data any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": 0, "message": "ok", "data": data})
}

func (f *fakeServer) fail(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": code, "message": msg, "request_id": w.Header().Get("X-Request-Id")})
}

func (f *fakeServer) signed(op, uid string) string {
	q := url.Values{"uid": {uid}, "date": {"2026-01-01T00:00:00Z"}, "expire": {"86400"}, "signature": {op + "-" + uid}}
	return q.Encode()
}

func (f *fakeServer) checkSig(r *http.Request, op string) (*fakeFile, bool) {
	q := r.URL.Query()
	uid := q.Get("uid")
	if q.Get("signature") != op+"-"+uid {
		return nil, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ff := f.files[uid]
	return ff, ff != nil
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.reqID++
	f.calls[r.Method+" "+r.URL.Path]++
	w.Header().Set("X-Request-Id", "req-"+strconv.Itoa(f.reqID))
	f.mu.Unlock()
	if f.hook != nil && f.hook(w, r) {
		return
	}
	p := strings.TrimPrefix(r.URL.Path, APIPrefix)
	business := map[string]bool{"/resume": true, "/dedup/challenge": true, "/dedup/prove": true, "/link/upload": true, "/link/download": true, "/object": true,
		"/objects": true, "/checkpoint": true}
	if business[p] || strings.HasPrefix(r.URL.Path, "/cluster/") || strings.HasPrefix(r.URL.Path, "/tasks") {
		if r.Header.Get("Authorization") != "Bearer "+f.apiKey {
			f.fail(w, http.StatusUnauthorized, 1001, "missing or bad api key")
			return
		}
	} else if r.URL.Path == "/metrics" {
		// The key goes along (a node with --metrics-require-key needs it);
		// the fake's metrics are open, like a node's by default.
		if a := r.Header.Get("Authorization"); a != "" && a != "Bearer "+f.apiKey {
			f.t.Errorf("/metrics got a wrong key: %q", a)
		}
	} else if r.Header.Get("Authorization") != "" {
		f.t.Errorf("data endpoint %s got an Authorization header", r.URL.Path)
	}
	switch {
	case r.URL.Path == "/readyz" || r.URL.Path == "/livez":
		f.reply(w, 200, "ok")
	case r.URL.Path == "/metrics":
		fmt.Fprintf(w, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"+
			"# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 1.2345678e+07\n")
	case p == "/ping" || p == "/health":
		f.reply(w, 200, "pong")
	case p == "/resume" && r.Method == http.MethodPost:
		f.handleResume(w, r)
	case p == "/dedup/challenge" && r.Method == http.MethodPost:
		f.handleChallenge(w, r)
	case p == "/dedup/prove" && r.Method == http.MethodPost:
		f.handleProve(w, r)
	case p == "/link/upload" && r.Method == http.MethodPost:
		f.handleLinkUpload(w, r)
	case p == "/link/download" && r.Method == http.MethodPost:
		f.handleLinkDownload(w, r)
	case p == "/upload" && r.Method == http.MethodPut:
		f.handleUpload(w, r)
	case p == "/upload/multi" && r.Method == http.MethodPut:
		f.handleMulti(w, r)
	case p == "/upload/merge" && r.Method == http.MethodPut:
		f.handleMerge(w, r)
	case p == "/checkpoint" && r.Method == http.MethodGet:
		f.handleCheckpoint(w, r)
	case p == "/download" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		f.handleDownload(w, r)
	case p == "/object":
		f.handleObject(w, r)
	case p == "/objects" && r.Method == http.MethodGet:
		f.handleObjects(w, r)
	case r.URL.Path == "/cluster/status":
		f.reply(w, 200, map[string]any{"id": "n1", "state": "Leader", "term": 3, "commit_index": 42, "applied_index": 42,
			"fsm_hash": "abc123", "leader": map[string]any{"id": "n1", "http_addr": "127.0.0.1:1", "raft_addr": "127.0.0.1:2"},
			"members": []map[string]any{{"id": "n1", "raft_addr": "127.0.0.1:2", "http_addr": "127.0.0.1:1", "suffrage": "Voter", "worker_id": 1}}})
	case r.URL.Path == "/cluster/nodes":
		f.reply(w, 200, []map[string]any{{"id": "n1", "raft_addr": "127.0.0.1:2", "http_addr": "127.0.0.1:1", "suffrage": "Voter",
			"worker_id": 1, "leader": true, "reachable": true, "rtt_ms": 0.25}})
	case r.URL.Path == "/cluster/join" && r.Method == http.MethodPost:
		var j JoinRequest
		if json.NewDecoder(r.Body).Decode(&j) != nil || j.Token != "tok" {
			f.fail(w, 403, 1003, "bad join token")
			return
		}
		f.reply(w, 200, nil)
	case strings.HasPrefix(r.URL.Path, "/cluster/nodes/") && r.Method == http.MethodDelete:
		f.reply(w, 200, nil)
	case r.URL.Path == "/cluster/leader-transfer" && r.Method == http.MethodPost:
		f.reply(w, 200, nil)
	case r.URL.Path == "/tasks" && r.Method == http.MethodGet:
		f.reply(w, 200, []map[string]any{{"id": 7, "type": "tier", "target": "1001", "state": r.URL.Query().Get("state"),
			"attempts": 2, "lease_holder": "n1", "lease_expiry": "2026-01-01T00:00:10Z", "last_error": "backend: unavailable",
			"next_attempt": "2026-01-01T00:00:20Z"}})
	case strings.HasPrefix(r.URL.Path, "/tasks/") && strings.HasSuffix(r.URL.Path, "/retry") && r.Method == http.MethodPost:
		f.reply(w, 200, nil)
	default:
		f.fail(w, 404, 1004, "no route")
	}
}

func (f *fakeServer) handleResume(w http.ResponseWriter, r *http.Request) {
	var req resumeRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Data) == 0 || len(req.Data) > 50 {
		f.fail(w, 400, 1000, "data: bad")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []ResumeResult{}
	for _, it := range req.Data {
		res := ResumeResult{MD5: it.MD5}
		for _, ff := range f.files {
			if ff.md5 == it.MD5 && ff.state == StateComplete {
				f.nextUID++
				uid := strconv.Itoa(f.nextUID)
				f.files[uid] = &fakeFile{uid: uid, name: it.Path, md5: ff.md5, state: StateComplete, content: ff.content, created: time.Now()}
				res.UID = uid
				break
			}
		}
		out = append(out, res)
	}
	f.reply(w, 200, out)
}

// handleChallenge issues a challenge whether or not the content exists,
// over the last min(size, 1000) bytes (a range a test can corrupt).
func (f *fakeServer) handleChallenge(w http.ResponseWriter, r *http.Request) {
	var req dedupChallengeRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.SHA256) != 64 || len(req.MD5) != 32 {
		f.fail(w, 400, 1000, "bad challenge request")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := min(req.Size, 1000)
	ch := fakeChallenge{md5: req.MD5, sha: req.SHA256, path: req.Path, size: req.Size, off: req.Size - n, n: n,
		nonce: []byte(fmt.Sprintf("nonce-%d", len(f.challenges)))}
	id := fmt.Sprintf("ch-%d", len(f.challenges))
	f.challenges[id] = ch
	f.reply(w, 200, DedupChallenge{ID: id, Nonce: hex.EncodeToString(ch.nonce), Offset: ch.off, Length: ch.n,
		ExpiresAt: time.Now().Add(time.Minute)})
}

func (f *fakeServer) handleProve(w http.ResponseWriter, r *http.Request) {
	var req dedupProveRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		f.fail(w, 400, 1000, "bad prove request")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ch, ok := f.challenges[req.Challenge]
	delete(f.challenges, req.Challenge)
	if !ok {
		f.fail(w, 403, 1003, "unknown or used challenge")
		return
	}
	for _, ff := range f.files {
		sum := sha256.Sum256(ff.content)
		if ff.md5 != ch.md5 || ff.state != StateComplete || int64(len(ff.content)) != ch.size || hex.EncodeToString(sum[:]) != ch.sha {
			continue
		}
		m := hmac.New(sha256.New, ch.nonce)
		m.Write(ff.content[ch.off : ch.off+ch.n])
		if hex.EncodeToString(m.Sum(nil)) != req.Proof {
			break
		}
		f.nextUID++
		uid := strconv.Itoa(f.nextUID)
		f.files[uid] = &fakeFile{uid: uid, name: ch.path, md5: ff.md5, state: StateComplete, content: ff.content, created: time.Now()}
		f.reply(w, 200, ResumeResult{MD5: ch.md5, UID: uid})
		return
	}
	f.fail(w, 403, 1003, "proof of possession failed")
}

func (f *fakeServer) handleLinkUpload(w http.ResponseWriter, r *http.Request) {
	var req linkUploadRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.FilePath) == 0 || len(req.FilePath) > 50 {
		f.fail(w, 400, 1000, "filePath: bad")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []UploadLink{}
	for _, p := range req.FilePath {
		if path.Ext(p) == "" {
			f.fail(w, 422, 1000, "filePath: needs an extension")
			return
		}
		f.nextUID++
		uid := strconv.Itoa(f.nextUID)
		f.files[uid] = &fakeFile{uid: uid, name: p, state: StateUploading, chunks: map[int][]byte{}, created: time.Now()}
		out = append(out, UploadLink{UID: uid, Path: p, URL: UploadURLs{
			Single: APIPrefix + "/upload?" + f.signed("up", uid),
			Multi: MultiURLs{Upload: APIPrefix + "/upload/multi?" + f.signed("up", uid),
				Merge: APIPrefix + "/upload/merge?" + f.signed("up", uid)}}})
	}
	f.reply(w, 200, out)
}

func (f *fakeServer) handleLinkDownload(w http.ResponseWriter, r *http.Request) {
	var req linkDownloadRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.UID) == 0 || len(req.UID) > 200 {
		f.fail(w, 400, 1000, "uid: bad")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []any{}
	for _, uid := range req.UID {
		ff := f.files[uid]
		if ff == nil || ff.state != StateComplete {
			out = append(out, map[string]any{"uid": uid, "url": "", "meta": nil, "error": "not found or not complete"})
			continue
		}
		out = append(out, map[string]any{"uid": uid, "url": APIPrefix + "/download?" + f.signed("down", uid) + "&name=" + url.QueryEscape(ff.name),
			"meta": map[string]any{"srcName": ff.name, "dstName": ff.name, "md5": ff.md5, "size": strconv.Itoa(len(ff.content)),
				"height": 0, "width": 0}})
	}
	f.reply(w, 200, out)
}

func (f *fakeServer) handleUpload(w http.ResponseWriter, r *http.Request) {
	ff, ok := f.checkSig(r, "up")
	if !ok {
		f.fail(w, 403, 1003, "bad signature")
		return
	}
	var body []byte
	var err error
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		file, _, ferr := r.FormFile("file")
		if ferr != nil {
			f.fail(w, 400, 1000, "file: missing")
			return
		}
		body, err = io.ReadAll(file)
	} else {
		body, err = io.ReadAll(r.Body)
	}
	if err != nil {
		f.fail(w, 400, 1000, "body: "+err.Error())
		return
	}
	want := r.URL.Query().Get("md5")
	if md5hex(body) != want {
		f.fail(w, 400, 1000, "md5: mismatch")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if ff.state == StateComplete {
		f.fail(w, 409, 1005, "already complete")
		return
	}
	ff.content, ff.md5, ff.state = body, want, StateComplete
	f.reply(w, 200, map[string]string{"uid": ff.uid})
}

func (f *fakeServer) handleMulti(w http.ResponseWriter, r *http.Request) {
	ff, ok := f.checkSig(r, "up")
	if !ok {
		f.fail(w, 403, 1003, "bad signature")
		return
	}
	num, err := strconv.Atoi(r.URL.Query().Get("chunkNum"))
	if err != nil || num < 1 {
		f.fail(w, 400, 1000, "chunkNum: bad")
		return
	}
	if r.ContentLength < 0 {
		f.fail(w, 411, 1000, "length required")
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if md5hex(body) != r.URL.Query().Get("md5") {
		f.fail(w, 400, 1000, "md5: mismatch")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.chunkPuts[num]++
	if ff.merged {
		f.fail(w, 409, 1005, "already merged")
		return
	}
	ff.chunks[num] = body
	f.reply(w, 200, nil)
}

func (f *fakeServer) handleMerge(w http.ResponseWriter, r *http.Request) {
	ff, ok := f.checkSig(r, "up")
	if !ok {
		f.fail(w, 403, 1003, "bad signature")
		return
	}
	q := r.URL.Query()
	num, err1 := strconv.Atoi(q.Get("num"))
	size, err2 := strconv.ParseInt(q.Get("size"), 10, 64)
	if err1 != nil || err2 != nil || num < 1 {
		f.fail(w, 400, 1000, "num/size: bad")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if ff.merged {
		f.reply(w, 200, nil) // idempotent
		return
	}
	var missing []string
	var total int64
	var all []byte
	for i := 1; i <= num; i++ {
		c, ok := ff.chunks[i]
		if !ok {
			missing = append(missing, strconv.Itoa(i))
			continue
		}
		total += int64(len(c))
		all = append(all, c...)
	}
	if len(missing) > 0 {
		f.fail(w, 409, 1005, "missing chunks: "+strings.Join(missing, ","))
		return
	}
	if total != size {
		f.fail(w, 409, 1005, fmt.Sprintf("size: chunks add up to %d, not %d", total, size))
		return
	}
	ff.merged = true
	ff.content, ff.md5, ff.state = all, q.Get("md5"), StateComplete
	if md5hex(all) != ff.md5 {
		ff.state = StateFailed
	}
	f.reply(w, 200, nil)
}

func (f *fakeServer) handleCheckpoint(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ff := f.files[r.URL.Query().Get("uid")]
	if ff == nil {
		f.fail(w, 404, 1004, "uid: not found")
		return
	}
	out := []int{}
	for n := range ff.chunks {
		out = append(out, n)
	}
	sort.Ints(out)
	f.reply(w, 200, out)
}

func (f *fakeServer) handleDownload(w http.ResponseWriter, r *http.Request) {
	ff, ok := f.checkSig(r, "down")
	if !ok {
		f.fail(w, 403, 1003, "bad signature")
		return
	}
	f.mu.Lock()
	content := slices.Clone(ff.content)
	etag := `"` + ff.md5 + `"`
	f.mu.Unlock()
	if f.etag != "" {
		etag = f.etag
	}
	if f.corrupt && len(content) > 0 {
		content[len(content)/2] ^= 0xff
	}
	w.Header().Set("ETag", etag)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if f.sumChunk > 0 && r.Header.Get(headerChunkSums) == "xxh64" {
		w.Header().Set(headerChunkSums, fakeChunkSums(ff.content, f.sumChunk, r.Header.Get("Range")))
	}
	if f.ignoreRange {
		r.Header.Del("Range")
	}
	var dst io.Writer = w
	if f.cutAfter > 0 {
		dst = &cutWriter{w: w, left: f.cutAfter}
	}
	http.ServeContent(writerFunc{ResponseWriter: w, write: dst.Write}, r, "", time.Time{}, bytes.NewReader(content))
}

// cutWriter aborts the response (the client sees a broken body) after
// left bytes.
type cutWriter struct {
	w    http.ResponseWriter
	left int64
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > c.left {
		n, _ := c.w.Write(p[:c.left])
		c.left -= int64(n)
		if f, ok := c.w.(http.Flusher); ok {
			f.Flush()
		}
		panic(http.ErrAbortHandler)
	}
	c.left -= int64(len(p))
	return c.w.Write(p)
}

type writerFunc struct {
	http.ResponseWriter
	write func([]byte) (int, error)
}

func (w writerFunc) Write(p []byte) (int, error) { return w.write(p) }

func (f *fakeServer) objectJSON(ff *fakeFile) Object {
	state := ff.state
	return Object{UID: ff.uid, Name: ff.name, Size: int64(len(ff.content)), MD5: ff.md5, State: state,
		Bucket: "unknown", ContentType: "application/octet-stream", CreatedAt: Flex(ff.created.UTC().Format(time.RFC3339))}
}

func (f *fakeServer) handleObject(w http.ResponseWriter, r *http.Request) {
	uid := r.URL.Query().Get("uid")
	f.mu.Lock()
	defer f.mu.Unlock()
	ff := f.files[uid]
	if ff == nil {
		f.fail(w, 404, 1004, "uid: not found")
		return
	}
	switch r.Method {
	case http.MethodGet:
		f.reply(w, 200, f.objectJSON(ff))
	case http.MethodDelete:
		delete(f.files, uid)
		f.reply(w, 200, nil)
	default:
		f.fail(w, 405, 1000, "method not allowed")
	}
}

func (f *fakeServer) handleObjects(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit <= 0 {
		limit = 100
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var uids []string
	for u := range f.files {
		if u > q.Get("cursor") {
			uids = append(uids, u)
		}
	}
	sort.Strings(uids)
	page := ObjectPage{Items: []Object{}}
	for i, u := range uids {
		if i == limit {
			page.NextCursor = uids[i-1]
			break
		}
		page.Items = append(page.Items, f.objectJSON(f.files[u]))
	}
	f.reply(w, 200, page)
}

// mustPut stores content directly as a complete file and returns its uid.
func (f *fakeServer) mustPut(name string, content []byte) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextUID++
	uid := strconv.Itoa(f.nextUID)
	f.files[uid] = &fakeFile{uid: uid, name: name, md5: md5hex(content), state: StateComplete, content: content,
		chunks: map[int][]byte{}, created: time.Now()}
	return uid
}

func (f *fakeServer) file(uid string) *fakeFile {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.files[uid]
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// httptestRecorder returns a throwaway ResponseWriter.
func httptestRecorder() http.ResponseWriter { return httptest.NewRecorder() }

// fakeChunkSums is the chunk sums answer for the chunks of size n of
// content that the range "bytes=a-b" (or the whole file) overlaps.
func fakeChunkSums(content []byte, n int64, rng string) string {
	a, b := int64(0), int64(len(content))-1
	if spec, ok := strings.CutPrefix(rng, "bytes="); ok {
		lo, hi, _ := strings.Cut(spec, "-")
		a, _ = strconv.ParseInt(lo, 10, 64)
		if hi != "" {
			b, _ = strconv.ParseInt(hi, 10, 64)
		}
	}
	var items []string
	for off := int64(0); off < int64(len(content)); off += n {
		end := min(off+n, int64(len(content)))
		if off <= b && end > a {
			items = append(items, fmt.Sprintf("%d:%d:%016x", off, end-off, xxhash.Sum64(content[off:end])))
		}
	}
	return strings.Join(items, ",")
}
