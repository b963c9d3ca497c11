package objio

import (
	"errors"
	"io"
	"sync"
)

// errPrefetchClosed is returned by Read after Close.
var errPrefetchClosed = errors.New("objio: prefetching reader closed")

// Prefetcher reads its source ahead on its own goroutine into two buffers,
// so that work done while reading the source (hashing in a
// VerifyingReader) overlaps with the consumer's work (writing a file,
// uploading a part). Memory is two buffers of the size given to Prefetch.
//
// Errors from the source, including a VerifyingReader's refusal to hand over
// the tail of a body with the wrong md5, reach the consumer after the bytes
// read before them, exactly as without prefetching.
//
// Read may be called from a goroutine other than Close's. The caller MUST
// Close the Prefetcher; Close waits for the prefetching goroutine, which may
// be blocked in the source's Read.
type Prefetcher struct {
	full chan prefetched
	free chan []byte
	stop chan struct{}
	done chan struct{}

	// Owned by the reading goroutine.
	buf []byte // buffer being consumed, returned to free when drained
	cur []byte // unread part of buf
	err error  // terminal error, after cur is drained

	closeOnce sync.Once
}

type prefetched struct {
	buf []byte
	n   int
	err error
}

// Prefetch starts reading r ahead in chunks of bufSize bytes.
func Prefetch(r io.Reader, bufSize int) *Prefetcher {
	p := &Prefetcher{
		full: make(chan prefetched, 2),
		free: make(chan []byte, 2),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	p.free <- make([]byte, bufSize)
	p.free <- make([]byte, bufSize)
	go p.fill(r)
	return p
}

func (p *Prefetcher) fill(r io.Reader) {
	defer close(p.done)
	for {
		var buf []byte
		select {
		case buf = <-p.free:
		case <-p.stop:
			return
		}
		n, err := io.ReadFull(r, buf)
		if err == io.ErrUnexpectedEOF { // r ended inside this buffer
			err = io.EOF
		}
		select {
		case p.full <- prefetched{buf: buf, n: n, err: err}:
		case <-p.stop:
			return
		}
		if err != nil {
			return
		}
	}
}

// Read implements io.Reader.
func (p *Prefetcher) Read(b []byte) (int, error) {
	for len(p.cur) == 0 {
		if p.err != nil {
			return 0, p.err
		}
		if p.buf != nil {
			p.free <- p.buf // never blocks: only two buffers exist
			p.buf = nil
		}
		select {
		case c := <-p.full:
			p.buf, p.cur, p.err = c.buf, c.buf[:c.n], c.err
		case <-p.done:
			// The filler has stopped; take what it sent before stopping.
			select {
			case c := <-p.full:
				p.buf, p.cur, p.err = c.buf, c.buf[:c.n], c.err
			default:
				return 0, errPrefetchClosed
			}
		}
		if len(b) == 0 {
			return 0, nil
		}
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	return n, nil
}

// Close stops prefetching and waits for the goroutine to exit. It does not
// close the source. It is idempotent.
func (p *Prefetcher) Close() error {
	p.closeOnce.Do(func() { close(p.stop) })
	<-p.done
	return nil
}
