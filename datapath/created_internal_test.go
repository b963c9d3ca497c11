package datapath

import (
	"testing"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/fsm"
)

// TestCreatedExpiresAndIsBounded: entries are found until their TTL, and
// at most max are kept (the oldest go first).
func TestCreatedExpiresAndIsBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newCreated()
	c.now = func() time.Time { return now }
	c.max = 3
	for uid := osprey.UID(1); uid <= 5; uid++ {
		c.add([]fsm.File{{UID: uid}})
	}
	for uid, want := range map[osprey.UID]bool{1: false, 2: false, 3: true, 4: true, 5: true} {
		if _, ok := c.get(uid); ok != want {
			t.Errorf("uid %d found=%v, want %v", uid, ok, want)
		}
	}
	now = now.Add(c.ttl)
	if _, ok := c.get(5); ok {
		t.Error("uid 5 found after its TTL")
	}
	c.add([]fsm.File{{UID: 6}})
	if len(c.files) != 1 || len(c.order) != 1 {
		t.Errorf("after expiry %d entries, %d in order; want 1", len(c.files), len(c.order))
	}
}
