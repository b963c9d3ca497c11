package peer

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/backend"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
	"github.com/osprey-storage/osprey/tlsconf"
)

// Directory is the part of the replicated state a Client reads: member
// records (for addresses) and the cluster secret (for the node token).
type Directory interface {
	Node(id osprey.NodeID) (fsm.Node, bool)
	Secret() []byte
}

// Config configures a Client.
type Config struct {
	// Directory resolves member ids to addresses and holds the secret.
	Directory Directory
	// Timeout bounds a whole request/reply call, and how long any call,
	// streams included, waits for the reply's headers once its request is
	// sent: a member that takes a request and never answers (a paused or
	// hung process) fails the call then, and a read tries the next copy.
	// A stream's body is bounded by its ctx only.
	Timeout time.Duration
	// DialTimeout bounds connecting to a peer.
	DialTimeout time.Duration
	// TLS, when set, makes every call https: it gives the config for
	// dialing the peer named serverName (verify it against the cluster CA,
	// present this node's certificate). nil means plain http.
	TLS func(serverName string) *tls.Config
}

// DefaultConfig returns the timeouts the node has always used.
func DefaultConfig() Config {
	return Config{Timeout: 30 * time.Second, DialTimeout: 3 * time.Second}
}

// Validate reports a missing or invalid field.
func (c Config) Validate() error {
	switch {
	case c.Directory == nil:
		return errors.New("peer: Directory is required")
	case c.Timeout <= 0 || c.DialTimeout <= 0:
		return errors.New("peer: timeouts must be positive")
	}
	return nil
}

// Client makes node-to-node calls. It is safe for concurrent use.
type Client struct {
	dir    Directory
	scheme string       // "http" or "https"
	rpc    *http.Client // request/reply calls with a whole-call timeout
	stream *http.Client // chunk and object streams: no overall timeout, ctx bounds them
}

// New returns a Client. Call CloseIdleConnections when done.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second,
		DialContext: d.DialContext, ResponseHeaderTimeout: cfg.Timeout,
	}
	scheme := "http"
	if cfg.TLS != nil {
		scheme = "https"
		tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return tlsconf.Dial(ctx, d, network, addr, cfg.TLS)
		}
	}
	return &Client{dir: cfg.Directory, scheme: scheme, rpc: &http.Client{Timeout: cfg.Timeout, Transport: tr},
		stream: &http.Client{Transport: tr}}, nil
}

// url is the URL of path on the node at addr (host:port; a scheme given
// with it, as in a --join list, is replaced by this client's).
func (c *Client) url(addr, path string) string {
	if _, rest, ok := strings.Cut(addr, "://"); ok {
		addr = rest
	}
	return c.scheme + "://" + strings.TrimSuffix(addr, "/") + path
}

// CloseIdleConnections releases pooled connections.
func (c *Client) CloseIdleConnections() { c.rpc.CloseIdleConnections() }

// Token is the node-to-node credential, derived from the cluster secret;
// "" until the secret is known.
func (c *Client) Token() string { return httpapi.NodeAuthToken(c.dir.Secret()) }

// Addr returns a member's advertised HTTP address; ErrUnavailable if none
// is recorded.
func (c *Client) Addr(owner string) (string, error) {
	rec, ok := c.dir.Node(osprey.NodeID(owner))
	if !ok || rec.HTTPAddr == "" {
		return "", fmt.Errorf("%w: no address for node %s", osprey.ErrUnavailable, owner)
	}
	return rec.HTTPAddr, nil
}

// DoJSON sends a node-to-node request and decodes the envelope's data into
// out. Errors are mapped back to the project's error kinds; a request that
// could not be sent at all is ErrUnavailable (certainly not applied), one
// that failed after sending is ErrIndeterminate.
func (c *Client) DoJSON(req *http.Request, out any) error {
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var env struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&env); err != nil {
		return fmt.Errorf("%w: decode reply from %s (status %d): %w", osprey.ErrIndeterminate, req.URL.Host, resp.StatusCode, err)
	}
	if resp.StatusCode/100 != 2 {
		return httpapi.ErrorFromStatus(resp.StatusCode, env.Message)
	}
	if out != nil && len(env.Data) > 0 {
		return json.Unmarshal(env.Data, out)
	}
	return nil
}

// send sends req with this node's credentials on the RPC client. A request
// that never reached the peer (dial failed) is ErrUnavailable; any other
// failure is ErrIndeterminate, as the peer may have acted on it.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	if tok := c.Token(); tok != "" {
		req.Header.Set(httpapi.HeaderNodeAuth, tok)
	}
	resp, err := c.rpc.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, fmt.Errorf("%w: %w", osprey.ErrUnavailable, err)
		}
		return nil, fmt.Errorf("%w: %w", osprey.ErrIndeterminate, err)
	}
	return resp, nil
}

// drainClose reads what is left of a small reply body before closing it:
// net/http reuses a connection only when its last response body was read
// to the end, and one closed early costs a new connection (and a socket
// in TIME_WAIT) for the next call. Replies longer than this are not worth
// reading and their connection is dropped.
func drainClose(body io.ReadCloser) {
	io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	body.Close()
}

// --- commands and reads ---

// ForwardApply sends an encoded command to the leader's /internal/v1/apply
// and returns the JSON-encoded result.
func (c *Client) ForwardApply(ctx context.Context, leader string, cmd []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url(leader, "/internal/v1/apply"), bytes.NewReader(cmd))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	var reply struct {
		Data json.RawMessage `json:"data"`
	}
	if err := c.DoJSON(req, &reply); err != nil {
		return nil, err
	}
	return reply.Data, nil
}

// ReadIndex asks the leader at addr for a read index.
func (c *Client) ReadIndex(ctx context.Context, leader string) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(leader, "/internal/v1/readindex"), nil)
	if err != nil {
		return 0, err
	}
	var s string
	if err := c.DoJSON(req, &s); err != nil {
		return 0, err
	}
	return strconv.ParseUint(s, 10, 64)
}

// --- membership ---

// BootstrapInfo asks the peer at addr to describe itself, presenting the
// join token.
func (c *Client) BootstrapInfo(ctx context.Context, addr, joinToken string) (httpapi.BootstrapInfo, error) {
	var info httpapi.BootstrapInfo
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(addr, "/internal/v1/bootstrap-info"), nil)
	if err != nil {
		return info, err
	}
	req.Header.Set("X-Osprey-Join-Token", joinToken)
	err = c.DoJSON(req, &info)
	return info, err
}

// Join asks the peer at addr to add this node to its cluster.
func (c *Client) Join(ctx context.Context, addr string, jr httpapi.JoinRequest) (httpapi.JoinResult, error) {
	var res httpapi.JoinResult
	body, err := json.Marshal(jr)
	if err != nil {
		return res, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url(addr, "/cluster/join"), bytes.NewReader(body))
	if err != nil {
		return res, err
	}
	req.Header.Set("Content-Type", "application/json")
	err = c.DoJSON(req, &res)
	return res, err
}

// Probe checks the peer's /livez and returns whether it answered 200 and
// the round-trip time.
func (c *Client) Probe(ctx context.Context, addr string) (ok bool, rtt time.Duration, err error) {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(addr, "/livez"), nil)
	if err != nil {
		return false, 0, err
	}
	resp, err := c.rpc.Do(req)
	if err != nil {
		return false, 0, err
	}
	drainClose(resp.Body)
	return resp.StatusCode == http.StatusOK, time.Since(start), nil
}

// --- chunk copies ---

func (c *Client) chunkURL(addr string, ref httpapi.ChunkRef) string {
	return c.url(addr, fmt.Sprintf("/internal/v1/chunks/%d/%d/%d", ref.Blob, ref.Num, ref.Shard))
}

// PutChunk stores a chunk copy on owner and checks the checksum it reports.
func (c *Client) PutChunk(ctx context.Context, owner string, ref httpapi.ChunkRef, buf []byte, sum uint64) error {
	got, err := c.PutChunkStream(ctx, owner, ref, bytes.NewReader(buf), int64(len(buf)), httpapi.CopyRecorded)
	if err != nil {
		return err
	}
	if got != sum {
		return fmt.Errorf("node %s stored checksum %d, want %d", owner, got, sum)
	}
	return nil
}

// PutChunkStream stores a chunk copy of size bytes read from body on owner
// and returns the checksum (xxhash64) the owner computed over what it
// stored; the caller compares it with its own. body may still be arriving
// (a chunk streamed to its owners while the client sends it). origin says
// whose copy it is (see httpapi.CopyOrigin).
func (c *Client) PutChunkStream(ctx context.Context, owner string, ref httpapi.ChunkRef, body io.Reader, size int64, origin httpapi.CopyOrigin) (uint64, error) {
	addr, err := c.Addr(owner)
	if err != nil {
		return 0, err
	}
	if size == 0 {
		// A non-nil body of length 0 would go out chunked, as of unknown
		// length: the owner requires a Content-Length.
		body = http.NoBody
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.chunkURL(addr, ref)+originQuery(origin), body)
	if err != nil {
		return 0, err
	}
	req.ContentLength = size
	var got string
	if err := c.DoJSON(req, &got); err != nil {
		return 0, err
	}
	sum, err := strconv.ParseUint(got, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("node %s answered checksum %q: %w", owner, got, err)
	}
	return sum, nil
}

// originQuery is the query string that sends origin; a recorded copy
// sends none, as builds before origins did.
func originQuery(origin httpapi.CopyOrigin) string {
	if origin == httpapi.CopyRecorded {
		return ""
	}
	return "?origin=" + origin.String()
}

// ObjectVersion names the stored write of owner's object copy (every write
// makes a new one): osprey.ErrNotFound if owner has none,
// errors.ErrUnsupported if owner's build or backend cannot tell.
func (c *Client) ObjectVersion(ctx context.Context, owner, bucket, key string) (string, error) {
	addr, err := c.Addr(owner)
	if err != nil {
		return "", err
	}
	v, err := c.headValue(ctx, owner, c.objectURL(addr, bucket, key), httpapi.HeaderObjectVersion)
	if err == nil && v == "" {
		err = fmt.Errorf("%w: node %s answered no object version", osprey.ErrIndeterminate, owner)
	}
	return v, err
}

// DeleteChunk deletes a chunk copy on owner: any copy for CopyRecorded,
// only the upload's own for CopyUpload (see httpapi.CopyOrigin); a gen
// other than 0 deletes it only if it is still that generation (ChunkGen).
func (c *Client) DeleteChunk(ctx context.Context, owner string, ref httpapi.ChunkRef, origin httpapi.CopyOrigin, gen uint64) error {
	addr, err := c.Addr(owner)
	if err != nil {
		return err
	}
	u := c.chunkURL(addr, ref) + originQuery(origin)
	if gen != 0 {
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		u += sep + "gen=" + strconv.FormatUint(gen, 10)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, u, nil)
	if err != nil {
		return err
	}
	return c.DoJSON(req, nil)
}

// ChunkGen returns the generation of owner's copy of ref (every write of a
// chunk on a node gets a new, larger one): osprey.ErrNotFound if owner has
// none, errors.ErrUnsupported if owner is a build that cannot tell.
func (c *Client) ChunkGen(ctx context.Context, owner string, ref httpapi.ChunkRef) (uint64, error) {
	addr, err := c.Addr(owner)
	if err != nil {
		return 0, err
	}
	v, err := c.headValue(ctx, owner, c.chunkURL(addr, ref), httpapi.HeaderChunkGen)
	if err != nil {
		return 0, err
	}
	gen, err := strconv.ParseUint(v, 10, 64)
	if err != nil || gen == 0 {
		return 0, fmt.Errorf("%w: node %s answered chunk generation %q", osprey.ErrIndeterminate, owner, v)
	}
	return gen, nil
}

// headValue sends HEAD u to owner and returns the reply's header h: a
// missing resource is osprey.ErrNotFound, a build that does not answer
// HEAD there (405) errors.ErrUnsupported.
func (c *Client) headValue(ctx context.Context, owner, u, h string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.send(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close() // a HEAD reply has none
	switch {
	case resp.StatusCode == http.StatusMethodNotAllowed:
		return "", fmt.Errorf("node %s does not report %s: %w", owner, h, errors.ErrUnsupported)
	case resp.StatusCode/100 != 2:
		return "", httpapi.ErrorFromStatus(resp.StatusCode, "HEAD "+req.URL.Path+" on "+owner)
	}
	return resp.Header.Get(h), nil
}

// OpenChunk streams length bytes at off of the chunk copy on owner. The
// caller MUST Close the reader.
func (c *Client) OpenChunk(ctx context.Context, owner string, ref httpapi.ChunkRef, off, length int64) (io.ReadCloser, error) {
	addr, err := c.Addr(owner)
	if err != nil {
		return nil, err
	}
	u := c.chunkURL(addr, ref) + "?off=" + strconv.FormatInt(off, 10) + "&n=" + strconv.FormatInt(length, 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(httpapi.HeaderNodeAuth, c.Token())
	resp, err := c.stream.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", osprey.ErrUnavailable, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("%w: node %s answered %d for chunk %d/%d", osprey.ErrUnavailable, owner, resp.StatusCode, ref.Blob, ref.Num)
	}
	if resp.ContentLength != length {
		resp.Body.Close()
		return nil, fmt.Errorf("node %s sent %d bytes for a %d-byte range", owner, resp.ContentLength, length)
	}
	return resp.Body, nil
}

// --- object copies (local backend) ---

func (c *Client) objectURL(addr, bucket, key string) string {
	return c.url(addr, "/internal/v1/objects/"+url.PathEscape(bucket)+"/"+url.PathEscape(key))
}

// PutObject streams an object copy to owner's local backend, which
// verifies md5 before the copy is visible. A mismatch is
// backend.ErrChecksum.
func (c *Client) PutObject(ctx context.Context, owner, bucket, key string, body io.Reader, size int64, md5 string) error {
	addr, err := c.Addr(owner)
	if err != nil {
		return err
	}
	if size == 0 {
		// net/http sends a non-nil body with length 0 as chunked, which
		// the receiver refuses: say "no body" explicitly.
		body = http.NoBody
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.objectURL(addr, bucket, key)+"?md5="+md5, body)
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header.Set(httpapi.HeaderNodeAuth, c.Token())
	resp, err := c.stream.Do(req)
	if err != nil {
		return fmt.Errorf("%w: copy to %s: %w", osprey.ErrUnavailable, owner, err)
	}
	defer drainClose(resp.Body)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode == http.StatusBadRequest && bytes.Contains(b, []byte(backend.ErrChecksum.Error())) {
			return fmt.Errorf("%w: copy to %s: %s", backend.ErrChecksum, owner, b)
		}
		return fmt.Errorf("%w: copy to %s: status %d: %s", osprey.ErrBackend, owner, resp.StatusCode, b)
	}
	return nil
}

// OpenObject streams part of the object copy held by owner; with a
// content id (not 0) the owner checks the bytes against that content's
// chunk sums as it reads them, and ends the body early at a bad chunk (a
// build before this one ignores the id and serves the bytes unchecked).
// The caller MUST Close the reader.
func (c *Client) OpenObject(ctx context.Context, owner, bucket, key string, content osprey.UID, off, length int64) (io.ReadCloser, error) {
	addr, err := c.Addr(owner)
	if err != nil {
		return nil, err
	}
	u := c.objectURL(addr, bucket, key) + "?off=" + strconv.FormatInt(off, 10) + "&n=" + strconv.FormatInt(length, 10)
	if content != 0 {
		u += "&content=" + content.String()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(httpapi.HeaderNodeAuth, c.Token())
	resp, err := c.stream.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: read copy on %s: %w", osprey.ErrUnavailable, owner, err)
	}
	if resp.StatusCode != http.StatusOK || resp.ContentLength != length {
		resp.Body.Close()
		return nil, fmt.Errorf("%w: read copy on %s: status %d", osprey.ErrUnavailable, owner, resp.StatusCode)
	}
	return resp.Body, nil
}

// DeleteObject deletes the object copy held by owner; a version other than
// "" deletes it only if it is still that write (ObjectVersion).
func (c *Client) DeleteObject(ctx context.Context, owner, bucket, key, version string) error {
	addr, err := c.Addr(owner)
	if err != nil {
		return err
	}
	u := c.objectURL(addr, bucket, key)
	if version != "" {
		u += "?version=" + url.QueryEscape(version)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, u, nil)
	if err != nil {
		return err
	}
	return c.DoJSON(req, nil)
}
