package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/osprey-storage/osprey/node"
	"github.com/osprey-storage/osprey/tlsconf"
)

// TestCLIOverTLS: put, get and cluster status reach a TLS node at an
// https:// address with --tls-ca; without it the node's certificate is
// refused (unknown authority), and a plain http:// address gets nothing.
func TestCLIOverTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := tlsconf.NewCA("cli test CA")
	if err != nil {
		t.Fatal(err)
	}
	files, err := ca.WriteFiles(dir, "n1", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := node.DefaultConfig()
	cfg.DataDir, cfg.HTTPAddr, cfg.RaftAddr = filepath.Join(dir, "data"), "127.0.0.1:0", "127.0.0.1:0"
	cfg.TLS, cfg.Logger = files, slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(n.Cluster().NotReady(context.Background())) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("node not ready")
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	addr := "https://" + n.HTTPAddr()
	src := filepath.Join(dir, "hello.txt")
	if err := os.WriteFile(src, []byte("hello over tls\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	common := []string{"--addr", addr, "--tls-ca", files.CA}
	out, errOut, code := runCLI(append(append([]string{"put"}, common...), "--json", "--quiet", "--state-dir", "-", src)...)
	if code != 0 {
		t.Fatalf("put: %d %s", code, errOut)
	}
	uid := regexp.MustCompile(`[0-9]{15,20}`).FindString(out)
	if uid == "" {
		t.Fatalf("no uid in %q", out)
	}
	dst := filepath.Join(dir, "back.txt")
	if _, errOut, code := runCLI(append(append([]string{"get"}, common...), "--quiet", uid, "-o", dst)...); code != 0 {
		t.Fatalf("get: %d %s", code, errOut)
	}
	if b, _ := os.ReadFile(dst); string(b) != "hello over tls\n" {
		t.Fatalf("got %q", b)
	}
	if out, errOut, code := runCLI(append([]string{"cluster", "status"}, common...)...); code != 0 || !strings.Contains(out, n.ID()) {
		t.Fatalf("cluster status: %d %q %s", code, out, errOut)
	}
	// Without the CA: the node's certificate is not trusted.
	if _, errOut, code := runCLI("cluster", "status", "--addr", addr, "--tls-ca", ""); code == 0 || !strings.Contains(errOut, "certificate") {
		t.Fatalf("without --tls-ca: %d %q", code, errOut)
	}
	// A bad --tls-ca file is reported.
	if _, errOut, code := runCLI("cluster", "status", "--addr", addr, "--tls-ca", src); code == 0 || !strings.Contains(errOut, "no PEM certificate") {
		t.Fatalf("bad --tls-ca: %d %q", code, errOut)
	}
}

// TestServerReloadsTLSOnSIGHUP runs `osprey server` with TLS, replaces its
// certificate files and sends SIGHUP: the next connection gets the new
// certificate (the file watcher is slowed down so it is the signal that
// does it), and the server keeps running.
func TestServerReloadsTLSOnSIGHUP(t *testing.T) {
	old := tlsReloadEvery
	tlsReloadEvery = time.Hour
	defer func() { tlsReloadEvery = old }()
	dir := t.TempDir()
	ca, err := tlsconf.NewCA("sighup test CA")
	if err != nil {
		t.Fatal(err)
	}
	files, err := ca.WriteFiles(dir, "n1", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- runServer(ctx, []string{"--data-dir", filepath.Join(dir, "data"), "--http-addr", freeAddr(t),
			"--raft-addr", freeAddr(t), "--log-level", "error", "--tls-cert", files.Cert, "--tls-key", files.Key,
			"--tls-ca", files.CA}, pw, io.Discard)
		pw.Close()
	}()
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "osprey: ready "); ok {
				for _, f := range strings.Fields(rest) {
					if a, ok := strings.CutPrefix(f, "http="); ok {
						addrc <- a
					}
				}
			}
		}
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("server exited: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("server not ready")
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM())
	servedSerial := func() string {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	first := servedSerial()
	certPEM, keyPEM, sn, err := ca.Issue("n1-renewed", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(files.Key, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(files.Cert, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(); got != first {
		t.Fatalf("certificate changed to %s before SIGHUP", got)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for servedSerial() != sn.String() {
		if time.Now().After(deadline) {
			t.Fatalf("after SIGHUP: still serving %s, want %s", servedSerial(), sn)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("server: %v", err)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
