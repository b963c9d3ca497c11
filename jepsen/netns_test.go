package jepsen

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSubnetParsing(t *testing.T) {
	out := "default via 192.0.2.1 dev eth0\n192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2\nlocal 10.1.2.3 dev lo table local\n"
	ps := parsePrefixes(out)
	if !overlapsAny(netip.MustParsePrefix("192.0.2.0/24"), ps) || !overlapsAny(netip.MustParsePrefix("10.1.2.0/24"), ps) {
		t.Fatalf("parsePrefixes = %v", ps)
	}
	if overlapsAny(netip.MustParsePrefix("10.200.0.0/24"), ps) {
		t.Fatalf("the default route must not block every subnet: %v", ps)
	}
}

func TestDeadOwner(t *testing.T) {
	if deadOwner("ospj" + strconv.Itoa(os.Getpid()) + "-n1") {
		t.Error("our own resources are not leftovers")
	}
	if deadOwner("eth0") || deadOwner("ospjx-n1") {
		t.Error("foreign names are not ours")
	}
	// Pid 4194304 is above the kernel's pid_max, so it is never alive.
	if !deadOwner("ospj4194304-n1") || !deadOwner("ospj4194304v2") {
		t.Error("resources of a dead pid are leftovers")
	}
}

// TestNetworkPartition builds a real bridge with two namespaces, checks
// that TCP passes, that Block really drops it and that Heal restores it,
// and that Close leaves nothing behind. It needs root.
func TestNetworkPartition(t *testing.T) {
	if ok, why := NetworkAvailable(); !ok {
		t.Skip("network namespaces unavailable: " + why)
	}
	ctx := context.Background()
	n, err := NewNetwork(ctx, []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = n.Close()
		}
	})
	l, err := n.Listen("a", net.JoinHostPort(n.IP("a"), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("hi"))
			c.Close()
		}
	}()
	addr := l.Addr().String()
	dial := n.DialContext("b")
	try := func() error {
		ctx, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
		defer cancel()
		c, err := dial(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 2)
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		_, err = c.Read(buf)
		return err
	}
	if err := try(); err != nil {
		t.Fatalf("healthy network: %v", err)
	}
	// The root namespace has no route to the subnet: the bridge is L2 only.
	if c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond); err == nil {
		c.Close()
		t.Fatal("root namespace reached a member: the bridge must have no address")
	}
	if err := n.Block(ctx, "a", "b"); err != nil {
		t.Fatal(err)
	}
	if err := try(); err == nil {
		t.Fatal("partitioned, yet the dial succeeded")
	}
	if err := n.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	if err := try(); err != nil {
		t.Fatalf("healed network: %v", err)
	}
	prefix := n.prefix
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	out, _ := exec.Command("ip", "netns", "list").Output()
	links, _ := exec.Command("ip", "-o", "link", "show").Output()
	if strings.Contains(string(out), prefix+"-") || strings.Contains(string(links), prefix+"b") {
		t.Fatalf("leftovers after Close:\n%s\n%s", out, links)
	}
}

// TestProcLifecycle drives a stand-in process through start, readiness,
// pause, resume, kill and restart.
func TestProcLifecycle(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "fake.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho booting\necho 'osprey: ready node=n1'\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := &Proc{Name: "n1", Argv: []string{script}, LogPath: filepath.Join(dir, "n1.log"), ReadyRE: "osprey: ready"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t.Cleanup(func() { _ = p.Kill() })
	for round := 0; round < 2; round++ {
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		if err := p.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		if !p.Ready() {
			t.Fatal("not ready after the ready line")
		}
		if err := p.Pause(); err != nil {
			t.Fatal(err)
		}
		if st, _ := p.State(); st != ProcPaused {
			t.Fatalf("state %s after pause", st)
		}
		if err := p.Resume(); err != nil {
			t.Fatal(err)
		}
		if err := p.Kill(); err != nil {
			t.Fatal(err)
		}
		if st, _ := p.State(); st != ProcKilled {
			t.Fatalf("state %s after kill", st)
		}
	}
	log, _ := os.ReadFile(p.LogPath)
	if strings.Count(string(log), "=== jepsen: start") != 2 || !strings.Contains(string(log), "booting") {
		t.Fatalf("log:\n%s", log)
	}
	bad := &Proc{Name: "n2", Argv: []string{"/bin/true"}, LogPath: filepath.Join(dir, "n2.log"), ReadyRE: "osprey: ready"}
	if err := bad.Start(); err != nil {
		t.Fatal(err)
	}
	if err := bad.WaitReady(ctx); err == nil {
		t.Fatal("a process that exits is not ready")
	}
}
