package raftstore

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// The Raft transport authenticates every connection before a single raft
// byte is read: a mutual challenge-response over a key derived from the
// cluster's join-token hash, which every member holds (new members from
// the token they join with, existing ones from the replicated state).
// Someone who can reach the port but cannot prove the key is cut off
// before raft decodes anything, so forged heartbeats, votes or entries
// never reach it.
//
//	dialer   → listener: "OSPRYRT1" | nonce_c (32)
//	listener → dialer:   nonce_s (32) | HMAC(K, "server" | nonce_c | nonce_s)
//	dialer   → listener: HMAC(K, "client" | nonce_c | nonce_s)
//
// K = HMAC-SHA256(key material, "osprey raft transport v1"). Each side
// checks the other's MAC in constant time; fresh nonces on both sides
// make a recorded handshake useless. Without TLS the transport is not
// encrypted: keep the raft port on a private network.
//
// With TLS (Config.ServerTLS/ClientTLS) every connection is first a
// mutual-TLS session (both sides present a certificate signed by the
// cluster CA, the listener requires one), and the key handshake then runs
// inside it: a peer needs both a cluster certificate and the cluster key.

const (
	handshakeMagic   = "OSPRYRT1"
	handshakeTimeout = 5 * time.Second
	nonceSize        = 32
)

// ErrHandshake is returned for a peer that failed the transport handshake.
var ErrHandshake = errors.New("raftstore: raft transport handshake failed")

// authLayer is a raft.StreamLayer over TCP that runs the handshake on every
// connection. Accept returns at once; the handshake of an accepted
// connection runs on its first Read or Write, in the goroutine raft
// serves it from, so a slow or silent client never blocks accepting.
type authLayer struct {
	net.Listener
	advertise net.Addr
	auth      transportAuth
	log       *slog.Logger

	refusals atomic.Int64 // inbound connections that failed the handshake

	mu      sync.Mutex
	lastLog time.Time
}

var _ raft.StreamLayer = (*authLayer)(nil)

// transportAuth is what a connection must prove: the key (nil: none, for
// this package's TLS-only tests) and, with server set, a TLS session.
type transportAuth struct {
	key    func() []byte
	server *tls.Config
	client func(serverName string) *tls.Config
}

func newAuthLayer(ln net.Listener, advertise net.Addr, auth transportAuth, lg *slog.Logger) *authLayer {
	return &authLayer{Listener: ln, advertise: advertise, auth: auth, log: lg}
}

// Addr is the address other servers dial.
func (l *authLayer) Addr() net.Addr { return l.advertise }

// Accept waits for the next connection; its handshake runs lazily.
func (l *authLayer) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if l.auth.server != nil {
		c = tls.Server(c, l.auth.server)
	}
	return &serverConn{Conn: c, l: l}, nil
}

// Dial connects to a peer and proves the key to it (and checks its proof)
// before returning the connection.
func (l *authLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", string(address), timeout)
	if err != nil {
		return nil, err
	}
	if l.auth.client != nil {
		host, _, _ := net.SplitHostPort(string(address))
		tc := tls.Client(c, l.auth.client(host))
		_ = tc.SetDeadline(time.Now().Add(handshakeTimeout))
		if err := tc.Handshake(); err != nil {
			c.Close()
			return nil, fmt.Errorf("%w: TLS with %s: %w", ErrHandshake, address, err)
		}
		_ = tc.SetDeadline(time.Time{})
		c = tc
	}
	if l.auth.key != nil {
		if err := clientHandshake(c, derive(l.auth.key())); err != nil {
			c.Close()
			return nil, fmt.Errorf("%w: with %s: %w", ErrHandshake, address, err)
		}
	}
	return c, nil
}

// refused logs a failed inbound handshake, at most once a second.
func (l *authLayer) refused(c net.Conn, err error) {
	l.refusals.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if time.Since(l.lastLog) < time.Second {
		return
	}
	l.lastLog = time.Now()
	l.log.Warn("refused a raft connection that did not prove the cluster key or certificate", "remote", c.RemoteAddr().String(), "err", err)
}

type serverConn struct {
	net.Conn
	l    *authLayer
	once sync.Once
	err  error
}

func (c *serverConn) handshake() error {
	c.once.Do(func() {
		if tc, ok := c.Conn.(*tls.Conn); ok {
			_ = tc.SetDeadline(time.Now().Add(handshakeTimeout))
			if c.err = tc.Handshake(); c.err == nil {
				_ = tc.SetDeadline(time.Time{})
			}
		}
		if c.err == nil && c.l.auth.key != nil {
			c.err = serverHandshake(c.Conn, derive(c.l.auth.key()))
		}
		if c.err != nil {
			c.l.refused(c.Conn, c.err)
			c.err = fmt.Errorf("%w: %w", ErrHandshake, c.err)
			c.Conn.Close()
		}
	})
	return c.err
}

func (c *serverConn) Read(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *serverConn) Write(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// derive turns the key material into the transport key.
func derive(material []byte) []byte {
	m := hmac.New(sha256.New, material)
	m.Write([]byte("osprey raft transport v1"))
	return m.Sum(nil)
}

func proof(key []byte, role string, nc, ns []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(role))
	m.Write(nc)
	m.Write(ns)
	return m.Sum(nil)
}

func clientHandshake(c net.Conn, key []byte) error {
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	defer c.SetDeadline(time.Time{})
	nc := make([]byte, nonceSize)
	if _, err := rand.Read(nc); err != nil {
		return err
	}
	if _, err := c.Write(append([]byte(handshakeMagic), nc...)); err != nil {
		return err
	}
	reply := make([]byte, nonceSize+sha256.Size)
	if _, err := io.ReadFull(c, reply); err != nil {
		return fmt.Errorf("no proof from the peer (not an osprey node of this cluster?): %w", err)
	}
	ns, macS := reply[:nonceSize], reply[nonceSize:]
	if !hmac.Equal(macS, proof(key, "server", nc, ns)) {
		return errors.New("the peer does not hold this cluster's key (another cluster's join token?)")
	}
	_, err := c.Write(proof(key, "client", nc, ns))
	return err
}

func serverHandshake(c net.Conn, key []byte) error {
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	defer c.SetDeadline(time.Time{})
	hello := make([]byte, len(handshakeMagic)+nonceSize)
	if _, err := io.ReadFull(c, hello); err != nil {
		return fmt.Errorf("no handshake: %w", err)
	}
	if !bytes.Equal(hello[:len(handshakeMagic)], []byte(handshakeMagic)) {
		return errors.New("no handshake (an unauthenticated raft client, or an osprey of an earlier release)")
	}
	nc := hello[len(handshakeMagic):]
	ns := make([]byte, nonceSize)
	if _, err := rand.Read(ns); err != nil {
		return err
	}
	if _, err := c.Write(append(ns, proof(key, "server", nc, ns)...)); err != nil {
		return err
	}
	macC := make([]byte, sha256.Size)
	if _, err := io.ReadFull(c, macC); err != nil {
		return fmt.Errorf("no proof from the client: %w", err)
	}
	if !hmac.Equal(macC, proof(key, "client", nc, ns)) {
		return errors.New("wrong cluster key")
	}
	return nil
}

// newAuthTransport listens on bind and returns a raft transport whose
// every connection is authenticated. Like raft's TCP transport, it
// advertises the bound address unless told otherwise and refuses to
// advertise an unspecified IP.
func newAuthTransport(bind string, advertise net.Addr, auth transportAuth, lg *slog.Logger, hl hclog.Logger) (*raft.NetworkTransport, *authLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, nil, err
	}
	if advertise == nil {
		advertise = ln.Addr()
	}
	if a, ok := advertise.(*net.TCPAddr); !ok || a.IP == nil || a.IP.IsUnspecified() {
		ln.Close()
		return nil, nil, fmt.Errorf("raftstore: advertise address %v is not a routable IP:port", advertise)
	}
	layer := newAuthLayer(ln, advertise, auth, lg)
	return raft.NewNetworkTransportWithLogger(layer, 3, 10*time.Second, hl), layer, nil
}
