package s3api

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/osprey-storage/osprey"
)

// Sentinel errors. Backends return them (wrapped with %w if they like); the
// handler returns them too. Each wraps the matching osprey error kind so that
// code outside this package can match with errors.Is(err, osprey.ErrNotFound).
var (
	// ErrNoSuchBucket is returned when the bucket does not exist.
	ErrNoSuchBucket = fmt.Errorf("s3api: no such bucket: %w", osprey.ErrNotFound)
	// ErrBucketExists is returned by CreateBucket when the bucket exists.
	ErrBucketExists = fmt.Errorf("s3api: bucket already exists: %w", osprey.ErrConflict)
	// ErrBucketNotEmpty is returned by DeleteBucket when objects remain.
	ErrBucketNotEmpty = fmt.Errorf("s3api: bucket not empty: %w", osprey.ErrConflict)
	// ErrNoSuchKey is returned when the object does not exist.
	ErrNoSuchKey = fmt.Errorf("s3api: no such key: %w", osprey.ErrNotFound)
	// ErrNoSuchUpload is returned when the multipart upload does not exist.
	ErrNoSuchUpload = fmt.Errorf("s3api: no such upload: %w", osprey.ErrNotFound)
	// ErrInvalidPart is returned when a completed part is missing or its
	// ETag does not match.
	ErrInvalidPart = fmt.Errorf("s3api: invalid part: %w", osprey.ErrInvalid)
	// ErrInvalidPartOrder is returned when completed parts are not in
	// ascending order.
	ErrInvalidPartOrder = fmt.Errorf("s3api: invalid part order: %w", osprey.ErrInvalid)
	// ErrEntityTooSmall is returned when a part other than the last one is
	// smaller than MinPartSize.
	ErrEntityTooSmall = fmt.Errorf("s3api: part too small: %w", osprey.ErrInvalid)
	// ErrInvalidRange is returned when a byte range lies outside the object.
	ErrInvalidRange = fmt.Errorf("s3api: invalid range: %w", osprey.ErrRange)
	// ErrIncompleteBody is returned when a body ends before its declared size.
	ErrIncompleteBody = fmt.Errorf("s3api: incomplete body: %w", osprey.ErrInvalid)
	// ErrContentSHA256Mismatch is returned (by the body reader handed to the
	// backend) when the body does not hash to x-amz-content-sha256.
	ErrContentSHA256Mismatch = fmt.Errorf("s3api: x-amz-content-sha256 mismatch: %w", osprey.ErrInvalid)
	// ErrBadDigest is returned when the body does not match Content-MD5.
	ErrBadDigest = fmt.Errorf("s3api: content-md5 mismatch: %w", osprey.ErrInvalid)
	// ErrEntityTooLarge is returned when an object or part is larger than
	// the server takes.
	ErrEntityTooLarge = fmt.Errorf("s3api: entity too large: %w", osprey.ErrTooLarge)
	// ErrChecksumMismatch is returned when the body does not match its
	// x-amz-checksum-* header or trailer.
	ErrChecksumMismatch = fmt.Errorf("s3api: checksum mismatch: %w", osprey.ErrInvalid)
	// ErrSignatureMismatch is returned when a signature (header, query or
	// aws-chunked chunk) does not verify.
	ErrSignatureMismatch = fmt.Errorf("s3api: signature does not match: %w", osprey.ErrForbidden)
)

// apiError is an S3 error code with its HTTP status and default message.
type apiError struct {
	Code    string
	Status  int
	Message string
}

// Error implements error.
func (e *apiError) Error() string { return "s3api: " + e.Code + ": " + e.Message }

// s3Err returns an error carrying the S3 code, with an optional message
// replacing the default one.
func s3Err(code string, msg ...string) error {
	e, ok := codeTable[code]
	if !ok {
		e = codeTable["InternalError"]
	}
	ce := *e
	if len(msg) > 0 && msg[0] != "" {
		ce.Message = msg[0]
	}
	return &ce
}

// codeTable lists every S3 error code this package emits.
var codeTable = func() map[string]*apiError {
	m := map[string]*apiError{}
	for _, e := range []apiError{
		{"AccessDenied", 403, "Access Denied."},
		{"AuthorizationHeaderMalformed", 400, "The authorization header is malformed."},
		{"AuthorizationQueryParametersError", 400, "Error parsing the X-Amz-Credential parameter."},
		{"BadDigest", 400, "The Content-MD5 you specified did not match what we received."},
		{"BucketAlreadyOwnedByYou", 409, "Your previous request to create the named bucket succeeded and you already own it."},
		{"BucketNotEmpty", 409, "The bucket you tried to delete is not empty."},
		{"EntityTooSmall", 400, "Your proposed upload is smaller than the minimum allowed object size."},
		{"EntityTooLarge", 400, "Your proposed upload exceeds the maximum allowed object size."},
		{"IncompleteBody", 400, "You did not provide the number of bytes specified by the Content-Length HTTP header."},
		{"InternalError", 500, "We encountered an internal error. Please try again."},
		{"RequestTimeout", 400, "Your socket connection to the server was not read from or written to within the timeout period."},
		{"InvalidAccessKeyId", 403, "The AWS access key ID you provided does not exist in our records."},
		{"InvalidArgument", 400, "Invalid Argument."},
		{"InvalidBucketName", 400, "The specified bucket is not valid."},
		{"InvalidLocationConstraint", 400, "The specified location-constraint is not valid."},
		{"InvalidDigest", 400, "The Content-MD5 you specified is not valid."},
		{"InvalidPart", 400, "One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part's entity tag."},
		{"InvalidPartOrder", 400, "The list of parts was not in ascending order. Parts must be ordered by part number."},
		{"InvalidRange", 416, "The requested range is not satisfiable."},
		{"InvalidObjectState", 403, "The operation is not valid for the object's state: its bytes are lost (restored from a metadata backup taken while they were only staged)."},
		{"InvalidRequest", 400, "Invalid Request."},
		{"KeyTooLongError", 400, "Your key is too long."},
		{"MalformedXML", 400, "The XML you provided was not well-formed or did not validate against our published schema."},
		{"MetadataTooLarge", 400, "Your metadata headers exceed the maximum allowed metadata size."},
		{"MethodNotAllowed", 405, "The specified method is not allowed against this resource."},
		{"MissingContentLength", 411, "You must provide the Content-Length HTTP header."},
		{"MissingSecurityHeader", 400, "Your request is missing a required header."},
		{"NoSuchBucket", 404, "The specified bucket does not exist."},
		{"NoSuchBucketPolicy", 404, "The bucket policy does not exist."},
		{"NoSuchCORSConfiguration", 404, "The CORS configuration does not exist."},
		{"NoSuchKey", 404, "The specified key does not exist."},
		{"NoSuchLifecycleConfiguration", 404, "The lifecycle configuration does not exist."},
		{"NoSuchTagSet", 404, "The TagSet does not exist."},
		{"NoSuchUpload", 404, "The specified multipart upload does not exist. The upload ID might be invalid, or the multipart upload might have been aborted or completed."},
		{"NotImplemented", 501, "A header or query you provided implies functionality that is not implemented."},
		{"PreconditionFailed", 412, "At least one of the preconditions you specified did not hold."},
		{"RequestTimeTooSkewed", 403, "The difference between the request time and the server's time is too large."},
		{"ServiceUnavailable", 503, "Please reduce your request rate."},
		{"SignatureDoesNotMatch", 403, "The request signature we calculated does not match the signature you provided. Check your key and signing method."},
		{"XAmzContentSHA256Mismatch", 400, "The provided 'x-amz-content-sha256' header does not match what was computed."},
	} {
		e := e
		m[e.Code] = &e
	}
	return m
}()

// errorTable maps sentinels to S3 codes. It is the one place where errors
// become S3 codes; errors created with s3Err carry their code already.
var errorTable = []struct {
	err  error
	code string
}{
	{ErrNoSuchBucket, "NoSuchBucket"},
	{ErrBucketExists, "BucketAlreadyOwnedByYou"},
	{ErrBucketNotEmpty, "BucketNotEmpty"},
	{ErrNoSuchKey, "NoSuchKey"},
	{ErrNoSuchUpload, "NoSuchUpload"},
	{ErrInvalidPart, "InvalidPart"},
	{ErrInvalidPartOrder, "InvalidPartOrder"},
	{ErrEntityTooSmall, "EntityTooSmall"},
	{ErrInvalidRange, "InvalidRange"},
	{ErrIncompleteBody, "IncompleteBody"},
	{ErrContentSHA256Mismatch, "XAmzContentSHA256Mismatch"},
	{ErrBadDigest, "BadDigest"},
	{ErrChecksumMismatch, "BadDigest"},
	{ErrSignatureMismatch, "SignatureDoesNotMatch"},
	{osprey.ErrNotFound, "NoSuchKey"},
	{osprey.ErrRange, "InvalidRange"},
	{osprey.ErrForbidden, "AccessDenied"},
	{osprey.ErrUnavailable, "ServiceUnavailable"},
	{osprey.ErrInvalid, "InvalidArgument"},
	{ErrEntityTooLarge, "EntityTooLarge"},
	{osprey.ErrTooLarge, "EntityTooLarge"},
	{osprey.ErrTimeout, "RequestTimeout"},
	{osprey.ErrGone, "InvalidObjectState"},
	// Certainly not applied (no leader yet, shutting down): clients retry.
	{osprey.ErrNotLeader, "ServiceUnavailable"},
}

// toAPIError classifies err.
func toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	for _, row := range errorTable {
		if errors.Is(err, row.err) {
			return codeTable[row.code]
		}
	}
	return codeTable["InternalError"]
}

// errorBody is the S3 XML error document.
type errorBody struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	Resource  string   `xml:"Resource"`
	RequestID string   `xml:"RequestId"`
}

// writeError is the single place where errors become HTTP responses. Only
// 5xx responses are logged at error level; client errors at debug level.
func (h *handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	log := loggerFrom(r.Context(), h.log)
	ae := toAPIError(err)
	if r.Context().Err() != nil && (errors.Is(err, context.Canceled) || ae.Status == http.StatusInternalServerError) {
		// The client left: what failed because of it (a body cut short
		// reads as an unexpected EOF) is not a server error. An error with
		// a status of its own is still answered.
		log.Debug("client gone", "err", err)
		return
	}
	if ae.Status >= 500 {
		log.Error("request failed", "code", ae.Code, "err", err)
	} else {
		log.Debug("request rejected", "code", ae.Code, "err", err)
	}
	body := errorBody{
		Code:      ae.Code,
		Message:   ae.Message,
		Resource:  r.URL.Path,
		RequestID: w.Header().Get("x-amz-request-id"),
	}
	hdr := w.Header()
	// Drop headers set for a success response that never happened.
	for _, k := range []string{"ETag", "Last-Modified", "Accept-Ranges", "Content-Encoding", "Content-Disposition", "Cache-Control"} {
		hdr.Del(k)
	}
	hdr.Set("Content-Type", "application/xml")
	if r.Method == http.MethodHead || ae.Status == http.StatusNotModified {
		w.WriteHeader(ae.Status)
		return
	}
	out, _ := xml.Marshal(body)
	hdr.Set("Content-Length", fmt.Sprint(len(xml.Header)+len(out)))
	w.WriteHeader(ae.Status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(out)
}

// loggerFrom returns the request logger stored by the handler, or def.
func loggerFrom(ctx context.Context, def *slog.Logger) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return def
}

type loggerKey struct{}
