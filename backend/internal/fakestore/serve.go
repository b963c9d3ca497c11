package fakestore

import (
	"crypto/md5"
	"io"
	"net/http"
	"time"
)

// Dialect is what a provider's fake tells the core: its wire differences
// as values, and the parts of the protocol that are its own as functions.
type Dialect struct {
	// Name prefixes configuration errors ("ossfake").
	Name string
	// HeaderPrefix starts the provider's headers ("x-oss-"): request-id,
	// meta-*, hash-crc64ecma.
	HeaderPrefix string
	// Server is the Server header of every answer.
	Server string
	// XMLHeader is written before every XML answer ("" for none).
	XMLHeader string
	// UpperHexETags spells ETags (and upload IDs' hex) in upper case.
	UpperHexETags bool
	// FoldETags compares ETags case-insensitively (If-Match, the part
	// list of CompleteMultipartUpload).
	FoldETags bool
	// EchoContentMD5 answers PutObject and UploadPart with the body's
	// Content-MD5.
	EchoContentMD5 bool
	// BadDigestCode is the error code for a Content-MD5 that differs from
	// the body ("InvalidDigest", "BadDigest").
	BadDigestCode string
	// OwnedByYou answers PutBucket on the caller's own existing bucket
	// with BucketAlreadyOwnedByYou instead of BucketAlreadyExists.
	OwnedByYou bool
	// PutBucketLocation answers PutBucket with a Location header.
	PutBucketLocation bool
	// ContiguousParts refuses gaps in a CompleteMultipartUpload part list
	// with InvalidPart.
	ContiguousParts bool
	// BucketHeaders are added to a successful HeadBucket answer.
	BucketHeaders http.Header
	// Messages holds the provider's message for an error code, over the
	// core's defaults. The core needs AccessDenied (a bucket of another
	// account), InvalidBucketName, InvalidDigest, InvalidPartOrder,
	// EntityTooSmall and InvalidRange, and BadDigestCode's.
	Messages map[string]string

	// NewRequestID spells the request id of the seq-th request.
	NewRequestID func(seq uint64) string
	// NewUploadID spells an upload ID from a random-enough md5.
	NewUploadID func(sum [md5.Size]byte, now time.Time) string
	// ValidBucketName applies the provider's bucket naming rules.
	ValidBucketName func(name string) bool
	// ValidKey applies the provider's object key rules.
	ValidKey func(key string) *Error
	// Location is CompleteMultipartUpload's Location element.
	Location func(bucket, key string) string

	// Classify names the operation, bucket and key of a request.
	Classify func(r *http.Request) *Request
	// Authenticate verifies the request's signature and returns the
	// caller's access key id.
	Authenticate func(r *http.Request, req *Request) (callerID string, e *Error)
	// Serve answers the operations the core does not (GetObject,
	// CopyObject, listings), and NotImplemented for unknown ones.
	Serve func(w http.ResponseWriter, r *http.Request, req *Request) *Error
	// WriteError sends e in the provider's error format.
	WriteError func(w http.ResponseWriter, r *http.Request, requestID string, e *Error)
}

// Error is an error answer. The provider's WriteError decides which of
// the optional elements its format carries.
type Error struct {
	Status  int
	Code    string
	Message string
	// Bucket, Key and UploadID name the resource, for providers whose
	// error body says which.
	Bucket, Key, UploadID string
	// Extra carries provider-specific detail for its WriteError.
	Extra any
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

var defaultMessages = map[string]string{
	"NoSuchBucket":            "The specified bucket does not exist.",
	"NoSuchKey":               "The specified key does not exist.",
	"NoSuchUpload":            "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
	"MalformedXML":            "The XML you provided was not well-formed or did not validate against our published schema.",
	"NotImplemented":          "A header or query you provided implies functionality that is not implemented by this fake.",
	"BucketAlreadyExists":     "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.",
	"BucketAlreadyOwnedByYou": "Your previous request to create the named bucket succeeded and you already own it.",
	"BucketNotEmpty":          "The bucket you tried to delete is not empty.",
	"IncompleteBody":          "You did not provide the number of bytes specified by the Content-Length HTTP header.",
	"PreconditionFailed":      "At least one of the pre-conditions you specified did not hold.",
	"InvalidPart":             "One or more of the specified parts could not be found or the specified entity tag might not have matched the part's entity tag.",
	"ServiceUnavailable":      "Please reduce your request rate.",
	"InternalError":           "We encountered an internal error. Please try again.",
}

// Err returns an error answer with the provider's message for code.
func (req *Request) Err(status int, code string) *Error {
	msg, ok := req.core.d.Messages[code]
	if !ok {
		msg = defaultMessages[code]
	}
	return &Error{Status: status, Code: code, Message: msg}
}

// NotImplemented is the answer to an operation the fake does not serve.
func (req *Request) NotImplemented() *Error {
	return req.Err(http.StatusNotImplemented, "NotImplemented")
}

// Reply sends status without a body (the handler has set its headers).
func (req *Request) Reply(w http.ResponseWriter, status int) *Error {
	w.WriteHeader(status)
	req.Call.Status = status
	return nil
}

func (c *Core) serveHTTP(w http.ResponseWriter, r *http.Request) {
	req := c.d.Classify(r)
	req.core = c
	requestID := c.nextRequestID()
	w.Header().Set(c.d.HeaderPrefix+"request-id", requestID)
	w.Header().Set("Server", c.d.Server)
	w.Header().Set("Date", c.Now().UTC().Format(http.TimeFormat))

	c.mu.Lock()
	fault := c.fault
	c.mu.Unlock()
	if fault != nil {
		switch f := fault(req.Call); f {
		case FaultUnavailable:
			c.finish(w, r, req, requestID, req.Err(http.StatusServiceUnavailable, "ServiceUnavailable"))
			return
		case FaultInternalError:
			c.finish(w, r, req, requestID, req.Err(http.StatusInternalServerError, "InternalError"))
			return
		case FaultDropConnection:
			c.record(req.Call)
			dropConnection(w)
			return
		case FaultTruncateBody, FaultStallBody:
			if req.Call.Op != "GetObject" {
				c.record(req.Call)
				dropConnection(w)
				return
			}
			req.truncate, req.stall = f == FaultTruncateBody, f == FaultStallBody
		}
	}

	e := req.HostErr
	if e == nil {
		req.CallerID, e = c.d.Authenticate(r, req)
	}
	if e == nil {
		e = c.serve(w, r, req)
	}
	c.finish(w, r, req, requestID, e)
}

// serve answers the operations every provider answers alike and hands the
// others to the dialect.
func (c *Core) serve(w http.ResponseWriter, r *http.Request, req *Request) *Error {
	switch req.Call.Op {
	case "PutBucket":
		return req.putBucket(w, r)
	case "HeadBucket":
		return req.headBucket(w)
	case "DeleteBucket":
		return req.deleteBucket(w)
	case "PutObject":
		return req.putObject(w, r)
	case "DeleteObject":
		return req.deleteObject(w)
	case "InitiateMultipartUpload":
		return req.initiateMultipart(w, r)
	case "UploadPart":
		return req.uploadPart(w, r)
	case "CompleteMultipartUpload":
		return req.completeMultipart(w, r)
	case "AbortMultipartUpload":
		return req.abortMultipart(w)
	}
	return c.d.Serve(w, r, req)
}

// finish sends e if there is one and records the call. Handlers that
// succeed have already written their answer, with its status in
// req.Call.Status.
func (c *Core) finish(w http.ResponseWriter, r *http.Request, req *Request, requestID string, e *Error) {
	if e != nil {
		// Drain what is left of the body so the client sees the answer
		// instead of a reset connection, as the real services do for
		// small bodies.
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		c.d.WriteError(w, r, requestID, e)
		req.Call.Status = e.Status
		req.Call.ErrorCode = e.Code
	}
	if !req.recorded {
		c.record(req.Call)
	}
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
