package raftstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"

	"github.com/osprey-storage/osprey"
)

// Sentinel errors. Callers map them to HTTP statuses: ErrNotLeader is
// forwarded, ErrNoLeader/ErrShutdown/ErrNotApplied mean "certainly not
// applied" (503), ErrIndeterminate means "outcome unknown" (504).
var (
	// ErrNotLeader is returned when a write or leader-only call reaches a
	// follower.
	ErrNotLeader = fmt.Errorf("raftstore: not leader: %w", osprey.ErrNotLeader)
	// ErrNoLeader is returned when the cluster has no known leader.
	ErrNoLeader = fmt.Errorf("raftstore: no leader: %w", osprey.ErrUnavailable)
	// ErrShutdown is returned after Close.
	ErrShutdown = fmt.Errorf("raftstore: shut down: %w", osprey.ErrUnavailable)
	// ErrNotApplied is returned when a command could not be enqueued before
	// its deadline: it was certainly not applied.
	ErrNotApplied = fmt.Errorf("raftstore: command not applied: %w", osprey.ErrUnavailable)
	// ErrIndeterminate is returned when a command was proposed but its
	// outcome is unknown (leadership lost, or the deadline passed after
	// the command was enqueued).
	ErrIndeterminate = fmt.Errorf("raftstore: outcome unknown: %w", osprey.ErrIndeterminate)
	// ErrTooLarge is returned for a command larger than MaxCommandSize.
	ErrTooLarge = fmt.Errorf("raftstore: command too large: %w", osprey.ErrTooLarge)
)

// Config configures a Store.
type Config struct {
	// Dir holds the snapshots (snapshots/). A raft.db found there (the
	// log and stable store of earlier builds) is moved into LogDB on the
	// first start.
	Dir string
	// LogDB keeps the log and the stable store (PebbleLog), under key
	// prefixes its owner leaves free. The node passes the chunk store's
	// instance, so a log append and the chunk writes committed at the
	// same moment share one WAL sync. It must stay open until Close
	// returns.
	LogDB *pebble.DB
	// ID is this server's raft id.
	ID string
	// BindAddr is the TCP address the transport listens on.
	BindAddr string
	// AdvertiseAddr is the address other servers dial; defaults to the
	// bound address.
	AdvertiseAddr string
	// FSM is the state machine to replicate.
	FSM raft.FSM
	// Logger receives raft's logs; nil means slog.Default().
	Logger *slog.Logger
	// ApplyTimeout bounds Apply when the context has no earlier deadline.
	ApplyTimeout time.Duration
	// MaxCommandSize bounds an encoded command; raft's own advice is to keep
	// entries well under a megabyte.
	MaxCommandSize int
	// HeartbeatTimeout, ElectionTimeout and LeaderLeaseTimeout tune failover.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	// SnapshotThreshold is the number of entries between snapshots.
	SnapshotThreshold uint64
	// SnapshotRetain is the number of snapshots kept on disk.
	SnapshotRetain int
	// TransportKey returns the key material every member holds (the
	// cluster's join-token hash); each transport connection must prove
	// it (auth.go). It is asked on every handshake, so it may change once
	// the node learns the cluster's own value. nil leaves the transport
	// unauthenticated: tests of this package only.
	TransportKey func() []byte
	// ServerTLS, when set, runs every inbound transport connection over
	// TLS with this config (which should require and verify a client
	// certificate against the cluster CA); ClientTLS gives the config for
	// dialing the peer named serverName. Both or neither. The key
	// handshake above still runs inside the TLS session.
	ServerTLS *tls.Config
	ClientTLS func(serverName string) *tls.Config
}

// DefaultConfig returns timeouts tuned for a LAN: a dead leader is replaced
// in about one second. With pre-vote a candidate wins only once a majority
// has timed out on its own (a follower that still hears the leader refuses
// it), so the election waits for the third of four followers in a
// five-node cluster: at a 1 s heartbeat timeout (randomised to 2 s, and
// checked against the last contact only when the timer fires) that took
// 1.1–2.6 s in the chaos runs, at 500 ms 0.5–1.3 s.
func DefaultConfig() Config {
	return Config{
		ApplyTimeout:       10 * time.Second,
		MaxCommandSize:     512 << 10,
		HeartbeatTimeout:   500 * time.Millisecond,
		ElectionTimeout:    500 * time.Millisecond,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		SnapshotThreshold:  8192,
		SnapshotRetain:     2,
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("raftstore: Dir is required")
	case c.ID == "":
		return errors.New("raftstore: ID is required")
	case c.BindAddr == "":
		return errors.New("raftstore: BindAddr is required")
	case c.FSM == nil:
		return errors.New("raftstore: FSM is required")
	case c.LogDB == nil:
		return errors.New("raftstore: LogDB is required")
	case c.ApplyTimeout <= 0 || c.MaxCommandSize <= 0:
		return errors.New("raftstore: ApplyTimeout and MaxCommandSize must be positive")
	}
	return nil
}

// Store is one node's raft instance and its storage.
type Store struct {
	cfg    Config
	log    *slog.Logger
	raft   *raft.Raft
	logs   *PebbleLog
	trans  *raft.NetworkTransport
	auth   *authLayer // nil when the transport is unauthenticated
	obsC   chan raft.Observation
	obs    *raft.Observer
	closed chan struct{}
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error

	// stall notices pauses of this process; VerifyLeader confirms
	// through the log around them (see stallWatch).
	stall *stallWatch
	// barrierVerifies counts verifications done through the log.
	barrierVerifies atomic.Uint64

	mu          sync.Mutex
	leaderEpoch chan struct{} // closed (and replaced) at every leader change; nil until asked for
	lastLeader  time.Time     // when this node last saw a leader
	noLeaderAt  time.Time     // when the leader was last lost
}

// Open creates the stores and starts raft. A node with existing state
// resumes it; a new node waits to be bootstrapped or joined.
func Open(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.Default()
	}
	lg = lg.With("component", "raftstore")
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("raftstore: create dir: %w", err)
	}
	hl := newHCLogger(lg)
	logs, err := NewPebbleLog(cfg.LogDB)
	if err != nil {
		return nil, err
	}
	if err := migrateBolt(cfg.Dir, logs, lg); err != nil {
		return nil, err
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, max(cfg.SnapshotRetain, 1), hl)
	if err != nil {
		return nil, fmt.Errorf("raftstore: open snapshot store: %w", err)
	}
	// Without an advertise address the transport advertises the address it
	// actually bound (so "127.0.0.1:0" works); it refuses unspecified IPs.
	var advAddr net.Addr
	if cfg.AdvertiseAddr != "" {
		a, err := net.ResolveTCPAddr("tcp", cfg.AdvertiseAddr)
		if err != nil || a.IP == nil || a.IP.IsUnspecified() {
			return nil, fmt.Errorf("raftstore: advertise address %q must be a routable IP:port", cfg.AdvertiseAddr)
		}
		advAddr = a
	}
	var (
		trans *raft.NetworkTransport
		auth  *authLayer
	)
	if (cfg.ServerTLS == nil) != (cfg.ClientTLS == nil) {
		return nil, errors.New("raftstore: ServerTLS and ClientTLS go together")
	}
	if cfg.TransportKey == nil && cfg.ServerTLS == nil {
		trans, err = raft.NewTCPTransportWithLogger(cfg.BindAddr, advAddr, 3, 10*time.Second, hl)
	} else {
		trans, auth, err = newAuthTransport(cfg.BindAddr, advAddr, transportAuth{key: cfg.TransportKey,
			server: cfg.ServerTLS, client: cfg.ClientTLS}, lg, hl)
	}
	if err != nil {
		return nil, fmt.Errorf("raftstore: listen %s: %w", cfg.BindAddr, err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = hl
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = 30 * time.Second
	rc.TrailingLogs = 10240
	// Followers learn the commit index from the next AppendEntries; raft's
	// 50ms default made every read on a follower right after a write wait
	// up to 50ms for it. 5ms of idle heartbeats is cheap on a LAN.
	rc.CommitTimeout = 5 * time.Millisecond
	// An FSM that keeps its state on disk (fsm.FSM) does not need the last
	// snapshot restored at startup when its state is already at or past
	// it: raft then replays only the entries after the snapshot, and the
	// FSM skips those it already holds. Restart time no longer grows with
	// the state. A store behind the snapshot (or an in-memory FSM) is
	// restored as usual.
	if p, ok := cfg.FSM.(persistentFSM); ok {
		if metas, err := snaps.List(); err == nil && len(metas) > 0 && coversSnapshot(logs, p.AppliedIndex(), metas[0].Index) {
			rc.NoSnapshotRestoreOnStart = true
			lg.Info("state machine is at or past the last snapshot: starting without restore",
				"applied", p.AppliedIndex(), "snapshot", metas[0].Index)
		}
	}
	r, err := raft.NewRaft(rc, cfg.FSM, logs, logs, snaps, trans)
	if err != nil {
		trans.Close()
		return nil, fmt.Errorf("raftstore: start raft: %w", err)
	}
	s := &Store{cfg: cfg, log: lg, raft: r, logs: logs, trans: trans, auth: auth,
		obsC: make(chan raft.Observation, 64), closed: make(chan struct{}),
		// A stall shorter than a quarter of the heartbeat timeout cannot
		// let followers time out and elect another leader.
		stall: newStallWatch(max(cfg.HeartbeatTimeout/4, 20*time.Millisecond))}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.stall.run(s.closed) }()
	s.obs = raft.NewObserver(s.obsC, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.RegisterObserver(s.obs)
	s.wg.Add(1)
	go s.observe()
	return s, nil
}

// persistentFSM is an FSM whose state survives a restart, up to the index
// it reports (the last command it applied).
type persistentFSM interface {
	AppliedIndex() uint64
}

// coversSnapshot reports whether a state machine that applied every
// command up to applied holds everything a snapshot at index snap does:
// applied is at or past it, or every entry in between is one the state
// machine never sees (no-ops, barriers, configuration changes), as the log
// still shows. An entry that is gone from the log means no.
func coversSnapshot(logs raft.LogStore, applied, snap uint64) bool {
	if applied >= snap {
		return true
	}
	var l raft.Log
	for i := applied + 1; i <= snap; i++ {
		if err := logs.GetLog(i, &l); err != nil || l.Type == raft.LogCommand {
			return false
		}
	}
	return true
}

// observe tracks leader changes for WaitForLeader and failover metrics.
func (s *Store) observe() {
	defer s.wg.Done()
	for {
		select {
		case <-s.closed:
			return
		case o := <-s.obsC:
			lo, _ := o.Data.(raft.LeaderObservation)
			s.mu.Lock()
			if lo.LeaderID == "" {
				s.noLeaderAt = time.Now()
			} else {
				s.lastLeader = time.Now()
			}
			if s.leaderEpoch != nil {
				close(s.leaderEpoch)
				s.leaderEpoch = nil
			}
			s.mu.Unlock()
			s.log.Info("leader changed", "leader", string(lo.LeaderID), "addr", string(lo.LeaderAddr))
		}
	}
}

// LeaderChanged returns a channel closed at the next leader change (as
// this node sees it: a new leader, or none when the leader stopped
// answering).
func (s *Store) LeaderChanged() <-chan struct{} {
	// One channel per leader epoch, shared by every caller: memory does not
	// grow with the number of waiters.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leaderEpoch == nil {
		s.leaderEpoch = make(chan struct{})
	}
	return s.leaderEpoch
}

// HasState reports whether this node already holds raft state (it was
// bootstrapped or joined before).
func (s *Store) HasState() bool {
	last, err := s.logs.LastIndex()
	if err == nil && last > 0 {
		return true
	}
	cfg := s.raft.GetConfiguration()
	return cfg.Error() == nil && len(cfg.Configuration().Servers) > 0
}

// Server is a member of the raft configuration.
type Server struct {
	ID       string `json:"id"`
	Address  string `json:"raft_addr"`
	Suffrage string `json:"suffrage"`
}

// Bootstrap forms a new cluster from the given servers. It fails with an
// error if this node already has state.
func (s *Store) Bootstrap(servers []Server) error {
	cfg := raft.Configuration{}
	for _, sv := range servers {
		cfg.Servers = append(cfg.Servers, raft.Server{ID: raft.ServerID(sv.ID), Address: raft.ServerAddress(sv.Address), Suffrage: raft.Voter})
	}
	if err := s.raft.BootstrapCluster(cfg).Error(); err != nil {
		return fmt.Errorf("raftstore: bootstrap: %w", err)
	}
	return nil
}

// ID returns this node's raft id.
func (s *Store) ID() string { return s.cfg.ID }

// Addr returns the advertised raft address.
func (s *Store) Addr() string { return string(s.trans.LocalAddr()) }

// IsLeader reports whether this node is the leader.
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// Leader returns the current leader's raft address and id ("" if none).
func (s *Store) Leader() (addr, id string) {
	a, i := s.raft.LeaderWithID()
	return string(a), string(i)
}

// State returns "Leader", "Follower", "Candidate" or "Shutdown".
func (s *Store) State() string { return s.raft.State().String() }

// Term, CommitIndex, AppliedIndex and LastIndex expose raft's counters.
func (s *Store) Term() uint64         { return s.raft.CurrentTerm() }
func (s *Store) CommitIndex() uint64  { return s.raft.CommitIndex() }
func (s *Store) AppliedIndex() uint64 { return s.raft.AppliedIndex() }
func (s *Store) LastIndex() uint64    { return s.raft.LastIndex() }

// LastContact returns when a follower last heard from the leader.
func (s *Store) LastContact() time.Time { return s.raft.LastContact() }

// Servers returns the current raft configuration.
func (s *Store) Servers() ([]Server, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, translate(err)
	}
	var out []Server
	for _, sv := range f.Configuration().Servers {
		out = append(out, Server{ID: string(sv.ID), Address: string(sv.Address), Suffrage: sv.Suffrage.String()})
	}
	return out, nil
}

// WaitForLeader blocks until a leader is known or ctx ends.
func (s *Store) WaitForLeader(ctx context.Context) (string, error) {
	for {
		ch := s.LeaderChanged()
		if _, id := s.Leader(); id != "" {
			return id, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w: %w", ErrNoLeader, ctx.Err())
		case <-s.closed:
			return "", ErrShutdown
		case <-ch:
		}
	}
}

func (s *Store) timeout(ctx context.Context) time.Duration {
	t := s.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d < t {
			t = d
		}
	}
	return t
}

// Apply proposes cmd and waits for it to be applied locally. It returns the
// FSM's response and the entry's index. Errors: ErrNotLeader on a
// follower; ErrNotApplied if it could not be enqueued in time (certainly
// not applied); ErrIndeterminate if it was proposed but its fate is unknown.
func (s *Store) Apply(ctx context.Context, cmd []byte) (any, uint64, error) {
	select {
	case <-s.closed:
		// Not "not leader": there is nobody to forward to from here.
		return nil, 0, ErrShutdown
	default:
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrNotApplied, err)
	}
	if len(cmd) > s.cfg.MaxCommandSize {
		return nil, 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(cmd), s.cfg.MaxCommandSize)
	}
	if !s.IsLeader() {
		return nil, 0, ErrNotLeader
	}
	timeout := s.timeout(ctx)
	if timeout <= 0 {
		// raft would take 0 as "wait for ever" to enqueue.
		return nil, 0, fmt.Errorf("%w: %w", ErrNotApplied, context.DeadlineExceeded)
	}
	f := s.raft.Apply(cmd, timeout)
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			return nil, 0, applyError(err, f.Index())
		}
		return f.Response(), f.Index(), nil
	case <-ctx.Done():
		// The command may already be in the log; we cannot know.
		return nil, 0, fmt.Errorf("%w: %w", ErrIndeterminate, ctx.Err())
	case <-s.closed:
		// Closing with the command in flight: it may commit, and raft
		// drops entries still queued for the FSM at shutdown without
		// answering them. (Not ErrShutdown: that would say "not applied".)
		return nil, 0, fmt.Errorf("%w: store closed", ErrIndeterminate)
	}
}

// applyError translates the error of a proposed command. Once raft has
// appended the entry (index > 0) it answers ErrRaftShutdown when it stops
// before applying it, though the entry may be committed: the outcome is
// unknown, not "certainly not applied".
func applyError(err error, index uint64) error {
	if index > 0 && errors.Is(err, raft.ErrRaftShutdown) {
		return fmt.Errorf("%w: %w", ErrIndeterminate, err)
	}
	return translate(err)
}

// VerifyLeader confirms that this node is still the leader by contacting a
// quorum; used for linearizable reads.
func (s *Store) VerifyLeader(ctx context.Context) error {
	// raft queues the check on a buffered channel even after Shutdown and
	// then never answers it, so a closed store must not ask.
	select {
	case <-s.closed:
		return ErrShutdown
	default:
	}
	start := time.Now()
	f := s.raft.VerifyLeader()
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	var err error
	select {
	case err = <-done:
	case <-s.closed:
		return ErrShutdown
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNoLeader, ctx.Err())
	}
	if err != nil {
		return translate(err)
	}
	// A verification that overlapped a stall of this process (or followed
	// one by less than an election timeout) may have counted answers sent
	// before it: confirm through the log (see stallWatch).
	if s.stall.suspect(time.Now(), start.Add(-s.cfg.ElectionTimeout)) {
		s.barrierVerifies.Add(1)
		if err := s.Barrier(ctx); err != nil {
			return fmt.Errorf("confirming leadership after a stall of this process: %w", err)
		}
	}
	return nil
}

// Barrier waits until every entry before it is applied on the leader.
func (s *Store) Barrier(ctx context.Context) error {
	return translate(s.raft.Barrier(s.timeout(ctx)).Error())
}

// UserRestore replaces the state machine's state, on this leader and then
// on every follower, with a snapshot read from r of exactly size bytes
// whose state reflects log index index (raft's user restore: the current
// configuration is kept, and the log jumps past both index and its own
// last index, so followers must install the snapshot and every later entry
// is numbered above the restored state's index). It returns once a no-op
// after the restore has committed.
func (s *Store) UserRestore(ctx context.Context, r io.Reader, size int64, index uint64) error {
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: size, Index: index}
	return translate(s.raft.Restore(meta, r, s.timeout(ctx)))
}

// SnapshotInfo describes a snapshot this node took.
type SnapshotInfo struct {
	Index uint64        // last log index the snapshot covers
	Size  int64         // bytes on disk
	Took  time.Duration // from the request until it was persisted
}

// Snapshot takes a snapshot of the state machine now (as raft does on its
// own every SnapshotThreshold entries) and compacts the log behind it.
func (s *Store) Snapshot(ctx context.Context) (SnapshotInfo, error) {
	start := time.Now()
	f := s.raft.Snapshot()
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNothingNewToSnapshot) {
			return SnapshotInfo{}, fmt.Errorf("%w: nothing new to snapshot", osprey.ErrConflict)
		}
		return SnapshotInfo{}, translate(err)
	}
	took := time.Since(start)
	meta, rc, err := f.Open()
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("raftstore: open snapshot: %w", err)
	}
	rc.Close()
	return SnapshotInfo{Index: meta.Index, Size: meta.Size, Took: took}, nil
}

// AddVoter adds (or re-addresses) a voting member. Adding a member that is
// already present with the same address is a no-op.
func (s *Store) AddVoter(ctx context.Context, id, addr string) error {
	servers, err := s.Servers()
	if err != nil {
		return err
	}
	for _, sv := range servers {
		if sv.ID == id && sv.Address == addr {
			return nil
		}
		if sv.ID != id && sv.Address == addr {
			// A new id at an old address: drop the stale entry first so the
			// configuration stays consistent. The same id at a new address
			// is updated in place by raft; removing it first would make a
			// leader that re-addresses itself step down.
			if err := translate(s.raft.RemoveServer(raft.ServerID(sv.ID), 0, s.timeout(ctx)).Error()); err != nil {
				return err
			}
		}
	}
	return translate(s.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, s.timeout(ctx)).Error())
}

// RemoveServer removes a member from the configuration.
func (s *Store) RemoveServer(ctx context.Context, id string) error {
	return translate(s.raft.RemoveServer(raft.ServerID(id), 0, s.timeout(ctx)).Error())
}

// TransferLeadership hands leadership to id (or to the most up-to-date
// follower when id is "").
func (s *Store) TransferLeadership(ctx context.Context, id string) error {
	if id == "" {
		return translate(s.raft.LeadershipTransfer().Error())
	}
	servers, err := s.Servers()
	if err != nil {
		return err
	}
	for _, sv := range servers {
		if sv.ID == id {
			return translate(s.raft.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(sv.Address)).Error())
		}
	}
	return fmt.Errorf("raftstore: transfer leadership: %q is not a member", id)
}

// Stats returns raft's own statistics.
func (s *Store) Stats() map[string]string { return s.raft.Stats() }

// Close shuts raft down: a leader first hands leadership to a follower so the
// cluster does not wait for an election timeout. Idempotent.
func (s *Store) Close() error { return s.close(true) }

// Abort shuts raft down like a crash: no leadership transfer. Tests and the
// chaos tooling use it; the on-disk state is exactly what a kill leaves.
func (s *Store) Abort() error { return s.close(false) }

func (s *Store) close(transfer bool) error {
	s.closeOnce.Do(func() {
		if transfer && s.IsLeader() {
			if servers, err := s.Servers(); err == nil && len(servers) > 1 {
				if err := s.raft.LeadershipTransfer().Error(); err != nil {
					s.log.Warn("leadership transfer before shutdown failed", "err", err)
				}
			}
		}
		close(s.closed)
		s.raft.DeregisterObserver(s.obs)
		err := s.raft.Shutdown().Error()
		s.wg.Wait()
		errT := s.trans.Close()
		s.closeErr = errors.Join(err, errT)
	})
	return s.closeErr
}

// translate maps raft's errors onto this package's sentinels.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %w", ErrNotLeader, err)
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrAbortedByRestore):
		return fmt.Errorf("%w: %w", ErrIndeterminate, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %w", ErrShutdown, err)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %w", ErrNotApplied, err)
	}
	return fmt.Errorf("raftstore: %w", err)
}

var _ io.Closer = (*Store)(nil)
