package s3api

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/osprey-storage/osprey"
)

func (h *handler) handlePutObject(w http.ResponseWriter, r *http.Request, rq *req) error {
	meta, err := metaFromHeaders(r.Header)
	if err != nil {
		return err
	}
	body, size, err := objectBody(r, rq.auth)
	if err != nil {
		return err
	}
	info, err := h.b.PutObject(r.Context(), rq.bucket, rq.key, body, size, meta)
	if err != nil {
		return fmt.Errorf("put object: %w", err)
	}
	w.Header().Set("ETag", quoteETag(info.ETag))
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	return nil
}

// setObjectHeaders writes the metadata headers shared by GET and HEAD.
func setObjectHeaders(hd http.Header, o ObjectInfo) {
	hd.Set("ETag", quoteETag(o.ETag))
	hd.Set("Last-Modified", o.ModTime.UTC().Format(http.TimeFormat))
	hd.Set("Accept-Ranges", "bytes")
	ct := o.Meta.ContentType
	if ct == "" {
		ct = "binary/octet-stream"
	}
	hd.Set("Content-Type", ct)
	for k, v := range map[string]string{
		"Content-Encoding":    o.Meta.ContentEncoding,
		"Content-Disposition": o.Meta.ContentDisposition,
		"Cache-Control":       o.Meta.CacheControl,
	} {
		if v != "" {
			hd.Set(k, v)
		}
	}
	for k, v := range o.Meta.UserMeta {
		hd["X-Amz-Meta-"+k] = []string{v}
	}
	if o.UID != "" {
		// The native API's name for the same object (GET /object?uid=).
		hd.Set("X-Osprey-Uid", o.UID)
	}
}

// errNotModified is returned by checkConditions for a 304.
var errNotModified = errors.New("s3api: not modified")

// checkConditions evaluates If-Match, If-Unmodified-Since, If-None-Match
// and If-Modified-Since in the order RFC 9110 section 13.2.2 (and S3) uses.
func checkConditions(r *http.Request, o ObjectInfo) error {
	mod := o.ModTime.UTC().Truncate(time.Second)
	etagIn := func(list string) bool {
		for _, e := range strings.Split(list, ",") {
			e = strings.TrimSpace(e)
			if e == "*" || unquoteETag(e) == o.ETag {
				return true
			}
		}
		return false
	}
	if v := r.Header.Get("If-Match"); v != "" {
		if !etagIn(v) {
			return s3Err("PreconditionFailed")
		}
	} else if v := r.Header.Get("If-Unmodified-Since"); v != "" {
		if t, err := http.ParseTime(v); err == nil && mod.After(t) {
			return s3Err("PreconditionFailed")
		}
	}
	if v := r.Header.Get("If-None-Match"); v != "" {
		if etagIn(v) {
			return errNotModified
		}
	} else if v := r.Header.Get("If-Modified-Since"); v != "" {
		if t, err := http.ParseTime(v); err == nil && !mod.After(t) {
			return errNotModified
		}
	}
	return nil
}

// parseRange parses a single-range "bytes=" header against size. ok is
// false when the header should be ignored (absent, malformed or multiple
// ranges, as S3 does); err is InvalidRange when it is unsatisfiable.
func parseRange(v string, size int64) (off, length int64, ok bool, err error) {
	spec, found := strings.CutPrefix(strings.TrimSpace(v), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, nil
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, nil
	}
	if first == "" { // suffix range: last N bytes
		n, perr := strconv.ParseInt(last, 10, 64)
		if perr != nil || n < 0 {
			return 0, 0, false, nil
		}
		if n == 0 || size == 0 {
			return 0, 0, false, s3Err("InvalidRange")
		}
		n = min(n, size)
		return size - n, n, true, nil
	}
	start, perr := strconv.ParseInt(first, 10, 64)
	if perr != nil || start < 0 {
		return 0, 0, false, nil
	}
	end := size - 1
	if last != "" {
		e, perr := strconv.ParseInt(last, 10, 64)
		if perr != nil || e < start {
			return 0, 0, false, nil
		}
		end = min(e, size-1)
	}
	if start >= size {
		return 0, 0, false, s3Err("InvalidRange")
	}
	return start, end - start + 1, true, nil
}

func (h *handler) handleHeadObject(w http.ResponseWriter, r *http.Request, rq *req) error {
	o, err := h.b.HeadObject(r.Context(), rq.bucket, rq.key)
	if err != nil {
		return fmt.Errorf("head object: %w", err)
	}
	if err := checkConditions(r, o); err != nil {
		return h.conditionFailed(w, o, err)
	}
	setObjectHeaders(w.Header(), o)
	w.Header().Set("Content-Length", strconv.FormatInt(o.Size, 10))
	w.WriteHeader(http.StatusOK)
	return nil
}

// conditionFailed writes a 304 itself or returns the 412 error.
func (h *handler) conditionFailed(w http.ResponseWriter, o ObjectInfo, err error) error {
	if errors.Is(err, errNotModified) {
		w.Header().Set("ETag", quoteETag(o.ETag))
		w.Header().Set("Last-Modified", o.ModTime.UTC().Format(http.TimeFormat))
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	return err
}

// responseOverrides maps response-* query parameters to the headers they
// replace.
var responseOverrides = map[string]string{
	"response-content-type":        "Content-Type",
	"response-content-language":    "Content-Language",
	"response-expires":             "Expires",
	"response-cache-control":       "Cache-Control",
	"response-content-disposition": "Content-Disposition",
	"response-content-encoding":    "Content-Encoding",
}

func (h *handler) handleGetObject(w http.ResponseWriter, r *http.Request, rq *req) error {
	ctx := r.Context()
	var (
		o                ObjectInfo
		body             io.ReadCloser
		off, length      int64
		partial, decided bool
	)
	// HeadObject first: conditions and the range need the size and ETag
	// before any byte is fetched. If the object is replaced between the
	// two calls (the ETags differ), decide again against the new version.
	for attempt := 0; attempt < 3 && !decided; attempt++ {
		head, err := h.b.HeadObject(ctx, rq.bucket, rq.key)
		if err != nil {
			return fmt.Errorf("get object: %w", err)
		}
		if err := checkConditions(r, head); err != nil {
			return h.conditionFailed(w, head, err)
		}
		off, length, partial = 0, -1, false
		if v := r.Header.Get("Range"); v != "" {
			off, length, partial, err = parseRange(v, head.Size)
			if err != nil {
				w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", head.Size))
				return err
			}
			if !partial {
				off, length = 0, -1
			}
		}
		o, body, err = h.b.GetObject(ctx, rq.bucket, rq.key, off, length)
		if err != nil {
			return fmt.Errorf("get object: %w", err)
		}
		if o.ETag == head.ETag && o.Size == head.Size {
			decided = true
		} else {
			body.Close()
		}
	}
	if !decided {
		return fmt.Errorf("get object: object keeps changing between head and get: %w", osprey.ErrUnavailable)
	}
	defer body.Close()
	if length < 0 {
		length = o.Size - off
	}
	hd := w.Header()
	setObjectHeaders(hd, o)
	for p, hname := range responseOverrides {
		if v := rq.q.Get(p); v != "" {
			hd.Set(hname, v)
		}
	}
	hd.Set("Content-Length", strconv.FormatInt(length, 10))
	status := http.StatusOK
	if partial {
		hd.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+length-1, o.Size))
		status = http.StatusPartialContent
	}
	w.WriteHeader(status)
	if _, err := io.CopyN(w, body, length); err != nil {
		// Headers are gone; all we can do is log and cut the connection
		// short (the client sees a body shorter than Content-Length).
		loggerFrom(ctx, h.log).Warn("get object body copy failed", "err", err)
	}
	return nil
}

func (h *handler) handleDeleteObject(w http.ResponseWriter, r *http.Request, rq *req) error {
	if err := h.b.DeleteObject(r.Context(), rq.bucket, rq.key); err != nil {
		return fmt.Errorf("delete object: %w", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// parseCopySource parses x-amz-copy-source: "[/]bucket/key[?versionId=...]",
// URL-encoded.
func parseCopySource(v string) (bucket, key string, err error) {
	v, ver, _ := strings.Cut(v, "?")
	if ver != "" {
		vq, _ := url.ParseQuery(ver)
		if id := vq.Get("versionId"); id != "" && id != "null" {
			return "", "", notImplemented("Copying a specific object version")
		}
	}
	dec, uerr := url.PathUnescape(v)
	if uerr != nil {
		return "", "", s3Err("InvalidArgument", "Invalid copy source encoding.")
	}
	dec = strings.TrimPrefix(dec, "/")
	bucket, key, ok := strings.Cut(dec, "/")
	if !ok || bucket == "" || key == "" {
		return "", "", s3Err("InvalidArgument", "Copy Source must mention the source bucket and key: sourcebucket/sourcekey.")
	}
	if validBucketName(bucket) != nil {
		return "", "", ErrNoSuchBucket
	}
	if len(key) > MaxKeyLength {
		return "", "", s3Err("KeyTooLongError")
	}
	return bucket, key, nil
}

func (h *handler) handleCopyObject(w http.ResponseWriter, r *http.Request, rq *req, src string) error {
	sb, sk, err := parseCopySource(src)
	if err != nil {
		return err
	}
	var meta *ObjectMeta
	switch d := r.Header.Get("X-Amz-Metadata-Directive"); d {
	case "", "COPY":
		if sb == rq.bucket && sk == rq.key {
			return s3Err("InvalidRequest", "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.")
		}
	case "REPLACE":
		m, err := metaFromHeaders(r.Header)
		if err != nil {
			return err
		}
		meta = &m
	default:
		return s3Err("InvalidArgument", "Unknown metadata directive.")
	}
	if err := h.copySourceConditions(r, sb, sk); err != nil {
		return err
	}
	o, err := h.b.CopyObject(r.Context(), sb, sk, rq.bucket, rq.key, meta)
	if err != nil {
		return fmt.Errorf("copy object: %w", err)
	}
	return writeXML(w, http.StatusOK, struct {
		XMLName      xml.Name `xml:"CopyObjectResult"`
		NS           string   `xml:"xmlns,attr"`
		LastModified string   `xml:"LastModified"`
		ETag         string   `xml:"ETag"`
	}{NS: s3Namespace, LastModified: s3Time(o.ModTime), ETag: quoteETag(o.ETag)})
}

// copySourceConditions evaluates x-amz-copy-source-if-* against the source;
// any failure is 412.
func (h *handler) copySourceConditions(r *http.Request, sb, sk string) error {
	hd := r.Header
	names := []string{"X-Amz-Copy-Source-If-Match", "X-Amz-Copy-Source-If-None-Match", "X-Amz-Copy-Source-If-Modified-Since", "X-Amz-Copy-Source-If-Unmodified-Since"}
	any := false
	for _, n := range names {
		if hd.Get(n) != "" {
			any = true
		}
	}
	if !any {
		return nil
	}
	o, err := h.b.HeadObject(r.Context(), sb, sk)
	if err != nil {
		return fmt.Errorf("copy source: %w", err)
	}
	fake := &http.Request{Header: http.Header{}}
	for i, n := range []string{"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		if v := hd.Get(names[i]); v != "" {
			fake.Header.Set(n, v)
		}
	}
	if err := checkConditions(fake, o); err != nil {
		return s3Err("PreconditionFailed")
	}
	return nil
}

func (h *handler) handleDeleteObjects(w http.ResponseWriter, r *http.Request, rq *req) error {
	data, err := smallBody(r, rq.auth)
	if err != nil {
		return err
	}
	var in struct {
		Quiet   bool `xml:"Quiet"`
		Objects []struct {
			Key       string `xml:"Key"`
			VersionID string `xml:"VersionId"`
		} `xml:"Object"`
	}
	if err := xml.Unmarshal(data, &in); err != nil || len(in.Objects) == 0 || len(in.Objects) > 1000 {
		return s3Err("MalformedXML")
	}
	if err := h.b.HeadBucket(r.Context(), rq.bucket); err != nil {
		return fmt.Errorf("delete objects: %w", err)
	}
	type deleted struct {
		Key string `xml:"Key"`
	}
	type delErr struct {
		Key     string `xml:"Key"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	out := struct {
		XMLName xml.Name  `xml:"DeleteResult"`
		NS      string    `xml:"xmlns,attr"`
		Deleted []deleted `xml:"Deleted"`
		Errors  []delErr  `xml:"Error"`
	}{NS: s3Namespace}
	log := loggerFrom(r.Context(), h.log)
	for _, o := range in.Objects {
		var err error
		switch {
		case o.Key == "":
			err = s3Err("InvalidArgument", "Object key must not be empty.")
		case len(o.Key) > MaxKeyLength:
			err = s3Err("KeyTooLongError")
		case o.VersionID != "" && o.VersionID != "null":
			err = notImplemented("Deleting a specific object version")
		default:
			err = h.b.DeleteObject(r.Context(), rq.bucket, o.Key)
		}
		if err != nil {
			ae := toAPIError(err)
			if ae.Status >= 500 {
				log.Error("delete objects: one key failed", "key", o.Key, "err", err)
			}
			out.Errors = append(out.Errors, delErr{Key: o.Key, Code: ae.Code, Message: ae.Message})
			continue
		}
		if !in.Quiet {
			out.Deleted = append(out.Deleted, deleted{Key: o.Key})
		}
	}
	return writeXML(w, http.StatusOK, out)
}
