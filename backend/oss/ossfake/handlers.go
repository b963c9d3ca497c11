package ossfake

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

type bucket struct {
	name    string
	owner   string // AccessKeyId that created it
	created time.Time
	objects map[string]*object
	uploads map[string]*upload
}

type object struct {
	data        []byte
	contentType string
	meta        map[string]string // user metadata, lower-case names without prefix
	etag        string            // with quotes
	objType     string            // Normal | Multipart
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
}

func (s *Server) classify(r *http.Request) *request {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	q := r.URL.Query()
	var bucketName, key string
	if name, ok := strings.CutSuffix(host, "."+s.cfg.Domain); ok && name != "" && !strings.Contains(name, ".") {
		bucketName = name
		key = strings.TrimPrefix(r.URL.Path, "/")
	} else {
		bucketName, key, _ = strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	}
	op := "Unsupported"
	switch {
	case bucketName == "":
		if r.Method == http.MethodGet {
			op = "ListBuckets"
		}
	case key == "":
		switch {
		case r.Method == http.MethodPut && len(q) == 0:
			op = "PutBucket"
		case r.Method == http.MethodGet && q.Has("bucketInfo"):
			op = "GetBucketInfo"
		case r.Method == http.MethodHead && len(q) == 0:
			op = "HeadBucket"
		case r.Method == http.MethodDelete && len(q) == 0:
			op = "DeleteBucket"
		}
	default:
		switch r.Method {
		case http.MethodPut:
			switch {
			case q.Has("partNumber") && q.Has("uploadId") && r.Header.Get("x-oss-copy-source") == "":
				op = "UploadPart"
			case r.Header.Get("x-oss-copy-source") != "":
				op = "CopyObject"
			case !hasSubResource(q):
				op = "PutObject"
			}
		case http.MethodGet:
			if !hasSubResource(q, "response-content-type", "response-content-disposition",
				"response-cache-control", "response-content-encoding", "response-expires",
				"response-content-language") {
				op = "GetObject"
			}
		case http.MethodHead:
			switch {
			case q.Has("objectMeta"):
				op = "GetObjectMeta"
			case !hasSubResource(q):
				op = "HeadObject"
			}
		case http.MethodDelete:
			switch {
			case q.Has("uploadId"):
				op = "AbortMultipartUpload"
			case !hasSubResource(q):
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
	c := Call{Op: op, Bucket: bucketName, Key: key, UploadID: q.Get("uploadId"), Range: r.Header.Get("Range")}
	if op == "UploadPart" {
		c.PartNumber, _ = strconv.Atoi(q.Get("partNumber"))
	}
	return &request{call: c, bucket: bucketName, key: key, query: q}
}

// hasSubResource reports whether q holds a signed sub-resource other than
// the allowed ones.
func hasSubResource(q url.Values, allowed ...string) bool {
	for k := range q {
		if subResources[k] && !contains(allowed, k) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	req := s.classify(r)
	requestID := s.nextRequestID()
	w.Header().Set("x-oss-request-id", requestID)
	w.Header().Set("Server", "AliyunOSS")
	w.Header().Set("Date", s.now().UTC().Format(http.TimeFormat))

	s.mu.Lock()
	fault := s.fault
	s.mu.Unlock()
	if fault != nil {
		switch f := fault(req.call); f {
		case FaultUnavailable, FaultInternalError:
			e := &ossError{status: http.StatusServiceUnavailable, code: "ServiceUnavailable", message: "Please reduce your request rate."}
			if f == FaultInternalError {
				e = &ossError{status: http.StatusInternalServerError, code: "InternalError", message: "We encountered an internal error. Please try again."}
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

	a := s.authenticate(r, req.bucket, req.key)
	if a.err != nil {
		s.finish(w, r, req, requestID, a.err)
		return
	}
	req.callerID = a.accessKeyID

	var e *ossError
	switch req.call.Op {
	case "ListBuckets":
		e = s.listBuckets(w, req)
	case "PutBucket":
		e = s.putBucket(w, r, req)
	case "GetBucketInfo":
		e = s.getBucketInfo(w, req)
	case "HeadBucket":
		e = s.headBucket(w, req)
	case "DeleteBucket":
		e = s.deleteBucket(w, req)
	case "PutObject":
		e = s.putObject(w, r, req)
	case "CopyObject":
		e = s.copyObject(w, r, req)
	case "GetObject", "HeadObject", "GetObjectMeta":
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

// finish sends e if there is one and records the call. Handlers that
// succeed have already written their answer; for them finish only
// records it, with the status they set in req.call.Status.
func (s *Server) finish(w http.ResponseWriter, r *http.Request, req *request, requestID string, e *ossError) {
	if e != nil {
		// Drain what is left of the body so the client sees the answer
		// instead of a reset connection, as the real service does for
		// small bodies.
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
func (s *Server) lookupBucket(req *request) (*bucket, *ossError) {
	b := s.buckets[req.bucket]
	if b == nil {
		return nil, errNoSuchBucket(req.bucket)
	}
	if b.owner != req.callerID {
		return nil, errAccessDenied("You have no right to access this bucket.")
	}
	return b, nil
}

func validBucketName(name string) bool {
	if len(name) < 3 || len(name) > 63 || name[0] == '-' || name[len(name)-1] == '-' {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func validateKey(key string) *ossError {
	switch {
	case len(key) > 1023:
		return &ossError{status: http.StatusBadRequest, code: "InvalidObjectName", message: "The Length of Object name must be less than 1024.", key: key}
	case !utf8.ValidString(key) || strings.HasPrefix(key, "/") || strings.HasPrefix(key, `\`):
		return &ossError{status: http.StatusBadRequest, code: "InvalidObjectName", message: "The specified object is not valid.", key: key}
	}
	return nil
}

func writeXML(w http.ResponseWriter, status int, v any) {
	out, err := xml.Marshal(v)
	if err != nil {
		panic(err) // static types; cannot happen
	}
	out = append([]byte(xml.Header), out...)
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

type ownerXML struct {
	ID          string `xml:"ID"`
	DisplayName string `xml:"DisplayName"`
}

type bucketXML struct {
	CreationDate     string `xml:"CreationDate"`
	ExtranetEndpoint string `xml:"ExtranetEndpoint"`
	IntranetEndpoint string `xml:"IntranetEndpoint"`
	Location         string `xml:"Location"`
	Name             string `xml:"Name"`
	StorageClass     string `xml:"StorageClass"`
}

func (s *Server) listBuckets(w http.ResponseWriter, req *request) *ossError {
	prefix, marker := req.query.Get("prefix"), req.query.Get("marker")
	maxKeys := 100
	if v := req.query.Get("max-keys"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return errInvalidArgument("Argument max-keys must be an integer between 1 and 1000.")
		}
		maxKeys = n
	}
	s.mu.Lock()
	var names []string
	for name, b := range s.buckets {
		if b.owner == req.callerID && strings.HasPrefix(name, prefix) && name > marker {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	truncated := len(names) > maxKeys
	if truncated {
		names = names[:maxKeys]
	}
	type result struct {
		XMLName     xml.Name    `xml:"ListAllMyBucketsResult"`
		Prefix      string      `xml:"Prefix,omitempty"`
		Marker      string      `xml:"Marker,omitempty"`
		MaxKeys     int         `xml:"MaxKeys,omitempty"`
		IsTruncated bool        `xml:"IsTruncated,omitempty"`
		NextMarker  string      `xml:"NextMarker,omitempty"`
		Owner       ownerXML    `xml:"Owner"`
		Buckets     []bucketXML `xml:"Buckets>Bucket"`
	}
	res := result{Prefix: prefix, Marker: marker, Owner: ownerXML{ID: req.callerID, DisplayName: req.callerID}}
	if req.query.Has("max-keys") {
		res.MaxKeys = maxKeys
	}
	if truncated {
		res.IsTruncated = true
		res.NextMarker = names[len(names)-1]
	}
	for _, name := range names {
		b := s.buckets[name]
		res.Buckets = append(res.Buckets, s.bucketXML(b))
	}
	s.mu.Unlock()
	writeXML(w, http.StatusOK, res)
	req.call.Status = http.StatusOK
	return nil
}

func (s *Server) bucketXML(b *bucket) bucketXML {
	return bucketXML{
		CreationDate:     b.created.UTC().Format(isoTime),
		ExtranetEndpoint: s.cfg.Domain,
		IntranetEndpoint: strings.Replace(s.cfg.Domain, ".aliyuncs.com", "-internal.aliyuncs.com", 1),
		Location:         s.cfg.Location,
		Name:             b.name,
		StorageClass:     "Standard",
	}
}

func (s *Server) putBucket(w http.ResponseWriter, r *http.Request, req *request) *ossError {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return errInvalidArgument("Could not read the request body.")
	}
	if len(bytes.TrimSpace(body)) > 0 {
		var cfg struct {
			XMLName      xml.Name `xml:"CreateBucketConfiguration"`
			StorageClass string   `xml:"StorageClass"`
		}
		if xml.Unmarshal(body, &cfg) != nil {
			return errMalformedXML()
		}
	}
	if !validBucketName(req.bucket) {
		return &ossError{status: http.StatusBadRequest, code: "InvalidBucketName",
			message: "The specified bucket is not valid.", bucket: req.bucket}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.buckets[req.bucket] != nil {
		// OSS answers 409 whoever owns the existing bucket.
		return &ossError{status: http.StatusConflict, code: "BucketAlreadyExists",
			message: "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.",
			bucket:  req.bucket}
	}
	s.buckets[req.bucket] = &bucket{
		name:    req.bucket,
		owner:   req.callerID,
		created: s.now(),
		objects: make(map[string]*object),
		uploads: make(map[string]*upload),
	}
	w.Header().Set("Location", "/"+req.bucket)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	req.call.Status = http.StatusOK
	return nil
}

func (s *Server) getBucketInfo(w http.ResponseWriter, req *request) *ossError {
	s.mu.Lock()
	b, e := s.lookupBucket(req)
	if e != nil {
		s.mu.Unlock()
		return e
	}
	type info struct {
		XMLName xml.Name `xml:"BucketInfo"`
		Bucket  struct {
			bucketXML
			Owner ownerXML `xml:"Owner"`
			ACL   string   `xml:"AccessControlList>Grant"`
		} `xml:"Bucket"`
	}
	var res info
	res.Bucket.bucketXML = s.bucketXML(b)
	res.Bucket.Owner = ownerXML{ID: b.owner, DisplayName: b.owner}
	res.Bucket.ACL = "private"
	s.mu.Unlock()
	writeXML(w, http.StatusOK, res)
	req.call.Status = http.StatusOK
	return nil
}

func (s *Server) headBucket(w http.ResponseWriter, req *request) *ossError {
	s.mu.Lock()
	_, e := s.lookupBucket(req)
	s.mu.Unlock()
	if e != nil {
		return e
	}
	w.WriteHeader(http.StatusOK)
	req.call.Status = http.StatusOK
	return nil
}

func (s *Server) deleteBucket(w http.ResponseWriter, req *request) *ossError {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, e := s.lookupBucket(req)
	if e != nil {
		return e
	}
	if len(b.objects) > 0 || len(b.uploads) > 0 {
		return &ossError{status: http.StatusConflict, code: "BucketNotEmpty",
			message: "The bucket you tried to delete is not empty.", bucket: req.bucket}
	}
	delete(s.buckets, req.bucket)
	w.WriteHeader(http.StatusNoContent)
	req.call.Status = http.StatusNoContent
	return nil
}

// readBody reads the whole request body and checks Content-MD5 if sent.
func readBody(r *http.Request) ([]byte, [md5.Size]byte, *ossError) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, [md5.Size]byte{}, &ossError{status: http.StatusBadRequest, code: "IncompleteBody",
			message: "You did not provide the number of bytes specified by the Content-Length HTTP header."}
	}
	sum := md5.Sum(data)
	if cm := r.Header.Get("Content-MD5"); cm != "" {
		want, err := base64.StdEncoding.DecodeString(cm)
		if err != nil || len(want) != md5.Size {
			return nil, sum, &ossError{status: http.StatusBadRequest, code: "InvalidDigest",
				message: "The Content-MD5 you specified was invalid."}
		}
		if !bytes.Equal(want, sum[:]) {
			return nil, sum, &ossError{status: http.StatusBadRequest, code: "InvalidDigest",
				message: "The Content-MD5 you specified was invalid."}
		}
	}
	return data, sum, nil
}

// userMeta extracts x-oss-meta-* headers.
func userMeta(h http.Header) map[string]string {
	meta := make(map[string]string)
	for name, vals := range h {
		lower := strings.ToLower(name)
		if rest, ok := strings.CutPrefix(lower, "x-oss-meta-"); ok && len(vals) > 0 {
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

func md5ETag(sum []byte) string {
	return `"` + strings.ToUpper(hex.EncodeToString(sum)) + `"`
}

func (s *Server) putObject(w http.ResponseWriter, r *http.Request, req *request) *ossError {
	if e := validateKey(req.key); e != nil {
		return e
	}
	s.mu.Lock()
	_, e := s.lookupBucket(req)
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
		objType:     "Normal",
		modTime:     s.now().Truncate(time.Second),
		crc:         crc64.Checksum(data, crcTable),
	}
	s.mu.Lock()
	b, e := s.lookupBucket(req) // it may have been deleted meanwhile
	if e == nil {
		b.objects[req.key] = o // atomic replacement
	}
	s.mu.Unlock()
	if e != nil {
		return e
	}
	h := w.Header()
	h.Set("ETag", o.etag)
	h.Set("Content-MD5", base64.StdEncoding.EncodeToString(sum[:]))
	h.Set("x-oss-hash-crc64ecma", strconv.FormatUint(o.crc, 10))
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	req.call.Status = http.StatusOK
	return nil
}

func (s *Server) copyObject(w http.ResponseWriter, r *http.Request, req *request) *ossError {
	if e := validateKey(req.key); e != nil {
		return e
	}
	_, _ = io.Copy(io.Discard, r.Body)
	// "/<bucket>/<key>[?versionId=...]"; a '?' inside the key arrives
	// percent-encoded (the SDK encodes the key with url.QueryEscape).
	src, srcQuery, hasQuery := strings.Cut(r.Header.Get("x-oss-copy-source"), "?")
	if hasQuery {
		if q, err := url.ParseQuery(srcQuery); err == nil && q.Has("versionId") && len(q) == 1 {
			return errNotImplemented() // versioning
		}
		return errInvalidArgument("Copy Source must mention the source bucket and key: /sourcebucket/sourcekey.")
	}
	srcPath, err := url.QueryUnescape(src)
	if err != nil || !strings.HasPrefix(srcPath, "/") {
		return errInvalidArgument("Copy Source must mention the source bucket and key: /sourcebucket/sourcekey.")
	}
	srcBucket, srcKey, ok := strings.Cut(srcPath[1:], "/")
	if !ok || srcBucket == "" || srcKey == "" {
		return errInvalidArgument("Copy Source must mention the source bucket and key: /sourcebucket/sourcekey.")
	}
	directive := r.Header.Get("x-oss-metadata-directive")
	if directive != "" && directive != "COPY" && directive != "REPLACE" {
		return errInvalidArgument("Unknown metadata directive.")
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	dst, e := s.lookupBucket(req)
	if e != nil {
		return e
	}
	sb, e := s.lookupBucket(&request{bucket: srcBucket, callerID: req.callerID})
	if e != nil {
		return e
	}
	so := sb.objects[srcKey]
	if so == nil {
		return errNoSuchKey(srcKey)
	}
	if m := r.Header.Get("x-oss-copy-source-if-match"); m != "" && !etagMatch(m, so.etag) {
		return &ossError{status: http.StatusPreconditionFailed, code: "PreconditionFailed",
			message: "At least one of the pre-conditions you specified did not hold."}
	}
	if m := r.Header.Get("x-oss-copy-source-if-none-match"); m != "" && etagMatch(m, so.etag) {
		w.WriteHeader(http.StatusNotModified)
		req.call.Status = http.StatusNotModified
		return nil
	}
	o := &object{
		data:        so.data, // immutable once stored
		contentType: so.contentType,
		meta:        so.meta,
		etag:        so.etag,
		objType:     so.objType,
		modTime:     s.now().Truncate(time.Second),
		crc:         so.crc,
	}
	if directive == "REPLACE" {
		o.contentType = contentType(r)
		o.meta = userMeta(r.Header)
	} else if srcBucket == req.bucket && srcKey == req.key {
		return errInvalidArgument("The source object is the same as the target object, and the metadata directive is not REPLACE.")
	}
	dst.objects[req.key] = o
	type result struct {
		XMLName      xml.Name `xml:"CopyObjectResult"`
		LastModified string   `xml:"LastModified"`
		ETag         string   `xml:"ETag"`
	}
	w.Header().Set("x-oss-hash-crc64ecma", strconv.FormatUint(o.crc, 10))
	writeXML(w, http.StatusOK, result{LastModified: o.modTime.UTC().Format(isoTime), ETag: o.etag})
	req.call.Status = http.StatusOK
	return nil
}

func etagMatch(header, etag string) bool {
	for _, m := range strings.Split(header, ",") {
		m = strings.TrimSpace(m)
		if m == "*" || strings.EqualFold(strings.Trim(m, `"`), strings.Trim(etag, `"`)) {
			return true
		}
	}
	return false
}

// byteRange is a parsed single-range Range header.
type byteRange struct{ start, end int64 } // inclusive

// parseRange interprets a Range header against an object of size bytes.
// ok is false when the header is absent or not a single byte range (the
// service then ignores it); satisfiable is false when it is a valid range
// that selects no byte of the object.
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
	case first == "": // suffix: last N bytes
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

func (s *Server) getObject(w http.ResponseWriter, r *http.Request, req *request) *ossError {
	truncate, stall := req.call.Status == -1, req.call.Status == -2
	req.call.Status = 0
	s.mu.Lock()
	b, e := s.lookupBucket(req)
	var o *object
	if e == nil {
		if o = b.objects[req.key]; o == nil {
			e = errNoSuchKey(req.key)
		}
	}
	s.mu.Unlock()
	if e != nil {
		return e
	}

	h := w.Header()
	h.Set("ETag", o.etag)
	h.Set("Last-Modified", o.modTime.UTC().Format(http.TimeFormat))
	if req.call.Op == "GetObjectMeta" {
		h.Set("Content-Length", strconv.Itoa(len(o.data)))
		w.WriteHeader(http.StatusOK)
		req.call.Status = http.StatusOK
		s.record(req.call)
		return nil
	}
	h.Set("Content-Type", o.contentType)
	h.Set("x-oss-object-type", o.objType)
	h.Set("x-oss-storage-class", "Standard")
	h.Set("x-oss-hash-crc64ecma", strconv.FormatUint(o.crc, 10))
	h.Set("Accept-Ranges", "bytes")
	for k, v := range o.meta {
		h.Set("x-oss-meta-"+k, v)
	}
	if m := r.Header.Get("If-Match"); m != "" && !etagMatch(m, o.etag) {
		return &ossError{status: http.StatusPreconditionFailed, code: "PreconditionFailed",
			message: "At least one of the pre-conditions you specified did not hold."}
	}

	size := int64(len(o.data))
	body := o.data
	status := http.StatusOK
	if rh := r.Header.Get("Range"); rh != "" {
		br, ok, satisfiable := parseRange(rh, size)
		standard := strings.EqualFold(r.Header.Get("x-oss-range-behavior"), "standard")
		switch {
		case ok && satisfiable:
			status = http.StatusPartialContent
			body = o.data[br.start : br.end+1]
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", br.start, br.end, size))
		case ok && standard:
			// Without x-oss-range-behavior: standard, OSS ignores an
			// unsatisfiable range and returns the whole object.
			for _, k := range []string{"ETag", "Last-Modified", "Content-Type", "x-oss-object-type",
				"x-oss-storage-class", "x-oss-hash-crc64ecma", "Accept-Ranges"} {
				h.Del(k)
			}
			for k := range o.meta {
				h.Del("x-oss-meta-" + k)
			}
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			return &ossError{status: http.StatusRequestedRangeNotSatisfiable, code: "InvalidRange",
				message: "The requested range cannot be satisfied"}
		}
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

func (s *Server) deleteObject(w http.ResponseWriter, req *request) *ossError {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, e := s.lookupBucket(req)
	if e != nil {
		return e
	}
	delete(b.objects, req.key) // deleting a missing key succeeds too
	w.WriteHeader(http.StatusNoContent)
	req.call.Status = http.StatusNoContent
	return nil
}

func (s *Server) initiateMultipart(w http.ResponseWriter, r *http.Request, req *request) *ossError {
	if e := validateKey(req.key); e != nil {
		return e
	}
	_, _ = io.Copy(io.Discard, r.Body)
	s.mu.Lock()
	b, e := s.lookupBucket(req)
	if e != nil {
		s.mu.Unlock()
		return e
	}
	s.seq++
	sum := md5.Sum([]byte(fmt.Sprintf("%s/%s/%d/%d", req.bucket, req.key, s.seq, s.now().UnixNano())))
	u := &upload{
		id:          strings.ToUpper(hex.EncodeToString(sum[:])),
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
func (s *Server) lookupUpload(req *request) (*bucket, *upload, *ossError) {
	b, e := s.lookupBucket(req)
	if e != nil {
		return nil, nil, e
	}
	id := req.query.Get("uploadId")
	u := b.uploads[id]
	if u == nil || u.key != req.key {
		return nil, nil, errNoSuchUpload(id)
	}
	return b, u, nil
}

func (s *Server) uploadPart(w http.ResponseWriter, r *http.Request, req *request) *ossError {
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
	h.Set("Content-MD5", base64.StdEncoding.EncodeToString(sum[:]))
	h.Set("x-oss-hash-crc64ecma", strconv.FormatUint(crc64.Checksum(data, crcTable), 10))
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	req.call.Status = http.StatusOK
	return nil
}

func (s *Server) completeMultipart(w http.ResponseWriter, r *http.Request, req *request) *ossError {
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
	var (
		data   []byte
		sums   []byte
		prev   int
		chosen []*part
	)
	for _, lp := range list.Parts {
		if lp.PartNumber <= prev {
			return &ossError{status: http.StatusBadRequest, code: "InvalidPartOrder",
				message: "The list of parts was not in ascending order. Parts list must specified in order by part number."}
		}
		prev = lp.PartNumber
		p := u.parts[lp.PartNumber]
		if p == nil || !strings.EqualFold(strings.Trim(lp.ETag, `"`), strings.Trim(p.etag, `"`)) {
			return &ossError{status: http.StatusBadRequest, code: "InvalidPart",
				message:  "One or more of the specified parts could not be found or the specified entity tag might not have matched the part's entity tag.",
				uploadID: u.id}
		}
		chosen = append(chosen, p)
	}
	// Sizes are checked once every listed part is known to exist.
	for i, p := range chosen {
		if i < len(chosen)-1 && int64(len(p.data)) < s.cfg.MinPartSize {
			return &ossError{status: http.StatusBadRequest, code: "EntityTooSmall",
				message: "Your proposed upload smaller than the minimum allowed size."}
		}
	}
	for _, p := range chosen {
		data = append(data, p.data...)
		sums = append(sums, p.sum[:]...)
	}
	whole := md5.Sum(sums)
	o := &object{
		data:        data,
		contentType: u.contentType,
		meta:        u.meta,
		etag:        `"` + strings.ToUpper(hex.EncodeToString(whole[:])) + "-" + strconv.Itoa(len(chosen)) + `"`,
		objType:     "Multipart",
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
	w.Header().Set("x-oss-hash-crc64ecma", strconv.FormatUint(o.crc, 10))
	writeXML(w, http.StatusOK, result{
		Location: "http://" + req.bucket + "." + s.cfg.Domain + "/" + url.PathEscape(req.key),
		Bucket:   req.bucket,
		Key:      req.key,
		ETag:     o.etag,
	})
	req.call.Status = http.StatusOK
	return nil
}

func (s *Server) abortMultipart(w http.ResponseWriter, req *request) *ossError {
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
