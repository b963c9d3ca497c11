package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"time"

	"github.com/osprey-storage/osprey/backend"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/osprey-storage/osprey/chunkstore"
	"github.com/osprey-storage/osprey/consensus"
	"github.com/osprey-storage/osprey/datapath"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
	"github.com/osprey-storage/osprey/peer"
	"github.com/osprey-storage/osprey/placement"
	"github.com/osprey-storage/osprey/raftstore"
	"github.com/osprey-storage/osprey/repair"
	"github.com/osprey-storage/osprey/snowflake"
	"github.com/osprey-storage/osprey/tasks"
)

// Node is one osprey server.
type Node struct {
	cfg       Config
	id        string
	log       *slog.Logger
	fsm       *fsm.FSM
	raft      *raftstore.Store
	api       *httpapi.Server
	registry  *prometheus.Registry
	httpLn    net.Listener
	httpSrv   *http.Server
	httpAddr  string // advertised
	raftAddr  string // advertised
	joinToken string
	place     *placement.Placement // where copies go
	data      *datapath.Path       // uploads, downloads, copies
	peers     *peer.Client         // node-to-node calls
	prop      *consensus.Proposer  // commands and linearizable reads
	chunks    *chunkstore.Store
	backend   backend.Backend
	tasks     *tasks.Runner
	scrub     *repair.Scrubber

	backendUp                                            atomic.Bool
	backendErr                                           atomic.Pointer[errBox]
	taskRuns                                             *prometheus.CounterVec
	tieredBytes                                          prometheus.Counter
	corruptReads                                         prometheus.Counter
	scrubBytes, scrubCorrupt, scrubRepaired, scrubPasses prometheus.Counter

	// Owned by the reconcile goroutine.
	lastMismatchLog time.Time
	lastExpire      time.Time

	fatal chan error

	gen atomic.Pointer[workerGen]

	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup

	startOnce sync.Once
	closeOnce sync.Once
	closeErr  error
}

type workerGen struct {
	worker uint32
	g      *snowflake.Generator
}

// ErrShuttingDown is the cause given to request contexts at shutdown.
var ErrShuttingDown = consensus.ErrShuttingDown

// New builds a node: it resolves its id, opens the raft store and binds the
// HTTP listener, but serves nothing until Start. The caller MUST Close it.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.Default()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("node: create data dir: %w", err)
	}
	id, err := resolveNodeID(cfg.DataDir, cfg.NodeID)
	if err != nil {
		return nil, err
	}
	lg = lg.With("node", id)
	n := &Node{cfg: cfg, id: id, log: lg, fsm: fsm.New(), registry: prometheus.NewRegistry(), fatal: make(chan error, 1)}
	n.ctx, n.cancel = context.WithCancelCause(context.Background())
	pcfg := peer.DefaultConfig()
	pcfg.Directory = n.fsm
	if n.peers, err = peer.New(pcfg); err != nil {
		return nil, err
	}
	if n.place, err = placement.New(placement.Config{Members: n.fsm, Replicas: cfg.Replicas, EC: cfg.EC}); err != nil {
		return nil, err
	}

	n.joinToken = cfg.JoinToken
	if n.joinToken == "" && len(cfg.Join) == 0 {
		if n.joinToken, err = loadOrCreateToken(filepath.Join(cfg.DataDir, "join-token")); err != nil {
			return nil, err
		}
	}

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("node: listen http %s: %w", cfg.HTTPAddr, err)
	}
	n.httpLn = ln
	n.httpAddr = cfg.AdvertiseHTTP
	if n.httpAddr == "" {
		n.httpAddr = ln.Addr().String()
	}
	if err := checkAdvertise(n.httpAddr, "http"); err != nil {
		ln.Close()
		return nil, err
	}

	copts := chunkstore.DefaultOptions()
	copts.MaxChunkSize = max(cfg.Limits.MaxChunkSize, 8<<20)
	copts.Logger = lg
	if n.chunks, err = chunkstore.Open(filepath.Join(cfg.DataDir, "chunks"), copts); err != nil {
		ln.Close()
		return nil, fmt.Errorf("node: open chunk store: %w", err)
	}

	if n.backend, err = n.newBackend(cfg.Backend); err != nil {
		n.chunks.Close()
		ln.Close()
		return nil, fmt.Errorf("node: backend: %w", err)
	}
	rc := cfg.Raft
	rc.Dir, rc.ID, rc.BindAddr, rc.AdvertiseAddr, rc.FSM, rc.Logger =
		filepath.Join(cfg.DataDir, "raft"), id, cfg.RaftAddr, cfg.AdvertiseRaft, n.fsm, lg
	if n.raft, err = raftstore.Open(rc); err != nil {
		n.backend.Close()
		n.chunks.Close()
		ln.Close()
		return nil, err
	}
	n.raftAddr = n.raft.Addr()
	ccfg := consensus.DefaultConfig()
	ccfg.ID, ccfg.HTTPAddr, ccfg.ApplyTimeout, ccfg.Raft, ccfg.State, ccfg.Forwarder = id, n.httpAddr, rc.ApplyTimeout, n.raft, n.fsm, n.peers
	if n.prop, err = consensus.New(ccfg); err != nil {
		n.raft.Close()
		n.backend.Close()
		n.chunks.Close()
		ln.Close()
		return nil, err
	}

	n.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	n.registerMetrics()
	dcfg := datapath.Config{ID: id, Limits: cfg.Limits, BufferBudget: cfg.BufferBudget, State: n.fsm, Proposer: n.prop,
		UIDs: n, Placement: n.place, Peers: n.peers, Chunks: n.chunks, Objects: n.backend, CorruptReads: n.corruptReads, Logger: lg}
	if n.data, err = datapath.New(dcfg); err != nil {
		n.raft.Close()
		n.backend.Close()
		n.chunks.Close()
		ln.Close()
		return nil, err
	}
	rep, err := repair.New(repair.Config{ID: id, State: n.fsm, Data: n.data, Placement: n.place})
	if err != nil {
		return nil, errors.Join(err, n.data.Close(), n.raft.Close(), n.backend.Close(), n.chunks.Close(), ln.Close())
	}
	if n.scrub, err = repair.NewScrubber(repair.ScrubConfig{ID: id, Rate: cfg.ScrubRate, Pause: cfg.ScrubPause, Chunks: n.chunks,
		State: n.fsm, Data: n.data, Bytes: n.scrubBytes, Corrupt: n.scrubCorrupt, Repaired: n.scrubRepaired,
		Passes: n.scrubPasses, Logger: lg}); err != nil {
		return nil, errors.Join(err, n.data.Close(), n.raft.Close(), n.backend.Close(), n.chunks.Close(), ln.Close())
	}
	// Handlers are registered here, explicitly; a new task type is a new
	// handler and one line.
	handlers := []tasks.Handler{
		tasks.NewTier(tasks.TierConfig{ID: id, LocalBackend: n.isLocalBackend(), State: n.fsm, Data: n.data, Placement: n.place,
			Objects: n.backend, TieredBytes: n.tieredBytes, Logger: lg}),
		tasks.NewGC(n.data),
		tasks.NewDelete(tasks.DeleteConfig{State: n.fsm, Data: n.data, Objects: n.backend}),
		rep,
	}
	if cfg.WebhookURL != "" {
		handlers = append(handlers, tasks.NewWebhook(cfg.WebhookURL, []byte(cfg.WebhookSecret), &http.Client{Timeout: 10 * time.Second}))
	}
	if n.tasks, err = tasks.New(tasks.Config{ID: id, Workers: cfg.TaskWorkers, Lease: cfg.TaskLease, Poll: cfg.TaskPoll,
		Handlers: handlers, Ready: func() bool { return n.gen.Load() != nil }, State: n.fsm, Proposer: n.prop,
		Uploads: n.data, Runs: n.taskRuns, Logger: lg}); err != nil {
		n.data.Close()
		n.raft.Close()
		n.backend.Close()
		n.chunks.Close()
		ln.Close()
		return nil, err
	}
	n.api, err = httpapi.New(httpapi.Config{Cluster: n, Internal: n, Storage: n.data, Tasks: n.tasks, Replicas: n.data, APIKeys: cfg.APIKeys,
		Registry: n.registry, Logger: lg, Limits: cfg.Limits})
	if err != nil {
		n.raft.Close()
		n.backend.Close()
		n.chunks.Close()
		ln.Close()
		return nil, err
	}
	n.httpSrv = &http.Server{Handler: n.api, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return n.ctx },
		ErrorLog:    slog.NewLogLogger(lg.Handler(), slog.LevelDebug)}
	return n, nil
}

func checkAdvertise(addr, what string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("node: %s address %q: %w", what, addr, err)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("node: listening on %s: set --advertise-%s to an address other nodes can reach", addr, what)
	}
	return nil
}

// resolveNodeID returns the persisted id, persisting the configured or a
// generated one on first start. A configured id that differs from the
// persisted one is an error: the data dir belongs to another node.
func resolveNodeID(dir, want string) (string, error) {
	path := filepath.Join(dir, "node-id")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		have := strings.TrimSpace(string(b))
		if want != "" && want != have {
			return "", fmt.Errorf("node: data dir %s belongs to node %q, not %q", dir, have, want)
		}
		return have, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("node: read node id: %w", err)
	}
	id := want
	if id == "" {
		var r [4]byte
		_, _ = rand.Read(r[:])
		id = "node-" + hex.EncodeToString(r[:])
	}
	if err := writeFileSync(path, []byte(id+"\n")); err != nil {
		return "", fmt.Errorf("node: persist node id: %w", err)
	}
	return id, nil
}

func loadOrCreateToken(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	var r [24]byte
	_, _ = rand.Read(r[:])
	tok := hex.EncodeToString(r[:])
	if err := writeFileSync(path, []byte(tok+"\n")); err != nil {
		return "", fmt.Errorf("node: write join token: %w", err)
	}
	return tok, nil
}

func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err = f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ID returns the node id.
func (n *Node) ID() string { return n.id }

// HTTPAddr returns the advertised HTTP address.
func (n *Node) HTTPAddr() string { return n.httpAddr }

// RaftAddr returns the advertised raft address.
func (n *Node) RaftAddr() string { return n.raftAddr }

// FSM exposes the state machine to tests.
func (n *Node) FSM() *fsm.FSM { return n.fsm }

// Storage is the node's data path (what the HTTP API serves uploads and
// downloads through), for tests and tools.
func (n *Node) Storage() *datapath.Path { return n.data }

// Raft exposes the raft store to tests.
func (n *Node) Raft() *raftstore.Store { return n.raft }

// JoinTokenPath is where a bootstrapping node keeps a generated token.
func (n *Node) JoinTokenPath() string { return filepath.Join(n.cfg.DataDir, "join-token") }

// Start serves HTTP and brings the node into a cluster in the background:
// it bootstraps, joins or simply resumes, as Config and the data dir say.
func (n *Node) Start(ctx context.Context) error {
	var err error
	n.startOnce.Do(func() {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := n.httpSrv.Serve(n.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				n.log.Error("http server stopped", "err", err)
			}
		}()
		n.log.Info("node started", "http", n.httpAddr, "raft", n.raftAddr, "has_state", n.raft.HasState())
		n.wg.Add(6)
		go func() { defer n.wg.Done(); n.livenessLoop() }()
		go func() { defer n.wg.Done(); n.scrub.Run(n.ctx) }()
		go func() { defer n.wg.Done(); n.formOrJoin() }()
		go func() { defer n.wg.Done(); n.reconcileLoop() }()
		go func() { defer n.wg.Done(); n.tasks.Run(n.ctx) }()
		go func() { defer n.wg.Done(); n.backendCheckLoop() }()
	})
	return err
}

// Close shuts the node down, in an order where each step still has what it
// needs. Idempotent.
func (n *Node) Close() error { return n.close(true) }

// Kill stops the node abruptly, as close to kill -9 as a process can get
// in-process: connections are cut and leadership is not handed over. The
// data dir keeps what a crash would leave. For tests.
func (n *Node) Kill() error { return n.close(false) }

func (n *Node) close(graceful bool) error {
	n.closeOnce.Do(func() {
		var errs []error
		// 1. Stop taking requests; cancelling the base context with a cause
		// lets in-flight handlers answer 503 rather than hang.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n.cancel(ErrShuttingDown)
		n.prop.Close()
		if !graceful {
			_ = n.httpSrv.Close()
		} else if err := n.httpSrv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("node: http shutdown: %w", err))
			_ = n.httpSrv.Close()
		}
		cancel()
		// 2-4. raftstore.Close transfers leadership first (so the cluster
		// does not wait an election timeout), then closes the transport and
		// the log store.
		closeRaft := n.raft.Close
		if !graceful {
			closeRaft = n.raft.Abort
		}
		if err := closeRaft(); err != nil {
			errs = append(errs, err)
		}
		n.wg.Wait()
		// Best-effort cleanup the data path started ends before the
		// chunk store it deletes from.
		_ = n.data.Close()
		// 5. The chunk store closes last: raft and every request are done.
		if err := n.chunks.Close(); err != nil {
			errs = append(errs, err)
		}
		// 6. Backends last of all.
		if err := n.backend.Close(); err != nil {
			errs = append(errs, err)
		}
		n.peers.CloseIdleConnections()
		n.closeErr = errors.Join(errs...)
		n.log.Info("node stopped")
	})
	return n.closeErr
}

func (n *Node) fatalC() <-chan error { return n.fatal }

func (n *Node) fail(err error) {
	select {
	case n.fatal <- err:
	default:
	}
}
