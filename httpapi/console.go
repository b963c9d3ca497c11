package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/console"
)

// Console is what the web console's read-only routes need beyond the
// storage API. It is an optional capability of Config.Storage, found by
// type assertion: without it the console's extra views answer 404.
type Console interface {
	// FileDetail returns a file's metadata with its chunks, their holders
	// and its tier location (linearizable). ErrNotFound for an unknown uid.
	FileDetail(ctx context.Context, uid osprey.UID) (FileDetail, error)
	// SearchFiles returns up to limit files whose name starts with prefix,
	// in uid order after cursor, and the cursor to continue from (0 when
	// the scan reached the end). A call may scan a bounded number of files
	// and return fewer than limit matches with a non-zero cursor.
	SearchFiles(ctx context.Context, prefix string, cursor osprey.UID, limit int) ([]FileInfo, osprey.UID, error)
	// ChaosReportsDir is the directory holding chaos-harness runs (one
	// sub-directory per run); "" when there is none to show.
	ChaosReportsDir() string
	// Version describes the build of this node.
	Version() string
}

// FileDetail is the reply of GET /object/detail.
type FileDetail struct {
	FileInfo
	// Content is the id of the stored content ("" while uploading); dedup
	// aliases share it.
	Content  string `json:"content,omitempty"`
	Refs     int    `json:"refs"`
	Verified bool   `json:"verified"`
	// Tier is set once the content is in the backend.
	Tier *TierInfo `json:"tier,omitempty"`
	// Parts lists the staged chunks in order and who holds them.
	Parts []ChunkDetail `json:"parts"`
}

// TierInfo is where a tiered content lives.
type TierInfo struct {
	Bucket string `json:"bucket"`
	Key    string `json:"key"`
	// Holders lists the members keeping a copy when the backend is each
	// node's local disk; empty for a shared backend.
	Holders []Holder `json:"holders,omitempty"`
}

// ChunkDetail is one staged chunk.
type ChunkDetail struct {
	Num  uint32 `json:"num"`
	Size int64  `json:"size"`
	MD5  string `json:"md5"`
	// Layout is "replicas" or "ec:K+M".
	Layout  string   `json:"layout"`
	Holders []Holder `json:"holders"`
}

// Holder is a member holding a copy (Shard 0) or erasure-coded shard
// Shard (1-based) of a chunk.
type Holder struct {
	ID       string `json:"id"`
	HTTPAddr string `json:"http_addr,omitempty"`
	Shard    int    `json:"shard,omitempty"`
	Down     bool   `json:"down,omitempty"`
	Removed  bool   `json:"removed,omitempty"`
}

// ChaosRun is one chaos-harness run listed by GET /console/reports.
type ChaosRun struct {
	Name     string        `json:"name"`
	Modified time.Time     `json:"modified"`
	Files    []ChaosReport `json:"files"`
}

// ChaosReport is one file of a run, with a signed link to open it.
type ChaosReport struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

// reportFiles are the files of a run the console serves; everything else
// in a run's folder (node logs, data dirs, history) stays private.
var reportFiles = []string{"report.html", "linearizability.html", "summary.txt", "summary.json"}

var runNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// reportLinkExpiry bounds how long a listed report link works.
const reportLinkExpiry = 10 * time.Minute

// maxReportRuns bounds the listing (newest first).
const maxReportRuns = 50

func (s *Server) consoleRoutes() {
	h := console.Handler()
	s.handle(http.MethodGet, "/ui/*path", open, h.ServeHTTP)
	s.handle(http.MethodHead, "/ui/*path", open, h.ServeHTTP)
	s.handle(http.MethodGet, "/console/info", business, s.handleConsoleInfo)
	c, ok := s.cfg.Storage.(Console)
	if !ok {
		return
	}
	s.handle(http.MethodGet, Prefix+"/object/detail", business, func(w http.ResponseWriter, r *http.Request) { s.handleObjectDetail(w, r, c) })
	s.handle(http.MethodGet, Prefix+"/objects/search", business, func(w http.ResponseWriter, r *http.Request) { s.handleObjectSearch(w, r, c) })
	s.handle(http.MethodGet, "/console/reports", business, func(w http.ResponseWriter, r *http.Request) { s.handleReports(w, r, c) })
	s.handle(http.MethodGet, "/console/reports/:run/:file", open, func(w http.ResponseWriter, r *http.Request) { s.handleReport(w, r, c) })
}

func (s *Server) handleConsoleInfo(w http.ResponseWriter, r *http.Request) {
	info := map[string]any{"auth": "api-key", "features": []string{}}
	if len(s.cfg.APIKeys) == 0 {
		info["auth"] = "protected-mode"
	}
	if c, ok := s.cfg.Storage.(Console); ok {
		info["version"] = c.Version()
		info["features"] = []string{"detail", "search", "reports"}
	}
	writeOK(w, r, info)
}

func (s *Server) handleObjectDetail(w http.ResponseWriter, r *http.Request, c Console) {
	uid, err := queryUID(r.URL.Query())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	d, err := c.FileDetail(r.Context(), uid)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeOK(w, r, d)
}

func (s *Server) handleObjectSearch(w http.ResponseWriter, r *http.Request, c Console) {
	q := r.URL.Query()
	prefix := q.Get("prefix")
	if len(prefix) > 1024 {
		s.writeError(w, r, invalidf("prefix longer than 1024 bytes"))
		return
	}
	cursor, limit, err := queryPage(q, 50)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	items, next, err := c.SearchFiles(r.Context(), prefix, cursor, int(limit))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if items == nil {
		items = []FileInfo{}
	}
	nc := ""
	if next != 0 {
		nc = next.String()
	}
	writeOK(w, r, map[string]any{"items": items, "next_cursor": nc})
}

func reportFields(run, file, date, expire string) []string {
	return []string{"chaos-report", run, file, date, expire}
}

// handleReports lists chaos-harness runs with short-lived signed links, so
// a report opens in a plain browser tab without the API key in its URL.
func (s *Server) handleReports(w http.ResponseWriter, r *http.Request, c Console) {
	runs := []ChaosRun{}
	dir := c.ChaosReportsDir()
	if dir == "" {
		writeOK(w, r, map[string]any{"dir": "", "runs": runs})
		return
	}
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		s.writeError(w, r, fmt.Errorf("console: list chaos reports: %w", err))
		return
	}
	secret, err := s.cfg.Storage.LinkSecret()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	now := time.Now()
	date := now.UTC().Format(time.RFC3339)
	exp := fmt.Sprint(int64(reportLinkExpiry / time.Second))
	for _, e := range entries {
		if !e.IsDir() || !runNameRe.MatchString(e.Name()) {
			continue
		}
		run := ChaosRun{Name: e.Name()}
		for _, f := range reportFiles {
			fi, err := os.Stat(filepath.Join(dir, e.Name(), f))
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			if fi.ModTime().After(run.Modified) {
				run.Modified = fi.ModTime().UTC()
			}
			q := url.Values{}
			q.Set("date", date)
			q.Set("expire", exp)
			q.Set("signature", signFields(secret, reportFields(e.Name(), f, date, exp)...))
			run.Files = append(run.Files, ChaosReport{Name: f,
				URL: "/console/reports/" + url.PathEscape(e.Name()) + "/" + f + "?" + q.Encode()})
		}
		if len(run.Files) > 0 {
			runs = append(runs, run)
		}
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].Modified.After(runs[j].Modified) })
	if len(runs) > maxReportRuns {
		runs = runs[:maxReportRuns]
	}
	writeOK(w, r, map[string]any{"dir": dir, "runs": runs})
}

// handleReport serves one report file, authorised by its signed link. The
// harness's HTML has inline styles and no scripts; it is served sandboxed
// with a CSP that allows exactly that.
func (s *Server) handleReport(w http.ResponseWriter, r *http.Request, c Console) {
	p := httprouter.ParamsFromContext(r.Context())
	run, file := p.ByName("run"), p.ByName("file")
	known := false
	for _, f := range reportFiles {
		known = known || f == file
	}
	dir := c.ChaosReportsDir()
	if !known || !runNameRe.MatchString(run) || dir == "" {
		s.writeError(w, r, fmt.Errorf("%w: no report %s/%s", osprey.ErrNotFound, run, file))
		return
	}
	secret, err := s.cfg.Storage.LinkSecret()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	if err := verifyLink(secret, q, reportFields(run, file, q.Get("date"), q.Get("expire")), time.Now(), s.cfg.Limits.ClockSkew); err != nil {
		s.writeError(w, r, err)
		return
	}
	f, err := os.Open(filepath.Join(dir, run, file))
	if err != nil {
		s.writeError(w, r, fmt.Errorf("%w: report %s/%s: %w", osprey.ErrNotFound, run, file, err))
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		s.writeError(w, r, fmt.Errorf("%w: report %s/%s", osprey.ErrNotFound, run, file))
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	switch filepath.Ext(file) {
	case ".html":
		h.Set("Content-Type", "text/html; charset=utf-8")
	case ".json":
		h.Set("Content-Type", "application/json")
	default:
		h.Set("Content-Type", "text/plain; charset=utf-8")
	}
	http.ServeContent(w, r, "", fi.ModTime(), f)
}
