package httpapi

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/http/pprof"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/tlsconf"
)

// Prefix is the storage API's path prefix.
const Prefix = "/api/storage/v0"

// Header names.
const (
	HeaderRequestID = "X-Request-Id"
	// HeaderNodeAuth carries node-to-node credentials (NodeAuthToken).
	HeaderNodeAuth = "X-Osprey-Node-Auth"
	// HeaderForwarded marks a request forwarded to the leader, so a request
	// never bounces between nodes.
	HeaderForwarded = "X-Osprey-Forwarded"
	// HeaderChunkGen carries a chunk copy's generation in the reply to
	// HEAD /internal/v1/chunks/...
	HeaderChunkGen = "X-Osprey-Chunk-Gen"
	// HeaderObjectVersion carries an object copy's version in the reply to
	// HEAD /internal/v1/objects/...
	HeaderObjectVersion = "X-Osprey-Object-Version"
	// HeaderChunkSums, sent as "xxh64" with a download, asks for the
	// xxhash64 sums of the chunks the served range overlaps; the answer
	// carries them as "offset:size:sum" items (decimal, decimal, 16 hex
	// digits) separated by commas, or no such header when they are not
	// known (files tiered by earlier builds, or single-chunk files).
	HeaderChunkSums = "X-Osprey-Chunk-Sums"
)

// Cluster is what the cluster admin routes need from a node.
type Cluster interface {
	// Status reports this node's view of the cluster.
	Status(ctx context.Context) (ClusterStatus, error)
	// Nodes lists members with live reachability.
	Nodes(ctx context.Context) ([]NodeInfo, error)
	// Join adds a node; leader only (ErrNotLeader otherwise). It returns
	// ErrForbidden for a bad token.
	Join(ctx context.Context, req JoinRequest) (JoinResult, error)
	// Remove removes a member; leader only.
	Remove(ctx context.Context, id string) error
	// TransferLeadership hands leadership to id, or to any follower if "".
	TransferLeadership(ctx context.Context, id string) error
	// NotReady lists the reasons this node is not ready (empty when ready).
	NotReady(ctx context.Context) []string
	// IsLeader reports whether this node is the raft leader.
	IsLeader() bool
	// LeaderHTTP returns the leader's advertised HTTP address, "" if unknown.
	LeaderHTTP() string
}

// Internal is what the node-to-node routes need.
type Internal interface {
	// NodeAuthToken returns the credential other nodes must present; ""
	// until the cluster secret is known.
	NodeAuthToken() string
	// ApplyEncoded applies an encoded FSM command on the leader and returns
	// the JSON-encoded result. ErrNotLeader on a follower.
	ApplyEncoded(ctx context.Context, cmd []byte) ([]byte, error)
	// ReadIndex confirms leadership and returns an index every read must
	// wait for. ErrNotLeader on a follower.
	ReadIndex(ctx context.Context) (uint64, error)
	// BootstrapInfo describes this node for --bootstrap-expect discovery.
	BootstrapInfo() BootstrapInfo
	// CheckJoinToken reports whether token is this node's configured token.
	CheckJoinToken(token string) bool
}

// ClusterStatus is the reply of GET /cluster/status.
type ClusterStatus struct {
	ID           string     `json:"id"`
	ClusterID    string     `json:"cluster_id"`
	State        string     `json:"state"`
	Leader       LeaderInfo `json:"leader"`
	Term         uint64     `json:"term"`
	CommitIndex  uint64     `json:"commit_index"`
	AppliedIndex uint64     `json:"applied_index"`
	FSMHash      string     `json:"fsm_hash"`
	FSMIndex     uint64     `json:"fsm_index"`
	// Version is the running binary's version, commit, build date and Go
	// version.
	Version map[string]string `json:"version,omitempty"`
	Members []MemberInfo      `json:"members"`
	Storage *StorageInfo      `json:"storage,omitempty"`
}

// StorageInfo summarises staged-data protection and background work.
type StorageInfo struct {
	Redundancy     string         `json:"redundancy"`
	Backend        string         `json:"backend"`
	Files          int            `json:"files"`
	StagedCopies   int            `json:"staged_copies"`
	UnderProtected int            `json:"under_protected"`
	Tasks          map[string]int `json:"tasks"`
	// Protection is "full", or "degraded" while a member is unreachable or
	// down or staged copies are under-protected.
	Protection string `json:"protection"`
	// Degraded lists the members that cost protection now.
	Degraded []DegradedMember `json:"degraded,omitempty"`
	// Rebalance is the progress of moving copies to new ring owners
	// after membership changes; absent before the first move.
	Rebalance *RebalanceInfo `json:"rebalance,omitempty"`
}

// RebalanceInfo reports rebalancing, cluster-wide.
type RebalanceInfo struct {
	// PendingMoves are queued and not finished.
	PendingMoves int64 `json:"pending_moves"`
	// MovedCopies and MovedBytes count recorded moves since the cluster
	// began; PlannedMoves counts the queued ones.
	PlannedMoves int64 `json:"planned_moves"`
	MovedCopies  int64 `json:"moved_copies"`
	MovedBytes   int64 `json:"moved_bytes"`
	// Members is the member set last planned for.
	Members []string `json:"members,omitempty"`
	// StartedAt is when the current (or last) round began.
	StartedAt *time.Time `json:"started_at,omitempty"`
}

// DegradedMember is a member that is unreachable from the reporting node,
// or marked down by the leader (its copies are being rebuilt elsewhere).
type DegradedMember struct {
	ID               string     `json:"id"`
	UnreachableSince *time.Time `json:"unreachable_since,omitempty"`
	// Down is true once the member was unreachable past --repair-grace:
	// repairs of its copies are queued.
	Down bool `json:"down"`
	// RepairAt is when repairs start if it stays unreachable (absent when
	// down already, or when --repair-grace is 0: only a removal repairs).
	RepairAt *time.Time `json:"repair_at,omitempty"`
}

// LeaderInfo names the leader.
type LeaderInfo struct {
	ID       string `json:"id"`
	HTTPAddr string `json:"http_addr"`
	RaftAddr string `json:"raft_addr"`
}

// MemberInfo is a raft member joined with its FSM record.
type MemberInfo struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	Suffrage string `json:"suffrage"`
	WorkerID *int64 `json:"worker_id"`
}

// NodeInfo is a row of GET /cluster/nodes.
type NodeInfo struct {
	MemberInfo
	Leader    bool    `json:"leader"`
	Reachable bool    `json:"reachable"`
	RTTMillis float64 `json:"rtt_ms"`
	Error     string  `json:"error,omitempty"`
}

// JoinRequest is the body of POST /cluster/join.
type JoinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	Token    string `json:"token"`
	// Level is the joining build's fsm.FeatureLevel (0 from builds before
	// levels existed).
	Level uint32 `json:"level,omitempty"`
}

// JoinResult is the reply to a successful join.
type JoinResult struct {
	ClusterID string `json:"cluster_id"`
	Leader    string `json:"leader"`
}

// BootstrapInfo is exchanged by nodes started with --bootstrap-expect.
type BootstrapInfo struct {
	ID        string `json:"id"`
	RaftAddr  string `json:"raft_addr"`
	HTTPAddr  string `json:"http_addr"`
	HasState  bool   `json:"has_state"`
	ClusterID string `json:"cluster_id"`
	Leader    string `json:"leader"`
}

// Config configures a Server.
type Config struct {
	// Cluster serves the cluster routes. Required.
	Cluster Cluster
	// Internal serves node-to-node routes. Required.
	Internal Internal
	// Storage serves the storage API; nil leaves those routes out.
	Storage Storage
	// Tasks serves the task queue routes; nil leaves them out.
	Tasks Tasks
	// Replicas serves node-to-node object copies; nil leaves them out.
	Replicas Replicas
	// Metadata serves metadata backup and restore; nil leaves them out.
	Metadata Metadata
	// Keys stores scoped API keys; nil leaves /cluster/keys out and only
	// APIKeys authenticate.
	Keys Keys
	// Dedup serves proof-of-possession instant upload; nil leaves those
	// routes out (they need Storage too).
	Dedup Dedup
	// NoResumeMD5 makes /resume answer uid "" for every item, so clients
	// upload: md5-only dedup hands content to anyone who knows an md5
	// (--dedup-resume-md5=false).
	NoResumeMD5 bool
	// APIKeys authorises business endpoints. Empty means protected mode:
	// only loopback clients may call them.
	APIKeys []string
	// Registry receives the HTTP metrics and is served on /metrics.
	Registry *prometheus.Registry
	// MetricsRequireKey makes /metrics a business route (an API key, or
	// loopback in protected mode) instead of open to anyone who can reach
	// the port.
	MetricsRequireKey bool
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Limits for request bodies and links.
	Limits Limits
	// PeerTLS, set when the node runs TLS, gives the config for calling the
	// peer named serverName (requests forwarded to the leader go over
	// https with it, redirects name https), and node credentials then
	// count only on a connection whose client certificate verified against
	// the cluster CA. nil means plain http.
	PeerTLS func(serverName string) *tls.Config
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	if c.Cluster == nil || c.Internal == nil || c.Registry == nil {
		return errors.New("httpapi: Cluster, Internal and Registry are required")
	}
	for _, k := range c.APIKeys {
		if len(k) < 8 {
			return errors.New("httpapi: API keys must be at least 8 characters")
		}
	}
	return c.Limits.Validate()
}

// Server is the HTTP handler of one node.
type Server struct {
	cfg     Config
	log     *slog.Logger
	router  *httprouter.Router
	reqs    *prometheus.CounterVec
	latency *prometheus.HistogramVec
	client  *http.Client
	uploads *clientSlots
	// scheme and peerTransport reach other nodes: "http" and the default
	// transport, or "https" and one that dials with Config.PeerTLS.
	scheme        string
	peerTransport http.RoundTripper
}

// New builds the handler and registers its metrics.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.Default()
	}
	s := &Server{cfg: cfg, log: lg.With("component", "httpapi"), router: httprouter.New(),
		client: &http.Client{Timeout: 30 * time.Second}, uploads: newClientSlots(cfg.Limits.MaxUploadsPerClient),
		scheme: "http", peerTransport: http.DefaultTransport}
	if cfg.PeerTLS != nil {
		s.scheme = "https"
		s.peerTransport = tlsconf.Transport(nil, &net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}, cfg.PeerTLS)
	}
	s.reqs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "osprey_http_requests_total",
		Help: "HTTP requests by route, method and status."}, []string{"route", "method", "code"})
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "osprey_http_request_duration_seconds",
		Help: "HTTP request latency by route.", Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14)}, []string{"route"})
	if err := cfg.Registry.Register(s.reqs); err != nil {
		return nil, fmt.Errorf("httpapi: register metrics: %w", err)
	}
	if err := cfg.Registry.Register(s.latency); err != nil {
		return nil, fmt.Errorf("httpapi: register metrics: %w", err)
	}
	if len(cfg.APIKeys) == 0 {
		s.log.Warn("no API keys configured: protected mode, business endpoints answer loopback clients only")
	}
	s.routes()
	return s, nil
}

type access int

const (
	open     access = iota // anyone
	business               // an admin: static API key (or loopback in protected mode); scoped keys get 403
	node                   // node-to-node credential
	read                   // any API key, scoped ones included
	write                  // any API key but a read-only scoped one
	signed                 // open (a signed link authorises it), but a read-only scoped key presented gets 403
)

func (s *Server) handle(method, path string, a access, h http.HandlerFunc) {
	var wrapped http.Handler = h
	switch a {
	case business, read, write:
		wrapped = s.authenticate(a, h)
	case signed:
		wrapped = s.refuseReadOnly(h)
	case node:
		wrapped = s.requireNode(h)
	}
	s.router.Handler(method, path, s.instrument(path, wrapped))
}

func (s *Server) routes() {
	r := s.router
	r.HandleMethodNotAllowed = true
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.withRequestID(w, req, func(w http.ResponseWriter, req *http.Request) {
			s.writeError(w, req, fmt.Errorf("%w: no route %s %s", osprey.ErrNotFound, req.Method, req.URL.Path))
		})
	})
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.withRequestID(w, req, func(w http.ResponseWriter, req *http.Request) {
			s.writeError(w, req, fmt.Errorf("%w: %s %s", errMethodNotAllowed, req.Method, req.URL.Path))
		})
	})
	r.PanicHandler = func(w http.ResponseWriter, req *http.Request, v any) {
		if v == http.ErrAbortHandler { //nolint:errorlint // sentinel compared by identity, as net/http does
			panic(v) // let net/http abort the connection
		}
		s.writeError(w, req, fmt.Errorf("panic: %v", v))
	}

	s.handle(http.MethodGet, Prefix+"/ping", open, s.handlePing)
	s.handle(http.MethodGet, Prefix+"/health", open, s.handlePing)
	s.handle(http.MethodGet, "/livez", open, s.handlePing)
	s.handle(http.MethodGet, "/readyz", open, s.handleReady)
	if metrics := promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{}); s.cfg.MetricsRequireKey {
		r.Handler(http.MethodGet, "/metrics", s.requireAPIKey(metrics.ServeHTTP))
	} else {
		r.Handler(http.MethodGet, "/metrics", metrics)
	}
	s.handle(http.MethodGet, "/openapi.json", open, s.handleOpenAPI)
	// Profiling for operators (API key, or loopback in protected mode).
	s.handle(http.MethodGet, "/debug/pprof/", business, pprof.Index)
	s.handle(http.MethodGet, "/debug/pprof/profile", business, pprof.Profile)
	s.handle(http.MethodGet, "/debug/pprof/heap", business, pprof.Handler("heap").ServeHTTP)
	s.handle(http.MethodGet, "/debug/pprof/allocs", business, pprof.Handler("allocs").ServeHTTP)
	s.handle(http.MethodGet, "/debug/pprof/goroutine", business, pprof.Handler("goroutine").ServeHTTP)
	s.handle(http.MethodGet, "/debug/pprof/block", business, s.contentionProfile("block"))
	s.handle(http.MethodGet, "/debug/pprof/mutex", business, s.contentionProfile("mutex"))

	s.handle(http.MethodGet, "/cluster/status", business, s.handleClusterStatus)
	s.handle(http.MethodGet, "/cluster/nodes", business, s.handleClusterNodes)
	// Joining is authorised by the join token in the body, not an API key:
	// a new node has none.
	s.handle(http.MethodPost, "/cluster/join", open, s.leaderOnly(s.handleClusterJoin))
	s.handle(http.MethodDelete, "/cluster/nodes/:id", business, s.leaderOnly(s.handleClusterRemove))
	s.handle(http.MethodPost, "/cluster/leader-transfer", business, s.leaderOnly(s.handleLeaderTransfer))
	if s.cfg.Metadata != nil {
		s.handle(http.MethodGet, "/cluster/backup", business, s.leaderOnly(s.handleBackup))
		s.handle(http.MethodPost, "/cluster/restore", business, s.leaderOnly(s.handleRestore))
		s.handle(http.MethodPost, "/cluster/snapshot", business, s.handleSnapshot)
	}

	s.handle(http.MethodPost, "/internal/v1/apply", node, s.handleInternalApply)
	s.handle(http.MethodGet, "/internal/v1/readindex", node, s.handleInternalReadIndex)
	s.handle(http.MethodGet, "/internal/v1/bootstrap-info", open, s.handleBootstrapInfo)

	if s.cfg.Keys != nil {
		s.keyRoutes()
	}
	if s.cfg.Storage != nil {
		s.storageRoutes()
	}
	if s.cfg.Tasks != nil {
		s.taskRoutes()
	}
	if s.cfg.Replicas != nil {
		s.replicaRoutes()
	}
	s.consoleRoutes()
}

// ServeHTTP makes Server an http.Handler. The request id is set here so
// that every reply carries it (SPEC §1), including those the router writes
// without a registered handler (/metrics, OPTIONS, redirects, panics).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.withRequestID(w, r, s.router.ServeHTTP)
}

// statusRecorder captures the status for metrics and logs.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// ReadFrom keeps net/http's ReadFrom reachable through the recorder, so a
// body copied from a file goes out by sendfile(2).
func (r *statusRecorder) ReadFrom(src io.Reader) (int64, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{r.ResponseWriter}, src)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (s *Server) withRequestID(w http.ResponseWriter, r *http.Request, next http.HandlerFunc) {
	if RequestID(r.Context()) != "" { // already set by ServeHTTP
		next(w, r)
		return
	}
	id := r.Header.Get(HeaderRequestID)
	if id == "" || len(id) > 128 {
		id = newRequestID()
	}
	w.Header().Set(HeaderRequestID, id)
	// No response of this API is to be content-sniffed into something
	// else (downloads add a sandbox CSP on top, see handleDownload).
	w.Header().Set("X-Content-Type-Options", "nosniff")
	next(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
}

func (s *Server) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		s.withRequestID(rec, r, h.ServeHTTP)
		switch {
		case errors.Is(context.Cause(r.Context()), context.Canceled):
			// The client went away before the handler finished: whatever
			// it answered (often nothing, or a body cut short) did not
			// reach it. Counted apart, as nginx's 499.
			rec.status = StatusClientClosed
		case rec.status == 0:
			rec.status = http.StatusOK
		}
		s.reqs.WithLabelValues(route, r.Method, strconv.Itoa(rec.status)).Inc()
		s.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
		s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"dur", time.Since(start), "request_id", w.Header().Get(HeaderRequestID))
	})
}

// StatusClientClosed is the status recorded in metrics and logs for a
// request whose client went away before it was answered.
const StatusClientClosed = 499

func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// requireAPIKey admits admins only (static key, loopback in protected
// mode, node credentials).
func (s *Server) requireAPIKey(h http.HandlerFunc) http.HandlerFunc {
	return s.authenticate(business, h)
}

// authenticate establishes who the request acts for (principal), checks
// that it may use a route of access a, and hands the Principal on in the
// request's context (osprey.PrincipalFrom).
func (s *Server) authenticate(a access, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.principal(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := allowed(p, a); err != nil {
			s.writeError(w, r, err)
			return
		}
		if p.Scoped() {
			r = r.WithContext(osprey.WithPrincipal(r.Context(), p))
		}
		h(w, r)
	}
}

// allowed reports whether p may call a route of access a.
func allowed(p osprey.Principal, a access) error {
	switch {
	case !p.Scoped():
		return nil
	case a == business:
		return fmt.Errorf("%w: scoped API key %s may not call admin routes", osprey.ErrForbidden, p.KeyID)
	case a == write && p.ReadOnly:
		return fmt.Errorf("%w: API key %s is read-only", osprey.ErrForbidden, p.KeyID)
	}
	return nil
}

// refuseReadOnly guards the upload routes a signed link authorises: a
// read-only scoped key presented with one is refused (a key that cannot
// write never writes), any other caller is left to the link.
func (s *Server) refuseReadOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if ok && s.cfg.Keys != nil && strings.HasPrefix(key, ScopedKeyPrefix) && !s.isStaticKey(key) {
			p, err := s.scopedPrincipal(key)
			if err == nil {
				err = allowed(p, write)
			}
			if err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		h(w, r)
	}
}

func (s *Server) isStaticKey(key string) bool {
	found := 0
	for _, k := range s.cfg.APIKeys {
		found |= subtle.ConstantTimeCompare([]byte(k), []byte(key))
	}
	return found == 1
}

// principal authenticates r: a static API key, node credentials or (in
// protected mode) a loopback client is the zero Principal, an admin; a
// scoped key (osk_…) is looked up in this node's state.
func (s *Server) principal(r *http.Request) (osprey.Principal, error) {
	auth := r.Header.Get("Authorization")
	key, ok := strings.CutPrefix(auth, "Bearer ")
	if ok && key != "" && s.cfg.Keys != nil && strings.HasPrefix(key, ScopedKeyPrefix) && !s.isStaticKey(key) {
		return s.scopedPrincipal(key)
	}
	if len(s.cfg.APIKeys) == 0 {
		if !isLoopback(r.RemoteAddr) && !s.validNodeAuth(r) {
			return osprey.Principal{}, fmt.Errorf("%w: protected mode (no API keys configured): only loopback clients and scoped keys are served", osprey.ErrForbidden)
		}
		return osprey.Principal{}, nil
	}
	if !ok || key == "" {
		if s.validNodeAuth(r) {
			return osprey.Principal{}, nil
		}
		return osprey.Principal{}, fmt.Errorf("%w: missing API key (Authorization: Bearer <key>)", osprey.ErrUnauthorized)
	}
	if s.isStaticKey(key) {
		return osprey.Principal{}, nil
	}
	return osprey.Principal{}, fmt.Errorf("%w: unknown API key", osprey.ErrForbidden)
}

func (s *Server) validNodeAuth(r *http.Request) bool {
	want := s.cfg.Internal.NodeAuthToken()
	got := r.Header.Get(HeaderNodeAuth)
	if s.cfg.PeerTLS != nil && (r.TLS == nil || len(r.TLS.VerifiedChains) == 0) {
		// With TLS, a node also proves itself with a certificate of the
		// cluster CA (the listener verified any it was given).
		return false
	}
	return want != "" && got != "" && subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}

func (s *Server) requireNode(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.validNodeAuth(r) {
			s.writeError(w, r, fmt.Errorf("%w: node credentials required", osprey.ErrForbidden))
			return
		}
		h(w, r)
	}
}

// NodeAuthToken derives the node-to-node credential from the cluster
// secret, so every member knows it once it has the replicated state.
func NodeAuthToken(secret []byte) string {
	if len(secret) == 0 {
		return ""
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("osprey node rpc v1"))
	return hex.EncodeToString(m.Sum(nil))
}

// leaderOnly forwards the request to the leader when this node is a
// follower, or answers 307 to the leader when ?redirect is present.
func (s *Server) leaderOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Cluster.IsLeader() {
			h(w, r)
			return
		}
		leader := s.cfg.Cluster.LeaderHTTP()
		if leader == "" || r.Header.Get(HeaderForwarded) != "" {
			s.writeError(w, r, fmt.Errorf("%w: no leader", osprey.ErrUnavailable))
			return
		}
		if _, ok := r.URL.Query()["redirect"]; ok {
			s.redirectToLeader(w, r, leader)
			return
		}
		target := &url.URL{Scheme: s.scheme, Host: leader}
		proxy := &httputil.ReverseProxy{Transport: s.peerTransport,
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				pr.Out.Host = leader
				pr.Out.Header.Set(HeaderForwarded, "1")
				pr.Out.Header.Set(HeaderRequestID, RequestID(r.Context()))
				// This node has authorised the request; vouch for it, or
				// a leader in protected mode refuses a non-loopback peer.
				if tok := s.cfg.Internal.NodeAuthToken(); tok != "" {
					pr.Out.Header.Set(HeaderNodeAuth, tok)
				}
			},
			ModifyResponse: func(resp *http.Response) error {
				// The leader echoes the request id this reply already
				// carries; copying it would send the header twice.
				resp.Header.Del(HeaderRequestID)
				return nil
			},
			ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
				// The forwarded request may or may not have reached the
				// leader; a dial failure certainly did not.
				var op *net.OpError
				if errors.As(err, &op) && op.Op == "dial" {
					s.writeError(w, req, fmt.Errorf("%w: leader unreachable: %w", osprey.ErrUnavailable, err))
					return
				}
				s.writeError(w, req, fmt.Errorf("%w: forwarding to leader: %w", osprey.ErrIndeterminate, err))
			},
		}
		proxy.ServeHTTP(w, r)
	}
}

// redirectable wraps a metadata write that any node can serve (the raft
// command is forwarded to the leader internally): with ?redirect, a
// follower answers 307 to the leader instead, for clients that prefer to
// talk to the leader themselves.
func (s *Server) redirectable(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.URL.Query()["redirect"]; ok && !s.cfg.Cluster.IsLeader() {
			leader := s.cfg.Cluster.LeaderHTTP()
			if leader == "" {
				s.writeError(w, r, fmt.Errorf("%w: no leader", osprey.ErrUnavailable))
				return
			}
			s.redirectToLeader(w, r, leader)
			return
		}
		h(w, r)
	}
}

func (s *Server) redirectToLeader(w http.ResponseWriter, r *http.Request, leader string) {
	u := *r.URL
	u.Scheme, u.Host = s.scheme, leader
	w.Header().Set("Location", u.String())
	writeJSON(w, r, http.StatusTemporaryRedirect, Envelope{Code: CodeOK, Message: "redirect to leader " + leader})
}
