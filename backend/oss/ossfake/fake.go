package ossfake

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/osprey-storage/osprey/backend/internal/fakestore"
)

// Config configures a fake OSS endpoint.
type Config struct {
	// Config holds the credentials (AccessKeyId → AccessKeySecret; each
	// AccessKeyId is its own account), the multipart limits and the
	// clock. MaxClockSkew is how far a request's Date may be from Now
	// before it is refused with RequestTimeTooSkewed.
	fakestore.Config
	// Domain is the region endpoint host without a port, for example
	// "oss-cn-hangzhou.aliyuncs.com". A request whose Host is
	// "<bucket>.<Domain>" is virtual-hosted; any other Host (the listener's
	// IP, Domain itself) is path-style ("/<bucket>/<key>") or a service
	// request ("/").
	Domain string
	// Location is reported as the bucket location ("oss-cn-hangzhou").
	Location string
}

// DefaultConfig returns the limits of the real service: 100 KiB minimum
// part size, 10000 parts, 15 minutes of clock skew. Credentials must
// still be filled in.
func DefaultConfig() Config {
	return Config{
		Config: fakestore.Config{
			MinPartSize:   100 << 10,
			MaxPartNumber: 10000,
			MaxClockSkew:  15 * time.Minute,
		},
		Domain:   "oss-cn-hangzhou.aliyuncs.com",
		Location: "oss-cn-hangzhou",
	}
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	if c.Domain == "" || strings.ContainsAny(c.Domain, ":/") {
		return fmt.Errorf("ossfake: domain %q must be a bare host name", c.Domain)
	}
	return c.Config.Validate("ossfake")
}

// Fault is what the fake does instead of serving a request; see
// fakestore.Fault for the kinds.
type Fault = fakestore.Fault

// The faults a FaultFunc can choose.
const (
	FaultNone           = fakestore.FaultNone
	FaultUnavailable    = fakestore.FaultUnavailable
	FaultInternalError  = fakestore.FaultInternalError
	FaultDropConnection = fakestore.FaultDropConnection
	FaultTruncateBody   = fakestore.FaultTruncateBody
	FaultStallBody      = fakestore.FaultStallBody
)

// FaultFunc decides, per request, whether to inject a fault.
type FaultFunc = fakestore.FaultFunc

// Call records one request the fake received. Op is the OSS API name:
// PutObject, GetObject, HeadObject, GetObjectMeta, DeleteObject,
// CopyObject, InitiateMultipartUpload, UploadPart,
// CompleteMultipartUpload, AbortMultipartUpload, PutBucket, GetBucketInfo,
// HeadBucket, DeleteBucket, ListBuckets, or Unsupported.
type Call = fakestore.Call

// ObjectInfo is a stored object as the fake holds it; Meta holds the user
// metadata without the "x-oss-meta-" prefix.
type ObjectInfo = fakestore.Object

// Server is an in-memory OSS endpoint on a loopback httptest listener. Its
// URL, used as an OSS endpoint, makes the SDK address buckets path-style;
// its DialContext lets a client use virtual-hosted names
// ("<bucket>.<Domain>") that resolve to nothing. It is safe for
// concurrent use.
type Server struct {
	*fakestore.Core
	cfg Config
}

// New starts a fake on 127.0.0.1 with a kernel-chosen port. The caller
// MUST Close it.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Location == "" {
		cfg.Location = "oss-cn-hangzhou"
	}
	s := &Server{cfg: cfg}
	core, err := fakestore.New(cfg.Config, fakestore.Dialect{
		Name:              "ossfake",
		HeaderPrefix:      "x-oss-",
		Server:            "AliyunOSS",
		XMLHeader:         xml.Header,
		UpperHexETags:     true,
		FoldETags:         true,
		EchoContentMD5:    true,
		BadDigestCode:     "InvalidDigest",
		PutBucketLocation: true,
		Messages:          messages,
		NewRequestID:      func(seq uint64) string { return fmt.Sprintf("5F%022X", seq) },
		NewUploadID: func(sum [md5.Size]byte, _ time.Time) string {
			return strings.ToUpper(hex.EncodeToString(sum[:]))
		},
		ValidBucketName: validBucketName,
		ValidKey:        validateKey,
		Location: func(bucket, key string) string {
			return "http://" + bucket + "." + cfg.Domain + "/" + url.PathEscape(key)
		},
		Classify:     s.classify,
		Authenticate: s.authenticate,
		Serve:        s.serve,
		WriteError:   writeError,
	})
	if err != nil {
		return nil, err
	}
	s.Core = core
	return s, nil
}
