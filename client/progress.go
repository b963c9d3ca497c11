package client

import (
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
)

// IsTerminal reports whether w is a character device (a terminal), which
// is when a progress bar is worth drawing.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progress counts bytes for an optional progress bar. A nil *progress is a
// valid no-op, so callers never check.
type progress struct {
	bar  *progressbar.ProgressBar
	done atomic.Int64
}

// newProgress draws a byte progress bar of total bytes on w; nil w gives a
// counter without a bar.
func newProgress(w io.Writer, total int64, desc string) *progress {
	p := &progress{}
	if w == nil {
		return p
	}
	p.bar = progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionUseIECUnits(true),
	)
	return p
}

// add records n more bytes (n may be negative when a retry rewinds).
func (p *progress) add(n int64) {
	if p == nil || n == 0 {
		return
	}
	p.done.Add(n)
	if p.bar != nil {
		_ = p.bar.Add64(n)
	}
}

// set moves the counter to n.
func (p *progress) set(n int64) {
	if p == nil {
		return
	}
	p.done.Store(n)
	if p.bar != nil {
		_ = p.bar.Set64(n)
	}
}

// finish removes the bar from the terminal.
func (p *progress) finish() {
	if p == nil || p.bar == nil {
		return
	}
	_ = p.bar.Finish()
	_ = p.bar.Clear()
}

// progressReader reports bytes read from a ReadSeeker; rewinding (a retried
// request) takes them back off the bar.
type progressReader struct {
	rs   io.ReadSeeker
	p    *progress
	read int64
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.rs.Read(b)
	r.read += int64(n)
	r.p.add(int64(n))
	return n, err
}

func (r *progressReader) Seek(off int64, whence int) (int64, error) {
	pos, err := r.rs.Seek(off, whence)
	if err == nil && !(whence == io.SeekCurrent && off == 0) {
		r.p.add(-r.read)
		r.read = 0
	}
	return pos, err
}

// progressWriter reports bytes written.
type progressWriter struct{ p *progress }

func (w progressWriter) Write(b []byte) (int, error) {
	w.p.add(int64(len(b)))
	return len(b), nil
}
