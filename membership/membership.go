package membership

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
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

// errFatal carries a startup failure that retrying cannot fix (a refused
// join token); cmd exits on it.
var errFatal = errors.New("node: fatal")

// TokenHash is what the cluster records of its join token (and what keys
// the raft transport): the hex sha256 of the token.
func TokenHash(tok string) string { return tokenHash(tok) }

func tokenHash(tok string) string {
	s := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(s[:])
}

// formOrJoin brings a node without raft state into a cluster, and has a
// node with state re-announce itself (the same command line works on every
// restart).
func (m *Membership) formOrJoin(ctx context.Context) {
	switch {
	case m.cfg.Raft.HasState():
		if len(m.cfg.Join) > 0 {
			m.joinLoop(ctx)
		}
	case m.cfg.BootstrapExpect > 0:
		m.bootstrapExpect(ctx)
	case len(m.cfg.Join) > 0 && !m.cfg.Bootstrap:
		m.joinLoop(ctx)
	default:
		// --bootstrap, or no flags at all. Never bootstrap a second cluster
		// beside a live one: if a listed peer already has a cluster, join it.
		if len(m.cfg.Join) > 0 {
			for _, info := range m.discover(ctx) {
				if info.ClusterID != "" {
					m.log.Info("peer already belongs to a cluster, joining instead of bootstrapping", "peer", info.ID)
					m.joinLoop(ctx)
					return
				}
			}
		}
		if err := m.cfg.Raft.Bootstrap([]raftstore.Server{{ID: m.cfg.ID, Address: m.cfg.RaftAddr}}); err != nil {
			m.log.Error("bootstrap failed", "err", err)
			return
		}
		m.log.Info("bootstrapped single-node cluster", "join_token_file", m.cfg.JoinTokenPath)
	}
}

// discover asks every peer in Join for its bootstrap info.
func (m *Membership) discover(ctx context.Context) []httpapi.BootstrapInfo {
	var (
		mu  sync.Mutex
		out []httpapi.BootstrapInfo
		wg  sync.WaitGroup
	)
	for _, peer := range m.cfg.Join {
		if peer == m.cfg.HTTPAddr {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			info, err := m.cfg.Peers.BootstrapInfo(ctx, peer, m.cfg.JoinToken)
			if err != nil {
				m.log.Debug("bootstrap discovery", "peer", peer, "err", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			// This node under another name (a host name, 0.0.0.0 in a
			// container) answers too: count it once, as itself; and one
			// peer listed twice counts once.
			if info.ID == m.cfg.ID || slices.ContainsFunc(out, func(o httpapi.BootstrapInfo) bool { return o.ID == info.ID }) {
				return
			}
			out = append(out, info)
		}()
	}
	wg.Wait()
	return out
}

func (m *Membership) bootstrapExpect(ctx context.Context) {
	for {
		infos := m.discover(ctx)
		for _, info := range infos {
			if info.ClusterID != "" || info.Leader != "" {
				m.log.Info("found an existing cluster, joining it", "peer", info.ID)
				m.joinLoop(ctx)
				return
			}
		}
		servers := []raftstore.Server{{ID: m.cfg.ID, Address: m.cfg.RaftAddr}}
		for _, info := range infos {
			if !info.HasState {
				servers = append(servers, raftstore.Server{ID: info.ID, Address: info.RaftAddr})
			}
		}
		if len(servers) >= m.cfg.BootstrapExpect {
			sort.Slice(servers, func(i, j int) bool { return servers[i].ID < servers[j].ID })
			// Every expected node computes the same server list and
			// bootstraps with it; raft treats identical bootstraps as one.
			if err := m.cfg.Raft.Bootstrap(servers); err != nil {
				m.log.Error("bootstrap failed", "err", err)
				return
			}
			m.log.Info("bootstrapped cluster", "servers", len(servers))
			return
		}
		m.log.Info("waiting for peers", "have", len(servers), "expect", m.cfg.BootstrapExpect)
		select {
		case <-ctx.Done():
			return
		case <-time.After(m.cfg.JoinRetry):
		}
	}
}

// joinLoop asks the listed peers to add this node until one accepts. A
// refused token stops it and reports a fatal error.
func (m *Membership) joinLoop(ctx context.Context) {
	jr := httpapi.JoinRequest{ID: m.cfg.ID, RaftAddr: m.cfg.RaftAddr, HTTPAddr: m.cfg.HTTPAddr, Token: m.cfg.JoinToken, Level: fsm.FeatureLevel}
	for attempt := 0; ; attempt++ {
		for _, peer := range m.cfg.Join {
			if peer == m.cfg.HTTPAddr {
				continue
			}
			jctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			res, err := m.cfg.Peers.Join(jctx, peer, jr)
			cancel()
			if err == nil {
				m.log.Info("joined cluster", "via", peer, "cluster", res.ClusterID, "leader", res.Leader)
				return
			}
			if errors.Is(err, osprey.ErrForbidden) || errors.Is(err, osprey.ErrUnauthorized) {
				m.log.Error("join refused", "peer", peer, "err", err)
				m.fail(fmt.Errorf("%w: join refused by %s: %w", errFatal, peer, err))
				return
			}
			if attempt%10 == 0 {
				m.log.Info("join attempt failed, retrying", "peer", peer, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(m.cfg.JoinRetry):
		}
	}
}

// reconcileLoop keeps this node's place in the cluster in order: the
// leader initialises the cluster and applies a barrier each term; every
// node registers its own record and picks up its snowflake worker id.
func (m *Membership) reconcileLoop(ctx context.Context) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := m.reconcile(rctx); err != nil && ctx.Err() == nil {
			m.log.Debug("reconcile", "err", err)
		}
		cancel()
	}
}

func (m *Membership) reconcile(ctx context.Context) error {
	if m.cfg.Raft.IsLeader() {
		if err := m.cfg.Proposer.EnsureBarrier(ctx); err != nil {
			return err
		}
		if m.cfg.State.ClusterID() == "" {
			secret := make([]byte, 32)
			_, _ = rand.Read(secret)
			id := make([]byte, 8)
			_, _ = rand.Read(id)
			cmd := fsm.InitCluster{ClusterID: hex.EncodeToString(id), Secret: secret,
				JoinTokenHash: tokenHash(m.cfg.JoinToken), Time: time.Now().UnixMilli()}
			if err := m.cfg.Proposer.Apply(ctx, fsm.CmdInitCluster, cmd, nil); err != nil {
				return err
			}
			m.log.Info("cluster initialised", "cluster", m.cfg.State.ClusterID())
		}
	}
	if m.cfg.State.ClusterID() == "" {
		return nil
	}
	if m.cfg.Raft.IsLeader() {
		if err := m.reconcileSettings(ctx); err != nil {
			return err
		}
	}
	rec, ok := m.cfg.State.Node(osprey.NodeID(m.cfg.ID))
	if !ok || rec.Removed || rec.RaftAddr != m.cfg.RaftAddr || rec.HTTPAddr != m.cfg.HTTPAddr || rec.Level != fsm.FeatureLevel {
		servers, err := m.cfg.Raft.Servers()
		if err != nil {
			return err
		}
		member, moved := false, false
		for _, s := range servers {
			member = member || (s.ID == m.cfg.ID && s.Address == m.cfg.RaftAddr)
			moved = moved || (s.ID == m.cfg.ID && s.Address != m.cfg.RaftAddr)
		}
		if !member && moved && m.cfg.Raft.IsLeader() {
			// This node came back at a new address (a container restarted
			// with a new IP) and leads: record the address it has now.
			if err := m.cfg.Raft.AddVoter(ctx, m.cfg.ID, m.cfg.RaftAddr); err != nil {
				return err
			}
			member = true
		}
		// Not (or no longer) in the configuration under this address: a
		// recorded member keeps its worker id, nothing else changes.
		if member {
			up := fsm.NodeUpsert{ID: osprey.NodeID(m.cfg.ID), RaftAddr: m.cfg.RaftAddr, HTTPAddr: m.cfg.HTTPAddr, Time: time.Now().UnixMilli(), Level: fsm.FeatureLevel}
			if err := m.cfg.Proposer.Apply(ctx, fsm.CmdNodeUpsert, up, nil); err != nil {
				return err
			}
			if m.cfg.Raft.IsLeader() {
				// Settings that wait for every member's level (InlineMax)
				// follow this member's record at once, not a round later.
				if err := m.reconcileSettings(ctx); err != nil {
					return err
				}
			}
			rec, ok = m.cfg.State.Node(osprey.NodeID(m.cfg.ID))
		}
		if !ok {
			return nil
		}
	}
	if rec.Removed {
		return nil
	}
	if g := m.gen.Load(); g == nil || g.worker != rec.WorkerID {
		gen, err := snowflake.New(rec.WorkerID, filepath.Join(m.cfg.DataDir, "uid-hwm-"+strconv.Itoa(int(rec.WorkerID))), nil)
		if err != nil {
			return err
		}
		m.gen.Store(&workerGen{worker: rec.WorkerID, g: gen})
		m.log.Info("uid generator ready", "worker", rec.WorkerID)
	}
	return nil
}

// Join adds a node to the cluster. Leader only.
func (m *Membership) Join(ctx context.Context, req httpapi.JoinRequest) (httpapi.JoinResult, error) {
	if !m.cfg.Raft.IsLeader() {
		return httpapi.JoinResult{}, raftstore.ErrNotLeader
	}
	want := m.cfg.State.JoinTokenHash()
	if want == "" {
		return httpapi.JoinResult{}, fmt.Errorf("%w: cluster is not initialised yet", osprey.ErrUnavailable)
	}
	if subtle.ConstantTimeCompare([]byte(tokenHash(req.Token)), []byte(want)) != 1 {
		return httpapi.JoinResult{}, fmt.Errorf("%w: wrong join token for this cluster", osprey.ErrForbidden)
	}
	if req.Level < fsm.FeatureLevelInline && m.cfg.State.Settings().InlineMax > 0 {
		// Its FSM would read the cluster's inline contents as staged ones
		// waiting to be tiered and rewrite them without the mark: its
		// replica would drift from the others'.
		return httpapi.JoinResult{}, fmt.Errorf("%w: this cluster keeps small files inline (feature level %d) and the joining build (level %d) predates that: run the same osprey release on the new node",
			osprey.ErrForbidden, fsm.FeatureLevelInline, req.Level)
	}
	if lvl := fsm.ClusterLevel(m.cfg.State.Nodes()); req.Level < lvl && lvl >= fsm.FeatureLevelWorkers {
		// The log it would replay records chunk owners' worker ids (level
		// 2) and tiered contents' chunk sums (level 3), which its FSM
		// ignores: it would skip repairs the others queue, or drop sums
		// the others keep.
		return httpapi.JoinResult{}, fmt.Errorf("%w: this cluster's members run feature level %d and the joining build (level %d) predates it: run the same osprey release on the new node",
			osprey.ErrForbidden, lvl, req.Level)
	}
	if err := m.cfg.Raft.AddVoter(ctx, req.ID, req.RaftAddr); err != nil {
		return httpapi.JoinResult{}, err
	}
	up := fsm.NodeUpsert{ID: osprey.NodeID(req.ID), RaftAddr: req.RaftAddr, HTTPAddr: req.HTTPAddr, Time: time.Now().UnixMilli(), Level: req.Level}
	if err := m.cfg.Proposer.Apply(ctx, fsm.CmdNodeUpsert, up, nil); err != nil {
		return httpapi.JoinResult{}, err
	}
	m.log.Info("node joined", "id", req.ID, "raft", req.RaftAddr, "http", req.HTTPAddr)
	return httpapi.JoinResult{ClusterID: m.cfg.State.ClusterID(), Leader: m.cfg.ID}, nil
}

// Remove removes a member: its record is marked removed (its worker id is
// never reused), then it leaves the raft configuration. Leader only.
func (m *Membership) Remove(ctx context.Context, id string) error {
	if !m.cfg.Raft.IsLeader() {
		return raftstore.ErrNotLeader
	}
	servers, err := m.cfg.Raft.Servers()
	if err != nil {
		return err
	}
	inConfig, voters := false, 0
	for _, s := range servers {
		inConfig = inConfig || s.ID == id
		if s.Suffrage == "Voter" {
			voters++
		}
	}
	if inConfig && voters <= 1 {
		return fmt.Errorf("%w: node %q is the cluster's only voter; removing it would leave no cluster", osprey.ErrConflict, id)
	}
	if _, ok := m.cfg.State.Node(osprey.NodeID(id)); !ok {
		if !inConfig {
			return fmt.Errorf("%w: node %q is not a member", osprey.ErrNotFound, id)
		}
	} else if err := m.cfg.Proposer.Apply(ctx, fsm.CmdNodeRemove, fsm.NodeRemove{ID: osprey.NodeID(id), Time: time.Now().UnixMilli()}, nil); err != nil {
		return err
	}
	if err := m.cfg.Raft.RemoveServer(ctx, id); err != nil {
		return err
	}
	m.log.Info("node removed", "id", id)
	return nil
}

// TransferLeadership hands leadership to id, or to any follower if "".
func (m *Membership) TransferLeadership(ctx context.Context, id string) error {
	if !m.cfg.Raft.IsLeader() {
		return raftstore.ErrNotLeader
	}
	if id == m.cfg.ID {
		return fmt.Errorf("%w: node %q already leads", osprey.ErrInvalid, id)
	}
	servers, err := m.cfg.Raft.Servers()
	if err != nil {
		return err
	}
	target, others := "", 0 // the target's suffrage, "" if it is not a member
	for _, s := range servers {
		if s.ID == id {
			target = s.Suffrage
		}
		if s.ID != m.cfg.ID && s.Suffrage == "Voter" {
			others++
		}
	}
	switch {
	case id != "" && target == "":
		return fmt.Errorf("%w: node %q is not a member", osprey.ErrNotFound, id)
	case others == 0:
		return fmt.Errorf("%w: no other voter to hand leadership to", osprey.ErrConflict)
	case id != "" && target != "Voter":
		return fmt.Errorf("%w: node %q is not a voter and cannot lead", osprey.ErrInvalid, id)
	}
	return m.cfg.Raft.TransferLeadership(ctx, id)
}

// IsLeader reports whether this node leads.
func (m *Membership) IsLeader() bool { return m.cfg.Raft.IsLeader() }

// LeaderHTTP returns the leader's HTTP address from the FSM's records.
func (m *Membership) LeaderHTTP() string { return m.cfg.Proposer.LeaderHTTP() }

// NodeAuthToken is the node-to-node credential, derived from the secret.
func (m *Membership) NodeAuthToken() string { return m.cfg.Peers.Token() }

// CheckJoinToken compares token with this node's configured token.
func (m *Membership) CheckJoinToken(token string) bool {
	return m.cfg.JoinToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(m.cfg.JoinToken)) == 1
}

// BootstrapInfo describes this node to --bootstrap-expect peers.
func (m *Membership) BootstrapInfo() httpapi.BootstrapInfo {
	_, leader := m.cfg.Raft.Leader()
	return httpapi.BootstrapInfo{ID: m.cfg.ID, RaftAddr: m.cfg.RaftAddr, HTTPAddr: m.cfg.HTTPAddr,
		HasState: m.cfg.Raft.HasState(), ClusterID: m.cfg.State.ClusterID(), Leader: leader}
}

// Err returns a channel that receives a fatal error (for example a refused
// join token) that needs the operator's attention.
func (m *Membership) Err() <-chan error { return m.fatal }

// reconcileSettings keeps the cluster settings in step with the leader's
// configuration. The backend fingerprint is recorded once, by the first
// leader; a leader configured differently says so instead of overwriting.
func (m *Membership) reconcileSettings(ctx context.Context) error {
	cur := m.cfg.State.Settings()
	want := cur
	want.WebhookEnabled = m.cfg.WebhookEnabled
	want.MaxAttempts = m.cfg.TaskMaxAttempts
	want.ExpireAfterMillis = m.cfg.ExpireUploads.Milliseconds()
	want.GCGraceMillis = m.cfg.GCGrace.Milliseconds()
	want.InlineMax = 0
	if fsm.ClusterLevel(m.cfg.State.Nodes()) >= fsm.FeatureLevelInline {
		want.InlineMax = m.cfg.InlineMax
	}
	fp := m.cfg.BackendFingerprint
	if cur.BackendFingerprint == "" {
		want.BackendFingerprint = fp
	} else if cur.BackendFingerprint != fp && time.Since(m.lastMismatchLog) > time.Minute {
		m.lastMismatchLog = time.Now()
		m.log.Error("backend settings differ from the cluster's: fix this node's configuration",
			"node_backend", fp, "cluster_backend", cur.BackendFingerprint)
	}
	if want != cur {
		if err := m.cfg.Proposer.Apply(ctx, fsm.CmdSetSettings, fsm.SetSettings{Settings: want}, nil); err != nil {
			return err
		}
	}
	if m.cfg.ExpireUploads > 0 && time.Since(m.lastExpire) > m.cfg.ExpireUploads/100+time.Second {
		m.lastExpire = time.Now()
		before := time.Now().Add(-m.cfg.ExpireUploads).UnixMilli()
		if m.cfg.State.HasUploadsBefore(before) {
			var res fsm.ExpireResult
			if err := m.cfg.Proposer.Apply(ctx, fsm.CmdExpire, fsm.Expire{Before: before, Now: time.Now().UnixMilli()}, &res); err != nil {
				return err
			}
			m.log.Info("expired abandoned uploads", "count", len(res.UIDs))
		}
	}
	return nil
}

// livenessLoop checks each member's /livez on every node, so every node's
// status can say which member is unreachable and since when. On the
// leader it also marks a member down once it has been unreachable for
// RepairGrace (which queues repairs of every copy it holds), and up again
// when it answers.
func (m *Membership) livenessLoop(ctx context.Context) {
	every := 2 * time.Second
	if g := m.cfg.RepairGrace; g > 0 {
		every = min(g/4, every)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	unreachableSince := map[osprey.NodeID]time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, every)
		nodes, err := m.Nodes(pctx)
		cancel()
		if err != nil {
			continue
		}
		leader := m.cfg.Raft.IsLeader()
		current := map[osprey.NodeID]bool{}
		for _, ni := range nodes {
			id := osprey.NodeID(ni.ID)
			rec, ok := m.cfg.State.Node(id)
			if !ok || rec.Removed || ni.ID == m.cfg.ID {
				continue
			}
			current[id] = true
			if ni.Reachable {
				delete(unreachableSince, id)
				if leader && rec.Down {
					m.applyLiveness(ctx, fsm.CmdNodeUp, fsm.NodeUp{ID: id}, ni.ID, "node reachable again")
				}
				continue
			}
			since, seen := unreachableSince[id]
			if !seen {
				unreachableSince[id] = time.Now()
				continue
			}
			if leader && m.cfg.RepairGrace > 0 && !rec.Down && time.Since(since) >= m.cfg.RepairGrace {
				m.applyLiveness(ctx, fsm.CmdNodeDown, fsm.NodeDown{ID: id, Time: time.Now().UnixMilli()}, ni.ID,
					"node unreachable past the repair grace period; rebuilding its copies elsewhere")
			}
		}
		for id := range unreachableSince {
			if !current[id] {
				delete(unreachableSince, id) // removed meanwhile
			}
		}
		m.unreachMu.Lock()
		m.unreachable = maps.Clone(unreachableSince)
		m.unreachMu.Unlock()
	}
}

// Degraded lists the members that cost protection now: unreachable from
// this node (since when it first saw it; a member is only counted after a
// second failed check), or marked down in the state.
func (m *Membership) Degraded() []httpapi.DegradedMember {
	m.unreachMu.Lock()
	unreach := maps.Clone(m.unreachable)
	m.unreachMu.Unlock()
	var out []httpapi.DegradedMember
	for _, rec := range m.cfg.State.Nodes() {
		if rec.Removed {
			continue
		}
		since, seen := unreach[rec.ID]
		if !seen && !rec.Down {
			continue
		}
		d := httpapi.DegradedMember{ID: string(rec.ID), Down: rec.Down}
		if seen {
			s := since.UTC()
			d.UnreachableSince = &s
			if !rec.Down && m.cfg.RepairGrace > 0 {
				at := s.Add(m.cfg.RepairGrace)
				d.RepairAt = &at
			}
		}
		out = append(out, d)
	}
	return out
}

func (m *Membership) applyLiveness(ctx context.Context, t fsm.CommandType, payload any, id, msg string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := m.cfg.Proposer.Apply(ctx, t, payload, nil); err != nil {
		m.log.Warn("liveness update failed", "node", id, "err", err)
		return
	}
	m.log.Warn(msg, "node", id)
}

// Status reports this node's view of the cluster.
func (m *Membership) Status(ctx context.Context) (httpapi.ClusterStatus, error) {
	hash, idx := m.cfg.State.Hash()
	leaderAddr, leaderID := m.cfg.Raft.Leader()
	st := httpapi.ClusterStatus{
		ID: m.cfg.ID, ClusterID: m.cfg.State.ClusterID(), State: m.cfg.Raft.State(),
		Leader: httpapi.LeaderInfo{ID: leaderID, RaftAddr: leaderAddr, HTTPAddr: m.cfg.Proposer.LeaderHTTP()},
		Term:   m.cfg.Raft.Term(), CommitIndex: m.cfg.Raft.CommitIndex(), AppliedIndex: m.cfg.Raft.AppliedIndex(),
		FSMHash: hash, FSMIndex: idx, Version: m.cfg.Version,
	}
	members, err := m.members()
	if err != nil {
		return st, err
	}
	st.Members = members
	st.Storage = m.storageInfo()
	return st, nil
}

// members joins the raft configuration with the FSM's records.
func (m *Membership) members() ([]httpapi.MemberInfo, error) {
	servers, err := m.cfg.Raft.Servers()
	if err != nil {
		return nil, err
	}
	out := make([]httpapi.MemberInfo, 0, len(servers))
	for _, s := range servers {
		mi := httpapi.MemberInfo{ID: s.ID, RaftAddr: s.Address, Suffrage: s.Suffrage}
		if rec, ok := m.cfg.State.Node(osprey.NodeID(s.ID)); ok && !rec.Removed {
			w := int64(rec.WorkerID)
			mi.HTTPAddr, mi.WorkerID = rec.HTTPAddr, &w
		}
		out = append(out, mi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Nodes lists members and checks each one's /livez.
func (m *Membership) Nodes(ctx context.Context) ([]httpapi.NodeInfo, error) {
	members, err := m.members()
	if err != nil {
		return nil, err
	}
	_, leader := m.cfg.Raft.Leader()
	out := make([]httpapi.NodeInfo, len(members))
	var wg sync.WaitGroup
	for i, mi := range members {
		out[i] = httpapi.NodeInfo{MemberInfo: mi, Leader: mi.ID == leader}
		if mi.HTTPAddr == "" {
			out[i].Error = "no http address recorded yet"
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			ok, rtt, err := m.cfg.Peers.Probe(cctx, mi.HTTPAddr)
			if err != nil {
				out[i].Error = err.Error()
				return
			}
			out[i].Reachable = ok
			out[i].RTTMillis = float64(rtt.Microseconds()) / 1000
		}()
	}
	wg.Wait()
	return out, nil
}

// NotReady lists why this node cannot serve business requests yet.
func (m *Membership) NotReady(ctx context.Context) []string {
	var r []string
	if _, id := m.cfg.Raft.Leader(); id == "" {
		r = append(r, "no raft leader")
	}
	if m.cfg.State.ClusterID() == "" {
		r = append(r, "cluster not initialised")
	}
	if m.gen.Load() == nil {
		r = append(r, "node not registered (no worker id yet)")
	}
	if m.shuttingDown() {
		r = append(r, "shutting down")
	}
	if m.BackendMismatch() {
		r = append(r, "backend settings differ from the cluster's: this node has "+m.cfg.BackendFingerprint+
			", the cluster uses "+m.cfg.State.Settings().BackendFingerprint)
	}
	return r
}

// BackendMismatch reports whether this node's backend differs from the one
// the cluster recorded.
func (m *Membership) BackendMismatch() bool {
	fp := m.cfg.State.Settings().BackendFingerprint
	return fp != "" && fp != m.cfg.BackendFingerprint
}
