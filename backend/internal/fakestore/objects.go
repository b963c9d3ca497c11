package fakestore

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"hash/crc64"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

var crcTable = crc64.MakeTable(crc64.ECMA)

// ISOTime is the layout of timestamps in XML answers.
const ISOTime = "2006-01-02T15:04:05.000Z"

// lookupBucket returns the bucket if it exists and the caller owns it.
// Callers hold the core's mutex.
func (req *Request) lookupBucket(name string) (*bucket, *Error) {
	b := req.core.buckets[name]
	if b == nil {
		e := req.Err(http.StatusNotFound, "NoSuchBucket")
		e.Bucket = name
		return nil, e
	}
	if b.owner != req.CallerID {
		return nil, req.Err(http.StatusForbidden, "AccessDenied")
	}
	return b, nil
}

// checkBucket is lookupBucket for the request's bucket, taking the lock.
func (req *Request) checkBucket() *Error {
	req.core.mu.Lock()
	defer req.core.mu.Unlock()
	_, e := req.lookupBucket(req.BucketName)
	return e
}

func (req *Request) noSuchKey(key string) *Error {
	e := req.Err(http.StatusNotFound, "NoSuchKey")
	e.Key = key
	return e
}

// WriteXML sends v as an XML answer with the provider's XML header.
func (req *Request) WriteXML(w http.ResponseWriter, status int, v any) *Error {
	out, err := xml.Marshal(v)
	if err != nil {
		panic(err) // static types; cannot happen
	}
	out = append([]byte(req.core.d.XMLHeader), out...)
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(status)
	_, _ = w.Write(out)
	req.Call.Status = status
	return nil
}

func (req *Request) putBucket(w http.ResponseWriter, r *http.Request) *Error {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return InvalidArgument("Could not read the request body.")
	}
	if len(bytes.TrimSpace(body)) > 0 {
		var cfg struct {
			XMLName xml.Name `xml:"CreateBucketConfiguration"`
		}
		if xml.Unmarshal(body, &cfg) != nil {
			return req.Err(http.StatusBadRequest, "MalformedXML")
		}
	}
	c := req.core
	if !c.d.ValidBucketName(req.BucketName) {
		e := req.Err(http.StatusBadRequest, "InvalidBucketName")
		e.Bucket = req.BucketName
		return e
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if b := c.buckets[req.BucketName]; b != nil {
		code := "BucketAlreadyExists"
		if c.d.OwnedByYou && b.owner == req.CallerID {
			code = "BucketAlreadyOwnedByYou"
		}
		e := req.Err(http.StatusConflict, code)
		e.Bucket = req.BucketName
		return e
	}
	c.buckets[req.BucketName] = &bucket{
		name:    req.BucketName,
		owner:   req.CallerID,
		created: c.Now(),
		objects: make(map[string]*Object),
		uploads: make(map[string]*upload),
	}
	if c.d.PutBucketLocation {
		w.Header().Set("Location", "/"+req.BucketName)
	}
	w.Header().Set("Content-Length", "0")
	return req.Reply(w, http.StatusOK)
}

// InvalidArgument is a 400 InvalidArgument answer with msg.
func InvalidArgument(msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "InvalidArgument", Message: msg}
}

func (req *Request) headBucket(w http.ResponseWriter) *Error {
	if e := req.checkBucket(); e != nil {
		return e
	}
	for k, v := range req.core.d.BucketHeaders {
		w.Header()[k] = v
	}
	return req.Reply(w, http.StatusOK)
}

func (req *Request) deleteBucket(w http.ResponseWriter) *Error {
	c := req.core
	c.mu.Lock()
	defer c.mu.Unlock()
	b, e := req.lookupBucket(req.BucketName)
	if e != nil {
		return e
	}
	if len(b.objects) > 0 || len(b.uploads) > 0 {
		e := req.Err(http.StatusConflict, "BucketNotEmpty")
		e.Bucket = req.BucketName
		return e
	}
	delete(c.buckets, req.BucketName)
	return req.Reply(w, http.StatusNoContent)
}

// readBody reads the whole request body and checks Content-MD5 if sent.
func (req *Request) readBody(r *http.Request) ([]byte, [md5.Size]byte, *Error) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, [md5.Size]byte{}, req.Err(http.StatusBadRequest, "IncompleteBody")
	}
	sum := md5.Sum(data)
	if cm := r.Header.Get("Content-MD5"); cm != "" {
		want, err := base64.StdEncoding.DecodeString(cm)
		if err != nil || len(want) != md5.Size {
			return nil, sum, req.Err(http.StatusBadRequest, "InvalidDigest")
		}
		if !bytes.Equal(want, sum[:]) {
			return nil, sum, req.Err(http.StatusBadRequest, req.core.d.BadDigestCode)
		}
	}
	return data, sum, nil
}

// UserMeta extracts the provider's meta headers, names lower-cased and
// without the prefix.
func (req *Request) UserMeta(h http.Header) map[string]string {
	prefix := req.core.d.HeaderPrefix + "meta-"
	meta := make(map[string]string)
	for name, vals := range h {
		if rest, ok := strings.CutPrefix(strings.ToLower(name), prefix); ok && len(vals) > 0 {
			meta[rest] = vals[0]
		}
	}
	return meta
}

// ContentType is the request's Content-Type, application/octet-stream by
// default.
func ContentType(r *http.Request) string {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		return ct
	}
	return "application/octet-stream"
}

func (req *Request) hex(sum []byte) string {
	s := hex.EncodeToString(sum)
	if req.core.d.UpperHexETags {
		s = strings.ToUpper(s)
	}
	return s
}

// ETagMatch reports whether an If-Match style header (a list, or "*")
// names etag.
func (req *Request) ETagMatch(header, etag string) bool {
	for _, m := range strings.Split(header, ",") {
		m = strings.TrimSpace(m)
		if m == "*" || req.sameETag(m, etag) {
			return true
		}
	}
	return false
}

func (req *Request) sameETag(a, b string) bool {
	a, b = strings.Trim(a, `"`), strings.Trim(b, `"`)
	if req.core.d.FoldETags {
		return strings.EqualFold(a, b)
	}
	return a == b
}

// setCRC sets the provider's CRC-64 header.
func (req *Request) setCRC(h http.Header, crc uint64) {
	h.Set(req.core.d.HeaderPrefix+"hash-crc64ecma", strconv.FormatUint(crc, 10))
}

// replyStored answers a PutObject or UploadPart.
func (req *Request) replyStored(w http.ResponseWriter, etag string, sum [md5.Size]byte, crc uint64) *Error {
	h := w.Header()
	h.Set("ETag", etag)
	if req.core.d.EchoContentMD5 {
		h.Set("Content-MD5", base64.StdEncoding.EncodeToString(sum[:]))
	}
	req.setCRC(h, crc)
	h.Set("Content-Length", "0")
	return req.Reply(w, http.StatusOK)
}

func (req *Request) putObject(w http.ResponseWriter, r *http.Request) *Error {
	c := req.core
	if e := c.d.ValidKey(req.Key); e != nil {
		return e
	}
	if e := req.checkBucket(); e != nil {
		return e
	}
	data, sum, e := req.readBody(r)
	if e != nil {
		return e
	}
	o := &Object{
		Data:        data,
		ContentType: ContentType(r),
		Meta:        req.UserMeta(r.Header),
		ETag:        `"` + req.hex(sum[:]) + `"`,
		ModTime:     c.Now().Truncate(time.Second),
		CRC:         crc64.Checksum(data, crcTable),
	}
	c.mu.Lock()
	b, e := req.lookupBucket(req.BucketName) // it may have been deleted meanwhile
	if e == nil {
		b.objects[req.Key] = o // atomic replacement
	}
	c.mu.Unlock()
	if e != nil {
		return e
	}
	return req.replyStored(w, o.ETag, sum, o.CRC)
}

func (req *Request) deleteObject(w http.ResponseWriter) *Error {
	c := req.core
	c.mu.Lock()
	defer c.mu.Unlock()
	b, e := req.lookupBucket(req.BucketName)
	if e != nil {
		return e
	}
	delete(b.objects, req.Key) // deleting a missing key succeeds too
	return req.Reply(w, http.StatusNoContent)
}

// FindObject returns the request's object.
func (req *Request) FindObject() (*Object, *Error) {
	c := req.core
	c.mu.Lock()
	defer c.mu.Unlock()
	b, e := req.lookupBucket(req.BucketName)
	if e != nil {
		return nil, e
	}
	o := b.objects[req.Key]
	if o == nil {
		return nil, req.noSuchKey(req.Key)
	}
	return o, nil
}

// SetObjectHeaders sets what GET and HEAD Object answer about o: ETag,
// Last-Modified, Content-Type, the CRC-64, Accept-Ranges and the user
// metadata.
func (req *Request) SetObjectHeaders(h http.Header, o *Object) {
	h.Set("ETag", o.ETag)
	h.Set("Last-Modified", o.ModTime.UTC().Format(http.TimeFormat))
	h.Set("Content-Type", o.ContentType)
	req.setCRC(h, o.CRC)
	h.Set("Accept-Ranges", "bytes")
	for k, v := range o.Meta {
		h.Set(req.core.d.HeaderPrefix+"meta-"+k, v)
	}
}

// PreconditionFailed is the answer to a failed If-Match.
func (req *Request) PreconditionFailed() *Error {
	return req.Err(http.StatusPreconditionFailed, "PreconditionFailed")
}

// SelectRange applies the request's Range header to o: a satisfiable
// single byte range selects its bytes (206, Content-Range); an
// unsatisfiable one is 416 InvalidRange if strict and otherwise ignored,
// as are malformed and multi-range headers (200, whole object).
func (req *Request) SelectRange(w http.ResponseWriter, r *http.Request, o *Object, strict bool) ([]byte, int, *Error) {
	rh := r.Header.Get("Range")
	if rh == "" {
		return o.Data, http.StatusOK, nil
	}
	size := int64(len(o.Data))
	br, ok, satisfiable := parseRange(rh, size)
	switch {
	case ok && satisfiable:
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", br.start, br.end, size))
		return o.Data[br.start : br.end+1], http.StatusPartialContent, nil
	case ok && strict:
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
		return nil, 0, req.Err(http.StatusRequestedRangeNotSatisfiable, "InvalidRange")
	}
	return o.Data, http.StatusOK, nil
}

// WriteBody sends status and body (only the headers for HEAD) and records
// the call before the body goes out. Under FaultTruncateBody or
// FaultStallBody it sends half of the body and then drops the connection,
// at once or once the client gives up.
func (req *Request) WriteBody(w http.ResponseWriter, r *http.Request, status int, body []byte) *Error {
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	req.Call.Status = status
	req.core.record(req.Call)
	req.recorded = true
	if r.Method == http.MethodHead {
		return nil
	}
	if req.truncate || req.stall {
		_, _ = w.Write(body[:len(body)/2])
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		if req.stall {
			<-r.Context().Done()
		}
		panic(http.ErrAbortHandler)
	}
	_, _ = w.Write(body)
	return nil
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
	case first == "": // suffix: last N bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			return br, false, false
		}
		if n == 0 || size == 0 {
			return br, true, false
		}
		return byteRange{size - min(n, size), size - 1}, true, true
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
		return byteRange{a, min(b, size-1)}, true, true
	}
}

// CopySource is what a CopyObject asks for, parsed by the provider.
type CopySource struct {
	Bucket, Key string
	// Replace takes the metadata from the request instead of the source.
	Replace bool
	// IfMatch and IfNoneMatch are the copy-source conditions ("" for none).
	IfMatch, IfNoneMatch string
	// SelfCopy is the answer to copying an object onto itself without
	// Replace.
	SelfCopy *Error
}

// ErrNotModified is what Copy returns when IfNoneMatch matches; each
// provider answers it its own way.
var ErrNotModified = &Error{Status: http.StatusNotModified, Code: "NotModified"}

// Copy stores a copy of src under the request's key and returns it.
func (req *Request) Copy(r *http.Request, src CopySource) (*Object, *Error) {
	c := req.core
	c.mu.Lock()
	defer c.mu.Unlock()
	dst, e := req.lookupBucket(req.BucketName)
	if e != nil {
		return nil, e
	}
	sb, e := req.lookupBucket(src.Bucket)
	if e != nil {
		return nil, e
	}
	so := sb.objects[src.Key]
	if so == nil {
		return nil, req.noSuchKey(src.Key)
	}
	if src.IfMatch != "" && !req.ETagMatch(src.IfMatch, so.ETag) {
		return nil, req.PreconditionFailed()
	}
	if src.IfNoneMatch != "" && req.ETagMatch(src.IfNoneMatch, so.ETag) {
		return nil, ErrNotModified
	}
	o := *so // Data is immutable once stored
	o.ModTime = c.Now().Truncate(time.Second)
	if src.Replace {
		o.ContentType = ContentType(r)
		o.Meta = req.UserMeta(r.Header)
	} else if src.Bucket == req.BucketName && src.Key == req.Key {
		return nil, src.SelfCopy
	}
	dst.objects[req.Key] = &o
	return &o, nil
}
