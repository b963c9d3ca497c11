package httpapi

import (
	"net/http"
	"sync"
	"testing"
)

var (
	sharedValidatorOnce sync.Once
	sharedValidator     *openAPIValidator
)

// CheckOpenAPI validates one reply to method on the documented route (an
// OpenAPI path template) against httpapi/openapi.json: the status must be
// documented, the media type listed, and a JSON body must match its
// schema. It is for the external tests in package httpapi_test, which may
// import node without an import cycle.
func CheckOpenAPI(t *testing.T, route, method string, status int, header http.Header, body []byte) error {
	t.Helper()
	sharedValidatorOnce.Do(func() { sharedValidator = mustOpenAPIValidator(t) })
	return sharedValidator.check(route, method, status, header, body)
}
