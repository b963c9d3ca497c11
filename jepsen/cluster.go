package jepsen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/osprey-storage/osprey/tlsconf"
)

// ProcState is what the harness did to a process last.
type ProcState string

// Process states.
const (
	ProcRunning ProcState = "running"
	ProcKilled  ProcState = "killed"
	ProcPaused  ProcState = "paused"
	ProcStopped ProcState = "stopped" // exited on its own or shut down at the end
)

// Proc is one real process the harness owns: an osprey node or MinIO. It
// is always started with the same command line, so a restart after kill -9
// is exactly what an operator's supervisor would do.
type Proc struct {
	Name    string   // "n1", "minio"
	Member  string   // network member (namespace) name, "" without namespaces
	Argv    []string // program and arguments
	Env     []string // extra environment
	LogPath string   // stdout and stderr of every incarnation, appended
	ReadyRE string   // stdout prefix announcing readiness ("" = none)

	net *Network

	mu      sync.Mutex
	cmd     *exec.Cmd
	state   ProcState
	starts  int
	readyC  chan struct{} // closed when the current incarnation is ready
	exitedC chan struct{} // closed when the current incarnation exits
	since   time.Time     // when state last changed
}

// Start launches a new incarnation. It returns once the process runs; use
// WaitReady for readiness.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && p.state != ProcKilled && p.state != ProcStopped {
		return fmt.Errorf("jepsen: %s already running", p.Name)
	}
	var cmd *exec.Cmd
	if p.net != nil && p.Member != "" {
		cmd = p.net.Command(p.Member, p.Argv...)
	} else {
		cmd = exec.Command(p.Argv[0], p.Argv[1:]...)
	}
	cmd.Env = append(os.Environ(), p.Env...)
	// Own process group: a Ctrl-C on the harness's terminal must not
	// reach the nodes; the harness stops them itself, in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("jepsen: %s log: %w", p.Name, err)
	}
	p.starts++
	fmt.Fprintf(logf, "=== jepsen: start #%d of %s at %s: %s\n", p.starts, p.Name, time.Now().Format(time.RFC3339Nano), strings.Join(cmd.Args, " "))
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return fmt.Errorf("jepsen: %s stdout: %w", p.Name, err)
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("jepsen: start %s: %w", p.Name, err)
	}
	readyC, exitedC := make(chan struct{}), make(chan struct{})
	p.cmd, p.state, p.readyC, p.exitedC, p.since = cmd, ProcRunning, readyC, exitedC, time.Now()
	if p.ReadyRE == "" {
		close(readyC)
	}
	go p.pump(stdout, logf, readyC)
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(logf, "=== jepsen: %s exited at %s: %v\n", p.Name, time.Now().Format(time.RFC3339Nano), err)
		logf.Close()
		p.mu.Lock()
		if p.cmd == cmd && p.state == ProcRunning {
			p.state, p.since = ProcStopped, time.Now()
		}
		p.mu.Unlock()
		close(exitedC)
	}()
	return nil
}

// pump copies stdout into the log and watches for the readiness line.
func (p *Proc) pump(r io.Reader, w io.Writer, readyC chan struct{}) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	ready := p.ReadyRE == ""
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(w, line)
		if !ready && strings.HasPrefix(line, p.ReadyRE) {
			ready = true
			close(readyC)
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

// WaitReady blocks until the current incarnation announced readiness, it
// exited, or ctx ends.
func (p *Proc) WaitReady(ctx context.Context) error {
	p.mu.Lock()
	readyC, exitedC := p.readyC, p.exitedC
	p.mu.Unlock()
	if readyC == nil {
		return fmt.Errorf("jepsen: %s never started", p.Name)
	}
	select {
	case <-readyC:
		return nil
	case <-exitedC:
		select {
		case <-readyC:
			return nil
		default:
		}
		return fmt.Errorf("jepsen: %s exited before it was ready (see %s)", p.Name, p.LogPath)
	case <-ctx.Done():
		return fmt.Errorf("jepsen: %s not ready: %w", p.Name, ctx.Err())
	}
}

// State returns the process state and since when it holds.
func (p *Proc) State() (ProcState, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state, p.since
}

// Ready reports whether the current incarnation is running and announced
// readiness.
func (p *Proc) Ready() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != ProcRunning || p.readyC == nil {
		return false
	}
	select {
	case <-p.readyC:
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL (also to a paused process) and waits for the exit.
func (p *Proc) Kill() error {
	return p.signalAndWait(syscall.SIGKILL, ProcKilled, 10*time.Second)
}

// Stop asks the process to shut down with SIGTERM, and kills it after grace.
func (p *Proc) Stop(grace time.Duration) error {
	p.mu.Lock()
	cmd, exitedC, state := p.cmd, p.exitedC, p.state
	p.mu.Unlock()
	if cmd == nil || state == ProcKilled || state == ProcStopped {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGCONT)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exitedC:
		p.setState(cmd, ProcStopped)
		return nil
	case <-time.After(grace):
	}
	return p.signalAndWait(syscall.SIGKILL, ProcStopped, 10*time.Second)
}

func (p *Proc) signalAndWait(sig syscall.Signal, next ProcState, wait time.Duration) error {
	p.mu.Lock()
	cmd, exitedC := p.cmd, p.exitedC
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("jepsen: signal %s: %w", p.Name, err)
	}
	select {
	case <-exitedC:
	case <-time.After(wait):
		return fmt.Errorf("jepsen: %s did not exit after %s", p.Name, sig)
	}
	p.setState(cmd, next)
	return nil
}

func (p *Proc) setState(cmd *exec.Cmd, s ProcState) {
	p.mu.Lock()
	if p.cmd == cmd {
		p.state, p.since = s, time.Now()
	}
	p.mu.Unlock()
}

// Pause sends SIGSTOP.
func (p *Proc) Pause() error { return p.signal(syscall.SIGSTOP, ProcPaused) }

// Resume sends SIGCONT.
func (p *Proc) Resume() error { return p.signal(syscall.SIGCONT, ProcRunning) }

func (p *Proc) signal(sig syscall.Signal, next ProcState) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.state == ProcKilled || p.state == ProcStopped {
		return fmt.Errorf("jepsen: %s is not running", p.Name)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("jepsen: signal %s: %w", p.Name, err)
	}
	p.state, p.since = next, time.Now()
	return nil
}

// Node is one osprey node under test.
type Node struct {
	*Proc
	ID      string // node id, "n1"
	Index   int    // 0-based
	HTTP    string // host:port of the HTTP API
	Raft    string // host:port of the Raft transport
	DataDir string
	Scheme  string // "http", or "https" with TLS
}

// Base returns the node's base URL.
func (n *Node) Base() string { return n.Scheme + "://" + n.HTTP }

// ClusterConfig describes the cluster under test.
type ClusterConfig struct {
	Binary    string      // osprey binary
	Dir       string      // run directory: data dirs and logs go below it
	Nodes     int         // 3 or 5
	APIKey    string      // business-endpoint key
	JoinToken string      // cluster join token
	Net       *Network    // nil: processes on 127.0.0.1 (no network faults)
	Backend   string      // "local" or "s3"
	S3        S3Config    // when Backend is "s3"
	ExtraArgs []string    // appended to every node's command line
	CA        *tlsconf.CA // non-nil: TLS, each node's certificate issued by CA into Dir/tls
}

// S3Config is how nodes reach MinIO.
type S3Config struct {
	Endpoint  string
	AccessKey string
	SecretKey string
}

// Cluster is the set of node processes plus the optional MinIO.
type Cluster struct {
	cfg   ClusterConfig
	Nodes []*Node
	MinIO *Proc
	api   *API
}

// NewCluster lays out nodes (addresses, data dirs, command lines) without
// starting anything.
func NewCluster(cfg ClusterConfig, api *API) (*Cluster, error) {
	c := &Cluster{cfg: cfg, api: api}
	if cfg.Backend == "s3" && cfg.S3.Endpoint == "" {
		// MinIO's address must be known before the nodes' command lines.
		if cfg.Net != nil {
			c.cfg.S3.Endpoint = net.JoinHostPort(cfg.Net.IP("minio"), "9000")
		} else {
			p, err := freePort()
			if err != nil {
				return nil, err
			}
			c.cfg.S3.Endpoint = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		}
		cfg.S3 = c.cfg.S3
	}
	var httpAddrs []string
	for i := 0; i < cfg.Nodes; i++ {
		id := fmt.Sprintf("n%d", i+1)
		n := &Node{ID: id, Index: i, DataDir: filepath.Join(cfg.Dir, "data", id), Scheme: "http"}
		if cfg.CA != nil {
			n.Scheme = "https"
		}
		if cfg.Net != nil {
			ip := cfg.Net.IP(id)
			n.HTTP, n.Raft = net.JoinHostPort(ip, "8080"), net.JoinHostPort(ip, "7000")
		} else {
			hp, err := freePort()
			if err != nil {
				return nil, err
			}
			rp, err := freePort()
			if err != nil {
				return nil, err
			}
			n.HTTP, n.Raft = "127.0.0.1:"+strconv.Itoa(hp), "127.0.0.1:"+strconv.Itoa(rp)
		}
		httpAddrs = append(httpAddrs, n.HTTP)
		c.Nodes = append(c.Nodes, n)
	}
	tlsDir := filepath.Join(cfg.Dir, "tls")
	if cfg.CA != nil {
		if err := os.MkdirAll(tlsDir, 0o700); err != nil {
			return nil, fmt.Errorf("jepsen: %w", err)
		}
	}
	for _, n := range c.Nodes {
		var tlsArgs []string
		if cfg.CA != nil {
			// One certificate per node naming its HTTP and raft IPs.
			hosts := []string{}
			for _, a := range []string{n.HTTP, n.Raft} {
				if h, _, err := net.SplitHostPort(a); err == nil && !slices.Contains(hosts, h) {
					hosts = append(hosts, h)
				}
			}
			f, err := cfg.CA.WriteFiles(tlsDir, n.ID, hosts)
			if err != nil {
				return nil, fmt.Errorf("jepsen: %w", err)
			}
			tlsArgs = []string{"--tls-cert", f.Cert, "--tls-key", f.Key, "--tls-ca", f.CA}
		}
		// Every node gets the same --bootstrap-expect/--join line, on
		// first start and on every restart (SPEC §4).
		argv := []string{cfg.Binary, "server",
			"--node-id", n.ID,
			"--data-dir", n.DataDir,
			"--http-addr", n.HTTP,
			"--raft-addr", n.Raft,
			"--join-token", cfg.JoinToken,
			"--api-keys", cfg.APIKey,
			"--bootstrap-expect", strconv.Itoa(cfg.Nodes),
			"--join", strings.Join(httpAddrs, ","),
		}
		argv = append(argv, tlsArgs...)
		var env []string
		if cfg.Backend == "s3" {
			argv = append(argv, "--backend", "s3", "--s3-endpoint", cfg.S3.Endpoint,
				"--s3-access-key", cfg.S3.AccessKey, "--s3-secret-key", cfg.S3.SecretKey)
			env = append(env, "OSPREY_S3_ACCESS_KEY="+cfg.S3.AccessKey, "OSPREY_S3_SECRET_KEY="+cfg.S3.SecretKey)
		}
		argv = append(argv, cfg.ExtraArgs...)
		n.Proc = &Proc{Name: n.ID, Member: n.ID, Argv: argv, Env: env, net: cfg.Net,
			LogPath: filepath.Join(cfg.Dir, "logs", n.ID+".log"), ReadyRE: "osprey: ready"}
	}
	for _, d := range []string{filepath.Join(cfg.Dir, "data"), filepath.Join(cfg.Dir, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("jepsen: %w", err)
		}
	}
	return c, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("jepsen: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// StartMinIO starts MinIO with its data under the run directory and waits
// until it answers its liveness probe.
func (c *Cluster) StartMinIO(ctx context.Context, binary string) error {
	member := ""
	if c.cfg.Net != nil {
		member = "minio"
	}
	addr := c.cfg.S3.Endpoint
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("jepsen: minio endpoint %q: %w", addr, err)
	}
	console := "9001"
	if c.cfg.Net == nil {
		p, err := freePort()
		if err != nil {
			return err
		}
		console = strconv.Itoa(p)
	}
	dir := filepath.Join(c.cfg.Dir, "data", "minio")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("jepsen: %w", err)
	}
	c.MinIO = &Proc{Name: "minio", Member: member, net: c.cfg.Net,
		Argv:    []string{binary, "server", dir, "--address", addr, "--console-address", net.JoinHostPort(host, console), "--quiet"},
		Env:     []string{"MINIO_ROOT_USER=" + c.cfg.S3.AccessKey, "MINIO_ROOT_PASSWORD=" + c.cfg.S3.SecretKey, "MINIO_BROWSER=off"},
		LogPath: filepath.Join(c.cfg.Dir, "logs", "minio.log")}
	if err := c.MinIO.Start(); err != nil {
		return err
	}
	return c.WaitMinIO(ctx)
}

// WaitMinIO polls MinIO's liveness endpoint.
func (c *Cluster) WaitMinIO(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.cfg.S3.Endpoint+"/minio/health/live", nil)
		resp, err := c.api.hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("jepsen: minio not live at %s: %w", c.cfg.S3.Endpoint, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// S3 returns the MinIO endpoint and credentials, once started.
func (c *Cluster) S3() S3Config { return c.cfg.S3 }

// Start starts every node and waits until all announced readiness and one
// of them reports a leader with all members.
func (c *Cluster) Start(ctx context.Context, timeout time.Duration) error {
	for _, n := range c.Nodes {
		if err := n.Start(); err != nil {
			return err
		}
	}
	return c.WaitHealthy(ctx, timeout)
}

// WaitHealthy waits until every node is ready and they agree on a leader
// whose configuration has all nodes.
func (c *Cluster) WaitHealthy(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, n := range c.Nodes {
		if err := n.WaitReady(ctx); err != nil {
			return err
		}
	}
	var last string
	for {
		ok, why := c.healthy(ctx)
		if ok {
			return nil
		}
		last = why
		select {
		case <-ctx.Done():
			return fmt.Errorf("jepsen: cluster not healthy after %s: %s", timeout, last)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func (c *Cluster) healthy(ctx context.Context) (bool, string) {
	leader := ""
	for _, n := range c.Nodes {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := c.api.Status(sctx, n.Base())
		cancel()
		if err != nil {
			return false, fmt.Sprintf("%s: %v", n.ID, err)
		}
		if st.Leader.ID == "" {
			return false, fmt.Sprintf("%s sees no leader", n.ID)
		}
		if leader != "" && st.Leader.ID != leader {
			return false, fmt.Sprintf("%s sees leader %s, others %s", n.ID, st.Leader.ID, leader)
		}
		leader = st.Leader.ID
		voters := 0
		for _, m := range st.Members {
			if m.Suffrage == "" || strings.EqualFold(m.Suffrage, "voter") {
				voters++
			}
		}
		if voters != len(c.Nodes) {
			return false, fmt.Sprintf("%s sees %d voters, want %d", n.ID, voters, len(c.Nodes))
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err = c.api.Ready(rctx, n.Base())
		cancel()
		if err != nil {
			return false, fmt.Sprintf("%s not ready: %v", n.ID, err)
		}
	}
	return true, ""
}

// Leader asks the running nodes who leads and returns the index of the
// node that says it is leader with the highest term, or -1.
func (c *Cluster) Leader(ctx context.Context) int {
	type view struct {
		idx  int
		term uint64
	}
	var mu sync.Mutex
	best := view{idx: -1}
	var wg sync.WaitGroup
	for _, n := range c.Nodes {
		if st, _ := n.State(); st != ProcRunning {
			continue
		}
		wg.Add(1)
		go func(n *Node) {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
			defer cancel()
			st, err := c.api.Status(sctx, n.Base())
			if err != nil || !strings.EqualFold(st.State, "leader") {
				return
			}
			mu.Lock()
			if best.idx < 0 || st.Term > best.term {
				best = view{n.Index, st.Term}
			}
			mu.Unlock()
		}(n)
	}
	wg.Wait()
	return best.idx
}

// Stop shuts every process down (SIGTERM, then SIGKILL after grace).
func (c *Cluster) Stop(grace time.Duration) {
	var wg sync.WaitGroup
	for _, n := range c.Nodes {
		wg.Add(1)
		go func(p *Proc) { defer wg.Done(); _ = p.Stop(grace) }(n.Proc)
	}
	wg.Wait()
	if c.MinIO != nil {
		_ = c.MinIO.Stop(grace)
	}
}
