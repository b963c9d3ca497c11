package snowflake

import (
	"path/filepath"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func mustNew(t *testing.T, w uint32, path string, now func() time.Time) *Generator {
	t.Helper()
	g, err := New(w, path, now)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestUniqueAcrossClockStepBack(t *testing.T) {
	c := &fakeClock{t: Epoch.Add(time.Hour)}
	g := mustNew(t, 5, "", c.now)
	seen := map[uint64]bool{}
	var prev uint64
	for i := 0; i < 20000; i++ {
		if i == 5000 {
			c.set(c.now().Add(-time.Minute)) // clock steps back
		}
		if i == 12000 {
			c.set(c.now().Add(2 * time.Minute))
		}
		id, err := g.Next()
		if err != nil {
			t.Fatal(err)
		}
		if seen[id] || id <= prev {
			t.Fatalf("id %d repeated or not increasing at %d", id, i)
		}
		seen[id], prev = true, id
		if Worker(id) != 5 {
			t.Fatalf("worker = %d", Worker(id))
		}
	}
}

func TestHighWaterMarkAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hwm")
	c := &fakeClock{t: Epoch.Add(time.Hour)}
	g := mustNew(t, 1, path, c.now)
	var last uint64
	for i := 0; i < 100; i++ {
		id, err := g.Next()
		if err != nil {
			t.Fatal(err)
		}
		last = id
	}
	c.set(c.now().Add(-time.Hour)) // restart with a clock far behind
	g2 := mustNew(t, 1, path, c.now)
	id, err := g2.Next()
	if err != nil {
		t.Fatal(err)
	}
	if id <= last {
		t.Fatalf("after restart id %d ≤ last issued %d", id, last)
	}
}

func TestWorkerRange(t *testing.T) {
	if _, err := New(MaxWorker+1, "", nil); err == nil {
		t.Fatal("want error")
	}
}

func TestConcurrent(t *testing.T) {
	g := mustNew(t, 3, filepath.Join(t.TempDir(), "hwm"), nil)
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]uint64, 0, 5000)
			for i := 0; i < 5000; i++ {
				id, err := g.Next()
				if err != nil {
					t.Error(err)
					return
				}
				local = append(local, id)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range local {
				if seen[id] {
					t.Errorf("duplicate %d", id)
				}
				seen[id] = true
			}
		}()
	}
	wg.Wait()
}
