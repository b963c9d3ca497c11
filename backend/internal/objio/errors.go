package objio

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/osprey-storage/osprey/backend"
)

// Failure is what a provider SDK's error says about a failed request, in
// the terms ErrorMapper needs.
type Failure struct {
	// Sentinel, if set, is the backend sentinel to report, whatever the
	// status and code (an SDK's own CRC check, say).
	Sentinel error
	// Status is the HTTP status of the answer, 0 if unknown.
	Status int
	// Code is the provider's error code ("NoSuchKey"), "" if the answer
	// carried none (HEAD answers have no body).
	Code string
	// Message and RequestID are the provider's, for the error text.
	Message, RequestID string
	// Detail, if set, replaces the text built from the fields above.
	Detail string
}

// ErrorMapper turns the errors of one provider's SDK into errors wrapping
// the backend sentinels. The SDK error itself is not wrapped (only its
// text is kept), so no SDK type escapes the backend.
type ErrorMapper struct {
	// Prefix names the backend in messages ("oss").
	Prefix string
	// Codes maps the provider's own error codes, beyond the S3-style ones
	// every provider shares, to a sentinel.
	Codes map[string]error
	// Inspect extracts a Failure from an SDK error; false means the error
	// is not an answer from the service (a transport failure).
	Inspect func(err error) (Failure, bool)
}

// sharedCodes are the S3-style error codes every provider uses alike.
var sharedCodes = map[string]error{
	"NoSuchKey": backend.ErrNotFound, "NoSuchBucket": backend.ErrNotFound, "NoSuchUpload": backend.ErrNotFound,

	"AccessDenied": backend.ErrAuth, "InvalidAccessKeyId": backend.ErrAuth, "SignatureDoesNotMatch": backend.ErrAuth,
	"RequestTimeTooSkewed": backend.ErrAuth, "InvalidSecurityToken": backend.ErrAuth,

	"InvalidRange": backend.ErrInvalid, "InvalidArgument": backend.ErrInvalid, "InvalidBucketName": backend.ErrInvalid,
	"InvalidObjectName": backend.ErrInvalid, "InvalidDigest": backend.ErrInvalid, "BadDigest": backend.ErrInvalid,
	"MalformedXML": backend.ErrInvalid, "EntityTooSmall": backend.ErrInvalid, "EntityTooLarge": backend.ErrInvalid,
	"InvalidPart": backend.ErrInvalid, "InvalidPartOrder": backend.ErrInvalid, "TooManyBuckets": backend.ErrInvalid,
	"KeyTooLong": backend.ErrInvalid,

	"ServiceUnavailable": backend.ErrUnavailable, "InternalError": backend.ErrUnavailable,
	"RequestTimeout": backend.ErrUnavailable, "SlowDown": backend.ErrUnavailable,
}

// Translate maps err (nil stays nil). A done context is reported as the
// context's error (a deadline also as backend.ErrUnavailable); an error
// Inspect does not recognise means the service could not be reached or
// used (refused or dropped connections, timeouts, unparsable answers) and
// is backend.ErrUnavailable. what names the operation for the message.
func (m ErrorMapper) Translate(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(cerr, context.DeadlineExceeded) {
			return fmt.Errorf("%s: %s: %w: %w", m.Prefix, what, backend.ErrUnavailable, cerr)
		}
		return fmt.Errorf("%s: %s: %w", m.Prefix, what, cerr)
	}
	f, ok := m.Inspect(err)
	if !ok {
		return fmt.Errorf("%s: %s: %w: %v", m.Prefix, what, backend.ErrUnavailable, err)
	}
	sentinel := f.Sentinel
	if sentinel == nil {
		sentinel = m.Sentinel(f.Status, f.Code)
	}
	detail := f.Detail
	if detail == "" {
		code := f.Code
		if code == "" {
			code = http.StatusText(f.Status)
		}
		detail = fmt.Sprintf("%d %s: %s (request id %s)", f.Status, code, f.Message, f.RequestID)
	}
	return fmt.Errorf("%s: %s: %w: %s", m.Prefix, what, sentinel, detail)
}

// Sentinel maps an error code, or failing that the HTTP status, to a
// backend sentinel.
func (m ErrorMapper) Sentinel(status int, code string) error {
	if s, ok := m.Codes[code]; ok {
		return s
	}
	if s, ok := sharedCodes[code]; ok {
		return s
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
