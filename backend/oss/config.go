package oss

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
	// MinPartSize is the smallest part OSS accepts for every part of a
	// multipart upload but the last.
	MinPartSize = 100 << 10
	// MaxPartSize is the largest part OSS accepts.
	MaxPartSize = 5 << 30
	// MaxParts is the largest part number OSS accepts.
	MaxParts = 10000
	// MaxCopySize is the largest object CopyObject accepts. Put uses a
	// copy onto itself to record the md5 of a multipart upload whose md5
	// was not given in advance, up to this size.
	MaxCopySize = 1 << 30
	// maxPhysicalBucketLen is OSS's limit on bucket names.
	maxPhysicalBucketLen = 63
)

// Config configures the OSS backend.
type Config struct {
	// Endpoint is the OSS region endpoint, e.g.
	// "oss-cn-beijing.aliyuncs.com" or "https://oss-cn-beijing.aliyuncs.com".
	// Without a scheme, https is used. Buckets are addressed
	// virtual-hosted ("<bucket>.<endpoint>"); the SDK switches to
	// path-style by itself for an IP-address endpoint.
	Endpoint string `yaml:"endpoint"`
	// AccessKeyID is the AccessKey ID used to sign requests.
	AccessKeyID string `yaml:"access_key_id"`
	// AccessKeySecret is the AccessKey secret. It is never logged.
	AccessKeySecret string `yaml:"access_key_secret"`
	// BucketPrefix is prepended to every logical bucket name to form the
	// OSS bucket name ("osprey-" + "image"). OSS bucket names are global,
	// so a prefix unique to the deployment is strongly recommended.
	BucketPrefix string `yaml:"bucket_prefix"`
	// PartSize is the size of multipart upload parts and the largest
	// object uploaded with a single PutObject. Put buffers one part, so it
	// also bounds the memory per Put. Between MinPartSize and
	// MaxPartSize; objects with more than MaxParts parts use larger parts.
	PartSize int64 `yaml:"part_size"`
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

// DefaultConfig returns a Config with the default part size and timeouts.
// Endpoint and credentials must be filled in.
func DefaultConfig() Config {
	return Config{
		PartSize:              16 << 20,
		ConnectTimeout:        10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		IOTimeout:             60 * time.Second,
	}
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	if c.Endpoint == "" {
		return errors.New("oss: endpoint is required")
	}
	if _, err := c.endpointURL(); err != nil {
		return err
	}
	if c.AccessKeyID == "" || c.AccessKeySecret == "" {
		return errors.New("oss: access_key_id and access_key_secret are required")
	}
	if strings.TrimSpace(c.AccessKeyID) != c.AccessKeyID || strings.TrimSpace(c.AccessKeySecret) != c.AccessKeySecret {
		return errors.New("oss: credentials must not have leading or trailing spaces")
	}
	if err := validatePrefix(c.BucketPrefix); err != nil {
		return err
	}
	if c.PartSize < MinPartSize || c.PartSize > MaxPartSize {
		return fmt.Errorf("oss: part_size %d must be between %d and %d", c.PartSize, MinPartSize, int64(MaxPartSize))
	}
	if c.ConnectTimeout <= 0 || c.ResponseHeaderTimeout <= 0 || c.IOTimeout < 0 {
		return errors.New("oss: connect and response header timeouts must be positive, io_timeout not negative")
	}
	return nil
}

// LogValue keeps the secret out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("endpoint", c.Endpoint),
		slog.String("access_key_id", c.AccessKeyID),
		slog.String("bucket_prefix", c.BucketPrefix),
		slog.Int64("part_size", c.PartSize),
	)
}

// endpointURL returns the endpoint with a scheme (https by default).
func (c Config) endpointURL() (string, error) {
	ep := c.Endpoint
	if !strings.Contains(ep, "://") {
		ep = "https://" + ep
	}
	u, err := url.Parse(ep)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", fmt.Errorf("oss: endpoint %q must be a host[:port] with an optional http:// or https:// scheme", c.Endpoint)
	}
	return u.Scheme + "://" + u.Host, nil
}

func validatePrefix(p string) error {
	if len(p) > maxPhysicalBucketLen-40 {
		return fmt.Errorf("oss: bucket_prefix %q is longer than %d characters", p, maxPhysicalBucketLen-40)
	}
	if p != "" && p[0] == '-' {
		return fmt.Errorf("oss: bucket_prefix %q must not start with '-'", p)
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Errorf("oss: bucket_prefix %q may only contain lowercase letters, digits and '-'", p)
		}
	}
	return nil
}
