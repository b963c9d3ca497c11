package consensus

import (
	"context"
	"fmt"
	"sync"

	"github.com/osprey-storage/osprey"
)

// readIndexBatch shares a follower's read-index requests to the leader:
// while one request is in flight, the read barriers that arrive queue,
// and when it returns all of them go out as the next request, one round
// trip for the lot. A queued barrier never takes the answer of a request
// sent before it arrived: that index could predate a write acknowledged
// before the read began. A lone barrier is sent at once.
//
// The request runs on a context of its own (ReadTimeout), so a caller
// that gives up does not fail the others waiting on it.
type readIndexBatch struct {
	p *Proposer

	mu      sync.Mutex
	queue   []chan readIndexResult
	running bool // a goroutine owns the queue
}

type readIndexResult struct {
	idx uint64
	err error
}

// get returns a read index obtained from the leader after the call began.
func (b *readIndexBatch) get(ctx context.Context) (uint64, error) {
	ch := make(chan readIndexResult, 1)
	b.mu.Lock()
	b.queue = append(b.queue, ch)
	start := !b.running
	b.running = true
	b.mu.Unlock()
	if start {
		go b.loop()
	}
	select {
	case r := <-ch:
		return r.idx, r.err
	case <-ctx.Done():
		return 0, fmt.Errorf("%w: read index: %w", osprey.ErrUnavailable, ctx.Err())
	}
}

// loop sends one read-index request per batch until the queue is empty.
func (b *readIndexBatch) loop() {
	for {
		b.mu.Lock()
		batch := b.queue
		b.queue = nil
		if len(batch) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		r := b.request()
		for _, ch := range batch {
			ch <- r // buffered: a caller that left does not block the loop
		}
	}
}

// request asks the current leader for its read index.
func (b *readIndexBatch) request() readIndexResult {
	p := b.p
	leader := p.LeaderHTTP()
	if leader == "" {
		return readIndexResult{err: p.noLeader()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.ReadTimeout)
	defer cancel()
	go func() {
		select {
		case <-p.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	idx, err := p.cfg.Forwarder.ReadIndex(ctx, leader)
	return readIndexResult{idx: idx, err: err}
}
