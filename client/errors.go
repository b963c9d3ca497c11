package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Sentinel errors. An *APIError matches the sentinel of its HTTP status
// with errors.Is, so callers can write errors.Is(err, client.ErrNotFound)
// without looking at status codes.
var (
	// ErrInvalid matches 400 and 422 replies: the request was malformed.
	ErrInvalid = errors.New("client: invalid request")
	// ErrUnauthorized matches 401 and 403 replies: missing or bad API key,
	// or a bad or expired link signature.
	ErrUnauthorized = errors.New("client: unauthorized")
	// ErrNotFound matches 404 replies: unknown uid, task or node.
	ErrNotFound = errors.New("client: not found")
	// ErrConflict matches 409 and 412 replies: the request conflicts with
	// the current state (e.g. a merge with missing chunks).
	ErrConflict = errors.New("client: conflict")
	// ErrTooLarge matches 413 replies.
	ErrTooLarge = errors.New("client: request too large")
	// ErrRangeNotSatisfiable matches 416 replies.
	ErrRangeNotSatisfiable = errors.New("client: range not satisfiable")
	// ErrUnavailable matches 503 replies: the request was certainly not
	// applied and may be retried.
	ErrUnavailable = errors.New("client: service unavailable")
	// ErrIndeterminate matches 504 replies: the outcome is unknown.
	ErrIndeterminate = errors.New("client: outcome unknown")
	// ErrServer matches other 5xx replies.
	ErrServer = errors.New("client: server error")

	// ErrChecksum is returned when downloaded or local bytes do not match
	// the expected md5.
	ErrChecksum = errors.New("client: checksum mismatch")
	// ErrNoLink is returned when the server issued no link for a uid (it
	// is unknown or not yet complete).
	ErrNoLink = errors.New("client: no link issued")
	// ErrProtocol is returned when a reply does not follow the contract
	// (wrong number of items, undecodable JSON, bad Content-Range).
	ErrProtocol = errors.New("client: protocol error")
)

// APIError is a non-2xx reply from a node. Use errors.As to get at it, or
// errors.Is with the sentinels above.
type APIError struct {
	Status    int    // HTTP status code
	Code      int    // envelope code (0 if the reply had none or it was not a number)
	CodeText  string // envelope code as sent, for servers that use names
	Message   string // envelope message, or the status text
	RequestID string // request_id from the body or the X-Request-Id header
	Method    string // request method
	Path      string // request path without the query (signatures are not echoed)
}

// Error implements error.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "client: %s %s: %d", e.Method, e.Path, e.Status)
	if e.CodeText != "" {
		fmt.Fprintf(&b, " (code %s)", e.CodeText)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " [request_id %s]", e.RequestID)
	}
	return b.String()
}

// Is reports whether target is the sentinel for e's status.
func (e *APIError) Is(target error) bool {
	return statusSentinel(e.Status) == target
}

func statusSentinel(status int) error {
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return ErrInvalid
	case http.StatusUnauthorized, http.StatusForbidden:
		return ErrUnauthorized
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusConflict, http.StatusPreconditionFailed:
		return ErrConflict
	case http.StatusRequestEntityTooLarge:
		return ErrTooLarge
	case http.StatusRequestedRangeNotSatisfiable:
		return ErrRangeNotSatisfiable
	case http.StatusServiceUnavailable:
		return ErrUnavailable
	case http.StatusGatewayTimeout:
		return ErrIndeterminate
	}
	if status >= 500 {
		return ErrServer
	}
	return nil
}

// maxErrorBody bounds how much of an error reply is read.
const maxErrorBody = 64 << 10

// decodeError builds an *APIError from a non-2xx response and closes its
// body. Bodies that are not the JSON envelope keep their first line as the
// message.
func decodeError(resp *http.Response) *APIError {
	defer resp.Body.Close()
	e := &APIError{
		Status:    resp.StatusCode,
		RequestID: resp.Header.Get("X-Request-Id"),
	}
	if resp.Request != nil {
		e.Method = resp.Request.Method
		if resp.Request.URL != nil {
			e.Path = resp.Request.URL.Path
		}
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var env envelope
	if len(body) > 0 && json.Unmarshal(body, &env) == nil && (env.Code != "" || env.Message != "") {
		e.CodeText = string(env.Code)
		e.Code = int(env.Code.Int())
		e.Message = env.Message
		if env.RequestID != "" {
			e.RequestID = env.RequestID
		}
	} else if s := strings.TrimSpace(string(body)); s != "" {
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[:i]
		}
		if len(s) > 200 {
			s = s[:200]
		}
		e.Message = s
	}
	if e.Message == "" {
		e.Message = strings.ToLower(http.StatusText(resp.StatusCode))
	}
	return e
}
