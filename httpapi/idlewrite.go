package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/osprey-storage/osprey"
)

// idleWriteChunk is how much of a response one write deadline covers on
// the ReadFrom (sendfile) path: a client must take this much within
// Limits.WriteIdleTimeout.
const idleWriteChunk = 4 << 20

// idleWriter ends a response whose client stops reading: every Write, and
// every idleWriteChunk bytes of a ReadFrom, runs under a connection write
// deadline of Limits.WriteIdleTimeout, so a client that never reads cannot
// hold a connection, a goroutine and an open object for ever.
type idleWriter struct {
	w    io.Writer
	rc   *http.ResponseController
	idle time.Duration
}

// idleWrite wraps w for a response body; with no timeout configured it
// returns w itself.
func (s *Server) idleWrite(w http.ResponseWriter) io.Writer {
	idle := s.cfg.Limits.WriteIdleTimeout
	if idle <= 0 {
		return w
	}
	return &idleWriter{w: w, rc: http.NewResponseController(w), idle: idle}
}

func (w *idleWriter) arm() { _ = w.rc.SetWriteDeadline(time.Now().Add(w.idle)) }

func (w *idleWriter) Write(p []byte) (int, error) {
	w.arm()
	n, err := w.w.Write(p)
	return n, w.wrap(err)
}

// ReadFrom keeps the response writer's own ReadFrom (sendfile for a local
// file) in reach, a chunk at a time.
func (w *idleWriter) ReadFrom(src io.Reader) (int64, error) {
	var total int64
	for {
		w.arm()
		n, err := io.Copy(w.w, io.LimitReader(src, idleWriteChunk))
		total += n
		if err != nil {
			return total, w.wrap(err)
		}
		if n < idleWriteChunk {
			return total, nil
		}
	}
}

func (w *idleWriter) wrap(err error) error {
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w: the client read nothing for %s", osprey.ErrTimeout, w.idle)
	}
	return err
}
