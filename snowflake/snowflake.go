// Package snowflake mints 64-bit unique ids: 41 bits of milliseconds since
// Epoch, 10 bits of worker id (assigned to each node by the FSM, so no two
// nodes share one) and 12 bits of sequence.
//
// The generator never goes backwards: when the wall clock steps back it
// keeps counting from the last timestamp it used, borrowing future
// milliseconds when a millisecond's sequence is exhausted. A persisted
// high-water mark carries that guarantee across restarts: before handing
// out ids past the mark, the generator durably moves the mark forward, so a
// restarted node whose clock went back starts after every id it ever issued.
package snowflake

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Epoch is 2024-01-01T00:00:00Z; 41 bits of milliseconds last until 2093.
var Epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	workerBits = 10
	seqBits    = 12
	// MaxWorker is the largest worker id.
	MaxWorker = 1<<workerBits - 1
	maxSeq    = 1<<seqBits - 1
	// reserve is how far ahead of the clock the high-water mark is moved.
	reserve = 10_000 // ms
)

// ErrWorkerRange is returned for a worker id above MaxWorker.
var ErrWorkerRange = errors.New("snowflake: worker id out of range")

// Generator mints ids for one worker. It is safe for concurrent use.
type Generator struct {
	mu     sync.Mutex
	worker uint64
	last   int64 // last millisecond used (since Epoch)
	seq    uint64
	mark   int64 // persisted high-water mark (ms since Epoch)
	path   string
	now    func() time.Time
}

// New returns a generator for worker, persisting its high-water mark in
// path ("" keeps it in memory only, for tests). now is the clock; nil means
// time.Now.
func New(worker uint32, path string, now func() time.Time) (*Generator, error) {
	if worker > MaxWorker {
		return nil, fmt.Errorf("%w: %d", ErrWorkerRange, worker)
	}
	if now == nil {
		now = time.Now
	}
	g := &Generator{worker: uint64(worker), path: path, now: now}
	if path != "" {
		b, err := os.ReadFile(path)
		switch {
		case err == nil && len(b) == 8:
			g.mark = int64(binary.BigEndian.Uint64(b))
			g.last = g.mark // everything below the mark may have been issued
		case err == nil:
			return nil, fmt.Errorf("snowflake: corrupt high-water mark %s", path)
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("snowflake: read high-water mark: %w", err)
		}
	}
	return g, nil
}

// Next returns a new id.
func (g *Generator) Next() (uint64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ms := g.now().Sub(Epoch).Milliseconds()
	if ms > g.last {
		g.last, g.seq = ms, 0
	} else {
		// Same millisecond, or the clock stepped back: continue from last.
		g.seq++
		if g.seq > maxSeq {
			g.last++
			g.seq = 0
		}
	}
	if g.last >= g.mark && g.path != "" {
		if err := g.persist(g.last + reserve); err != nil {
			return 0, err
		}
	}
	return uint64(g.last)<<(workerBits+seqBits) | g.worker<<seqBits | g.seq, nil
}

func (g *Generator) persist(mark int64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(mark))
	tmp := g.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("snowflake: persist mark: %w", err)
	}
	_, err = f.Write(b[:])
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, g.path)
	}
	if err == nil {
		if d, derr := os.Open(filepath.Dir(g.path)); derr == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("snowflake: persist mark: %w", err)
	}
	g.mark = mark
	return nil
}

// Worker returns the worker id of an id.
func Worker(id uint64) uint32 { return uint32(id >> seqBits & MaxWorker) }
