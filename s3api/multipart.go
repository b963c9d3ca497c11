package s3api

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
)

// MultipartETag returns the S3 ETag of a completed multipart object: the hex
// md5 of the concatenated binary md5s of the parts, followed by "-N". Part
// ETags are unquoted hex md5s; an invalid one yields ErrInvalidPart.
// Backends call it so that their stored ETag matches what S3 clients expect.
func MultipartETag(parts []CompletePart) (string, error) {
	h := md5.New()
	for _, p := range parts {
		b, err := hex.DecodeString(unquoteETag(p.ETag))
		if err != nil || len(b) != md5.Size {
			return "", fmt.Errorf("part %d etag %q: %w", p.Number, p.ETag, ErrInvalidPart)
		}
		h.Write(b)
	}
	return fmt.Sprintf("%s-%d", hex.EncodeToString(h.Sum(nil)), len(parts)), nil
}

// ValidateCompleteParts checks a CompleteMultipartUpload part list against
// the uploaded parts: part numbers strictly ascending (ErrInvalidPartOrder),
// every listed part uploaded with a matching ETag (ErrInvalidPart), and every
// listed part but the last at least MinPartSize (ErrEntityTooSmall). The
// handler calls it with the parts from Backend.ListParts before calling
// Backend.CompleteMultipartUpload, so backends need not repeat it.
func ValidateCompleteParts(want []CompletePart, have []PartInfo) error {
	if len(want) == 0 {
		return s3Err("MalformedXML", "You must specify at least one part.")
	}
	byNum := make(map[int]PartInfo, len(have))
	for _, p := range have {
		byNum[p.Number] = p
	}
	for i, p := range want {
		if i > 0 && p.Number <= want[i-1].Number {
			return ErrInvalidPartOrder
		}
	}
	for _, p := range want {
		got, ok := byNum[p.Number]
		if !ok || got.ETag != unquoteETag(p.ETag) {
			return fmt.Errorf("part %d: %w", p.Number, ErrInvalidPart)
		}
	}
	for i, p := range want[:len(want)-1] {
		if got := byNum[p.Number]; got.Size < MinPartSize {
			return fmt.Errorf("part %d (#%d in the list) is %d bytes: %w", p.Number, i+1, got.Size, ErrEntityTooSmall)
		}
	}
	return nil
}

func (h *handler) handleCreateMultipartUpload(w http.ResponseWriter, r *http.Request, rq *req) error {
	meta, err := metaFromHeaders(r.Header)
	if err != nil {
		return err
	}
	id, err := h.b.CreateMultipartUpload(r.Context(), rq.bucket, rq.key, meta)
	if err != nil {
		return fmt.Errorf("create multipart upload: %w", err)
	}
	return writeXML(w, http.StatusOK, struct {
		XMLName  xml.Name `xml:"InitiateMultipartUploadResult"`
		NS       string   `xml:"xmlns,attr"`
		Bucket   string   `xml:"Bucket"`
		Key      string   `xml:"Key"`
		UploadID string   `xml:"UploadId"`
	}{NS: s3Namespace, Bucket: rq.bucket, Key: rq.key, UploadID: id})
}

func partNumber(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxParts {
		return 0, s3Err("InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive.")
	}
	return n, nil
}

func (h *handler) handleUploadPart(w http.ResponseWriter, r *http.Request, rq *req) error {
	n, err := partNumber(rq.q.Get("partNumber"))
	if err != nil {
		return err
	}
	body, size, err := objectBody(r, rq.auth)
	if err != nil {
		return err
	}
	p, err := h.b.UploadPart(r.Context(), rq.bucket, rq.key, rq.q.Get("uploadId"), n, body, size)
	if err != nil {
		return fmt.Errorf("upload part: %w", err)
	}
	w.Header().Set("ETag", quoteETag(p.ETag))
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	return nil
}

func (h *handler) handleUploadPartCopy(w http.ResponseWriter, r *http.Request, rq *req, src string) error {
	n, err := partNumber(rq.q.Get("partNumber"))
	if err != nil {
		return err
	}
	sb, sk, err := parseCopySource(src)
	if err != nil {
		return err
	}
	if err := h.copySourceConditions(r, sb, sk); err != nil {
		return err
	}
	ctx := r.Context()
	so, err := h.b.HeadObject(ctx, sb, sk)
	if err != nil {
		return fmt.Errorf("upload part copy: %w", err)
	}
	off, length := int64(0), so.Size
	if v := r.Header.Get("X-Amz-Copy-Source-Range"); v != "" {
		o, l, ok, rerr := parseRange(v, so.Size)
		if rerr != nil || !ok || (l < 0) {
			return s3Err("InvalidArgument", "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy.")
		}
		off, length = o, l
	}
	if length > MaxPutSize {
		return s3Err("EntityTooLarge")
	}
	_, body, err := h.b.GetObject(ctx, sb, sk, off, length)
	if err != nil {
		return fmt.Errorf("upload part copy: %w", err)
	}
	defer body.Close()
	p, err := h.b.UploadPart(ctx, rq.bucket, rq.key, rq.q.Get("uploadId"), n, newVerifyingReader(body, length, nil, nil, nil), length)
	if err != nil {
		return fmt.Errorf("upload part copy: %w", err)
	}
	return writeXML(w, http.StatusOK, struct {
		XMLName      xml.Name `xml:"CopyPartResult"`
		NS           string   `xml:"xmlns,attr"`
		LastModified string   `xml:"LastModified"`
		ETag         string   `xml:"ETag"`
	}{NS: s3Namespace, LastModified: s3Time(p.ModTime), ETag: quoteETag(p.ETag)})
}

// allParts pages through Backend.ListParts.
func (h *handler) allParts(r *http.Request, rq *req, id string) ([]PartInfo, error) {
	var all []PartInfo
	marker := 0
	for {
		res, err := h.b.ListParts(r.Context(), rq.bucket, rq.key, id, marker, maxListKeys)
		if err != nil {
			return nil, err
		}
		all = append(all, res.Parts...)
		if !res.IsTruncated || res.NextPartNumberMarker <= marker {
			return all, nil
		}
		marker = res.NextPartNumberMarker
	}
}

func (h *handler) handleCompleteMultipartUpload(w http.ResponseWriter, r *http.Request, rq *req) error {
	id := rq.q.Get("uploadId")
	data, err := smallBody(r, rq.auth)
	if err != nil {
		return err
	}
	var in struct {
		XMLName xml.Name `xml:"CompleteMultipartUpload"`
		Parts   []struct {
			PartNumber int    `xml:"PartNumber"`
			ETag       string `xml:"ETag"`
		} `xml:"Part"`
	}
	if err := xml.Unmarshal(data, &in); err != nil || len(in.Parts) == 0 || len(in.Parts) > maxParts {
		return s3Err("MalformedXML")
	}
	parts := make([]CompletePart, len(in.Parts))
	for i, p := range in.Parts {
		parts[i] = CompletePart{Number: p.PartNumber, ETag: unquoteETag(p.ETag)}
	}
	have, err := h.allParts(r, rq, id)
	if err != nil {
		return fmt.Errorf("complete multipart upload: %w", err)
	}
	if err := ValidateCompleteParts(parts, have); err != nil {
		return err
	}
	o, err := h.b.CompleteMultipartUpload(r.Context(), rq.bucket, rq.key, id, parts)
	if err != nil {
		return fmt.Errorf("complete multipart upload: %w", err)
	}
	return writeXML(w, http.StatusOK, struct {
		XMLName  xml.Name `xml:"CompleteMultipartUploadResult"`
		NS       string   `xml:"xmlns,attr"`
		Location string   `xml:"Location"`
		Bucket   string   `xml:"Bucket"`
		Key      string   `xml:"Key"`
		ETag     string   `xml:"ETag"`
	}{NS: s3Namespace, Location: "/" + rq.bucket + "/" + rq.key, Bucket: rq.bucket, Key: rq.key, ETag: quoteETag(o.ETag)})
}

func (h *handler) handleAbortMultipartUpload(w http.ResponseWriter, r *http.Request, rq *req) error {
	if err := h.b.AbortMultipartUpload(r.Context(), rq.bucket, rq.key, rq.q.Get("uploadId")); err != nil {
		return fmt.Errorf("abort multipart upload: %w", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) handleListParts(w http.ResponseWriter, r *http.Request, rq *req) error {
	q := rq.q
	maxP := maxListKeys
	if v := q.Get("max-parts"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return s3Err("InvalidArgument", "Provided max-parts not an integer or within integer range.")
		}
		maxP = min(n, maxListKeys)
	}
	marker := 0
	if v := q.Get("part-number-marker"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return s3Err("InvalidArgument", "Provided part-number-marker not an integer or within integer range.")
		}
		marker = n
	}
	id := q.Get("uploadId")
	res, err := h.b.ListParts(r.Context(), rq.bucket, rq.key, id, marker, maxP)
	if err != nil {
		return fmt.Errorf("list parts: %w", err)
	}
	type part struct {
		PartNumber   int    `xml:"PartNumber"`
		LastModified string `xml:"LastModified"`
		ETag         string `xml:"ETag"`
		Size         int64  `xml:"Size"`
	}
	out := struct {
		XMLName              xml.Name `xml:"ListPartsResult"`
		NS                   string   `xml:"xmlns,attr"`
		Bucket               string   `xml:"Bucket"`
		Key                  string   `xml:"Key"`
		UploadID             string   `xml:"UploadId"`
		Initiator            owner    `xml:"Initiator"`
		Owner                owner    `xml:"Owner"`
		StorageClass         string   `xml:"StorageClass"`
		PartNumberMarker     int      `xml:"PartNumberMarker"`
		NextPartNumberMarker int      `xml:"NextPartNumberMarker"`
		MaxParts             int      `xml:"MaxParts"`
		IsTruncated          bool     `xml:"IsTruncated"`
		Parts                []part   `xml:"Part"`
	}{
		NS: s3Namespace, Bucket: rq.bucket, Key: rq.key, UploadID: id, Initiator: theOwner, Owner: theOwner,
		StorageClass: "STANDARD", PartNumberMarker: marker, NextPartNumberMarker: res.NextPartNumberMarker,
		MaxParts: maxP, IsTruncated: res.IsTruncated,
	}
	for _, p := range res.Parts {
		out.Parts = append(out.Parts, part{PartNumber: p.Number, LastModified: s3Time(p.ModTime), ETag: quoteETag(p.ETag), Size: p.Size})
	}
	return writeXML(w, http.StatusOK, out)
}

func (h *handler) handleListMultipartUploads(w http.ResponseWriter, r *http.Request, rq *req) error {
	q := rq.q
	maxU := maxListKeys
	if v := q.Get("max-uploads"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return s3Err("InvalidArgument", "Provided max-uploads not an integer or within integer range.")
		}
		maxU = min(n, maxListKeys)
	}
	opts := UploadsOptions{Prefix: q.Get("prefix"), Delimiter: q.Get("delimiter"), KeyMarker: q.Get("key-marker"), UploadIDMarker: q.Get("upload-id-marker"), MaxUploads: maxU}
	res, err := h.b.ListMultipartUploads(r.Context(), rq.bucket, opts)
	if err != nil {
		return fmt.Errorf("list multipart uploads: %w", err)
	}
	type upload struct {
		Key          string `xml:"Key"`
		UploadID     string `xml:"UploadId"`
		Initiator    owner  `xml:"Initiator"`
		Owner        owner  `xml:"Owner"`
		StorageClass string `xml:"StorageClass"`
		Initiated    string `xml:"Initiated"`
	}
	out := struct {
		XMLName            xml.Name       `xml:"ListMultipartUploadsResult"`
		NS                 string         `xml:"xmlns,attr"`
		Bucket             string         `xml:"Bucket"`
		KeyMarker          string         `xml:"KeyMarker"`
		UploadIDMarker     string         `xml:"UploadIdMarker"`
		NextKeyMarker      string         `xml:"NextKeyMarker"`
		NextUploadIDMarker string         `xml:"NextUploadIdMarker"`
		Prefix             string         `xml:"Prefix"`
		Delimiter          string         `xml:"Delimiter,omitempty"`
		MaxUploads         int            `xml:"MaxUploads"`
		IsTruncated        bool           `xml:"IsTruncated"`
		Uploads            []upload       `xml:"Upload"`
		CommonPrefixes     []commonPrefix `xml:"CommonPrefixes"`
	}{
		NS: s3Namespace, Bucket: rq.bucket, KeyMarker: opts.KeyMarker, UploadIDMarker: opts.UploadIDMarker,
		NextKeyMarker: res.NextKeyMarker, NextUploadIDMarker: res.NextUploadIDMarker, Prefix: opts.Prefix, Delimiter: opts.Delimiter,
		MaxUploads: maxU, IsTruncated: res.IsTruncated,
	}
	for _, p := range res.CommonPrefixes {
		out.CommonPrefixes = append(out.CommonPrefixes, commonPrefix{Prefix: p})
	}
	for _, u := range res.Uploads {
		out.Uploads = append(out.Uploads, upload{Key: u.Key, UploadID: u.UploadID, Initiator: theOwner, Owner: theOwner, StorageClass: "STANDARD", Initiated: s3Time(u.Initiated)})
	}
	return writeXML(w, http.StatusOK, out)
}
