package consensus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/raftstore"
)

// Op is one command of ApplyAll.
type Op struct {
	Type    fsm.CommandType
	Payload any
	// Out receives the decoded result; may be nil.
	Out any
}

// applied is the outcome of one command: its JSON result or its error.
type applied struct {
	data []byte
	err  error
}

func toApplied(o outcome) applied {
	switch {
	case o.err != nil:
		return applied{err: o.err}
	case o.res == nil:
		return applied{}
	case o.res.Err != nil:
		return applied{err: o.res.Err}
	case o.res.Data == nil:
		return applied{}
	}
	b, err := json.Marshal(o.res.Data)
	return applied{data: b, err: err}
}

// batchReply is what the leader answers a forwarded CmdBatch: one result
// per command, an error travelling as its kind and message.
type batchReply struct {
	Results []wireResult `json:"results"`
}

type wireResult struct {
	Data  json.RawMessage `json:"data,omitempty"`
	Kind  string          `json:"kind,omitempty"`
	Error string          `json:"error,omitempty"`
}

// wireKinds are the error kinds a batch reply carries; the order is the
// order errors.Is is tried in.
var wireKinds = []struct {
	name string
	err  error
}{
	{"not_found", osprey.ErrNotFound},
	{"conflict", osprey.ErrConflict},
	{"invalid", osprey.ErrInvalid},
	{"too_large", osprey.ErrTooLarge},
	{"not_leader", osprey.ErrNotLeader},
	{"indeterminate", osprey.ErrIndeterminate},
	{"unavailable", osprey.ErrUnavailable},
}

// remoteError is an error the leader reported for one command of a batch.
type remoteError struct {
	kind error
	msg  string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.kind }

func toWire(a applied) wireResult {
	if a.err == nil {
		return wireResult{Data: a.data}
	}
	w := wireResult{Kind: "error", Error: a.err.Error()}
	for _, k := range wireKinds {
		if errors.Is(a.err, k.err) {
			w.Kind = k.name
			break
		}
	}
	return w
}

func fromWire(w wireResult) applied {
	if w.Kind == "" {
		return applied{data: w.Data}
	}
	var kind error = errors.New("failed")
	for _, k := range wireKinds {
		if k.name == w.Kind {
			kind = k.err
		}
	}
	return applied{err: &remoteError{kind: kind, msg: w.Error}}
}

// applyBatchEncoded answers a CmdBatch a follower forwarded: its commands
// join the group commit together and each gets its own result.
func (p *Proposer) applyBatchEncoded(ctx context.Context, payload []byte) ([]byte, error) {
	var b fsm.Batch
	if err := json.Unmarshal(payload, &b); err != nil { // Check decoded it already
		return nil, fmt.Errorf("%w: %w", osprey.ErrInvalid, err)
	}
	outs := p.group.submitMany(ctx, b.Cmds)
	reply := batchReply{Results: make([]wireResult, len(outs))}
	for i, o := range outs {
		reply.Results[i] = toWire(toApplied(o))
	}
	return json.Marshal(reply)
}

// ApplyAll proposes ops together and returns one error per op (nil when it
// was applied; Out then holds its result). On the leader they join the
// group commit at once, so they usually share one Raft entry; from a
// follower they travel to the leader in one request, as a CmdBatch. Like
// Apply it retries the commands that were certainly not applied while no
// leader can take them. A leader of an earlier build, which does not know
// CmdBatch, gets them one by one.
func (p *Proposer) ApplyAll(ctx context.Context, ops []Op) []error {
	errs := make([]error, len(ops))
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.cfg.ApplyTimeout)
		defer cancel()
	}
	var idx []int
	var cmds [][]byte
	for i, op := range ops {
		cmd, err := fsm.Encode(op.Type, op.Payload)
		if err == nil {
			err = fsm.Check(cmd)
		}
		if err != nil {
			errs[i] = err
			continue
		}
		idx, cmds = append(idx, i), append(cmds, cmd)
	}
	for len(idx) > 0 {
		n, size := 0, 0
		for n < len(cmds) && n < p.cfg.MaxBatch && (n == 0 || size+len(cmds[n]) <= p.cfg.MaxBatchBytes/2) {
			size += len(cmds[n])
			n++
		}
		res := p.applyChunk(ctx, cmds[:n])
		for j, a := range res {
			op := ops[idx[j]]
			errs[idx[j]] = a.err
			if a.err == nil && op.Out != nil && len(a.data) > 0 {
				if err := json.Unmarshal(a.data, op.Out); err != nil {
					errs[idx[j]] = fmt.Errorf("node: decode %s result: %w", op.Type, err)
				}
			}
		}
		idx, cmds = idx[n:], cmds[n:]
	}
	return errs
}

// retryable reports an error after which the command was certainly not
// applied.
func retryable(err error) bool {
	return errors.Is(err, osprey.ErrUnavailable) || errors.Is(err, osprey.ErrNotLeader)
}

// applyChunk applies cmds (at most one entry's worth), retrying the ones
// certainly not applied until ctx ends.
func (p *Proposer) applyChunk(ctx context.Context, cmds [][]byte) []applied {
	out := make([]applied, len(cmds))
	todo := make([]int, len(cmds))
	for i := range todo {
		todo[i] = i
	}
	for {
		sub := make([][]byte, len(todo))
		for j, i := range todo {
			sub[j] = cmds[i]
		}
		res := p.applyOnce(ctx, sub)
		var again []int
		for j, i := range todo {
			out[i] = res[j]
			if res[j].err != nil && retryable(res[j].err) {
				again = append(again, i)
			}
		}
		if len(again) == 0 {
			return out
		}
		todo = again
		select {
		case <-ctx.Done():
			return out
		case <-p.done:
			for _, i := range todo {
				out[i].err = ErrShuttingDown
			}
			return out
		case <-time.After(p.cfg.Retry):
		}
	}
}

// applyOnce makes one attempt at cmds through the current leader.
func (p *Proposer) applyOnce(ctx context.Context, cmds [][]byte) []applied {
	all := func(err error) []applied {
		out := make([]applied, len(cmds))
		for i := range out {
			out[i].err = err
		}
		return out
	}
	if p.cfg.Raft.IsLeader() {
		outs := p.group.submitMany(ctx, cmds)
		res := make([]applied, len(outs))
		for i, o := range outs {
			res[i] = toApplied(o)
		}
		return res
	}
	leader := p.LeaderHTTP()
	if leader == "" {
		return all(raftstore.ErrNoLeader)
	}
	if len(cmds) == 1 {
		data, err := p.cfg.Forwarder.ForwardApply(ctx, leader, cmds[0])
		return []applied{{data: data, err: err}}
	}
	batch, err := fsm.EncodeBatch(cmds)
	if err != nil {
		return all(err)
	}
	data, err := p.cfg.Forwarder.ForwardApply(ctx, leader, batch)
	if errors.Is(err, osprey.ErrInvalid) {
		// A leader of an earlier build: one by one.
		out := make([]applied, len(cmds))
		for i, c := range cmds {
			out[i].data, out[i].err = p.cfg.Forwarder.ForwardApply(ctx, leader, c)
		}
		return out
	}
	if err != nil {
		return all(err)
	}
	var reply batchReply
	if err := json.Unmarshal(data, &reply); err != nil || len(reply.Results) != len(cmds) {
		return all(fmt.Errorf("%w: batch reply from %s: %d results for %d commands (%v)", osprey.ErrIndeterminate, leader,
			len(reply.Results), len(cmds), err))
	}
	out := make([]applied, len(cmds))
	for i, w := range reply.Results {
		out[i] = fromWire(w)
	}
	return out
}
