package consensus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/raftstore"
)

// ErrShuttingDown is returned by a Proposer after Close, and is the cause
// the node gives request contexts at shutdown.
var ErrShuttingDown = fmt.Errorf("node: shutting down: %w", osprey.ErrUnavailable)

// Raft is the part of the local raft store a Proposer uses.
type Raft interface {
	IsLeader() bool
	Leader() (addr, id string)
	Term() uint64
	Apply(ctx context.Context, cmd []byte) (any, uint64, error)
	Barrier(ctx context.Context) error
	VerifyLeader(ctx context.Context) error
	// LastContact is when this node last heard from a leader (zero if it
	// never did, or leads).
	LastContact() time.Time
}

// State is the part of the FSM a Proposer reads.
type State interface {
	AppliedIndex() uint64
	Node(id osprey.NodeID) (fsm.Node, bool)
}

// Forwarder reaches the leader over the network.
type Forwarder interface {
	ForwardApply(ctx context.Context, leaderHTTP string, cmd []byte) ([]byte, error)
	ReadIndex(ctx context.Context, leaderHTTP string) (uint64, error)
}

var _ Raft = (*raftstore.Store)(nil)

// Config configures a Proposer.
type Config struct {
	// ID and HTTPAddr are this node's id and advertised HTTP address.
	ID       string
	HTTPAddr string
	// ApplyTimeout bounds Apply when its ctx has no deadline.
	ApplyTimeout time.Duration
	// ReadTimeout bounds ReadBarrier when its ctx has no deadline.
	ReadTimeout time.Duration
	// Retry is the pause between attempts while no leader can take a
	// command.
	Retry time.Duration
	// NoLeaderWait bounds how long Apply and ReadBarrier wait for a leader
	// on a node that had one and lost contact with it (a minority
	// partition, a paused or dead leader not yet replaced): past it they
	// answer ErrNoLeader at once instead of holding the request until its
	// deadline, so clients turn to another node. It must exceed an
	// election. 0 waits until the deadline. A node that never heard from a
	// leader (starting, joining) always waits.
	NoLeaderWait time.Duration
	// MaxBatch and MaxBatchBytes cap one group-commit entry: how many
	// commands, and how many bytes of them, the leader coalesces into one
	// Raft entry (0 means the default; MaxBatch 1 turns batching off).
	MaxBatch      int
	MaxBatchBytes int

	Raft      Raft
	State     State
	Forwarder Forwarder
}

// DefaultConfig returns the timings the node has always used; the caller
// sets ID, HTTPAddr and the three dependencies.
func DefaultConfig() Config {
	return Config{ApplyTimeout: 10 * time.Second, ReadTimeout: 5 * time.Second, Retry: 50 * time.Millisecond,
		MaxBatch: 128, MaxBatchBytes: 256 << 10}
}

// Validate reports a missing dependency or a non-positive timing.
func (c Config) Validate() error {
	switch {
	case c.ID == "" || c.HTTPAddr == "":
		return errors.New("consensus: ID and HTTPAddr are required")
	case c.Raft == nil || c.State == nil || c.Forwarder == nil:
		return errors.New("consensus: Raft, State and Forwarder are required")
	case c.ApplyTimeout <= 0 || c.ReadTimeout <= 0 || c.Retry <= 0 || c.NoLeaderWait < 0:
		return errors.New("consensus: timeouts must be positive")
	case c.MaxBatch < 0 || c.MaxBatch > fsm.MaxBatchCommands || c.MaxBatchBytes < 0:
		return fmt.Errorf("consensus: MaxBatch %d must be 0..%d, MaxBatchBytes %d ≥ 0", c.MaxBatch, fsm.MaxBatchCommands, c.MaxBatchBytes)
	}
	return nil
}

// Proposer proposes commands and provides linearizable reads. Safe for
// concurrent use.
type Proposer struct {
	cfg         Config
	barrierTerm atomic.Uint64 // term in which this leader applied its barrier
	group       *groupCommit
	reads       *readIndexBatch
	done        chan struct{}
	closeOnce   sync.Once
}

// New returns a Proposer.
func New(cfg Config) (*Proposer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	def := DefaultConfig()
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = def.MaxBatch
	}
	if cfg.MaxBatchBytes == 0 {
		cfg.MaxBatchBytes = def.MaxBatchBytes
	}
	g := &groupCommit{apply: cfg.Raft.Apply, timeout: cfg.ApplyTimeout, maxCount: cfg.MaxBatch, maxBytes: cfg.MaxBatchBytes}
	p := &Proposer{cfg: cfg, done: make(chan struct{}), group: g}
	p.reads = &readIndexBatch{p: p}
	return p, nil
}

// GroupCommitStats returns how many Raft entries this node's proposals
// took and how many commands they carried (commands/entries is the mean
// batch size of the group commit).
func (p *Proposer) GroupCommitStats() (entries, commands uint64) {
	return p.group.entries.Load(), p.group.commands.Load()
}

// Close makes waiting Apply calls return ErrShuttingDown. Idempotent.
func (p *Proposer) Close() { p.closeOnce.Do(func() { close(p.done) }) }

// IsLeader reports whether this node leads.
func (p *Proposer) IsLeader() bool { return p.cfg.Raft.IsLeader() }

// LeaderHTTP returns the leader's HTTP address from the FSM's records, ""
// if unknown.
func (p *Proposer) LeaderHTTP() string {
	_, id := p.cfg.Raft.Leader()
	if id == "" {
		return ""
	}
	if id == p.cfg.ID {
		return p.cfg.HTTPAddr
	}
	if rec, ok := p.cfg.State.Node(osprey.NodeID(id)); ok {
		return rec.HTTPAddr
	}
	return ""
}

// Apply proposes a command through the leader (locally, or forwarded over
// HTTP to the leader) and decodes its result into out (which may be nil).
// It retries while the command is certainly not applied (no leader yet,
// leadership moving) until ctx or the apply timeout ends.
func (p *Proposer) Apply(ctx context.Context, t fsm.CommandType, payload, out any) error {
	cmd, err := fsm.Encode(t, payload)
	if err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.cfg.ApplyTimeout)
		defer cancel()
	}
	var (
		data  []byte
		local any // the result applied on this node, as the FSM gave it
	)
	for {
		if p.cfg.Raft.IsLeader() {
			local, err = p.applyLocal(ctx, cmd) // Encode checked cmd
			if err == nil {
				return deliver(t, local, out)
			}
		} else if leader := p.LeaderHTTP(); leader != "" {
			data, err = p.cfg.Forwarder.ForwardApply(ctx, leader, cmd)
		} else if err = p.noLeader(); errors.Is(err, errLeaderLost) {
			return err // never sent: certainly not applied
		}
		if err == nil || !errors.Is(err, osprey.ErrUnavailable) && !errors.Is(err, osprey.ErrNotLeader) {
			break
		}
		// Certainly not applied: wait a little for a (new) leader and retry.
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (%w)", err, ctx.Err())
		case <-p.done:
			return ErrShuttingDown
		case <-time.After(p.cfg.Retry):
		}
	}
	if err != nil {
		return err
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("node: decode %s result: %w", t, err)
		}
	}
	return nil
}

// errLeaderLost marks ErrNoLeader answered before the deadline because
// the leader has been out of contact longer than NoLeaderWait.
var errLeaderLost = errors.New("no contact with a leader")

// noLeader is the error of an attempt that found no leader: ErrNoLeader,
// marked errLeaderLost (give up now) once this node has heard from no
// leader for NoLeaderWait.
func (p *Proposer) noLeader() error {
	last := p.cfg.Raft.LastContact()
	if p.cfg.NoLeaderWait <= 0 || last.IsZero() {
		return raftstore.ErrNoLeader
	}
	if since := time.Since(last); since >= p.cfg.NoLeaderWait {
		return fmt.Errorf("%w: %w for %s (this node cannot reach a quorum; try another)", raftstore.ErrNoLeader, errLeaderLost, since.Round(100*time.Millisecond))
	}
	return raftstore.ErrNoLeader
}

// deliver stores a locally applied command's result in out: the value
// itself when out points to its type (the FSM built it for this entry
// alone, from the entry's bytes, so nothing else holds it), otherwise
// through JSON as a forwarded result would arrive.
func deliver(t fsm.CommandType, res, out any) error {
	if out == nil || res == nil {
		return nil
	}
	if o := reflect.ValueOf(out); o.Kind() == reflect.Pointer && !o.IsNil() {
		if v := reflect.ValueOf(res); v.Type() == o.Type().Elem() {
			o.Elem().Set(v)
			return nil
		}
	}
	data, err := json.Marshal(res)
	if err == nil {
		err = json.Unmarshal(data, out)
	}
	if err != nil {
		return fmt.Errorf("node: decode %s result: %w", t, err)
	}
	return nil
}

// ApplyEncoded applies an encoded command on this node, which must lead,
// and returns the JSON-encoded result. Concurrent calls (local proposals
// and forwarded ones alike) share Raft entries: see groupCommit.
func (p *Proposer) ApplyEncoded(ctx context.Context, cmd []byte) ([]byte, error) {
	// A forwarded command this build cannot decode (a newer follower's
	// type, a corrupt body) must never reach the log: every replica would
	// panic applying it.
	if err := fsm.Check(cmd); err != nil {
		return nil, fmt.Errorf("%w: %w", osprey.ErrInvalid, err)
	}
	res, err := p.applyLocal(ctx, cmd)
	if err != nil || res == nil {
		return nil, err
	}
	if raw, ok := res.(json.RawMessage); ok {
		return raw, nil
	}
	return json.Marshal(res)
}

// applyLocal applies a checked encoded command on this node, which must
// lead, and returns the FSM's result value (a json.RawMessage for a
// CmdBatch).
func (p *Proposer) applyLocal(ctx context.Context, cmd []byte) (any, error) {
	if !p.cfg.Raft.IsLeader() {
		return nil, raftstore.ErrNotLeader
	}
	if t, payload, _ := fsm.Decode(cmd); t == fsm.CmdBatch {
		// A follower's ApplyAll: the commands join the group commit one
		// by one, each with its own result.
		data, err := p.applyBatchEncoded(ctx, payload)
		if err != nil || data == nil {
			return nil, err
		}
		return json.RawMessage(data), nil
	}
	res, err := p.group.submit(ctx, cmd)
	if err != nil {
		return nil, err
	}
	if res == nil {
		return nil, nil
	}
	if res.Err != nil {
		return nil, res.Err
	}
	return res.Data, nil
}

// EnsureBarrier makes a new leader apply everything committed before its
// term, so its commit index is a safe read index.
func (p *Proposer) EnsureBarrier(ctx context.Context) error {
	term := p.cfg.Raft.Term()
	if p.barrierTerm.Load() == term {
		return nil
	}
	if err := p.cfg.Raft.Barrier(ctx); err != nil {
		return err
	}
	p.barrierTerm.Store(term)
	return nil
}

// ReadIndex confirms this node still leads and returns the index of the
// last command its FSM applied. Every write acknowledged before the call is
// applied there (a write is acknowledged only after the leader's FSM applied
// it, and a new leader applies its predecessors' log before answering), so a
// replica whose FSM reached this index sees all of them.
//
// It is the FSM's own index, not raft's: raft counts an entry as applied
// when it hands it to the FSM goroutine, before the FSM has run it.
func (p *Proposer) ReadIndex(ctx context.Context) (uint64, error) {
	if !p.cfg.Raft.IsLeader() {
		return 0, raftstore.ErrNotLeader
	}
	if err := p.EnsureBarrier(ctx); err != nil {
		return 0, err
	}
	idx := p.cfg.State.AppliedIndex()
	if err := p.cfg.Raft.VerifyLeader(ctx); err != nil {
		return 0, err
	}
	return idx, nil
}

// ReadBarrier makes the next local FSM read linearizable: it obtains a
// read index from the leader and waits until the local FSM applied it.
func (p *Proposer) ReadBarrier(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.cfg.ReadTimeout)
		defer cancel()
	}
	var idx uint64
	for {
		var err error
		if p.cfg.Raft.IsLeader() {
			idx, err = p.ReadIndex(ctx)
		} else if idx, err = p.reads.get(ctx); errors.Is(err, errLeaderLost) {
			// Concurrent barriers on this follower share one read-index
			// request to the leader (readIndexBatch).
			return fmt.Errorf("read barrier: %w", err)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, osprey.ErrUnavailable) && !errors.Is(err, osprey.ErrNotLeader) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: read barrier: %w", osprey.ErrUnavailable, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	for p.cfg.State.AppliedIndex() < idx {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting to apply index %d: %w", osprey.ErrUnavailable, idx, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}
