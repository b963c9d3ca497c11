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
