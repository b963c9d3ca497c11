package raftstore

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

func keyed(cfg Config, key string) Config {
	cfg.TransportKey = func() []byte { return []byte(key) }
	return cfg
}

// TestAuthenticatedTransportReplicates: members holding the same key form
// a cluster and replicate as before.
func TestAuthenticatedTransportReplicates(t *testing.T) {
	lg := testLogger(t)
	s1 := mustOpen(t, keyed(testConfig(t, lg, "s1"), "cluster-key"))
	s2 := mustOpen(t, keyed(testConfig(t, lg, "s2"), "cluster-key"))
	mustBootstrap(t, s1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s1.AddVoter(ctx, "s2", s2.Addr()); err != nil {
		t.Fatal(err)
	}
	mustApply(t, s1, "hello")
	waitFor(t, 10*time.Second, "s2 to apply", func() bool { return len(fsmOf(s2).Commands()) == 1 })
}

// TestForgedHeartbeatRefused reproduces the review's attack: an
// unauthenticated raft client sends a heartbeat from a made-up leader with
// a higher term. The member refuses the connection before raft decodes
// it: the RPC fails, the term does not move, the leader keeps leading.
func TestForgedHeartbeatRefused(t *testing.T) {
	lg := testLogger(t)
	s1 := mustOpen(t, keyed(testConfig(t, lg, "s1"), "cluster-key"))
	mustBootstrap(t, s1)
	term := s1.Term()

	forger, err := raft.NewTCPTransportWithLogger("127.0.0.1:0", nil, 1, 2*time.Second, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer forger.Close()
	req := &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ID: []byte("evil"), Addr: []byte(forger.LocalAddr())},
		Term: term + 100, Leader: []byte(forger.LocalAddr()), LeaderCommitIndex: 1}
	var resp raft.AppendEntriesResponse
	if err := forger.AppendEntries(raft.ServerID("s1"), raft.ServerAddress(s1.Addr()), req, &resp); err == nil {
		t.Fatalf("forged heartbeat accepted: %+v", resp)
	}
	vote := &raft.RequestVoteRequest{RPCHeader: raft.RPCHeader{ID: []byte("evil"), Addr: []byte(forger.LocalAddr())},
		Term: term + 200, LastLogIndex: 1 << 40, LastLogTerm: term + 200}
	var vresp raft.RequestVoteResponse
	if err := forger.RequestVote(raft.ServerID("s1"), raft.ServerAddress(s1.Addr()), vote, &vresp); err == nil {
		t.Fatalf("forged vote request accepted: %+v", vresp)
	}
	waitFor(t, 5*time.Second, "both forged connections to be refused", func() bool { return s1.auth.refusals.Load() >= 2 })
	if got := s1.Term(); got != term || !s1.IsLeader() {
		t.Fatalf("term %d (was %d), leader %v: the forged RPCs reached raft", got, term, s1.IsLeader())
	}
	mustApply(t, s1, "still works")
}

// TestWrongKeyCannotDisturb: a server holding another key (another
// cluster's join token) that believes s1 is in its cluster campaigns
// against it over and over; s1 never sees those votes: its term does not
// move and it keeps leading.
func TestWrongKeyCannotDisturb(t *testing.T) {
	lg := testLogger(t)
	s1 := mustOpen(t, keyed(testConfig(t, lg, "s1"), "cluster-key"))
	bad := mustOpen(t, keyed(testConfig(t, lg, "s2"), "another-clusters-key"))
	mustBootstrap(t, s1)
	term := s1.Term()
	if err := bad.Bootstrap([]Server{{ID: "s2", Address: bad.Addr()}, {ID: "s1", Address: s1.Addr()}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "s1 to refuse the misconfigured server's connections", func() bool { return s1.auth.refusals.Load() >= 3 })
	if got := s1.Term(); got != term || !s1.IsLeader() {
		t.Fatalf("s1 term %d (was %d), leader %v: votes from the wrong key reached it", got, term, s1.IsLeader())
	}
	mustApply(t, s1, "undisturbed")
}

// TestHandshake checks the handshake on its own: right key both ways,
// wrong key refused on both sides, silence and garbage refused.
func TestHandshake(t *testing.T) {
	pair := func(clientKey, serverKey string) (error, error) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		errc := make(chan error, 1)
		go func() { errc <- serverHandshake(b, derive([]byte(serverKey))) }()
		cerr := clientHandshake(a, derive([]byte(clientKey)))
		if cerr != nil {
			a.Close()
		}
		return cerr, <-errc
	}
	if c, s := pair("k", "k"); c != nil || s != nil {
		t.Fatalf("same key: client %v, server %v", c, s)
	}
	if c, _ := pair("k", "other"); c == nil {
		t.Fatal("client accepted a server with another key")
	}
	a, b := net.Pipe()
	go func() {
		_, _ = a.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n" + string(make([]byte, 64))))
		_, _ = io.Copy(io.Discard, a)
	}()
	if err := serverHandshake(b, derive([]byte("k"))); err == nil {
		t.Fatal("server accepted garbage")
	}
	a.Close()
	b.Close()
}
