package peer_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/peer"
	"github.com/osprey-storage/osprey/tlsconf"
)

func reloader(t *testing.T, ca *tlsconf.CA, name string) *tlsconf.Reloader {
	t.Helper()
	f, err := ca.WriteFiles(t.TempDir(), name, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := tlsconf.Load(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestTLSCallsAreMutualAndSchemeFromConfig: with TLS the client calls
// https (also for an address given as http://host:port or https://...),
// verifies the peer against the CA and presents its own certificate; a
// peer with another CA's certificate is ErrUnavailable (nothing sent).
func TestTLSCallsAreMutualAndSchemeFromConfig(t *testing.T) {
	ca, err := tlsconf.NewCA("peer test CA")
	if err != nil {
		t.Fatal(err)
	}
	var verified bool
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		verified = r.TLS != nil && len(r.TLS.VerifiedChains) > 0
		reply(w, 200, "ok", "42")
	}))
	srv.TLS = reloader(t, ca, "server").ServerConfig(tls.RequireAndVerifyClientCert)
	srv.StartTLS()
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	cfg := peer.DefaultConfig()
	cfg.Directory = fakeDirectory{nodes: map[osprey.NodeID]fsm.Node{"p1": {ID: "p1", HTTPAddr: addr}}}
	cfg.TLS = reloader(t, ca, "client").ClientConfig
	c, err := peer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	for _, a := range []string{addr, "https://" + addr, "http://" + addr} {
		verified = false
		idx, err := c.ReadIndex(context.Background(), a)
		if err != nil || idx != 42 || !verified {
			t.Fatalf("%s: idx %d err %v client certificate verified %v", a, idx, err, verified)
		}
	}

	other, err := tlsconf.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	cfg.TLS = reloader(t, other, "stranger").ClientConfig
	s, err := peer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.CloseIdleConnections()
	if _, err := s.ForwardApply(context.Background(), addr, []byte{1}); !errors.Is(err, osprey.ErrUnavailable) {
		t.Fatalf("peer of another CA: %v, want ErrUnavailable", err)
	}
}
