package raftstore

import (
	"testing"

	"github.com/hashicorp/raft"
)

// TestCoversSnapshot: a persistent state machine needs no restore at
// startup when it applied every command up to the snapshot; entries it
// never sees (no-ops, configuration) between its index and the
// snapshot's do not count, a command does, and so does an entry the log no
// longer has.
func TestCoversSnapshot(t *testing.T) {
	logs := raft.NewInmemStore()
	types := map[uint64]raft.LogType{5: raft.LogCommand, 6: raft.LogNoop, 7: raft.LogConfiguration, 8: raft.LogCommand, 9: raft.LogBarrier}
	for i := uint64(5); i <= 9; i++ {
		if err := logs.StoreLog(&raft.Log{Index: i, Term: 1, Type: types[i]}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name          string
		applied, snap uint64
		want          bool
	}{
		{"at the snapshot", 8, 8, true},
		{"past it", 9, 8, true},
		{"only a noop and a configuration in between", 5, 7, true},
		{"a command in between", 5, 8, false},
		{"a barrier after the last command", 8, 9, true},
		{"entries compacted away", 1, 6, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := coversSnapshot(logs, tt.applied, tt.snap); got != tt.want {
				t.Fatalf("coversSnapshot(%d, %d) = %v, want %v", tt.applied, tt.snap, got, tt.want)
			}
		})
	}
}
