package raftstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/osprey-storage/osprey"
)

func TestConfigValidate(t *testing.T) {
	lg := testLogger(t)
	good := testConfig(t, lg, "s1")
	if err := good.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for _, tt := range []struct {
		name   string
		change func(c *Config)
	}{
		{"no dir", func(c *Config) { c.Dir = "" }},
		{"no id", func(c *Config) { c.ID = "" }},
		{"no bind address", func(c *Config) { c.BindAddr = "" }},
		{"no fsm", func(c *Config) { c.FSM = nil }},
		{"no apply timeout", func(c *Config) { c.ApplyTimeout = 0 }},
		{"no command size", func(c *Config) { c.MaxCommandSize = -1 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.change(&c)
			if err := c.Validate(); err == nil {
				t.Fatal("Validate accepted it")
			}
			if s, err := Open(c); err == nil {
				s.Close()
				t.Fatal("Open accepted it")
			}
		})
	}
	for _, addr := range []string{"0.0.0.0:7000", "[::]:7000", "not an address"} {
		c := good
		c.AdvertiseAddr = addr
		if s, err := Open(c); err == nil {
			s.Close()
			t.Fatalf("Open accepted advertise address %q", addr)
		}
	}
}

func TestSingleNode(t *testing.T) {
	lg := testLogger(t)
	s := mustOpen(t, testConfig(t, lg, "s1"))
	if s.HasState() {
		t.Fatal("HasState before bootstrap")
	}
	if s.ID() != "s1" || !strings.HasPrefix(s.Addr(), "127.0.0.1:") || strings.HasSuffix(s.Addr(), ":0") {
		t.Fatalf("id %q addr %q", s.ID(), s.Addr())
	}

	// No cluster yet: no leader, and writes are refused as not applied.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := s.WaitForLeader(ctx)
	cancel()
	if !errors.Is(err, ErrNoLeader) || !errors.Is(err, osprey.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitForLeader without a cluster = %v", err)
	}
	if _, _, err := s.Apply(context.Background(), []byte("x")); !errors.Is(err, osprey.ErrNotLeader) {
		t.Fatalf("Apply before bootstrap = %v, want ErrNotLeader", err)
	}

	mustBootstrap(t, s)
	if !s.HasState() || s.State() != "Leader" {
		t.Fatalf("after bootstrap: HasState %v, state %s", s.HasState(), s.State())
	}
	if addr, id := s.Leader(); id != "s1" || addr != s.Addr() {
		t.Fatalf("Leader() = %q, %q", addr, id)
	}
	// Bootstrapping twice is refused.
	if err := s.Bootstrap([]Server{{ID: "s1", Address: s.Addr()}}); err == nil {
		t.Fatal("second Bootstrap succeeded")
	}

	resp, idx := mustApply(t, s, "hello")
	if want := (applied{Index: idx, Cmd: "hello"}); resp != want || idx == 0 {
		t.Fatalf("Apply = %+v at %d, want %+v", resp, idx, want)
	}
	resp2, idx2 := mustApply(t, s, "world")
	if idx2 <= idx || resp2.(applied).Cmd != "world" {
		t.Fatalf("second Apply = %+v at %d", resp2, idx2)
	}
	if got := fsmOf(s).Commands(); !reflect.DeepEqual(got, []string{"hello", "world"}) {
		t.Fatalf("fsm has %q", got)
	}
	if s.CommitIndex() < idx2 || s.LastIndex() < idx2 || s.Term() == 0 {
		t.Fatalf("counters: commit %d last %d term %d", s.CommitIndex(), s.LastIndex(), s.Term())
	}
	// raft updates its applied counter after the future is answered.
	waitFor(t, 5*time.Second, "the applied index", func() bool { return s.AppliedIndex() >= idx2 })

	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.VerifyLeader(ctx); err != nil {
		t.Fatalf("VerifyLeader: %v", err)
	}
	if err := s.Barrier(ctx); err != nil {
		t.Fatalf("Barrier: %v", err)
	}
	if id, err := s.WaitForLeader(ctx); err != nil || id != "s1" {
		t.Fatalf("WaitForLeader = %q, %v", id, err)
	}
	servers, err := s.Servers()
	if err != nil || len(servers) != 1 || servers[0] != (Server{ID: "s1", Address: s.Addr(), Suffrage: "Voter"}) {
		t.Fatalf("Servers = %+v, %v", servers, err)
	}
	if st := s.Stats(); st["state"] != "Leader" {
		t.Fatalf("Stats = %v", st)
	}
}

func TestApplyErrors(t *testing.T) {
	lg := testLogger(t)
	s := mustOpen(t, testConfig(t, lg, "s1"))
	mustBootstrap(t, s)
	last := s.LastIndex()

	// A context that already ended: certainly not applied (503).
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := s.Apply(ctx, []byte("cancelled"))
	if !errors.Is(err, ErrNotApplied) || !errors.Is(err, osprey.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply with a cancelled ctx = %v, want ErrNotApplied", err)
	}
	ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if _, _, err := s.Apply(ctx, []byte("late")); !errors.Is(err, ErrNotApplied) {
		t.Fatalf("Apply after the deadline = %v, want ErrNotApplied", err)
	}

	// Too large (413), checked before anything is proposed.
	_, _, err = s.Apply(context.Background(), make([]byte, s.cfg.MaxCommandSize+1))
	if !errors.Is(err, ErrTooLarge) || !errors.Is(err, osprey.ErrTooLarge) {
		t.Fatalf("Apply of %d bytes = %v, want ErrTooLarge", s.cfg.MaxCommandSize+1, err)
	}
	if s.LastIndex() != last || len(fsmOf(s).Commands()) != 0 {
		t.Fatal("a refused command reached the log")
	}
	// Exactly the limit is fine.
	mustApply(t, s, strings.Repeat("x", s.cfg.MaxCommandSize))

	// After Close: shut down, certainly not applied (503).
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_, _, err = s.Apply(context.Background(), []byte("after close"))
	if !errors.Is(err, ErrShutdown) || !errors.Is(err, osprey.ErrUnavailable) {
		t.Fatalf("Apply after Close = %v, want ErrShutdown", err)
	}
	if _, err := s.WaitForLeader(context.Background()); !errors.Is(err, ErrShutdown) {
		t.Fatalf("WaitForLeader after Close = %v, want ErrShutdown", err)
	}
	if err := s.Barrier(context.Background()); !errors.Is(err, osprey.ErrUnavailable) {
		t.Fatalf("Barrier after Close = %v", err)
	}
	if err := s.VerifyLeader(context.Background()); !errors.Is(err, osprey.ErrUnavailable) {
		t.Fatalf("VerifyLeader after Close = %v", err)
	}
}

// TestReopen: a store that was bootstrapped has state after a restart,
// leads again on its own and replays its log into a fresh FSM.
func TestReopen(t *testing.T) {
	lg := testLogger(t)
	cfg := testConfig(t, lg, "s1")
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.HasState() {
		t.Fatal("HasState before bootstrap")
	}
	mustBootstrap(t, s)
	for i := 0; i < 3; i++ {
		mustApply(t, s, fmt.Sprint("cmd-", i))
	}
	addr := s.Addr()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// The same directory and address, a fresh FSM.
	cfg.FSM = &testFSM{}
	cfg.BindAddr = addr
	s2 := mustOpen(t, cfg)
	if !s2.HasState() {
		t.Fatal("HasState false after reopen")
	}
	waitFor(t, 10*time.Second, "the reopened store to lead", s2.IsLeader)
	want := []string{"cmd-0", "cmd-1", "cmd-2"}
	waitFor(t, 10*time.Second, "the log to be replayed", func() bool {
		return reflect.DeepEqual(fsmOf(s2).Commands(), want)
	})
	mustApply(t, s2, "cmd-3")
}

// cluster opens n stores, bootstraps the first and adds the others as
// voters through it.
func cluster(t *testing.T, cfgs ...Config) []*Store {
	t.Helper()
	stores := make([]*Store, len(cfgs))
	for i, c := range cfgs {
		stores[i] = mustOpen(t, c)
	}
	mustBootstrap(t, stores[0])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, s := range stores[1:] {
		if s.HasState() {
			t.Fatalf("%s has state before joining", s.ID())
		}
		if err := stores[0].AddVoter(ctx, s.ID(), s.Addr()); err != nil {
			t.Fatalf("AddVoter %s: %v", s.ID(), err)
		}
	}
	mustLeader(t, stores...)
	return stores
}

func TestCluster(t *testing.T) {
	lg := testLogger(t)
	stores := cluster(t, testConfig(t, lg, "s1"), testConfig(t, lg, "s2"), testConfig(t, lg, "s3"))
	s1, s2, s3 := stores[0], stores[1], stores[2]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	for _, s := range stores {
		waitFor(t, 10*time.Second, s.ID()+" to learn the configuration", func() bool {
			servers, err := s.Servers()
			return err == nil && len(servers) == 3 && s.HasState()
		})
	}

	// Adding a member that is already there is a no-op: nothing proposed.
	last := s1.LastIndex()
	if err := s1.AddVoter(ctx, "s2", s2.Addr()); err != nil {
		t.Fatalf("repeated AddVoter: %v", err)
	}
	if s1.LastIndex() != last {
		t.Fatal("a repeated AddVoter changed the configuration")
	}

	// Writes go through the leader and reach every FSM.
	_, idx := mustApply(t, s1, "replicated")
	for _, s := range stores {
		waitFor(t, 10*time.Second, s.ID()+" to apply", func() bool {
			return reflect.DeepEqual(fsmOf(s).Commands(), []string{"replicated"})
		})
		waitFor(t, 5*time.Second, s.ID()+"'s applied index", func() bool { return s.AppliedIndex() >= idx })
	}

	// Leader-only calls on a follower: ErrNotLeader (forwarded by httpapi).
	if _, _, err := s2.Apply(ctx, []byte("on a follower")); !errors.Is(err, ErrNotLeader) || !errors.Is(err, osprey.ErrNotLeader) {
		t.Fatalf("Apply on a follower = %v", err)
	}
	if err := s2.VerifyLeader(ctx); !errors.Is(err, osprey.ErrNotLeader) {
		t.Fatalf("VerifyLeader on a follower = %v", err)
	}
	if err := s2.Barrier(ctx); !errors.Is(err, osprey.ErrNotLeader) {
		t.Fatalf("Barrier on a follower = %v", err)
	}
	if err := s2.AddVoter(ctx, "s9", "127.0.0.1:1"); !errors.Is(err, osprey.ErrNotLeader) {
		t.Fatalf("AddVoter on a follower = %v", err)
	}
	if err := s2.RemoveServer(ctx, "s3"); !errors.Is(err, osprey.ErrNotLeader) {
		t.Fatalf("RemoveServer on a follower = %v", err)
	}
	if id, err := s3.WaitForLeader(ctx); err != nil || id != "s1" {
		t.Fatalf("WaitForLeader on a follower = %q, %v", id, err)
	}

	// s3 comes back with a new data dir at a new address under the same
	// id: AddVoter replaces the stale entry.
	if err := s3.Abort(); err != nil {
		t.Fatal(err)
	}
	cfg3 := testConfig(t, lg, "s3")
	s3b := mustOpen(t, cfg3)
	if err := s1.AddVoter(ctx, "s3", s3b.Addr()); err != nil {
		t.Fatalf("AddVoter at a new address: %v", err)
	}
	servers, _ := s1.Servers()
	if len(servers) != 3 || servers[2] != (Server{ID: "s3", Address: s3b.Addr(), Suffrage: "Voter"}) {
		t.Fatalf("Servers = %+v", servers)
	}
	waitFor(t, 10*time.Second, "s3 to catch up", func() bool {
		return reflect.DeepEqual(fsmOf(s3b).Commands(), []string{"replicated"})
	})

	// Removing a member.
	if err := s1.RemoveServer(ctx, "s3"); err != nil {
		t.Fatalf("RemoveServer: %v", err)
	}
	servers, _ = s1.Servers()
	if len(servers) != 2 {
		t.Fatalf("Servers after remove = %+v", servers)
	}
	mustApply(t, s1, "after remove")

	// Handing leadership to a chosen member.
	if err := s1.TransferLeadership(ctx, "s9"); err == nil {
		t.Fatal("transfer to a non-member succeeded")
	}
	if err := s1.TransferLeadership(ctx, "s2"); err != nil {
		t.Fatalf("TransferLeadership: %v", err)
	}
	if l := mustLeader(t, s1, s2); l != s2 {
		t.Fatalf("leader is %s, want s2", l.ID())
	}
	if _, _, err := s1.Apply(ctx, []byte("old leader")); !errors.Is(err, osprey.ErrNotLeader) {
		t.Fatalf("Apply on the old leader = %v", err)
	}
	mustApply(t, s2, "new leader")
}

// TestLeaderCloseTransfersLeadership: Close on a leader hands leadership
// over before shutting down, so the cluster does not wait out an election
// timeout. The followers here have a 20 s timeout: only a transfer can
// make one of them leader within the 10 s the test waits.
func TestLeaderCloseTransfersLeadership(t *testing.T) {
	lg := testLogger(t)
	slow := func(id string) Config {
		c := testConfig(t, lg, id)
		c.HeartbeatTimeout = 20 * time.Second
		c.ElectionTimeout = 20 * time.Second
		c.LeaderLeaseTimeout = 10 * time.Second
		return c
	}
	stores := cluster(t, testConfig(t, lg, "s1"), slow("s2"), slow("s3"))
	s1, s2, s3 := stores[0], stores[1], stores[2]
	if !s1.IsLeader() {
		t.Fatal("s1 does not lead")
	}
	mustApply(t, s1, "before")
	// Both followers must hold the entry, or the transfer might pick one
	// that cannot win the election.
	for _, s := range []*Store{s2, s3} {
		waitFor(t, 10*time.Second, s.ID()+" to apply", func() bool { return len(fsmOf(s).Commands()) == 1 })
	}

	if err := s1.Close(); err != nil {
		t.Fatalf("close leader: %v", err)
	}
	next := mustLeader(t, s2, s3)
	mustApply(t, next, "after")
	// Shut the slow pair down without another transfer (s1 is gone, and
	// a transfer to it would wait out the 20 s election timeout).
	for _, s := range []*Store{s2, s3} {
		if err := s.Abort(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTranslate pins the error table httpapi relies on: 503 only when the
// command was certainly not applied, 504 when its fate is unknown.
func TestTranslate(t *testing.T) {
	other := errors.New("disk on fire")
	for _, tt := range []struct {
		in         error
		want       error // this package's sentinel, nil for none
		kind       error // the project-wide kind
		notApplied bool
	}{
		{raft.ErrNotLeader, ErrNotLeader, osprey.ErrNotLeader, true},
		{raft.ErrLeadershipTransferInProgress, ErrNotLeader, osprey.ErrNotLeader, true},
		{raft.ErrLeadershipLost, ErrIndeterminate, osprey.ErrIndeterminate, false},
		{raft.ErrAbortedByRestore, ErrIndeterminate, osprey.ErrIndeterminate, false},
		{raft.ErrRaftShutdown, ErrShutdown, osprey.ErrUnavailable, true},
		{raft.ErrEnqueueTimeout, ErrNotApplied, osprey.ErrUnavailable, true},
		{other, nil, nil, false},
	} {
		t.Run(tt.in.Error(), func(t *testing.T) {
			got := translate(fmt.Errorf("wrapped: %w", tt.in))
			if !errors.Is(got, tt.in) {
				t.Errorf("%v does not wrap %v", got, tt.in)
			}
			if tt.want != nil && !errors.Is(got, tt.want) {
				t.Errorf("%v is not %v", got, tt.want)
			}
			if tt.kind != nil && !errors.Is(got, tt.kind) {
				t.Errorf("%v is not %v", got, tt.kind)
			}
			for _, k := range []error{osprey.ErrNotLeader, osprey.ErrUnavailable, osprey.ErrIndeterminate} {
				if k != tt.kind && errors.Is(got, k) {
					t.Errorf("%v is also %v", got, k)
				}
			}
			if !strings.HasPrefix(got.Error(), "raftstore: ") {
				t.Errorf("message %q lacks the package prefix", got)
			}
		})
	}
	if translate(nil) != nil {
		t.Fatal("translate(nil) != nil")
	}
}

// TestCloseWithApplyInFlight: commands in flight when the store closes
// answer at once, as "outcome unknown" (504): one is being applied, the
// other is committed and queued for the FSM, where raft may drop it at
// shutdown without ever answering.
func TestCloseWithApplyInFlight(t *testing.T) {
	lg := testLogger(t)
	cfg := testConfig(t, lg, "s1")
	entered, release := make(chan struct{}), make(chan struct{})
	cfg.FSM = &testFSM{gate: func(cmd string) {
		if cmd == "block" {
			close(entered)
			<-release
		}
	}}
	s := mustOpen(t, cfg)
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the store's own cleanup closes it
	mustBootstrap(t, s)
	results := make(chan error, 2)
	apply := func(cmd string) {
		_, _, err := s.Apply(context.Background(), []byte(cmd)) // no deadline
		results <- err
	}
	go apply("block")
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the blocking command never reached the FSM")
	}
	last := s.LastIndex()
	go apply("queued")
	waitFor(t, 10*time.Second, "the second command to commit", func() bool {
		return s.LastIndex() > last && s.CommitIndex() >= s.LastIndex()
	})

	closed := make(chan error, 1)
	go func() { closed <- s.Close() }() // raft's shutdown waits for the FSM
	for i := 0; i < 2; i++ {
		select {
		case err := <-results:
			if !errors.Is(err, ErrIndeterminate) || !errors.Is(err, osprey.ErrIndeterminate) ||
				errors.Is(err, osprey.ErrUnavailable) {
				t.Fatalf("in-flight Apply = %v, want only ErrIndeterminate", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("an in-flight Apply did not return after Close")
		}
	}
	unblock()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
}

// TestApplyError: raft answers ErrRaftShutdown both before a command is
// enqueued (certainly not applied) and after it was appended, when it may
// be committed; the index tells them apart.
func TestApplyError(t *testing.T) {
	if err := applyError(raft.ErrRaftShutdown, 0); !errors.Is(err, ErrShutdown) || !errors.Is(err, osprey.ErrUnavailable) {
		t.Fatalf("before enqueue: %v", err)
	}
	err := applyError(raft.ErrRaftShutdown, 42)
	if !errors.Is(err, ErrIndeterminate) || errors.Is(err, osprey.ErrUnavailable) {
		t.Fatalf("after append: %v", err)
	}
	if err := applyError(raft.ErrEnqueueTimeout, 0); !errors.Is(err, ErrNotApplied) {
		t.Fatalf("enqueue timeout: %v", err)
	}
	if err := applyError(raft.ErrLeadershipLost, 42); !errors.Is(err, ErrIndeterminate) {
		t.Fatalf("leadership lost: %v", err)
	}
}

// TestOpenBusyAddress: a bind failure is reported and releases the stores.
func TestOpenBusyAddress(t *testing.T) {
	lg := testLogger(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testConfig(t, lg, "s1")
	cfg.BindAddr = ln.Addr().String()
	if s, err := Open(cfg); err == nil {
		s.Close()
		t.Fatal("Open on a busy address succeeded")
	}
	// The bolt file lock was released: the directory opens again.
	cfg.BindAddr = "127.0.0.1:0"
	mustOpen(t, cfg)
}
