package console_test

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/osprey-storage/osprey/console"
)

// TestNoExternalRequests: the console must work air-gapped, so no asset
// may load anything from another origin, and the CSP forbids it anyway.
func TestNoExternalRequests(t *testing.T) {
	// URLs in src/href attributes, CSS url(), imports, fetch/XHR/Worker
	// targets and importScripts that point at another origin.
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|import\s.*from\s*["'](https?:)?//|(fetch|open|Worker|importScripts)\(\s*["'](https?:)?//`)
	n := 0
	err := fs.WalkDir(console.Files(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(console.Files(), p)
		if err != nil {
			return err
		}
		n++
		if m := external.Find(b); m != nil {
			t.Errorf("%s references another origin: %q", p, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 5 {
		t.Fatalf("only %d embedded files", n)
	}
}

// TestNoInlineCode: the strict CSP allows no inline script or style, so
// the pages must not contain any (it would silently not run).
func TestNoInlineCode(t *testing.T) {
	b, err := fs.ReadFile(console.Files(), "index.html")
	if err != nil {
		t.Fatal(err)
	}
	html := string(b)
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`), // a script with a body
		regexp.MustCompile(`<style`),
		regexp.MustCompile(`\sstyle\s*=`),
		regexp.MustCompile(`\son[a-z]+\s*=`), // inline event handlers
		regexp.MustCompile(`javascript:`),
	} {
		if m := bad.FindString(html); m != "" {
			t.Errorf("index.html has inline code the CSP blocks: %q", m)
		}
	}
	js, _ := fs.ReadFile(console.Files(), "app.js")
	if strings.Contains(string(js), "innerHTML") || strings.Contains(string(js), "eval(") {
		t.Error("app.js must build the DOM with textContent, never innerHTML or eval")
	}
	if strings.Contains(string(js), "localStorage") {
		t.Error("app.js must keep the API key in sessionStorage only")
	}
}

func TestHandlerHeaders(t *testing.T) {
	h := console.Handler()
	for _, p := range []string{"/ui/", "/ui/app.js", "/ui/nothing-here"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		if rec.Header().Get("Content-Security-Policy") != console.CSP {
			t.Fatalf("%s: CSP %q", p, rec.Header().Get("Content-Security-Policy"))
		}
		for _, d := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(console.CSP, d) {
				t.Fatalf("CSP lacks %q", d)
			}
		}
		if strings.Contains(console.CSP, "unsafe") {
			t.Fatalf("CSP allows unsafe sources: %s", console.CSP)
		}
	}
}
