package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// MinIOVersion is the pinned MinIO module version tests are run with.
const MinIOVersion = "v0.0.0-20260212201848-7aac2a2c5b7c"

// InstallCommand installs the pinned MinIO where FindBinary looks.
const InstallCommand = "scripts/minio.sh  (or: GOBIN=$HOME/.cache/osprey-bin go install github.com/minio/minio@" + MinIOVersion + ")"

// ErrNoBinary is returned by FindBinary when no MinIO binary is available.
var ErrNoBinary = errors.New("s3test: no minio binary found")

// FindBinary returns the path of the MinIO binary: $OSPREY_MINIO if set
// (it must exist), else "minio" on PATH, else
// ${OSPREY_BIN_DIR:-$HOME/.cache/osprey-bin}/minio. It returns an error
// wrapping ErrNoBinary, naming InstallCommand, if none exists.
func FindBinary() (string, error) {
	if p := os.Getenv("OSPREY_MINIO"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: OSPREY_MINIO=%q: %w", ErrNoBinary, p, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	binDir := os.Getenv("OSPREY_BIN_DIR")
	if binDir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("%w: no $OSPREY_MINIO, none on PATH and no home directory; install with %s", ErrNoBinary, InstallCommand)
		}
		binDir = filepath.Join(home, ".cache", "osprey-bin")
	}
	p := filepath.Join(binDir, "minio")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%w: not in $OSPREY_MINIO, on PATH or at %s; install with %s", ErrNoBinary, p, InstallCommand)
	}
	return p, nil
}

// Config configures a MinIO server.
type Config struct {
	// Binary is the MinIO executable; "" means FindBinary.
	Binary string
	// Dir holds the server's data ("data/") and log ("minio.log"). Required.
	Dir string
	// Addr is the listen address; a port of 0 picks a free port on start.
	Addr string
	// AccessKey and SecretKey are the root credentials; "" means random.
	// MinIO requires at least 3 and 8 characters.
	AccessKey, SecretKey string
	// ReadyTimeout bounds how long Start waits for the server to answer.
	ReadyTimeout time.Duration
}

// DefaultConfig returns a configuration for a loopback server on a free
// port with random credentials; Dir must still be set.
func DefaultConfig() Config {
	return Config{Addr: "127.0.0.1:0", ReadyTimeout: 60 * time.Second}
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("s3test: Dir is required")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("s3test: Addr %q: %w", c.Addr, err)
	}
	if c.AccessKey != "" && len(c.AccessKey) < 3 {
		return errors.New("s3test: AccessKey must have at least 3 characters")
	}
	if c.SecretKey != "" && len(c.SecretKey) < 8 {
		return errors.New("s3test: SecretKey must have at least 8 characters")
	}
	if c.ReadyTimeout <= 0 {
		return errors.New("s3test: ReadyTimeout must be positive")
	}
	return nil
}

// Server is a running (or stopped) MinIO process. Its methods are safe for
// concurrent use.
type Server struct {
	cfg Config // Binary, Addr and credentials resolved

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
}

// Start starts a server with DefaultConfig and data in dir.
func Start(ctx context.Context, dir string) (*Server, error) {
	cfg := DefaultConfig()
	cfg.Dir = dir
	return StartConfig(ctx, cfg)
}

// StartConfig starts a server and waits until it is ready or ctx ends or
// cfg.ReadyTimeout passes. The caller MUST Close the server.
func StartConfig(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Binary == "" {
		bin, err := FindBinary()
		if err != nil {
			return nil, err
		}
		cfg.Binary = bin
	}
	if cfg.AccessKey == "" {
		cfg.AccessKey = "osprey" + randomHex(6)
	}
	if cfg.SecretKey == "" {
		cfg.SecretKey = randomHex(20)
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "data"), 0o755); err != nil {
		return nil, fmt.Errorf("s3test: %w", err)
	}
	host, port, _ := net.SplitHostPort(cfg.Addr)
	pickPort := port == "0"
	var lastErr error
	// A free port found by listening and closing can be taken by someone
	// else before MinIO binds it; try a few.
	for range 3 {
		s := &Server{cfg: cfg}
		if pickPort {
			p, err := freePort(host)
			if err != nil {
				return nil, err
			}
			s.cfg.Addr = net.JoinHostPort(host, p)
		}
		if lastErr = s.start(ctx); lastErr == nil {
			return s, nil
		}
		if !pickPort || ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

// Endpoint returns the server's host:port (no scheme; plain HTTP).
func (s *Server) Endpoint() string { return s.cfg.Addr }

// AccessKey returns the root access key.
func (s *Server) AccessKey() string { return s.cfg.AccessKey }

// SecretKey returns the root secret key.
func (s *Server) SecretKey() string { return s.cfg.SecretKey }

// Dir returns the server's directory.
func (s *Server) Dir() string { return s.cfg.Dir }

// LogPath returns the file the server's output is appended to.
func (s *Server) LogPath() string { return filepath.Join(s.cfg.Dir, "minio.log") }

func (s *Server) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("s3test: server already running")
	}
	logf, err := os.OpenFile(s.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("s3test: %w", err)
	}
	defer logf.Close() // the child keeps its own descriptor
	cmd := exec.Command(s.cfg.Binary, "server", "--quiet", "--address", s.cfg.Addr, filepath.Join(s.cfg.Dir, "data"))
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.cfg.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.cfg.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("s3test: starting %s: %w", s.cfg.Binary, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done
	if err := s.waitReady(ctx, done); err != nil {
		s.killLocked()
		return fmt.Errorf("%w (log %s: %s)", err, s.LogPath(), tail(s.LogPath(), 2000))
	}
	return nil
}

// waitReady polls the health endpoints until both answer 200.
func (s *Server) waitReady(ctx context.Context, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ReadyTimeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	ready := func(path string) bool {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.cfg.Addr+path, nil)
		if err != nil {
			return false
		}
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	// The health endpoints answer before the object layer is initialised
	// (requests then fail with XMinioServerNotInitialized), so a signed
	// ListBuckets must succeed too.
	s3c, err := minio.New(s.cfg.Addr, &minio.Options{
		Creds:      credentials.NewStaticV4(s.cfg.AccessKey, s.cfg.SecretKey, ""),
		MaxRetries: 1,
	})
	if err != nil {
		return fmt.Errorf("s3test: client: %w", err)
	}
	s3Ready := func() bool {
		_, err := s3c.ListBuckets(ctx)
		return err == nil
	}
	// The root credentials work before the IAM sub-system is: until it is
	// initialised, any other access key gets XMinioIAMNotInitialized
	// instead of InvalidAccessKeyId (seen in a CI run), so wait for the
	// real answer to an unknown key too.
	stranger, err := minio.New(s.cfg.Addr, &minio.Options{
		Creds:      credentials.NewStaticV4("s3test-unknown-key", "s3test-unknown-secret", ""),
		MaxRetries: 1,
	})
	if err != nil {
		return fmt.Errorf("s3test: client: %w", err)
	}
	iamReady := func() bool {
		_, err := stranger.ListBuckets(ctx)
		return minio.ToErrorResponse(err).Code == "InvalidAccessKeyId"
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if ready("/minio/health/live") && ready("/minio/health/ready") && s3Ready() && iamReady() {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("s3test: minio on %s exited during start", s.cfg.Addr)
		case <-ctx.Done():
			return fmt.Errorf("s3test: minio on %s not ready: %w", s.cfg.Addr, ctx.Err())
		case <-tick.C:
		}
	}
}

// Stop kills the server (SIGKILL, as a crash would) and waits for it to
// exit. Data written so far stays in Dir. Stopping a stopped server is a
// no-op.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killLocked()
	return nil
}

func (s *Server) killLocked() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd, s.done = nil, nil
}

// Restart starts a stopped server again on the same address with the same
// data and credentials, and waits until it is ready.
func (s *Server) Restart(ctx context.Context) error {
	return s.start(ctx)
}

// Running reports whether the server process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Close stops the server. It is idempotent.
func (s *Server) Close() error { return s.Stop() }

// StartServer starts a server in a fresh t.TempDir and closes it when the
// test ends. It skips the test, naming InstallCommand, if no binary exists.
func StartServer(t testing.TB) *Server {
	t.Helper()
	if _, err := FindBinary(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	s, err := Start(context.Background(), t.TempDir())
	if err != nil {
		t.Fatalf("starting minio: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// StartMinIO starts a server like StartServer and returns its endpoint
// (host:port, plain HTTP) and root credentials.
func StartMinIO(t testing.TB) (endpoint, accessKey, secretKey string) {
	t.Helper()
	s := StartServer(t)
	return s.Endpoint(), s.AccessKey(), s.SecretKey()
}

func freePort(host string) (string, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("s3test: finding a free port: %w", err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// tail returns up to the last n bytes of a file, for error messages.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		_, _ = f.Seek(-n, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}
