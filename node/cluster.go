package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
	"github.com/osprey-storage/osprey/raftstore"
	"github.com/osprey-storage/osprey/snowflake"
)

// Interfaces consumed by httpapi.
var (
	_ httpapi.Cluster  = (*Node)(nil)
	_ httpapi.Internal = (*Node)(nil)
)

// errFatal carries a startup failure that retrying cannot fix (a refused
// join token); cmd exits on it.
var errFatal = errors.New("node: fatal")

func tokenHash(tok string) string {
	s := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(s[:])
}

// formOrJoin brings a node without raft state into a cluster, and has a
// node with state re-announce itself (the same command line works on every
// restart).
func (n *Node) formOrJoin() {
	switch {
	case n.raft.HasState():
		if len(n.cfg.Join) > 0 {
			n.joinLoop()
		}
	case n.cfg.BootstrapExpect > 0:
		n.bootstrapExpect()
	case len(n.cfg.Join) > 0 && !n.cfg.Bootstrap:
		n.joinLoop()
	default:
		// --bootstrap, or no flags at all. Never bootstrap a second cluster
		// beside a live one: if a listed peer already has a cluster, join it.
		if len(n.cfg.Join) > 0 {
			for _, info := range n.discover() {
				if info.ClusterID != "" {
					n.log.Info("peer already belongs to a cluster, joining instead of bootstrapping", "peer", info.ID)
					n.joinLoop()
					return
				}
			}
		}
		if err := n.raft.Bootstrap([]raftstore.Server{{ID: n.id, Address: n.raftAddr}}); err != nil {
			n.log.Error("bootstrap failed", "err", err)
			return
		}
		n.log.Info("bootstrapped single-node cluster", "join_token_file", n.JoinTokenPath())
	}
}

// discover asks every peer in Join for its bootstrap info.
func (n *Node) discover() []httpapi.BootstrapInfo {
	var (
		mu  sync.Mutex
		out []httpapi.BootstrapInfo
		wg  sync.WaitGroup
	)
	for _, peer := range n.cfg.Join {
		if peer == n.httpAddr {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(n.ctx, 2*time.Second)
			defer cancel()
			info, err := n.peers.BootstrapInfo(ctx, peer, n.joinToken)
			if err != nil {
				n.log.Debug("bootstrap discovery", "peer", peer, "err", err)
				return
			}
			mu.Lock()
			out = append(out, info)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func (n *Node) bootstrapExpect() {
	for {
		infos := n.discover()
		for _, info := range infos {
			if info.ClusterID != "" || info.Leader != "" {
				n.log.Info("found an existing cluster, joining it", "peer", info.ID)
				n.joinLoop()
				return
			}
		}
		servers := []raftstore.Server{{ID: n.id, Address: n.raftAddr}}
		for _, info := range infos {
			if !info.HasState {
				servers = append(servers, raftstore.Server{ID: info.ID, Address: info.RaftAddr})
			}
		}
		if len(servers) >= n.cfg.BootstrapExpect {
			sort.Slice(servers, func(i, j int) bool { return servers[i].ID < servers[j].ID })
			// Every expected node computes the same server list and
			// bootstraps with it; raft treats identical bootstraps as one.
			if err := n.raft.Bootstrap(servers); err != nil {
				n.log.Error("bootstrap failed", "err", err)
				return
			}
			n.log.Info("bootstrapped cluster", "servers", len(servers))
			return
		}
		n.log.Info("waiting for peers", "have", len(servers), "expect", n.cfg.BootstrapExpect)
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(n.cfg.JoinRetry):
		}
	}
}

// joinLoop asks the listed peers to add this node until one accepts. A
// refused token stops it and reports a fatal error.
func (n *Node) joinLoop() {
	jr := httpapi.JoinRequest{ID: n.id, RaftAddr: n.raftAddr, HTTPAddr: n.httpAddr, Token: n.joinToken}
	for attempt := 0; ; attempt++ {
		for _, peer := range n.cfg.Join {
			if peer == n.httpAddr {
				continue
			}
			ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
			res, err := n.peers.Join(ctx, peer, jr)
			cancel()
			if err == nil {
				n.log.Info("joined cluster", "via", peer, "cluster", res.ClusterID, "leader", res.Leader)
				return
			}
			if errors.Is(err, osprey.ErrForbidden) || errors.Is(err, osprey.ErrUnauthorized) {
				n.log.Error("join refused", "peer", peer, "err", err)
				n.fail(fmt.Errorf("%w: join refused by %s: %w", errFatal, peer, err))
				return
			}
			if attempt%10 == 0 {
				n.log.Info("join attempt failed, retrying", "peer", peer, "err", err)
			}
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(n.cfg.JoinRetry):
		}
	}
}

// reconcileLoop keeps this node's place in the cluster in order: the
// leader initialises the cluster and applies a barrier each term; every
// node registers its own record and picks up its snowflake worker id.
func (n *Node) reconcileLoop() {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
		if err := n.reconcile(ctx); err != nil && n.ctx.Err() == nil {
			n.log.Debug("reconcile", "err", err)
		}
		cancel()
	}
}

func (n *Node) reconcile(ctx context.Context) error {
	if n.raft.IsLeader() {
		if err := n.prop.EnsureBarrier(ctx); err != nil {
			return err
		}
		if n.fsm.ClusterID() == "" {
			secret := make([]byte, 32)
			_, _ = rand.Read(secret)
			id := make([]byte, 8)
			_, _ = rand.Read(id)
			cmd := fsm.InitCluster{ClusterID: hex.EncodeToString(id), Secret: secret,
				JoinTokenHash: tokenHash(n.joinToken), Time: time.Now().UnixMilli()}
			if err := n.prop.Apply(ctx, fsm.CmdInitCluster, cmd, nil); err != nil {
				return err
			}
			n.log.Info("cluster initialised", "cluster", n.fsm.ClusterID())
		}
	}
	if n.fsm.ClusterID() == "" {
		return nil
	}
	if n.raft.IsLeader() {
		if err := n.reconcileSettings(ctx); err != nil {
			return err
		}
	}
	rec, ok := n.fsm.Node(osprey.NodeID(n.id))
	if !ok || rec.Removed || rec.RaftAddr != n.raftAddr || rec.HTTPAddr != n.httpAddr {
		servers, err := n.raft.Servers()
		if err != nil {
			return err
		}
		member := false
		for _, s := range servers {
			member = member || (s.ID == n.id && s.Address == n.raftAddr)
		}
		if !member {
			return nil // not (or no longer) in the configuration
		}
		up := fsm.NodeUpsert{ID: osprey.NodeID(n.id), RaftAddr: n.raftAddr, HTTPAddr: n.httpAddr, Time: time.Now().UnixMilli()}
		if err := n.prop.Apply(ctx, fsm.CmdNodeUpsert, up, nil); err != nil {
			return err
		}
		if rec, ok = n.fsm.Node(osprey.NodeID(n.id)); !ok {
			return nil
		}
	}
	if rec.Removed {
		return nil
	}
	if g := n.gen.Load(); g == nil || g.worker != rec.WorkerID {
		gen, err := snowflake.New(rec.WorkerID, filepath.Join(n.cfg.DataDir, "uid-hwm-"+strconv.Itoa(int(rec.WorkerID))), nil)
		if err != nil {
			return err
		}
		n.gen.Store(&workerGen{worker: rec.WorkerID, g: gen})
		n.log.Info("uid generator ready", "worker", rec.WorkerID)
	}
	return nil
}

// NextUID mints a uid. ErrUnavailable until the node has its worker id.
func (n *Node) NextUID() (osprey.UID, error) {
	g := n.gen.Load()
	if g == nil {
		return 0, fmt.Errorf("%w: node has no worker id yet (not joined)", osprey.ErrUnavailable)
	}
	id, err := g.g.Next()
	if err != nil {
		return 0, err
	}
	return osprey.UID(id), nil
}

// Join adds a node to the cluster. Leader only.
func (n *Node) Join(ctx context.Context, req httpapi.JoinRequest) (httpapi.JoinResult, error) {
	if !n.raft.IsLeader() {
		return httpapi.JoinResult{}, raftstore.ErrNotLeader
	}
	want := n.fsm.JoinTokenHash()
	if want == "" {
		return httpapi.JoinResult{}, fmt.Errorf("%w: cluster is not initialised yet", osprey.ErrUnavailable)
	}
	if subtle.ConstantTimeCompare([]byte(tokenHash(req.Token)), []byte(want)) != 1 {
		return httpapi.JoinResult{}, fmt.Errorf("%w: wrong join token for this cluster", osprey.ErrForbidden)
	}
	if err := n.raft.AddVoter(ctx, req.ID, req.RaftAddr); err != nil {
		return httpapi.JoinResult{}, err
	}
	up := fsm.NodeUpsert{ID: osprey.NodeID(req.ID), RaftAddr: req.RaftAddr, HTTPAddr: req.HTTPAddr, Time: time.Now().UnixMilli()}
	if err := n.prop.Apply(ctx, fsm.CmdNodeUpsert, up, nil); err != nil {
		return httpapi.JoinResult{}, err
	}
	n.log.Info("node joined", "id", req.ID, "raft", req.RaftAddr, "http", req.HTTPAddr)
	return httpapi.JoinResult{ClusterID: n.fsm.ClusterID(), Leader: n.id}, nil
}

// Remove removes a member: its record is marked removed (its worker id is
// never reused), then it leaves the raft configuration. Leader only.
func (n *Node) Remove(ctx context.Context, id string) error {
	if !n.raft.IsLeader() {
		return raftstore.ErrNotLeader
	}
	if _, ok := n.fsm.Node(osprey.NodeID(id)); !ok {
		inConfig := false
		if servers, err := n.raft.Servers(); err == nil {
			for _, s := range servers {
				inConfig = inConfig || s.ID == id
			}
		}
		if !inConfig {
			return fmt.Errorf("%w: node %q", osprey.ErrNotFound, id)
		}
	} else if err := n.prop.Apply(ctx, fsm.CmdNodeRemove, fsm.NodeRemove{ID: osprey.NodeID(id), Time: time.Now().UnixMilli()}, nil); err != nil {
		return err
	}
	if err := n.raft.RemoveServer(ctx, id); err != nil {
		return err
	}
	n.log.Info("node removed", "id", id)
	return nil
}

// TransferLeadership hands leadership to id, or to any follower if "".
func (n *Node) TransferLeadership(ctx context.Context, id string) error {
	if !n.raft.IsLeader() {
		return raftstore.ErrNotLeader
	}
	return n.raft.TransferLeadership(ctx, id)
}

// IsLeader reports whether this node leads.
func (n *Node) IsLeader() bool { return n.raft.IsLeader() }

// LeaderHTTP returns the leader's HTTP address from the FSM's records.
func (n *Node) LeaderHTTP() string { return n.prop.LeaderHTTP() }

// ApplyEncoded applies an encoded command on this node, which must lead.
func (n *Node) ApplyEncoded(ctx context.Context, cmd []byte) ([]byte, error) {
	return n.prop.ApplyEncoded(ctx, cmd)
}

// ReadIndex confirms leadership and returns a read index.
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) { return n.prop.ReadIndex(ctx) }

// Apply proposes an FSM command through the leader and decodes its result
// into out. It is how tools and tests drive the state machine directly.
func (n *Node) Apply(ctx context.Context, t fsm.CommandType, payload, out any) error {
	return n.prop.Apply(ctx, t, payload, out)
}

// NodeAuthToken is the node-to-node credential, derived from the secret.
func (n *Node) NodeAuthToken() string { return n.peers.Token() }

// CheckJoinToken compares token with this node's configured token.
func (n *Node) CheckJoinToken(token string) bool {
	return n.joinToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(n.joinToken)) == 1
}

// BootstrapInfo describes this node to --bootstrap-expect peers.
func (n *Node) BootstrapInfo() httpapi.BootstrapInfo {
	_, leader := n.raft.Leader()
	return httpapi.BootstrapInfo{ID: n.id, RaftAddr: n.raftAddr, HTTPAddr: n.httpAddr,
		HasState: n.raft.HasState(), ClusterID: n.fsm.ClusterID(), Leader: leader}
}

// Err returns a channel that receives a fatal error (for example a refused
// join token) that needs the operator's attention.
func (n *Node) Err() <-chan error { return n.fatalC() }

// reconcileSettings keeps the cluster settings in step with the leader's
// configuration. The backend fingerprint is recorded once, by the first
// leader; a leader configured differently says so instead of overwriting.
func (n *Node) reconcileSettings(ctx context.Context) error {
	cur := n.fsm.Settings()
	want := cur
	want.WebhookEnabled = n.cfg.WebhookURL != ""
	want.MaxAttempts = n.cfg.TaskMaxAttempts
	want.ExpireAfterMillis = n.cfg.ExpireUploads.Milliseconds()
	want.GCGraceMillis = n.cfg.GCGrace.Milliseconds()
	fp := backendFingerprint(n.cfg.Backend)
	if cur.BackendFingerprint == "" {
		want.BackendFingerprint = fp
	} else if cur.BackendFingerprint != fp && time.Since(n.lastMismatchLog) > time.Minute {
		n.lastMismatchLog = time.Now()
		n.log.Error("backend settings differ from the cluster's: fix this node's configuration",
			"node_backend", fp, "cluster_backend", cur.BackendFingerprint)
	}
	if want != cur {
		if err := n.prop.Apply(ctx, fsm.CmdSetSettings, fsm.SetSettings{Settings: want}, nil); err != nil {
			return err
		}
	}
	if n.cfg.ExpireUploads > 0 && time.Since(n.lastExpire) > n.cfg.ExpireUploads/100+time.Second {
		n.lastExpire = time.Now()
		before := time.Now().Add(-n.cfg.ExpireUploads).UnixMilli()
		if n.fsm.HasUploadsBefore(before) {
			var res fsm.ExpireResult
			if err := n.prop.Apply(ctx, fsm.CmdExpire, fsm.Expire{Before: before, Now: time.Now().UnixMilli()}, &res); err != nil {
				return err
			}
			n.log.Info("expired abandoned uploads", "count", len(res.UIDs))
		}
	}
	return nil
}
