package consensus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/raftstore"
)

// groupCommit coalesces the commands proposed on the leader (its own and
// the ones followers forward) into as few Raft entries as it can: while one
// entry is in flight, new commands queue, and when it returns everything
// queued (up to maxCount commands and maxBytes) goes out as the next entry,
// a CmdBatch. A lone command is proposed at once, as itself: nothing waits
// for company, so batching costs a lone request no time, and under
// concurrency the entries (each an fsync on every voter) are shared.
type groupCommit struct {
	apply    func(ctx context.Context, cmd []byte) (any, uint64, error)
	timeout  time.Duration
	maxCount int
	maxBytes int

	mu      sync.Mutex
	queue   []*proposal
	running bool // a drain goroutine owns the queue

	entries, commands atomic.Uint64
}

// proposal is one command waiting in the queue; out receives its outcome
// exactly once.
type proposal struct {
	ctx       context.Context
	cmd       []byte
	taken     bool // guarded by groupCommit.mu: handed to raft
	cancelled bool // guarded by groupCommit.mu: its caller gave up before
	out       chan outcome
}

type outcome struct {
	res *fsm.Result
	err error
}

// submit proposes cmd (already checked) and waits for its own result.
func (g *groupCommit) submit(ctx context.Context, cmd []byte) (*fsm.Result, error) {
	o := g.submitMany(ctx, [][]byte{cmd})[0]
	return o.res, o.err
}

// submitMany queues cmds (already checked) together, in order, so they
// usually share one entry, and waits for every outcome.
func (g *groupCommit) submitMany(ctx context.Context, cmds [][]byte) []outcome {
	ps := make([]*proposal, len(cmds))
	for i, c := range cmds {
		ps[i] = &proposal{ctx: ctx, cmd: c, out: make(chan outcome, 1)}
	}
	g.mu.Lock()
	g.queue = append(g.queue, ps...)
	start := !g.running
	g.running = true
	g.mu.Unlock()
	if start {
		go g.drain()
	}
	out := make([]outcome, len(ps))
	for i, p := range ps {
		select {
		case out[i] = <-p.out:
		case <-ctx.Done():
			select {
			case out[i] = <-p.out: // answered as the context ended
				continue
			default:
			}
			g.mu.Lock()
			taken := p.taken
			p.cancelled = !taken
			g.mu.Unlock()
			if !taken {
				out[i].err = fmt.Errorf("%w: %w", raftstore.ErrNotApplied, ctx.Err())
			} else {
				// The entry may commit; nobody can tell yet.
				out[i].err = fmt.Errorf("%w: %w", raftstore.ErrIndeterminate, ctx.Err())
			}
		}
	}
	return out
}

// drain proposes the queue entry by entry until it is empty.
func (g *groupCommit) drain() {
	for {
		g.mu.Lock()
		var batch []*proposal
		size := 0
		for len(g.queue) > 0 && len(batch) < g.maxCount {
			p := g.queue[0]
			if !p.cancelled {
				if len(batch) > 0 && size+len(p.cmd) > g.maxBytes {
					break
				}
				p.taken = true
				batch = append(batch, p)
				size += len(p.cmd)
			}
			g.queue[0] = nil
			g.queue = g.queue[1:]
		}
		if len(batch) == 0 {
			g.queue = nil
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		g.commit(batch)
	}
}

// commit proposes batch as one entry (a plain command when it holds one)
// and hands every proposal its own outcome.
func (g *groupCommit) commit(batch []*proposal) {
	// The entry lives as long as its most patient caller would wait; the
	// others give up on their own context.
	var deadline time.Time
	for _, p := range batch {
		d, ok := p.ctx.Deadline()
		if !ok {
			d = time.Now().Add(g.timeout)
		}
		if d.After(deadline) {
			deadline = d
		}
	}
	if limit := time.Now().Add(g.timeout); deadline.After(limit) {
		deadline = limit
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if len(batch) == 1 {
		resp, _, err := g.apply(ctx, batch[0].cmd)
		g.entries.Add(1)
		g.commands.Add(1)
		res, _ := resp.(*fsm.Result)
		batch[0].out <- outcome{res: res, err: err}
		return
	}
	cmds := make([][]byte, len(batch))
	for i, p := range batch {
		cmds[i] = p.cmd
	}
	cmd, err := fsm.EncodeBatch(cmds)
	var resp any
	if err == nil {
		resp, _, err = g.apply(ctx, cmd)
	}
	if errors.Is(err, raftstore.ErrTooLarge) {
		// Smaller than the cap but larger than the store takes (base64
		// grows the commands by a third): propose the halves.
		g.commit(batch[:len(batch)/2])
		g.commit(batch[len(batch)/2:])
		return
	}
	g.entries.Add(1)
	g.commands.Add(uint64(len(batch)))
	if err == nil {
		var br *fsm.BatchResult
		if r, ok := resp.(*fsm.Result); ok && r != nil {
			br, _ = r.Data.(*fsm.BatchResult)
		}
		if br == nil || len(br.Results) != len(batch) {
			err = fmt.Errorf("%w: batch entry returned %T", raftstore.ErrIndeterminate, resp)
		} else {
			for i, p := range batch {
				p.out <- outcome{res: br.Results[i]}
			}
			return
		}
	}
	for _, p := range batch {
		p.out <- outcome{err: err}
	}
}
