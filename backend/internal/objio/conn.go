package objio

import (
	"context"
	"net"
	"net/http"
	"time"
)

// DialFunc is the shape of net.Dialer.DialContext and http.Transport's
// DialContext.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// WithIOTimeout wraps dial so that every read and write on the returned
// connections must make progress within d (d <= 0 returns dial as is). A
// provider backend that hands its SDK its own HTTP client bypasses the
// SDK's transport and its timeouts; this restores them.
func WithIOTimeout(dial DialFunc, d time.Duration) DialFunc {
	if d <= 0 {
		return dial
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &deadlineConn{Conn: c, d: d}, nil
	}
}

// deadlineConn pushes its read (write) deadline d into the future before
// every read (write). An idle pooled connection therefore closes after d,
// which the HTTP transport handles like any idle close.
type deadlineConn struct {
	net.Conn
	d time.Duration
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.d)); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.d)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// TransportConfig is the connection settings a provider backend's Config
// holds.
type TransportConfig struct {
	// Dial replaces the dialer when set.
	Dial DialFunc
	// ConnectTimeout bounds establishing a TCP (and TLS) connection.
	ConnectTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for a response's headers.
	ResponseHeaderTimeout time.Duration
	// IOTimeout bounds every read and write (WithIOTimeout).
	IOTimeout time.Duration
	// IdleConnTimeout is how long an idle pooled connection is kept.
	IdleConnTimeout time.Duration
}

// NewTransport returns the HTTP transport a provider backend hands its
// SDK. It never decompresses: bytes must arrive as stored, since
// transparent gzip would change the length and the CRC the service
// reports.
func NewTransport(c TransportConfig) *http.Transport {
	dial := c.Dial
	if dial == nil {
		dial = (&net.Dialer{Timeout: c.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext
	}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           WithIOTimeout(dial, c.IOTimeout),
		TLSHandshakeTimeout:   c.ConnectTimeout,
		ResponseHeaderTimeout: c.ResponseHeaderTimeout,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       c.IdleConnTimeout,
		DisableCompression:    true,
	}
}

// NoRedirects is an http.Client CheckRedirect for provider APIs: they
// answer 3xx only for misdirected requests, and following them could leak
// signed requests to another host.
func NoRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
