package cosfake

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/osprey-storage/osprey/backend/internal/fakestore"
)

// Config configures a fake COS region.
type Config struct {
	// Config holds the credentials (SecretId → SecretKey; each SecretId is
	// its own account), the multipart limits and the clock. MaxClockSkew
	// is how far in the future a signature's start time may be; expired
	// signatures are always refused.
	fakestore.Config
	// AppID is the account APPID that every bucket name must end with
	// ("<name>-<AppID>").
	AppID string
	// Region is the region the fake serves, e.g. "ap-nanjing". Buckets
	// are addressed as "<name>-<AppID>.cos.<Region>.myqcloud.com"; the
	// service endpoint is "service.cos.myqcloud.com" (or
	// "cos.<Region>.myqcloud.com").
	Region string
}

// DefaultConfig returns the limits of the real service: 1 MiB minimum
// part size, 10000 parts. Credentials must still be filled in.
func DefaultConfig() Config {
	return Config{
		Config: fakestore.Config{
			MinPartSize:   1 << 20,
			MaxPartNumber: 10000,
			MaxClockSkew:  15 * time.Minute,
		},
		AppID:  "1250000000",
		Region: "ap-nanjing",
	}
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	switch {
	case c.AppID == "" || strings.Trim(c.AppID, "0123456789") != "":
		return fmt.Errorf("cosfake: app id %q must be digits", c.AppID)
	case c.Region == "" || strings.Trim(c.Region, "abcdefghijklmnopqrstuvwxyz0123456789-") != "":
		return fmt.Errorf("cosfake: region %q must be lowercase letters, digits and '-'", c.Region)
	}
	return c.Config.Validate("cosfake")
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

// Call records one request the fake received. Op is the COS API name:
// PutObject, GetObject, HeadObject, DeleteObject, CopyObject,
// InitiateMultipartUpload, UploadPart, CompleteMultipartUpload,
// AbortMultipartUpload, PutBucket, HeadBucket, DeleteBucket, GetService,
// or Unsupported.
type Call = fakestore.Call

// ObjectInfo is a stored object as the fake holds it; Meta holds the user
// metadata without the "x-cos-meta-" prefix.
type ObjectInfo = fakestore.Object

// Server is an in-memory COS region on a loopback httptest listener.
// Requests sent to its URL must still name the bucket in the Host header;
// its DialContext lets a client use the real host names
// ("<bucket>.cos.<region>.myqcloud.com") unchanged. It is safe for
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
	s := &Server{cfg: cfg}
	core, err := fakestore.New(cfg.Config, fakestore.Dialect{
		Name:            "cosfake",
		HeaderPrefix:    "x-cos-",
		Server:          "tencent-cos",
		BadDigestCode:   "BadDigest",
		OwnedByYou:      true,
		ContiguousParts: true,
		BucketHeaders:   http.Header{"X-Cos-Bucket-Region": {cfg.Region}},
		Messages:        messages,
		NewRequestID:    func(seq uint64) string { return fmt.Sprintf("NjA%021x", seq) },
		NewUploadID: func(sum [md5.Size]byte, now time.Time) string {
			return strconv.FormatInt(now.Unix(), 10) + hex.EncodeToString(sum[:])
		},
		ValidBucketName: s.validBucketName,
		ValidKey:        validateKey,
		Location: func(bucket, key string) string {
			return bucket + ".cos." + cfg.Region + ".myqcloud.com/" + key
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
