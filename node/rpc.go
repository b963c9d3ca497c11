package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
	"github.com/osprey-storage/osprey/raftstore"
)

// Apply proposes an FSM command through the leader and decodes its result
// into out. It is how tools and tests drive the state machine directly.
func (n *Node) Apply(ctx context.Context, t fsm.CommandType, payload, out any) error {
	return n.apply(ctx, t, payload, out)
}

// apply proposes a command through the leader (locally, or forwarded over
// HTTP to the leader) and decodes its result into out (which may be nil).
// It retries while the command is certainly not applied (no leader yet,
// leadership moving) until ctx or the apply timeout ends.
func (n *Node) apply(ctx context.Context, t fsm.CommandType, payload, out any) error {
	cmd, err := fsm.Encode(t, payload)
	if err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.Raft.ApplyTimeout)
		defer cancel()
	}
	var data []byte
	for {
		if n.raft.IsLeader() {
			data, err = n.ApplyEncoded(ctx, cmd)
		} else if leader := n.LeaderHTTP(); leader != "" {
			data, err = n.forwardApply(ctx, leader, cmd)
		} else {
			err = raftstore.ErrNoLeader
		}
		if err == nil || !errors.Is(err, osprey.ErrUnavailable) && !errors.Is(err, osprey.ErrNotLeader) {
			break
		}
		// Certainly not applied: wait a little for a (new) leader and retry.
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (%w)", err, ctx.Err())
		case <-n.ctx.Done():
			return ErrShuttingDown
		case <-time.After(50 * time.Millisecond):
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

// ApplyEncoded applies an encoded command on this node, which must lead,
// and returns the JSON-encoded result.
func (n *Node) ApplyEncoded(ctx context.Context, cmd []byte) ([]byte, error) {
	// A forwarded command this build cannot decode (a newer follower's
	// type, a corrupt body) must never reach the log: every replica would
	// panic applying it.
	if _, _, err := fsm.Decode(cmd); err != nil {
		return nil, fmt.Errorf("%w: %w", osprey.ErrInvalid, err)
	}
	resp, _, err := n.raft.Apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	res, ok := resp.(*fsm.Result)
	if !ok || res == nil {
		return nil, nil
	}
	if res.Err != nil {
		return nil, res.Err
	}
	if res.Data == nil {
		return nil, nil
	}
	return json.Marshal(res.Data)
}

// forwardApply sends cmd to the leader's /internal/v1/apply.
func (n *Node) forwardApply(ctx context.Context, leader string, cmd []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+leader+"/internal/v1/apply", bytes.NewReader(cmd))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	var reply struct {
		Data json.RawMessage `json:"data"`
	}
	if err := n.doJSON(req, &reply); err != nil {
		return nil, err
	}
	return reply.Data, nil
}

// ReadIndex confirms this node still leads and returns the index of the
// last command its FSM applied. Every write acknowledged before the call is
// applied there (a write is acknowledged only after the leader's FSM applied
// it, and a new leader applies its predecessors' log before answering), so a
// replica whose FSM reached this index sees all of them.
//
// It is the FSM's own index, not raft's: raft counts an entry as applied
// when it hands it to the FSM goroutine, before the FSM has run it.
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) {
	if !n.raft.IsLeader() {
		return 0, raftstore.ErrNotLeader
	}
	if err := n.ensureBarrier(ctx); err != nil {
		return 0, err
	}
	idx := n.fsm.AppliedIndex()
	if err := n.raft.VerifyLeader(ctx); err != nil {
		return 0, err
	}
	return idx, nil
}

// readBarrier makes the next local FSM read linearizable.
func (n *Node) readBarrier(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	var idx uint64
	for {
		var err error
		if n.raft.IsLeader() {
			idx, err = n.ReadIndex(ctx)
		} else if leader := n.LeaderHTTP(); leader != "" {
			var s string
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+leader+"/internal/v1/readindex", nil)
			if err = n.doJSON(req, &s); err == nil {
				idx, err = strconv.ParseUint(s, 10, 64)
			}
		} else {
			err = raftstore.ErrNoLeader
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
	for n.fsm.AppliedIndex() < idx {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting to apply index %d: %w", osprey.ErrUnavailable, idx, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// doJSON sends a node-to-node request and decodes the envelope's data into
// out. Errors are mapped back to the project's error kinds; a request that
// could not be sent at all is ErrUnavailable (certainly not applied), one
// that failed after sending is ErrIndeterminate.
func (n *Node) doJSON(req *http.Request, out any) error {
	if tok := n.NodeAuthToken(); tok != "" {
		req.Header.Set(httpapi.HeaderNodeAuth, tok)
	}
	resp, err := n.rpc.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return fmt.Errorf("%w: %w", osprey.ErrUnavailable, err)
		}
		return fmt.Errorf("%w: %w", osprey.ErrIndeterminate, err)
	}
	defer resp.Body.Close()
	var env struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&env); err != nil {
		return fmt.Errorf("%w: decode reply from %s (status %d): %w", osprey.ErrIndeterminate, req.URL.Host, resp.StatusCode, err)
	}
	if resp.StatusCode/100 != 2 {
		return httpapi.ErrorFromStatus(resp.StatusCode, env.Message)
	}
	if out != nil && len(env.Data) > 0 {
		return json.Unmarshal(env.Data, out)
	}
	return nil
}
