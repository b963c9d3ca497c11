package cosfake

import (
	"encoding/xml"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/osprey-storage/osprey/backend/internal/fakestore"
)

// maxHostLen is COS's limit on the full bucket domain
// "<name>-<appid>.cos.<region>.myqcloud.com".
const maxHostLen = 60

func (s *Server) classify(r *http.Request) *fakestore.Request {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	q := r.URL.Query()
	req := &fakestore.Request{Query: q}
	service := false
	switch {
	case host == "service.cos.myqcloud.com" || host == "service.cos.tencentcos.cn" ||
		host == "cos."+s.cfg.Region+".myqcloud.com" || host == "cos."+s.cfg.Region+".tencentcos.cn":
		service = true
	default:
		name, region, ok := splitBucketHost(host)
		switch {
		case !ok:
			req.HostErr = &fakestore.Error{Status: http.StatusBadRequest, Code: "InvalidURI",
				Message: "Could not parse the specified URI."}
		case region != s.cfg.Region:
			req.HostErr = errNoSuchBucket() // the bucket would live in another region
		default:
			req.BucketName = name
		}
		req.Key = strings.TrimPrefix(r.URL.Path, "/")
	}
	op := "Unsupported"
	switch {
	case service:
		if r.Method == http.MethodGet && r.URL.Path == "/" {
			op = "GetService"
		}
	case req.Key == "" && len(q) == 0:
		op = map[string]string{http.MethodPut: "PutBucket", http.MethodHead: "HeadBucket",
			http.MethodDelete: "DeleteBucket"}[r.Method]
		if op == "" {
			op = "Unsupported"
		}
	case req.Key != "":
		op = objectOp(r, q)
	}
	req.Call = fakestore.Call{Op: op, Bucket: req.BucketName, Key: req.Key, UploadID: q.Get("uploadId"),
		Range: r.Header.Get("Range"), Host: r.Host}
	if op == "UploadPart" {
		req.Call.PartNumber, _ = strconv.Atoi(q.Get("partNumber"))
	}
	return req
}

func objectOp(r *http.Request, q url.Values) string {
	copySource := r.Header.Get("x-cos-copy-source") != ""
	switch r.Method {
	case http.MethodPut:
		switch {
		case q.Has("partNumber") && q.Has("uploadId") && !copySource:
			return "UploadPart"
		case copySource && !q.Has("uploadId"):
			return "CopyObject"
		case len(q) == 0:
			return "PutObject"
		}
	case http.MethodGet:
		for k := range q {
			if !strings.HasPrefix(k, "response-") && !strings.HasPrefix(k, "q-") {
				return "Unsupported"
			}
		}
		return "GetObject"
	case http.MethodHead:
		return "HeadObject"
	case http.MethodDelete:
		switch {
		case q.Has("uploadId"):
			return "AbortMultipartUpload"
		case len(q) == 0:
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

// serve answers the operations whose wire form is COS's own; the core
// answers the rest.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, req *fakestore.Request) *fakestore.Error {
	switch req.Call.Op {
	case "GetService":
		return s.getService(w, req)
	case "CopyObject":
		return s.copyObject(w, r, req)
	case "GetObject", "HeadObject":
		return getObject(w, r, req)
	}
	return req.NotImplemented()
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

func validateKey(key string) *fakestore.Error {
	if len(key) > 850 || !utf8.ValidString(key) {
		return &fakestore.Error{Status: http.StatusBadRequest, Code: "InvalidObjectName", Message: "The specified object name is invalid."}
	}
	return nil
}

func (s *Server) getService(w http.ResponseWriter, req *fakestore.Request) *fakestore.Error {
	type bucketXML struct {
		Name         string `xml:"Name"`
		Location     string `xml:"Location"`
		CreationDate string `xml:"CreationDate"`
		BucketType   string `xml:"BucketType"`
	}
	type result struct {
		XMLName xml.Name `xml:"ListAllMyBucketsResult"`
		Owner   struct {
			ID          string `xml:"ID"`
			DisplayName string `xml:"DisplayName"`
		} `xml:"Owner"`
		Buckets []bucketXML `xml:"Buckets>Bucket"`
	}
	var res result
	res.Owner.ID = "qcs::cam::uin/" + s.cfg.AppID + ":uin/" + s.cfg.AppID
	res.Owner.DisplayName = s.cfg.AppID
	for _, b := range req.Buckets("", "") {
		res.Buckets = append(res.Buckets, bucketXML{Name: b.Name, Location: s.cfg.Region,
			CreationDate: b.Created.UTC().Format(time.RFC3339), BucketType: "cos"})
	}
	return req.WriteXML(w, http.StatusOK, res)
}

// getObject answers GetObject and HeadObject; an unsatisfiable range is
// always 416.
func getObject(w http.ResponseWriter, r *http.Request, req *fakestore.Request) *fakestore.Error {
	o, e := req.FindObject()
	if e != nil {
		return e
	}
	if m := r.Header.Get("If-Match"); m != "" && !req.ETagMatch(m, o.ETag) {
		return req.PreconditionFailed()
	}
	body, status, e := req.SelectRange(w, r, o, true)
	if e != nil {
		return e
	}
	req.SetObjectHeaders(w.Header(), o)
	w.Header().Set("x-cos-storage-class", "STANDARD")
	return req.WriteBody(w, r, status, body)
}

func (s *Server) copyObject(w http.ResponseWriter, r *http.Request, req *fakestore.Request) *fakestore.Error {
	if e := validateKey(req.Key); e != nil {
		return e
	}
	_, _ = io.Copy(io.Discard, r.Body)
	src, e := s.parseCopySource(r, req)
	if e != nil {
		return e
	}
	o, e := req.Copy(r, src)
	if e == fakestore.ErrNotModified {
		return req.PreconditionFailed() // COS answers a matching If-None-Match with 412
	}
	if e != nil {
		return e
	}
	type result struct {
		XMLName      xml.Name `xml:"CopyObjectResult"`
		ETag         string   `xml:"ETag"`
		LastModified string   `xml:"LastModified"`
		CRC64        string   `xml:"CRC64"`
	}
	return req.WriteXML(w, http.StatusOK, result{ETag: o.ETag, LastModified: o.ModTime.UTC().Format(fakestore.ISOTime),
		CRC64: strconv.FormatUint(o.CRC, 10)})
}

// parseCopySource reads "<bucket>-<appid>.cos.<region>.myqcloud.com/<url-
// encoded key>" and the metadata directive. A literal '?' starts the query
// ("?versionId=..."); a '?' inside the key arrives percent-encoded.
func (s *Server) parseCopySource(r *http.Request, req *fakestore.Request) (fakestore.CopySource, *fakestore.Error) {
	badSource := &fakestore.Error{Status: http.StatusBadRequest, Code: "InvalidArgument",
		Message: "The x-cos-copy-source header is invalid."}
	srcHost, srcEscKey, ok := strings.Cut(r.Header.Get("x-cos-copy-source"), "/")
	srcBucket, srcRegion, hostOK := splitBucketHost(srcHost)
	srcEscKey, srcQuery, hasQuery := strings.Cut(srcEscKey, "?")
	srcKey, err := url.PathUnescape(srcEscKey)
	if !ok || !hostOK || err != nil || srcKey == "" {
		return fakestore.CopySource{}, badSource
	}
	if hasQuery {
		if q, err := url.ParseQuery(srcQuery); err == nil && q.Has("versionId") && len(q) == 1 {
			return fakestore.CopySource{}, req.NotImplemented() // versioning
		}
		return fakestore.CopySource{}, badSource
	}
	if srcRegion != s.cfg.Region {
		return fakestore.CopySource{}, errNoSuchBucket()
	}
	directive := r.Header.Get("x-cos-metadata-directive")
	if directive != "" && directive != "Copy" && directive != "Replaced" {
		return fakestore.CopySource{}, fakestore.InvalidArgument("The x-cos-metadata-directive header must be Copy or Replaced.")
	}
	return fakestore.CopySource{
		Bucket:      srcBucket,
		Key:         srcKey,
		Replace:     directive == "Replaced",
		IfMatch:     r.Header.Get("x-cos-copy-source-If-Match"),
		IfNoneMatch: r.Header.Get("x-cos-copy-source-If-None-Match"),
		SelfCopy: &fakestore.Error{Status: http.StatusBadRequest, Code: "InvalidRequest",
			Message: "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata."},
	}, nil
}
