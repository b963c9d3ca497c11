package s3api

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	// MinPartSize is the minimum size of every multipart part but the last.
	MinPartSize = 5 << 20
	// MaxPutSize is the largest single PUT (object or part).
	MaxPutSize = 5 << 30
	// MaxKeyLength is the longest object key in bytes.
	MaxKeyLength = 1024
	maxXMLBody   = 4 << 20
	maxListKeys  = 1000
	maxParts     = 10000
	s3Namespace  = "http://s3.amazonaws.com/doc/2006-03-01/"
	ownerID      = "osprey"
	timeFormatS3 = "2006-01-02T15:04:05.000Z"
)

// handler is the S3 http.Handler.
type handler struct {
	b   Backend
	cfg Config
	log *slog.Logger
}

// NewHandler returns an http.Handler serving the S3 API over b. Empty
// Config fields get their defaults (see Config); call cfg.Validate first to
// reject a bad configuration. The handler is safe for concurrent use.
func NewHandler(b Backend, cfg Config) http.Handler {
	cfg = cfg.withDefaults()
	return &handler{b: b, cfg: cfg, log: cfg.Logger.With("component", "s3api")}
}

// req carries the parsed addressing of one request.
type req struct {
	bucket string
	key    string
	q      url.Values
	auth   *authInfo
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return strings.ToUpper(hex.EncodeToString(b[:]))
}

// ServeHTTP authenticates and dispatches one request.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := newRequestID()
	w.Header().Set("x-amz-request-id", id)
	w.Header().Set("x-amz-id-2", id)
	w.Header().Set("Server", "osprey")
	log := h.log.With("method", r.Method, "path", r.URL.Path, "request_id", id)
	r = r.WithContext(context.WithValue(r.Context(), loggerKey{}, log))
	log.Debug("request")

	rq := &req{q: r.URL.Query()}
	rq.bucket, rq.key = h.address(r)
	a, err := h.authenticate(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	rq.auth = a
	if err := h.dispatch(w, r, rq); err != nil {
		h.writeError(w, r, err)
	}
}

// virtualHostBucket returns the bucket a virtual-host-style request names
// in its Host, or "" for a path-style request.
func (h *handler) virtualHostBucket(r *http.Request) string {
	host := r.Host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		host = hh
	}
	host = strings.ToLower(host)
	for _, suf := range h.cfg.VirtualHostSuffixes {
		if b, ok := strings.CutSuffix(host, "."+strings.ToLower(suf)); ok && b != "" {
			return b
		}
	}
	return ""
}

// address splits the request into bucket and key, virtual-host style when
// the Host ends in one of the configured suffixes, path style otherwise.
func (h *handler) address(r *http.Request) (bucket, key string) {
	host := r.Host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		host = hh
	}
	host = strings.ToLower(host)
	path := strings.TrimPrefix(r.URL.Path, "/")
	for _, suf := range h.cfg.VirtualHostSuffixes {
		if b, ok := strings.CutSuffix(host, "."+strings.ToLower(suf)); ok && b != "" {
			return b, path
		}
	}
	bucket, key, _ = strings.Cut(path, "/")
	return bucket, key
}

// Sub-resources that select a different operation. Anything listed here but
// not handled by dispatch is answered with NotImplemented.
var subresources = []string{
	"accelerate", "acl", "analytics", "attributes", "cors", "delete", "encryption",
	"intelligent-tiering", "inventory", "legal-hold", "lifecycle", "location", "logging",
	"metrics", "notification", "object-lock", "ownershipControls", "partNumber", "policy",
	"policyStatus", "publicAccessBlock", "replication", "requestPayment", "restore",
	"retention", "select", "tagging", "torrent", "uploadId", "uploads", "versionId",
	"versioning", "versions", "website",
}

// sub returns the first sub-resource present in q, or "".
func sub(q url.Values) string {
	for _, s := range subresources {
		if q.Has(s) {
			return s
		}
	}
	return ""
}

func notImplemented(what string) error {
	return s3Err("NotImplemented", what+" is not implemented.")
}

func (h *handler) dispatch(w http.ResponseWriter, r *http.Request, rq *req) error {
	s := sub(rq.q)
	if rq.bucket == "" {
		if r.Method == http.MethodGet && s == "" {
			return h.handleListBuckets(w, r)
		}
		return notImplemented("This service-level operation")
	}
	if rq.key == "" {
		if !(r.Method == http.MethodPut && s == "") {
			// Only CreateBucket enforces the naming rules strictly; any
			// other name that cannot exist is simply not there.
			if validBucketName(rq.bucket) != nil {
				return ErrNoSuchBucket
			}
		}
		return h.dispatchBucket(w, r, rq, s)
	}
	if validBucketName(rq.bucket) != nil {
		return ErrNoSuchBucket
	}
	if len(rq.key) > MaxKeyLength {
		return s3Err("KeyTooLongError")
	}
	return h.dispatchObject(w, r, rq, s)
}

func (h *handler) dispatchBucket(w http.ResponseWriter, r *http.Request, rq *req, s string) error {
	switch r.Method {
	case http.MethodGet:
		switch s {
		case "":
			if rq.q.Get("list-type") == "2" {
				return h.handleListObjects(w, r, rq, 2)
			}
			return h.handleListObjects(w, r, rq, 1)
		case "location":
			return h.handleGetBucketLocation(w, r, rq)
		case "versioning":
			return h.handleBucketProbe(w, r, rq, "", `<VersioningConfiguration xmlns="`+s3Namespace+`"></VersioningConfiguration>`)
		case "acl":
			return h.handleBucketProbe(w, r, rq, "", cannedACL())
		case "lifecycle":
			return h.handleBucketProbe(w, r, rq, "NoSuchLifecycleConfiguration", "")
		case "policy":
			return h.handleBucketProbe(w, r, rq, "NoSuchBucketPolicy", "")
		case "cors":
			return h.handleBucketProbe(w, r, rq, "NoSuchCORSConfiguration", "")
		case "tagging":
			return h.handleBucketProbe(w, r, rq, "NoSuchTagSet", "")
		case "uploads":
			return h.handleListMultipartUploads(w, r, rq)
		}
	case http.MethodHead:
		if s == "" {
			return h.handleHeadBucket(w, r, rq)
		}
	case http.MethodPut:
		if s == "" {
			return h.handleCreateBucket(w, r, rq)
		}
	case http.MethodDelete:
		if s == "" {
			return h.handleDeleteBucket(w, r, rq)
		}
	case http.MethodPost:
		if s == "delete" {
			return h.handleDeleteObjects(w, r, rq)
		}
	}
	return notImplemented(fmt.Sprintf("Bucket operation %s ?%s", r.Method, s))
}

func (h *handler) dispatchObject(w http.ResponseWriter, r *http.Request, rq *req, s string) error {
	copySrc := r.Header.Get("X-Amz-Copy-Source")
	switch r.Method {
	case http.MethodGet:
		switch s {
		case "", "versionId", "partNumber":
			if err := noVersions(rq.q); err != nil {
				return err
			}
			if rq.q.Has("partNumber") {
				return notImplemented("GetObject with partNumber")
			}
			return h.handleGetObject(w, r, rq)
		case "uploadId":
			return h.handleListParts(w, r, rq)
		case "acl":
			if _, err := h.b.HeadObject(r.Context(), rq.bucket, rq.key); err != nil {
				return fmt.Errorf("head object for acl: %w", err)
			}
			return writeRawXML(w, http.StatusOK, cannedACL())
		}
	case http.MethodHead:
		if s == "" || s == "versionId" {
			if err := noVersions(rq.q); err != nil {
				return err
			}
			return h.handleHeadObject(w, r, rq)
		}
	case http.MethodPut:
		switch {
		case s == "" && copySrc != "":
			return h.handleCopyObject(w, r, rq, copySrc)
		case s == "":
			return h.handlePutObject(w, r, rq)
		case (s == "partNumber" || s == "uploadId") && rq.q.Has("partNumber") && rq.q.Has("uploadId"):
			if copySrc != "" {
				return h.handleUploadPartCopy(w, r, rq, copySrc)
			}
			return h.handleUploadPart(w, r, rq)
		}
	case http.MethodPost:
		switch s {
		case "uploads":
			return h.handleCreateMultipartUpload(w, r, rq)
		case "uploadId":
			return h.handleCompleteMultipartUpload(w, r, rq)
		}
	case http.MethodDelete:
		switch s {
		case "", "versionId":
			if err := noVersions(rq.q); err != nil {
				return err
			}
			return h.handleDeleteObject(w, r, rq)
		case "uploadId":
			return h.handleAbortMultipartUpload(w, r, rq)
		}
	}
	return notImplemented(fmt.Sprintf("Object operation %s ?%s", r.Method, s))
}

// noVersions accepts only the null version (versioning is not supported).
func noVersions(q url.Values) error {
	if v := q.Get("versionId"); v != "" && v != "null" {
		return notImplemented("Object versioning")
	}
	return nil
}

// validBucketName checks the S3 bucket naming rules for general purpose
// buckets.
func validBucketName(b string) error {
	bad := func(why string) error {
		return s3Err("InvalidBucketName", "The specified bucket is not valid: "+why+".")
	}
	if len(b) < 3 || len(b) > 63 {
		return bad("must be between 3 and 63 characters long")
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
			return bad("only lowercase letters, digits, dots and hyphens are allowed")
		}
	}
	isAlnum := func(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }
	if !isAlnum(b[0]) || !isAlnum(b[len(b)-1]) {
		return bad("must begin and end with a letter or digit")
	}
	if strings.Contains(b, "..") || strings.Contains(b, ".-") || strings.Contains(b, "-.") {
		return bad("adjacent periods or period-hyphen pairs are not allowed")
	}
	if ip := net.ParseIP(b); ip != nil && ip.To4() != nil {
		return bad("must not be formatted as an IP address")
	}
	for _, p := range []string{"xn--", "sthree-", "amzn-s3-demo-"} {
		if strings.HasPrefix(b, p) {
			return bad("must not start with " + p)
		}
	}
	for _, s := range []string{"-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"} {
		if strings.HasSuffix(b, s) {
			return bad("must not end with " + s)
		}
	}
	return nil
}

// ---- bodies ----

// objectBody returns a reader over the decoded, verified request body and
// its decoded size. Payload verification (x-amz-content-sha256, aws-chunked
// chunk signatures, Content-MD5) happens while the consumer reads; a
// failure surfaces as a read error no later than the last byte.
func objectBody(r *http.Request, a *authInfo) (io.Reader, int64, error) {
	var wantMD5 []byte
	if v := r.Header.Get("Content-MD5"); v != "" {
		d, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(d) != 16 {
			return nil, 0, s3Err("InvalidDigest")
		}
		wantMD5 = d
	}
	hdrSum := headerChecksum(r.Header)
	if isStreaming(a.payload) {
		v := r.Header.Get("X-Amz-Decoded-Content-Length")
		if v == "" {
			return nil, 0, s3Err("MissingContentLength", "x-amz-decoded-content-length is required with "+a.payload+".")
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, 0, s3Err("InvalidArgument", "Invalid x-amz-decoded-content-length.")
		}
		if n > MaxPutSize {
			return nil, 0, s3Err("EntityTooLarge")
		}
		var trailerSum *checksum
		if a.payload != streamingPayload {
			if trailerSum, err = trailerChecksum(r.Header); err != nil {
				return nil, 0, err
			}
		}
		var body io.Reader = newChunkedReader(r.Body, a, n, trailerSum)
		if wantMD5 != nil || hdrSum != nil {
			body = newVerifyingReader(body, n, nil, wantMD5, hdrSum)
		}
		return body, n, nil
	}
	n := r.ContentLength
	if n < 0 {
		return nil, 0, s3Err("MissingContentLength")
	}
	if n > MaxPutSize {
		return nil, 0, s3Err("EntityTooLarge")
	}
	var wantSHA []byte
	if isHexSHA256(a.payload) {
		wantSHA, _ = hex.DecodeString(a.payload)
	}
	return newVerifyingReader(r.Body, n, wantSHA, wantMD5, hdrSum), n, nil
}

// smallBody reads a bounded, verified request body (XML documents).
func smallBody(r *http.Request, a *authInfo) ([]byte, error) {
	if r.ContentLength > maxXMLBody {
		return nil, s3Err("MalformedXML", "Request body too large.")
	}
	if r.ContentLength < 0 && !isStreaming(a.payload) {
		// Chunked transfer without a declared size: read up to the limit.
		data, err := io.ReadAll(io.LimitReader(r.Body, maxXMLBody+1))
		if err != nil {
			return nil, fmt.Errorf("read body: %w", err)
		}
		if len(data) > maxXMLBody {
			return nil, s3Err("MalformedXML", "Request body too large.")
		}
		if isHexSHA256(a.payload) {
			if err := checkSHA(data, a.payload); err != nil {
				return nil, err
			}
		}
		return data, nil
	}
	body, n, err := objectBody(r, a)
	if err != nil {
		return nil, err
	}
	if n > maxXMLBody {
		return nil, s3Err("MalformedXML", "Request body too large.")
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(body, data); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, ErrIncompleteBody
		}
		return nil, err
	}
	return data, nil
}

func checkSHA(data []byte, want string) error {
	v := newVerifyingReader(strings.NewReader(string(data)), int64(len(data)), mustHex(want), nil, nil)
	_, err := io.Copy(io.Discard, v)
	return err
}

func mustHex(s string) []byte {
	b, _ := hex.DecodeString(s)
	return b
}

// maxUserMetaSize is S3's limit on the total size of x-amz-meta-* names
// and values.
const maxUserMetaSize = 2 << 10

// metaFromHeaders extracts stored metadata from a request; MetadataTooLarge
// if the user metadata exceeds 2 KiB.
func metaFromHeaders(hd http.Header) (ObjectMeta, error) {
	m := ObjectMeta{
		ContentType:        hd.Get("Content-Type"),
		ContentDisposition: hd.Get("Content-Disposition"),
		CacheControl:       hd.Get("Cache-Control"),
	}
	// aws-chunked is a transfer detail, not part of the stored encoding.
	var enc []string
	for _, e := range strings.Split(hd.Get("Content-Encoding"), ",") {
		if e = strings.TrimSpace(e); e != "" && e != "aws-chunked" {
			enc = append(enc, e)
		}
	}
	m.ContentEncoding = strings.Join(enc, ",")
	for k, vs := range hd {
		lk := strings.ToLower(k)
		if name, ok := strings.CutPrefix(lk, "x-amz-meta-"); ok && name != "" && len(vs) > 0 {
			if m.UserMeta == nil {
				m.UserMeta = map[string]string{}
			}
			m.UserMeta[name] = strings.Join(vs, ",")
		}
	}
	total := 0
	for k, v := range m.UserMeta {
		total += len(k) + len(v)
	}
	if total > maxUserMetaSize {
		return ObjectMeta{}, s3Err("MetadataTooLarge")
	}
	return m, nil
}

// ---- responses ----

func quoteETag(e string) string { return `"` + e + `"` }

func unquoteETag(e string) string {
	e = strings.TrimSpace(e)
	e = strings.TrimPrefix(e, "W/")
	return strings.Trim(e, `"`)
}

func writeXML(w http.ResponseWriter, status int, v any) error {
	out, err := xml.Marshal(v)
	if err != nil {
		return fmt.Errorf("marshal response: %w", err)
	}
	return writeRawXML(w, status, string(out))
}

func writeRawXML(w http.ResponseWriter, status int, body string) error {
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(xml.Header)+len(body)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, xml.Header)
	_, _ = io.WriteString(w, body)
	return nil
}

func cannedACL() string {
	return `<AccessControlPolicy xmlns="` + s3Namespace + `"><Owner><ID>` + ownerID + `</ID><DisplayName>` + ownerID +
		`</DisplayName></Owner><AccessControlList><Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser"><ID>` +
		ownerID + `</ID><DisplayName>` + ownerID + `</DisplayName></Grantee><Permission>FULL_CONTROL</Permission></Grant></AccessControlList></AccessControlPolicy>`
}

func s3Time(t time.Time) string { return t.UTC().Format(timeFormatS3) }

type owner struct {
	ID          string `xml:"ID"`
	DisplayName string `xml:"DisplayName"`
}

var theOwner = owner{ID: ownerID, DisplayName: ownerID}
