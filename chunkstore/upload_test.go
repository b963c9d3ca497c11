package chunkstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

func mustPutUpload(t testing.TB, s *Store, k Key, data []byte) Info {
	t.Helper()
	info, err := s.PutUpload(context.Background(), k, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("PutUpload(%v, %d bytes): %v", k, len(data), err)
	}
	return info
}

func mustDeleteUpload(t testing.TB, s *Store, k Key, want bool) {
	t.Helper()
	removed, err := s.DeleteUpload(context.Background(), k)
	if err != nil || removed != want {
		t.Fatalf("DeleteUpload(%v) = %v, %v; want removed=%v", k, removed, err, want)
	}
}

// TestUploadCleanupKeepsLaterCopy is the race a chaos run once lost a file
// to: an upload gives up a lagging copy on one node and sends it a
// cleanup delete; rebalance, after the cluster healed, copies the recorded
// chunk to that same node; the delete arrives last. The cleanup must
// remove only the upload's own copy, never the later one, whatever order
// the three writes reach the store in.
func TestUploadCleanupKeepsLaterCopy(t *testing.T) {
	for _, path := range paths {
		t.Run(path.String(), func(t *testing.T) {
			ctx := context.Background()
			s := mustOpenMem(t, path)
			data := value(7, 3*testBlockSize+5)
			want := Info{Size: int64(len(data)), Sum: xxhash.Sum64(data)}

			// The upload's copy alone: its cleanup removes it.
			k := Key{UID: 1, Chunk: 1}
			if got := mustPutUpload(t, s, k, data); got != want {
				t.Fatalf("PutUpload = %+v, want %+v", got, want)
			}
			mustDeleteUpload(t, s, k, true)
			assertAbsent(t, s, k)

			// Rebalance's copy, then the upload's late cleanup: kept.
			k = Key{UID: 2, Chunk: 1}
			mustPut(t, s, k, data)
			mustDeleteUpload(t, s, k, false)
			if got, _ := mustGet(t, s, k, 0, -1); !bytes.Equal(got, data) {
				t.Fatal("later copy damaged by the cleanup")
			}

			// Rebalance's copy, the upload's late copy, its late cleanup:
			// the late copy does not replace the later one, so the
			// cleanup still finds a copy that is not the upload's.
			k = Key{UID: 3, Chunk: 1}
			mustPut(t, s, k, data)
			before := blockKeyCount(t, s, k)
			if got := mustPutUpload(t, s, k, data); got != want {
				t.Fatalf("PutUpload over a later copy = %+v, want its Info %+v", got, want)
			}
			if n := blockKeyCount(t, s, k); n != before {
				t.Fatalf("PutUpload over a later copy left %d block keys/files, want %d", n, before)
			}
			mustDeleteUpload(t, s, k, false)
			if got, _ := mustGet(t, s, k, 0, -1); !bytes.Equal(got, data) {
				t.Fatal("later copy lost to a late upload copy and its cleanup")
			}

			// The cleanup overtakes the upload's copy on the network: the
			// copy is refused, so nothing outlives the cleanup.
			k = Key{UID: 4, Chunk: 1}
			mustDeleteUpload(t, s, k, false)
			if _, err := s.PutUpload(ctx, k, bytes.NewReader(data), int64(len(data))); !errors.Is(err, ErrDiscarded) {
				t.Fatalf("PutUpload after its cleanup = %v, want ErrDiscarded", err)
			}
			assertAbsent(t, s, k)
			// A repair or rebalance copy of the same key is not refused.
			mustPut(t, s, k, data)

			if m := s.Metrics(); m.Chunks != 3 || m.BytesStored != 3*want.Size {
				t.Fatalf("Metrics = %+v, want 3 chunks of %d bytes", m, want.Size)
			}
		})
	}
}

// TestUploadCommitRace: PutUpload's check for a discarded key happens
// under the key's lock at commit, so a cleanup that arrives while the
// upload's copy is being written either finds and removes the copy or
// makes its commit fail; it never leaves the copy behind.
func TestUploadCommitRace(t *testing.T) {
	for _, path := range paths {
		t.Run(path.String(), func(t *testing.T) {
			ctx := context.Background()
			s := mustOpenMem(t, path)
			k := Key{UID: 9, Chunk: 2}
			data := value(9, 2*testBlockSize)
			s.testHookBeforeCommit = func(Key) {
				s.testHookBeforeCommit = nil
				if removed, err := s.DeleteUpload(ctx, k); err != nil || removed {
					t.Errorf("DeleteUpload mid-put = %v, %v", removed, err)
				}
			}
			if _, err := s.PutUpload(ctx, k, bytes.NewReader(data), int64(len(data))); !errors.Is(err, ErrDiscarded) {
				t.Fatalf("PutUpload overtaken by its cleanup = %v, want ErrDiscarded", err)
			}
			assertAbsent(t, s, k)
		})
	}
}

// TestUploadMarkSurvivesReopen: whose copy a value is lives in its
// manifest, so a cleanup after a restart still tells the two apart.
func TestUploadMarkSurvivesReopen(t *testing.T) {
	for _, path := range paths {
		t.Run(path.String(), func(t *testing.T) {
			fs := vfs.NewMem()
			opts := testOptions(t, fs, path)
			s, err := Open("/store", opts)
			if err != nil {
				t.Fatal(err)
			}
			up, later := Key{UID: 1}, Key{UID: 2}
			data := value(3, testBlockSize+1)
			mustPutUpload(t, s, up, data)
			mustPut(t, s, later, data)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = mustOpen(t, opts)
			if got, _ := mustGet(t, s, up, 0, -1); !bytes.Equal(got, data) {
				t.Fatal("upload copy differs after reopen")
			}
			mustDeleteUpload(t, s, later, false)
			mustDeleteUpload(t, s, up, true)
			assertAbsent(t, s, up)
			// A plain Delete (recorded garbage) removes either kind.
			mustPutUpload(t, s, Key{UID: 3}, data)
			if err := s.Delete(context.Background(), Key{UID: 3}); err != nil {
				t.Fatal(err)
			}
			assertAbsent(t, s, Key{UID: 3})
		})
	}
}

func TestManifestFlags(t *testing.T) {
	for _, m := range []manifest{
		{size: 5, blockSize: testBlockSize, blocks: 1, sum: 1, gen: 2, upload: true},
		{size: 3 * testBlockSize, blockSize: testBlockSize, blocks: 3, sum: 1, gen: 2, upload: true, file: true},
		{size: 3 * testBlockSize, blockSize: testBlockSize, blocks: 3, sum: 1, gen: 2, file: true},
		{size: 0, blockSize: testBlockSize, blocks: 0, gen: 2, upload: true},
	} {
		b := m.encode()
		if wantV := map[bool]byte{true: manifestVersionFlags, false: manifestVersionFile}[m.upload]; b[0] != wantV {
			t.Fatalf("%+v encoded as version %d, want %d", m, b[0], wantV)
		}
		got, err := decodeManifest(b)
		if err != nil || got != m {
			t.Fatalf("round trip of %+v = %+v, %v", m, got, err)
		}
	}
	m := manifest{size: 5, blockSize: testBlockSize, blocks: 1, gen: 2, upload: true}
	b := m.encode()
	b[len(b)-9] |= 0x80 // an unknown flag, with a valid checksum
	putSum(b)
	if _, err := decodeManifest(b); err == nil {
		t.Fatal("a manifest with an unknown flag decoded")
	}
}

// putSum rewrites the trailing checksum of an encoded manifest.
func putSum(b []byte) {
	n := len(b) - 8
	s := checksum(b[:n])
	for i := 7; i >= 0; i-- {
		b[n+i] = byte(s)
		s >>= 8
	}
}

// TestPutUploadNoSyncDurableWithNextSync: a one-block value committed
// without a sync is durable once a later synced write to the same Pebble
// instance returns (the Raft log's append of the entry that records it,
// simulated here by a synced Set under a key of the log's), or once
// SyncWAL returns; the crash clones keep none, half or all of the
// unsynced data.
func TestPutUploadNoSyncDurableWithNextSync(t *testing.T) {
	for _, unsynced := range []int{0, 50, 100} {
		t.Run(fmt.Sprintf("unsynced=%d%%", unsynced), func(t *testing.T) {
			ctx := context.Background()
			fs := vfs.NewCrashableMem()
			s := mustOpen(t, testOptions(t, fs, pathWAL))
			rng := func() *rand.Rand { return rand.New(rand.NewPCG(uint64(unsynced), 3)) }
			byLog, bySync, large := Key{UID: 1}, Key{UID: 2}, Key{UID: 3}
			small := value(1, testBlockSize-10)
			big := value(2, 2*testBlockSize+1)
			put := func(k Key, data []byte) {
				t.Helper()
				if _, err := s.PutUploadNoSync(ctx, k, bytes.NewReader(data), int64(len(data))); err != nil {
					t.Fatal(err)
				}
			}
			put(byLog, small)
			if unsynced == 0 {
				// Nothing synced it yet: a crash that keeps no unsynced
				// data loses it (the commit really was left unsynced).
				s0 := mustOpen(t, testOptions(t, fs.CrashClone(vfs.CrashCloneCfg{}), pathWAL))
				assertAbsent(t, s0, byLog)
			}
			if err := s.db.Set([]byte("R-an-entry"), []byte("x"), pebble.Sync); err != nil {
				t.Fatal(err)
			}
			afterLog := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: unsynced, RNG: rng()})
			put(bySync, small)
			if err := s.SyncWAL(); err != nil {
				t.Fatal(err)
			}
			afterSync := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: unsynced, RNG: rng()})
			put(large, big) // more than one block: synced by the Put itself
			afterLarge := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: unsynced, RNG: rng()})

			for name, c := range map[string]struct {
				fs   *vfs.MemFS
				keys map[Key][]byte
			}{
				"after the log's sync": {afterLog, map[Key][]byte{byLog: small}},
				"after SyncWAL":        {afterSync, map[Key][]byte{byLog: small, bySync: small}},
				"after a large put":    {afterLarge, map[Key][]byte{byLog: small, bySync: small, large: big}},
			} {
				s2 := mustOpen(t, testOptions(t, c.fs, pathWAL))
				for k, want := range c.keys {
					got, _, err := get(s2, k, 0, -1)
					if err != nil || !bytes.Equal(got, want) {
						t.Fatalf("%s: %v lost or torn in the crash: %v", name, k, err)
					}
				}
				// The mark survives too: the cleanup still tells it apart.
				if removed, err := s2.DeleteUpload(ctx, byLog); err != nil || !removed {
					t.Fatalf("%s: DeleteUpload = %v, %v", name, removed, err)
				}
			}
		})
	}
}

// TestSyncWALOnlyWhenNeeded: SyncWAL writes to the WAL only when a commit
// was left unsynced since the last one.
func TestSyncWALOnlyWhenNeeded(t *testing.T) {
	s := mustOpenMem(t, pathWAL)
	walBytes := func() uint64 { return s.db.Metrics().WAL.BytesWritten }
	if err := s.SyncWAL(); err != nil {
		t.Fatal(err)
	}
	before := walBytes()
	if err := s.SyncWAL(); err != nil || walBytes() != before {
		t.Fatalf("SyncWAL with nothing unsynced: %v, WAL %d -> %d bytes", err, before, walBytes())
	}
	data := value(4, 100)
	if _, err := s.PutUploadNoSync(context.Background(), Key{UID: 1}, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	mid := walBytes()
	if err := s.SyncWAL(); err != nil || walBytes() == mid {
		t.Fatalf("SyncWAL after an unsynced put: %v, WAL %d -> %d bytes", err, mid, walBytes())
	}
	if s.unsynced.Load() != 1 || s.synced.Load() != 1 {
		t.Fatalf("unsynced %d, synced %d", s.unsynced.Load(), s.synced.Load())
	}
}

// TestDeleteGenKeepsLaterWrite is a release that arrives late: rebalance
// read the generation of an off-ring copy, sent its delete, and the delete
// was held up (a partition) while the ring flipped back and a later move
// wrote the same chunk to the same node again. The late delete must remove
// only the write it named, also after a reopen in between.
func TestDeleteGenKeepsLaterWrite(t *testing.T) {
	for _, path := range paths {
		t.Run(path.String(), func(t *testing.T) {
			ctx := context.Background()
			fs := vfs.NewMem()
			opts := testOptions(t, fs, path)
			s := mustOpen(t, opts)
			k := Key{UID: 9, Chunk: 2}
			data := value(5, 2*testBlockSize+3)

			if _, err := s.Gen(ctx, k); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Gen of a missing key = %v, want ErrNotFound", err)
			}
			if removed, err := s.DeleteGen(ctx, k, 1); err != nil || removed {
				t.Fatalf("DeleteGen of a missing key = %v, %v; want false, nil", removed, err)
			}
			if _, err := s.DeleteGen(ctx, k, 0); err == nil {
				t.Fatal("DeleteGen with generation 0 succeeded; want an error")
			}

			mustPut(t, s, k, data)
			old, err := s.Gen(ctx, k)
			if err != nil || old == 0 {
				t.Fatalf("Gen = %d, %v", old, err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = mustOpen(t, opts)
			if g, err := s.Gen(ctx, k); err != nil || g != old {
				t.Fatalf("Gen after reopen = %d, %v; want %d", g, err, old)
			}
			// The same bytes written again (the move back): a new write.
			mustPut(t, s, k, data)
			later, err := s.Gen(ctx, k)
			if err != nil || later <= old {
				t.Fatalf("Gen after a second Put = %d, %v; want > %d", later, err, old)
			}
			before := blockKeyCount(t, s, k)
			if removed, err := s.DeleteGen(ctx, k, old); err != nil || removed {
				t.Fatalf("late DeleteGen(%d) = %v, %v; want kept", old, removed, err)
			}
			if got, _ := mustGet(t, s, k, 0, -1); !bytes.Equal(got, data) {
				t.Fatal("later write damaged by a late release")
			}
			if n := blockKeyCount(t, s, k); n != before {
				t.Fatalf("late release changed the value's blocks: %d, want %d", n, before)
			}
			if removed, err := s.DeleteGen(ctx, k, later); err != nil || !removed {
				t.Fatalf("DeleteGen(%d) of the current write = %v, %v; want removed", later, removed, err)
			}
			assertAbsent(t, s, k)
			if n := blockKeyCount(t, s, k); n != 0 {
				t.Fatalf("%d block keys/files left after DeleteGen", n)
			}
			if st := s.Metrics(); st.Chunks != 0 || st.BytesStored != 0 {
				t.Fatalf("stats after DeleteGen: %+v", st)
			}
		})
	}
}
