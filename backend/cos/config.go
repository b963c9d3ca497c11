package cos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"
)

const (
	// MinPartSize is the smallest part COS accepts for every part of a
	// multipart upload but the last.
	MinPartSize = 1 << 20
	// MaxPartSize is the largest part COS accepts.
	MaxPartSize = 5 << 30
	// MaxParts is the largest part number COS accepts.
	MaxParts = 10000
	// MaxCopySize is the largest object a single PUT Object - Copy
	// accepts. Put uses a copy onto itself to record the md5 of a
	// multipart upload whose md5 was not given in advance, up to this size.
	MaxCopySize = 5 << 30
	// maxHostLen is COS's limit on a bucket's domain name
	// "<name>-<appid>.cos.<region>.myqcloud.com".
	maxHostLen = 60
)

// Config configures the COS backend.
type Config struct {
	// Region is the COS region, e.g. "ap-nanjing".
	Region string `yaml:"region"`
	// AppID is the account's APPID; COS bucket names are
	// "<name>-<appid>".
	AppID string `yaml:"app_id"`
	// SecretID is the API key ID used to sign requests.
	SecretID string `yaml:"secret_id"`
	// SecretKey is the API key secret. It is never logged.
	SecretKey string `yaml:"secret_key"`
	// BucketPrefix is prepended to every logical bucket name: the COS
	// bucket for "image" is "<prefix>image-<appid>".
	BucketPrefix string `yaml:"bucket_prefix"`
	// PartSize is the size of multipart upload parts and the largest
	// object uploaded with a single PUT. Put buffers one part, so it also
	// bounds the memory per Put. Between MinPartSize and MaxPartSize;
	// objects with more than MaxParts parts use larger parts.
	PartSize int64 `yaml:"part_size"`
	// BaseURL overrides where requests go. Empty means
	// "https://{bucket}.cos.{region}.myqcloud.com". A value containing
	// "{bucket}" is such a template ("{bucket}" is the full
	// "<name>-<appid>", "{region}" the region), for accelerated or
	// private-cloud domains. Any other value is the address of a server
	// that serves every bucket (a proxy, or a test fake): requests are
	// sent there with the standard "<bucket>.cos.<region>.myqcloud.com"
	// in the Host header, which is what COS routes and signs on.
	BaseURL string `yaml:"base_url"`
	// ServiceURL overrides the endpoint of the service API (listing
	// buckets, used by Check). Empty means https://service.cos.myqcloud.com,
	// or BaseURL when BaseURL is a plain address.
	ServiceURL string `yaml:"service_url"`
	// MaxAttempts is how many times the SDK tries a request that fails
	// with a 5xx or a transport error (requests whose body cannot be
	// replayed are tried once). At least 1.
	MaxAttempts int `yaml:"max_attempts"`
	// ConnectTimeout bounds establishing a TCP (and TLS) connection.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// ResponseHeaderTimeout bounds the wait for a response's headers after
	// the request was sent. Bodies are bounded by the caller's context.
	ResponseHeaderTimeout time.Duration `yaml:"response_header_timeout"`
	// IOTimeout fails a connection on which a read or a write makes no
	// progress for this long (a stalled body), so a hung transfer ends
	// with backend.ErrUnavailable even without a context deadline. Zero
	// disables it.
	IOTimeout time.Duration `yaml:"io_timeout"`
	// DialContext, if set, replaces the dialer, e.g. to point every host
	// name at a test server. Not settable from YAML.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error) `yaml:"-"`
	// Logger receives debug logs; nil means slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// DefaultConfig returns a Config with the default part size, retries and
// timeouts. Region, AppID and credentials must be filled in.
func DefaultConfig() Config {
	return Config{
		PartSize:              16 << 20,
		MaxAttempts:           3,
		ConnectTimeout:        10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		IOTimeout:             60 * time.Second,
	}
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	if c.Region == "" || strings.Trim(c.Region, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
		return fmt.Errorf("cos: region %q must be lowercase letters, digits and '-'", c.Region)
	}
	if c.AppID == "" || strings.Trim(c.AppID, "0123456789") != "" {
		return fmt.Errorf("cos: app_id %q must be the account's numeric APPID", c.AppID)
	}
	if c.SecretID == "" || c.SecretKey == "" {
		return errors.New("cos: secret_id and secret_key are required")
	}
	if strings.TrimSpace(c.SecretID) != c.SecretID || strings.TrimSpace(c.SecretKey) != c.SecretKey {
		return errors.New("cos: credentials must not have leading or trailing spaces")
	}
	if c.BucketPrefix != "" && c.BucketPrefix[0] == '-' {
		return fmt.Errorf("cos: bucket_prefix %q must not start with '-'", c.BucketPrefix)
	}
	if strings.Trim(c.BucketPrefix, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
		return fmt.Errorf("cos: bucket_prefix %q may only contain lowercase letters, digits and '-'", c.BucketPrefix)
	}
	if c.PartSize < MinPartSize || c.PartSize > MaxPartSize {
		return fmt.Errorf("cos: part_size %d must be between %d and %d", c.PartSize, MinPartSize, int64(MaxPartSize))
	}
	if c.MaxAttempts < 1 {
		return errors.New("cos: max_attempts must be at least 1")
	}
	if c.ConnectTimeout <= 0 || c.ResponseHeaderTimeout <= 0 || c.IOTimeout < 0 {
		return errors.New("cos: connect and response header timeouts must be positive, io_timeout not negative")
	}
	if c.BaseURL != "" {
		if _, err := parseBase(strings.NewReplacer("{bucket}", "b-1", "{region}", c.Region).Replace(c.BaseURL)); err != nil {
			return fmt.Errorf("cos: base_url: %w", err)
		}
	}
	if c.ServiceURL != "" {
		if _, err := parseBase(c.ServiceURL); err != nil {
			return fmt.Errorf("cos: service_url: %w", err)
		}
	}
	return nil
}

// LogValue keeps the secret out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("region", c.Region),
		slog.String("app_id", c.AppID),
		slog.String("secret_id", c.SecretID),
		slog.String("bucket_prefix", c.BucketPrefix),
		slog.String("base_url", c.BaseURL),
		slog.Int64("part_size", c.PartSize),
	)
}

func parseBase(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("%q must be an http:// or https:// URL without a path", s)
	}
	u.Path = ""
	return u, nil
}

// endpoints says where the requests for one bucket go.
type endpoints struct {
	url  *url.URL // where to connect
	host string   // Host header, "" to use url's host
	// sourceHost is how the bucket is named in x-cos-copy-source.
	sourceHost string
}

// bucketEndpoints resolves the endpoints for the full bucket name.
func (c Config) bucketEndpoints(full string) (endpoints, error) {
	standard := full + ".cos." + c.Region + ".myqcloud.com"
	base := c.BaseURL
	if base == "" {
		base = "https://{bucket}.cos.{region}.myqcloud.com"
	}
	if strings.Contains(base, "{bucket}") {
		u, err := parseBase(strings.NewReplacer("{bucket}", full, "{region}", c.Region).Replace(base))
		if err != nil {
			return endpoints{}, err
		}
		return endpoints{url: u, sourceHost: u.Hostname()}, nil
	}
	u, err := parseBase(base)
	if err != nil {
		return endpoints{}, err
	}
	return endpoints{url: u, host: standard, sourceHost: standard}, nil
}

// serviceEndpoints resolves the endpoints for the service API.
func (c Config) serviceEndpoints() (endpoints, error) {
	switch {
	case c.ServiceURL != "":
		u, err := parseBase(c.ServiceURL)
		return endpoints{url: u}, err
	case c.BaseURL != "" && !strings.Contains(c.BaseURL, "{bucket}"):
		u, err := parseBase(c.BaseURL)
		return endpoints{url: u, host: "service.cos.myqcloud.com"}, err
	default:
		u, err := parseBase("https://service.cos.myqcloud.com")
		return endpoints{url: u}, err
	}
}
