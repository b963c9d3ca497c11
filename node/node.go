package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/backend"
	"github.com/osprey-storage/osprey/membership"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/osprey-storage/osprey/backend/local"
	"github.com/osprey-storage/osprey/chunkstore"
	"github.com/osprey-storage/osprey/consensus"
	"github.com/osprey-storage/osprey/datapath"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
	"github.com/osprey-storage/osprey/peer"
	"github.com/osprey-storage/osprey/placement"
	"github.com/osprey-storage/osprey/raftstore"
	"github.com/osprey-storage/osprey/repair"
	"github.com/osprey-storage/osprey/s3api"
	"github.com/osprey-storage/osprey/s3gw"
	"github.com/osprey-storage/osprey/tasks"
	"github.com/osprey-storage/osprey/tlsconf"
)

// Node is one osprey server: the composition root that builds the
// components from a Config, wires them through their small interfaces,
// starts their loops and stops them in order. It holds no business logic;
// see doc.go for which package owns what.
type Node struct {
	cfg       Config
	id        string
	log       *slog.Logger
	httpAddr  string // advertised
	raftAddr  string // advertised
	joinToken string

	// Infrastructure, in the order New opens it.
	fsm      *fsm.FSM
	httpLn   net.Listener
	chunks   *chunkstore.Store
	backend  backend.Backend
	raft     *raftstore.Store
	registry *prometheus.Registry
	api      *httpapi.Server
	httpSrv  *http.Server
	s3Ln     net.Listener // nil when the S3 API is off
	s3Srv    *http.Server
	s3       *s3gw.Gateway
	tls      *tlsconf.Reloader // nil without TLS

	// Components.
	peers  *peer.Client           // node-to-node calls
	prop   *consensus.Proposer    // commands and linearizable reads
	place  *placement.Placement   // where copies go
	mem    *membership.Membership // join, bootstrap, registration, liveness, status
	data   *datapath.Path         // uploads, downloads, copies
	tasks  *tasks.Runner          // background task queue
	scrub  *repair.Scrubber       // staged-copy verification
	rebal  *repair.Rebalancer     // moves copies to new ring owners
	health *backendHealth         // backend reachability

	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup

	startOnce sync.Once
	closeOnce sync.Once
	closeErr  error
	lock      *dirLock // the data dir's; released last by close
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
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	built := false
	defer func() {
		if !built {
			lock.release()
		}
	}()
	id, err := resolveNodeID(cfg.DataDir, cfg.NodeID)
	if err != nil {
		return nil, err
	}
	lg = lg.With("node", id)

	// undo closes what New opened so far, newest first, when a later step
	// fails.
	var opened []func() error
	fail := func(err error) (*Node, error) {
		for i := len(opened) - 1; i >= 0; i-- {
			_ = opened[i]()
		}
		return nil, err
	}
	fcfg := fsm.DefaultConfig(filepath.Join(cfg.DataDir, "meta"))
	fcfg.Logger = lg
	meta, err := fsm.Open(fcfg)
	if err != nil {
		return nil, fmt.Errorf("node: open metadata store: %w", err)
	}
	opened = append(opened, meta.Close)
	n := &Node{cfg: cfg, id: id, log: lg, fsm: meta, registry: prometheus.NewRegistry()}
	n.ctx, n.cancel = context.WithCancelCause(context.Background())

	n.joinToken = cfg.JoinToken
	if n.joinToken == "" && len(cfg.Join) == 0 {
		if n.joinToken, err = loadOrCreateToken(n.JoinTokenPath()); err != nil {
			return fail(err)
		}
	}

	if cfg.TLS.Enabled() {
		if n.tls, err = tlsconf.Load(cfg.TLS, lg); err != nil {
			return fail(fmt.Errorf("node: %w", err))
		}
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fail(fmt.Errorf("node: listen http %s: %w", cfg.HTTPAddr, err))
	}
	opened = append(opened, ln.Close)
	n.httpLn = n.serveTLS(ln)
	n.httpAddr = cfg.AdvertiseHTTP
	if n.httpAddr == "" {
		n.httpAddr = ln.Addr().String()
	}
	if err := checkAdvertise(n.httpAddr, "http"); err != nil {
		return fail(err)
	}

	if cfg.S3.Addr != "" {
		if n.s3Ln, err = net.Listen("tcp", cfg.S3.Addr); err != nil {
			return fail(fmt.Errorf("node: listen s3 api %s: %w", cfg.S3.Addr, err))
		}
		opened = append(opened, n.s3Ln.Close)
		n.s3Ln = n.serveTLS(n.s3Ln)
	}

	copts := chunkstore.DefaultOptions()
	copts.MaxChunkSize = max(cfg.Limits.MaxChunkSize, 8<<20)
	copts.Logger = lg
	// Staged chunks are read back once (tiering) and the OS page cache
	// serves that; the metadata store's cache is the one that pays.
	copts.CacheSize, copts.MemTableSize = 16<<20, 16<<20
	if n.chunks, err = chunkstore.Open(filepath.Join(cfg.DataDir, "chunks"), copts); err != nil {
		return fail(fmt.Errorf("node: open chunk store: %w", err))
	}
	opened = append(opened, n.chunks.Close)

	if n.backend, err = newBackend(cfg.Backend, cfg.DataDir, lg); err != nil {
		return fail(fmt.Errorf("node: backend: %w", err))
	}
	opened = append(opened, n.backend.Close)
	n.health = &backendHealth{backend: n.backend, log: lg}

	rc := cfg.Raft
	rc.Dir, rc.ID, rc.BindAddr, rc.AdvertiseAddr, rc.FSM, rc.Logger =
		filepath.Join(cfg.DataDir, "raft"), id, cfg.RaftAddr, cfg.AdvertiseRaft, n.fsm, lg
	// The Raft log shares the chunk store's Pebble WAL: an entry appended
	// while chunks are being committed costs no fsync of its own.
	rc.LogDB = n.chunks.DB()
	rc.TransportKey = newTransportKey(filepath.Join(cfg.DataDir, "raft-transport.key"), n.joinToken, n.fsm, lg).get
	if n.tls != nil {
		// Only holders of a cluster certificate speak raft, both ways.
		rc.ServerTLS, rc.ClientTLS = n.tls.ServerConfig(tls.RequireAndVerifyClientCert), n.tls.ClientConfig
	}
	if n.raft, err = raftstore.Open(rc); err != nil {
		return fail(err)
	}
	opened = append(opened, n.raft.Close)
	n.raftAddr = n.raft.Addr()

	if err := n.wire(rc.ApplyTimeout); err != nil {
		return fail(err)
	}
	// Header and idle-connection timeouts here; a stalled request body
	// is ended by httpapi (Limits.BodyIdleTimeout), since a whole-request
	// read timeout would cut off large uploads on slow links.
	n.httpSrv = &http.Server{Handler: n.api, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return n.ctx },
		ErrorLog:    slog.NewLogLogger(lg.Handler(), slog.LevelDebug)}
	n.lock, built = lock, true
	return n, nil
}

// wire builds the components over the opened infrastructure, each given
// only the small interfaces it declares, and the HTTP API over them.
func (n *Node) wire(applyTimeout time.Duration) error {
	cfg, id, lg := n.cfg, n.id, n.log
	var err error
	pcfg := peer.DefaultConfig()
	pcfg.Directory = n.fsm
	var peerTLS func(string) *tls.Config
	if n.tls != nil {
		peerTLS = n.tls.ClientConfig
	}
	pcfg.TLS = peerTLS
	if n.peers, err = peer.New(pcfg); err != nil {
		return err
	}
	ccfg := consensus.DefaultConfig()
	ccfg.ID, ccfg.HTTPAddr, ccfg.ApplyTimeout, ccfg.Raft, ccfg.State = id, n.httpAddr, applyTimeout, n.raft, n.fsm
	// Before a command leaves for another node's leader, local upload
	// copies committed without a sync are synced: only this node's own log
	// append, on the leader, covers them (datapath.Config.LocalCopiesSyncWithLog).
	ccfg.Forwarder = syncFirst{sync: n.chunks.SyncWAL, Forwarder: leaderBound{inner: n.peers, changed: n.raft.LeaderChanged}}
	// A node cut off from the leader longer than a few elections take
	// (500 ms timeouts: 0.5–1.6 s in the chaos runs) answers 503 at once
	// instead of holding requests until their deadline.
	ccfg.NoLeaderWait = max(2*time.Second, 4*cfg.Raft.ElectionTimeout)
	if n.prop, err = consensus.New(ccfg); err != nil {
		return err
	}
	if n.place, err = placement.New(placement.Config{Members: n.fsm, Replicas: cfg.Replicas, EC: cfg.EC}); err != nil {
		return err
	}
	fingerprint := backendFingerprint(cfg.Backend)
	inlineMax := cfg.InlineMax
	if !cfg.Backend.isLocal() {
		inlineMax = 0 // a shared backend is where the application's files are meant to be
	}
	if n.mem, err = membership.New(membership.Config{ID: id, HTTPAddr: n.httpAddr, RaftAddr: n.raftAddr, DataDir: cfg.DataDir,
		Bootstrap: cfg.Bootstrap, BootstrapExpect: cfg.BootstrapExpect, Join: cfg.Join, JoinToken: n.joinToken,
		JoinTokenPath: n.JoinTokenPath(), JoinRetry: cfg.JoinRetry, RepairGrace: cfg.RepairGrace,
		WebhookEnabled: cfg.WebhookURL != "", TaskMaxAttempts: cfg.TaskMaxAttempts, ExpireUploads: cfg.ExpireUploads,
		GCGrace: cfg.GCGrace, InlineMax: inlineMax, BackendFingerprint: fingerprint,
		Raft: n.raft, State: n.fsm, Proposer: n.prop, Peers: n.peers,
		Storage: storageReport{fsm: n.fsm, place: n.place, fingerprint: fingerprint},
		Version: map[string]string{"version": cfg.Build.Version, "commit": cfg.Build.Commit,
			"date": cfg.Build.Date, "go": runtime.Version()},
		Done: n.ctx.Done(), Logger: lg}); err != nil {
		return err
	}

	n.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := registerMetrics(n.registry, metricSources{raft: n.raft, fsm: n.fsm, chunks: n.chunks, health: n.health,
		mismatch: n.mem.BackendMismatch, degraded: func() int { return len(n.mem.Degraded()) }, build: cfg.Build,
		groupCommit: n.prop.GroupCommitStats})

	// LocalCopiesSyncWithLog: rc.LogDB is n.chunks.DB(), and syncFirst
	// wraps the forwarder.
	if n.data, err = datapath.New(datapath.Config{ID: id, Limits: cfg.Limits, BufferBudget: cfg.BufferBudget, State: n.fsm,
		Proposer: n.prop, UIDs: n.mem, Placement: n.place, Peers: n.peers, Chunks: n.chunks, Objects: n.backend,
		LocalCopiesSyncWithLog: true, CorruptReads: m.corruptReads, Logger: lg, UncheckedObjectReads: cfg.UncheckedReads,
		BadObjectCopy: func(id osprey.UID) {
			if n.scrub != nil {
				n.scrub.CheckObject(id)
			}
		}}); err != nil {
		return err
	}
	rep, err := repair.New(repair.Config{ID: id, State: n.fsm, Data: n.data, Placement: n.place})
	if err != nil {
		return err
	}
	var scrubObjects repair.ScrubObjects
	objectOrphans := false
	if lb, ok := n.backend.(*local.Backend); ok {
		scrubObjects = lb // this node's copies of tiered objects
		// Objects no record names this node a holder of are collected
		// only from a directory no other node writes.
		other, err := lb.Claim(id)
		switch {
		case err != nil:
			lg.Warn("orphaned local objects will not be collected", "err", err)
		case other != "":
			lg.Warn("the local backend directory is also used by another node: orphaned local objects will not be collected",
				"other", other)
		default:
			objectOrphans = true
		}
	}
	if n.scrub, err = repair.NewScrubber(repair.ScrubConfig{ID: id, Rate: cfg.ScrubRate, Pause: cfg.ScrubPause, Chunks: n.chunks,
		State: n.fsm, Data: n.data, Objects: scrubObjects, ObjectOrphans: objectOrphans, OrphanGrace: cfg.OrphanGrace, Barrier: n.prop.ReadBarrier,
		Bytes: m.scrubBytes, Corrupt: m.scrubCorrupt, Missing: m.scrubMissing, Repaired: m.scrubRepaired, Passes: m.scrubPasses,
		Orphans: m.scrubOrphans, OrphanBytes: m.scrubOrphanBytes, Logger: lg}); err != nil {
		return err
	}
	if n.rebal, err = repair.NewRebalancer(repair.RebalanceConfig{ID: id, State: n.fsm, Data: n.data, Placement: n.place,
		Proposer: n.prop, IsLeader: n.raft.IsLeader, Rate: cfg.RebalanceRate, Bytes: m.rebalanceBytes,
		Moves: m.rebalanceMoves, Failed: m.rebalanceFailed, Logger: lg}); err != nil {
		return err
	}
	// Handlers are registered here, explicitly; a new task type is a new
	// handler and one line.
	handlers := []tasks.Handler{
		tasks.NewTier(tasks.TierConfig{ID: id, LocalBackend: cfg.Backend.isLocal(), State: n.fsm, Data: n.data, Placement: n.place,
			Objects: n.backend, TieredBytes: m.tieredBytes, Logger: lg}),
		tasks.NewGC(n.data),
		tasks.NewDelete(tasks.DeleteConfig{State: n.fsm, Data: n.data, Objects: n.backend}),
		rep,
	}
	handlers = append(handlers, n.rebal.Handlers()...)
	if cfg.WebhookURL != "" {
		handlers = append(handlers, tasks.NewWebhook(cfg.WebhookURL, []byte(cfg.WebhookSecret), &http.Client{Timeout: 10 * time.Second}))
	}
	if n.tasks, err = tasks.New(tasks.Config{ID: id, Workers: cfg.TaskWorkers, Lease: cfg.TaskLease, Poll: cfg.TaskPoll,
		Handlers: handlers, Ready: n.mem.Registered, State: n.fsm, Proposer: n.prop, Uploads: n.data, Runs: m.taskRuns,
		Logger: lg}); err != nil {
		return err
	}
	n.api, err = httpapi.New(httpapi.Config{Cluster: clusterAPI{n.mem, n.health}, Internal: internalAPI{n.prop, n.mem},
		Storage: storageAPI{n.data, cfg.Build}, Metadata: metadataService{n}, Keys: keysAPI{n.fsm, n.prop}, Tasks: n.tasks, Replicas: n.data, APIKeys: cfg.APIKeys, Registry: n.registry, MetricsRequireKey: cfg.MetricsRequireKey,
		Dedup: n.data, NoResumeMD5: cfg.NoResumeMD5,
		Logger: lg, Limits: cfg.Limits, PeerTLS: peerTLS})
	if err != nil || n.s3Ln == nil {
		return err
	}
	// The S3 front door: the same data path and metadata behind s3api's
	// protocol layer.
	gw, err := s3gw.New(s3gw.Config{State: n.fsm, Proposer: n.prop, Data: n.data, UIDs: n.mem,
		MaxPartSize: cfg.Limits.MaxChunkSize, Logger: lg})
	if err != nil {
		return err
	}
	n.s3 = gw
	scfg := s3api.Config{Region: cfg.S3.Region, Credentials: s3api.StaticCredentials(cfg.S3.Credentials),
		Logger: lg.With("component", "s3api"), VirtualHostSuffixes: cfg.S3.Domains}
	if err := scfg.Validate(); err != nil {
		return err
	}
	n.s3Srv = &http.Server{Handler: s3api.NewHandler(gw, scfg), ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout: 2 * time.Minute, BaseContext: func(net.Listener) context.Context { return n.ctx },
		ErrorLog: slog.NewLogLogger(lg.Handler(), slog.LevelDebug)}
	return nil
}

// serveTLS wraps a listener in TLS when the node has a certificate:
// clients may present one (node-to-node calls do, and the internal
// routes require it), ordinary API clients need none.
func (n *Node) serveTLS(ln net.Listener) net.Listener {
	if n.tls == nil {
		return ln
	}
	return tls.NewListener(ln, n.tls.ServerConfig(tls.VerifyClientCertIfGiven))
}

// ReloadTLS reads the certificate, key and CA files again (SIGHUP): new
// connections use them; on error the current ones stay. Without TLS it
// does nothing.
func (n *Node) ReloadTLS() error {
	if n.tls == nil {
		return nil
	}
	return n.tls.Reload()
}

// TLS reports whether the node serves and calls its peers over TLS.
func (n *Node) TLS() bool { return n.tls != nil }

// ID returns the node id.
func (n *Node) ID() string { return n.id }

// S3Addr returns the S3 API's listen address, "" when it is off.
func (n *Node) S3Addr() string {
	if n.s3Ln == nil {
		return ""
	}
	return n.s3Ln.Addr().String()
}

// S3 is the S3 gateway behind the S3 listener (nil when it is off), for
// tests and tools.
func (n *Node) S3() *s3gw.Gateway { return n.s3 }

// HTTPAddr returns the advertised HTTP address.
func (n *Node) HTTPAddr() string { return n.httpAddr }

// RaftAddr returns the advertised raft address.
func (n *Node) RaftAddr() string { return n.raftAddr }

// FSM exposes the state machine to tests.
func (n *Node) FSM() *fsm.FSM { return n.fsm }

// Raft exposes the raft store to tests.
func (n *Node) Raft() *raftstore.Store { return n.raft }

// Storage is the node's data path (uploads, downloads, copies: what the
// HTTP API's storage routes call), for tests and tools.
func (n *Node) Storage() *datapath.Path { return n.data }

// Cluster is the node's membership (status, join, removal, uid minting:
// what the HTTP API's cluster routes call), for tests and tools.
func (n *Node) Cluster() *membership.Membership { return n.mem }

// Apply proposes an FSM command through the leader and decodes its result
// into out. It is how tools and tests drive the state machine directly.
func (n *Node) Apply(ctx context.Context, t fsm.CommandType, payload, out any) error {
	return n.prop.Apply(ctx, t, payload, out)
}

// IsLeader reports whether this node leads.
func (n *Node) IsLeader() bool { return n.raft.IsLeader() }

// Err returns a channel that receives a fatal error (for example a refused
// join token) that needs the operator's attention.
func (n *Node) Err() <-chan error { return n.mem.Err() }

// JoinTokenPath is where a bootstrapping node keeps a generated token.
func (n *Node) JoinTokenPath() string { return filepath.Join(n.cfg.DataDir, "join-token") }

// Start serves HTTP and brings the node into a cluster in the background:
// it bootstraps, joins or simply resumes, as Config and the data dir say.
// Every loop runs under the node's context and is waited for by Close.
func (n *Node) Start(ctx context.Context) error {
	n.startOnce.Do(func() {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := n.httpSrv.Serve(n.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				n.log.Error("http server stopped", "err", err)
			}
		}()
		if n.s3Srv != nil {
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				if err := n.s3Srv.Serve(n.s3Ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
					n.log.Error("s3 api server stopped", "err", err)
				}
			}()
			n.log.Info("s3 api listening", "addr", n.s3Ln.Addr().String())
		}
		n.log.Info("node started", "http", n.httpAddr, "raft", n.raftAddr, "has_state", n.raft.HasState())
		if n.tls != nil {
			n.wg.Add(1)
			go func() { defer n.wg.Done(); n.tls.Watch(n.ctx, n.cfg.TLSReloadEvery) }()
		}
		for _, run := range []func(context.Context){
			n.mem.Run,    // form or join, registration, leader housekeeping, liveness
			n.scrub.Run,  // verify staged copies
			n.rebal.Run,  // plan moves to new ring owners (leader)
			n.tasks.Run,  // background task queue
			n.health.Run, // backend reachability
		} {
			n.wg.Add(1)
			go func() { defer n.wg.Done(); run(n.ctx) }()
		}
	})
	return nil
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
		// lets in-flight handlers answer 503 rather than hang, and stops
		// every component loop; the proposer stops retrying.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n.cancel(ErrShuttingDown)
		n.prop.Close()
		for _, srv := range []*http.Server{n.httpSrv, n.s3Srv} {
			if srv == nil {
				continue
			}
			if !graceful {
				_ = srv.Close()
			} else if err := srv.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("node: http shutdown: %w", err))
				_ = srv.Close()
			}
		}
		cancel()
		// 2-4. raftstore.Close transfers leadership first (so the cluster
		// does not wait an election timeout), then closes the transport.
		// Its log lives in the chunk store, closed below.
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
		// 5. The chunk store and the metadata store close last: raft
		// (which applies to the FSM) and every request are done.
		if err := n.chunks.Close(); err != nil {
			errs = append(errs, err)
		}
		if err := n.fsm.Close(); err != nil {
			errs = append(errs, err)
		}
		// 6. Backends last of all.
		if err := n.backend.Close(); err != nil {
			errs = append(errs, err)
		}
		n.peers.CloseIdleConnections()
		// 7. The data dir is free for another process only now.
		n.lock.release()
		n.closeErr = errors.Join(errs...)
		n.log.Info("node stopped")
	})
	return n.closeErr
}
