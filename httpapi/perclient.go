package httpapi

import (
	"fmt"
	"net"
	"net/http"
	"sync"

	"github.com/osprey-storage/osprey"
)

// clientSlots counts the uploads each client address has in flight, so one
// address cannot hold more than its cap of a node's upload slots. The map
// holds only addresses with uploads in flight: memory is bounded by the
// number of concurrent uploads, not by the number of clients ever seen.
type clientSlots struct {
	max int
	mu  sync.Mutex
	n   map[string]int
}

func newClientSlots(max int) *clientSlots {
	return &clientSlots{max: max, n: make(map[string]int)}
}

// acquire takes a slot for r's client and returns its release, or
// ErrTooManyRequests when the client is at its cap. A disabled cap (0)
// always succeeds.
func (c *clientSlots) acquire(r *http.Request) (func(), error) {
	if c == nil || c.max <= 0 {
		return func() {}, nil
	}
	addr := clientAddr(r.RemoteAddr)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[addr] >= c.max {
		return nil, fmt.Errorf("%w: this client already has %d uploads in flight on this node (the cap is %d)",
			osprey.ErrTooManyRequests, c.n[addr], c.max)
	}
	c.n[addr]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.n[addr]--; c.n[addr] <= 0 {
				delete(c.n, addr)
			}
		})
	}, nil
}

// clientAddr is the host part of a remote address: connections from one
// host share its cap.
func clientAddr(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	return host
}
