package tlsconf

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func mustCA(t *testing.T) *CA {
	t.Helper()
	ca, err := NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// TestLoadRefusesMismatches: a partial set, a certificate another CA
// signed and a CA file without certificates are refused with the reason.
func TestLoadRefusesMismatches(t *testing.T) {
	dir := t.TempDir()
	ca, other := mustCA(t), mustCA(t)
	f, err := ca.WriteFiles(dir, "n1", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(Files{Cert: f.Cert, Key: f.Key}, nil); err == nil {
		t.Fatal("loaded without a CA")
	}
	if err := os.WriteFile(dir+"/other-ca.crt", other.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(Files{Cert: f.Cert, Key: f.Key, CA: dir + "/other-ca.crt"}, nil); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("certificate of another CA: %v", err)
	}
	if _, err := Load(Files{Cert: f.Cert, Key: f.Key, CA: f.Key}, nil); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("key as CA: %v", err)
	}
	if _, err := Load(f, nil); err != nil {
		t.Fatal(err)
	}
}

// TestWatchSwapsCertificateForNewConnections: a listener built on the
// reloader serves the new certificate to the next connection once the
// files change; a broken file keeps the old one.
func TestWatchSwapsCertificateForNewConnections(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t)
	f, err := ca.WriteFiles(dir, "n1", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Load(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", r.ServerConfig(tls.VerifyClientCertIfGiven))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	served := func() string {
		d := &net.Dialer{Timeout: 5 * time.Second}
		c, err := Dial(context.Background(), d, "tcp", ln.Addr().String(), r.ClientConfig)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		return c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	if got := served(); got != r.Serial() {
		t.Fatalf("served %s, loaded %s", got, r.Serial())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Watch(ctx, 20*time.Millisecond)

	if err := os.WriteFile(f.Cert, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := r.Serial()
	if err := r.Reload(); err == nil {
		t.Fatal("a broken certificate file loaded")
	}
	if got := served(); got != old {
		t.Fatalf("after a broken file: served %s, want the old %s", got, old)
	}
	certPEM, keyPEM, sn, err := ca.Issue("n1", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(f.Key, keyPEM, 0o600)
	_ = os.WriteFile(f.Cert, certPEM, 0o644)
	deadline := time.Now().Add(5 * time.Second)
	for served() != sn.String() {
		if time.Now().After(deadline) {
			t.Fatalf("the watcher never served the new certificate %s", sn)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

// TestClientRefusesWrongName: a peer certificate for another address
// fails verification even though the CA signed it.
func TestClientRefusesWrongName(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t)
	f, err := ca.WriteFiles(dir, "n1", []string{"10.9.9.9"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Load(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", r.ServerConfig(tls.NoClientCert))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	_, err = Dial(context.Background(), &net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), r.ClientConfig)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("dial a peer whose certificate names 10.9.9.9 at 127.0.0.1: %v", err)
	}
}
