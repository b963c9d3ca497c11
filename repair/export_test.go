package repair

import (
	"context"
	"time"
)

// Pass runs one scrub pass (and its orphan collection).
func Pass(s *Scrubber, ctx context.Context) error { return s.pass(ctx) }

// SetClock makes s read the time from now.
func SetClock(s *Scrubber, now func() time.Time) { s.now = now }
