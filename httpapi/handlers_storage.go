package httpapi

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/julienschmidt/httprouter"

	"github.com/osprey-storage/osprey"
)

const (
	maxLinkItems     = 50
	maxDownloadItems = 200
	maxResumeItems   = 50
	maxJSONBody      = 1 << 20
)

var md5Re = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)

func (s *Server) storageRoutes() {
	p := Prefix
	// Scoped API keys reach these (read, write); what they may name and
	// which uids they see is checked by the handlers (names) and the
	// storage (a key sees its own tenant's files only).
	s.handle(http.MethodPost, p+"/resume", write, s.redirectable(s.handleResume))
	if s.cfg.Dedup != nil {
		s.handle(http.MethodPost, p+"/dedup/challenge", write, s.handleDedupChallenge)
		s.handle(http.MethodPost, p+"/dedup/prove", write, s.redirectable(s.handleDedupProve))
	}
	s.handle(http.MethodGet, p+"/checkpoint", read, s.handleCheckpoint)
	s.handle(http.MethodPost, p+"/link/upload", write, s.redirectable(s.handleLinkUpload))
	s.handle(http.MethodPost, p+"/link/download", read, s.handleLinkDownload)
	s.handle(http.MethodGet, p+"/proxy", read, s.handleProxy)
	s.handle(http.MethodPut, p+"/upload", signed, s.handleUpload)
	s.handle(http.MethodPut, p+"/upload/multi", signed, s.handleUploadChunk)
	s.handle(http.MethodPut, p+"/upload/merge", signed, s.redirectable(s.handleMerge))
	s.handle(http.MethodGet, p+"/download", open, s.handleDownload)
	s.handle(http.MethodHead, p+"/download", open, s.handleDownload)
	s.handle(http.MethodGet, p+"/object", read, s.handleObject)
	s.handle(http.MethodDelete, p+"/object", write, s.redirectable(s.handleDeleteObject))
	s.handle(http.MethodGet, p+"/objects", read, s.handleObjects)

	s.handle(http.MethodPut, "/internal/v1/chunks/:blob/:num/:shard", node, s.handleChunkPut)
	s.handle(http.MethodGet, "/internal/v1/chunks/:blob/:num/:shard", node, s.handleChunkGet)
	s.handle(http.MethodHead, "/internal/v1/chunks/:blob/:num/:shard", node, s.handleChunkHead)
	s.handle(http.MethodDelete, "/internal/v1/chunks/:blob/:num/:shard", node, s.handleChunkDelete)
}

// queryUID parses the uid query parameter.
func queryUID(q url.Values) (osprey.UID, error) {
	v := q.Get("uid")
	if v == "" {
		return 0, invalidf("uid is required")
	}
	uid, err := osprey.ParseUID(v)
	if err != nil {
		return 0, invalidf("uid %q is not a positive decimal number", v)
	}
	return uid, nil
}

func queryMD5(q url.Values) (string, error) {
	v := q.Get("md5")
	if v == "" {
		return "", invalidf("md5 is required")
	}
	if !md5Re.MatchString(v) {
		return "", invalidf("md5 %q is not 32 hex digits", v)
	}
	return strings.ToLower(v), nil
}

// queryPage parses a listing's optional cursor (a uid) and limit (1-1000,
// def when absent).
func queryPage(q url.Values, def int64) (osprey.UID, int64, error) {
	var cursor osprey.UID
	if v := q.Get("cursor"); v != "" {
		var err error
		if cursor, err = osprey.ParseUID(v); err != nil {
			return 0, 0, invalidf("cursor %q is not a uid", v)
		}
	}
	if q.Get("limit") == "" {
		return cursor, def, nil
	}
	limit, err := queryInt(q, "limit", 1, 1000)
	return cursor, limit, err
}

func queryInt(q url.Values, name string, min, max int64) (int64, error) {
	v := q.Get(name)
	if v == "" {
		return 0, invalidf("%s is required", name)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, invalidf("%s %q is not a number", name, v)
	}
	if n < min || n > max {
		return 0, invalidf("%s must be between %d and %d, got %d", name, min, max, n)
	}
	return n, nil
}

func (s *Server) expiry(req int64) (time.Duration, error) {
	switch {
	case req < 0:
		return 0, invalidf("expire must be ≥ 0 seconds")
	case req == 0:
		return s.cfg.Limits.DefaultExpiry, nil
	}
	d := time.Duration(req) * time.Second
	if d > s.cfg.Limits.MaxExpiry || req > int64(s.cfg.Limits.MaxExpiry/time.Second) {
		d = s.cfg.Limits.MaxExpiry
	}
	return d, nil
}

// --- /resume ---

type resumeRequest struct {
	Data []struct {
		MD5  string `json:"md5"`
		Path string `json:"path"`
	} `json:"data"`
}

type resumeReply struct {
	MD5 string `json:"md5"`
	UID string `json:"uid"`
}

func (s *Server) handleResume(w http.ResponseWriter, r *http.Request) {
	var req resumeRequest
	if err := decodeJSON(r, maxJSONBody, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(req.Data) == 0 || len(req.Data) > maxResumeItems {
		s.writeError(w, r, invalidf("data must hold 1 to %d items, got %d", maxResumeItems, len(req.Data)))
		return
	}
	items := make([]ResumeItem, len(req.Data))
	for i, d := range req.Data {
		if !md5Re.MatchString(d.MD5) {
			s.writeError(w, r, invalidf("data[%d].md5 %q is not 32 hex digits", i, d.MD5))
			return
		}
		b, err := bucketOf(d.Path)
		if err != nil {
			s.writeError(w, r, invalidf("data[%d].path: %v", i, err))
			return
		}
		if err := nameInScope(r, d.Path); err != nil {
			s.writeError(w, r, fmt.Errorf("data[%d].path: %w", i, err))
			return
		}
		items[i] = ResumeItem{MD5: strings.ToLower(d.MD5), Name: d.Path, Bucket: b}
	}
	uids := make([]osprey.UID, len(items))
	if !s.cfg.NoResumeMD5 {
		var err error
		if uids, err = s.cfg.Storage.Resume(r.Context(), items); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	out := make([]resumeReply, len(items))
	for i, it := range items {
		out[i] = resumeReply{MD5: it.MD5}
		if uids[i] != 0 {
			out[i].UID = uids[i].String()
		}
	}
	writeOK(w, r, out)
}

// --- /dedup ---

var sha256Re = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

type dedupChallengeRequest struct {
	MD5    string `json:"md5"`
	Size   *int64 `json:"size"`
	SHA256 string `json:"sha256"`
	Path   string `json:"path"`
}

func (s *Server) handleDedupChallenge(w http.ResponseWriter, r *http.Request) {
	var req dedupChallengeRequest
	if err := decodeJSON(r, maxJSONBody, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	switch {
	case !md5Re.MatchString(req.MD5):
		s.writeError(w, r, invalidf("md5 %q is not 32 hex digits", req.MD5))
		return
	case !sha256Re.MatchString(req.SHA256):
		s.writeError(w, r, invalidf("sha256 %q is not 64 hex digits", req.SHA256))
		return
	case req.Size == nil || *req.Size < 0:
		s.writeError(w, r, invalidf("size is required and must be ≥ 0"))
		return
	}
	b, err := bucketOf(req.Path)
	if err != nil {
		s.writeError(w, r, invalidf("path: %v", err))
		return
	}
	if err := nameInScope(r, req.Path); err != nil {
		s.writeError(w, r, err)
		return
	}
	ch, err := s.cfg.Dedup.DedupChallenge(r.Context(), DedupClaim{MD5: strings.ToLower(req.MD5), Size: *req.Size,
		SHA256: strings.ToLower(req.SHA256), Name: req.Path, Bucket: b})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeOK(w, r, ch)
}

type dedupProveRequest struct {
	Challenge string `json:"challenge"`
	Proof     string `json:"proof"`
}

func (s *Server) handleDedupProve(w http.ResponseWriter, r *http.Request) {
	var req dedupProveRequest
	if err := decodeJSON(r, maxJSONBody, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Challenge == "" || req.Proof == "" {
		s.writeError(w, r, invalidf("challenge and proof are required"))
		return
	}
	md5, uid, err := s.cfg.Dedup.DedupProve(r.Context(), req.Challenge, strings.ToLower(req.Proof))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := resumeReply{MD5: md5}
	if uid != 0 {
		out.UID = uid.String()
	}
	writeOK(w, r, out)
}

func bucketOf(p string) (string, error) {
	if strings.TrimSpace(p) == "" {
		return "", errors.New("path is empty")
	}
	if len(p) > 1024 {
		return "", errors.New("path longer than 1024 bytes")
	}
	if err := checkName(p); err != nil {
		return "", err
	}
	return osprey.BucketFor(p)
}

// nameInScope refuses a name outside the prefixes of the request's scoped
// API key.
func nameInScope(r *http.Request, name string) error {
	if p := osprey.PrincipalFrom(r.Context()); !p.AllowsName(name) {
		return fmt.Errorf("%w: API key %s may only name files under %q", osprey.ErrForbidden, p.KeyID, p.Prefixes)
	}
	return nil
}

// checkName refuses names no backend can store or a download header can
// carry: invalid UTF-8, control characters (C0, DEL, C1) and Unicode
// non-characters. Such a name used to be accepted and then could never be
// tiered.
func checkName(p string) error {
	if !utf8.ValidString(p) {
		return errors.New("path is not valid UTF-8")
	}
	for i, r := range p {
		switch {
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return fmt.Errorf("path has a control character (U+%04X) at byte %d", r, i)
		case r == 0xfffe || r == 0xffff || (r >= 0xfdd0 && r <= 0xfdef):
			return fmt.Errorf("path has a Unicode non-character (U+%04X) at byte %d", r, i)
		}
	}
	return nil
}

// --- /link/upload ---

type linkUploadRequest struct {
	FilePath []string `json:"filePath"`
	Expire   int64    `json:"expire"`
}

type linkUploadReply struct {
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

func (s *Server) handleLinkUpload(w http.ResponseWriter, r *http.Request) {
	var req linkUploadRequest
	if err := decodeJSON(r, maxJSONBody, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(req.FilePath) == 0 || len(req.FilePath) > maxLinkItems {
		s.writeError(w, r, invalidf("filePath must hold 1 to %d paths, got %d", maxLinkItems, len(req.FilePath)))
		return
	}
	exp, err := s.expiry(req.Expire)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	items := make([]NewFile, len(req.FilePath))
	for i, p := range req.FilePath {
		b, err := bucketOf(p)
		if err != nil {
			s.writeError(w, r, invalidf("filePath[%d]: %v", i, err))
			return
		}
		if err := nameInScope(r, p); err != nil {
			s.writeError(w, r, fmt.Errorf("filePath[%d]: %w", i, err))
			return
		}
		items[i] = NewFile{Name: p, Bucket: b}
	}
	secret, err := s.cfg.Storage.LinkSecret()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	uids, err := s.cfg.Storage.CreateFiles(r.Context(), items)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	now := time.Now()
	out := make([]linkUploadReply, len(uids))
	for i, uid := range uids {
		q := signUpload(secret, uid, now, exp).Encode()
		out[i].UID, out[i].Path = uid.String(), req.FilePath[i]
		out[i].URL.Single = Prefix + "/upload?" + q
		out[i].URL.Multi.Upload = Prefix + "/upload/multi?" + q
		out[i].URL.Multi.Merge = Prefix + "/upload/merge?" + q
	}
	writeOK(w, r, out)
}

// --- uploads (authorised by the link signature) ---

func (s *Server) verifyUpload(r *http.Request) (osprey.UID, url.Values, error) {
	q := r.URL.Query()
	uid, err := queryUID(q)
	if err != nil {
		return 0, q, err
	}
	secret, err := s.cfg.Storage.LinkSecret()
	if err != nil {
		return 0, q, err
	}
	if err := verifyLink(secret, q, uploadFields(q.Get("uid"), q.Get("date"), q.Get("expire")), time.Now(), s.cfg.Limits.ClockSkew); err != nil {
		return 0, q, err
	}
	return uid, q, nil
}

// uploadBody returns the upload's bytes: the multipart field "file"
// (osproxy's form) or the raw body.
func uploadBody(r *http.Request) (io.Reader, error) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "multipart/form-data" {
		return r.Body, nil
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, invalidf("multipart body: %v", err)
	}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return nil, invalidf("multipart body has no field \"file\"")
		}
		if err != nil {
			return nil, toTooLarge(invalidf("multipart body: %v", err), err)
		}
		if part.FormName() == "file" {
			return part, nil
		}
		part.Close()
	}
}

// isMultipart reports whether r carries osproxy's multipart form.
func isMultipart(r *http.Request) bool {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return ct == "multipart/form-data"
}

// limitBody caps the file bytes themselves, framing aside: reading past
// limit fails with an *http.MaxBytesError, which toTooLarge maps to 413.
// idleBody ends the request when its client sends no body bytes for
// Limits.BodyIdleTimeout: each Read runs under a connection read deadline
// that is cleared again after it, so waiting on raft or on peers after the
// body was read is not limited by it.
func (s *Server) idleBody(w http.ResponseWriter, body io.ReadCloser) io.ReadCloser {
	idle := s.cfg.Limits.BodyIdleTimeout
	if idle <= 0 {
		return body
	}
	return &idleReader{ReadCloser: body, rc: http.NewResponseController(w), idle: idle}
}

type idleReader struct {
	io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	armed := r.rc.SetReadDeadline(time.Now().Add(r.idle)) == nil
	n, err := r.ReadCloser.Read(p)
	if armed {
		_ = r.rc.SetReadDeadline(time.Time{})
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("%w: the client sent no body bytes for %s", osprey.ErrTimeout, r.idle)
	}
	return n, err
}

// uploadSlot takes one of the client's upload slots (Limits.
// MaxUploadsPerClient). Node-to-node calls are not capped: a node relays
// many clients' work.
func (s *Server) uploadSlot(r *http.Request) (func(), error) {
	if s.validNodeAuth(r) {
		return func() {}, nil
	}
	return s.uploads.acquire(r)
}

func limitBody(body io.Reader, limit int64) io.Reader {
	return http.MaxBytesReader(nil, io.NopCloser(body), limit)
}

// toTooLarge turns a MaxBytesReader error into a 413.
func toTooLarge(orig, err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return fmt.Errorf("%w: body larger than %d bytes", osprey.ErrTooLarge, mbe.Limit)
	}
	return orig
}

func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	uid, q, err := s.verifyUpload(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	release, err := s.uploadSlot(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer release()
	md5, err := queryMD5(q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	limit := s.cfg.Limits.MaxUploadSize
	framing := int64(0)
	if isMultipart(r) {
		framing = 1 << 20 // multipart framing adds a little
	}
	if r.ContentLength > limit+framing {
		s.writeError(w, r, fmt.Errorf("%w: body of %d bytes exceeds the %d-byte upload limit", osprey.ErrTooLarge, r.ContentLength, limit))
		return
	}
	r.Body = s.idleBody(w, http.MaxBytesReader(w, r.Body, limit+framing))
	body, err := uploadBody(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	size := r.ContentLength // a multipart form's framing is not part of the file
	if isMultipart(r) {
		size = -1
	}
	info, err := s.cfg.Storage.Upload(r.Context(), uid, limitBody(body, limit), size, md5)
	if err != nil {
		s.writeError(w, r, toTooLarge(err, err))
		return
	}
	writeOK(w, r, info)
}

func (s *Server) handleUploadChunk(w http.ResponseWriter, r *http.Request) {
	uid, q, err := s.verifyUpload(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	release, err := s.uploadSlot(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer release()
	md5, err := queryMD5(q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	num, err := queryInt(q, "chunkNum", 1, 1<<31-1)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	max := s.cfg.Limits.MaxChunkSize
	if r.ContentLength > max+1<<20 {
		s.writeError(w, r, fmt.Errorf("%w: chunk body of %d bytes exceeds the %d-byte chunk limit", osprey.ErrTooLarge, r.ContentLength, max))
		return
	}
	r.Body = s.idleBody(w, http.MaxBytesReader(w, r.Body, max+1<<20))
	size := r.ContentLength
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "multipart/form-data" {
		size = -1
	}
	if size > max {
		s.writeError(w, r, fmt.Errorf("%w: chunk of %d bytes exceeds the %d-byte chunk limit", osprey.ErrTooLarge, size, max))
		return
	}
	body, err := uploadBody(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.cfg.Storage.UploadChunk(r.Context(), uid, uint32(num), limitBody(body, max), size, md5); err != nil {
		s.writeError(w, r, toTooLarge(err, err))
		return
	}
	writeOK(w, r, map[string]any{"uid": uid.String(), "chunkNum": num})
}

func (s *Server) handleMerge(w http.ResponseWriter, r *http.Request) {
	uid, q, err := s.verifyUpload(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	md5, err := queryMD5(q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	num, err := queryInt(q, "num", 1, 1<<31-1)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	size, err := queryInt(q, "size", 0, 1<<62)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	info, err := s.cfg.Storage.Merge(r.Context(), uid, uint32(num), size, md5)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeOK(w, r, info)
}

// --- /checkpoint, /proxy, object management ---

func (s *Server) handleCheckpoint(w http.ResponseWriter, r *http.Request) {
	uid, err := queryUID(r.URL.Query())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	nums, err := s.cfg.Storage.Checkpoint(r.Context(), uid)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if nums == nil {
		nums = []uint32{}
	}
	writeOK(w, r, nums)
}

func (s *Server) handleProxy(w http.ResponseWriter, r *http.Request) {
	uid, err := queryUID(r.URL.Query())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	addrs, err := s.cfg.Storage.Locate(r.Context(), uid)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeOK(w, r, addrs)
}

func (s *Server) handleObject(w http.ResponseWriter, r *http.Request) {
	uid, err := queryUID(r.URL.Query())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	info, err := s.cfg.Storage.Stat(r.Context(), uid)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeOK(w, r, info)
}

func (s *Server) handleDeleteObject(w http.ResponseWriter, r *http.Request) {
	uid, err := queryUID(r.URL.Query())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.cfg.Storage.Delete(r.Context(), uid); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeOK(w, r, map[string]string{"uid": uid.String()})
}

func (s *Server) handleObjects(w http.ResponseWriter, r *http.Request) {
	cursor, limit, err := queryPage(r.URL.Query(), 100)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	items, next, err := s.cfg.Storage.List(r.Context(), cursor, int(limit))
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

// --- internal chunk transfer ---

func chunkRef(r *http.Request) (ChunkRef, error) {
	p := httprouter.ParamsFromContext(r.Context())
	blob, err1 := strconv.ParseUint(p.ByName("blob"), 10, 64)
	num, err2 := strconv.ParseUint(p.ByName("num"), 10, 32)
	shard, err3 := strconv.ParseUint(p.ByName("shard"), 10, 16)
	if err := errors.Join(err1, err2, err3); err != nil {
		return ChunkRef{}, invalidf("chunk reference: %v", err)
	}
	return ChunkRef{Blob: blob, Num: uint32(num), Shard: uint16(shard)}, nil
}

// copyOrigin parses a chunk request's origin parameter: absent (a build
// that predates it, or a recorded copy) or "recorded", or "upload".
func copyOrigin(r *http.Request) (CopyOrigin, error) {
	switch v := r.URL.Query().Get("origin"); v {
	case "", CopyRecorded.String():
		return CopyRecorded, nil
	case CopyUpload.String():
		return CopyUpload, nil
	default:
		return 0, invalidf("origin %q is not %q or %q", v, CopyRecorded, CopyUpload)
	}
}

func (s *Server) handleChunkPut(w http.ResponseWriter, r *http.Request) {
	ref, err := chunkRef(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if r.ContentLength < 0 {
		s.writeError(w, r, invalidf("Content-Length is required"))
		return
	}
	origin, err := copyOrigin(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sum, err := s.cfg.Storage.PutLocalChunk(r.Context(), ref, r.Body, r.ContentLength, origin)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeOK(w, r, strconv.FormatUint(sum, 10))
}

func (s *Server) handleChunkGet(w http.ResponseWriter, r *http.Request) {
	ref, err := chunkRef(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	off, n := int64(0), int64(-1)
	if v := q.Get("off"); v != "" {
		if off, err = strconv.ParseInt(v, 10, 64); err != nil || off < 0 {
			s.writeError(w, r, invalidf("off %q is not a non-negative number", v))
			return
		}
	}
	if v := q.Get("n"); v != "" {
		if n, err = strconv.ParseInt(v, 10, 64); err != nil || n < -1 {
			s.writeError(w, r, invalidf("n %q is not a number ≥ -1", v))
			return
		}
	}
	rc, length, err := s.cfg.Storage.GetLocalChunk(r.Context(), ref, off, n)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(length, 10))
	w.WriteHeader(http.StatusOK)
	// A checksum failure mid-stream aborts the response: the reader sees a
	// short body and falls back to another copy.
	if _, err := io.Copy(w, rc); err != nil {
		s.log.Warn("chunk stream aborted", "chunk", ref, "err", err)
		panic(http.ErrAbortHandler)
	}
}

// handleChunkHead reports the generation of the local copy in a header (a
// HEAD reply has no body); a missing copy is 404.
func (s *Server) handleChunkHead(w http.ResponseWriter, r *http.Request) {
	ref, err := chunkRef(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	gen, err := s.cfg.Storage.LocalChunkGen(r.Context(), ref)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set(HeaderChunkGen, strconv.FormatUint(gen, 10))
	w.WriteHeader(http.StatusOK)
}

func (s *Server) handleChunkDelete(w http.ResponseWriter, r *http.Request) {
	ref, err := chunkRef(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	origin, err := copyOrigin(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var gen uint64
	if v := r.URL.Query().Get("gen"); v != "" {
		if gen, err = strconv.ParseUint(v, 10, 64); err != nil || gen == 0 {
			s.writeError(w, r, invalidf("gen %q is not a positive number", v))
			return
		}
		if origin == CopyUpload {
			s.writeError(w, r, invalidf("gen does not go with origin %q", origin))
			return
		}
	}
	if err := s.cfg.Storage.DeleteLocalChunk(r.Context(), ref, origin, gen); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeOK(w, r, nil)
}

// contentType guesses a MIME type from the file name.
func contentType(name string) string {
	if t := mime.TypeByExtension(strings.ToLower(path.Ext(name))); t != "" {
		return t
	}
	return "application/octet-stream"
}
