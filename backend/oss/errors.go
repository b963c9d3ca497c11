package oss

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	alioss "github.com/aliyun/aliyun-oss-go-sdk/oss"

	"github.com/osprey-storage/osprey/backend"
)

// serviceCode returns the OSS error code carried by err, or "".
func serviceCode(err error) string {
	var se alioss.ServiceError
	if errors.As(err, &se) {
		return se.Code
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
			return fmt.Errorf("oss: %s: %w: %w", what, backend.ErrUnavailable, cerr)
		}
		return fmt.Errorf("oss: %s: %w", what, cerr)
	}

	var se alioss.ServiceError
	if errors.As(err, &se) {
		detail := fmt.Sprintf("%d %s: %s (request id %s)", se.StatusCode, se.Code, se.Message, se.RequestID)
		return fmt.Errorf("oss: %s: %w: %s", what, sentinelFor(se.StatusCode, se.Code), detail)
	}
	var ue alioss.UnexpectedStatusCodeError
	if errors.As(err, &ue) {
		return fmt.Errorf("oss: %s: %w: %s", what, sentinelFor(ue.Got(), ""), ue.Error())
	}
	var ce alioss.CRCCheckError
	if errors.As(err, &ce) {
		return fmt.Errorf("oss: %s: %w: %s", what, backend.ErrChecksum, ce.Error())
	}
	// Transport failures (refused or dropped connections, timeouts,
	// unparsable answers) mean the service could not be reached.
	return fmt.Errorf("oss: %s: %w: %v", what, backend.ErrUnavailable, err)
}

// sentinelFor maps an OSS error code, or failing that the HTTP status, to
// a backend sentinel.
func sentinelFor(status int, code string) error {
	switch code {
	case "NoSuchKey", "NoSuchBucket", "NoSuchUpload":
		return backend.ErrNotFound
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
		"RequestTimeTooSkewed", "InvalidSecurityToken", "SecurityTokenExpired",
		"UserDisable", "Forbidden":
		return backend.ErrAuth
	case "InvalidRange", "InvalidArgument", "InvalidBucketName", "InvalidObjectName",
		"InvalidDigest", "BadDigest", "MalformedXML", "EntityTooSmall", "EntityTooLarge",
		"InvalidPart", "InvalidPartOrder", "TooManyBuckets", "KeyTooLong":
		return backend.ErrInvalid
	case "ServiceUnavailable", "InternalError", "RequestTimeout", "SlowDown", "QpsLimitExceeded":
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
