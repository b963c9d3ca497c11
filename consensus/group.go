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
// the ones followers forward) into as few Raft entries as it can: while
// entries are in flight, new commands queue, and when a slot frees
// everything queued (up to maxCount commands and maxBytes) goes out as the
// next entry, a CmdBatch. A lone command is proposed at once, as itself:
// nothing waits for company, so batching costs a lone request no time, and
// under concurrency the entries (each an fsync on every voter) are shared.
//
// With a Raft that can hand over a command without waiting for it
// (asyncApplier), up to maxInflight entries are in flight at once, handed
// over in queue order by one goroutine: raft writes the ones queued
// together with one fsync, and the state machine applies one entry while
// the next is being written, instead of every entry waiting for the one
// before it to be applied.
type groupCommit struct {
	apply       func(ctx context.Context, cmd []byte) (any, uint64, error)
	applyAsync  func(ctx context.Context, cmd []byte) (func() (any, uint64, error), error) // nil: one entry at a time
	timeout     time.Duration
	maxCount    int
	maxBytes    int
	maxInflight int

	mu      sync.Mutex
	queue   []*proposal
	running bool // a drain goroutine owns the queue

	slots chan struct{} // one token per entry in flight (applyAsync)

	entries, commands atomic.Uint64
}

// asyncApplier is a Raft that hands a command over without waiting for
// its outcome (raftstore.Store.ApplyAsync).
type asyncApplier interface {
	ApplyAsync(ctx context.Context, cmd []byte) (func() (any, uint64, error), error)
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
		if g.applyAsync != nil {
			// Wait for a free slot before taking the batch, so that
			// commands arriving meanwhile join it.
			g.slots <- struct{}{}
		}
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
			if g.applyAsync != nil {
				<-g.slots
			}
			return
		}
		g.mu.Unlock()
		if g.applyAsync == nil {
			g.commit(batch)
			continue
		}
		g.start(batch, func() { <-g.slots })
	}
}

// entryContext is the context of one entry: it lives as long as its most
// patient caller would wait (the others give up on their own context),
// and never longer than the timeout.
func (g *groupCommit) entryContext(batch []*proposal) (context.Context, context.CancelFunc) {
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
	return context.WithDeadline(context.Background(), deadline)
}

// encode returns the entry for batch: the command itself when it is alone,
// else a CmdBatch of them all.
func encode(batch []*proposal) ([]byte, error) {
	if len(batch) == 1 {
		return batch[0].cmd, nil
	}
	cmds := make([][]byte, len(batch))
	for i, p := range batch {
		cmds[i] = p.cmd
	}
	return fsm.Encode(fsm.CmdBatch, fsm.Batch{Cmds: cmds})
}

// start hands batch to raft as one entry without waiting for it (the
// caller holds one slot, which done gives back) and answers its proposals
// from another goroutine once the entry is applied. Called only by the
// drain goroutine, so entries enter the log in queue order.
func (g *groupCommit) start(batch []*proposal, done func()) {
	ctx, cancel := g.entryContext(batch)
	cmd, err := encode(batch)
	var wait func() (any, uint64, error)
	if err == nil {
		wait, err = g.applyAsync(ctx, cmd)
	}
	if errors.Is(err, raftstore.ErrTooLarge) && len(batch) > 1 {
		// Smaller than the cap but larger than the store takes (base64
		// grows the commands by a third): hand over the halves, in order,
		// the second in a slot of its own.
		cancel()
		g.start(batch[:len(batch)/2], done)
		g.slots <- struct{}{}
		g.start(batch[len(batch)/2:], func() { <-g.slots })
		return
	}
	if err != nil {
		cancel()
		g.count(batch)
		g.answer(batch, nil, err)
		done()
		return
	}
	go func() {
		defer done()
		defer cancel()
		resp, _, err := wait()
		g.count(batch)
		g.answer(batch, resp, err)
	}()
}

// commit proposes batch as one entry and waits for it (a Raft without
// ApplyAsync), then hands every proposal its own outcome.
func (g *groupCommit) commit(batch []*proposal) {
	ctx, cancel := g.entryContext(batch)
	defer cancel()
	cmd, err := encode(batch)
	var resp any
	if err == nil {
		resp, _, err = g.apply(ctx, cmd)
	}
	if errors.Is(err, raftstore.ErrTooLarge) && len(batch) > 1 {
		g.commit(batch[:len(batch)/2])
		g.commit(batch[len(batch)/2:])
		return
	}
	g.count(batch)
	g.answer(batch, resp, err)
}

func (g *groupCommit) count(batch []*proposal) {
	g.entries.Add(1)
	g.commands.Add(uint64(len(batch)))
}

// answer hands every proposal of one entry its outcome: resp is the
// entry's response (a Result, or for a batch a Result holding a
// BatchResult with one Result per command).
func (g *groupCommit) answer(batch []*proposal, resp any, err error) {
	if len(batch) == 1 {
		res, _ := resp.(*fsm.Result)
		batch[0].out <- outcome{res: res, err: err}
		return
	}
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
