package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/osprey-storage/osprey/node"
)

// End-to-end tests of the web console (/ui/) in a real headless Chromium
// against in-process clusters. They skip when no Chromium is installed
// (Debian: apt-get install chromium; or set OSPREY_CHROMIUM to a binary).
// Screenshots go to $OSPREY_CONSOLE_ARTIFACTS (default: a temp dir).

func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("OSPREY_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("console e2e: no Chromium found (apt-get install chromium, or set OSPREY_CHROMIUM); skipping")
	return ""
}

func artifactDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("OSPREY_CONSOLE_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// browserSession is one headless Chromium tab plus what the page logged.
type browserSession struct {
	t     *testing.T
	ctx   context.Context
	shots string

	mu       sync.Mutex
	problems []string // uncaught exceptions and security (CSP) violations
	download chan string
}

func newBrowser(t *testing.T) *browserSession {
	t.Helper()
	exe := chromiumPath(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", "new"),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browserSession{t: t, ctx: ctx, shots: artifactDir(t), download: make(chan string, 8)}
	// The first Run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{})
		return err
	})); err != nil {
		t.Fatalf("start chromium (%s): %v", exe, err)
	}
	if err := chromedp.Listen(ctx, b.onEvent); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *browserSession) onEvent(ev any) {
	switch e := ev.(type) {
	case *runtime.EventExceptionThrown:
		b.note("uncaught exception: " + e.ExceptionDetails.Text + " " + describeException(e.ExceptionDetails))
	case *cdplog.EventEntryAdded:
		if e.Entry.Source == cdplog.EntrySourceSecurity || (e.Entry.Source == cdplog.EntrySourceJavascript && e.Entry.Level == cdplog.EntryLevelError) {
			b.note(string(e.Entry.Source) + ": " + e.Entry.Text)
		}
	case *browser.EventDownloadProgress:
		if e.State == browser.DownloadProgressStateCompleted {
			select {
			case b.download <- e.GUID:
			default:
			}
		}
	}
}

func describeException(d *runtime.ExceptionDetails) string {
	if d.Exception != nil && d.Exception.Description != "" {
		return d.Exception.Description
	}
	return fmt.Sprintf("at %s:%d", d.URL, d.LineNumber)
}

func (b *browserSession) note(s string) {
	b.mu.Lock()
	b.problems = append(b.problems, s)
	b.mu.Unlock()
}

// run runs steps with a deadline, failing the test with what is on screen.
func (b *browserSession) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.screenshot("failed-" + strings.ReplaceAll(what, " ", "-"))
		b.t.Fatalf("%s: %v (page problems: %v; status: %q)", what, err, b.pageProblems(), b.eval(`document.querySelector('#status').textContent`))
	}
}

// waitJS polls a JavaScript predicate in the page until it is true.
func (b *browserSession) waitJS(what, expr string) {
	b.t.Helper()
	b.run("wait for "+what, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond),
			chromedp.WithPollingTimeout(45*time.Second))(ctx, t)
		return err
	}))
}

func evalJS[T any](b *browserSession, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (b *browserSession) eval(expr string) string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	v, _ := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	return v
}

func (b *browserSession) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(b.shots, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", p)
}

func (b *browserSession) pageProblems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}

// keyClient calls the API with a key, as an operator's script would.
type keyClient struct {
	t    *testing.T
	addr string
	key  string
}

func (c keyClient) do(method, path string, out any) int {
	c.t.Helper()
	return c.send(method, path, nil, out)
}

func (c keyClient) send(method, path string, body []byte, out any) int {
	c.t.Helper()
	req, err := http.NewRequest(method, "http://"+c.addr+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var env envelope
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &env)
	if out != nil && resp.StatusCode == 200 {
		if err := json.Unmarshal(env.Data, out); err != nil {
			c.t.Fatalf("decode %s: %v", b, err)
		}
	}
	return resp.StatusCode
}

type consoleTask struct {
	ID        uint64 `json:"id"`
	Type      string `json:"type"`
	State     string `json:"state"`
	LastError string `json:"last_error"`
}

// TestConsoleE2E drives the console the way an operator does, on a 3-node
// cluster with API keys: log in with a key, see members and the leader,
// upload a chunked file and see it reach 100%, find it, inspect its chunk
// holders, download it and compare bytes, delete it, retry a dead task,
// open a chaos report, and check the layout on a phone-sized screen.
func TestConsoleE2E(t *testing.T) {
	b := newBrowser(t)
	// Chaos reports are listed from $TMPDIR/osprey-jepsen.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	run := "20261204-101010-seed4242"
	if err := os.MkdirAll(filepath.Join(tmp, "osprey-jepsen", run, "n1"), 0o755); err != nil {
		t.Fatal(err)
	}
	report := "<!doctype html><meta charset=utf-8><title>osprey jepsen report</title><h1>osprey jepsen report</h1><pre>seed 4242: all invariants held</pre>"
	if err := os.WriteFile(filepath.Join(tmp, "osprey-jepsen", run, "report.html"), []byte(report), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "osprey-jepsen", run, "n1", "node.log"), []byte("private"), 0o644); err != nil {
		t.Fatal(err)
	}

	// A webhook receiver that fails until told otherwise: with one attempt
	// allowed, its deliveries become dead tasks an operator retries.
	var hookOK atomic.Bool
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hookOK.Load() {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		http.Error(w, "receiver down", http.StatusInternalServerError)
	}))
	t.Cleanup(hook.Close)

	const key = "console-e2e-key-0123456789"
	c := newClusterWith(t, 3, func(_ int, cfg *node.Config) {
		cfg.APIKeys = []string{key}
		cfg.WebhookURL, cfg.WebhookSecret = hook.URL, "webhook-secret-123"
		cfg.TaskMaxAttempts = 1
		cfg.GCGrace = time.Hour // keep staged chunks, so the detail view lists their holders
	})
	leader := c.Leader()
	var follower *node.Node
	for _, n := range c.nodes {
		if n != leader {
			follower = n
			break
		}
	}
	api := keyClient{t: t, addr: follower.HTTPAddr(), key: key}
	base := "http://" + follower.HTTPAddr()

	// --- log in: the console asks for the key ---
	b.run("open console", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(base+"/ui/#cluster"),
		chromedp.WaitVisible(chromedp.ID("auth-key")))
	b.screenshot("01-login")
	b.run("enter key", chromedp.SendKeys(chromedp.ID("auth-key"), key),
		chromedp.Click(chromedp.CSS(`#auth-form button[type=submit]`)))

	// --- Cluster: all members, reachable, and the leader ---
	b.waitJS("three reachable members and the leader", fmt.Sprintf(`(() => {
		const rows = [...document.querySelectorAll('#members tbody tr[data-node]')];
		const lead = rows.filter(r => r.querySelector('.badge.leader')).map(r => r.dataset.node);
		const ok = rows.filter(r => r.querySelector('.badge.ok')).length;
		return rows.length === 3 && ok === 3 && lead.length === 1 && lead[0] === %q;
	})()`, leader.ID()))
	b.waitJS("leader card", fmt.Sprintf(`[...document.querySelectorAll('#cluster-cards .card')].some(c => c.textContent === 'Leader' + %q)`, leader.ID()))
	b.screenshot("02-cluster")

	// --- Upload: 3 MiB + 12345 bytes in 1 MiB chunks, 3 at a time ---
	data := content(4242, 3<<20+12345)
	dir := t.TempDir()
	path := filepath.Join(dir, "console-e2e.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	b.run("pick file", chromedp.Navigate(base+"/ui/#upload"), chromedp.WaitVisible(chromedp.ID("drop")),
		chromedp.SetValue(chromedp.ID("chunk-size"), "1048576"),
		chromedp.SetUploadFiles(chromedp.ID("file-input"), []string{path}))
	b.waitJS("upload reaches 100%", `(() => {
		const li = document.querySelector('li.upload[data-name="console-e2e.bin"]');
		return !!li && li.classList.contains('done') && li.querySelector('.pct').textContent === '100%' &&
			li.querySelector('progress').value === 100;
	})()`)
	b.screenshot("03-upload")
	uid := evalJS[string](b, `document.querySelector('li.upload.done[data-name="console-e2e.bin"]').dataset.uid`)
	var info struct {
		MD5    string `json:"md5"`
		Size   int64  `json:"size"`
		Chunks int    `json:"chunks"`
		State  string `json:"state"`
	}
	if code := api.do("GET", "/api/storage/v0/object?uid="+uid, &info); code != 200 {
		t.Fatalf("stat uploaded %s: %d", uid, code)
	}
	if info.MD5 != md5hex(data) || info.Size != int64(len(data)) || (info.State != "complete" && info.State != "tiered") {
		t.Fatalf("uploaded file %+v, want md5 %s, %d bytes, complete", info, md5hex(data), len(data))
	}
	if !strings.Contains(evalJS[string](b, `document.querySelector('li.upload[data-uid="`+uid+`"] .state').textContent`), "uploaded") {
		t.Fatalf("upload state text: %q", b.eval(`document.querySelector('li.upload .state').textContent`))
	}

	// The same content again: the browser's md5 matches, /resume stores it at once.
	b.run("pick the same file again", chromedp.SetUploadFiles(chromedp.ID("file-input"), []string{path}))
	b.waitJS("instant upload", `[...document.querySelectorAll('li.upload.done[data-name="console-e2e.bin"]')].some(li =>
		li.dataset.uid !== '`+uid+`' && li.textContent.includes('stored instantly'))`)

	// Resume: an earlier attempt in this tab stored 2 of 3 chunks. The page
	// finds its link in session storage, asks /checkpoint, and sends only
	// the missing chunk.
	resumeData := content(77, 2<<20+4321)
	resumePath := filepath.Join(dir, "console-resume.bin")
	if err := os.WriteFile(resumePath, resumeData, 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(resumePath)
	if err != nil {
		t.Fatal(err)
	}
	var rl []uploadLink
	if code := api.send("POST", "/api/storage/v0/link/upload", []byte(`{"filePath":["console-resume.bin"]}`), &rl); code != 200 {
		t.Fatalf("link: %d", code)
	}
	for i := 1; i <= 2; i++ {
		part := resumeData[(i-1)<<20 : i<<20]
		if code := api.send("PUT", fmt.Sprintf("%s&md5=%s&chunkNum=%d", rl[0].URL.Multi.Upload, md5hex(part), i), part, nil); code != 200 {
			t.Fatalf("chunk %d: %d", i, code)
		}
	}
	rec, _ := json.Marshal(map[string]string{"uid": rl[0].UID, "single": rl[0].URL.Single, "upload": rl[0].URL.Multi.Upload, "merge": rl[0].URL.Multi.Merge})
	resumeKey := fmt.Sprintf("osprey.upload.console-resume.bin|%d|%d|%s|1048576", len(resumeData), st.ModTime().UnixMilli(), md5hex(resumeData))
	recJS, _ := json.Marshal(string(rec))
	keyJS, _ := json.Marshal(resumeKey)
	b.run("resume an interrupted upload", chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`sessionStorage.setItem(%s, %s)`, keyJS, recJS)),
		chromedp.SetUploadFiles(chromedp.ID("file-input"), []string{resumePath}))
	b.waitJS("resumed upload done", `(() => { const li = document.querySelector('li.upload.done[data-name="console-resume.bin"]');
		return !!li && li.dataset.uid === '`+rl[0].UID+`' && li.textContent.includes('resumed: 2 chunks were already stored') &&
			li.querySelector('.pct').textContent === '100%'; })()`)
	if code := api.do("GET", "/api/storage/v0/object?uid="+rl[0].UID, &info); code != 200 || info.MD5 != md5hex(resumeData) || info.Size != int64(len(resumeData)) {
		t.Fatalf("resumed file: %d %+v", code, info)
	}
	if left := evalJS[int](b, `Object.keys(sessionStorage).filter(k => k.startsWith('osprey.upload.')).length`); left != 0 {
		t.Fatalf("%d upload records left in session storage after completion", left)
	}

	// An upload left half done (2 chunks, no merge): its staged chunks and
	// their holders show in the detail view.
	var links []uploadLink
	if code := api.send("POST", "/api/storage/v0/link/upload", []byte(`{"filePath":["console-e2e-partial.mp4"]}`), &links); code != 200 {
		t.Fatalf("link: %d", code)
	}
	for i := 1; i <= 2; i++ {
		part := content(500+i, 200_000)
		if code := api.send("PUT", fmt.Sprintf("%s&md5=%s&chunkNum=%d", links[0].URL.Multi.Upload, md5hex(part), i), part, nil); code != 200 {
			t.Fatalf("chunk %d: %d", i, code)
		}
	}
	// The finished upload is tiered to the backend (copied to two nodes).
	waitFor(t, 30*time.Second, "the upload tiered", func() bool {
		api.do("GET", "/api/storage/v0/object?uid="+uid, &info)
		return info.State == "tiered"
	})

	b.run("cluster with files", chromedp.Navigate(base+"/ui/#cluster"))
	b.waitJS("three files counted", `[...document.querySelectorAll('#cluster-cards .card')].some(c => c.textContent === 'Files4')`)
	b.screenshot("02b-cluster-busy")

	// --- Files: find them by name prefix, look at chunks, holders, tier ---
	b.run("search", chromedp.Navigate(base+"/ui/#files"), chromedp.WaitVisible(chromedp.ID("search")),
		chromedp.SendKeys(chromedp.ID("search"), "console-e2e"),
		chromedp.Click(chromedp.CSS(`#search-form button[type=submit]`)))
	row := `#files tbody tr[data-uid="` + uid + `"]`
	partialRow := `#files tbody tr[data-uid="` + links[0].UID + `"]`
	b.waitJS("the files in the list", `(() => { const r = document.querySelector('`+row+`');
		return !!r && r.querySelector('.name').textContent === 'console-e2e.bin' && !!document.querySelector('`+partialRow+`') &&
			document.querySelectorAll('#files tbody tr[data-uid]').length === 3 && !document.querySelector('#files tbody tr[data-uid="`+rl[0].UID+`"]'); })()`)
	b.run("open detail of the partial upload", chromedp.Click(chromedp.CSS(partialRow+` button[data-action=detail]`)))
	b.waitJS("chunk holders", `(() => {
		const rows = [...document.querySelectorAll('#detail-chunks tbody tr')];
		return !document.querySelector('#detail').hidden && rows.length === 2 &&
			rows.every(r => r.querySelectorAll('.badge.ok').length === 2) && document.querySelector('#detail-h').textContent.includes('partial');
	})()`)
	b.screenshot("04-file-detail-staged")
	b.run("open detail", chromedp.Click(chromedp.CSS(row+` button[data-action=detail]`)))
	b.waitJS("tier location and md5", `(() => { const t = document.querySelector('#detail-info').textContent;
		return t.includes('`+md5hex(data)+`') && t.includes('tiered') && document.querySelectorAll('#detail-info .badge.ok').length === 2; })()`)
	b.screenshot("04-file-detail-tiered")

	// Search by uid finds exactly that file.
	b.run("search by uid", chromedp.Evaluate[chromedp.Void](`document.querySelector('#search').value = ''`),
		chromedp.SendKeys(chromedp.ID("search"), uid), chromedp.Click(chromedp.CSS(`#search-form button[type=submit]`)))
	b.waitJS("uid search", `document.querySelectorAll('#files tbody tr[data-uid]').length === 1 && !!document.querySelector('`+row+`')`)

	// --- Download through the page and compare bytes ---
	dl := t.TempDir()
	b.run("allow downloads", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dl, EventsEnabled: ptrTo(true)})
		return err
	}), chromedp.Click(chromedp.CSS(row+` button[data-action=download]`)))
	select {
	case guid := <-b.download:
		got, err := os.ReadFile(filepath.Join(dl, guid))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("downloaded %d bytes (md5 %s), want %d (md5 %s)", len(got), md5hex(got), len(data), md5hex(data))
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("download did not complete (page problems: %v)", b.pageProblems())
	}

	// --- Delete, with confirmation ---
	b.run("delete", chromedp.Click(chromedp.CSS(row+` button[data-action=delete]`)),
		chromedp.WaitVisible(chromedp.ID("confirm-yes")))
	b.screenshot("05-delete-confirm")
	b.run("confirm delete", chromedp.Click(chromedp.ID("confirm-yes")))
	b.waitJS("row gone", `!document.querySelector('`+row+`') && !document.querySelector('#confirm').open`)
	if code := api.do("GET", "/api/storage/v0/object?uid="+uid, nil); code != 404 {
		t.Fatalf("stat of deleted %s: %d, want 404", uid, code)
	}

	// --- Tasks: dead webhook deliveries, retried from the page ---
	var dead []consoleTask
	waitFor(t, 60*time.Second, "dead webhook tasks", func() bool {
		dead = nil
		api.do("GET", "/tasks?state=dead", &dead)
		return len(dead) > 0
	})
	victim := dead[0]
	b.run("tasks view", chromedp.Navigate(base+"/ui/#tasks"), chromedp.WaitVisible(chromedp.ID("task-state")),
		chromedp.Evaluate[chromedp.Void](`(() => { const s = document.querySelector('#task-state'); s.value = 'dead'; s.dispatchEvent(new Event('change')); })()`))
	taskRow := fmt.Sprintf(`#tasks tbody tr[data-task="%d"]`, victim.ID)
	b.waitJS("the dead task with its reason", `(() => { const r = document.querySelector('`+taskRow+`');
		return !!r && r.dataset.state === 'dead' && r.querySelector('td.err').textContent.includes('answered 500'); })()`)
	b.screenshot("06-tasks-dead")
	hookOK.Store(true)
	b.run("retry", chromedp.Click(chromedp.CSS(taskRow+` button[data-action=retry]`)))
	waitFor(t, 30*time.Second, "the retried task to leave the dead state", func() bool {
		var ts []consoleTask
		api.do("GET", "/tasks", &ts)
		for _, tk := range ts {
			if tk.ID == victim.ID && tk.State == "dead" {
				return false
			}
		}
		return true
	})
	b.waitJS("the retried task gone from the dead list", `!document.querySelector('`+taskRow+`')`)

	// --- The key stays in session storage and out of every URL ---
	stored := evalJS[string](b, `sessionStorage.getItem('osprey.apiKey') || ''`)
	leaks := evalJS[int](b, `performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation')).filter(e => e.name.includes('`+key+`')).length + (location.href.includes('`+key+`') ? 1 : 0)`)
	if stored != key || leaks != 0 || evalJS[int](b, `localStorage.length`) != 0 || evalJS[string](b, `document.cookie`) != "" {
		t.Fatalf("key handling: sessionStorage=%q, URLs with the key=%d, localStorage=%d, cookie=%q",
			stored, leaks, evalJS[int](b, `localStorage.length`), evalJS[string](b, `document.cookie`))
	}

	// --- Phone-sized screen: no horizontal scrolling of the page ---
	b.run("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)), chromedp.Navigate(base+"/ui/#cluster"))
	b.waitJS("cluster on a phone", `document.querySelectorAll('#members tbody tr[data-node]').length === 3`)
	if w := evalJS[int](b, `document.documentElement.scrollWidth - window.innerWidth`); w > 0 {
		b.screenshot("07-phone-overflow")
		t.Fatalf("page is %d px wider than a phone screen", w)
	}
	b.screenshot("07-phone-cluster")
	for _, view := range []string{"files", "upload", "tasks", "reports"} {
		b.run("phone "+view, chromedp.Navigate(base+"/ui/#"+view))
		b.waitJS(view+" shown on a phone", `!document.querySelector('#view-`+view+`').hidden`)
		if w := evalJS[int](b, `document.documentElement.scrollWidth - window.innerWidth`); w > 0 {
			b.screenshot("07-phone-overflow-" + view)
			t.Fatalf("%s view is %d px wider than a phone screen", view, w)
		}
		b.screenshot("07-phone-" + view)
	}
	b.run("desktop again", chromedp.EmulateViewport(1280, 800))

	// --- Chaos reports: listed with signed links that open without the key ---
	b.run("reports", chromedp.Navigate(base+"/ui/#reports"))
	b.waitJS("the run listed", `!!document.querySelector('#reports li[data-run="`+run+`"] a')`)
	b.screenshot("08-reports")
	href := evalJS[string](b, `document.querySelector('#reports li[data-run="`+run+`"] a').href`)
	if strings.Contains(href, key) {
		t.Fatalf("report link carries the key: %s", href)
	}
	resp, err := http.Get(href)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "all invariants held") || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "sandbox") {
		t.Fatalf("GET report: %d %q csp=%q", resp.StatusCode, body, resp.Header.Get("Content-Security-Policy"))
	}
	for _, bad := range []string{strings.Replace(href, "signature=", "signature=0", 1), base + "/console/reports/" + run + "/node.log"} {
		if r, err := http.Get(bad); err != nil || (r.StatusCode != 403 && r.StatusCode != 404) {
			t.Fatalf("GET %s: %v %v, want 403/404", bad, err, r)
		} else {
			r.Body.Close()
		}
	}

	if p := b.pageProblems(); len(p) > 0 {
		t.Fatalf("the page reported problems (CSP violations or uncaught errors): %q", p)
	}
	// Opening the report in the browser works as a plain navigation.
	b.run("open report", chromedp.Navigate(href))
	b.waitJS("report title", `document.title === 'osprey jepsen report'`)
}

// TestConsoleProtectedMode: with no API keys the console works from
// loopback without asking for a key.
func TestConsoleProtectedMode(t *testing.T) {
	b := newBrowser(t)
	c := newCluster(t, 1)
	n := c.Leader()
	b.run("open console", chromedp.Navigate("http://"+n.HTTPAddr()+"/ui/"))
	b.waitJS("cluster view without a key", fmt.Sprintf(`!document.querySelector('#view-cluster').hidden &&
		document.querySelector('#auth').hidden &&
		!!document.querySelector('#members tbody tr[data-node=%q] .badge.leader')`, n.ID()))
	if p := b.pageProblems(); len(p) > 0 {
		t.Fatalf("the page reported problems: %q", p)
	}
}

func ptrTo[T any](v T) *T { return &v }
