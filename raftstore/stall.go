package raftstore

import (
	"sync"
	"time"
)

// stallWatch notices when this process stopped running for a while: a
// SIGSTOP, a frozen VM, a long GC or scheduling pause. A leader that
// stalled may come back deposed without knowing it yet, and raft's
// VerifyLeader can then succeed on heartbeat answers its followers sent
// before the stall (they were read from the sockets after it, and count
// for a verification registered after it): a linearizable read would see
// state older than writes a newer leader acknowledged meanwhile (found by
// the chaos harness: a leader paused for 10 s served a 404 for a file
// created during the pause). Around a stall, VerifyLeader confirms
// leadership through the log instead (a barrier entry commits only if a
// quorum still accepts this leader's term).
//
// A goroutine ticks every threshold/5; a gap between ticks longer than
// threshold is a stall. Scheduling delays on a loaded machine count as
// stalls too: they cost a barrier, never a stale read.
type stallWatch struct {
	threshold time.Duration

	mu   sync.Mutex
	last time.Time // the last tick
	end  time.Time // when the last stall ended (zero: none seen)
}

func newStallWatch(threshold time.Duration) *stallWatch {
	return &stallWatch{threshold: threshold, last: time.Now()}
}

// tick records that the process ran at now.
func (w *stallWatch) tick(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if now.Sub(w.last) > w.threshold {
		w.end = now
	}
	w.last = now
}

// suspect reports whether the process may have stalled at or after since:
// a stall ended then or later, or one is under way (no tick for longer
// than the threshold: the watcher has not run since the process resumed).
func (w *stallWatch) suspect(now, since time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return now.Sub(w.last) > w.threshold || !w.end.IsZero() && !w.end.Before(since)
}

// run ticks until done is closed.
func (w *stallWatch) run(done <-chan struct{}) {
	t := time.NewTicker(max(w.threshold/5, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			w.tick(time.Now()) // when it ran, not when the tick was due
		}
	}
}
