package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osprey-storage/osprey"
)

// --- /link/download ---

type linkDownloadOut struct {
	UID  string `json:"uid"`
	URL  string `json:"url"`
	Meta *struct {
		SrcName string `json:"srcName"`
		DstName string `json:"dstName"`
		Height  int    `json:"height"`
		Width   int    `json:"width"`
		MD5     string `json:"md5"`
		Size    string `json:"size"`
	} `json:"meta"`
	Error string `json:"error"`
}

// files are what the Stat mock knows, by uid.
var linkFiles = map[osprey.UID]FileInfo{
	111: {UID: 111, Name: "my file & co #1 +=%?.JPG", Size: 10, MD5: "aa", Bucket: "image", State: "complete"},
	222: {UID: 222, Name: "报告 v2.pdf", Size: 1 << 40, MD5: "bb", Bucket: "doc", State: "tiered"},
	333: {UID: 333, Name: "up.mp4", Bucket: "video", State: "uploading"},
	444: {UID: 444, Name: "bad.zip", Bucket: "archive", State: "failed"},
	777: {UID: 777, Name: "noext", Size: 1, MD5: "cc", Bucket: "unknown", State: "complete"},
}

func statFiles(f *fixture) {
	f.storage.StatFn = func(_ context.Context, uid osprey.UID) (FileInfo, error) {
		if uid == 666 {
			return FileInfo{}, errors.New("pebble: disk at /srv/osprey failed")
		}
		if uid == 888 {
			return FileInfo{}, fmt.Errorf("stat: %w", osprey.ErrBackend)
		}
		info, ok := linkFiles[uid]
		if !ok {
			return FileInfo{}, fmt.Errorf("fsm: uid %d: %w", uid, osprey.ErrNotFound)
		}
		return info, nil
	}
}

func TestLinkDownloadMix(t *testing.T) {
	f := mustFixture(t)
	statFiles(f)
	before := time.Now().UTC().Truncate(time.Second)
	_, env := f.check(t, apiCase{method: http.MethodPost, path: Prefix + "/link/download",
		body: `{"uid":["111","555","333","abc","222","444","0","","-1","666","888","777"," 111 "],"expire":120}`, wantCode: 200})
	var out []linkDownloadOut
	mustStrict(t, env.Data, &out)
	want := []struct{ uid, err string }{
		{"111", ""}, {"555", "not found"}, {"333", "upload not complete"}, {"abc", "invalid uid"},
		{"222", ""}, {"444", "file failed verification"}, {"0", "invalid uid"}, {"", "invalid uid"},
		{"-1", "invalid uid"}, {"666", "internal error"}, {"888", "backend"}, {"777", ""}, {" 111 ", ""},
	}
	if len(out) != len(want) {
		t.Fatalf("%d items, want %d", len(out), len(want))
	}
	for i, w := range want {
		o := out[i]
		if o.UID != w.uid {
			t.Errorf("item %d: uid %q, want %q (request order)", i, o.UID, w.uid)
		}
		if w.err != "" {
			if !strings.Contains(o.Error, w.err) || o.URL != "" || o.Meta != nil {
				t.Errorf("item %d (%q): %+v, want error %q and no link", i, w.uid, o, w.err)
			}
			continue
		}
		if o.Error != "" || o.URL == "" || o.Meta == nil {
			t.Errorf("item %d (%q): %+v, want a link", i, w.uid, o)
		}
	}
	if strings.Contains(string(env.Data), "pebble") || strings.Contains(string(env.Data), "/srv/osprey") {
		t.Errorf("internal error details leaked into items: %s", env.Data)
	}
	if !strings.Contains(f.logs.String(), "pebble: disk at /srv/osprey failed") {
		t.Errorf("the item's internal error was not logged")
	}

	// The link for 111: properly encoded, signed, UTC, and the meta shape.
	o := out[0]
	u, err := url.Parse(o.URL)
	if err != nil {
		t.Fatal(err)
	}
	if u.IsAbs() || u.Path != Prefix+"/download" || u.Fragment != "" {
		t.Errorf("link %q: want a relative link to /download with no fragment", o.URL)
	}
	for _, bad := range []string{" ", "#", "?.", "%?", "+=%"} {
		if strings.Contains(u.RawQuery, bad) {
			t.Errorf("query %q contains unencoded %q", u.RawQuery, bad)
		}
	}
	if n := strings.Count(u.RawQuery, "&"); n != 7 {
		t.Errorf("query %q has %d '&', want 7 separators (8 parameters)", u.RawQuery, n)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		t.Fatalf("query does not parse strictly: %v", err)
	}
	wantQ := map[string]string{"uid": "111", "name": "my file & co #1 +=%?.JPG", "online": "1", "bucket": "image", "object": "111.jpg", "expire": "120"}
	for k, v := range wantQ {
		if q.Get(k) != v {
			t.Errorf("query %s = %q, want %q", k, q.Get(k), v)
		}
	}
	date, err := time.Parse(time.RFC3339, q.Get("date"))
	if err != nil || !strings.HasSuffix(q.Get("date"), "Z") || date.Before(before) || date.After(time.Now()) {
		t.Errorf("date %q is not the UTC request time", q.Get("date"))
	}
	if err := verifyLink(testSecret, q, downloadFields(q), time.Now(), 0); err != nil {
		t.Errorf("link does not verify: %v", err)
	}
	m := o.Meta
	if m.SrcName != "my file & co #1 +=%?.JPG" || m.DstName != "111.jpg" || m.MD5 != "aa" || m.Size != "10" || m.Height != 0 || m.Width != 0 {
		t.Errorf("meta %+v", m)
	}
	// Unicode name and a size beyond 2^32 for 222; no extension for 777.
	u2, _ := url.Parse(out[4].URL)
	if !isASCII(u2.RawQuery) || u2.Query().Get("name") != "报告 v2.pdf" || out[4].Meta.Size != "1099511627776" {
		t.Errorf("222: query %q meta %+v", u2.RawQuery, out[4].Meta)
	}
	u3, _ := url.Parse(out[11].URL)
	if u3.Query().Get("object") != "777" || out[11].Meta.DstName != "777" {
		t.Errorf("777: object %q", u3.Query().Get("object"))
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// TestLinkDownloadThenDownload follows a returned link.
func TestLinkDownloadThenDownload(t *testing.T) {
	f := mustFixture(t)
	statFiles(f)
	content := []byte("0123456789")
	f.storage.OpenFn = func(_ context.Context, uid osprey.UID) (*Object, error) {
		info := linkFiles[uid]
		return &Object{FileInfo: info, Reader: func(_ context.Context, off, n int64) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(content[off : off+n])), nil
		}}, nil
	}
	_, env := f.check(t, apiCase{method: http.MethodPost, path: Prefix + "/link/download", body: `{"uid":["111"]}`, wantCode: 200})
	var out []linkDownloadOut
	mustStrict(t, env.Data, &out)
	rec := f.do(http.MethodGet, out[0].URL, "", map[string]string{"Authorization": ""})
	if rec.Code != 200 || rec.Body.String() != string(content) {
		t.Fatalf("status %d body %q", rec.Code, rec.Body.String())
	}
	_, params, err := mime.ParseMediaType(rec.Header().Get("Content-Disposition"))
	if err != nil || params["filename"] != "my file & co #1 +=%?.JPG" {
		t.Errorf("Content-Disposition %q (%v)", rec.Header().Get("Content-Disposition"), err)
	}
	// The same link with another uid (osproxy served another file) fails.
	u, _ := url.Parse(out[0].URL)
	q := withParam(u.Query(), "uid", "222")
	rec = f.do(http.MethodGet, Prefix+"/download?"+q.Encode(), "", nil)
	if rec.Code != 403 {
		t.Errorf("uid swapped: status %d", rec.Code)
	}
	if n := f.storage.Calls("Open"); n != 1 {
		t.Errorf("Open called %d times", n)
	}
}

func TestLinkDownloadExpiry(t *testing.T) {
	tests := []struct {
		name, expire, want string
	}{
		{"absent", "", "86400"},
		{"zero", `,"expire":0`, "86400"},
		{"small", `,"expire":30`, "30"},
		{"at cap", `,"expire":604800`, "604800"},
		{"over cap", `,"expire":604801`, "604800"},
		{"huge", `,"expire":9223372036854775807`, "604800"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustFixture(t) // default limits: 1 day default, 7 days max
			statFiles(f)
			_, env := f.check(t, apiCase{method: http.MethodPost, path: Prefix + "/link/download",
				body: `{"uid":["111"]` + tt.expire + `}`, wantCode: 200})
			var out []linkDownloadOut
			mustStrict(t, env.Data, &out)
			u, _ := url.Parse(out[0].URL)
			if got := u.Query().Get("expire"); got != tt.want {
				t.Errorf("expire %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLinkDownloadBadInput(t *testing.T) {
	for _, c := range []apiCase{
		{name: "malformed", body: `{"uid":[`, wantCode: 400, wantBody: "malformed JSON"},
		{name: "numbers not strings", body: `{"uid":[111]}`, wantCode: 400, wantBody: "malformed JSON"},
		{name: "empty list", body: `{"uid":[]}`, wantCode: 400, wantBody: "1 to 200 uids, got 0"},
		{name: "no list", body: `{}`, wantCode: 400, wantBody: "got 0"},
		{name: "201 uids", body: `{"uid":[` + repeatJSON(201, `"111"`) + `]}`, wantCode: 400, wantBody: "got 201"},
		{name: "negative expire", body: `{"uid":["111"],"expire":-60}`, wantCode: 400, wantBody: "expire"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := mustFixture(t)
			statFiles(f)
			c.method, c.path = http.MethodPost, Prefix+"/link/download"
			f.check(t, c)
			if n := f.storage.Calls("Stat"); n != 0 {
				t.Errorf("Stat called %d times", n)
			}
		})
	}
	t.Run("200 uids", func(t *testing.T) {
		f := mustFixture(t)
		statFiles(f)
		_, env := f.check(t, apiCase{method: http.MethodPost, path: Prefix + "/link/download", body: `{"uid":[` + repeatJSON(200, `"111"`) + `]}`, wantCode: 200})
		var out []linkDownloadOut
		mustStrict(t, env.Data, &out)
		if len(out) != 200 {
			t.Errorf("%d items", len(out))
		}
	})
	t.Run("cluster unavailable fails the batch", func(t *testing.T) {
		for _, kind := range []error{osprey.ErrUnavailable, osprey.ErrIndeterminate} {
			f := mustFixture(t)
			f.storage.StatFn = func(_ context.Context, uid osprey.UID) (FileInfo, error) {
				if uid == 2 {
					return FileInfo{}, fmt.Errorf("read index: %w", kind)
				}
				return linkFiles[111], nil
			}
			want := map[error]int{osprey.ErrUnavailable: 503, osprey.ErrIndeterminate: 504}[kind]
			f.check(t, apiCase{method: http.MethodPost, path: Prefix + "/link/download", body: `{"uid":["1","2","3"]}`, wantCode: want})
		}
	})
}

// --- /download ---

type readCall struct{ off, n int64 }

// fakeObject serves content through a Reader that records its calls and
// whether every reader it handed out was closed.
type fakeObject struct {
	content []byte
	mu      sync.Mutex
	calls   []readCall
	open    int
}

func (o *fakeObject) object(name string, mod time.Time) *Object {
	return &Object{
		FileInfo: FileInfo{UID: testUID, Name: name, Size: int64(len(o.content)), MD5: md5hex(o.content), UpdatedAt: mod, State: "complete"},
		Reader: func(_ context.Context, off, n int64) (io.ReadCloser, error) {
			o.mu.Lock()
			defer o.mu.Unlock()
			o.calls = append(o.calls, readCall{off, n})
			if off < 0 || n < 0 || off+n > int64(len(o.content)) {
				return nil, fmt.Errorf("fake: read (%d, %d) of %d bytes", off, n, len(o.content))
			}
			o.open++
			return &fakeReader{Reader: bytes.NewReader(o.content[off : off+n]), o: o}, nil
		},
	}
}

func (o *fakeObject) state() ([]readCall, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]readCall(nil), o.calls...), o.open
}

type fakeReader struct {
	io.Reader
	o    *fakeObject
	once sync.Once
}

func (r *fakeReader) Close() error {
	r.once.Do(func() {
		r.o.mu.Lock()
		r.o.open--
		r.o.mu.Unlock()
	})
	return nil
}

var modTime = time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)

// dlFixture serves obj for testUID through Open.
func dlFixture(t *testing.T, content []byte, name string) (*fixture, *fakeObject) {
	t.Helper()
	f := mustFixture(t)
	fo := &fakeObject{content: content}
	f.storage.OpenFn = func(_ context.Context, uid osprey.UID) (*Object, error) {
		if uid != testUID {
			return nil, fmt.Errorf("open %d: %w", uid, osprey.ErrNotFound)
		}
		return fo.object(name, modTime), nil
	}
	return f, fo
}

func dlPath(name, online string) string {
	return Prefix + "/download?" + downloadLink(testUID, name, online, "image", "1234567890123456789.jpg", time.Now(), time.Hour).Encode()
}

func TestDownloadFull(t *testing.T) {
	content := []byte("0123456789")
	tests := []struct {
		name, fileName, online string
		wantDisp, wantType     string
	}{
		{"inline", "a.jpg", "1", "inline", "image/jpeg"},
		{"online absent is inline", "a.jpg", "", "inline", "image/jpeg"},
		{"attachment", "a.jpg", "0", "attachment", "image/jpeg"},
		{"unicode", "报告 2026.pdf", "0", "attachment", "application/pdf"},
		{"quotes and backslash", `he said "hi"\.txt`, "1", "inline", "text/plain; charset=utf-8"},
		{"semicolon and equals", "a;b=c.png", "1", "inline", "image/png"},
		{"newline", "a\r\nSet-Cookie: x=y.jpg", "1", "inline", "image/jpeg"},
		{"no extension", "README", "1", "inline", "application/octet-stream"},
		// Active types never render inline on the API origin (stored XSS).
		{"html is an attachment", "page.html", "1", "attachment", "text/html; charset=utf-8"},
		{"svg is an attachment", "logo.svg", "1", "attachment", "image/svg+xml"},
		{"xml is an attachment", "feed.xml", "", "attachment", "text/xml; charset=utf-8"},
		{"js is an attachment", "app.js", "1", "attachment", "text/javascript; charset=utf-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, fo := dlFixture(t, content, "stored-name.bin")
			rec := f.do(http.MethodGet, dlPath(tt.fileName, tt.online), "", map[string]string{"Authorization": ""})
			if rec.Code != 200 {
				t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
			}
			if rec.Body.String() != string(content) {
				t.Errorf("body %q", rec.Body.String())
			}
			h := rec.Header()
			wantHeaders := map[string]string{
				"Etag":                   `"` + md5hex(content) + `"`,
				"Content-Length":         "10",
				"Accept-Ranges":          "bytes",
				"X-Content-Type-Options": "nosniff",
				"Content-Type":           tt.wantType,
				"Last-Modified":          "Tue, 03 Feb 2026 04:05:06 GMT",
				"Content-Range":          "",
			}
			for k, v := range wantHeaders {
				if h.Get(k) != v {
					t.Errorf("%s = %q, want %q", k, h.Get(k), v)
				}
			}
			if h.Get(HeaderRequestID) == "" {
				t.Errorf("no request id")
			}
			csp := h.Get("Content-Security-Policy")
			if active := tt.wantDisp == "attachment" && tt.online != "0"; active != strings.HasPrefix(csp, "sandbox") {
				t.Errorf("Content-Security-Policy %q for %s", csp, tt.fileName)
			}
			cd := h.Get("Content-Disposition")
			if !isASCII(cd) || strings.ContainsAny(cd, "\r\n") {
				t.Errorf("Content-Disposition %q is not a safe ASCII header", cd)
			}
			disp, params, err := mime.ParseMediaType(cd)
			if err != nil || disp != tt.wantDisp || params["filename"] != tt.fileName {
				t.Errorf("Content-Disposition %q parses to (%q, %q, %v), want (%q, %q)", cd, disp, params["filename"], err, tt.wantDisp, tt.fileName)
			}
			if !isASCII(tt.fileName) && !strings.Contains(cd, "filename*=utf-8''") {
				t.Errorf("unicode name not RFC 6266/5987-encoded: %q", cd)
			}
			calls, open := fo.state()
			if fmt.Sprint(calls) != "[{0 10}]" || open != 0 {
				t.Errorf("reader calls %v, %d left open", calls, open)
			}
		})
	}
	t.Run("signed empty name falls back to the stored name", func(t *testing.T) {
		f, _ := dlFixture(t, content, "stored name.png")
		rec := f.do(http.MethodGet, dlPath("", "1"), "", nil)
		_, params, _ := mime.ParseMediaType(rec.Header().Get("Content-Disposition"))
		if rec.Code != 200 || params["filename"] != "stored name.png" || rec.Header().Get("Content-Type") != "image/png" {
			t.Errorf("status %d, headers %v", rec.Code, rec.Header())
		}
	})
}

func TestDownloadHead(t *testing.T) {
	content := []byte("0123456789")
	tests := []struct {
		name      string
		rng       string
		wantCode  int
		wantLen   string
		wantRange string
	}{
		{"full", "", 200, "10", ""},
		{"range", "bytes=2-4", 206, "3", "bytes 2-4/10"},
		{"bad range", "bytes=20-", 416, "", "bytes */10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, fo := dlFixture(t, content, "a.jpg")
			rec := f.do(http.MethodHead, dlPath("a.jpg", "1"), "", map[string]string{"Range": tt.rng})
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d", rec.Code)
			}
			if tt.wantLen != "" && rec.Header().Get("Content-Length") != tt.wantLen {
				t.Errorf("Content-Length %q, want %q", rec.Header().Get("Content-Length"), tt.wantLen)
			}
			if rec.Header().Get("Content-Range") != tt.wantRange {
				t.Errorf("Content-Range %q, want %q", rec.Header().Get("Content-Range"), tt.wantRange)
			}
			if tt.wantCode < 300 && (rec.Body.Len() != 0 || rec.Header().Get("Etag") == "") {
				t.Errorf("HEAD body %q, ETag %q", rec.Body.String(), rec.Header().Get("Etag"))
			}
			if calls, _ := fo.state(); len(calls) != 0 {
				t.Errorf("HEAD read the object: %v", calls)
			}
		})
	}
}

func TestDownloadRanges(t *testing.T) {
	ten := []byte("0123456789")
	mib1 := bytes.Repeat([]byte("abcdefgh"), 1<<17)
	mib1 = append(mib1, 'Z') // 1 MiB + 1 byte: osproxy dropped the last one
	etag := `"` + md5hex(ten) + `"`
	tests := []struct {
		name      string
		content   []byte
		hdr       map[string]string
		wantCode  int
		wantBody  string // for 2xx
		wantRange string
		wantRead  string // fmt of the reader calls
	}{
		{"bytes=0-0 is one byte", ten, map[string]string{"Range": "bytes=0-0"}, 206, "0", "bytes 0-0/10", "[{0 1}]"},
		{"a-b", ten, map[string]string{"Range": "bytes=2-5"}, 206, "2345", "bytes 2-5/10", "[{2 4}]"},
		{"a-", ten, map[string]string{"Range": "bytes=7-"}, 206, "789", "bytes 7-9/10", "[{7 3}]"},
		{"-n", ten, map[string]string{"Range": "bytes=-3"}, 206, "789", "bytes 7-9/10", "[{7 3}]"},
		{"last byte", ten, map[string]string{"Range": "bytes=9-9"}, 206, "9", "bytes 9-9/10", "[{9 1}]"},
		{"ends exactly at EOF", ten, map[string]string{"Range": "bytes=5-9"}, 206, "56789", "bytes 5-9/10", "[{5 5}]"},
		{"whole file as a range", ten, map[string]string{"Range": "bytes=0-9"}, 206, string(ten), "bytes 0-9/10", "[{0 10}]"},
		{"0- is 206", ten, map[string]string{"Range": "bytes=0-"}, 206, string(ten), "bytes 0-9/10", "[{0 10}]"},
		{"b beyond EOF is clamped", ten, map[string]string{"Range": "bytes=5-100"}, 206, "56789", "bytes 5-9/10", "[{5 5}]"},
		{"suffix longer than file", ten, map[string]string{"Range": "bytes=-100"}, 206, string(ten), "bytes 0-9/10", "[{0 10}]"},
		{"spaces tolerated", ten, map[string]string{"Range": "bytes= 1 - 2 "}, 206, "12", "bytes 1-2/10", "[{1 2}]"},
		{"start at size", ten, map[string]string{"Range": "bytes=10-"}, 416, "", "bytes */10", "[]"},
		{"start beyond size", ten, map[string]string{"Range": "bytes=11-20"}, 416, "", "bytes */10", "[]"},
		{"-0", ten, map[string]string{"Range": "bytes=-0"}, 416, "", "bytes */10", "[]"},
		{"end before start", ten, map[string]string{"Range": "bytes=5-4"}, 416, "", "bytes */10", "[]"},
		{"garbage", ten, map[string]string{"Range": "bytes=abc"}, 416, "", "bytes */10", "[]"},
		{"empty spec", ten, map[string]string{"Range": "bytes="}, 416, "", "bytes */10", "[]"},
		{"multiple ranges served whole", ten, map[string]string{"Range": "bytes=0-1,4-5"}, 200, string(ten), "", "[{0 10}]"},
		{"other unit served whole", ten, map[string]string{"Range": "items=0-1"}, 200, string(ten), "", "[{0 10}]"},
		{"empty file with a range", nil, map[string]string{"Range": "bytes=0-"}, 416, "", "bytes */0", "[]"},
		{"empty file with a suffix", nil, map[string]string{"Range": "bytes=-1"}, 416, "", "bytes */0", "[]"},
		{"empty file whole", nil, nil, 200, "", "", "[]"},
		{"1 MiB + 1 whole", mib1, nil, 200, string(mib1), "", "[{0 1048577}]"},
		{"1 MiB + 1 last byte", mib1, map[string]string{"Range": "bytes=1048576-"}, 206, "Z", "bytes 1048576-1048576/1048577", "[{1048576 1}]"},
		{"If-Range matches", ten, map[string]string{"Range": "bytes=1-2", "If-Range": etag}, 206, "12", "bytes 1-2/10", "[{1 2}]"},
		{"If-Range mismatches", ten, map[string]string{"Range": "bytes=1-2", "If-Range": `"0000"`}, 200, string(ten), "", "[{0 10}]"},
		{"If-Range weak never matches", ten, map[string]string{"Range": "bytes=1-2", "If-Range": "W/" + etag}, 200, string(ten), "", "[{0 10}]"},
		{"If-Range mismatch ignores a bad range", ten, map[string]string{"Range": "bytes=50-", "If-Range": `"0000"`}, 200, string(ten), "", "[{0 10}]"},
		{"If-Range date current", ten, map[string]string{"Range": "bytes=1-2", "If-Range": modTime.Format(http.TimeFormat)}, 206, "12", "bytes 1-2/10", "[{1 2}]"},
		{"If-Range date old", ten, map[string]string{"Range": "bytes=1-2", "If-Range": modTime.Add(-time.Hour).Format(http.TimeFormat)}, 200, string(ten), "", "[{0 10}]"},
		{"If-Range garbage", ten, map[string]string{"Range": "bytes=1-2", "If-Range": "yesterday"}, 200, string(ten), "", "[{0 10}]"},
		{"If-Range without Range", ten, map[string]string{"If-Range": etag}, 200, string(ten), "", "[{0 10}]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, fo := dlFixture(t, tt.content, "a.bin")
			rec := f.do(http.MethodGet, dlPath("a.bin", "0"), "", tt.hdr)
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d, want %d: %.200s", rec.Code, tt.wantCode, rec.Body.String())
			}
			if got := rec.Header().Get("Content-Range"); got != tt.wantRange {
				t.Errorf("Content-Range %q, want %q", got, tt.wantRange)
			}
			calls, open := fo.state()
			if got := fmt.Sprint(calls); got != tt.wantRead {
				t.Errorf("reader calls %s, want %s", got, tt.wantRead)
			}
			if open != 0 {
				t.Errorf("%d readers left open", open)
			}
			if tt.wantCode == 416 {
				env := mustEnvelope(t, rec)
				if env.Code != CodeRange {
					t.Errorf("code %d", env.Code)
				}
				return
			}
			if rec.Body.String() != tt.wantBody {
				t.Errorf("body %d bytes %.20q, want %d bytes %.20q", rec.Body.Len(), rec.Body.String(), len(tt.wantBody), tt.wantBody)
			}
			if cl := rec.Header().Get("Content-Length"); cl != fmt.Sprint(len(tt.wantBody)) {
				t.Errorf("Content-Length %s, want %d", cl, len(tt.wantBody))
			}
		})
	}
}

func TestDownloadBadLinks(t *testing.T) {
	now := time.Now()
	good := func() url.Values {
		return downloadLink(testUID, "a b.jpg", "1", "image", "1234567890123456789.jpg", now, time.Hour)
	}
	tests := []struct {
		name     string
		q        func() url.Values
		wantCode int
		inMsg    string
	}{
		{"uid missing", func() url.Values { q := good(); q.Del("uid"); return q }, 400, "uid is required"},
		{"uid text", func() url.Values { return withParam(good(), "uid", "abc") }, 400, "uid"},
		{"uid zero", func() url.Values { return withParam(good(), "uid", "0") }, 400, "uid"},
		{"uid changed", func() url.Values { return withParam(good(), "uid", "1234567890123456788") }, 403, "signature"},
		{"name changed", func() url.Values { return withParam(good(), "name", "evil.html") }, 403, "signature"},
		{"online changed", func() url.Values { return withParam(good(), "online", "0") }, 403, "signature"},
		{"online removed", func() url.Values { q := good(); q.Del("online"); return q }, 403, "signature"},
		{"bucket changed", func() url.Values { return withParam(good(), "bucket", "doc") }, 403, "signature"},
		{"object changed", func() url.Values { return withParam(good(), "object", "1.jpg") }, 403, "signature"},
		{"date changed", func() url.Values {
			return withParam(good(), "date", now.Add(time.Second).UTC().Format(time.RFC3339))
		}, 403, "signature"},
		{"expire changed", func() url.Values { return withParam(good(), "expire", "604800") }, 403, "signature"},
		{"signature changed", func() url.Values { return withParam(good(), "signature", strings.Repeat("f", 64)) }, 403, "signature"},
		{"signature missing", func() url.Values { q := good(); q.Del("signature"); return q }, 403, "signature missing"},
		{"expired", func() url.Values {
			return downloadLink(testUID, "a b.jpg", "1", "image", "x", now.Add(-2*time.Hour), time.Hour)
		}, 403, "expired"},
		{"date in the future", func() url.Values {
			return downloadLink(testUID, "a b.jpg", "1", "image", "x", now.Add(time.Hour), time.Hour)
		}, 403, "future"},
		{"online 2 (signed)", func() url.Values {
			return downloadLink(testUID, "a b.jpg", "2", "image", "x", now, time.Hour)
		}, 400, "online"},
		{"unknown uid (signed)", func() url.Values {
			return downloadLink(99, "a b.jpg", "1", "image", "x", now, time.Hour)
		}, 404, "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, fo := dlFixture(t, []byte("0123456789"), "a b.jpg")
			f.check(t, apiCase{method: http.MethodGet, path: Prefix + "/download?" + tt.q().Encode(),
				header: map[string]string{"Authorization": ""}, wantCode: tt.wantCode, wantBody: tt.inMsg})
			wantOpen := 0
			if tt.wantCode == 404 {
				wantOpen = 1
			}
			if n := f.storage.Calls("Open"); n != wantOpen {
				t.Errorf("Open called %d times, want %d", n, wantOpen)
			}
			if calls, _ := fo.state(); len(calls) != 0 {
				t.Errorf("object read for a rejected link")
			}
		})
	}
}

// TestDownloadShortReadAborts: when the object yields fewer bytes than
// promised the connection is cut, so the client never takes a truncated
// body for a complete file; the reader is still closed.
func TestDownloadShortReadAborts(t *testing.T) {
	big := strings.Repeat("x", 256<<10) // beyond net/http's buffer: headers go out first
	tests := []struct {
		name   string
		size   int64
		reader func() io.Reader
	}{
		{"short", 10, func() io.Reader { return strings.NewReader("01234") }},
		{"error midway", 10, func() io.Reader {
			return io.MultiReader(strings.NewReader("01234"), iotestErrReader{errors.New("backend reset")})
		}},
		{"short after headers", int64(len(big)) + 1, func() io.Reader { return strings.NewReader(big) }},
		{"error after headers", int64(len(big)) * 2, func() io.Reader {
			return io.MultiReader(strings.NewReader(big), iotestErrReader{errors.New("backend reset")})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustFixture(t)
			closed := make(chan struct{})
			f.storage.OpenFn = func(context.Context, osprey.UID) (*Object, error) {
				return &Object{FileInfo: FileInfo{UID: testUID, Name: "a.bin", Size: tt.size, MD5: "x"},
					Reader: func(context.Context, int64, int64) (io.ReadCloser, error) {
						return &closeNotifier{Reader: tt.reader(), c: closed}, nil
					}}, nil
			}
			srv := httptest.NewServer(f.srv)
			defer srv.Close()
			// The cut may come before or after the headers are flushed;
			// either way the client must see an error.
			resp, err := http.Get(srv.URL + dlPath("a.bin", "1"))
			if err == nil {
				b, rerr := io.ReadAll(resp.Body)
				resp.Body.Close()
				if rerr == nil {
					t.Fatalf("status %d, read %q without error: a truncated body looked complete", resp.StatusCode, b)
				}
			}
			select {
			case <-closed:
			case <-time.After(10 * time.Second):
				t.Fatal("object reader never closed")
			}
		})
	}
}

type iotestErrReader struct{ err error }

func (r iotestErrReader) Read([]byte) (int, error) { return 0, r.err }

type closeNotifier struct {
	io.Reader
	c    chan struct{}
	once sync.Once
}

func (c *closeNotifier) Close() error {
	c.once.Do(func() { close(c.c) })
	return nil
}

// TestDownloadOverRealServer checks ranges end to end through net/http,
// as curl -C - and wget -c use them.
func TestDownloadOverRealServer(t *testing.T) {
	content := []byte("The quick brown fox jumps over the lazy dog")
	f, _ := dlFixture(t, content, "fox.txt")
	srv := httptest.NewServer(f.srv)
	defer srv.Close()
	link := srv.URL + dlPath("fox.txt", "0")

	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	full, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	etag := resp.Header.Get("ETag")
	if !bytes.Equal(full, content) || etag == "" {
		t.Fatalf("full download %q etag %q", full, etag)
	}
	// Resume from byte 10 as wget -c does.
	req, _ := http.NewRequest(http.MethodGet, link, nil)
	req.Header.Set("Range", "bytes=10-")
	req.Header.Set("If-Range", etag)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 206 || !bytes.Equal(rest, content[10:]) {
		t.Fatalf("resume: status %d body %q", resp.StatusCode, rest)
	}
	if got := resp.Header.Get("Content-Range"); got != fmt.Sprintf("bytes 10-%d/%d", len(content)-1, len(content)) {
		t.Errorf("Content-Range %q", got)
	}
}

// --- unit tables ---

func TestParseRange(t *testing.T) {
	tests := []struct {
		h             string
		size          int64
		start, length int64
		wantErr       error // nil, errIgnoreRange or osprey.ErrRange
	}{
		{"bytes=0-0", 10, 0, 1, nil},
		{"bytes=0-9", 10, 0, 10, nil},
		{"bytes=0-", 10, 0, 10, nil},
		{"bytes=3-5", 10, 3, 3, nil},
		{"bytes=9-", 10, 9, 1, nil},
		{"bytes=9-9", 10, 9, 1, nil},
		{"bytes=9-20", 10, 9, 1, nil},
		{"bytes=0-9223372036854775807", 10, 0, 10, nil},
		{"bytes=-1", 10, 9, 1, nil},
		{"bytes=-10", 10, 0, 10, nil},
		{"bytes=-11", 10, 0, 10, nil},
		{"bytes=-9223372036854775807", 10, 0, 10, nil},
		{" bytes=1-2 ", 10, 1, 2, nil},
		{"bytes=0-0", 1, 0, 1, nil},
		{"bytes=-1", 1, 0, 1, nil},
		{"bytes=10-", 10, 0, 0, osprey.ErrRange},
		{"bytes=10-10", 10, 0, 0, osprey.ErrRange},
		{"bytes=-0", 10, 0, 0, osprey.ErrRange},
		{"bytes=5-4", 10, 0, 0, osprey.ErrRange},
		{"bytes=-", 10, 0, 0, osprey.ErrRange},
		{"bytes=", 10, 0, 0, osprey.ErrRange},
		{"bytes=x-1", 10, 0, 0, osprey.ErrRange},
		{"bytes=1-x", 10, 0, 0, osprey.ErrRange},
		{"bytes=--1", 10, 0, 0, osprey.ErrRange},
		{"bytes=1-2-3", 10, 0, 0, osprey.ErrRange},
		{"bytes=99999999999999999999-", 10, 0, 0, osprey.ErrRange},
		{"bytes=0-", 0, 0, 0, osprey.ErrRange},
		{"bytes=-1", 0, 0, 0, osprey.ErrRange},
		{"bytes=0-0", 0, 0, 0, osprey.ErrRange},
		{"bytes=0-1,3-4", 10, 0, 0, errIgnoreRange},
		{"bytes=0-1, 3-4", 10, 0, 0, errIgnoreRange},
		{"items=0-1", 10, 0, 0, errIgnoreRange},
		{"0-1", 10, 0, 0, errIgnoreRange},
		{"", 10, 0, 0, errIgnoreRange},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q of %d", tt.h, tt.size), func(t *testing.T) {
			start, length, err := parseRange(tt.h, tt.size)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("parseRange = (%d, %d, %v), want %v", start, length, err, tt.wantErr)
				}
				return
			}
			if err != nil || start != tt.start || length != tt.length {
				t.Fatalf("parseRange = (%d, %d, %v), want (%d, %d)", start, length, err, tt.start, tt.length)
			}
		})
	}
}

// FuzzParseRange: parseRange never panics and every range it accepts lies
// inside the file.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-0", "bytes=-1", "bytes=5-", "bytes=1-2,3-4", "bytes=-0", "bytes=9-3", "items=1-2", "bytes= 1 - 2 ", "bytes=+1-+2", "bytes=-9223372036854775808"} {
		for _, size := range []int64{0, 1, 10, 1 << 20, 1<<63 - 1} {
			f.Add(s, size)
		}
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			size = -(size + 1)
		}
		start, length, err := parseRange(h, size)
		if err != nil {
			if !errors.Is(err, errIgnoreRange) && !errors.Is(err, osprey.ErrRange) {
				t.Fatalf("parseRange(%q, %d): unexpected error kind %v", h, size, err)
			}
			return
		}
		if start < 0 || start >= size || length < 1 || length > size-start {
			t.Fatalf("parseRange(%q, %d) = (%d, %d): outside the file", h, size, start, length)
		}
	})
}

func TestIfRangeMatches(t *testing.T) {
	etag := `"abc"`
	tests := []struct {
		ifRange string
		want    bool
	}{
		{"", true},
		{`"abc"`, true},
		{`"abd"`, false},
		{`W/"abc"`, false},
		{`abc`, false},
		{modTime.Format(http.TimeFormat), true},
		{modTime.Add(time.Second).Format(http.TimeFormat), true},
		{modTime.Add(-time.Second).Format(http.TimeFormat), false},
		{"not a date", false},
	}
	for _, tt := range tests {
		t.Run(tt.ifRange, func(t *testing.T) {
			if got := ifRangeMatches(tt.ifRange, etag, modTime.Add(500*time.Millisecond)); got != tt.want {
				t.Errorf("ifRangeMatches(%q) = %v, want %v", tt.ifRange, got, tt.want)
			}
		})
	}
}

func TestObjectKey(t *testing.T) {
	tests := []struct{ name, want string }{
		{"a.JPG", "7.jpg"},
		{"dir/b.tar.gz", "7.gz"},
		{"noext", "7"},
		{"v1.2/file", "7"},
		{`v1.2\file`, "7"},
		{".hidden", "7.hidden"},
		{"", "7"},
	}
	for _, tt := range tests {
		if got := objectKey(FileInfo{UID: 7, Name: tt.name}); got != tt.want {
			t.Errorf("objectKey(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestContentType(t *testing.T) {
	tests := []struct{ name, want string }{
		{"a.jpg", "image/jpeg"},
		{"a.JPG", "image/jpeg"},
		{"a.pdf", "application/pdf"},
		{"a", "application/octet-stream"},
		{"a.unknownext", "application/octet-stream"},
	}
	for _, tt := range tests {
		if got := contentType(tt.name); got != tt.want {
			t.Errorf("contentType(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// A download whose client stops reading ends after WriteIdleTimeout: the
// object reader is closed and the connection cut, instead of a handler
// blocked in Write for as long as the client keeps the socket open.
func TestDownloadClientStopsReading(t *testing.T) {
	f := mustFixture(t, func(c *Config) { c.Limits.WriteIdleTimeout = 300 * time.Millisecond })
	closed := make(chan struct{})
	const size = 256 << 20 // far beyond what socket buffers absorb
	f.storage.OpenFn = func(context.Context, osprey.UID) (*Object, error) {
		return &Object{FileInfo: FileInfo{UID: testUID, Name: "a.bin", Size: size, MD5: "x"},
			Reader: func(context.Context, int64, int64) (io.ReadCloser, error) {
				return &closeNotifier{Reader: io.LimitReader(zeros{}, size), c: closed}, nil
			}}, nil
	}
	srv := httptest.NewServer(f.srv)
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", dlPath("a.bin", "0"))
	// Read nothing.
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("the download still runs although its client reads nothing")
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestDownloadChunkSums: asked for them, a download carries the sums of
// the chunks its range overlaps; not asked, or with sums that do not
// describe the file, it carries none.
func TestDownloadChunkSums(t *testing.T) {
	content := []byte("0123456789")
	sums := []ChunkSum{{Size: 4, Sum: 0xa}, {Size: 4, Sum: 0xb}, {Size: 2, Sum: 0xc}}
	for _, tt := range []struct {
		name string
		sums []ChunkSum
		hdr  map[string]string
		want string
	}{
		{"whole file", sums, map[string]string{HeaderChunkSums: "xxh64"},
			"0:4:000000000000000a,4:4:000000000000000b,8:2:000000000000000c"},
		{"range inside one chunk", sums, map[string]string{HeaderChunkSums: "xxh64", "Range": "bytes=5-6"},
			"4:4:000000000000000b"},
		{"range across chunks", sums, map[string]string{HeaderChunkSums: "xxh64", "Range": "bytes=3-8"},
			"0:4:000000000000000a,4:4:000000000000000b,8:2:000000000000000c"},
		{"range at a boundary", sums, map[string]string{HeaderChunkSums: "xxh64", "Range": "bytes=4-7"},
			"4:4:000000000000000b"},
		{"not asked", sums, map[string]string{"Range": "bytes=0-3"}, ""},
		{"another algorithm", sums, map[string]string{HeaderChunkSums: "sha1"}, ""},
		{"unknown sums", nil, map[string]string{HeaderChunkSums: "xxh64"}, ""},
		{"sums of another size", sums[:2], map[string]string{HeaderChunkSums: "xxh64"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := mustFixture(t)
			fo := &fakeObject{content: content}
			f.storage.OpenFn = func(context.Context, osprey.UID) (*Object, error) {
				obj := fo.object("a.bin", modTime)
				obj.Sums = tt.sums
				return obj, nil
			}
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				rec := f.do(method, dlPath("a.bin", "0"), "", tt.hdr)
				if rec.Code/100 != 2 {
					t.Fatalf("%s: status %d", method, rec.Code)
				}
				if got := rec.Header().Get(HeaderChunkSums); got != tt.want {
					t.Errorf("%s: %s %q, want %q", method, HeaderChunkSums, got, tt.want)
				}
			}
		})
	}
	many := make([]ChunkSum, maxChunkSums+1)
	for i := range many {
		many[i] = ChunkSum{Size: 1, Sum: uint64(i)}
	}
	if got := chunkSumsHeader(many, int64(len(many)), 0, int64(len(many))); got != "" {
		t.Errorf("%d sums served in one header", len(many))
	}
	if got := chunkSumsHeader(many, int64(len(many)), 5, 2); got != "5:1:0000000000000005,6:1:0000000000000006" {
		t.Errorf("a short range of a many-chunk file: %q", got)
	}
}
