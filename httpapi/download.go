package httpapi

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/osprey-storage/osprey"
)

// --- /link/download ---

type linkDownloadRequest struct {
	UID    []string `json:"uid"`
	Expire int64    `json:"expire"`
}

type downloadMeta struct {
	SrcName string `json:"srcName"`
	DstName string `json:"dstName"`
	Height  int    `json:"height"`
	Width   int    `json:"width"`
	MD5     string `json:"md5"`
	Size    string `json:"size"`
}

type linkDownloadReply struct {
	UID   string        `json:"uid"`
	URL   string        `json:"url"`
	Meta  *downloadMeta `json:"meta"`
	Error string        `json:"error,omitempty"`
}

func (s *Server) handleLinkDownload(w http.ResponseWriter, r *http.Request) {
	var req linkDownloadRequest
	if err := decodeJSON(r, maxJSONBody, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(req.UID) == 0 || len(req.UID) > maxDownloadItems {
		s.writeError(w, r, invalidf("uid must hold 1 to %d uids, got %d", maxDownloadItems, len(req.UID)))
		return
	}
	exp, err := s.expiry(req.Expire)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	secret, err := s.cfg.Storage.LinkSecret()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	now := time.Now()
	out := make([]linkDownloadReply, len(req.UID))
	for i, raw := range req.UID {
		out[i].UID = raw
		uid, err := osprey.ParseUID(raw)
		if err != nil {
			out[i].Error = "invalid uid"
			continue
		}
		info, err := s.cfg.Storage.Stat(r.Context(), uid)
		switch {
		case errors.Is(err, osprey.ErrNotFound):
			out[i].Error = "not found"
			continue
		case err != nil:
			// One failing item must not fail or hang the batch, but a
			// cluster-wide failure (no leader) fails it as a whole.
			if errors.Is(err, osprey.ErrUnavailable) || errors.Is(err, osprey.ErrIndeterminate) {
				s.writeError(w, r, err)
				return
			}
			if st, _ := statusOf(err); st == http.StatusInternalServerError {
				// Like writeError: details go to the log, not the client.
				s.log.Error("internal error", "uid", raw, "request_id", RequestID(r.Context()), "err", err)
				out[i].Error = "internal error"
				continue
			}
			out[i].Error = err.Error()
			continue
		case info.State == "uploading":
			out[i].Error = "upload not complete"
			continue
		case info.State == "failed":
			out[i].Error = "file failed verification"
			continue
		}
		q := url.Values{}
		q.Set("uid", info.UID.String())
		q.Set("name", info.Name)
		q.Set("online", "1")
		q.Set("bucket", info.Bucket)
		q.Set("object", objectKey(info))
		out[i].URL = Prefix + "/download?" + signDownload(secret, q, now, exp).Encode()
		out[i].Meta = &downloadMeta{SrcName: info.Name, DstName: objectKey(info), MD5: info.MD5, Size: strconv.FormatInt(info.Size, 10)}
	}
	writeOK(w, r, out)
}

// objectKey is the object name shown in links: uid plus the extension.
func objectKey(info FileInfo) string {
	name := info.Name
	if i := strings.LastIndexByte(name, '.'); i >= 0 && !strings.ContainsAny(name[i:], "/\\") {
		return info.UID.String() + strings.ToLower(name[i:])
	}
	return info.UID.String()
}

// --- /download ---

func (s *Server) handleDownload(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	uid, err := queryUID(q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	secret, err := s.cfg.Storage.LinkSecret()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := verifyLink(secret, q, downloadFields(q), time.Now(), s.cfg.Limits.ClockSkew); err != nil {
		s.writeError(w, r, err)
		return
	}
	online := q.Get("online")
	if online != "" && online != "0" && online != "1" {
		s.writeError(w, r, invalidf("online must be 0 or 1"))
		return
	}
	obj, err := s.cfg.Storage.Open(r.Context(), uid)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	name := q.Get("name")
	if name == "" {
		name = obj.Name
	}
	disp := "inline"
	ctype := contentType(name)
	if online == "0" || activeType(ctype) {
		disp = "attachment"
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Disposition", contentDisposition(disp, name))
	h.Set("X-Content-Type-Options", "nosniff")
	// Stored bytes are the users' content, not this origin's pages: a
	// type a browser would run (HTML, SVG, XML, JS) is always an
	// attachment and, should a browser render it anyway, sandboxed (no
	// scripts, an opaque origin), so it cannot reach the API with the
	// viewer's credentials (stored XSS). Passive types (images, video,
	// audio, PDF) stay viewable inline with online=1.
	if activeType(ctype) {
		h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	}
	h.Set("Accept-Ranges", "bytes")
	etag := `"` + obj.MD5 + `"`
	h.Set("ETag", etag)
	h.Set("Last-Modified", obj.UpdatedAt.UTC().Format(http.TimeFormat))

	start, length, status := int64(0), obj.Size, http.StatusOK
	if rh := r.Header.Get("Range"); rh != "" && ifRangeMatches(r.Header.Get("If-Range"), etag, obj.UpdatedAt) {
		a, n, err := parseRange(rh, obj.Size)
		switch {
		case errors.Is(err, errIgnoreRange):
		case err != nil:
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", obj.Size))
			s.writeError(w, r, err)
			return
		default:
			start, length, status = a, n, http.StatusPartialContent
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", a, a+n-1, obj.Size))
		}
	}
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	if r.Header.Get(HeaderChunkSums) == "xxh64" {
		if v := chunkSumsHeader(obj.Sums, obj.Size, start, length); v != "" {
			h.Set(HeaderChunkSums, v)
		}
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}
	var rc io.ReadCloser
	if length > 0 {
		if rc, err = obj.Reader(r.Context(), start, length); err != nil {
			h.Del("Content-Range")
			h.Del("Content-Length")
			s.writeError(w, r, err)
			return
		}
		defer rc.Close()
	}
	w.WriteHeader(status)
	if rc == nil {
		return
	}
	if n, err := io.Copy(s.idleWrite(w), rc); err != nil || n != length {
		// Headers are gone; the only honest signal left is to cut the
		// connection so the client sees a short body, never a truncated
		// file presented as complete.
		s.log.Warn("download aborted", "uid", uid, "sent", n, "want", length, "err", err, "request_id", RequestID(r.Context()))
		panic(http.ErrAbortHandler)
	}
}

func contentDisposition(kind, name string) string {
	if v := mime.FormatMediaType(kind, map[string]string{"filename": name}); v != "" {
		return v
	}
	return kind
}

// ifRangeMatches reports whether a Range header applies given If-Range.
func ifRangeMatches(ifRange, etag string, mod time.Time) bool {
	if ifRange == "" {
		return true
	}
	if strings.HasPrefix(ifRange, `"`) || strings.HasPrefix(ifRange, "W/") {
		return ifRange == etag // strong comparison
	}
	t, err := http.ParseTime(ifRange)
	return err == nil && !mod.Truncate(time.Second).After(t)
}

var errIgnoreRange = errors.New("ignore range")

// parseRange parses a single byte range (RFC 9110 §14.1.2) against size.
// It returns errIgnoreRange for a header it does not support (other units,
// several ranges), which is served as a full 200 as the RFC allows, and
// ErrRange (416) for an unsatisfiable range.
func parseRange(h string, size int64) (start, length int64, err error) {
	spec, ok := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return 0, 0, errIgnoreRange
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return 0, 0, fmt.Errorf("%w: malformed range %q", osprey.ErrRange, h)
	}
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)
	if first == "" {
		// Suffix range: the last n bytes.
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n <= 0 || size == 0 {
			return 0, 0, fmt.Errorf("%w: %q of a %d-byte file", osprey.ErrRange, h, size)
		}
		if n > size {
			n = size
		}
		return size - n, n, nil
	}
	a, err := strconv.ParseInt(first, 10, 64)
	if err != nil || a < 0 {
		return 0, 0, fmt.Errorf("%w: malformed range %q", osprey.ErrRange, h)
	}
	if a >= size {
		return 0, 0, fmt.Errorf("%w: %q starts beyond the %d-byte file", osprey.ErrRange, h, size)
	}
	b := size - 1
	if last != "" {
		if b, err = strconv.ParseInt(last, 10, 64); err != nil || b < a {
			return 0, 0, fmt.Errorf("%w: malformed range %q", osprey.ErrRange, h)
		}
		if b >= size {
			b = size - 1
		}
	}
	return a, b - a + 1, nil
}

// activeType reports whether a browser given this content type could run
// script from it.
func activeType(ctype string) bool {
	mt, _, _ := mime.ParseMediaType(ctype)
	switch {
	case mt == "text/html", mt == "application/xhtml+xml", mt == "image/svg+xml",
		mt == "text/xml", mt == "application/xml", mt == "text/xsl", mt == "application/xslt+xml",
		mt == "text/javascript", mt == "application/javascript", mt == "application/x-javascript",
		mt == "application/ecmascript", mt == "text/ecmascript", mt == "multipart/x-mixed-replace",
		strings.HasSuffix(mt, "+xml"):
		return true
	}
	return false
}

// maxChunkSums bounds the chunk sums one answer carries (~40 bytes each,
// so the header stays under the 4 KiB a proxy in front may allow for
// all of them): a range that spans more is served without them (the
// client checks the md5 then). A parallel get's 16 MiB range spans 3
// chunks of 8 MiB, 17 of 1 MiB.
const maxChunkSums = 96

// chunkSumsHeader is the HeaderChunkSums value for the chunks of sums
// that overlap [start, start+length) of a size-byte file, or "" when the
// sums do not describe the file or there are too many.
func chunkSumsHeader(sums []ChunkSum, size, start, length int64) string {
	var total int64
	for _, c := range sums {
		total += c.Size
	}
	if len(sums) == 0 || total != size || length <= 0 {
		return ""
	}
	var (
		b   []byte
		n   int
		off int64
	)
	for _, c := range sums {
		if off < start+length && off+c.Size > start {
			if n++; n > maxChunkSums {
				return ""
			}
			if len(b) > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, off, 10)
			b = append(b, ':')
			b = strconv.AppendInt(b, c.Size, 10)
			b = append(b, ':')
			b = fmt.Appendf(b, "%016x", c.Sum)
		}
		off += c.Size
	}
	return string(b)
}
