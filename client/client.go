package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// APIPrefix is the path prefix of the osproxy-compatible storage API.
const APIPrefix = "/api/storage/v0"

// DefaultAddr is the node address used when Config.Addr is empty.
const DefaultAddr = "http://127.0.0.1:8080"

// Config configures a Client.
type Config struct {
	// Addr is the base URL of a node ("http://host:port"), or a
	// comma-separated list of them. Requests are spread over the list
	// round-robin and a retry goes to the next address, so any node can
	// serve any request (SPEC §1). A missing scheme means http.
	Addr string
	// APIKey is sent as "Authorization: Bearer <key>" on business
	// endpoints. Signed upload and download links never carry it.
	APIKey string
	// HTTPClient performs the requests. nil means a client with pooled
	// keep-alive connections and no overall timeout (downloads can be long;
	// use contexts to bound calls).
	HTTPClient *http.Client
	// Logger receives debug logs about retries. nil means slog.Default().
	Logger *slog.Logger
	// MaxRetries is how many times a retryable failure is retried (0 means
	// the default of 6; negative disables retries).
	MaxRetries int
	// MinBackoff is the first retry delay; it doubles up to MaxBackoff, with
	// jitter. A Retry-After header raises the delay up to MaxRetryAfter.
	MinBackoff time.Duration
	// MaxBackoff caps the exponential backoff.
	MaxBackoff time.Duration
	// MaxRetryAfter caps how long a Retry-After header makes the client wait.
	MaxRetryAfter time.Duration
	// UserAgent is sent with every request.
	UserAgent string
	// TLS configures https connections (the CA that signs the nodes'
	// certificates, a client certificate) when HTTPClient is nil; nil
	// means the system roots.
	TLS *tls.Config
}

// DefaultConfig returns the configuration used for zero fields.
func DefaultConfig() Config {
	return Config{
		Addr:          DefaultAddr,
		MaxRetries:    6,
		MinBackoff:    100 * time.Millisecond,
		MaxBackoff:    5 * time.Second,
		MaxRetryAfter: 30 * time.Second,
		UserAgent:     "osprey-client",
	}
}

// Validate checks the configuration, after defaults are applied.
func (c Config) Validate() error {
	addrs, err := parseAddrs(c.Addr)
	if err != nil {
		return err
	}
	if len(addrs) == 0 {
		return fmt.Errorf("%w: empty addr", ErrInvalidConfig)
	}
	if c.MinBackoff < 0 || c.MaxBackoff < 0 || c.MaxRetryAfter < 0 {
		return fmt.Errorf("%w: negative backoff", ErrInvalidConfig)
	}
	if strings.ContainsAny(c.APIKey, "\r\n") {
		return fmt.Errorf("%w: api key contains a newline", ErrInvalidConfig)
	}
	return nil
}

// ErrInvalidConfig is returned by New and Validate for a bad Config.
var ErrInvalidConfig = errors.New("client: invalid config")

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if strings.TrimSpace(c.Addr) == "" {
		c.Addr = d.Addr
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = d.MaxRetries
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = d.MinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = d.MaxBackoff
	}
	if c.MaxRetryAfter == 0 {
		c.MaxRetryAfter = d.MaxRetryAfter
	}
	if c.UserAgent == "" {
		c.UserAgent = d.UserAgent
	}
	return c
}

// parseAddrs splits a comma-separated address list into base URLs without
// a trailing slash.
func parseAddrs(s string) ([]string, error) {
	var out []string
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if !strings.Contains(a, "://") {
			a = "http://" + a
		}
		u, err := url.Parse(a)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("%w: bad addr %q", ErrInvalidConfig, a)
		}
		out = append(out, strings.TrimRight(u.Scheme+"://"+u.Host+u.Path, "/"))
	}
	return out, nil
}

// Client is a typed client for the osprey HTTP API. It is safe for
// concurrent use.
type Client struct {
	cfg    Config
	addrs  []string
	hc     *http.Client
	logger *slog.Logger
	next   atomic.Uint64
	// kinds holds a round-robin counter per request kind (method and
	// path), so every kind of request spreads over all the addresses: with
	// one shared counter, a put alternating link and upload on two nodes
	// sent every upload to the same node.
	kinds sync.Map // string -> *atomic.Uint64
	// sleep waits between retries; tests replace it to record delays.
	sleep func(ctx context.Context, d time.Duration) error
	// down holds the addresses whose last attempt got no reply (refused,
	// reset, dial timeout), with the time until which addrFor skips them.
	downMu sync.Mutex
	down   map[string]time.Time
	now    func() time.Time
}

// downFor is how long an address that gave no reply is skipped while
// another one is up. A killed or cut-off node then costs one failed
// attempt, not one per call: round-robin would send every Nth call there
// and each would wait for its dial to fail before moving on.
const downFor = 5 * time.Second

// dialTimeout bounds connecting to a node. Go's default of 30 s made a
// node behind a partition (packets dropped, no refusal) hold each call
// for 30 s before the retry went to the next address.
const dialTimeout = 5 * time.Second

// New returns a Client for cfg. It returns an error wrapping
// ErrInvalidConfig if cfg is invalid.
func New(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	addrs, _ := parseAddrs(cfg.Addr)
	hc := cfg.HTTPClient
	if hc == nil {
		t := newTransport()
		if cfg.TLS != nil {
			t.TLSClientConfig = cfg.TLS.Clone()
		}
		hc = &http.Client{Transport: t}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &Client{cfg: cfg, addrs: addrs, hc: hc, logger: logger.With("component", "client"), sleep: sleepCtx,
		down: map[string]time.Time{}, now: time.Now}, nil
}

func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 64
	t.ResponseHeaderTimeout = 2 * time.Minute
	// Bodies are already compressed or random; transparent gzip would only
	// hide Content-Length and break Range arithmetic.
	t.DisableCompression = true
	return t
}

// Addrs returns the node base URLs the client talks to.
func (c *Client) Addrs() []string { return append([]string(nil), c.addrs...) }

// pickAddr returns the next base URL round-robin.
func (c *Client) pickAddr() string {
	n := c.next.Add(1) - 1
	return c.addrs[n%uint64(len(c.addrs))]
}

// addrFor returns the base URL for one attempt of r: round-robin among the
// addresses per kind of request, so each kind spreads over every node and
// a retry goes to the next node.
func (c *Client) addrFor(r *request) string {
	if len(c.addrs) == 1 {
		return c.addrs[0]
	}
	v, _ := c.kinds.LoadOrStore(r.method+" "+pathOnly(r.target), new(atomic.Uint64))
	n := v.(*atomic.Uint64).Add(1) - 1
	c.downMu.Lock()
	defer c.downMu.Unlock()
	now := c.now()
	for k := range uint64(len(c.addrs)) {
		a := c.addrs[(n+k)%uint64(len(c.addrs))]
		if until, ok := c.down[a]; !ok || now.After(until) {
			return a
		}
	}
	return c.addrs[n%uint64(len(c.addrs))] // all down: try anyway
}

// markAddr records whether an attempt on addr got a reply (any HTTP
// status) or none; see downFor. A call cancelled by its own context says
// nothing about the node.
func (c *Client) markAddr(addr string, replied bool) {
	if len(c.addrs) == 1 {
		return
	}
	c.downMu.Lock()
	defer c.downMu.Unlock()
	if replied {
		delete(c.down, addr)
		return
	}
	c.down[addr] = c.now().Add(downFor)
}

// AbsURL turns a relative link returned by the server into an absolute URL
// on the first configured node. Absolute URLs are returned unchanged.
func (c *Client) AbsURL(link string) string {
	if isAbs(link) {
		return link
	}
	return c.addrs[0] + ensureSlash(link)
}

func isAbs(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

func ensureSlash(s string) string {
	if strings.HasPrefix(s, "/") {
		return s
	}
	return "/" + s
}

// request describes one logical call; do turns it into attempts.
type request struct {
	method string
	// target is a path ("/cluster/status"), a relative link with a query,
	// or an absolute URL. Relative targets are prefixed with the chosen
	// node's base URL.
	target string
	query  url.Values // merged into target's query
	// body returns the request body for one attempt; nil means no body.
	body          bodySource
	contentLength int64 // -1 if unknown
	contentType   string
	header        http.Header
	auth          bool // send the API key
	// idempotent calls are also retried after transport errors and 502/504;
	// other calls only when the request was certainly not applied (503, or
	// the connection was never established).
	idempotent bool
	// noRetry makes a single attempt (probes such as /readyz).
	noRetry bool
}

// bodySource yields the body for each attempt. It returns errNoRewind when
// the body cannot be sent again.
type bodySource func() (io.Reader, error)

var errNoRewind = errors.New("client: request body cannot be replayed")

// bytesBody replays b on every attempt.
func bytesBody(b []byte) bodySource {
	return func() (io.Reader, error) { return bytes.NewReader(b), nil }
}

// readerBody sends r. If r is an io.Seeker it is rewound to its starting
// offset on each attempt, so the call can be retried; otherwise only one
// attempt is possible.
func readerBody(r io.Reader) bodySource {
	if r == nil {
		return nil
	}
	if s, ok := r.(io.Seeker); ok {
		start, err := s.Seek(0, io.SeekCurrent)
		return func() (io.Reader, error) {
			if err != nil {
				return nil, err
			}
			if _, err := s.Seek(start, io.SeekStart); err != nil {
				return nil, err
			}
			return r, nil
		}
	}
	used := false
	return func() (io.Reader, error) {
		if used {
			return nil, errNoRewind
		}
		used = true
		return r, nil
	}
}

// do performs r with retries. On success it returns the 2xx response, which
// the caller must close. Failures are *APIError (non-2xx) or transport
// errors wrapped with the method and path.
func (c *Client) do(ctx context.Context, r *request) (*http.Response, error) {
	var lastErr error
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			if lastErr != nil {
				return nil, fmt.Errorf("%w (last error: %w)", err, lastErr)
			}
			return nil, err
		}
		resp, err := c.once(ctx, r)
		if err == nil && resp.StatusCode < 300 {
			return resp, nil
		}
		var retry bool
		var wait time.Duration
		if err != nil {
			if errors.Is(err, errNoRewind) {
				return nil, lastErr
			}
			if ctx.Err() != nil {
				return nil, err
			}
			// A certificate the client does not trust (no --tls-ca, the
			// wrong CA, a name mismatch) will not change on a retry.
			var cv *tls.CertificateVerificationError
			retry = (r.idempotent || notSent(err)) && !errors.As(err, &cv)
		} else {
			switch resp.StatusCode {
			case http.StatusServiceUnavailable:
				retry = true
				wait = retryAfter(resp.Header.Get("Retry-After"), c.cfg.MaxRetryAfter)
			case http.StatusBadGateway, http.StatusGatewayTimeout:
				retry = r.idempotent
			case http.StatusTooManyRequests:
				retry = true
				wait = retryAfter(resp.Header.Get("Retry-After"), c.cfg.MaxRetryAfter)
			}
			err = decodeError(resp)
		}
		lastErr = err
		if !retry || r.noRetry || c.cfg.MaxRetries < 0 || attempt >= c.cfg.MaxRetries {
			return nil, err
		}
		d := max(wait, c.backoff(attempt))
		c.logger.Debug("retrying request", "method", r.method, "path", pathOnly(r.target),
			"attempt", attempt+1, "delay", d, "err", err)
		if err := c.sleep(ctx, d); err != nil {
			return nil, fmt.Errorf("%w (last error: %w)", err, lastErr)
		}
	}
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// backoff returns the delay before retry number attempt+1: exponential
// with full jitter in [d/2, d].
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.MinBackoff << min(attempt, 20)
	if d <= 0 || d > c.cfg.MaxBackoff {
		d = c.cfg.MaxBackoff
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// retryAfter parses a Retry-After value (seconds or an HTTP date), capped.
func retryAfter(v string, limit time.Duration) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(v); err == nil {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = time.Until(t)
	}
	return min(max(d, 0), limit)
}

// notSent reports whether err shows the request never reached a server
// (connection refused, DNS failure), so even a non-idempotent call is safe
// to retry.
func notSent(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

func pathOnly(target string) string {
	if i := strings.IndexByte(target, '?'); i >= 0 {
		return target[:i]
	}
	return target
}

// once performs a single attempt.
func (c *Client) once(ctx context.Context, r *request) (*http.Response, error) {
	u, addr := r.target, ""
	if !isAbs(u) {
		addr = c.addrFor(r)
		u = addr + ensureSlash(u)
	}
	if len(r.query) > 0 {
		pu, err := url.Parse(u)
		if err != nil {
			return nil, fmt.Errorf("client: %s %s: %w", r.method, pathOnly(r.target), err)
		}
		q := pu.Query()
		for k, vs := range r.query {
			q[k] = vs
		}
		pu.RawQuery = q.Encode()
		u = pu.String()
	}
	var body io.Reader
	if r.body != nil {
		b, err := r.body()
		if err != nil {
			return nil, err
		}
		body = b
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", r.method, pathOnly(r.target), err)
	}
	if body != nil {
		// NewRequest only infers the length of a few reader types.
		req.ContentLength = r.contentLength
		if r.contentLength == 0 {
			req.Body = http.NoBody
		}
		if r.body != nil {
			src := r.body
			req.GetBody = func() (io.ReadCloser, error) {
				b, err := src()
				if err != nil {
					return nil, err
				}
				return io.NopCloser(b), nil
			}
		}
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if r.auth && c.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
	}
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	resp, err := c.hc.Do(req)
	if addr != "" && (err == nil || ctx.Err() == nil) {
		c.markAddr(addr, err == nil)
	}
	if err != nil {
		// *url.Error repeats the URL, signature included; keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("client: %s %s: %w", r.method, pathOnly(r.target), err)
	}
	return resp, nil
}

// maxJSONReply bounds JSON replies (listings of thousands of objects fit).
const maxJSONReply = 64 << 20

// doJSON performs r and decodes the envelope's data into out (if non-nil).
func (c *Client) doJSON(ctx context.Context, r *request, out any) error {
	resp, err := c.do(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return decodeData(resp, out)
}

func decodeData(resp *http.Response, out any) error {
	var env envelope
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxJSONReply))
	if err := dec.Decode(&env); err != nil {
		if errors.Is(err, io.EOF) && out == nil {
			return nil // empty 2xx body is fine when nothing is expected
		}
		return fmt.Errorf("%w: %s %s: decode reply: %w", ErrProtocol, resp.Request.Method, resp.Request.URL.Path, err)
	}
	// A 2xx with a non-zero code would contradict the status; trust the
	// status but surface the code as an error, since the data is suspect.
	if c := env.Code.Int(); c != 0 {
		return &APIError{Status: resp.StatusCode, Code: int(c), CodeText: string(env.Code), Message: env.Message,
			RequestID: firstNonEmpty(env.RequestID, resp.Header.Get("X-Request-Id")),
			Method:    resp.Request.Method, Path: resp.Request.URL.Path}
	}
	if out == nil || len(env.Data) == 0 || string(env.Data) == "null" {
		return nil
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		return fmt.Errorf("%w: %s %s: decode data: %w", ErrProtocol, resp.Request.Method, resp.Request.URL.Path, err)
	}
	return nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func jsonBody(v any) (bodySource, int64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, 0, err
	}
	return bytesBody(b), int64(len(b)), nil
}
