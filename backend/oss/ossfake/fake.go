package ossfake

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Config configures a fake OSS endpoint.
type Config struct {
	// Credentials maps every accepted AccessKeyId to its AccessKeySecret.
	// Each AccessKeyId is its own account: a bucket belongs to the key that
	// created it and other keys get AccessDenied on it.
	Credentials map[string]string
	// Domain is the region endpoint host without a port, for example
	// "oss-cn-hangzhou.aliyuncs.com". A request whose Host is
	// "<bucket>.<Domain>" is virtual-hosted; any other Host (the listener's
	// IP, Domain itself) is path-style ("/<bucket>/<key>") or a service
	// request ("/").
	Domain string
	// Location is reported as the bucket location ("oss-cn-hangzhou").
	Location string
	// MinPartSize is the smallest size CompleteMultipartUpload accepts for
	// every part but the last. OSS uses 100 KiB.
	MinPartSize int64
	// MaxPartNumber is the largest part number UploadPart accepts. OSS
	// uses 10000.
	MaxPartNumber int
	// MaxClockSkew is how far a request's Date may be from Now before it
	// is refused with RequestTimeTooSkewed. OSS uses 15 minutes.
	MaxClockSkew time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// DefaultConfig returns the limits of the real service. Credentials must
// still be filled in.
func DefaultConfig() Config {
	return Config{
		Domain:        "oss-cn-hangzhou.aliyuncs.com",
		Location:      "oss-cn-hangzhou",
		MinPartSize:   100 << 10,
		MaxPartNumber: 10000,
		MaxClockSkew:  15 * time.Minute,
	}
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	switch {
	case len(c.Credentials) == 0:
		return errors.New("ossfake: at least one credential is required")
	case c.Domain == "" || strings.ContainsAny(c.Domain, ":/"):
		return fmt.Errorf("ossfake: domain %q must be a bare host name", c.Domain)
	case c.MinPartSize <= 0:
		return errors.New("ossfake: min part size must be positive")
	case c.MaxPartNumber <= 0:
		return errors.New("ossfake: max part number must be positive")
	case c.MaxClockSkew <= 0:
		return errors.New("ossfake: max clock skew must be positive")
	}
	for id, secret := range c.Credentials {
		if id == "" || secret == "" {
			return errors.New("ossfake: credentials need a non-empty id and secret")
		}
	}
	return nil
}

// Fault is what the fake does instead of serving a request.
type Fault int

const (
	// FaultNone serves the request normally.
	FaultNone Fault = iota
	// FaultUnavailable answers 503 ServiceUnavailable with OSS's error XML.
	FaultUnavailable
	// FaultInternalError answers 500 InternalError with OSS's error XML.
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
	// Op is the OSS API name: PutObject, GetObject, HeadObject,
	// GetObjectMeta, DeleteObject, CopyObject, InitiateMultipartUpload,
	// UploadPart, CompleteMultipartUpload, AbortMultipartUpload, PutBucket,
	// GetBucketInfo, HeadBucket, DeleteBucket, ListBuckets, or Unsupported.
	Op string
	// Bucket and Key address the resource ("" when not applicable).
	Bucket, Key string
	// PartNumber and UploadID are set for multipart calls.
	PartNumber int
	UploadID   string
	// Range is the request's Range header, if any.
	Range string
	// Status is the HTTP status sent, 0 if the connection was dropped.
	Status int
	// ErrorCode is the OSS error code sent, if any.
	ErrorCode string
}

// Server is an in-memory OSS endpoint on a loopback httptest listener. It
// is safe for concurrent use.
type Server struct {
	cfg Config
	ts  *httptest.Server

	mu      sync.Mutex
	buckets map[string]*bucket
	calls   []Call
	fault   FaultFunc
	seq     uint64
}

// New starts a fake on 127.0.0.1 with a kernel-chosen port. The caller
// MUST Close it.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	creds := make(map[string]string, len(cfg.Credentials))
	for k, v := range cfg.Credentials {
		creds[k] = v
	}
	cfg.Credentials = creds
	if cfg.Location == "" {
		cfg.Location = "oss-cn-hangzhou"
	}
	s := &Server{cfg: cfg, buckets: make(map[string]*bucket)}
	s.ts = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	return s, nil
}

// Close shuts the listener down and waits for in-flight requests.
func (s *Server) Close() {
	s.ts.CloseClientConnections()
	s.ts.Close()
}

// URL returns the fake's base URL, "http://127.0.0.1:<port>". Used as an
// OSS endpoint, it makes the SDK address buckets path-style.
func (s *Server) URL() string { return s.ts.URL }

// Addr returns the listener's "127.0.0.1:<port>".
func (s *Server) Addr() string { return s.ts.Listener.Addr().String() }

// DialContext connects to the fake whatever address is asked for. Put in
// an http.Transport, it lets a client use real virtual-hosted names
// ("<bucket>.<Domain>") that resolve to nothing.
func (s *Server) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", s.Addr())
}

// SetFault installs f (nil removes it).
func (s *Server) SetFault(f FaultFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

// Calls returns a copy of the requests received so far, in arrival order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// ResetCalls forgets the recorded calls.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
}

// ObjectInfo is a stored object as the fake holds it.
type ObjectInfo struct {
	Data        []byte
	ContentType string
	// Meta holds the user metadata without the "x-oss-meta-" prefix,
	// keys lower-cased.
	Meta    map[string]string
	ETag    string // as sent in the ETag header, with quotes
	Type    string // "Normal" or "Multipart"
	ModTime time.Time
}

// Object returns a copy of bucket/key, or false if there is none.
func (s *Server) Object(bucketName, key string) (ObjectInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[bucketName]
	if b == nil {
		return ObjectInfo{}, false
	}
	o := b.objects[key]
	if o == nil {
		return ObjectInfo{}, false
	}
	meta := make(map[string]string, len(o.meta))
	for k, v := range o.meta {
		meta[k] = v
	}
	return ObjectInfo{
		Data:        append([]byte(nil), o.data...),
		ContentType: o.contentType,
		Meta:        meta,
		ETag:        o.etag,
		Type:        o.objType,
		ModTime:     o.modTime,
	}, true
}

// Keys returns the object keys in bucketName, unsorted.
func (s *Server) Keys(bucketName string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[bucketName]
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
func (s *Server) Uploads(bucketName string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[bucketName]
	if b == nil {
		return 0
	}
	return len(b.uploads)
}

// HasBucket reports whether bucketName exists.
func (s *Server) HasBucket(bucketName string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buckets[bucketName] != nil
}

func (s *Server) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now()
	}
	return time.Now()
}

func (s *Server) record(c Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
}

func (s *Server) nextRequestID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return fmt.Sprintf("5F%022X", s.seq)
}
