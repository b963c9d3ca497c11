package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/minio/minio-go/v7"

	"github.com/osprey-storage/osprey/backend"
)

// codeErrors maps S3 error codes to backend sentinels.
var codeErrors = map[string]error{
	"NoSuchKey":     backend.ErrNotFound,
	"NoSuchBucket":  backend.ErrNotFound,
	"NoSuchUpload":  backend.ErrNotFound,
	"NoSuchVersion": backend.ErrNotFound,
	"NotFound":      backend.ErrNotFound,

	"AccessDenied":                 backend.ErrAuth,
	"InvalidAccessKeyId":           backend.ErrAuth,
	"SignatureDoesNotMatch":        backend.ErrAuth,
	"ExpiredToken":                 backend.ErrAuth,
	"InvalidToken":                 backend.ErrAuth,
	"InvalidSecurity":              backend.ErrAuth,
	"AllAccessDisabled":            backend.ErrAuth,
	"AccountProblem":               backend.ErrAuth,
	"MissingSecurityHeader":        backend.ErrAuth,
	"RequestTimeTooSkewed":         backend.ErrAuth,
	"AuthorizationHeaderMalformed": backend.ErrAuth,
	"XMinioInvalidAccessKey":       backend.ErrAuth,

	"InvalidRange":            backend.ErrInvalid,
	"InvalidArgument":         backend.ErrInvalid,
	"InvalidBucketName":       backend.ErrInvalid,
	"InvalidObjectName":       backend.ErrInvalid,
	"XMinioInvalidObjectName": backend.ErrInvalid,
	"KeyTooLongError":         backend.ErrInvalid,
	"EntityTooLarge":          backend.ErrInvalid,
	"EntityTooSmall":          backend.ErrInvalid,
	"MetadataTooLarge":        backend.ErrInvalid,
	"InvalidRequest":          backend.ErrInvalid,
	"MalformedXML":            backend.ErrInvalid,
	"InvalidPart":             backend.ErrInvalid,
	"InvalidPartOrder":        backend.ErrInvalid,
	"InvalidStorageClass":     backend.ErrInvalid,
	"MethodNotAllowed":        backend.ErrInvalid,
	"BucketAlreadyExists":     backend.ErrInvalid,
	"BucketNotEmpty":          backend.ErrInvalid,

	"BadDigest":                   backend.ErrChecksum,
	"InvalidDigest":               backend.ErrChecksum,
	"XAmzContentSHA256Mismatch":   backend.ErrChecksum,
	"XAmzContentChecksumMismatch": backend.ErrChecksum,
	"IncompleteBody":              backend.ErrChecksum,
	"UnexpectedEOF":               backend.ErrChecksum, // minio-go: fewer bytes than the size given

	"InternalError":              backend.ErrUnavailable,
	"ServiceUnavailable":         backend.ErrUnavailable,
	"SlowDown":                   backend.ErrUnavailable,
	"RequestTimeout":             backend.ErrUnavailable,
	"XMinioServerNotInitialized": backend.ErrUnavailable,
	"XMinioStorageFull":          backend.ErrUnavailable,
}

// code returns the S3 error code of err, or "" if it carries none.
func code(err error) string {
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		return er.Code
	}
	return ""
}

// translate turns an SDK or transport error into one wrapping a backend
// sentinel (or a context error). The result never wraps a minio-go type:
// the provider's code and message are kept as text only.
func translate(err error) error {
	if err == nil {
		return nil
	}
	for _, ctxErr := range []error{context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, ctxErr) {
			if err == ctxErr {
				return err
			}
			return fmt.Errorf("%w: %v", ctxErr, err)
		}
	}
	var er minio.ErrorResponse
	if !errors.As(err, &er) {
		// Connection refused, reset, DNS, TLS, timeouts: the service is
		// not reachable right now.
		return fmt.Errorf("%w: %v", backend.ErrUnavailable, err)
	}
	desc := er.Code
	if er.Message != "" && er.Message != er.Code {
		desc += ": " + er.Message
	}
	if sentinel, ok := codeErrors[er.Code]; ok {
		return fmt.Errorf("%w: %s", sentinel, desc)
	}
	var sentinel error
	switch s := er.StatusCode; {
	case s == http.StatusNotFound:
		sentinel = backend.ErrNotFound
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		sentinel = backend.ErrAuth
	case s >= 400 && s < 500 && s != http.StatusRequestTimeout && s != http.StatusTooManyRequests:
		sentinel = backend.ErrInvalid
	default: // 5xx, 408, 429, or no status: an SDK-side failure
		sentinel = backend.ErrUnavailable
	}
	return fmt.Errorf("%w: %s", sentinel, desc)
}

// translateCtx is translate, except that once ctx is done its error is
// what the caller sees: a failed request after cancellation is a
// consequence of it.
func translateCtx(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && err != nil && !errors.Is(err, ctxErr) {
		return fmt.Errorf("%w: %v", ctxErr, err)
	}
	return translate(err)
}
