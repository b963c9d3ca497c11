package raftstore

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/osprey-storage/osprey/tlsconf"
)

// withTLS gives cfg a mutual-TLS transport with a certificate that ca
// issued for 127.0.0.1.
func withTLS(t *testing.T, cfg Config, ca *tlsconf.CA, name string) Config {
	t.Helper()
	dir := t.TempDir()
	files, err := ca.WriteFiles(dir, name, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := tlsconf.Load(files, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ServerTLS, cfg.ClientTLS = r.ServerConfig(tls.RequireAndVerifyClientCert), r.ClientConfig
	return cfg
}

func mustCA(t *testing.T, name string) *tlsconf.CA {
	t.Helper()
	ca, err := tlsconf.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// TestTLSTransportReplicates: members with certificates of the cluster CA
// (and the cluster key) form a cluster and replicate over mutual TLS.
func TestTLSTransportReplicates(t *testing.T) {
	lg := testLogger(t)
	ca := mustCA(t, "cluster CA")
	s1 := mustOpen(t, withTLS(t, keyed(testConfig(t, lg, "s1"), "cluster-key"), ca, "s1"))
	s2 := mustOpen(t, withTLS(t, keyed(testConfig(t, lg, "s2"), "cluster-key"), ca, "s2"))
	mustBootstrap(t, s1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s1.AddVoter(ctx, "s2", s2.Addr()); err != nil {
		t.Fatal(err)
	}
	mustApply(t, s1, "over tls")
	waitFor(t, 10*time.Second, "s2 to apply", func() bool { return len(fsmOf(s2).Commands()) == 1 })
}

// TestTLSTransportRefusesWithoutClientCert: a TLS client with no
// certificate, and a plain TCP client, cannot complete a connection to a
// TLS member, even one that knows the cluster key; the member keeps
// leading at the same term.
func TestTLSTransportRefusesWithoutClientCert(t *testing.T) {
	lg := testLogger(t)
	ca := mustCA(t, "cluster CA")
	s1 := mustOpen(t, withTLS(t, keyed(testConfig(t, lg, "s1"), "cluster-key"), ca, "s1"))
	mustBootstrap(t, s1)
	term := s1.Term()

	// TLS without a client certificate (trusting the server blindly).
	raw, err := net.DialTimeout("tcp", s1.Addr(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	err = tc.Handshake()
	if err == nil {
		// TLS 1.3 reports the server's refusal on the first read.
		_, err = clientHandshakeErr(tc)
	}
	tc.Close()
	if err == nil {
		t.Fatal("a client without a certificate completed a connection")
	}
	// Plain TCP with the right key: the handshake bytes are not TLS.
	raw, err = net.DialTimeout("tcp", s1.Addr(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
	if err := clientHandshake(raw, derive([]byte("cluster-key"))); err == nil {
		t.Fatal("a plain-TCP client with the key completed the handshake")
	}
	raw.Close()
	waitFor(t, 5*time.Second, "both connections to be refused", func() bool { return s1.auth.refusals.Load() >= 2 })
	if got := s1.Term(); got != term || !s1.IsLeader() {
		t.Fatalf("term %d (was %d), leader %v", got, term, s1.IsLeader())
	}
	mustApply(t, s1, "still works")
}

// clientHandshakeErr runs the key handshake over an established TLS
// session and returns its error.
func clientHandshakeErr(c net.Conn) (bool, error) {
	err := clientHandshake(c, derive([]byte("cluster-key")))
	return err == nil, err
}

// TestTLSTransportRefusesOtherCA: a server with the right cluster key but
// a certificate of another CA campaigns against s1; none of its
// connections completes, s1's term does not move and it keeps leading.
func TestTLSTransportRefusesOtherCA(t *testing.T) {
	lg := testLogger(t)
	ca, other := mustCA(t, "cluster CA"), mustCA(t, "someone else's CA")
	s1 := mustOpen(t, withTLS(t, keyed(testConfig(t, lg, "s1"), "cluster-key"), ca, "s1"))
	bad := mustOpen(t, withTLS(t, keyed(testConfig(t, lg, "s2"), "cluster-key"), other, "s2"))
	mustBootstrap(t, s1)
	term := s1.Term()
	if err := bad.Bootstrap([]Server{{ID: "s2", Address: bad.Addr()}, {ID: "s1", Address: s1.Addr()}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "s1 to refuse the other CA's connections", func() bool { return s1.auth.refusals.Load() >= 3 })
	if got := s1.Term(); got != term || !s1.IsLeader() {
		t.Fatalf("s1 term %d (was %d), leader %v: the other CA's votes reached it", got, term, s1.IsLeader())
	}
	mustApply(t, s1, "undisturbed")
}
