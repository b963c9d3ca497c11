package ossfake

import (
	"encoding/xml"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/osprey-storage/osprey/backend/internal/fakestore"
)

func (s *Server) classify(r *http.Request) *fakestore.Request {
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
		op = bucketOp(r.Method, q)
	default:
		op = objectOp(r, q)
	}
	c := fakestore.Call{Op: op, Bucket: bucketName, Key: key, UploadID: q.Get("uploadId"), Range: r.Header.Get("Range"), Host: r.Host}
	if op == "UploadPart" {
		c.PartNumber, _ = strconv.Atoi(q.Get("partNumber"))
	}
	return &fakestore.Request{Call: c, BucketName: bucketName, Key: key, Query: q}
}

func bucketOp(method string, q url.Values) string {
	switch {
	case method == http.MethodPut && len(q) == 0:
		return "PutBucket"
	case method == http.MethodGet && q.Has("bucketInfo"):
		return "GetBucketInfo"
	case method == http.MethodHead && len(q) == 0:
		return "HeadBucket"
	case method == http.MethodDelete && len(q) == 0:
		return "DeleteBucket"
	}
	return "Unsupported"
}

func objectOp(r *http.Request, q url.Values) string {
	copySource := r.Header.Get("x-oss-copy-source") != ""
	switch r.Method {
	case http.MethodPut:
		switch {
		case q.Has("partNumber") && q.Has("uploadId") && !copySource:
			return "UploadPart"
		case copySource:
			return "CopyObject"
		case !hasSubResource(q):
			return "PutObject"
		}
	case http.MethodGet:
		if !hasSubResource(q, "response-content-type", "response-content-disposition",
			"response-cache-control", "response-content-encoding", "response-expires",
			"response-content-language") {
			return "GetObject"
		}
	case http.MethodHead:
		switch {
		case q.Has("objectMeta"):
			return "GetObjectMeta"
		case !hasSubResource(q):
			return "HeadObject"
		}
	case http.MethodDelete:
		switch {
		case q.Has("uploadId"):
			return "AbortMultipartUpload"
		case !hasSubResource(q):
			return "DeleteObject"
		}
	case http.MethodPost:
		switch {
		case q.Has("uploads"):
			return "InitiateMultipartUpload"
		case q.Has("uploadId"):
			return "CompleteMultipartUpload"
		}
	}
	return "Unsupported"
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

// serve answers the operations whose wire form is OSS's own; the core
// answers the rest.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, req *fakestore.Request) *fakestore.Error {
	switch req.Call.Op {
	case "ListBuckets":
		return s.listBuckets(w, req)
	case "GetBucketInfo":
		return s.getBucketInfo(w, req)
	case "CopyObject":
		return s.copyObject(w, r, req)
	case "GetObject", "HeadObject", "GetObjectMeta":
		return getObject(w, r, req)
	}
	return req.NotImplemented()
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

func validateKey(key string) *fakestore.Error {
	e := &fakestore.Error{Status: http.StatusBadRequest, Code: "InvalidObjectName", Key: key}
	switch {
	case len(key) > 1023:
		e.Message = "The Length of Object name must be less than 1024."
	case !utf8.ValidString(key) || strings.HasPrefix(key, "/") || strings.HasPrefix(key, `\`):
		e.Message = "The specified object is not valid."
	default:
		return nil
	}
	return e
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

func (s *Server) listBuckets(w http.ResponseWriter, req *fakestore.Request) *fakestore.Error {
	prefix, marker := req.Query.Get("prefix"), req.Query.Get("marker")
	maxKeys := 100
	if v := req.Query.Get("max-keys"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return fakestore.InvalidArgument("Argument max-keys must be an integer between 1 and 1000.")
		}
		maxKeys = n
	}
	buckets := req.Buckets(prefix, marker)
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
	res := result{Prefix: prefix, Marker: marker, Owner: ownerXML{ID: req.CallerID, DisplayName: req.CallerID}}
	if req.Query.Has("max-keys") {
		res.MaxKeys = maxKeys
	}
	if len(buckets) > maxKeys {
		buckets = buckets[:maxKeys]
		res.IsTruncated = true
		res.NextMarker = buckets[len(buckets)-1].Name
	}
	for _, b := range buckets {
		res.Buckets = append(res.Buckets, s.bucketXML(b))
	}
	return req.WriteXML(w, http.StatusOK, res)
}

func (s *Server) bucketXML(b fakestore.BucketInfo) bucketXML {
	return bucketXML{
		CreationDate:     b.Created.UTC().Format(fakestore.ISOTime),
		ExtranetEndpoint: s.cfg.Domain,
		IntranetEndpoint: strings.Replace(s.cfg.Domain, ".aliyuncs.com", "-internal.aliyuncs.com", 1),
		Location:         s.cfg.Location,
		Name:             b.Name,
		StorageClass:     "Standard",
	}
}

func (s *Server) getBucketInfo(w http.ResponseWriter, req *fakestore.Request) *fakestore.Error {
	b, e := req.Bucket()
	if e != nil {
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
	res.Bucket.Owner = ownerXML{ID: b.Owner, DisplayName: b.Owner}
	res.Bucket.ACL = "private"
	return req.WriteXML(w, http.StatusOK, res)
}

// getObject answers GetObject, HeadObject and GetObjectMeta. Without
// "x-oss-range-behavior: standard", OSS ignores an unsatisfiable range and
// returns the whole object.
func getObject(w http.ResponseWriter, r *http.Request, req *fakestore.Request) *fakestore.Error {
	o, e := req.FindObject()
	if e != nil {
		return e
	}
	h := w.Header()
	if req.Call.Op == "GetObjectMeta" {
		h.Set("ETag", o.ETag)
		h.Set("Last-Modified", o.ModTime.UTC().Format(http.TimeFormat))
		return req.WriteBody(w, r, http.StatusOK, o.Data)
	}
	objectType := "Normal"
	if o.Multipart {
		objectType = "Multipart"
	}
	if m := r.Header.Get("If-Match"); m != "" && !req.ETagMatch(m, o.ETag) {
		req.SetObjectHeaders(h, o)
		h.Set("x-oss-object-type", objectType)
		h.Set("x-oss-storage-class", "Standard")
		return req.PreconditionFailed()
	}
	standard := strings.EqualFold(r.Header.Get("x-oss-range-behavior"), "standard")
	body, status, e := req.SelectRange(w, r, o, standard)
	if e != nil {
		return e
	}
	req.SetObjectHeaders(h, o)
	h.Set("x-oss-object-type", objectType)
	h.Set("x-oss-storage-class", "Standard")
	return req.WriteBody(w, r, status, body)
}

func (s *Server) copyObject(w http.ResponseWriter, r *http.Request, req *fakestore.Request) *fakestore.Error {
	if e := validateKey(req.Key); e != nil {
		return e
	}
	_, _ = io.Copy(io.Discard, r.Body)
	src, e := parseCopySource(r, req)
	if e != nil {
		return e
	}
	o, e := req.Copy(r, src)
	if e == fakestore.ErrNotModified {
		return req.Reply(w, http.StatusNotModified)
	}
	if e != nil {
		return e
	}
	type result struct {
		XMLName      xml.Name `xml:"CopyObjectResult"`
		LastModified string   `xml:"LastModified"`
		ETag         string   `xml:"ETag"`
	}
	w.Header().Set("x-oss-hash-crc64ecma", strconv.FormatUint(o.CRC, 10))
	return req.WriteXML(w, http.StatusOK, result{LastModified: o.ModTime.UTC().Format(fakestore.ISOTime), ETag: o.ETag})
}

// parseCopySource reads "/<bucket>/<key>[?versionId=...]" and the
// metadata directive; a '?' inside the key arrives percent-encoded (the
// SDK encodes the key with url.QueryEscape).
func parseCopySource(r *http.Request, req *fakestore.Request) (fakestore.CopySource, *fakestore.Error) {
	badSource := fakestore.InvalidArgument("Copy Source must mention the source bucket and key: /sourcebucket/sourcekey.")
	src, srcQuery, hasQuery := strings.Cut(r.Header.Get("x-oss-copy-source"), "?")
	if hasQuery {
		if q, err := url.ParseQuery(srcQuery); err == nil && q.Has("versionId") && len(q) == 1 {
			return fakestore.CopySource{}, req.NotImplemented() // versioning
		}
		return fakestore.CopySource{}, badSource
	}
	srcPath, err := url.QueryUnescape(src)
	if err != nil || !strings.HasPrefix(srcPath, "/") {
		return fakestore.CopySource{}, badSource
	}
	srcBucket, srcKey, ok := strings.Cut(srcPath[1:], "/")
	if !ok || srcBucket == "" || srcKey == "" {
		return fakestore.CopySource{}, badSource
	}
	directive := r.Header.Get("x-oss-metadata-directive")
	if directive != "" && directive != "COPY" && directive != "REPLACE" {
		return fakestore.CopySource{}, fakestore.InvalidArgument("Unknown metadata directive.")
	}
	return fakestore.CopySource{
		Bucket:      srcBucket,
		Key:         srcKey,
		Replace:     directive == "REPLACE",
		IfMatch:     r.Header.Get("x-oss-copy-source-if-match"),
		IfNoneMatch: r.Header.Get("x-oss-copy-source-if-none-match"),
		SelfCopy:    fakestore.InvalidArgument("The source object is the same as the target object, and the metadata directive is not REPLACE."),
	}, nil
}
