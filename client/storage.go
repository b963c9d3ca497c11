package client

import (
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Limits of the batch endpoints (SPEC §3).
const (
	MaxResumeItems       = 50
	MaxLinkUploadPaths   = 50
	MaxLinkDownloadUIDs  = 200
	contentTypeJSON      = "application/json"
	contentTypeOctet     = "application/octet-stream"
	defaultMultipartName = "file"
)

// Ping checks that a node answers (GET /ping).
func (c *Client) Ping(ctx context.Context) error {
	return c.doJSON(ctx, &request{method: http.MethodGet, target: APIPrefix + "/ping", idempotent: true}, nil)
}

// Health checks a node's liveness without touching Raft (GET /health).
func (c *Client) Health(ctx context.Context) error {
	return c.doJSON(ctx, &request{method: http.MethodGet, target: APIPrefix + "/health", idempotent: true}, nil)
}

// Resume asks whether complete files with the given md5s exist (POST
// /resume, at most MaxResumeItems). For each hit the server creates a new
// uid named after the item's path that shares the stored content; misses
// have UID "". Results are in request order.
func (c *Client) Resume(ctx context.Context, items []ResumeItem) ([]ResumeResult, error) {
	if len(items) == 0 || len(items) > MaxResumeItems {
		return nil, fmt.Errorf("%w: resume takes 1..%d items, got %d", ErrInvalid, MaxResumeItems, len(items))
	}
	body, n, err := jsonBody(resumeRequest{Data: items})
	if err != nil {
		return nil, err
	}
	var out []ResumeResult
	// Not idempotent: a hit mints a uid. Retried only when certainly not applied.
	err = c.doJSON(ctx, &request{method: http.MethodPost, target: APIPrefix + "/resume", body: body,
		contentLength: n, contentType: contentTypeJSON, auth: true}, &out)
	if err != nil {
		return nil, err
	}
	if len(out) != len(items) {
		return nil, fmt.Errorf("%w: resume: %d results for %d items", ErrProtocol, len(out), len(items))
	}
	return out, nil
}

// DedupChallenge asks for a proof-of-possession challenge for a content
// (POST /dedup/challenge). The server issues one whether or not it holds
// the content.
func (c *Client) DedupChallenge(ctx context.Context, md5, sha256 string, size int64, path string) (DedupChallenge, error) {
	body, n, err := jsonBody(dedupChallengeRequest{MD5: md5, Size: size, SHA256: sha256, Path: path})
	if err != nil {
		return DedupChallenge{}, err
	}
	var out DedupChallenge
	err = c.doJSON(ctx, &request{method: http.MethodPost, target: APIPrefix + "/dedup/challenge", body: body,
		contentLength: n, contentType: contentTypeJSON, auth: true, idempotent: true}, &out)
	return out, err
}

// DedupProve answers a challenge (POST /dedup/prove). On a match it returns
// a new uid sharing the stored content; a 403 (wrong proof, or no such
// content) means: upload the bytes.
func (c *Client) DedupProve(ctx context.Context, challenge, proof string) (ResumeResult, error) {
	body, n, err := jsonBody(dedupProveRequest{Challenge: challenge, Proof: proof})
	if err != nil {
		return ResumeResult{}, err
	}
	var out ResumeResult
	// Not idempotent: a match mints a uid, and a challenge is single-use.
	err = c.doJSON(ctx, &request{method: http.MethodPost, target: APIPrefix + "/dedup/prove", body: body,
		contentLength: n, contentType: contentTypeJSON, auth: true}, &out)
	return out, err
}

// LinkUpload creates one uid per path and returns signed upload links in
// request order (POST /link/upload, at most MaxLinkUploadPaths). expire 0
// means the server default; the server caps it.
func (c *Client) LinkUpload(ctx context.Context, paths []string, expire time.Duration) ([]UploadLink, error) {
	if len(paths) == 0 || len(paths) > MaxLinkUploadPaths {
		return nil, fmt.Errorf("%w: link/upload takes 1..%d paths, got %d", ErrInvalid, MaxLinkUploadPaths, len(paths))
	}
	body, n, err := jsonBody(linkUploadRequest{FilePath: paths, Expire: int64(expire / time.Second)})
	if err != nil {
		return nil, err
	}
	var out []UploadLink
	// Not idempotent: every call mints new uids.
	err = c.doJSON(ctx, &request{method: http.MethodPost, target: APIPrefix + "/link/upload", body: body,
		contentLength: n, contentType: contentTypeJSON, auth: true}, &out)
	if err != nil {
		return nil, err
	}
	if len(out) != len(paths) {
		return nil, fmt.Errorf("%w: link/upload: %d links for %d paths", ErrProtocol, len(out), len(paths))
	}
	return out, nil
}

// LinkDownload returns signed download links in request order (POST
// /link/download, at most MaxLinkDownloadUIDs). Unknown or incomplete uids
// come back with an empty URL rather than failing the batch.
func (c *Client) LinkDownload(ctx context.Context, uids []string, expire time.Duration) ([]DownloadLink, error) {
	if len(uids) == 0 || len(uids) > MaxLinkDownloadUIDs {
		return nil, fmt.Errorf("%w: link/download takes 1..%d uids, got %d", ErrInvalid, MaxLinkDownloadUIDs, len(uids))
	}
	body, n, err := jsonBody(linkDownloadRequest{UID: uids, Expire: int64(expire / time.Second)})
	if err != nil {
		return nil, err
	}
	var out []DownloadLink
	// Signing links changes nothing, so it is safe to repeat.
	err = c.doJSON(ctx, &request{method: http.MethodPost, target: APIPrefix + "/link/download", body: body,
		contentLength: n, contentType: contentTypeJSON, auth: true, idempotent: true}, &out)
	if err != nil {
		return nil, err
	}
	if len(out) != len(uids) {
		return nil, fmt.Errorf("%w: link/download: %d links for %d uids", ErrProtocol, len(out), len(uids))
	}
	return out, nil
}

// UploadOptions tunes Upload.
type UploadOptions struct {
	// Multipart sends osproxy's multipart/form-data form (field "file")
	// instead of a raw application/octet-stream body. The form is produced
	// through a pipe, so nothing is buffered whole, but the request has no
	// Content-Length and cannot be retried.
	Multipart bool
	// Filename is the form's file name when Multipart is set.
	Filename string
}

// Upload sends a whole file to a signed single-upload link (PUT /upload).
// link is the "single" URL from LinkUpload (relative or absolute); md5 is
// the lowercase hex md5 of body, which must yield exactly size bytes. If
// body is an io.Seeker the call is retried on transient failures.
func (c *Client) Upload(ctx context.Context, link, md5hex string, body io.Reader, size int64, opts UploadOptions) error {
	r := &request{method: http.MethodPut, target: link, query: url.Values{"md5": {md5hex}}, idempotent: true}
	if opts.Multipart {
		name := opts.Filename
		if name == "" {
			name = defaultMultipartName
		}
		var ctype string
		r.body, ctype = multipartBody(body, name)
		r.contentType = ctype
		r.contentLength = -1
	} else {
		r.body = sizedBody(body, size)
		r.contentLength = size
		r.contentType = contentTypeOctet
	}
	return c.doJSON(ctx, r, nil)
}

// multipartBody streams body as the "file" field of a multipart form
// through a pipe; it can be sent once.
func multipartBody(body io.Reader, filename string) (bodySource, string) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	started := false
	return func() (io.Reader, error) {
		if started {
			return nil, errNoRewind
		}
		started = true
		go func() {
			fw, err := mw.CreateFormFile("file", filename)
			if err == nil && body != nil {
				_, err = io.Copy(fw, body)
			}
			if err == nil {
				err = mw.Close()
			}
			pw.CloseWithError(err)
		}()
		return pr, nil
	}, mw.FormDataContentType()
}

// sizedBody sends exactly the first size bytes of body, replayable when
// body is an io.ReadSeeker.
func sizedBody(body io.Reader, size int64) bodySource {
	if body == nil {
		body = strings.NewReader("")
	}
	if s, ok := body.(io.ReadSeeker); ok {
		return readerBody(&limitedSeeker{rs: s, n: size})
	}
	return readerBody(io.LimitReader(body, size))
}

// limitedSeeker reads at most n bytes from rs starting at the offset rs had
// when it was wrapped; seeking back to the start rewinds both.
type limitedSeeker struct {
	rs    io.ReadSeeker
	n     int64
	read  int64
	start int64
	init  bool
}

func (l *limitedSeeker) Read(p []byte) (int, error) {
	if l.read >= l.n {
		return 0, io.EOF
	}
	if int64(len(p)) > l.n-l.read {
		p = p[:l.n-l.read]
	}
	n, err := l.rs.Read(p)
	l.read += int64(n)
	return n, err
}

func (l *limitedSeeker) Seek(off int64, whence int) (int64, error) {
	if !l.init {
		s, err := l.rs.Seek(0, io.SeekCurrent)
		if err != nil {
			return 0, err
		}
		l.start, l.init = s, true
	}
	switch {
	case whence == io.SeekCurrent && off == 0:
		return l.read, nil
	case whence == io.SeekStart && off >= 0 && off <= l.n:
		if _, err := l.rs.Seek(l.start+off, io.SeekStart); err != nil {
			return 0, err
		}
		l.read = off
		return off, nil
	}
	return 0, fmt.Errorf("client: unsupported seek %d/%d", off, whence)
}

// UploadChunk sends chunk number chunkNum (1-based) to a signed chunk-upload
// link (PUT /upload/multi). md5 is the lowercase hex md5 of the chunk, which
// must yield exactly size bytes. Re-sending the same chunk is a no-op on
// the server, so the call is retried when body is an io.Seeker.
func (c *Client) UploadChunk(ctx context.Context, link string, chunkNum int, md5hex string, body io.Reader, size int64) error {
	if chunkNum < 1 {
		return fmt.Errorf("%w: chunk numbers start at 1, got %d", ErrInvalid, chunkNum)
	}
	r := &request{method: http.MethodPut, target: link, idempotent: true,
		query:         url.Values{"md5": {md5hex}, "chunkNum": {strconv.Itoa(chunkNum)}},
		contentLength: size, contentType: contentTypeOctet}
	r.body = sizedBody(body, size)
	return c.doJSON(ctx, r, nil)
}

// Merge declares a chunked upload complete (PUT /upload/merge): chunks
// 1..num must be stored and add up to size bytes; md5 is the whole file's.
// It returns an error matching ErrConflict if chunks are missing (nothing
// is deleted; upload them and merge again). Merging twice is idempotent.
func (c *Client) Merge(ctx context.Context, link, md5hex string, num int, size int64) error {
	return c.doJSON(ctx, &request{method: http.MethodPut, target: link, idempotent: true,
		query: url.Values{"md5": {md5hex}, "num": {strconv.Itoa(num)}, "size": {strconv.FormatInt(size, 10)}}}, nil)
}

// Checkpoint returns the sorted chunk numbers already stored for an
// in-progress upload (GET /checkpoint). It returns an error matching
// ErrNotFound for an unknown uid.
func (c *Client) Checkpoint(ctx context.Context, uid string) ([]int, error) {
	var out []int
	err := c.doJSON(ctx, &request{method: http.MethodGet, target: APIPrefix + "/checkpoint",
		query: url.Values{"uid": {uid}}, auth: true, idempotent: true}, &out)
	return out, err
}

// Proxy returns the HTTP addresses of the nodes holding a uid's staged
// data (GET /proxy, kept for osproxy compatibility).
func (c *Client) Proxy(ctx context.Context, uid string) ([]string, error) {
	var out []string
	err := c.doJSON(ctx, &request{method: http.MethodGet, target: APIPrefix + "/proxy",
		query: url.Values{"uid": {uid}}, auth: true, idempotent: true}, &out)
	return out, err
}

// DownloadOptions tunes Download.
type DownloadOptions struct {
	// Offset starts the download at this byte (Range: bytes=Offset-).
	// Ignored when Range is set.
	Offset int64
	// Range is a raw Range header value, e.g. "bytes=-100".
	Range string
	// IfRange is sent as If-Range (an ETag), so a changed file is sent
	// whole (200) instead of a mismatched tail.
	IfRange string
	// Head sends HEAD instead of GET.
	Head bool
	// ChunkSums asks for the xxhash64 sums of the chunks the answer
	// overlaps (X-Osprey-Chunk-Sums, in Download.Header).
	ChunkSums bool
}

// Download is an open download. The caller MUST Close Body.
type Download struct {
	Body      io.ReadCloser
	Status    int         // 200 or 206
	Header    http.Header // reply headers
	Length    int64       // bytes in Body (-1 if unknown)
	Start     int64       // offset of Body's first byte in the file
	Total     int64       // size of the whole file (-1 if unknown)
	ETag      string      // ETag header as sent (quoted)
	RequestID string
	Partial   bool // true for 206
	// ContentDisposition is the Content-Disposition header.
	ContentDisposition string
}

// Close closes the body.
func (d *Download) Close() error { return d.Body.Close() }

// Download opens a signed download link (GET /download), optionally for a
// range. link is relative or absolute. A 416 is returned as an error
// matching ErrRangeNotSatisfiable. For a 206 Start/Total come from
// Content-Range; for a 200 Start is 0.
func (c *Client) Download(ctx context.Context, link string, opts DownloadOptions) (*Download, error) {
	h := http.Header{}
	switch {
	case opts.Range != "":
		h.Set("Range", opts.Range)
	case opts.Offset > 0:
		h.Set("Range", "bytes="+strconv.FormatInt(opts.Offset, 10)+"-")
	}
	if opts.IfRange != "" && h.Get("Range") != "" {
		h.Set("If-Range", opts.IfRange)
	}
	if opts.ChunkSums {
		h.Set(headerChunkSums, "xxh64")
	}
	method := http.MethodGet
	if opts.Head {
		method = http.MethodHead
	}
	resp, err := c.do(ctx, &request{method: method, target: link, header: h, idempotent: true})
	if err != nil {
		return nil, err
	}
	d := &Download{Body: resp.Body, Status: resp.StatusCode, Header: resp.Header, Length: resp.ContentLength,
		Total: -1, ETag: resp.Header.Get("ETag"), RequestID: resp.Header.Get("X-Request-Id"),
		ContentDisposition: resp.Header.Get("Content-Disposition")}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		d.Partial = true
		start, end, total, err := ParseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			resp.Body.Close()
			return nil, err
		}
		d.Start, d.Total = start, total
		if d.Length < 0 {
			d.Length = end - start + 1
		}
	default:
		d.Total = resp.ContentLength
	}
	return d, nil
}

// ParseContentRange parses "bytes a-b/total" (total may be "*", giving -1).
func ParseContentRange(v string) (start, end, total int64, err error) {
	bad := func() (int64, int64, int64, error) {
		return 0, 0, 0, fmt.Errorf("%w: bad Content-Range %q", ErrProtocol, v)
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !ok {
		return bad()
	}
	rng, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return bad()
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return bad()
	}
	if start, err = strconv.ParseInt(a, 10, 64); err != nil || start < 0 {
		return bad()
	}
	if end, err = strconv.ParseInt(b, 10, 64); err != nil || end < start {
		return bad()
	}
	if tot == "*" {
		return start, end, -1, nil
	}
	if total, err = strconv.ParseInt(tot, 10, 64); err != nil || total <= end {
		return bad()
	}
	return start, end, total, nil
}

// Object returns the metadata of uid (GET /object). It returns an error
// matching ErrNotFound for an unknown uid.
func (c *Client) Object(ctx context.Context, uid string) (*Object, error) {
	var out Object
	err := c.doJSON(ctx, &request{method: http.MethodGet, target: APIPrefix + "/object",
		query: url.Values{"uid": {uid}}, auth: true, idempotent: true}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteObject deletes uid (DELETE /object). Content shared with dedup
// aliases is kept until its last reference goes. It returns an error
// matching ErrNotFound for an unknown uid.
func (c *Client) DeleteObject(ctx context.Context, uid string) error {
	return c.doJSON(ctx, &request{method: http.MethodDelete, target: APIPrefix + "/object",
		query: url.Values{"uid": {uid}}, auth: true, idempotent: true}, nil)
}

// Objects returns one page of the object listing (GET /objects). cursor ""
// starts at the beginning; limit 0 means the server default.
func (c *Client) Objects(ctx context.Context, cursor string, limit int) (*ObjectPage, error) {
	q := url.Values{}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out ObjectPage
	err := c.doJSON(ctx, &request{method: http.MethodGet, target: APIPrefix + "/objects",
		query: q, auth: true, idempotent: true}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}
