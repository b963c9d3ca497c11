package s3api

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Config configures the S3 handler.
type Config struct {
	// Region is the only region accepted in credential scopes and the one
	// GetBucketLocation reports. Default "us-east-1".
	Region string
	// Credentials maps access keys to secrets. Required: without it every
	// request fails with InvalidAccessKeyId.
	Credentials Credentials
	// Logger receives request logs; default slog.Default(). Secrets,
	// signatures and Authorization headers are never logged.
	Logger *slog.Logger
	// Now is the clock used for signature time checks; default time.Now.
	Now func() time.Time
	// VirtualHostSuffixes enables virtual-host-style addressing: a request
	// for Host "bucket.s3.local" (any port) with suffix "s3.local" addresses
	// bucket "bucket". Requests for other hosts are path-style.
	VirtualHostSuffixes []string
}

// DefaultConfig returns a Config with the defaults filled in and no
// credentials.
func DefaultConfig() Config {
	return Config{Region: "us-east-1", Logger: slog.Default(), Now: time.Now}
}

// Validate reports configuration errors. NewHandler applies defaults to
// empty fields but does not call Validate; callers should.
func (c Config) Validate() error {
	if c.Credentials == nil {
		return errors.New("s3api: config: Credentials is required")
	}
	if c.Region != "" && strings.ContainsAny(c.Region, "/ \t\n") {
		return fmt.Errorf("s3api: config: invalid region %q", c.Region)
	}
	for _, s := range c.VirtualHostSuffixes {
		if s == "" || strings.HasPrefix(s, ".") || strings.Contains(s, ":") {
			return fmt.Errorf("s3api: config: invalid virtual host suffix %q (want e.g. \"s3.local\", no port)", s)
		}
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Region == "" {
		c.Region = "us-east-1"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Credentials == nil {
		c.Credentials = StaticCredentials(nil)
	}
	return c
}
