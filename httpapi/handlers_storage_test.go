package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osprey-storage/osprey"
)

// mustStrict unmarshals data into v, rejecting fields v does not declare,
// so a reply shape is checked exactly.
func mustStrict(t *testing.T, data []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("data %s: %v", data, err)
	}
}

func repeatJSON(n int, item string) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = item
	}
	return strings.Join(parts, ",")
}

// --- /resume ---

func TestResume(t *testing.T) {
	f := mustFixture(t)
	var got []ResumeItem
	f.storage.ResumeFn = func(_ context.Context, items []ResumeItem) ([]osprey.UID, error) {
		got = items
		return []osprey.UID{0, 987654321987654321, 0}, nil
	}
	body := `{"data":[
		{"md5":"0123456789ABCDEF0123456789abcdef","path":"dir/a.JPG"},
		{"md5":"fedcba9876543210fedcba9876543210","path":"b.mp4"},
		{"md5":"00000000000000000000000000000000","path":"c.weird"}]}`
	_, env := f.check(t, apiCase{method: http.MethodPost, path: Prefix + "/resume", body: body, wantCode: 200})
	var out []struct {
		MD5 string `json:"md5"`
		UID string `json:"uid"`
	}
	mustStrict(t, env.Data, &out)
	want := `[{0123456789abcdef0123456789abcdef } {fedcba9876543210fedcba9876543210 987654321987654321} {00000000000000000000000000000000 }]`
	if fmt.Sprint(out) != want {
		t.Errorf("reply %v,\nwant %s", out, want)
	}
	wantItems := []ResumeItem{
		{MD5: "0123456789abcdef0123456789abcdef", Name: "dir/a.JPG", Bucket: "image"},
		{MD5: "fedcba9876543210fedcba9876543210", Name: "b.mp4", Bucket: "video"},
		{MD5: "00000000000000000000000000000000", Name: "c.weird", Bucket: "unknown"},
	}
	if fmt.Sprint(got) != fmt.Sprint(wantItems) {
		t.Errorf("Resume got %v, want %v", got, wantItems)
	}
}

// TestResumeMD5Off: with --dedup-resume-md5=false, /resume keeps its shape
// but answers uid "" for every item without looking anything up, so
// clients upload (or use proof of possession).
func TestResumeMD5Off(t *testing.T) {
	f := mustFixture(t, func(c *Config) { c.NoResumeMD5 = true })
	f.storage.ResumeFn = func(_ context.Context, items []ResumeItem) ([]osprey.UID, error) {
		return []osprey.UID{42}, nil
	}
	_, env := f.check(t, apiCase{method: http.MethodPost, path: Prefix + "/resume",
		body: `{"data":[{"md5":"0123456789abcdef0123456789abcdef","path":"a.jpg"}]}`, wantCode: 200})
	var out []struct {
		MD5 string `json:"md5"`
		UID string `json:"uid"`
	}
	mustStrict(t, env.Data, &out)
	if len(out) != 1 || out[0].UID != "" || out[0].MD5 != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("reply %+v", out)
	}
	if n := f.storage.Calls("Resume"); n != 0 {
		t.Fatalf("Resume called %d times", n)
	}
}

func TestResumeBadInput(t *testing.T) {
	item := `{"md5":"0123456789abcdef0123456789abcdef","path":"a.jpg"}`
	for _, c := range []apiCase{
		{name: "malformed", body: `{"data":[`, wantCode: 400, wantBody: "malformed JSON"},
		{name: "empty body", body: ``, wantCode: 400, wantBody: "malformed JSON"},
		{name: "data not a list", body: `{"data":{}}`, wantCode: 400, wantBody: "malformed JSON"},
		{name: "empty list", body: `{"data":[]}`, wantCode: 400, wantBody: "1 to 50 items, got 0"},
		{name: "no data", body: `{}`, wantCode: 400, wantBody: "got 0"},
		{name: "51 items", body: `{"data":[` + repeatJSON(51, item) + `]}`, wantCode: 400, wantBody: "got 51"},
		{name: "short md5", body: `{"data":[{"md5":"0123","path":"a.jpg"}]}`, wantCode: 400, wantBody: `data[0].md5`},
		{name: "non-hex md5", body: `{"data":[` + item + `,{"md5":"0123456789abcdef0123456789abcdeg","path":"a.jpg"}]}`, wantCode: 400, wantBody: `data[1].md5`},
		{name: "missing md5", body: `{"data":[{"path":"a.jpg"}]}`, wantCode: 400, wantBody: `md5`},
		{name: "no extension", body: `{"data":[{"md5":"0123456789abcdef0123456789abcdef","path":"README"}]}`, wantCode: 400, wantBody: "data[0].path"},
		{name: "empty path", body: `{"data":[{"md5":"0123456789abcdef0123456789abcdef","path":""}]}`, wantCode: 400, wantBody: "path is empty"},
		{name: "too long path", body: `{"data":[{"md5":"0123456789abcdef0123456789abcdef","path":"` + strings.Repeat("a", 1025) + `.jpg"}]}`, wantCode: 400, wantBody: "1024"},
		{name: "body over 1 MiB", body: `{"data":[` + item + `],"pad":"` + strings.Repeat("x", 1<<20) + `"}`, wantCode: 413},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := mustFixture(t)
			c.method, c.path = http.MethodPost, Prefix+"/resume"
			f.check(t, c)
			if n := f.storage.Calls("Resume"); n != 0 {
				t.Errorf("Resume called %d times", n)
			}
		})
	}
	t.Run("50 items", func(t *testing.T) {
		f := mustFixture(t)
		f.storage.ResumeFn = func(_ context.Context, items []ResumeItem) ([]osprey.UID, error) {
			return make([]osprey.UID, len(items)), nil
		}
		f.check(t, apiCase{method: http.MethodPost, path: Prefix + "/resume", body: `{"data":[` + repeatJSON(50, item) + `]}`, wantCode: 200})
	})
}

// --- /link/upload ---

type linkUploadOut struct {
	UID  string `json:"uid"`
	Path string `json:"path"`
	URL  struct {
		Single string `json:"single"`
		Multi  struct {
			Upload string `json:"upload"`
			Merge  string `json:"merge"`
		} `json:"multi"`
	} `json:"url"`
}

func TestLinkUpload(t *testing.T) {
	f := mustFixture(t)
	var got []NewFile
	f.storage.CreateFilesFn = func(_ context.Context, items []NewFile) ([]osprey.UID, error) {
		got = items
		return []osprey.UID{111, 222}, nil
	}
	before := time.Now().UTC().Truncate(time.Second)
	_, env := f.check(t, apiCase{method: http.MethodPost, path: Prefix + "/link/upload",
		body: `{"filePath":["a.jpg","dir/b.mp4"],"expire":86400}`, wantCode: 200})
	after := time.Now().UTC()
	var out []linkUploadOut
	mustStrict(t, env.Data, &out)
	if fmt.Sprint(got) != fmt.Sprint([]NewFile{{"a.jpg", "image"}, {"dir/b.mp4", "video"}}) {
		t.Errorf("CreateFiles got %v", got)
	}
	if len(out) != 2 {
		t.Fatalf("%d items", len(out))
	}
	for i, want := range []struct{ uid, path string }{{"111", "a.jpg"}, {"222", "dir/b.mp4"}} {
		o := out[i]
		if o.UID != want.uid || o.Path != want.path {
			t.Errorf("item %d: uid %q path %q, want %q %q", i, o.UID, o.Path, want.uid, want.path)
		}
		for _, u := range []struct{ link, path string }{
			{o.URL.Single, Prefix + "/upload"},
			{o.URL.Multi.Upload, Prefix + "/upload/multi"},
			{o.URL.Multi.Merge, Prefix + "/upload/merge"},
		} {
			p, err := url.Parse(u.link)
			if err != nil {
				t.Fatal(err)
			}
			if p.IsAbs() || p.Host != "" || p.Path != u.path {
				t.Errorf("link %q: want a relative link to %s", u.link, u.path)
			}
			q := p.Query()
			if q.Get("uid") != want.uid || q.Get("expire") != "86400" || len(q) != 4 {
				t.Errorf("link %q: query %v", u.link, q)
			}
			date, err := time.Parse(time.RFC3339, q.Get("date"))
			if err != nil || !strings.HasSuffix(q.Get("date"), "Z") || date.Before(before) || date.After(after) {
				t.Errorf("date %q is not the UTC time of the request", q.Get("date"))
			}
			if err := verifyLink(testSecret, q, uploadFields(q.Get("uid"), q.Get("date"), q.Get("expire")), time.Now(), 0); err != nil {
				t.Errorf("link %q does not verify: %v", u.link, err)
			}
		}
		if strings.SplitN(o.URL.Single, "?", 2)[1] != strings.SplitN(o.URL.Multi.Merge, "?", 2)[1] {
			t.Errorf("single and merge links carry different signatures")
		}
	}
}

func TestLinkUploadExpiry(t *testing.T) {
	tests := []struct {
		name   string
		expire string // JSON fragment; "" leaves the field out
		want   string // expire in the link
	}{
		{"absent is the default", "", "600"},
		{"zero is the default", `,"expire":0`, "600"},
		{"below the cap", `,"expire":60`, "60"},
		{"at the cap", `,"expire":3600`, "3600"},
		{"above the cap", `,"expire":3601`, "3600"},
		{"huge", `,"expire":9223372036854775807`, "3600"},
		{"one second", `,"expire":1`, "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustFixture(t, withLimits(func(l *Limits) { l.DefaultExpiry, l.MaxExpiry = 10*time.Minute, time.Hour }))
			f.storage.CreateFilesFn = func(context.Context, []NewFile) ([]osprey.UID, error) { return []osprey.UID{5}, nil }
			_, env := f.check(t, apiCase{method: http.MethodPost, path: Prefix + "/link/upload",
				body: `{"filePath":["a.png"]` + tt.expire + `}`, wantCode: 200})
			var out []linkUploadOut
			mustStrict(t, env.Data, &out)
			u, _ := url.Parse(out[0].URL.Single)
			if got := u.Query().Get("expire"); got != tt.want {
				t.Errorf("expire %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLinkUploadBadInput(t *testing.T) {
	for _, c := range []apiCase{
		{name: "malformed", body: `{"filePath":`, wantCode: 400, wantBody: "malformed JSON"},
		{name: "path list is a string", body: `{"filePath":"a.jpg"}`, wantCode: 400, wantBody: "malformed JSON"},
		{name: "expire is a string", body: `{"filePath":["a.jpg"],"expire":"60"}`, wantCode: 400, wantBody: "malformed JSON"},
		{name: "expire is fractional", body: `{"filePath":["a.jpg"],"expire":1.5}`, wantCode: 400},
		{name: "empty list", body: `{"filePath":[]}`, wantCode: 400, wantBody: "1 to 50 paths, got 0"},
		{name: "no list", body: `{"expire":60}`, wantCode: 400, wantBody: "filePath"},
		{name: "51 paths", body: `{"filePath":[` + repeatJSON(51, `"a.jpg"`) + `]}`, wantCode: 400, wantBody: "got 51"},
		{name: "no extension", body: `{"filePath":["a.jpg","Makefile"]}`, wantCode: 400, wantBody: "filePath[1]"},
		{name: "dot dir only", body: `{"filePath":["v1.2/file"]}`, wantCode: 400, wantBody: "filePath[0]"},
		{name: "empty path", body: `{"filePath":[""]}`, wantCode: 400, wantBody: "path is empty"},
		{name: "blank path", body: `{"filePath":["   "]}`, wantCode: 400, wantBody: "path is empty"},
		{name: "control character", body: `{"filePath":["a\u0001b.jpg"]}`, wantCode: 400, wantBody: "control character (U+0001)"},
		{name: "newline", body: `{"filePath":["a\nb.jpg"]}`, wantCode: 400, wantBody: "control character (U+000A)"},
		{name: "C1 control", body: `{"filePath":["a\u0085b.jpg"]}`, wantCode: 400, wantBody: "control character (U+0085)"},
		{name: "non-character", body: `{"filePath":["a\uffffb.jpg"]}`, wantCode: 400, wantBody: "non-character (U+FFFF)"},
		{name: "negative expire", body: `{"filePath":["a.jpg"],"expire":-1}`, wantCode: 400, wantBody: "expire"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := mustFixture(t)
			c.method, c.path = http.MethodPost, Prefix+"/link/upload"
			f.check(t, c)
			if n := f.storage.Calls("CreateFiles"); n != 0 {
				t.Errorf("CreateFiles called %d times", n)
			}
		})
	}
	t.Run("50 paths", func(t *testing.T) {
		f := mustFixture(t)
		f.storage.CreateFilesFn = func(_ context.Context, items []NewFile) ([]osprey.UID, error) {
			uids := make([]osprey.UID, len(items))
			for i := range uids {
				uids[i] = osprey.UID(i + 1)
			}
			return uids, nil
		}
		f.check(t, apiCase{method: http.MethodPost, path: Prefix + "/link/upload", body: `{"filePath":[` + repeatJSON(50, `"a.jpg"`) + `]}`, wantCode: 200})
	})
	t.Run("no secret yet: nothing created", func(t *testing.T) {
		f := mustFixture(t)
		f.storage.LinkSecretFn = func() ([]byte, error) { return nil, fmt.Errorf("cluster not initialised: %w", osprey.ErrUnavailable) }
		f.check(t, apiCase{method: http.MethodPost, path: Prefix + "/link/upload", body: `{"filePath":["a.jpg"]}`, wantCode: 503})
		if n := f.storage.Calls("CreateFiles"); n != 0 {
			t.Errorf("CreateFiles called %d times", n)
		}
	})
}

// TestLinkUploadThenUpload uses the returned links as a client would.
func TestLinkUploadThenUpload(t *testing.T) {
	f := mustFixture(t)
	f.storage.CreateFilesFn = func(context.Context, []NewFile) ([]osprey.UID, error) { return []osprey.UID{testUID}, nil }
	_, env := f.check(t, apiCase{method: http.MethodPost, path: Prefix + "/link/upload", body: `{"filePath":["x y&z#.jpg"]}`, wantCode: 200})
	var out []linkUploadOut
	mustStrict(t, env.Data, &out)
	content := []byte("hello")
	var gotUID osprey.UID
	var gotBody []byte
	f.storage.UploadFn = func(_ context.Context, uid osprey.UID, body io.Reader, _ string) (FileInfo, error) {
		gotUID = uid
		gotBody, _ = io.ReadAll(body)
		return FileInfo{UID: uid}, nil
	}
	f.storage.UploadChunkFn = func(_ context.Context, uid osprey.UID, _ uint32, body io.Reader, _ int64, _ string) error {
		gotUID = uid
		gotBody, _ = io.ReadAll(body)
		return nil
	}
	f.storage.MergeFn = func(_ context.Context, uid osprey.UID, _ uint32, _ int64, _ string) (FileInfo, error) {
		gotUID = uid
		return FileInfo{UID: uid}, nil
	}
	sum := md5hex(content)
	noKey := map[string]string{"Authorization": "", "Content-Type": "application/octet-stream"}
	for _, link := range []string{
		out[0].URL.Single + "&md5=" + sum,
		out[0].URL.Multi.Upload + "&md5=" + sum + "&chunkNum=1",
		out[0].URL.Multi.Merge + "&md5=" + sum + "&num=1&size=5",
	} {
		gotUID, gotBody = 0, nil
		f.check(t, apiCase{method: http.MethodPut, path: link, header: noKey, body: string(content), wantCode: 200})
		if gotUID != testUID {
			t.Errorf("%s: storage got uid %d", link, gotUID)
		}
		if !strings.Contains(link, "merge") && string(gotBody) != "hello" {
			t.Errorf("%s: storage got body %q", link, gotBody)
		}
	}
	t.Run("secret and signatures stay out of the log", func(t *testing.T) {
		sig := strings.SplitN(strings.SplitN(out[0].URL.Single, "signature=", 2)[1], "&", 2)[0]
		logs := f.logs.String()
		if strings.Contains(logs, string(testSecret)) || strings.Contains(logs, sig) {
			t.Errorf("log reveals the secret or a signature")
		}
	})
	t.Run("uid swapped in the link", func(t *testing.T) {
		q, _ := url.ParseQuery(strings.SplitN(out[0].URL.Single, "?", 2)[1])
		q = withParam(q, "uid", "42")
		q.Set("md5", sum)
		before := f.storage.Calls("Upload")
		f.check(t, apiCase{method: http.MethodPut, path: Prefix + "/upload?" + q.Encode(), header: noKey, body: "hello", wantCode: 403})
		if f.storage.Calls("Upload") != before {
			t.Errorf("Upload called with a tampered link")
		}
	})
}

// --- uploads ---

// uploadRoutes are the three signed upload routes with the extra
// parameters each needs to succeed.
var uploadRoutes = []struct {
	name  string
	path  string
	extra []string
}{
	{"single", Prefix + "/upload", []string{"md5", "5d41402abc4b2a76b9719d911017c592"}},
	{"multi", Prefix + "/upload/multi", []string{"md5", "5d41402abc4b2a76b9719d911017c592", "chunkNum", "1"}},
	{"merge", Prefix + "/upload/merge", []string{"md5", "5d41402abc4b2a76b9719d911017c592", "num", "1", "size", "5"}},
}

func okUploads(f *fixture) {
	f.storage.UploadFn = func(_ context.Context, uid osprey.UID, body io.Reader, md5 string) (FileInfo, error) {
		b, err := io.ReadAll(body)
		if err != nil {
			return FileInfo{}, fmt.Errorf("mock: reading body: %w", err)
		}
		return FileInfo{UID: uid, Size: int64(len(b)), MD5: md5, State: "complete"}, nil
	}
	f.storage.UploadChunkFn = func(_ context.Context, _ osprey.UID, _ uint32, body io.Reader, _ int64, _ string) error {
		if _, err := io.Copy(io.Discard, body); err != nil {
			return fmt.Errorf("mock: reading chunk: %w", err)
		}
		return nil
	}
	f.storage.MergeFn = func(_ context.Context, uid osprey.UID, _ uint32, size int64, md5 string) (FileInfo, error) {
		return FileInfo{UID: uid, Size: size, MD5: md5, State: "complete"}, nil
	}
}

func TestUploadSignatureChecks(t *testing.T) {
	now := time.Now()
	signedAt := func(at time.Time, exp time.Duration) url.Values { return signUpload(testSecret, testUID, at, exp) }
	tests := []struct {
		name     string
		q        func() url.Values
		wantCode int
		inMsg    string
	}{
		{"valid", func() url.Values { return signedAt(now, time.Hour) }, 200, ""},
		{"uid changed", func() url.Values { return withParam(signedAt(now, time.Hour), "uid", "1234567890123456780") }, 403, "signature"},
		{"date changed", func() url.Values {
			return withParam(signedAt(now, time.Hour), "date", now.Add(-time.Second).UTC().Format(time.RFC3339))
		}, 403, "signature"},
		{"expire raised", func() url.Values { return withParam(signedAt(now, time.Hour), "expire", "999999") }, 403, "signature"},
		{"signature changed", func() url.Values { return withParam(signedAt(now, time.Hour), "signature", strings.Repeat("a", 64)) }, 403, "signature"},
		{"signature missing", func() url.Values { q := signedAt(now, time.Hour); q.Del("signature"); return q }, 403, "signature missing"},
		{"other secret", func() url.Values { return signUpload([]byte("nope"), testUID, now, time.Hour) }, 403, "signature"},
		{"expired", func() url.Values { return signedAt(now.Add(-2*time.Hour), time.Hour) }, 403, "expired"},
		{"future beyond skew", func() url.Values { return signedAt(now.Add(10*time.Minute), time.Hour) }, 403, "future"},
		{"future within skew", func() url.Values { return signedAt(now.Add(time.Minute), time.Hour) }, 200, ""},
		{"uid missing", func() url.Values { q := signedAt(now, time.Hour); q.Del("uid"); return q }, 400, "uid is required"},
		{"uid not a number", func() url.Values { return withParam(signedAt(now, time.Hour), "uid", "abc") }, 400, "uid"},
		{"uid zero", func() url.Values { return withParam(signedAt(now, time.Hour), "uid", "0") }, 400, "uid"},
		{"uid negative", func() url.Values { return withParam(signedAt(now, time.Hour), "uid", "-5") }, 400, "uid"},
		{"uid overflows", func() url.Values { return withParam(signedAt(now, time.Hour), "uid", "18446744073709551616") }, 400, "uid"},
	}
	for _, rt := range uploadRoutes {
		for _, tt := range tests {
			t.Run(rt.name+"/"+tt.name, func(t *testing.T) {
				f := mustFixture(t)
				okUploads(f)
				q := tt.q()
				for i := 0; i < len(rt.extra); i += 2 {
					q.Set(rt.extra[i], rt.extra[i+1])
				}
				_, env := f.check(t, apiCase{method: http.MethodPut, path: rt.path + "?" + q.Encode(),
					header: map[string]string{"Authorization": ""}, body: "hello", wantCode: tt.wantCode, wantBody: tt.inMsg})
				calls := f.storage.Total("LinkSecret")
				if tt.wantCode == 200 {
					if calls != 1 {
						t.Errorf("storage called %d times, want 1", calls)
					}
					return
				}
				if calls != 0 {
					t.Errorf("storage called %d times for a rejected link (%s)", calls, env.Message)
				}
			})
		}
	}
}

func TestUploadParamChecks(t *testing.T) {
	tests := []struct {
		route    int // index in uploadRoutes
		name     string
		set      []string // parameters changed after the route's extras; "" value deletes
		wantCode int
		inMsg    string
	}{
		{0, "md5 missing", []string{"md5", ""}, 400, "md5 is required"},
		{0, "md5 short", []string{"md5", "abc"}, 400, "32 hex digits"},
		{0, "md5 non-hex", []string{"md5", strings.Repeat("z", 32)}, 400, "32 hex digits"},
		{0, "md5 too long", []string{"md5", strings.Repeat("a", 33)}, 400, "32 hex digits"},
		{1, "md5 missing", []string{"md5", ""}, 400, "md5 is required"},
		{1, "md5 base64", []string{"md5", "XUFAKrxLKna5cZ2REBfFkg=="}, 400, "32 hex digits"},
		{1, "chunkNum missing", []string{"chunkNum", ""}, 400, "chunkNum is required"},
		{1, "chunkNum zero", []string{"chunkNum", "0"}, 400, "chunkNum must be between 1"},
		{1, "chunkNum negative", []string{"chunkNum", "-1"}, 400, "chunkNum must be between 1"},
		{1, "chunkNum text", []string{"chunkNum", "one"}, 400, `chunkNum \"one\" is not a number`},
		{1, "chunkNum fractional", []string{"chunkNum", "1.5"}, 400, "not a number"},
		{1, "chunkNum above uint32", []string{"chunkNum", "4294967297"}, 400, "chunkNum must be between"},
		{1, "chunkNum 2^31", []string{"chunkNum", "2147483648"}, 400, "chunkNum must be between"},
		{2, "md5 missing", []string{"md5", ""}, 400, "md5 is required"},
		{2, "num missing", []string{"num", ""}, 400, "num is required"},
		{2, "num zero", []string{"num", "0"}, 400, "num must be between 1"},
		{2, "num negative", []string{"num", "-3"}, 400, "num must be between 1"},
		{2, "num text", []string{"num", "x"}, 400, `num \"x\" is not a number`},
		{2, "size missing", []string{"size", ""}, 400, "size is required"},
		{2, "size negative", []string{"size", "-1"}, 400, "size must be between 0"},
		{2, "size text", []string{"size", "5MB"}, 400, `size \"5MB\" is not a number`},
		{2, "size overflow", []string{"size", "99999999999999999999"}, 400, "size"},
	}
	for _, tt := range tests {
		rt := uploadRoutes[tt.route]
		t.Run(rt.name+"/"+tt.name, func(t *testing.T) {
			f := mustFixture(t)
			okUploads(f)
			q := uploadLink(testUID, rt.extra...)
			for i := 0; i < len(tt.set); i += 2 {
				if tt.set[i+1] == "" {
					q.Del(tt.set[i])
				} else {
					q.Set(tt.set[i], tt.set[i+1])
				}
			}
			f.check(t, apiCase{method: http.MethodPut, path: rt.path + "?" + q.Encode(), body: "hello",
				wantCode: tt.wantCode, wantBody: tt.inMsg})
			if n := f.storage.Total("LinkSecret"); n != 0 {
				t.Errorf("storage called %d times", n)
			}
		})
	}
}

// multipartBody builds a multipart/form-data body; fields are written in
// order, the file (if fileField != "") last.
func multipartBody(t *testing.T, fields [][2]string, fileField string, content []byte) (string, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, kv := range fields {
		if err := mw.WriteField(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	if fileField != "" {
		w, err := mw.CreateFormFile(fileField, "a.bin")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(content)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return mw.FormDataContentType(), &buf
}

// binaryContent has every byte value, CRLFs and a fake boundary, so any
// framing or text mangling shows.
func binaryContent() []byte {
	var b bytes.Buffer
	for i := 0; i < 3; i++ {
		for c := 0; c < 256; c++ {
			b.WriteByte(byte(c))
		}
		b.WriteString("\r\n--boundary\r\n\r\n")
	}
	return b.Bytes()
}

func TestUploadBodies(t *testing.T) {
	content := binaryContent()
	sum := md5hex(content)
	tests := []struct {
		name     string
		body     func(t *testing.T) (ct string, body io.Reader)
		wantCode int
		inMsg    string
	}{
		{"raw octet-stream", func(*testing.T) (string, io.Reader) {
			return "application/octet-stream", bytes.NewReader(content)
		}, 200, ""},
		{"raw without content type", func(*testing.T) (string, io.Reader) { return "", bytes.NewReader(content) }, 200, ""},
		{"raw of unknown length", func(*testing.T) (string, io.Reader) {
			return "application/octet-stream", io.MultiReader(bytes.NewReader(content))
		}, 200, ""},
		{"multipart file", func(t *testing.T) (string, io.Reader) { return multipartBody(t, nil, "file", content) }, 200, ""},
		{"multipart file after other fields", func(t *testing.T) (string, io.Reader) {
			return multipartBody(t, [][2]string{{"name", "a.bin"}, {"md5", sum}}, "file", content)
		}, 200, ""},
		{"multipart without file", func(t *testing.T) (string, io.Reader) {
			return multipartBody(t, [][2]string{{"name", "a.bin"}}, "", nil)
		}, 400, `no field \"file\"`},
		{"multipart with other file field", func(t *testing.T) (string, io.Reader) { return multipartBody(t, nil, "upload", content) }, 400, `no field \"file\"`},
		{"multipart without boundary", func(*testing.T) (string, io.Reader) {
			return "multipart/form-data", strings.NewReader("whatever")
		}, 400, "multipart"},
		{"multipart garbage", func(*testing.T) (string, io.Reader) {
			return "multipart/form-data; boundary=xyz", strings.NewReader("not multipart at all")
		}, 400, "multipart"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustFixture(t)
			var got []byte
			var gotMD5 string
			f.storage.UploadFn = func(_ context.Context, uid osprey.UID, body io.Reader, md5 string) (FileInfo, error) {
				b, err := io.ReadAll(body)
				if err != nil {
					return FileInfo{}, err
				}
				got, gotMD5 = b, md5
				return FileInfo{UID: uid, Name: "a.bin", Size: int64(len(b)), MD5: md5, State: "complete", Bucket: "unknown"}, nil
			}
			ct, body := tt.body(t)
			q := uploadLink(testUID, "md5", strings.ToUpper(sum))
			r := newRequest(http.MethodPut, Prefix+"/upload?"+q.Encode(), body, map[string]string{"Authorization": "", "Content-Type": ct})
			rec := f.serve(r)
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantCode, rec.Body.String())
			}
			env := mustEnvelope(t, rec)
			if tt.wantCode != 200 {
				if !strings.Contains(rec.Body.String(), tt.inMsg) {
					t.Errorf("body %s lacks %q", rec.Body.String(), tt.inMsg)
				}
				if n := f.storage.Calls("Upload"); n != 0 {
					t.Errorf("Upload called %d times", n)
				}
				return
			}
			if !bytes.Equal(got, content) {
				t.Errorf("Upload got %d bytes, want the exact %d", len(got), len(content))
			}
			if gotMD5 != sum {
				t.Errorf("Upload got md5 %q, want lowercase %q", gotMD5, sum)
			}
			var info FileInfo
			mustStrict(t, env.Data, &info)
			if info.UID != testUID || info.Size != int64(len(content)) || info.MD5 != sum {
				t.Errorf("reply %+v", info)
			}
			if !strings.Contains(string(env.Data), `"uid":"1234567890123456789"`) {
				t.Errorf("uid not a decimal string in %s", env.Data)
			}
		})
	}
}

func TestUploadChunkBodies(t *testing.T) {
	content := binaryContent()
	sum := md5hex(content)
	tests := []struct {
		name     string
		ct       string
		body     func(t *testing.T) (string, io.Reader)
		wantSize int64
	}{
		{"raw", "", func(*testing.T) (string, io.Reader) { return "application/octet-stream", bytes.NewReader(content) }, int64(len(content))},
		{"raw of unknown length", "", func(*testing.T) (string, io.Reader) {
			return "application/octet-stream", io.MultiReader(bytes.NewReader(content))
		}, -1},
		{"multipart", "", func(t *testing.T) (string, io.Reader) {
			return multipartBody(t, [][2]string{{"x", "y"}}, "file", content)
		}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustFixture(t)
			var (
				got     []byte
				gotNum  uint32
				gotSize int64
				gotMD5  string
				gotUID  osprey.UID
			)
			f.storage.UploadChunkFn = func(_ context.Context, uid osprey.UID, num uint32, body io.Reader, size int64, md5 string) error {
				b, err := io.ReadAll(body)
				got, gotNum, gotSize, gotMD5, gotUID = b, num, size, md5, uid
				return err
			}
			ct, body := tt.body(t)
			q := uploadLink(testUID, "md5", sum, "chunkNum", "7")
			r := newRequest(http.MethodPut, Prefix+"/upload/multi?"+q.Encode(), body, map[string]string{"Authorization": "", "Content-Type": ct})
			rec := f.serve(r)
			if rec.Code != 200 {
				t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
			}
			env := mustEnvelope(t, rec)
			if string(env.Data) != `{"chunkNum":7,"uid":"1234567890123456789"}` {
				t.Errorf("data %s", env.Data)
			}
			if !bytes.Equal(got, content) || gotNum != 7 || gotSize != tt.wantSize || gotMD5 != sum || gotUID != testUID {
				t.Errorf("UploadChunk got (%d, %d, %d bytes, size %d, %s), want (%d, 7, %d bytes, size %d, %s)",
					gotUID, gotNum, len(got), gotSize, gotMD5, testUID, len(content), tt.wantSize, sum)
			}
		})
	}
}

func TestUploadChunkErrors(t *testing.T) {
	f := mustFixture(t)
	f.storage.UploadChunkFn = func(_ context.Context, _ osprey.UID, num uint32, body io.Reader, _ int64, _ string) error {
		_, _ = io.Copy(io.Discard, body)
		switch num {
		case 1:
			return fmt.Errorf("%w: chunk 1 md5 mismatch: body has x, md5 parameter says y; nothing was stored", osprey.ErrInvalid)
		case 2:
			return fmt.Errorf("%w: uid 7 is already merged", osprey.ErrConflict)
		}
		return nil
	}
	for _, c := range []apiCase{
		{name: "md5 mismatch", wantCode: 400, wantBody: "md5 mismatch"},
		{name: "after merge", wantCode: 409, wantBody: "already merged"},
	} {
		t.Run(c.name, func(t *testing.T) {
			num := map[int]string{400: "1", 409: "2"}[c.wantCode]
			c.method = http.MethodPut
			c.path = Prefix + "/upload/multi?" + uploadLink(testUID, "md5", md5hex([]byte("abc")), "chunkNum", num).Encode()
			c.body = "abc"
			f.check(t, c)
		})
	}
}

func TestMerge(t *testing.T) {
	f := mustFixture(t)
	var gotNum uint32
	var gotSize int64
	var gotMD5 string
	f.storage.MergeFn = func(_ context.Context, uid osprey.UID, num uint32, size int64, md5 string) (FileInfo, error) {
		gotNum, gotSize, gotMD5 = num, size, md5
		if num == 9 {
			return FileInfo{}, fmt.Errorf("%w: chunks 4, 7 missing; nothing was deleted", osprey.ErrConflict)
		}
		return FileInfo{UID: uid, Name: "a.mp4", Size: size, MD5: md5, State: "complete", Chunks: int(num)}, nil
	}
	sum := "0123456789ABCDEF0123456789ABCDEF"
	_, env := f.check(t, apiCase{method: http.MethodPut, header: map[string]string{"Authorization": ""},
		path: Prefix + "/upload/merge?" + uploadLink(testUID, "md5", sum, "num", "3", "size", "12345").Encode(), wantCode: 200})
	if gotNum != 3 || gotSize != 12345 || gotMD5 != strings.ToLower(sum) {
		t.Errorf("Merge got (%d, %d, %q)", gotNum, gotSize, gotMD5)
	}
	var info FileInfo
	mustStrict(t, env.Data, &info)
	if info.UID != testUID || info.Size != 12345 || info.Chunks != 3 || info.State != "complete" {
		t.Errorf("reply %+v", info)
	}
	t.Run("size zero", func(t *testing.T) {
		f.check(t, apiCase{method: http.MethodPut, path: Prefix + "/upload/merge?" + uploadLink(testUID, "md5", sum, "num", "1", "size", "0").Encode(), wantCode: 200})
		if gotSize != 0 {
			t.Errorf("size %d", gotSize)
		}
	})
	t.Run("missing chunks", func(t *testing.T) {
		f.check(t, apiCase{method: http.MethodPut, path: Prefix + "/upload/merge?" + uploadLink(testUID, "md5", sum, "num", "9", "size", "10").Encode(),
			wantCode: 409, wantBody: "chunks 4, 7 missing"})
	})
}

// TestUploadLimits sets small limits: bodies above them are 413, and the
// storage is not called when the size is known up front.
func TestUploadLimits(t *testing.T) {
	const maxUpload, maxChunk = 1024, 512
	small := withLimits(func(l *Limits) { l.MaxUploadSize, l.MaxChunkSize = maxUpload, maxChunk })
	blob := func(n int) []byte { return bytes.Repeat([]byte("z"), n) }
	unknownLen := func(b []byte) io.Reader { return io.MultiReader(bytes.NewReader(b)) }
	tests := []struct {
		name       string
		route      int
		ct         string
		body       func(t *testing.T) (string, io.Reader)
		wantCode   int
		mayReach   bool // the size is only known while streaming
		wantLength int  // bytes the storage must see on success
	}{
		{"single raw at the limit", 0, "", func(*testing.T) (string, io.Reader) {
			return "application/octet-stream", bytes.NewReader(blob(maxUpload))
		}, 200, true, maxUpload},
		{"single raw one byte over", 0, "", func(*testing.T) (string, io.Reader) {
			return "application/octet-stream", bytes.NewReader(blob(maxUpload + 1))
		}, 413, false, 0},
		{"single raw far over", 0, "", func(*testing.T) (string, io.Reader) {
			return "application/octet-stream", bytes.NewReader(blob(maxUpload + 2<<20))
		}, 413, false, 0},
		{"single raw unknown length over", 0, "", func(*testing.T) (string, io.Reader) {
			return "application/octet-stream", unknownLen(blob(maxUpload + 1))
		}, 413, true, 0},
		{"single raw unknown length at the limit", 0, "", func(*testing.T) (string, io.Reader) { return "application/octet-stream", unknownLen(blob(maxUpload)) }, 200, true, maxUpload},
		{"single multipart at the limit", 0, "", func(t *testing.T) (string, io.Reader) { return multipartBody(t, nil, "file", blob(maxUpload)) }, 200, true, maxUpload},
		{"single multipart over", 0, "", func(t *testing.T) (string, io.Reader) { return multipartBody(t, nil, "file", blob(maxUpload+1)) }, 413, true, 0},
		{"chunk raw at the limit", 1, "", func(*testing.T) (string, io.Reader) {
			return "application/octet-stream", bytes.NewReader(blob(maxChunk))
		}, 200, true, maxChunk},
		{"chunk raw one byte over", 1, "", func(*testing.T) (string, io.Reader) {
			return "application/octet-stream", bytes.NewReader(blob(maxChunk + 1))
		}, 413, false, 0},
		{"chunk raw far over", 1, "", func(*testing.T) (string, io.Reader) {
			return "application/octet-stream", bytes.NewReader(blob(maxChunk + 2<<20))
		}, 413, false, 0},
		{"chunk raw unknown length over", 1, "", func(*testing.T) (string, io.Reader) {
			return "application/octet-stream", unknownLen(blob(maxChunk + 1))
		}, 413, true, 0},
		{"chunk multipart at the limit", 1, "", func(t *testing.T) (string, io.Reader) { return multipartBody(t, nil, "file", blob(maxChunk)) }, 200, true, maxChunk},
		{"chunk multipart over", 1, "", func(t *testing.T) (string, io.Reader) { return multipartBody(t, nil, "file", blob(maxChunk+1)) }, 413, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustFixture(t, small)
			var seen int
			f.storage.UploadFn = func(_ context.Context, uid osprey.UID, body io.Reader, _ string) (FileInfo, error) {
				b, err := io.ReadAll(body)
				seen = len(b)
				if err != nil {
					return FileInfo{}, fmt.Errorf("%w: reading body: %w", osprey.ErrInvalid, err) // as node does
				}
				return FileInfo{UID: uid, Size: int64(len(b))}, nil
			}
			f.storage.UploadChunkFn = func(_ context.Context, _ osprey.UID, _ uint32, body io.Reader, _ int64, _ string) error {
				b, err := io.ReadAll(body)
				seen = len(b)
				if err != nil {
					return fmt.Errorf("%w: reading body: %w", osprey.ErrInvalid, err)
				}
				return nil
			}
			rt := uploadRoutes[tt.route]
			ct, body := tt.body(t)
			q := uploadLink(testUID, rt.extra...)
			r := newRequest(http.MethodPut, rt.path+"?"+q.Encode(), body, map[string]string{"Authorization": "", "Content-Type": ct})
			rec := f.serve(r)
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantCode, rec.Body.String())
			}
			mustEnvelope(t, rec)
			calls := f.storage.Total("LinkSecret")
			if !tt.mayReach && calls != 0 {
				t.Errorf("storage called %d times for a body known to be too large", calls)
			}
			if tt.wantCode == 200 && seen != tt.wantLength {
				t.Errorf("storage saw %d bytes, want %d", seen, tt.wantLength)
			}
			if tt.wantCode == 413 && !strings.Contains(rec.Body.String(), "too large") {
				t.Errorf("413 without explanation: %s", rec.Body.String())
			}
		})
	}
}

// --- /checkpoint, /proxy, /object, /objects ---

func TestCheckpoint(t *testing.T) {
	f := mustFixture(t)
	f.storage.CheckpointFn = func(_ context.Context, uid osprey.UID) ([]uint32, error) {
		switch uid {
		case 1:
			return []uint32{1, 2, 5}, nil
		case 2:
			return nil, nil
		}
		return nil, fmt.Errorf("fsm: uid %d: %w", uid, osprey.ErrNotFound)
	}
	for _, c := range []apiCase{
		{name: "chunks", path: "/checkpoint?uid=1", wantCode: 200, wantBody: `"data":[1,2,5]`},
		{name: "none yet", path: "/checkpoint?uid=2", wantCode: 200, wantBody: `"data":[]`},
		{name: "unknown uid", path: "/checkpoint?uid=3", wantCode: 404, wantBody: "not found"},
		{name: "uid missing", path: "/checkpoint", wantCode: 400, wantBody: "uid is required"},
		{name: "uid empty", path: "/checkpoint?uid=", wantCode: 400, wantBody: "uid is required"},
		{name: "uid text", path: "/checkpoint?uid=abc", wantCode: 400, wantBody: `uid \"abc\" is not a positive decimal number`},
		{name: "uid zero", path: "/checkpoint?uid=0", wantCode: 400, wantBody: "uid"},
		{name: "uid hex", path: "/checkpoint?uid=0x10", wantCode: 400, wantBody: "uid"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := f.storage.Calls("Checkpoint")
			c.method, c.path = http.MethodGet, Prefix+c.path
			f.check(t, c)
			if c.wantCode == 400 && f.storage.Calls("Checkpoint") != before {
				t.Errorf("Checkpoint called for bad input")
			}
		})
	}
}

func TestProxy(t *testing.T) {
	f := mustFixture(t)
	var got osprey.UID
	f.storage.LocateFn = func(_ context.Context, uid osprey.UID) ([]string, error) {
		got = uid
		return []string{"10.0.0.1:8080", "10.0.0.2:8080"}, nil
	}
	f.check(t, apiCase{method: http.MethodGet, path: Prefix + "/proxy?uid=1234567890123456789", wantCode: 200,
		wantBody: `"data":["10.0.0.1:8080","10.0.0.2:8080"]`})
	if got != testUID {
		t.Errorf("Locate got %d", got)
	}
	f.check(t, apiCase{method: http.MethodGet, path: Prefix + "/proxy?uid=x", wantCode: 400})
	if n := f.storage.Calls("Locate"); n != 1 {
		t.Errorf("Locate called %d times", n)
	}
}

func TestObject(t *testing.T) {
	f := mustFixture(t)
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.storage.StatFn = func(_ context.Context, uid osprey.UID) (FileInfo, error) {
		if uid != testUID {
			return FileInfo{}, osprey.ErrNotFound
		}
		return FileInfo{UID: uid, Name: "a.jpg", Size: 10, MD5: "m", ContentType: "image/jpeg", Bucket: "image",
			State: "tiered", Location: "backend", Chunks: 1, CreatedAt: created, UpdatedAt: created}, nil
	}
	var deleted osprey.UID
	f.storage.DeleteFn = func(_ context.Context, uid osprey.UID) error {
		if uid != testUID {
			return osprey.ErrNotFound
		}
		deleted = uid
		return nil
	}
	for _, c := range []apiCase{
		{name: "stat", method: http.MethodGet, path: "/object?uid=1234567890123456789", wantCode: 200,
			wantBody: `"data":{"uid":"1234567890123456789","name":"a.jpg","size":10,"md5":"m","content_type":"image/jpeg","bucket":"image","state":"tiered","location":"backend","chunks":1,"created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:04:05Z"}`},
		{name: "stat unknown", method: http.MethodGet, path: "/object?uid=5", wantCode: 404},
		{name: "stat bad uid", method: http.MethodGet, path: "/object?uid=-1", wantCode: 400},
		{name: "delete", method: http.MethodDelete, path: "/object?uid=1234567890123456789", wantCode: 200,
			wantBody: `"data":{"uid":"1234567890123456789"}`},
		{name: "delete unknown", method: http.MethodDelete, path: "/object?uid=5", wantCode: 404},
		{name: "delete no uid", method: http.MethodDelete, path: "/object", wantCode: 400, wantBody: "uid is required"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.path = Prefix + c.path
			f.check(t, c)
		})
	}
	if deleted != testUID {
		t.Errorf("Delete got %d", deleted)
	}
	if f.storage.Calls("Stat") != 2 || f.storage.Calls("Delete") != 2 {
		t.Errorf("calls: Stat %d, Delete %d; bad uids must not reach storage", f.storage.Calls("Stat"), f.storage.Calls("Delete"))
	}
}

func TestObjects(t *testing.T) {
	type call struct {
		cursor osprey.UID
		limit  int
	}
	tests := []struct {
		name     string
		query    string
		next     osprey.UID
		items    []FileInfo
		wantCode int
		wantCall *call
		wantBody string
	}{
		{"defaults", "", 0, nil, 200, &call{0, 100}, `"data":{"items":[],"next_cursor":""}`},
		{"cursor and limit", "?cursor=77&limit=2", 99, []FileInfo{{UID: 78}, {UID: 99}}, 200, &call{77, 2}, `"next_cursor":"99"`},
		{"limit 1000", "?limit=1000", 0, nil, 200, &call{0, 1000}, ""},
		{"limit 1", "?limit=1", 0, nil, 200, &call{0, 1}, ""},
		{"limit 0", "?limit=0", 0, nil, 400, nil, "limit must be between 1 and 1000"},
		{"limit 1001", "?limit=1001", 0, nil, 400, nil, "limit must be between 1 and 1000"},
		{"limit text", "?limit=ten", 0, nil, 400, nil, "limit"},
		{"bad cursor", "?cursor=abc", 0, nil, 400, nil, "cursor"},
		{"zero cursor", "?cursor=0", 0, nil, 400, nil, "cursor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustFixture(t)
			var got *call
			f.storage.ListFn = func(_ context.Context, cursor osprey.UID, limit int) ([]FileInfo, osprey.UID, error) {
				got = &call{cursor, limit}
				return tt.items, tt.next, nil
			}
			f.check(t, apiCase{method: http.MethodGet, path: Prefix + "/objects" + tt.query, wantCode: tt.wantCode, wantBody: tt.wantBody})
			if fmt.Sprint(got) != fmt.Sprint(tt.wantCall) {
				t.Errorf("List got %v, want %v", got, tt.wantCall)
			}
		})
	}
}

// --- internal chunk transfer ---

type closeRecorder struct {
	io.Reader
	mu     sync.Mutex
	closed bool
}

func (c *closeRecorder) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

func (c *closeRecorder) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func TestInternalChunks(t *testing.T) {
	node := map[string]string{"Authorization": "", HeaderNodeAuth: testNodeToken}
	t.Run("put", func(t *testing.T) {
		f := mustFixture(t)
		var gotRef ChunkRef
		var gotBody []byte
		var gotSize int64
		gotOrigin := CopyOrigin(99)
		f.storage.PutLocalChunkFn = func(_ context.Context, ref ChunkRef, body io.Reader, size int64, origin CopyOrigin) (uint64, error) {
			gotRef, gotSize, gotOrigin = ref, size, origin
			gotBody, _ = io.ReadAll(body)
			return 18446744073709551615, nil
		}
		f.check(t, apiCase{method: http.MethodPut, path: "/internal/v1/chunks/18446744073709551615/4294967295/65535", header: node,
			body: "chunk-bytes", wantCode: 200, wantBody: `"data":"18446744073709551615"`})
		if gotRef != (ChunkRef{Blob: 18446744073709551615, Num: 4294967295, Shard: 65535}) || string(gotBody) != "chunk-bytes" || gotSize != 11 || gotOrigin != CopyRecorded {
			t.Errorf("PutLocalChunk got %+v %q %d %v", gotRef, gotBody, gotSize, gotOrigin)
		}
		f.check(t, apiCase{method: http.MethodPut, path: "/internal/v1/chunks/1/2/0?origin=upload", header: node,
			body: "x", wantCode: 200})
		if gotOrigin != CopyUpload {
			t.Errorf("PutLocalChunk with origin=upload got origin %v", gotOrigin)
		}
	})
	t.Run("bad origin", func(t *testing.T) {
		for _, m := range []string{http.MethodPut, http.MethodDelete} {
			f := mustFixture(t)
			reachAll(f)
			f.check(t, apiCase{method: m, path: "/internal/v1/chunks/1/2/0?origin=gc", header: node, body: "x", wantCode: 400, wantBody: "origin"})
			if f.storage.Calls("PutLocalChunk")+f.storage.Calls("DeleteLocalChunk") != 0 {
				t.Errorf("%s with a bad origin reached storage", m)
			}
		}
	})
	t.Run("put without length", func(t *testing.T) {
		f := mustFixture(t)
		r := newRequest(http.MethodPut, "/internal/v1/chunks/1/2/0", io.MultiReader(strings.NewReader("x")), node)
		rec := f.serve(r)
		if rec.Code != 400 || !strings.Contains(rec.Body.String(), "Content-Length is required") {
			t.Errorf("status %d: %s", rec.Code, rec.Body.String())
		}
		if f.storage.Calls("PutLocalChunk") != 0 {
			t.Errorf("PutLocalChunk called")
		}
	})
	t.Run("get", func(t *testing.T) {
		tests := []struct {
			query          string
			wantOff, wantN int64
		}{
			{"", 0, -1},
			{"?off=3", 3, -1},
			{"?off=3&n=4", 3, 4},
			{"?n=0", 0, 0},
		}
		for _, tt := range tests {
			t.Run(tt.query, func(t *testing.T) {
				f := mustFixture(t)
				var gotRef ChunkRef
				var gotOff, gotN int64
				rc := &closeRecorder{Reader: strings.NewReader("data!")}
				f.storage.GetLocalChunkFn = func(_ context.Context, ref ChunkRef, off, n int64) (io.ReadCloser, int64, error) {
					gotRef, gotOff, gotN = ref, off, n
					return rc, 5, nil
				}
				rec := f.serve(newRequest(http.MethodGet, "/internal/v1/chunks/9/8/7"+tt.query, nil, node))
				if rec.Code != 200 || rec.Body.String() != "data!" || rec.Header().Get("Content-Length") != "5" {
					t.Fatalf("status %d, body %q, headers %v", rec.Code, rec.Body.String(), rec.Header())
				}
				if rec.Header().Get(HeaderRequestID) == "" {
					t.Errorf("no request id")
				}
				if gotRef != (ChunkRef{9, 8, 7}) || gotOff != tt.wantOff || gotN != tt.wantN {
					t.Errorf("GetLocalChunk got %+v (%d, %d), want (%d, %d)", gotRef, gotOff, gotN, tt.wantOff, tt.wantN)
				}
				if !rc.isClosed() {
					t.Errorf("chunk reader not closed")
				}
			})
		}
	})
	t.Run("get bad offsets", func(t *testing.T) {
		for _, q := range []string{"?off=abc", "?off=-1", "?n=x", "?n=-2", "?off=1.5"} {
			t.Run(q, func(t *testing.T) {
				f := mustFixture(t)
				f.storage.GetLocalChunkFn = func(context.Context, ChunkRef, int64, int64) (io.ReadCloser, int64, error) {
					return io.NopCloser(strings.NewReader("")), 0, nil
				}
				f.check(t, apiCase{method: http.MethodGet, path: "/internal/v1/chunks/9/8/7" + q, header: node, wantCode: 400})
				if f.storage.Calls("GetLocalChunk") != 0 {
					t.Errorf("GetLocalChunk called with %s", q)
				}
			})
		}
	})
	t.Run("delete", func(t *testing.T) {
		f := mustFixture(t)
		var gotRef ChunkRef
		gotOrigin := CopyOrigin(99)
		gotGen := uint64(99)
		f.storage.DeleteLocalChunkFn = func(_ context.Context, ref ChunkRef, origin CopyOrigin, gen uint64) error {
			gotRef, gotOrigin, gotGen = ref, origin, gen
			return nil
		}
		f.check(t, apiCase{method: http.MethodDelete, path: "/internal/v1/chunks/1/2/3", header: node, wantCode: 200, wantBody: `"data":null`})
		if gotRef != (ChunkRef{1, 2, 3}) || gotOrigin != CopyRecorded || gotGen != 0 {
			t.Errorf("DeleteLocalChunk got %+v %v gen %d", gotRef, gotOrigin, gotGen)
		}
		f.check(t, apiCase{method: http.MethodDelete, path: "/internal/v1/chunks/1/2/3?origin=upload", header: node, wantCode: 200})
		if gotOrigin != CopyUpload || gotGen != 0 {
			t.Errorf("DeleteLocalChunk with origin=upload got origin %v gen %d", gotOrigin, gotGen)
		}
		f.check(t, apiCase{method: http.MethodDelete, path: "/internal/v1/chunks/1/2/3?gen=18446744073709551615", header: node, wantCode: 200})
		if gotOrigin != CopyRecorded || gotGen != 1<<64-1 {
			t.Errorf("DeleteLocalChunk with gen got origin %v gen %d", gotOrigin, gotGen)
		}
		calls := f.storage.Calls("DeleteLocalChunk")
		for _, q := range []string{"gen=0", "gen=-1", "gen=x", "gen=18446744073709551616", "gen=3&origin=upload"} {
			f.check(t, apiCase{method: http.MethodDelete, path: "/internal/v1/chunks/1/2/3?" + q, header: node, wantCode: 400})
		}
		if n := f.storage.Calls("DeleteLocalChunk"); n != calls {
			t.Errorf("a delete with a bad gen reached storage (%d calls)", n-calls)
		}
	})
	t.Run("head", func(t *testing.T) {
		f := mustFixture(t)
		f.storage.LocalChunkGenFn = func(_ context.Context, ref ChunkRef) (uint64, error) {
			if ref != (ChunkRef{4, 5, 6}) {
				return 0, fmt.Errorf("%w: no such chunk", osprey.ErrNotFound)
			}
			return 123, nil
		}
		// A HEAD reply has no body, only its status and headers.
		rec := f.do(http.MethodHead, "/internal/v1/chunks/4/5/6", "", node)
		if got := rec.Header().Get(HeaderChunkGen); rec.Code != 200 || got != "123" {
			t.Errorf("status %d, %s = %q; want 200, 123", rec.Code, HeaderChunkGen, got)
		}
		rec, _ = f.check(t, apiCase{method: http.MethodHead, path: "/internal/v1/chunks/4/5/7", header: node, wantCode: 404})
		if got := rec.Header().Get(HeaderChunkGen); got != "" {
			t.Errorf("a missing copy answered %s %q", HeaderChunkGen, got)
		}
		f.check(t, apiCase{method: http.MethodHead, path: "/internal/v1/chunks/4/5/6", wantCode: 403})
	})
	t.Run("bad refs", func(t *testing.T) {
		for _, p := range []string{"x/2/3", "1/x/3", "1/2/x", "-1/2/3", "1/4294967296/3", "1/2/65536", "18446744073709551616/2/3"} {
			for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
				t.Run(m+" "+p, func(t *testing.T) {
					f := mustFixture(t)
					reachAll(f)
					f.check(t, apiCase{method: m, path: "/internal/v1/chunks/" + p, header: node, body: "x", wantCode: 400, wantBody: "chunk reference"})
					if n := f.storage.Total(); n != 0 {
						t.Errorf("storage called %d times", n)
					}
				})
			}
		}
	})
}

func TestQueryInt(t *testing.T) {
	tests := []struct {
		v       string
		want    int64
		wantErr string
	}{
		{"1", 1, ""},
		{"10", 10, ""},
		{"+10", 10, ""},
		{"", 0, "is required"},
		{"0", 0, "between 1 and 10"},
		{"11", 0, "between 1 and 10"},
		{"1e3", 0, "not a number"},
		{" 5", 0, "not a number"},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.v), func(t *testing.T) {
			n, err := queryInt(url.Values{"n": {tt.v}}, "n", 1, 10)
			if tt.wantErr == "" {
				if err != nil || n != tt.want {
					t.Fatalf("queryInt = %d, %v", n, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "n") {
				t.Fatalf("queryInt = %d, %v, want error with %q", n, err, tt.wantErr)
			}
		})
	}
}

// TestUploadStalledBodyTimesOut: a client that declares a body and then
// stops sending is answered 408 after the idle timeout, and the storage
// sees a timeout, not a truncated body it could mistake for the content.
func TestUploadStalledBodyTimesOut(t *testing.T) {
	f := mustFixture(t, func(c *Config) { c.Limits.BodyIdleTimeout = 200 * time.Millisecond })
	got := make(chan error, 1)
	f.storage.UploadFn = func(ctx context.Context, uid osprey.UID, body io.Reader, md5 string) (FileInfo, error) {
		_, err := io.Copy(io.Discard, body)
		got <- err
		return FileInfo{}, err
	}
	srv := httptest.NewServer(f.srv)
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	q := uploadLink(testUID, "md5", strings.Repeat("0", 32))
	fmt.Fprintf(conn, "PUT %s/upload?%s HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nonly a few bytes", Prefix, q.Encode())
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled upload: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if err := <-got; !errors.Is(err, osprey.ErrTimeout) {
		t.Fatalf("storage saw %v, want a timeout", err)
	}
}

// A client at its cap of in-flight uploads gets 429 with Retry-After at
// once for the next one, and its slots come back when its uploads end.
func TestUploadsPerClientCap(t *testing.T) {
	f := mustFixture(t, func(c *Config) {
		c.Limits.MaxUploadsPerClient = 2
		c.Limits.BodyIdleTimeout = 0
	})
	entered := make(chan struct{}, 4)
	f.storage.UploadFn = func(ctx context.Context, uid osprey.UID, body io.Reader, md5 string) (FileInfo, error) {
		entered <- struct{}{}
		_, err := io.Copy(io.Discard, body)
		return FileInfo{UID: uid}, err
	}
	srv := httptest.NewServer(f.srv)
	defer srv.Close()
	q := uploadLink(testUID, "md5", strings.Repeat("0", 32))
	// Two trickling uploads: headers and a few bytes of a large body.
	var slow []net.Conn
	for range 2 {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "PUT %s/upload?%s HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nonly a few bytes", Prefix, q.Encode())
		slow = append(slow, conn)
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			t.Fatal("slow upload never reached storage")
		}
	}
	put := func() *http.Response {
		req, _ := http.NewRequest(http.MethodPut, srv.URL+Prefix+"/upload?"+q.Encode(), strings.NewReader("hello"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	resp := put()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third upload: status %d, Retry-After %q; want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// The slow senders hang up: their slots are released.
	for _, c := range slow {
		c.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp := put()
		if resp.StatusCode != http.StatusTooManyRequests {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("slots were not released after the slow senders went away")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
