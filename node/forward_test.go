package node

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/osprey-storage/osprey"
)

// hangingLeader never answers, like a leader cut off by a partition.
type hangingLeader struct{}

func (hangingLeader) ForwardApply(ctx context.Context, _ string, _ []byte) ([]byte, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (hangingLeader) ReadIndex(ctx context.Context, _ string) (uint64, error) {
	<-ctx.Done()
	return 0, ctx.Err()
}

type epochs struct {
	mu sync.Mutex
	ch chan struct{}
}

func (e *epochs) changed() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ch == nil {
		e.ch = make(chan struct{})
	}
	return e.ch
}

func (e *epochs) change() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ch != nil {
		close(e.ch)
		e.ch = nil
	}
}

// A forwarded command or read to a leader that stopped answering ends when
// this node sees the leader change, not when the request's deadline does:
// the command as indeterminate (the old leader may have committed it), the
// read as unavailable (safe to ask the new leader).
func TestForwardEndsWhenLeaderChanges(t *testing.T) {
	for _, tc := range []struct {
		name string
		call func(f leaderBound, ctx context.Context) error
		want error
	}{
		{"apply", func(f leaderBound, ctx context.Context) error {
			_, err := f.ForwardApply(ctx, "old-leader:1", []byte("cmd"))
			return err
		}, osprey.ErrIndeterminate},
		{"read index", func(f leaderBound, ctx context.Context) error {
			_, err := f.ReadIndex(ctx, "old-leader:1")
			return err
		}, osprey.ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &epochs{}
			f := leaderBound{inner: hangingLeader{}, changed: e.changed}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- tc.call(f, ctx) }()
			// Wait until the call is in flight (it took the epoch channel).
			deadline := time.Now().Add(10 * time.Second)
			for {
				e.mu.Lock()
				taken := e.ch != nil
				e.mu.Unlock()
				if taken {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("call never started")
				}
				time.Sleep(time.Millisecond)
			}
			e.change()
			select {
			case err := <-done:
				if !errors.Is(err, tc.want) || !errors.Is(err, errLeaderMoved) {
					t.Fatalf("err = %v, want %v caused by the leader change", err, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the call still waits after the leader changed")
			}
			if ctx.Err() != nil {
				t.Fatal("the caller's context was cancelled")
			}
		})
	}
}

// recordingLeader answers every forwarded command and notes the order of
// events in log.
type recordingLeader struct{ log *[]string }

func (r recordingLeader) ForwardApply(_ context.Context, _ string, cmd []byte) ([]byte, error) {
	*r.log = append(*r.log, "forward "+string(cmd))
	return []byte("{}"), nil
}

func (r recordingLeader) ReadIndex(context.Context, string) (uint64, error) {
	*r.log = append(*r.log, "read index")
	return 7, nil
}

// A command leaves for another node's leader only after this node's
// chunk store is synced (upload copies committed without a sync are
// durable only through this node's own log otherwise); a failed sync
// sends nothing; reads do not sync.
func TestForwardSyncsLocalCopiesFirst(t *testing.T) {
	var log []string
	syncErr := error(nil)
	f := syncFirst{Forwarder: recordingLeader{&log}, sync: func() error {
		log = append(log, "sync")
		return syncErr
	}}
	ctx := context.Background()
	if _, err := f.ForwardApply(ctx, "leader:1", []byte("c1")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadIndex(ctx, "leader:1"); err != nil {
		t.Fatal(err)
	}
	syncErr = errors.New("disk gone")
	if _, err := f.ForwardApply(ctx, "leader:1", []byte("c2")); !errors.Is(err, syncErr) {
		t.Fatalf("forward after a failed sync = %v, want the sync's error", err)
	}
	want := []string{"sync", "forward c1", "read index", "sync"}
	if len(log) != len(want) {
		t.Fatalf("events %q, want %q", log, want)
	}
	for i := range want {
		if log[i] != want[i] {
			t.Fatalf("events %q, want %q", log, want)
		}
	}
}
