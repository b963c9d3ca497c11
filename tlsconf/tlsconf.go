// Package tlsconf holds a node's TLS identity (certificate, key and the
// cluster CA) and builds the tls.Configs every listener and node-to-node
// dialer uses. The identity lives behind an atomic pointer: Reload (on
// SIGHUP, or when Watch sees a file change) swaps it, and every new
// connection after that uses the new certificate and CA without a
// restart. A file that does not load keeps the old identity in place.
//
// Servers pick the identity per handshake (GetConfigForClient). Clients
// verify the peer themselves against the current CA (the standard
// verification reads a fixed RootCAs, which could not be reloaded) and
// present the current certificate (GetClientCertificate).
package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Files names the PEM files of a node's TLS identity: its certificate
// (chain), its private key and the cluster CA that signs every member's
// certificate.
type Files struct {
	Cert, Key, CA string
}

// Enabled reports whether any file is set.
func (f Files) Enabled() bool { return f.Cert != "" || f.Key != "" || f.CA != "" }

// Validate reports a partial configuration: all three files or none.
func (f Files) Validate() error {
	if f.Enabled() && (f.Cert == "" || f.Key == "" || f.CA == "") {
		return errors.New("tlsconf: TLS needs all three of the certificate, the key and the CA file")
	}
	return nil
}

// identity is one loaded generation of the files.
type identity struct {
	cert   *tls.Certificate
	pool   *x509.CertPool
	serial string // of the leaf, for logs
}

// Reloader holds the current identity. It is safe for concurrent use.
type Reloader struct {
	files Files
	log   *slog.Logger
	cur   atomic.Pointer[identity]

	mu    sync.Mutex // serialises loads
	stamp string     // the files' sizes and mtimes at the last load attempt
}

// Load reads the files; an error means TLS cannot start.
func Load(files Files, lg *slog.Logger) (*Reloader, error) {
	if err := files.Validate(); err != nil {
		return nil, err
	}
	if lg == nil {
		lg = slog.Default()
	}
	r := &Reloader{files: files, log: lg.With("component", "tls")}
	r.stamp = stamp(files)
	id, err := load(files)
	if err != nil {
		return nil, err
	}
	r.cur.Store(id)
	return r, nil
}

// Serial returns the current certificate's serial number (decimal).
func (r *Reloader) Serial() string { return r.cur.Load().serial }

// Reload reads the files again and, if they load, makes them the identity
// of every new connection. On error the old identity stays and the error
// is returned (and logged).
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stamp = stamp(r.files)
	id, err := load(r.files)
	if err != nil {
		r.log.Error("TLS reload failed; keeping the current certificate", "cert", r.files.Cert,
			"serial", r.cur.Load().serial, "err", err)
		return err
	}
	old := r.cur.Swap(id)
	r.log.Info("TLS certificate reloaded", "cert", r.files.Cert, "serial", id.serial, "previous_serial", old.serial)
	return nil
}

// Watch reloads whenever a file's size or modification time changes,
// checking every interval, until ctx ends. A change that does not load
// (a half-written file) is logged once; the next change is tried again.
func (r *Reloader) Watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		changed := stamp(r.files) != r.stamp
		r.mu.Unlock()
		if changed {
			_ = r.Reload()
		}
	}
}

func stamp(f Files) string {
	s := ""
	for _, p := range []string{f.Cert, f.Key, f.CA} {
		if fi, err := os.Stat(p); err == nil {
			s += fmt.Sprintf("%d/%d;", fi.Size(), fi.ModTime().UnixNano())
		} else {
			s += "-;"
		}
	}
	return s
}

func load(f Files) (*identity, error) {
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: load certificate %s and key %s: %w", f.Cert, f.Key, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tlsconf: parse certificate %s: %w", f.Cert, err)
		}
		cert.Leaf = leaf
	}
	pem, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tlsconf: CA file %s holds no PEM certificate", f.CA)
	}
	// A certificate the cluster CA did not sign (or an expired one) could
	// talk to no peer: refuse it here, with the reason, rather than on
	// every connection.
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("tlsconf: certificate %s does not verify against the CA in %s: %w", f.Cert, f.CA, err)
	}
	return &identity{cert: &cert, pool: pool, serial: leaf.SerialNumber.String()}, nil
}

// ServerConfig is the config of a listener: the current certificate, and
// client certificates checked against the current CA as auth says
// (tls.VerifyClientCertIfGiven for the HTTP API, whose ordinary clients
// have none; tls.RequireAndVerifyClientCert for raft).
func (r *Reloader) ServerConfig(auth tls.ClientAuthType) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			id := r.cur.Load()
			return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*id.cert},
				ClientCAs: id.pool, ClientAuth: auth}, nil
		}}
}

// ClientConfig is the config for dialing a peer named serverName (the
// host of its address, an IP or a DNS name): the peer's certificate must
// chain to the current CA and name serverName, and this node presents its
// current certificate when asked.
func (r *Reloader) ClientConfig(serverName string) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName,
		// Verified in VerifyConnection against the CA of the moment; the
		// built-in check would use a RootCAs fixed at build time.
		InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return r.cur.Load().cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyPeer(cs, r.cur.Load().pool, serverName)
		}}
}

func verifyPeer(cs tls.ConnectionState, roots *x509.CertPool, serverName string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tlsconf: the peer sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		DNSName: serverName, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		return fmt.Errorf("tlsconf: peer %s: %w", serverName, err)
	}
	return nil
}

// Dial connects to addr with d and completes a TLS handshake with the
// config cfg returns for the address's host. A failed handshake is
// reported as a dial error (*net.OpError with Op "dial"): nothing was
// sent, so callers may treat it as "certainly not applied".
func Dial(ctx context.Context, d *net.Dialer, network, addr string, cfg func(serverName string) *tls.Config) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, cfg(host))
	if d.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.Timeout)
		defer cancel()
	}
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, &net.OpError{Op: "dial", Net: network, Addr: raw.RemoteAddr(), Err: fmt.Errorf("tls handshake: %w", err)}
	}
	return c, nil
}

// Transport returns an http.Transport like base (a clone; nil means
// http.DefaultTransport's settings) whose https connections dial through
// Dial with cfg, directly: node-to-node calls never go through an
// environment proxy, which would bypass Dial.
func Transport(base *http.Transport, d *net.Dialer, cfg func(serverName string) *tls.Config) *http.Transport {
	if base == nil {
		base = http.DefaultTransport.(*http.Transport)
	}
	t := base.Clone()
	t.Proxy = nil
	t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return Dial(ctx, d, network, addr, cfg)
	}
	return t
}

// ClientFiles builds a static client config for tools (the CLI): the
// server must chain to the CA in caFile (system roots when ""), and the
// certificate in certFile/keyFile is presented when both are given.
func ClientFiles(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("tlsconf: read CA file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tlsconf: CA file %s holds no PEM certificate", caFile)
		}
	}
	switch {
	case certFile != "" && keyFile != "":
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("tlsconf: load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case certFile != "" || keyFile != "":
		return nil, errors.New("tlsconf: a client certificate needs both the certificate and the key file")
	}
	return cfg, nil
}
