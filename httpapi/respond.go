package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/osprey-storage/osprey"
)

// Envelope is the JSON reply of SPEC §1.
type Envelope struct {
	Code      int    `json:"code"`
	Message   string `json:"message"`
	Data      any    `json:"data"`
	RequestID string `json:"request_id,omitempty"`
}

// Stable error codes of the envelope (documented in the README).
const (
	CodeOK            = 0
	CodeInvalid       = 40000
	CodeUnauthorized  = 40100
	CodeForbidden     = 40300
	CodeNotFound      = 40400
	CodeMethod        = 40500
	CodeTimeout       = 40800
	CodeConflict      = 40900
	CodeGone          = 41000
	CodeTooLarge      = 41300
	CodeRange         = 41600
	CodeTooMany       = 42900
	CodeInternal      = 50000
	CodeBackend       = 50200
	CodeUnavailable   = 50300
	CodeIndeterminate = 50400
)

// errorMapping is the one table from error kinds to HTTP.
var errorMapping = []struct {
	kind   error
	status int
	code   int
}{
	{osprey.ErrInvalid, http.StatusBadRequest, CodeInvalid},
	{osprey.ErrUnauthorized, http.StatusUnauthorized, CodeUnauthorized},
	{osprey.ErrForbidden, http.StatusForbidden, CodeForbidden},
	{osprey.ErrNotFound, http.StatusNotFound, CodeNotFound},
	{osprey.ErrConflict, http.StatusConflict, CodeConflict},
	{osprey.ErrGone, http.StatusGone, CodeGone},
	{osprey.ErrTimeout, http.StatusRequestTimeout, CodeTimeout},
	{osprey.ErrTooLarge, http.StatusRequestEntityTooLarge, CodeTooLarge},
	{osprey.ErrRange, http.StatusRequestedRangeNotSatisfiable, CodeRange},
	{osprey.ErrTooManyRequests, http.StatusTooManyRequests, CodeTooMany},
	{osprey.ErrUnavailable, http.StatusServiceUnavailable, CodeUnavailable},
	{osprey.ErrNotLeader, http.StatusServiceUnavailable, CodeUnavailable},
	{osprey.ErrIndeterminate, http.StatusGatewayTimeout, CodeIndeterminate},
	{osprey.ErrBackend, http.StatusBadGateway, CodeBackend},
}

// errMethodNotAllowed is used by the router's MethodNotAllowed handler.
var errMethodNotAllowed = errors.New("method not allowed")

type ctxKey int

const requestIDKey ctxKey = 1

// RequestID returns the request id carried by ctx.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// statusOf maps err to (status, code). Unknown errors are 500.
func statusOf(err error) (int, int) {
	if errors.Is(err, errMethodNotAllowed) {
		return http.StatusMethodNotAllowed, CodeMethod
	}
	for _, m := range errorMapping {
		if errors.Is(err, m.kind) {
			return m.status, m.code
		}
	}
	return http.StatusInternalServerError, CodeInternal
}

// writeError writes err as a JSON envelope. 5xx errors are logged with
// details; the client sees only a generic message for 500s. A client that
// went away gets nothing, and what failed because it left (a body cut
// short shows as an unexpected EOF or a reset, not only as
// context.Canceled) is logged at debug level, not as a server error. An
// error with a status of its own (a stalled body's 408: the server ended
// the request, the client may still read the answer) is answered.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, code := statusOf(err)
	if r.Context().Err() != nil && (errors.Is(err, context.Canceled) || status == http.StatusInternalServerError) {
		s.log.Debug("client gone", "path", r.URL.Path, "request_id", RequestID(r.Context()), "err", err)
		return
	}
	msg := err.Error()
	switch {
	case status == http.StatusInternalServerError:
		s.log.Error("internal error", "method", r.Method, "path", r.URL.Path, "request_id", RequestID(r.Context()), "err", err)
		msg = "internal error"
	case status >= 500:
		s.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "request_id", RequestID(r.Context()), "err", err)
	}
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, r, status, Envelope{Code: code, Message: msg, Data: nil})
}

// writeJSON writes v with status. An Envelope gets the request id filled in.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	if env, ok := v.(Envelope); ok {
		env.RequestID = RequestID(r.Context())
		v = env
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // links carry '&'; keep them readable
	_ = enc.Encode(v)
}

// writeOK writes a success envelope carrying data.
func writeOK(w http.ResponseWriter, r *http.Request, data any) {
	writeJSON(w, r, http.StatusOK, Envelope{Code: CodeOK, Message: "ok", Data: data})
}

// invalidf builds a 400 error naming the offending field.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", osprey.ErrInvalid, fmt.Sprintf(format, args...))
}

// decodeJSON reads a JSON body of at most limit bytes into v.
func decodeJSON(r *http.Request, limit int64, v any) error {
	body := http.MaxBytesReader(nil, r.Body, limit)
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("%w: request body larger than %d bytes", osprey.ErrTooLarge, limit)
		}
		return invalidf("malformed JSON body: %v", err)
	}
	if dec.More() {
		return invalidf("malformed JSON body: trailing data")
	}
	return nil
}

// ErrorFromStatus turns another node's error reply back into an error of
// the matching kind, so forwarded calls fail the same way local ones do.
func ErrorFromStatus(status int, msg string) error {
	for _, m := range errorMapping {
		if m.status == status {
			return fmt.Errorf("%w: %s", m.kind, msg)
		}
	}
	return fmt.Errorf("remote error (status %d): %s", status, msg)
}
