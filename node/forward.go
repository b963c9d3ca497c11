package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/consensus"
)

// errLeaderMoved is the cause a forwarded call is cancelled with when this
// node sees the leader change while the call is in flight.
var errLeaderMoved = errors.New("the leader changed while the call was in flight")

// syncFirst wraps the forwarder the proposer uses so that a command goes
// to another node's leader only after this node's chunk store is synced:
// an upload's local copy of one block is committed without a sync
// (chunkstore.Store.PutUploadNoSync) and made durable by this node's Raft
// log append of the entry that records it, which happens before that
// entry commits only when this node leads. A forwarded entry can commit
// without this node's log, so the sync must come first. It costs nothing
// when no such copy is pending (SyncWAL returns at once).
type syncFirst struct {
	consensus.Forwarder
	sync func() error
}

// ForwardApply syncs, then forwards cmd. A failed sync sends nothing, so
// the command is certainly not applied.
func (f syncFirst) ForwardApply(ctx context.Context, leader string, cmd []byte) ([]byte, error) {
	if err := f.sync(); err != nil {
		return nil, fmt.Errorf("sync local copies before forwarding to %s: %w", leader, err)
	}
	return f.Forwarder.ForwardApply(ctx, leader, cmd)
}

// leaderBound wraps the forwarder the proposer uses so that a call to the
// leader ends as soon as this node sees the leader change, instead of when
// the request's deadline does. A leader cut off by a partition never
// answers: without this, every request a follower forwarded to it waits
// out its client's timeout, long after a new leader took over.
type leaderBound struct {
	inner consensus.Forwarder
	// changed returns a channel closed at the next leader change.
	changed func() <-chan struct{}
}

var _ consensus.Forwarder = leaderBound{}

// ForwardApply forwards cmd; if the leader changes first, the outcome is
// unknown (the old leader may have committed it), so the error is
// ErrIndeterminate and the client decides whether to retry.
func (f leaderBound) ForwardApply(ctx context.Context, leader string, cmd []byte) ([]byte, error) {
	ctx, stop := f.bind(ctx)
	defer stop()
	data, err := f.inner.ForwardApply(ctx, leader, cmd)
	if err != nil && errors.Is(context.Cause(ctx), errLeaderMoved) {
		return nil, fmt.Errorf("%w: forwarding to %s: %w", osprey.ErrIndeterminate, leader, errLeaderMoved)
	}
	return data, err
}

// ReadIndex asks the leader for a read index; a read changes nothing, so a
// leader change makes it ErrUnavailable and the proposer asks the new one.
func (f leaderBound) ReadIndex(ctx context.Context, leader string) (uint64, error) {
	ctx, stop := f.bind(ctx)
	defer stop()
	idx, err := f.inner.ReadIndex(ctx, leader)
	if err != nil && errors.Is(context.Cause(ctx), errLeaderMoved) {
		return 0, fmt.Errorf("%w: read index from %s: %w", osprey.ErrUnavailable, leader, errLeaderMoved)
	}
	return idx, err
}

// bind returns ctx cancelled with errLeaderMoved at the next leader change.
func (f leaderBound) bind(ctx context.Context) (context.Context, func()) {
	changed := f.changed()
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-changed:
			cancel(errLeaderMoved)
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(nil) }
}
