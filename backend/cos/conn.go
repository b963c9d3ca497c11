package cos

import (
	"context"
	"net"
	"time"
)

type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// withIOTimeout wraps dial so that every read and write on the returned
// connections must make progress within d. It restores what the SDK's own
// transport does, which is bypassed because the backend supplies its own
// HTTP client.
func withIOTimeout(dial dialFunc, d time.Duration) dialFunc {
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
