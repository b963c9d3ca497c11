package httpapi

import (
	"errors"
	"time"
)

// Limits bounds requests and links.
type Limits struct {
	// MaxChunkSize is the largest chunk accepted by /upload/multi (413 above).
	MaxChunkSize int64
	// MaxUploadSize is the largest single-request upload (413 above).
	MaxUploadSize int64
	// DefaultExpiry applies when a link request's expire is 0 or absent.
	DefaultExpiry time.Duration
	// MaxExpiry caps a link's expiry.
	MaxExpiry time.Duration
	// ClockSkew tolerates a link date this far in the future.
	ClockSkew time.Duration
	// BodyIdleTimeout ends an upload whose client sends no body bytes for
	// this long (408), so a stalled or trickling sender cannot hold a
	// connection and its buffers for ever. 0 disables it.
	BodyIdleTimeout time.Duration
	// WriteIdleTimeout ends a download whose client reads nothing for this
	// long (the connection is cut), so a client that stops reading cannot
	// hold a connection and an open object for ever. 0 disables it.
	WriteIdleTimeout time.Duration
	// MaxUploadsPerClient caps the uploads (PUT /upload, /upload/multi) one
	// client address has in flight on this node; more answer 429 with
	// Retry-After at once, so a handful of slow senders cannot take every
	// upload slot and buffer of a node. 0 disables the cap.
	MaxUploadsPerClient int
}

// DefaultLimits returns the server defaults.
func DefaultLimits() Limits {
	return Limits{
		MaxChunkSize:  64 << 20,
		MaxUploadSize: 5 << 30,
		DefaultExpiry: 24 * time.Hour,
		MaxExpiry:     7 * 24 * time.Hour,
		ClockSkew:     5 * time.Minute,
		// Generous for a mobile client on a bad link, short enough that
		// stalled uploads give their buffers back.
		BodyIdleTimeout:  60 * time.Second,
		WriteIdleTimeout: 60 * time.Second,
		// Far above what one well-behaved client needs (the CLI sends 4
		// chunks at a time), far below what it takes to starve a node.
		MaxUploadsPerClient: 64,
	}
}

// Validate reports the first invalid limit.
func (l Limits) Validate() error {
	if l.MaxUploadsPerClient < 0 || l.WriteIdleTimeout < 0 || l.BodyIdleTimeout < 0 {
		return errors.New("httpapi: MaxUploadsPerClient and the idle timeouts must not be negative")
	}
	if l.MaxChunkSize <= 0 || l.MaxUploadSize <= 0 || l.DefaultExpiry <= 0 || l.MaxExpiry < l.DefaultExpiry {
		return errors.New("httpapi: limits must be positive and MaxExpiry ≥ DefaultExpiry")
	}
	return nil
}
