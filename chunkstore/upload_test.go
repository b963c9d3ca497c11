package chunkstore

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/cespare/xxhash/v2"
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
