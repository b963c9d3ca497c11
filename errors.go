package osprey

import "errors"

// Error kinds shared by every layer. Lower layers wrap these in their own
// sentinels (fsm.ErrNotFound wraps ErrNotFound, ...), so httpapi maps every
// error to a status with errors.Is against this one table.
var (
	// ErrInvalid: bad input (400).
	ErrInvalid = errors.New("invalid argument")
	// ErrUnauthorized: missing credentials (401).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: bad, expired or tampered signature; wrong key (403).
	ErrForbidden = errors.New("forbidden")
	// ErrNotFound: unknown uid, node or object (404).
	ErrNotFound = errors.New("not found")
	// ErrConflict: conflicts with the current state (409).
	ErrConflict = errors.New("conflict")
	// ErrGone: the uid exists but its bytes are lost for good (410), e.g.
	// staged content missing from a restored metadata backup.
	ErrGone = errors.New("gone")
	// ErrTimeout: the client stopped sending the request body for longer
	// than the idle timeout (408).
	ErrTimeout = errors.New("request timeout")
	// ErrTooManyRequests: one client holds more concurrent uploads than
	// its share (429 with Retry-After).
	ErrTooManyRequests = errors.New("too many requests")
	// ErrTooLarge: body or command larger than allowed (413).
	ErrTooLarge = errors.New("too large")
	// ErrRange: unsatisfiable range (416).
	ErrRange = errors.New("range not satisfiable")
	// ErrUnavailable: certainly not applied: no leader, not ready, shutting
	// down (503 with Retry-After).
	ErrUnavailable = errors.New("unavailable")
	// ErrIndeterminate: proposed, outcome unknown (504).
	ErrIndeterminate = errors.New("outcome unknown")
	// ErrBackend: the object backend failed (502).
	ErrBackend = errors.New("backend failure")
	// ErrNotLeader: a leader-only call reached a follower; httpapi forwards
	// or redirects.
	ErrNotLeader = errors.New("not leader")
)
