package cosfake

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"hash/crc64"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

var crcTable = crc64.MakeTable(crc64.ECMA)

const isoTime = "2006-01-02T15:04:05.000Z"

// maxHostLen is COS's limit on the full bucket domain
// "<name>-<appid>.cos.<region>.myqcloud.com".
const maxHostLen = 60

type bucket struct {
	name    string
	owner   string // SecretId that created it
	created time.Time
	objects map[string]*object
	uploads map[string]*upload
}

type object struct {
	data        []byte
	contentType string
	meta        map[string]string // user metadata, lower-case names without prefix
	etag        string            // with quotes
	multipart   bool
	modTime     time.Time
	crc         uint64
}

type upload struct {
	id          string
	key         string
	contentType string
	meta        map[string]string
	initiated   time.Time
	parts       map[int]*part
}

type part struct {
	data []byte
	sum  [md5.Size]byte
	etag string
}

// request is a classified request.
type request struct {
	call     Call
	bucket   string
	key      string
	query    url.Values
	callerID string
	hostErr  *cosError // the Host names no bucket of this region
}

func (s *Server) classify(r *http.Request) *request {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	q := r.URL.Query()
	req := &request{query: q}
	service := false
	switch {
	case host == "service.cos.myqcloud.com" || host == "service.cos.tencentcos.cn" ||
		host == "cos."+s.cfg.Region+".myqcloud.com" || host == "cos."+s.cfg.Region+".tencentcos.cn":
		service = true
	default:
		name, region, ok := splitBucketHost(host)
		switch {
		case !ok:
			req.hostErr = &cosError{status: http.StatusBadRequest, code: "InvalidURI",
				message: "Could not parse the specified URI."}
		case region != s.cfg.Region:
			req.hostErr = errNoSuchBucket() // the bucket would live in another region
		default:
			req.bucket = name
		}
		req.key = strings.TrimPrefix(r.URL.Path, "/")
	}
	op := "Unsupported"
	switch {
	case service:
		if r.Method == http.MethodGet && r.URL.Path == "/" {
			op = "GetService"
		}
	case req.key == "":
		switch {
		case r.Method == http.MethodPut && len(q) == 0:
			op = "PutBucket"
		case r.Method == http.MethodHead && len(q) == 0:
			op = "HeadBucket"
		case r.Method == http.MethodDelete && len(q) == 0:
			op = "DeleteBucket"
		}
	default:
		switch r.Method {
		case http.MethodPut:
			switch {
			case q.Has("partNumber") && q.Has("uploadId") && r.Header.Get("x-cos-copy-source") == "":
				op = "UploadPart"
			case r.Header.Get("x-cos-copy-source") != "" && !q.Has("uploadId"):
				op = "CopyObject"
			case len(q) == 0:
				op = "PutObject"
			}
		case http.MethodGet:
			op = "GetObject"
			for k := range q {
				if !strings.HasPrefix(k, "response-") && !strings.HasPrefix(k, "q-") {
					op = "Unsupported"
				}
			}
		case http.MethodHead:
			op = "HeadObject"
		case http.MethodDelete:
			switch {
			case q.Has("uploadId"):
				op = "AbortMultipartUpload"
			case len(q) == 0:
				op = "DeleteObject"
			}
		case http.MethodPost:
			switch {
			case q.Has("uploads"):
				op = "InitiateMultipartUpload"
			case q.Has("uploadId"):
				op = "CompleteMultipartUpload"
			}
		}
	}
	req.call = Call{Op: op, Bucket: req.bucket, Key: req.key, UploadID: q.Get("uploadId"),
		Range: r.Header.Get("Range"), Host: r.Host}
	if op == "UploadPart" {
		req.call.PartNumber, _ = strconv.Atoi(q.Get("partNumber"))
	}
	return req
}

// splitBucketHost splits "<bucket>.cos.<region>.myqcloud.com" (or
// .tencentcos.cn).
func splitBucketHost(host string) (bucketName, region string, ok bool) {
	for _, suffix := range []string{".myqcloud.com", ".tencentcos.cn"} {
		rest, found := strings.CutSuffix(host, suffix)
		if !found {
			continue
		}
		name, region, found := strings.Cut(rest, ".cos.")
		if !found || name == "" || region == "" || strings.Contains(name, ".") || strings.Contains(region, ".") {
			return "", "", false
		}
		return name, region, true
	}
	return "", "", false
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	req := s.classify(r)
	requestID := s.nextRequestID()
	w.Header().Set("x-cos-request-id", requestID)
	w.Header().Set("Server", "tencent-cos")
	w.Header().Set("Date", s.now().UTC().Format(http.TimeFormat))

	s.mu.Lock()
	fault := s.fault
	s.mu.Unlock()
	if fault != nil {
		switch f := fault(req.call); f {
		case FaultUnavailable, FaultInternalError:
			e := &cosError{status: http.StatusServiceUnavailable, code: "ServiceUnavailable", message: "Please reduce your request rate."}
			if f == FaultInternalError {
				e = &cosError{status: http.StatusInternalServerError, code: "InternalError", message: "We encountered an internal error. Please try again."}
			}
			s.finish(w, r, req, requestID, e)
			return
		case FaultDropConnection:
			s.record(req.call)
			dropConnection(w)
			return
		case FaultTruncateBody, FaultStallBody:
			if req.call.Op != "GetObject" {
				s.record(req.call)
				dropConnection(w)
				return
			}
			req.call.Status = -1 // marker: truncate after headers
			if f == FaultStallBody {
				req.call.Status = -2 // marker: stall after headers
			}
		}
	}

	if req.hostErr != nil {
		s.finish(w, r, req, requestID, req.hostErr)
		return
	}
	a := s.authenticate(r)
	if a.err != nil {
		s.finish(w, r, req, requestID, a.err)
		return
	}
	req.callerID = a.secretID

	var e *cosError
	switch req.call.Op {
	case "GetService":
		e = s.getService(w, req)
	case "PutBucket":
		e = s.putBucket(w, r, req)
	case "HeadBucket":
		e = s.headBucket(w, req)
	case "DeleteBucket":
		e = s.deleteBucket(w, req)
	case "PutObject":
		e = s.putObject(w, r, req)
	case "CopyObject":
		e = s.copyObject(w, r, req)
	case "GetObject", "HeadObject":
		e = s.getObject(w, r, req)
		if e == nil {
			return // getObject recorded the call itself
		}
	case "DeleteObject":
		e = s.deleteObject(w, req)
	case "InitiateMultipartUpload":
		e = s.initiateMultipart(w, r, req)
	case "UploadPart":
		e = s.uploadPart(w, r, req)
	case "CompleteMultipartUpload":
		e = s.completeMultipart(w, r, req)
	case "AbortMultipartUpload":
		e = s.abortMultipart(w, req)
	default:
		e = errNotImplemented()
	}
	s.finish(w, r, req, requestID, e)
}

// finish sends e if there is one and records the call.
func (s *Server) finish(w http.ResponseWriter, r *http.Request, req *request, requestID string, e *cosError) {
	if e != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		writeError(w, r, requestID, e)
		req.call.Status = e.status
		req.call.ErrorCode = e.code
	}
	s.record(req.call)
}

func dropConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

// lookupBucket returns the bucket if it exists and the caller owns it.
// Callers hold s.mu.
func (s *Server) lookupBucket(name, caller string) (*bucket, *cosError) {
	b := s.buckets[name]
	if b == nil {
		return nil, errNoSuchBucket()
	}
	if b.owner != caller {
		return nil, errAccessDenied("Access Denied.")
	}
	return b, nil
}

// validBucketName applies COS's naming rules: "<name>-<appid>" with name
// of [a-z0-9-] not starting or ending with '-', and the whole domain at
// most maxHostLen characters.
func (s *Server) validBucketName(full string) bool {
	name, ok := strings.CutSuffix(full, "-"+s.cfg.AppID)
	if !ok || name == "" || name[0] == '-' || name[len(name)-1] == '-' {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return len(full+".cos."+s.cfg.Region+".myqcloud.com") <= maxHostLen
}

func validateKey(key string) *cosError {
	if len(key) > 850 || !utf8.ValidString(key) {
		return &cosError{status: http.StatusBadRequest, code: "InvalidObjectName", message: "The specified object name is invalid."}
	}
	return nil
}

func writeXML(w http.ResponseWriter, status int, v any) {
	out, err := xml.Marshal(v)
	if err != nil {
		panic(err) // static types; cannot happen
	}
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

type ownerXML struct {
	ID          string `xml:"ID"`
	DisplayName string `xml:"DisplayName"`
}

func (s *Server) getService(w http.ResponseWriter, req *request) *cosError {
	s.mu.Lock()
	var names []string
	for name, b := range s.buckets {
		if b.owner == req.callerID {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	type bucketXML struct {
		Name         string `xml:"Name"`
		Location     string `xml:"Location"`
		CreationDate string `xml:"CreationDate"`
		BucketType   string `xml:"BucketType"`
	}
	type result struct {
		XMLName xml.Name    `xml:"ListAllMyBucketsResult"`
		Owner   ownerXML    `xml:"Owner"`
		Buckets []bucketXML `xml:"Buckets>Bucket"`
	}
	res := result{Owner: ownerXML{ID: "qcs::cam::uin/" + s.cfg.AppID + ":uin/" + s.cfg.AppID, DisplayName: s.cfg.AppID}}
	for _, name := range names {
		b := s.buckets[name]
		res.Buckets = append(res.Buckets, bucketXML{Name: name, Location: s.cfg.Region,
			CreationDate: b.created.UTC().Format(time.RFC3339), BucketType: "cos"})
	}
	s.mu.Unlock()
	writeXML(w, http.StatusOK, res)
	req.call.Status = http.StatusOK
	return nil
}

func (s *Server) putBucket(w http.ResponseWriter, r *http.Request, req *request) *cosError {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return errInvalidArgument("Could not read the request body.")
	}
	if len(bytes.TrimSpace(body)) > 0 {
		var cfg struct {
			XMLName xml.Name `xml:"CreateBucketConfiguration"`
		}
		if xml.Unmarshal(body, &cfg) != nil {
			return errMalformedXML()
		}
	}
	if !s.validBucketName(req.bucket) {
		return &cosError{status: http.StatusBadRequest, code: "InvalidBucketName",
			message: "The specified bucket name is invalid."}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.buckets[req.bucket]; b != nil {
		if b.owner == req.callerID {
			return &cosError{status: http.StatusConflict, code: "BucketAlreadyOwnedByYou",
				message: "Your previous request to create the named bucket succeeded and you already own it."}
		}
		return &cosError{status: http.StatusConflict, code: "BucketAlreadyExists",
			message: "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again."}
	}
	s.buckets[req.bucket] = &bucket{
		name:    req.bucket,
		owner:   req.callerID,
		created: s.now(),
		objects: make(map[string]*object),
		uploads: make(map[string]*upload),
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	req.call.Status = http.StatusOK
	return nil
}

func (s *Server) headBucket(w http.ResponseWriter, req *request) *cosError {
	s.mu.Lock()
	_, e := s.lookupBucket(req.bucket, req.callerID)
	s.mu.Unlock()
	if e != nil {
		return e
	}
	w.Header().Set("x-cos-bucket-region", s.cfg.Region)
	w.WriteHeader(http.StatusOK)
	req.call.Status = http.StatusOK
	return nil
}

func (s *Server) deleteBucket(w http.ResponseWriter, req *request) *cosError {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, e := s.lookupBucket(req.bucket, req.callerID)
	if e != nil {
		return e
	}
	if len(b.objects) > 0 || len(b.uploads) > 0 {
		return &cosError{status: http.StatusConflict, code: "BucketNotEmpty",
			message: "The bucket you tried to delete is not empty."}
	}
	delete(s.buckets, req.bucket)
	w.WriteHeader(http.StatusNoContent)
	req.call.Status = http.StatusNoContent
	return nil
}

// readBody reads the whole request body and checks Content-MD5 if sent.
func readBody(r *http.Request) ([]byte, [md5.Size]byte, *cosError) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, [md5.Size]byte{}, &cosError{status: http.StatusBadRequest, code: "IncompleteBody",
			message: "You did not provide the number of bytes specified by the Content-Length HTTP header."}
	}
	sum := md5.Sum(data)
	if cm := r.Header.Get("Content-MD5"); cm != "" {
		want, err := base64.StdEncoding.DecodeString(cm)
		if err != nil || len(want) != md5.Size {
			return nil, sum, &cosError{status: http.StatusBadRequest, code: "InvalidDigest",
				message: "The Content-MD5 you specified is not valid."}
		}
		if !bytes.Equal(want, sum[:]) {
			return nil, sum, &cosError{status: http.StatusBadRequest, code: "BadDigest",
				message: "The Content-MD5 you specified did not match what we received."}
		}
	}
	return data, sum, nil
}

// userMeta extracts x-cos-meta-* headers.
func userMeta(h http.Header) map[string]string {
	meta := make(map[string]string)
	for name, vals := range h {
		if rest, ok := strings.CutPrefix(strings.ToLower(name), "x-cos-meta-"); ok && len(vals) > 0 {
			meta[rest] = vals[0]
		}
	}
	return meta
}

func contentType(r *http.Request) string {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		return ct
	}
	return "application/octet-stream"
}

func md5ETag(sum []byte) string { return `"` + hex.EncodeToString(sum) + `"` }

func (s *Server) putObject(w http.ResponseWriter, r *http.Request, req *request) *cosError {
	if e := validateKey(req.key); e != nil {
		return e
	}
	s.mu.Lock()
	_, e := s.lookupBucket(req.bucket, req.callerID)
	s.mu.Unlock()
	if e != nil {
		return e
	}
	data, sum, e := readBody(r)
	if e != nil {
		return e
	}
	o := &object{
		data:        data,
		contentType: contentType(r),
		meta:        userMeta(r.Header),
		etag:        md5ETag(sum[:]),
		modTime:     s.now().Truncate(time.Second),
		crc:         crc64.Checksum(data, crcTable),
	}
	s.mu.Lock()
	b, e := s.lookupBucket(req.bucket, req.callerID)
	if e == nil {
		b.objects[req.key] = o // atomic replacement
	}
	s.mu.Unlock()
	if e != nil {
		return e
	}
	h := w.Header()
	h.Set("ETag", o.etag)
	h.Set("x-cos-hash-crc64ecma", strconv.FormatUint(o.crc, 10))
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	req.call.Status = http.StatusOK
	return nil
}

func (s *Server) copyObject(w http.ResponseWriter, r *http.Request, req *request) *cosError {
	if e := validateKey(req.key); e != nil {
		return e
	}
	_, _ = io.Copy(io.Discard, r.Body)
	// "<bucket>-<appid>.cos.<region>.myqcloud.com/<url-encoded key>"
	src := r.Header.Get("x-cos-copy-source")
	srcHost, srcEscKey, ok := strings.Cut(src, "/")
	srcBucket, srcRegion, hostOK := splitBucketHost(srcHost)
	// A literal '?' starts the query ("?versionId=..."); a '?' inside the
	// key arrives percent-encoded.
	srcEscKey, srcQuery, hasQuery := strings.Cut(srcEscKey, "?")
	srcKey, err := url.PathUnescape(srcEscKey)
	if !ok || !hostOK || err != nil || srcKey == "" {
		return &cosError{status: http.StatusBadRequest, code: "InvalidArgument",
			message: "The x-cos-copy-source header is invalid."}
	}
	if hasQuery {
		if q, err := url.ParseQuery(srcQuery); err == nil && q.Has("versionId") && len(q) == 1 {
			return errNotImplemented() // versioning
		}
		return &cosError{status: http.StatusBadRequest, code: "InvalidArgument",
			message: "The x-cos-copy-source header is invalid."}
	}
	if srcRegion != s.cfg.Region {
		return errNoSuchBucket()
	}
	directive := r.Header.Get("x-cos-metadata-directive")
	if directive != "" && directive != "Copy" && directive != "Replaced" {
		return errInvalidArgument("The x-cos-metadata-directive header must be Copy or Replaced.")
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	dst, e := s.lookupBucket(req.bucket, req.callerID)
	if e != nil {
		return e
	}
	sb, e := s.lookupBucket(srcBucket, req.callerID)
	if e != nil {
		return e
	}
	so := sb.objects[srcKey]
	if so == nil {
		return errNoSuchKey()
	}
	if m := r.Header.Get("x-cos-copy-source-If-Match"); m != "" && !etagMatch(m, so.etag) {
		return &cosError{status: http.StatusPreconditionFailed, code: "PreconditionFailed",
			message: "At least one of the pre-conditions you specified did not hold."}
	}
	if m := r.Header.Get("x-cos-copy-source-If-None-Match"); m != "" && etagMatch(m, so.etag) {
		return &cosError{status: http.StatusPreconditionFailed, code: "PreconditionFailed",
			message: "At least one of the pre-conditions you specified did not hold."}
	}
	o := &object{
		data:        so.data, // immutable once stored
		contentType: so.contentType,
		meta:        so.meta,
		etag:        so.etag,
		multipart:   so.multipart,
		modTime:     s.now().Truncate(time.Second),
		crc:         so.crc,
	}
	if directive == "Replaced" {
		o.contentType = contentType(r)
		o.meta = userMeta(r.Header)
	} else if srcBucket == req.bucket && srcKey == req.key {
		return &cosError{status: http.StatusBadRequest, code: "InvalidRequest",
			message: "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata."}
	}
	dst.objects[req.key] = o
	type result struct {
		XMLName      xml.Name `xml:"CopyObjectResult"`
		ETag         string   `xml:"ETag"`
		LastModified string   `xml:"LastModified"`
		CRC64        string   `xml:"CRC64"`
	}
	writeXML(w, http.StatusOK, result{ETag: o.etag, LastModified: o.modTime.UTC().Format(isoTime),
		CRC64: strconv.FormatUint(o.crc, 10)})
	req.call.Status = http.StatusOK
	return nil
}

func etagMatch(header, etag string) bool {
	for _, m := range strings.Split(header, ",") {
		m = strings.TrimSpace(m)
		if m == "*" || strings.Trim(m, `"`) == strings.Trim(etag, `"`) {
			return true
		}
	}
	return false
}

// byteRange is a parsed single-range Range header.
type byteRange struct{ start, end int64 } // inclusive

// parseRange interprets a Range header against an object of size bytes
// per RFC 9110. ok is false when the header is not a single byte range
// (it is then ignored); satisfiable is false when it selects no byte.
func parseRange(h string, size int64) (br byteRange, ok, satisfiable bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return br, false, false
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return br, false, false
	}
	switch {
	case first == "" && last == "":
		return br, false, false
	case first == "":
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			return br, false, false
		}
		if n == 0 || size == 0 {
			return br, true, false
		}
		if n > size {
			n = size
		}
		return byteRange{size - n, size - 1}, true, true
	default:
		a, err := strconv.ParseInt(first, 10, 64)
		if err != nil || a < 0 {
			return br, false, false
		}
		b := size - 1
		if last != "" {
			b, err = strconv.ParseInt(last, 10, 64)
			if err != nil || b < a {
				return br, false, false
			}
		}
		if a >= size {
			return br, true, false
		}
		if b >= size {
			b = size - 1
		}
		return byteRange{a, b}, true, true
	}
}

func (s *Server) getObject(w http.ResponseWriter, r *http.Request, req *request) *cosError {
	truncate, stall := req.call.Status == -1, req.call.Status == -2
	req.call.Status = 0
	s.mu.Lock()
	b, e := s.lookupBucket(req.bucket, req.callerID)
	var o *object
	if e == nil {
		if o = b.objects[req.key]; o == nil {
			e = errNoSuchKey()
		}
	}
	s.mu.Unlock()
	if e != nil {
		return e
	}
	if m := r.Header.Get("If-Match"); m != "" && !etagMatch(m, o.etag) {
		return &cosError{status: http.StatusPreconditionFailed, code: "PreconditionFailed",
			message: "At least one of the pre-conditions you specified did not hold."}
	}

	size := int64(len(o.data))
	body := o.data
	status := http.StatusOK
	if rh := r.Header.Get("Range"); rh != "" {
		br, ok, satisfiable := parseRange(rh, size)
		switch {
		case ok && satisfiable:
			status = http.StatusPartialContent
			body = o.data[br.start : br.end+1]
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", br.start, br.end, size))
		case ok:
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			return &cosError{status: http.StatusRequestedRangeNotSatisfiable, code: "InvalidRange",
				message: "The requested range is not satisfiable."}
		}
	}
	h := w.Header()
	h.Set("ETag", o.etag)
	h.Set("Last-Modified", o.modTime.UTC().Format(http.TimeFormat))
	h.Set("Content-Type", o.contentType)
	h.Set("x-cos-hash-crc64ecma", strconv.FormatUint(o.crc, 10))
	h.Set("Accept-Ranges", "bytes")
	h.Set("x-cos-storage-class", "STANDARD")
	for k, v := range o.meta {
		h.Set("x-cos-meta-"+k, v)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	req.call.Status = status
	s.record(req.call)
	if r.Method == http.MethodHead {
		return nil
	}
	if truncate || stall {
		_, _ = w.Write(body[:len(body)/2])
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		if stall {
			<-r.Context().Done()
		}
		panic(http.ErrAbortHandler)
	}
	_, _ = w.Write(body)
	return nil
}

func (s *Server) deleteObject(w http.ResponseWriter, req *request) *cosError {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, e := s.lookupBucket(req.bucket, req.callerID)
	if e != nil {
		return e
	}
	delete(b.objects, req.key) // deleting a missing key succeeds too
	w.WriteHeader(http.StatusNoContent)
	req.call.Status = http.StatusNoContent
	return nil
}

func (s *Server) initiateMultipart(w http.ResponseWriter, r *http.Request, req *request) *cosError {
	if e := validateKey(req.key); e != nil {
		return e
	}
	_, _ = io.Copy(io.Discard, r.Body)
	s.mu.Lock()
	b, e := s.lookupBucket(req.bucket, req.callerID)
	if e != nil {
		s.mu.Unlock()
		return e
	}
	s.seq++
	sum := md5.Sum([]byte(fmt.Sprintf("%s/%s/%d/%d", req.bucket, req.key, s.seq, s.now().UnixNano())))
	u := &upload{
		id:          strconv.FormatInt(s.now().Unix(), 10) + hex.EncodeToString(sum[:]),
		key:         req.key,
		contentType: contentType(r),
		meta:        userMeta(r.Header),
		initiated:   s.now(),
		parts:       make(map[int]*part),
	}
	b.uploads[u.id] = u
	s.mu.Unlock()
	req.call.UploadID = u.id
	type result struct {
		XMLName  xml.Name `xml:"InitiateMultipartUploadResult"`
		Bucket   string   `xml:"Bucket"`
		Key      string   `xml:"Key"`
		UploadID string   `xml:"UploadId"`
	}
	writeXML(w, http.StatusOK, result{Bucket: req.bucket, Key: req.key, UploadID: u.id})
	req.call.Status = http.StatusOK
	return nil
}

// lookupUpload returns the upload named by the uploadId parameter, which
// must belong to the request's key. Callers hold s.mu.
func (s *Server) lookupUpload(req *request) (*bucket, *upload, *cosError) {
	b, e := s.lookupBucket(req.bucket, req.callerID)
	if e != nil {
		return nil, nil, e
	}
	u := b.uploads[req.query.Get("uploadId")]
	if u == nil || u.key != req.key {
		return nil, nil, errNoSuchUpload()
	}
	return b, u, nil
}

func (s *Server) uploadPart(w http.ResponseWriter, r *http.Request, req *request) *cosError {
	n, err := strconv.Atoi(req.query.Get("partNumber"))
	if err != nil || n < 1 || n > s.cfg.MaxPartNumber {
		return errInvalidArgument(fmt.Sprintf("Part number must be an integer between 1 and %d, inclusive.", s.cfg.MaxPartNumber))
	}
	s.mu.Lock()
	_, _, e := s.lookupUpload(req)
	s.mu.Unlock()
	if e != nil {
		return e
	}
	data, sum, e := readBody(r)
	if e != nil {
		return e
	}
	p := &part{data: data, sum: sum, etag: md5ETag(sum[:])}
	s.mu.Lock()
	_, u, e := s.lookupUpload(req) // aborted meanwhile?
	if e == nil {
		u.parts[n] = p // a re-sent part replaces the previous one
	}
	s.mu.Unlock()
	if e != nil {
		return e
	}
	h := w.Header()
	h.Set("ETag", p.etag)
	h.Set("x-cos-hash-crc64ecma", strconv.FormatUint(crc64.Checksum(data, crcTable), 10))
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	req.call.Status = http.StatusOK
	return nil
}

func (s *Server) completeMultipart(w http.ResponseWriter, r *http.Request, req *request) *cosError {
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		return errMalformedXML()
	}
	var list struct {
		XMLName xml.Name `xml:"CompleteMultipartUpload"`
		Parts   []struct {
			PartNumber int    `xml:"PartNumber"`
			ETag       string `xml:"ETag"`
		} `xml:"Part"`
	}
	if err := xml.Unmarshal(body, &list); err != nil || len(list.Parts) == 0 {
		return errMalformedXML()
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	b, u, e := s.lookupUpload(req)
	if e != nil {
		return e
	}
	invalidPart := &cosError{status: http.StatusBadRequest, code: "InvalidPart",
		message: "One or more of the specified parts could not be found or the specified entity tag might not have matched the part's entity tag."}
	var chosen []*part
	for i, lp := range list.Parts {
		if i > 0 && lp.PartNumber <= list.Parts[i-1].PartNumber {
			return &cosError{status: http.StatusBadRequest, code: "InvalidPartOrder",
				message: "The list of parts was not in ascending order. The parts list must be specified in order by part number."}
		}
		// COS also refuses gaps in the numbering with InvalidPart.
		if i > 0 && lp.PartNumber != list.Parts[i-1].PartNumber+1 {
			return invalidPart
		}
		p := u.parts[lp.PartNumber]
		if p == nil || strings.Trim(lp.ETag, `"`) != strings.Trim(p.etag, `"`) {
			return invalidPart
		}
		chosen = append(chosen, p)
	}
	// Sizes are checked once every listed part is known to exist.
	for i, p := range chosen {
		if i < len(chosen)-1 && int64(len(p.data)) < s.cfg.MinPartSize {
			return &cosError{status: http.StatusBadRequest, code: "EntityTooSmall",
				message: "Your proposed upload is smaller than the minimum allowed object size."}
		}
	}
	var data, sums []byte
	for _, p := range chosen {
		data = append(data, p.data...)
		sums = append(sums, p.sum[:]...)
	}
	whole := md5.Sum(sums)
	o := &object{
		data:        data,
		contentType: u.contentType,
		meta:        u.meta,
		etag:        `"` + hex.EncodeToString(whole[:]) + "-" + strconv.Itoa(len(chosen)) + `"`,
		multipart:   true,
		modTime:     s.now().Truncate(time.Second),
		crc:         crc64.Checksum(data, crcTable),
	}
	b.objects[req.key] = o // atomic replacement
	delete(b.uploads, u.id)

	type result struct {
		XMLName  xml.Name `xml:"CompleteMultipartUploadResult"`
		Location string   `xml:"Location"`
		Bucket   string   `xml:"Bucket"`
		Key      string   `xml:"Key"`
		ETag     string   `xml:"ETag"`
	}
	w.Header().Set("x-cos-hash-crc64ecma", strconv.FormatUint(o.crc, 10))
	writeXML(w, http.StatusOK, result{
		Location: req.bucket + ".cos." + s.cfg.Region + ".myqcloud.com/" + req.key,
		Bucket:   req.bucket,
		Key:      req.key,
		ETag:     o.etag,
	})
	req.call.Status = http.StatusOK
	return nil
}

func (s *Server) abortMultipart(w http.ResponseWriter, req *request) *cosError {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, u, e := s.lookupUpload(req)
	if e != nil {
		return e
	}
	delete(b.uploads, u.id)
	w.WriteHeader(http.StatusNoContent)
	req.call.Status = http.StatusNoContent
	return nil
}
