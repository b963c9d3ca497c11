package s3api

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

func (h *handler) handleListBuckets(w http.ResponseWriter, r *http.Request) error {
	bs, err := h.b.ListBuckets(r.Context())
	if err != nil {
		return fmt.Errorf("list buckets: %w", err)
	}
	type bucket struct {
		Name         string `xml:"Name"`
		CreationDate string `xml:"CreationDate"`
	}
	out := struct {
		XMLName xml.Name `xml:"ListAllMyBucketsResult"`
		NS      string   `xml:"xmlns,attr"`
		Owner   owner    `xml:"Owner"`
		Buckets []bucket `xml:"Buckets>Bucket"`
	}{NS: s3Namespace, Owner: theOwner}
	for _, b := range bs {
		out.Buckets = append(out.Buckets, bucket{Name: b.Name, CreationDate: s3Time(b.Created)})
	}
	return writeXML(w, http.StatusOK, out)
}

func (h *handler) handleCreateBucket(w http.ResponseWriter, r *http.Request, rq *req) error {
	if err := validBucketName(rq.bucket); err != nil {
		return err
	}
	body, err := smallBody(r, rq.auth)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		var cfg struct {
			LocationConstraint string `xml:"LocationConstraint"`
		}
		if err := xml.Unmarshal(body, &cfg); err != nil {
			return s3Err("MalformedXML")
		}
		if cfg.LocationConstraint != "" && cfg.LocationConstraint != h.cfg.Region {
			return s3Err("InvalidLocationConstraint", "The specified location-constraint is not valid.")
		}
	}
	if err := h.b.CreateBucket(r.Context(), rq.bucket); err != nil {
		return fmt.Errorf("create bucket: %w", err)
	}
	w.Header().Set("Location", "/"+rq.bucket)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	return nil
}

func (h *handler) handleHeadBucket(w http.ResponseWriter, r *http.Request, rq *req) error {
	if err := h.b.HeadBucket(r.Context(), rq.bucket); err != nil {
		return fmt.Errorf("head bucket: %w", err)
	}
	w.Header().Set("x-amz-bucket-region", h.cfg.Region)
	w.WriteHeader(http.StatusOK)
	return nil
}

func (h *handler) handleDeleteBucket(w http.ResponseWriter, r *http.Request, rq *req) error {
	if err := h.b.DeleteBucket(r.Context(), rq.bucket); err != nil {
		return fmt.Errorf("delete bucket: %w", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) handleGetBucketLocation(w http.ResponseWriter, r *http.Request, rq *req) error {
	if err := h.b.HeadBucket(r.Context(), rq.bucket); err != nil {
		return fmt.Errorf("get bucket location: %w", err)
	}
	return writeXML(w, http.StatusOK, struct {
		XMLName xml.Name `xml:"LocationConstraint"`
		NS      string   `xml:"xmlns,attr"`
		Region  string   `xml:",chardata"`
	}{NS: s3Namespace, Region: h.cfg.Region})
}

// handleBucketProbe answers the bucket-level configuration GETs that clients
// probe: with errCode if set, else with the fixed document body.
func (h *handler) handleBucketProbe(w http.ResponseWriter, r *http.Request, rq *req, errCode, body string) error {
	if err := h.b.HeadBucket(r.Context(), rq.bucket); err != nil {
		return fmt.Errorf("bucket probe: %w", err)
	}
	if errCode != "" {
		return s3Err(errCode)
	}
	return writeRawXML(w, http.StatusOK, body)
}

// listEntry is one <Contents> element.
type listEntry struct {
	Key          string `xml:"Key"`
	LastModified string `xml:"LastModified"`
	ETag         string `xml:"ETag"`
	Size         int64  `xml:"Size"`
	StorageClass string `xml:"StorageClass"`
	Owner        *owner `xml:"Owner,omitempty"`
}

type commonPrefix struct {
	Prefix string `xml:"Prefix"`
}

// encodeToken and decodeToken make the opaque V2 continuation token: the
// base64url of the last key or common prefix returned.
func encodeToken(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func decodeToken(s string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return "", s3Err("InvalidArgument", "The continuation token provided is incorrect.")
	}
	return string(b), nil
}

func (h *handler) handleListObjects(w http.ResponseWriter, r *http.Request, rq *req, version int) error {
	q := rq.q
	maxKeys := maxListKeys
	if v := q.Get("max-keys"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return s3Err("InvalidArgument", "Provided max-keys not an integer or within integer range.")
		}
		maxKeys = min(n, maxListKeys)
	}
	enc := q.Get("encoding-type")
	if enc != "" && enc != "url" {
		return s3Err("InvalidArgument", "Invalid Encoding Method specified in Request.")
	}
	encode := func(s string) string {
		if enc == "url" {
			return awsURIEncode(s, false)
		}
		return s
	}
	opts := ListOptions{Prefix: q.Get("prefix"), Delimiter: q.Get("delimiter"), MaxKeys: maxKeys}
	token := q.Get("continuation-token")
	if version == 2 {
		if q.Has("continuation-token") {
			sa, err := decodeToken(token)
			if err != nil {
				return err
			}
			opts.StartAfter = sa
		} else {
			opts.StartAfter = q.Get("start-after")
		}
	} else {
		opts.StartAfter = q.Get("marker")
	}
	var res ListResult
	if maxKeys > 0 {
		var err error
		res, err = h.b.ListObjects(r.Context(), rq.bucket, opts)
		if err != nil {
			return fmt.Errorf("list objects: %w", err)
		}
	} else if err := h.b.HeadBucket(r.Context(), rq.bucket); err != nil {
		return fmt.Errorf("list objects: %w", err)
	}
	fetchOwner := version == 1 || q.Get("fetch-owner") == "true"
	var contents []listEntry
	for _, o := range res.Objects {
		e := listEntry{Key: encode(o.Key), LastModified: s3Time(o.ModTime), ETag: quoteETag(o.ETag), Size: o.Size, StorageClass: "STANDARD"}
		if fetchOwner {
			ow := theOwner
			e.Owner = &ow
		}
		contents = append(contents, e)
	}
	var prefixes []commonPrefix
	for _, p := range res.CommonPrefixes {
		prefixes = append(prefixes, commonPrefix{Prefix: encode(p)})
	}
	if version == 2 {
		out := struct {
			XMLName               xml.Name       `xml:"ListBucketResult"`
			NS                    string         `xml:"xmlns,attr"`
			Name                  string         `xml:"Name"`
			Prefix                string         `xml:"Prefix"`
			Delimiter             string         `xml:"Delimiter,omitempty"`
			MaxKeys               int            `xml:"MaxKeys"`
			EncodingType          string         `xml:"EncodingType,omitempty"`
			KeyCount              int            `xml:"KeyCount"`
			IsTruncated           bool           `xml:"IsTruncated"`
			ContinuationToken     string         `xml:"ContinuationToken,omitempty"`
			NextContinuationToken string         `xml:"NextContinuationToken,omitempty"`
			StartAfter            string         `xml:"StartAfter,omitempty"`
			Contents              []listEntry    `xml:"Contents"`
			CommonPrefixes        []commonPrefix `xml:"CommonPrefixes"`
		}{
			NS: s3Namespace, Name: rq.bucket, Prefix: encode(opts.Prefix), Delimiter: encode(opts.Delimiter),
			MaxKeys: maxKeys, EncodingType: enc, KeyCount: len(contents) + len(prefixes),
			IsTruncated: res.IsTruncated, ContinuationToken: token, StartAfter: encode(q.Get("start-after")),
			Contents: contents, CommonPrefixes: prefixes,
		}
		if res.IsTruncated {
			out.NextContinuationToken = encodeToken(res.NextStartAfter)
		}
		return writeXML(w, http.StatusOK, out)
	}
	out := struct {
		XMLName        xml.Name       `xml:"ListBucketResult"`
		NS             string         `xml:"xmlns,attr"`
		Name           string         `xml:"Name"`
		Prefix         string         `xml:"Prefix"`
		Marker         string         `xml:"Marker"`
		NextMarker     string         `xml:"NextMarker,omitempty"`
		MaxKeys        int            `xml:"MaxKeys"`
		Delimiter      string         `xml:"Delimiter,omitempty"`
		EncodingType   string         `xml:"EncodingType,omitempty"`
		IsTruncated    bool           `xml:"IsTruncated"`
		Contents       []listEntry    `xml:"Contents"`
		CommonPrefixes []commonPrefix `xml:"CommonPrefixes"`
	}{
		NS: s3Namespace, Name: rq.bucket, Prefix: encode(opts.Prefix), Marker: encode(opts.StartAfter),
		MaxKeys: maxKeys, Delimiter: encode(opts.Delimiter), EncodingType: enc, IsTruncated: res.IsTruncated,
		Contents: contents, CommonPrefixes: prefixes,
	}
	if res.IsTruncated {
		out.NextMarker = encode(res.NextStartAfter)
	}
	return writeXML(w, http.StatusOK, out)
}
