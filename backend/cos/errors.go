package cos

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	cossdk "github.com/tencentyun/cos-go-sdk-v5"

	"github.com/osprey-storage/osprey/backend"
)

// serviceCode returns the COS error code carried by err, or "".
func serviceCode(err error) string {
	var er *cossdk.ErrorResponse
	if errors.As(err, &er) {
		return er.Code
	}
	return ""
}

// translate turns an SDK error into one wrapping a backend sentinel. The
// SDK error itself is not wrapped (only its text is kept), so no SDK type
// escapes this package. A done context is reported as the context's error
// (a deadline also as backend.ErrUnavailable).
func translate(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(cerr, context.DeadlineExceeded) {
			return fmt.Errorf("cos: %s: %w: %w", what, backend.ErrUnavailable, cerr)
		}
		return fmt.Errorf("cos: %s: %w", what, cerr)
	}
	var er *cossdk.ErrorResponse
	if errors.As(err, &er) {
		status := 0
		if er.Response != nil {
			status = er.Response.StatusCode
		}
		requestID := er.RequestID
		if requestID == "" && er.Response != nil {
			requestID = er.Response.Header.Get("X-Cos-Request-Id")
		}
		code := er.Code
		if code == "" {
			code = http.StatusText(status) // HEAD answers carry no body
		}
		detail := fmt.Sprintf("%d %s: %s (request id %s)", status, code, er.Message, requestID)
		return fmt.Errorf("cos: %s: %w: %s", what, sentinelFor(status, er.Code), detail)
	}
	// Transport failures (refused or dropped connections, timeouts,
	// unparsable answers, CRC mismatches reported by the SDK as plain
	// errors) mean the service could not be used.
	return fmt.Errorf("cos: %s: %w: %v", what, backend.ErrUnavailable, err)
}

// sentinelFor maps a COS error code, or failing that the HTTP status, to
// a backend sentinel.
func sentinelFor(status int, code string) error {
	switch code {
	case "NoSuchKey", "NoSuchBucket", "NoSuchUpload":
		return backend.ErrNotFound
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
		"RequestTimeTooSkewed", "InvalidSecurityToken", "ExpiredToken":
		return backend.ErrAuth
	case "InvalidRange", "InvalidArgument", "InvalidBucketName", "InvalidObjectName",
		"InvalidDigest", "BadDigest", "MalformedXML", "EntityTooSmall", "EntityTooLarge",
		"InvalidPart", "InvalidPartOrder", "TooManyBuckets", "KeyTooLong", "InvalidRequest", "InvalidURI":
		return backend.ErrInvalid
	case "ServiceUnavailable", "InternalError", "RequestTimeout", "SlowDown":
		return backend.ErrUnavailable
	}
	switch {
	case status == http.StatusNotFound:
		return backend.ErrNotFound
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return backend.ErrAuth
	case status == http.StatusTooManyRequests || status == http.StatusRequestTimeout || status >= 500:
		return backend.ErrUnavailable
	default:
		return backend.ErrInvalid
	}
}
