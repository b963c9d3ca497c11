package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
	"github.com/osprey-storage/osprey/raftstore"
	"github.com/osprey-storage/osprey/snowflake"
)

// Raft is the part of the local raft store membership drives.
type Raft interface {
	HasState() bool
	Bootstrap(servers []raftstore.Server) error
	IsLeader() bool
	Leader() (addr, id string)
	State() string
	Term() uint64
	CommitIndex() uint64
	AppliedIndex() uint64
	Servers() ([]raftstore.Server, error)
	AddVoter(ctx context.Context, id, addr string) error
	RemoveServer(ctx context.Context, id string) error
	TransferLeadership(ctx context.Context, id string) error
}

// State is the part of the FSM membership reads.
type State interface {
	ClusterID() string
	JoinTokenHash() string
	Node(id osprey.NodeID) (fsm.Node, bool)
	Settings() fsm.Settings
	HasUploadsBefore(t int64) bool
	Hash() (string, uint64)
	Nodes() []fsm.Node
}

// Proposer proposes commands through the leader.
type Proposer interface {
	Apply(ctx context.Context, t fsm.CommandType, payload, out any) error
	EnsureBarrier(ctx context.Context) error
	LeaderHTTP() string
}

// Peers reaches other nodes.
type Peers interface {
	Token() string
	BootstrapInfo(ctx context.Context, addr, joinToken string) (httpapi.BootstrapInfo, error)
	Join(ctx context.Context, addr string, req httpapi.JoinRequest) (httpapi.JoinResult, error)
	Probe(ctx context.Context, addr string) (ok bool, rtt time.Duration, err error)
}

// StorageReporter summarises staged-data protection for /cluster/status.
type StorageReporter interface {
	StorageInfo() *httpapi.StorageInfo
}

var _ Raft = (*raftstore.Store)(nil)

// Config configures a Membership.
type Config struct {
	// ID, HTTPAddr and RaftAddr identify this node (advertised addresses).
	ID       string
	HTTPAddr string
	RaftAddr string
	// DataDir keeps the uid generator's high-water marks.
	DataDir string
	// Bootstrap, BootstrapExpect, Join and JoinToken say how the node
	// forms or joins a cluster (see node.Config); JoinRetry is the pause
	// between attempts. JoinTokenPath is only logged.
	Bootstrap       bool
	BootstrapExpect int
	Join            []string
	JoinToken       string
	JoinTokenPath   string
	JoinRetry       time.Duration
	// RepairGrace is how long a member may stay unreachable before the
	// leader marks it down (0 = never).
	RepairGrace time.Duration
	// The cluster settings the leader keeps in step with its
	// configuration.
	WebhookEnabled  bool
	TaskMaxAttempts int
	ExpireUploads   time.Duration
	GCGrace         time.Duration
	// InlineMax is the cluster's Settings.InlineMax (0 = off), applied
	// once every member runs a build at fsm.FeatureLevelInline.
	InlineMax          int64
	BackendFingerprint string

	Raft     Raft
	State    State
	Proposer Proposer
	Peers    Peers
	// Storage, if set, fills ClusterStatus.Storage.
	Storage StorageReporter
	// Version describes the running binary for /cluster/status
	// (version, commit, date, go).
	Version map[string]string
	// Done is closed when the node begins shutting down (NotReady says so).
	Done <-chan struct{}
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Validate reports a missing dependency or setting.
func (c Config) Validate() error {
	switch {
	case c.ID == "" || c.HTTPAddr == "" || c.RaftAddr == "" || c.DataDir == "":
		return errors.New("membership: ID, addresses and DataDir are required")
	case c.Raft == nil || c.State == nil || c.Proposer == nil || c.Peers == nil || c.Done == nil:
		return errors.New("membership: Raft, State, Proposer, Peers and Done are required")
	case c.JoinRetry <= 0:
		return errors.New("membership: JoinRetry must be positive")
	}
	return nil
}

// Membership brings this node into a cluster and keeps its place there;
// it implements httpapi.Cluster and the membership half of
// httpapi.Internal. Safe for concurrent use.
type Membership struct {
	cfg   Config
	log   *slog.Logger
	fatal chan error
	gen   atomic.Pointer[workerGen]

	// Owned by the reconcile goroutine.
	lastMismatchLog time.Time
	lastExpire      time.Time

	unreachMu   sync.Mutex
	unreachable map[osprey.NodeID]time.Time // members this node cannot reach, since when (livenessLoop)
}

type workerGen struct {
	worker uint32
	g      *snowflake.Generator
}

var _ httpapi.Cluster = (*Membership)(nil)

// New returns a Membership; Run starts its loops.
func New(cfg Config) (*Membership, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.Default()
	}
	return &Membership{cfg: cfg, log: lg, fatal: make(chan error, 1)}, nil
}

// Run forms or joins a cluster, then keeps this node's record, worker id
// and (on the leader) the cluster settings and members' liveness in
// order, until ctx ends.
func (m *Membership) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); m.livenessLoop(ctx) }()
	go func() { defer wg.Done(); m.formOrJoin(ctx) }()
	go func() { defer wg.Done(); m.reconcileLoop(ctx) }()
	wg.Wait()
}

// NextUID mints a uid. ErrUnavailable until the node has its worker id.
func (m *Membership) NextUID() (osprey.UID, error) {
	g := m.gen.Load()
	if g == nil {
		return 0, fmt.Errorf("%w: node has no worker id yet (not joined)", osprey.ErrUnavailable)
	}
	id, err := g.g.Next()
	if err != nil {
		return 0, err
	}
	return osprey.UID(id), nil
}

// Registered reports whether this node has its member record and worker
// id (it may mint uids and lease tasks).
func (m *Membership) Registered() bool { return m.gen.Load() != nil }

func (m *Membership) fail(err error) {
	select {
	case m.fatal <- err:
	default:
	}
}

func (m *Membership) shuttingDown() bool {
	select {
	case <-m.cfg.Done:
		return true
	default:
		return false
	}
}

func (m *Membership) storageInfo() *httpapi.StorageInfo {
	if m.cfg.Storage == nil {
		return nil
	}
	info := m.cfg.Storage.StorageInfo()
	info.Degraded = m.Degraded()
	info.Protection = "full"
	if info.UnderProtected > 0 || len(info.Degraded) > 0 {
		info.Protection = "degraded"
	}
	return info
}
