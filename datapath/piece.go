package datapath

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/cespare/xxhash/v2"
)

// piece is a chunk's bytes as they arrive from the client, read by the
// chunk's copies at the same time: each copy's reader follows the filled
// prefix of the one buffer, so a chunk streams to its owners while the
// client is still sending it, with no buffer per owner and no extra copy
// (the memory is the request's pooled slab, taken from the node's budget
// as bytes arrive). A copy that starts late (a retry on another candidate,
// a hedge) reads from the start like the others.
//
// The writer calls fill after each read and finish once at the end; the
// buffer may be reallocated between fills (readers always take the latest
// slice, and bytes below n never change in either array).
type piece struct {
	size int64 // the expected size: readers stop there

	mu   sync.Mutex
	cond sync.Cond
	buf  []byte // buf[:len(buf)] is filled
	done bool
	err  error // why the piece will not complete (done with err != nil)

	sumOnce sync.Once
	sum     uint64
}

// errPieceAbandoned ends copy readers of a piece whose body failed.
var errPieceAbandoned = errors.New("datapath: piece abandoned")

func newPiece(size int64) *piece {
	pc := &piece{size: size}
	pc.cond.L = &pc.mu
	return pc
}

// fullPiece is a piece that is complete from the start.
func fullPiece(buf []byte) *piece {
	pc := newPiece(int64(len(buf)))
	pc.buf, pc.done = buf, true
	return pc
}

// fill publishes buf (the same bytes as before plus more) to the readers.
func (pc *piece) fill(buf []byte) {
	pc.mu.Lock()
	pc.buf = buf
	pc.mu.Unlock()
	pc.cond.Broadcast()
}

// finish marks the piece complete with its final bytes, or failed (err):
// readers then end with errPieceAbandoned wrapping err.
func (pc *piece) finish(buf []byte, err error) {
	pc.mu.Lock()
	if buf != nil {
		pc.buf = buf
	}
	pc.done, pc.err = true, err
	pc.mu.Unlock()
	pc.cond.Broadcast()
}

// bytes waits for the piece to complete and returns its bytes.
func (pc *piece) bytes(ctx context.Context) ([]byte, error) {
	stop := context.AfterFunc(ctx, pc.wake)
	defer stop()
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for !pc.done && ctx.Err() == nil {
		pc.cond.Wait()
	}
	switch {
	case pc.err != nil:
		return nil, errors.Join(errPieceAbandoned, pc.err)
	case !pc.done:
		return nil, ctx.Err()
	}
	return pc.buf, nil
}

// checksum is the xxhash64 of the complete piece (computed once).
func (pc *piece) checksum(ctx context.Context) (uint64, error) {
	buf, err := pc.bytes(ctx)
	if err != nil {
		return 0, err
	}
	pc.sumOnce.Do(func() { pc.sum = xxhash.Sum64(buf) })
	return pc.sum, nil
}

func (pc *piece) wake() {
	pc.mu.Lock()
	pc.mu.Unlock() //nolint:staticcheck // pairs with the waiter's check
	pc.cond.Broadcast()
}

// reader returns a reader of the piece's first size bytes that waits for
// bytes not yet filled; it ends when ctx does.
func (pc *piece) reader(ctx context.Context) io.Reader {
	return &pieceReader{pc: pc, ctx: ctx}
}

type pieceReader struct {
	pc  *piece
	ctx context.Context
	pos int64
}

func (r *pieceReader) Read(p []byte) (int, error) {
	pc := r.pc
	if r.pos >= pc.size {
		return 0, io.EOF
	}
	pc.mu.Lock()
	for int64(len(pc.buf)) <= r.pos && !pc.done && r.ctx.Err() == nil {
		stop := context.AfterFunc(r.ctx, pc.wake)
		pc.cond.Wait()
		stop()
	}
	buf, done, err := pc.buf, pc.done, pc.err
	pc.mu.Unlock()
	switch {
	case err != nil:
		return 0, errors.Join(errPieceAbandoned, err)
	case int64(len(buf)) > r.pos:
		end := min(int64(len(buf)), pc.size)
		n := copy(p, buf[r.pos:end])
		r.pos += int64(n)
		return n, nil
	case done:
		return 0, io.ErrUnexpectedEOF // complete but shorter than size
	}
	return 0, r.ctx.Err()
}
