package fakestore

import (
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// Config holds what every provider's fake is configured with. A provider's
// Config embeds it.
type Config struct {
	// Credentials maps every accepted access key id to its secret. Each
	// id is its own account: a bucket belongs to the id that created it
	// and other ids get AccessDenied on it.
	Credentials map[string]string
	// MinPartSize is the smallest size CompleteMultipartUpload accepts for
	// every part but the last.
	MinPartSize int64
	// MaxPartNumber is the largest part number UploadPart accepts.
	MaxPartNumber int
	// MaxClockSkew is how far a request's signing time may be from Now
	// (how the provider applies it is its own).
	MaxClockSkew time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Validate reports whether the configuration is usable; name prefixes the
// messages ("ossfake").
func (c Config) Validate(name string) error {
	switch {
	case len(c.Credentials) == 0:
		return fmt.Errorf("%s: at least one credential is required", name)
	case c.MinPartSize <= 0:
		return fmt.Errorf("%s: min part size must be positive", name)
	case c.MaxPartNumber <= 0:
		return fmt.Errorf("%s: max part number must be positive", name)
	case c.MaxClockSkew <= 0:
		return fmt.Errorf("%s: max clock skew must be positive", name)
	}
	for id, secret := range c.Credentials {
		if id == "" || secret == "" {
			return fmt.Errorf("%s: credentials need a non-empty id and secret", name)
		}
	}
	return nil
}

// Fault is what the fake does instead of serving a request.
type Fault int

const (
	// FaultNone serves the request normally.
	FaultNone Fault = iota
	// FaultUnavailable answers 503 ServiceUnavailable with the provider's
	// error body.
	FaultUnavailable
	// FaultInternalError answers 500 InternalError with the provider's
	// error body.
	FaultInternalError
	// FaultDropConnection closes the connection without answering.
	FaultDropConnection
	// FaultTruncateBody serves a GetObject's headers and the first half of
	// the body, then drops the connection. Other operations get
	// FaultDropConnection.
	FaultTruncateBody
	// FaultStallBody serves a GetObject's headers and the first half of
	// the body, then sends nothing more until the client goes away (or the
	// fake is closed). Other operations get FaultDropConnection.
	FaultStallBody
)

// FaultFunc decides, per request, whether to inject a fault. It sees the
// call as classified before authentication (Status is 0) and must be safe
// for concurrent use.
type FaultFunc func(c Call) Fault

// Call records one request the fake received.
type Call struct {
	// Op is the provider's API name (PutObject, GetObject, UploadPart,
	// ...), or Unsupported.
	Op string
	// Bucket and Key address the resource ("" when not applicable).
	Bucket, Key string
	// PartNumber and UploadID are set for multipart calls.
	PartNumber int
	UploadID   string
	// Range is the request's Range header, if any.
	Range string
	// Host is the Host header the request carried.
	Host string
	// Status is the HTTP status sent, 0 if the connection was dropped.
	Status int
	// ErrorCode is the provider's error code sent, if any.
	ErrorCode string
}

// Object is a stored object. Stored objects are never modified, only
// replaced; Core.Object hands out copies.
type Object struct {
	Data        []byte
	ContentType string
	// Meta holds the user metadata without the provider's meta prefix,
	// keys lower-cased.
	Meta      map[string]string
	ETag      string // as sent in the ETag header, with quotes
	Multipart bool   // completed from a multipart upload
	ModTime   time.Time
	CRC       uint64 // CRC-64/ECMA of Data
}

type bucket struct {
	name    string
	owner   string // access key id that created it
	created time.Time
	objects map[string]*Object
	uploads map[string]*upload
}

type upload struct {
	id          string
	key         string
	contentType string
	meta        map[string]string
	parts       map[int]*part
}

type part struct {
	data []byte
	sum  [md5.Size]byte
	etag string
}

// Core is an in-memory object store on a loopback httptest listener,
// serving the requests a Dialect classifies. Provider fakes embed it for
// its inspection methods. It is safe for concurrent use.
type Core struct {
	cfg Config
	d   Dialect
	ts  *httptest.Server

	mu      sync.Mutex
	buckets map[string]*bucket
	calls   []Call
	fault   FaultFunc
	seq     uint64
}

// New validates cfg (with the dialect's name) and starts a fake on
// 127.0.0.1 with a kernel-chosen port. The caller MUST Close it.
func New(cfg Config, d Dialect) (*Core, error) {
	if err := cfg.Validate(d.Name); err != nil {
		return nil, err
	}
	if d.Classify == nil || d.Authenticate == nil || d.Serve == nil || d.WriteError == nil ||
		d.ValidBucketName == nil || d.ValidKey == nil || d.NewRequestID == nil || d.NewUploadID == nil || d.Location == nil {
		return nil, errors.New(d.Name + ": incomplete dialect")
	}
	creds := make(map[string]string, len(cfg.Credentials))
	for k, v := range cfg.Credentials {
		creds[k] = v
	}
	cfg.Credentials = creds
	c := &Core{cfg: cfg, d: d, buckets: make(map[string]*bucket)}
	c.ts = httptest.NewServer(http.HandlerFunc(c.serveHTTP))
	return c, nil
}

// Close shuts the listener down and waits for in-flight requests.
func (c *Core) Close() {
	c.ts.CloseClientConnections()
	c.ts.Close()
}

// URL returns the fake's base URL, "http://127.0.0.1:<port>".
func (c *Core) URL() string { return c.ts.URL }

// Addr returns the listener's "127.0.0.1:<port>".
func (c *Core) Addr() string { return c.ts.Listener.Addr().String() }

// DialContext connects to the fake whatever address is asked for. Put in
// an http.Transport, it lets a client use the provider's real host names,
// which resolve to nothing here.
func (c *Core) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", c.Addr())
}

// SetFault installs f (nil removes it).
func (c *Core) SetFault(f FaultFunc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fault = f
}

// Calls returns a copy of the requests received so far, in arrival order.
func (c *Core) Calls() []Call {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Call(nil), c.calls...)
}

// ResetCalls forgets the recorded calls.
func (c *Core) ResetCalls() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = nil
}

// Object returns a copy of bucket/key, or false if there is none.
func (c *Core) Object(bucketName, key string) (Object, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.buckets[bucketName]
	if b == nil || b.objects[key] == nil {
		return Object{}, false
	}
	o := *b.objects[key]
	o.Data = append([]byte(nil), o.Data...)
	meta := make(map[string]string, len(o.Meta))
	for k, v := range o.Meta {
		meta[k] = v
	}
	o.Meta = meta
	return o, true
}

// Keys returns the object keys in bucketName, unsorted.
func (c *Core) Keys(bucketName string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.buckets[bucketName]
	if b == nil {
		return nil
	}
	keys := make([]string, 0, len(b.objects))
	for k := range b.objects {
		keys = append(keys, k)
	}
	return keys
}

// Uploads returns how many multipart uploads are in progress (initiated,
// neither completed nor aborted) in bucketName.
func (c *Core) Uploads(bucketName string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b := c.buckets[bucketName]; b != nil {
		return len(b.uploads)
	}
	return 0
}

// HasBucket reports whether bucketName exists.
func (c *Core) HasBucket(bucketName string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buckets[bucketName] != nil
}

// Now returns the fake's current time (Config.Now, or time.Now).
func (c *Core) Now() time.Time {
	if c.cfg.Now != nil {
		return c.cfg.Now()
	}
	return time.Now()
}

func (c *Core) record(call Call) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, call)
}

func (c *Core) nextRequestID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	return c.d.NewRequestID(c.seq)
}

// BucketInfo describes a bucket for the provider's listings.
type BucketInfo struct {
	Name, Owner string
	Created     time.Time
}

// Buckets returns the caller's buckets whose names start with prefix and
// sort after marker, sorted by name.
func (req *Request) Buckets(prefix, marker string) []BucketInfo {
	c := req.core
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []BucketInfo
	for name, b := range c.buckets {
		if b.owner == req.CallerID && strings.HasPrefix(name, prefix) && name > marker {
			out = append(out, BucketInfo{Name: name, Owner: b.owner, Created: b.created})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Bucket describes the request's bucket, if it exists and the caller owns
// it.
func (req *Request) Bucket() (BucketInfo, *Error) {
	c := req.core
	c.mu.Lock()
	defer c.mu.Unlock()
	b, e := req.lookupBucket(req.BucketName)
	if e != nil {
		return BucketInfo{}, e
	}
	return BucketInfo{Name: b.name, Owner: b.owner, Created: b.created}, nil
}

// Request is a classified request. The Dialect's Classify fills in the
// exported fields; the core adds the caller once it is authenticated.
type Request struct {
	Call       Call
	BucketName string
	Key        string
	Query      url.Values
	// HostErr, if set, is answered after fault injection and before
	// authentication (the Host names no bucket this fake serves).
	HostErr *Error
	// CallerID is the authenticated access key id.
	CallerID string

	core            *Core
	truncate, stall bool
	recorded        bool
}
