package repair

import (
	"context"
	"testing"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/ring"
)

func testRing(t *testing.T, ids ...string) (*ring.Ring, map[osprey.NodeID]bool) {
	t.Helper()
	r, err := ring.New(ring.DefaultConfig(), ids)
	if err != nil {
		t.Fatal(err)
	}
	active := map[osprey.NodeID]bool{}
	for _, id := range ids {
		active[osprey.NodeID(id)] = true
	}
	return r, active
}

// TestPlanCopyMovesOnlyWhatTheRingMoved: after a join, every copy set
// ends on its ring owners; each move leaves a holder the ring no longer
// names for an owner that holds nothing, and a copy set on its owners,
// under-protected or with an inactive holder gets no move.
func TestPlanCopyMovesOnlyWhatTheRingMoved(t *testing.T) {
	old, _ := testRing(t, "n1", "n2", "n3")
	r, active := testRing(t, "n1", "n2", "n3", "n4")
	moved := 0
	for blob := uint64(1); blob <= 400; blob++ {
		var holders []osprey.NodeID
		for _, o := range old.Owners(ring.ChunkKey(blob, 1), 2) {
			holders = append(holders, osprey.NodeID(o))
		}
		h := fsm.Held{Chunk: fsm.Chunk{Blob: blob, Num: 1, Size: 10, Owners: holders}, Size: 10}
		after := append([]osprey.NodeID(nil), holders...)
		for _, from := range holders {
			for _, m := range planCopy(h, from, r, 2, active) {
				if m.From != from || m.To == from || hasNode(holders, m.To) {
					t.Fatalf("blob %d: bad move %+v of %v", blob, m, holders)
				}
				for i := range after {
					if after[i] == m.From {
						after[i] = m.To
					}
				}
				moved++
			}
		}
		for _, o := range r.Owners(ring.ChunkKey(blob, 1), 2) {
			if !hasNode(after, osprey.NodeID(o)) {
				t.Fatalf("blob %d: %v after the moves, ring wants %s", blob, after, o)
			}
		}
	}
	// A quarter of 800 copies should move to n4; allow the ring's spread.
	if moved < 120 || moved > 280 {
		t.Fatalf("%d of 800 copies moved", moved)
	}
	h := fsm.Held{Chunk: fsm.Chunk{Blob: 7, Num: 1, Owners: []osprey.NodeID{"n1"}}}
	if ms := planCopy(h, "n1", r, 2, active); len(ms) != 0 {
		t.Fatalf("under-protected chunk planned %+v", ms)
	}
	h = fsm.Held{Chunk: fsm.Chunk{Blob: 7, Num: 1, Owners: []osprey.NodeID{"n1", "n9"}}}
	if ms := planCopy(h, "n1", r, 2, active); len(ms) != 0 {
		t.Fatalf("chunk with an inactive holder planned %+v", ms)
	}
}

// TestPlanCopyShards: an erasure-coded chunk moves only the shards whose
// holder the ring no longer names, each to a member holding no shard.
func TestPlanCopyShards(t *testing.T) {
	r, active := testRing(t, "n1", "n2", "n3", "n4")
	for blob := uint64(1); blob <= 50; blob++ {
		key := ring.ChunkKey(blob, 1)
		want := r.Owners(key, 3)
		// Shards on the three members the ring wants least.
		var holders []osprey.NodeID
		for _, o := range r.Owners(key, 4)[1:] {
			holders = append(holders, osprey.NodeID(o))
		}
		ch := fsm.Chunk{Blob: blob, Num: 1, EC: &fsm.ECLayout{K: 2, M: 1}}
		for i, o := range holders {
			ch.EC.Shards = append(ch.EC.Shards, fsm.ECShard{Index: i, Owner: o, Size: 5})
		}
		var ms []fsm.Move
		for _, o := range holders {
			ms = append(ms, planCopy(fsm.Held{Chunk: ch}, o, r, 2, active)...)
		}
		if len(ms) != 1 || ms[0].To != osprey.NodeID(want[0]) || ms[0].Shard == 0 || ch.EC.Shards[ms[0].Shard-1].Owner != ms[0].From || ms[0].Size != 5 {
			t.Fatalf("blob %d: moves %+v (holders %v, ring %v)", blob, ms, holders, want)
		}
	}
}

// TestTokenBucketPaces: the bucket lets one second's worth through at
// once and paces the rest.
func TestTokenBucketPaces(t *testing.T) {
	b := newTokenBucket(1 << 20)
	start := time.Now()
	for i := 0; i < 6; i++ {
		if err := b.wait(context.Background(), 256<<10); err != nil {
			t.Fatal(err)
		}
	}
	// 1.5 MiB at 1 MiB/s with a 1 MiB burst: about half a second.
	if d := time.Since(start); d < 400*time.Millisecond || d > 3*time.Second {
		t.Fatalf("1.5 MiB took %s", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.wait(ctx, 10<<20); err == nil {
		t.Fatal("a cancelled wait returned nil")
	}
}
