package fakestore

import (
	"crypto/md5"
	"encoding/xml"
	"fmt"
	"hash/crc64"
	"io"
	"net/http"
	"strconv"
	"time"
)

func (req *Request) initiateMultipart(w http.ResponseWriter, r *http.Request) *Error {
	c := req.core
	if e := c.d.ValidKey(req.Key); e != nil {
		return e
	}
	_, _ = io.Copy(io.Discard, r.Body)
	c.mu.Lock()
	b, e := req.lookupBucket(req.BucketName)
	if e != nil {
		c.mu.Unlock()
		return e
	}
	c.seq++
	now := c.Now()
	sum := md5.Sum([]byte(fmt.Sprintf("%s/%s/%d/%d", req.BucketName, req.Key, c.seq, now.UnixNano())))
	u := &upload{
		id:          c.d.NewUploadID(sum, now),
		key:         req.Key,
		contentType: ContentType(r),
		meta:        req.UserMeta(r.Header),
		parts:       make(map[int]*part),
	}
	b.uploads[u.id] = u
	c.mu.Unlock()
	req.Call.UploadID = u.id
	type result struct {
		XMLName  xml.Name `xml:"InitiateMultipartUploadResult"`
		Bucket   string   `xml:"Bucket"`
		Key      string   `xml:"Key"`
		UploadID string   `xml:"UploadId"`
	}
	return req.WriteXML(w, http.StatusOK, result{Bucket: req.BucketName, Key: req.Key, UploadID: u.id})
}

// lookupUpload returns the upload named by the uploadId parameter, which
// must belong to the request's key. Callers hold the core's mutex.
func (req *Request) lookupUpload() (*bucket, *upload, *Error) {
	b, e := req.lookupBucket(req.BucketName)
	if e != nil {
		return nil, nil, e
	}
	id := req.Query.Get("uploadId")
	u := b.uploads[id]
	if u == nil || u.key != req.Key {
		e := req.Err(http.StatusNotFound, "NoSuchUpload")
		e.UploadID = id
		return nil, nil, e
	}
	return b, u, nil
}

func (req *Request) uploadPart(w http.ResponseWriter, r *http.Request) *Error {
	c := req.core
	n, err := strconv.Atoi(req.Query.Get("partNumber"))
	if err != nil || n < 1 || n > c.cfg.MaxPartNumber {
		return InvalidArgument(fmt.Sprintf("Part number must be an integer between 1 and %d, inclusive.", c.cfg.MaxPartNumber))
	}
	c.mu.Lock()
	_, _, e := req.lookupUpload()
	c.mu.Unlock()
	if e != nil {
		return e
	}
	data, sum, e := req.readBody(r)
	if e != nil {
		return e
	}
	p := &part{data: data, sum: sum, etag: `"` + req.hex(sum[:]) + `"`}
	c.mu.Lock()
	_, u, e := req.lookupUpload() // aborted meanwhile?
	if e == nil {
		u.parts[n] = p // a re-sent part replaces the previous one
	}
	c.mu.Unlock()
	if e != nil {
		return e
	}
	return req.replyStored(w, p.etag, sum, crc64.Checksum(data, crcTable))
}

// completedPart is one entry of a CompleteMultipartUpload part list.
type completedPart struct {
	PartNumber int    `xml:"PartNumber"`
	ETag       string `xml:"ETag"`
}

func (req *Request) completeMultipart(w http.ResponseWriter, r *http.Request) *Error {
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		return req.Err(http.StatusBadRequest, "MalformedXML")
	}
	var list struct {
		XMLName xml.Name        `xml:"CompleteMultipartUpload"`
		Parts   []completedPart `xml:"Part"`
	}
	if err := xml.Unmarshal(body, &list); err != nil || len(list.Parts) == 0 {
		return req.Err(http.StatusBadRequest, "MalformedXML")
	}

	c := req.core
	c.mu.Lock()
	defer c.mu.Unlock()
	b, u, e := req.lookupUpload()
	if e != nil {
		return e
	}
	chosen, e := req.chooseParts(u, list.Parts)
	if e != nil {
		return e
	}
	var data, sums []byte
	for _, p := range chosen {
		data = append(data, p.data...)
		sums = append(sums, p.sum[:]...)
	}
	whole := md5.Sum(sums)
	o := &Object{
		Data:        data,
		ContentType: u.contentType,
		Meta:        u.meta,
		ETag:        `"` + req.hex(whole[:]) + "-" + strconv.Itoa(len(chosen)) + `"`,
		Multipart:   true,
		ModTime:     c.Now().Truncate(time.Second),
		CRC:         crc64.Checksum(data, crcTable),
	}
	b.objects[req.Key] = o // atomic replacement
	delete(b.uploads, u.id)

	type result struct {
		XMLName  xml.Name `xml:"CompleteMultipartUploadResult"`
		Location string   `xml:"Location"`
		Bucket   string   `xml:"Bucket"`
		Key      string   `xml:"Key"`
		ETag     string   `xml:"ETag"`
	}
	req.setCRC(w.Header(), o.CRC)
	return req.WriteXML(w, http.StatusOK, result{
		Location: c.d.Location(req.BucketName, req.Key),
		Bucket:   req.BucketName,
		Key:      req.Key,
		ETag:     o.ETag,
	})
}

// chooseParts checks a part list against the upload: strictly ascending
// part numbers (InvalidPartOrder), without gaps where the provider says
// so, every part uploaded with the listed ETag (InvalidPart), every part
// but the last at least MinPartSize (EntityTooSmall, checked once every
// part is known to exist).
func (req *Request) chooseParts(u *upload, list []completedPart) ([]*part, *Error) {
	invalidPart := req.Err(http.StatusBadRequest, "InvalidPart")
	invalidPart.UploadID = u.id
	var chosen []*part
	prev := 0 // part numbers start at 1
	for i, lp := range list {
		if lp.PartNumber <= prev {
			return nil, req.Err(http.StatusBadRequest, "InvalidPartOrder")
		}
		if i > 0 && req.core.d.ContiguousParts && lp.PartNumber != prev+1 {
			return nil, invalidPart
		}
		prev = lp.PartNumber
		p := u.parts[lp.PartNumber]
		if p == nil || !req.sameETag(lp.ETag, p.etag) {
			return nil, invalidPart
		}
		chosen = append(chosen, p)
	}
	for i, p := range chosen {
		if i < len(chosen)-1 && int64(len(p.data)) < req.core.cfg.MinPartSize {
			return nil, req.Err(http.StatusBadRequest, "EntityTooSmall")
		}
	}
	return chosen, nil
}

func (req *Request) abortMultipart(w http.ResponseWriter) *Error {
	c := req.core
	c.mu.Lock()
	defer c.mu.Unlock()
	b, u, e := req.lookupUpload()
	if e != nil {
		return e
	}
	delete(b.uploads, u.id)
	return req.Reply(w, http.StatusNoContent)
}
