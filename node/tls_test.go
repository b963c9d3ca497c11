package node_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/osprey-storage/osprey/httpapi"
	"github.com/osprey-storage/osprey/node"
	"github.com/osprey-storage/osprey/tlsconf"
)

// tlsCluster is a 3-node cluster whose nodes hold certificates of one CA
// (127.0.0.1 IP SANs); node 1 also serves the S3 API.
type tlsCluster struct {
	*cluster
	ca    *tlsconf.CA
	files []tlsconf.Files
	pool  *x509.CertPool
	hc    *http.Client // trusts the CA, presents no certificate
}

func newTLSCluster(t *testing.T, adjust func(i int, c *node.Config)) *tlsCluster {
	t.Helper()
	ca, err := tlsconf.NewCA("osprey test CA")
	if err != nil {
		t.Fatal(err)
	}
	tc := &tlsCluster{ca: ca, pool: x509.NewCertPool()}
	tc.pool.AppendCertsFromPEM(ca.CertPEM())
	tc.hc = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: tc.pool, MinVersion: tls.VersionTLS12}}}
	t.Cleanup(tc.hc.CloseIdleConnections)
	tc.cluster = newClusterWith(t, 3, func(i int, c *node.Config) {
		f, err := ca.WriteFiles(t.TempDir(), fmt.Sprintf("n%d", i+1), []string{"127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		tc.files = append(tc.files, f)
		c.TLS = f
		if i == 0 {
			c.S3 = node.S3Config{Addr: "127.0.0.1:0", Credentials: map[string]string{"TLSACCESSKEY": "tls-secret-key-0123456789"}}
		}
		if adjust != nil {
			adjust(i, c)
		}
	})
	return tc
}

// call sends a request to base+path with the CA-trusting client and
// decodes the envelope's data into out (when non-nil).
func (tc *tlsCluster) call(t *testing.T, method, url string, body []byte, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tc.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if bs, ok := out.(*[]byte); ok {
			*bs = b
		} else {
			var env envelope
			if err := json.Unmarshal(b, &env); err != nil {
				t.Fatalf("%s %s: %d %q", method, url, resp.StatusCode, b)
			}
			if len(env.Data) > 0 {
				if err := json.Unmarshal(env.Data, out); err != nil {
					t.Fatalf("decode %s: %v", env.Data, err)
				}
			}
		}
	}
	return resp.StatusCode
}

// serial dials addr over TLS and returns the serial of the certificate
// the server presents on this fresh connection.
func serial(t *testing.T, addr string, pool *x509.CertPool) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("tls dial %s: %v", addr, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// TestTLSClusterUploadDownloadAcrossNodes: three nodes with certificates
// of one CA form a cluster (join, raft and every node-to-node call over
// mutual TLS); a file uploaded through a follower (its commands forwarded
// to the leader, its chunks copied to another node) downloads intact
// through every node over https, and a leader-only route answers through
// a follower (forwarded over https).
func TestTLSClusterUploadDownloadAcrossNodes(t *testing.T) {
	tc := newTLSCluster(t, nil)
	f := tc.follower()
	base := func(n *node.Node) string { return "https://" + n.HTTPAddr() }
	body := content(7, 3<<20)
	var links []uploadLink
	req, _ := json.Marshal(map[string]any{"filePath": []string{"tls/a.bin"}, "expire": 3600})
	if code := tc.call(t, "POST", base(f)+"/api/storage/v0/link/upload", req, &links); code != 200 {
		t.Fatalf("link/upload through follower: %d", code)
	}
	var up any
	if code := tc.call(t, "PUT", base(f)+links[0].URL.Single+"&md5="+md5hex(body), body, &up); code != 200 {
		t.Fatalf("upload: %d", code)
	}
	for _, n := range tc.nodes {
		var dl []struct {
			URL   string `json:"url"`
			Error string `json:"error"`
		}
		req, _ := json.Marshal(map[string]any{"uid": []string{links[0].UID}})
		if code := tc.call(t, "POST", base(n)+"/api/storage/v0/link/download", req, &dl); code != 200 || dl[0].Error != "" {
			t.Fatalf("node %s: download link: %d %+v", n.ID(), code, dl)
		}
		var got []byte
		if code := tc.call(t, "GET", base(n)+dl[0].URL, nil, &got); code != 200 || !bytes.Equal(got, body) {
			t.Fatalf("node %s: download: %d, %d bytes (want %d, equal %v)", n.ID(), code, len(got), len(body), bytes.Equal(got, body))
		}
	}
	// Leader-only: the follower forwards it to the leader over https.
	var backup []byte
	if code := tc.call(t, "GET", base(f)+"/cluster/backup", nil, &backup); code != 200 || len(backup) == 0 {
		t.Fatalf("backup through follower: %d, %d bytes", code, len(backup))
	}
	for _, m := range mustStatus(t, tc.nodes[0]) {
		if strings.Contains(m, "://") {
			t.Fatalf("advertised address %q carries a scheme", m)
		}
	}
}

func mustStatus(t *testing.T, n *node.Node) []string {
	st, err := n.Cluster().Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range st.Members {
		out = append(out, m.HTTPAddr)
	}
	return out
}

// TestTLSNodeRefusesPlainHTTP: the API and S3 listeners of a TLS node
// answer a plain-HTTP request with 400 and serve nothing.
func TestTLSNodeRefusesPlainHTTP(t *testing.T) {
	tc := newTLSCluster(t, nil)
	n := tc.nodes[0]
	for _, addr := range []string{n.HTTPAddr(), n.S3Addr()} {
		resp, err := http.Get("http://" + addr + "/livez")
		if err != nil {
			t.Fatalf("plain http to %s: %v", addr, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "HTTPS") {
			t.Fatalf("plain http to %s: %d %q, want 400 (HTTP request to an HTTPS server)", addr, resp.StatusCode, b)
		}
	}
	if code := tc.call(t, "GET", "https://"+n.HTTPAddr()+"/livez", nil, nil); code != 200 {
		t.Fatalf("https /livez: %d", code)
	}
	if code := tc.call(t, "GET", "https://"+n.S3Addr()+"/", nil, nil); code != http.StatusForbidden {
		t.Fatalf("https S3 without a signature: %d, want 403", code)
	}
}

// TestTLSInternalRoutesNeedClientCert: with TLS, the node token alone
// does not open an internal route; a client certificate of the cluster
// CA is needed too. A certificate of another CA fails the handshake.
func TestTLSInternalRoutesNeedClientCert(t *testing.T) {
	tc := newTLSCluster(t, nil)
	l := tc.Leader()
	tok := httpapi.NodeAuthToken(l.FSM().Secret())
	get := func(hc *http.Client) (int, error) {
		req, _ := http.NewRequest("GET", "https://"+l.HTTPAddr()+"/internal/v1/readindex", nil)
		req.Header.Set(httpapi.HeaderNodeAuth, tok)
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := get(tc.hc); err != nil || code != http.StatusForbidden {
		t.Fatalf("node token without a client certificate: %d %v, want 403", code, err)
	}
	withCert := func(ca *tlsconf.CA) *http.Client {
		certPEM, keyPEM, _, err := ca.Issue("client", []string{"127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: tc.pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}}
	}
	if code, err := get(withCert(tc.ca)); err != nil || code != http.StatusOK {
		t.Fatalf("node token with a cluster certificate: %d %v, want 200", code, err)
	}
	other, err := tlsconf.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	// Go's client offers its certificate only to a server that lists its
	// CA (then: no certificate, 403); a client that sends it anyway fails
	// the handshake.
	hc := withCert(other)
	if code, err := get(hc); err == nil && code != http.StatusForbidden {
		t.Fatalf("a certificate of another CA was accepted: %d", code)
	}
	tcfg := hc.Transport.(*http.Transport).TLSClientConfig
	cert := tcfg.Certificates[0]
	tcfg.Certificates, tcfg.GetClientCertificate = nil, func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	if code, err := get(hc); err == nil {
		t.Fatalf("a certificate of another CA, sent regardless, was accepted: %d", code)
	}
}

// TestTLSRaftRefusesOutsiders: raft connections without a certificate,
// with one of another CA, or in plain TCP cannot complete on any member;
// the cluster keeps its members and still takes writes.
func TestTLSRaftRefusesOutsiders(t *testing.T) {
	tc := newTLSCluster(t, nil)
	l := tc.Leader()
	term := l.Raft().Term()
	other, err := tlsconf.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, _, err := other.Issue("intruder", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []*tls.Config{
		{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12},                                        // no certificate
		{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, // another CA's
	} {
		for _, n := range tc.nodes {
			raw, err := net.DialTimeout("tcp", n.RaftAddr(), 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c := tls.Client(raw, cfg)
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			err = c.Handshake()
			if err == nil {
				// TLS 1.3: the server's verdict on the client's
				// certificate arrives with the first read.
				_, _ = c.Write([]byte("OSPRYRT1" + strings.Repeat("x", 32)))
				_, err = c.Read(make([]byte, 1))
			}
			c.Close()
			if err == nil {
				t.Fatalf("node %s: a raft connection with %d certificates of no cluster completed", n.ID(), len(cfg.Certificates))
			}
		}
	}
	raw, err := net.DialTimeout("tcp", l.RaftAddr(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = raw.Write([]byte("OSPRYRT1" + strings.Repeat("x", 32)))
	if n, err := raw.Read(make([]byte, 64)); err == nil && n > 0 {
		t.Fatal("a plain-TCP raft client got an answer")
	}
	raw.Close()
	// The cluster is undisturbed. (That the refused connections cannot
	// move the term is asserted in raftstore, on a lone member whose term
	// nothing else moves; here a loaded machine may hold an election.)
	if got := l.Raft().Term(); got != term {
		t.Logf("term %d (was %d): an election happened meanwhile", got, term)
	}
	tc.waitMembers(3)
	if _, err := tc.follower().Storage().CreateFiles(context.Background(), []httpapi.NewFile{{Name: "after.bin", Bucket: "b"}}); err != nil {
		t.Fatalf("write after the intruders: %v", err)
	}
}

// TestTLSCertificateReload: new certificate files take effect on fresh
// connections, through the reload hook (what SIGHUP calls) and through
// the file watcher, without a restart; a bad file is refused and the
// current certificate stays. Node-to-node calls keep working throughout.
func TestTLSCertificateReload(t *testing.T) {
	tc := newTLSCluster(t, func(i int, c *node.Config) { c.TLSReloadEvery = 100 * time.Millisecond })
	n, files := tc.nodes[0], tc.files[0]
	before := serial(t, n.HTTPAddr(), tc.pool)

	rewrite := func() string {
		t.Helper()
		certPEM, keyPEM, sn, err := tc.ca.Issue("n1-renewed", []string{"127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		// Key first: a watcher that sees only the new key refuses the pair
		// and tries again on the next change.
		writeFile(t, files.Key, keyPEM)
		writeFile(t, files.Cert, certPEM)
		return sn.String()
	}

	// 1. The file watcher.
	want := rewrite()
	if want == before {
		t.Fatal("the new certificate has the old serial")
	}
	waitFor(t, 10*time.Second, "the watcher to serve the new certificate", func() bool {
		return serial(t, n.HTTPAddr(), tc.pool) == want
	})
	if got := serial(t, n.RaftAddr(), tc.pool); got != want {
		t.Fatalf("raft listener serves serial %s, want %s", got, want)
	}

	// 2. A bad file: refused, the current certificate stays.
	writeFile(t, files.Cert, []byte("not a certificate"))
	if err := n.ReloadTLS(); err == nil {
		t.Fatal("reload of a bad certificate succeeded")
	}
	if got := serial(t, n.HTTPAddr(), tc.pool); got != want {
		t.Fatalf("after a bad file: serial %s, want the current %s", got, want)
	}

	// 3. The reload hook (SIGHUP).
	want = rewrite()
	if err := n.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	if got := serial(t, n.HTTPAddr(), tc.pool); got != want {
		t.Fatalf("after ReloadTLS: serial %s, want %s", got, want)
	}
	// Node-to-node calls with the renewed certificate still work.
	if _, err := tc.follower().Storage().CreateFiles(context.Background(), []httpapi.NewFile{{Name: "renewed.bin", Bucket: "b"}}); err != nil {
		t.Fatalf("write after the renewal: %v", err)
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
