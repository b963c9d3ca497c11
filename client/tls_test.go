package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestTLSTrustAndNoRetryOnUntrustedCertificate: with the server's CA in
// Config.TLS an https node is served; without it the certificate error
// comes back after one attempt (retrying cannot fix it).
func TestTLSTrustAndNoRetryOnUntrustedCertificate(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte(`{"code":0,"message":"ok","data":{}}`))
	}))
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())

	ok, err := New(Config{Addr: srv.URL, TLS: &tls.Config{RootCAs: pool}, MinBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ok.Ready(ctx, ""); err != nil {
		t.Fatalf("with the CA: %v", err)
	}
	bad, err := New(Config{Addr: srv.URL, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var slept int
	bad.sleep = func(context.Context, time.Duration) error { slept++; return nil }
	_, err = bad.ClusterStatus(ctx)
	var cv *tls.CertificateVerificationError
	if !errors.As(err, &cv) {
		t.Fatalf("without the CA: %v, want a certificate verification error", err)
	}
	if slept != 0 {
		t.Fatalf("retried %d times on an untrusted certificate", slept)
	}
}
