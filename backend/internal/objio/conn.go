package objio

import (
	"context"
	"net"
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
