package chunkstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// testBlockSize keeps multi-block values small so tests stay fast.
const testBlockSize = minBlockSize

// paths are the write paths every data test runs on.
var paths = []writePath{pathWAL, pathIngest, pathFile}

// testLogger routes log output to t.Log (style F35). Stores are closed in
// t.Cleanup, before the test is over, so nothing logs after it ends.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func testOptions(t testing.TB, fs vfs.FS, path writePath) *Options {
	return &Options{
		FS:           fs,
		BlockSize:    testBlockSize,
		MaxChunkSize: 1 << 20,
		CacheSize:    8 << 20,
		Logger:       testLogger(t),
		writePath:    path,
	}
}

// mustOpen opens a store on opts and closes it at the end of the test.
func mustOpen(t testing.TB, opts *Options) *Store {
	t.Helper()
	s, err := Open("/store", opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func mustOpenMem(t testing.TB, path writePath) *Store {
	t.Helper()
	return mustOpen(t, testOptions(t, vfs.NewMem(), path))
}

// value returns n deterministic pseudo-random bytes for seed.
func value(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0x05e1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func mustPut(t testing.TB, s *Store, k Key, data []byte) Info {
	t.Helper()
	info, err := s.Put(context.Background(), k, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("Put(%v, %d bytes): %v", k, len(data), err)
	}
	if want := (Info{Size: int64(len(data)), Sum: xxhash.Sum64(data)}); info != want {
		t.Fatalf("Put(%v) = %+v, want %+v", k, info, want)
	}
	return info
}

// mustGet reads k[off:off+n] fully.
func mustGet(t testing.TB, s *Store, k Key, off, n int64) ([]byte, Info) {
	t.Helper()
	got, info, err := get(s, k, off, n)
	if err != nil {
		t.Fatalf("Get(%v, %d, %d): %v", k, off, n, err)
	}
	return got, info
}

func get(s *Store, k Key, off, n int64) ([]byte, Info, error) {
	rc, info, err := s.Get(context.Background(), k, off, n)
	if err != nil {
		return nil, Info{}, err
	}
	got, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	return got, info, err
}

// blockKeyCount counts the live block keys and blob files of k (all
// generations), to check
// that failed and replaced Puts leave nothing behind.
func blockKeyCount(t testing.TB, s *Store, k Key) int {
	t.Helper()
	lo := appendKeyID([]byte{kindBlock}, k)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixSuccessor(lo)})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	return n + blobFileCount(t, s, k)
}

// blobFileCount counts the blob files of k (all generations).
func blobFileCount(t testing.TB, s *Store, k Key) int {
	t.Helper()
	names, err := s.fs.List(s.blobsDir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, name := range names {
		if bk, _, ok := parseBlobName(name); ok && bk == k {
			n++
		}
	}
	return n
}

func pendingCount(t testing.TB, s *Store) int {
	t.Helper()
	lo, hi := kindSpan(kindPending)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	return n
}

// assertAbsent checks that k has no visible value and no leftover blocks or
// pending markers.
func assertAbsent(t testing.TB, s *Store, k Key) {
	t.Helper()
	if _, err := s.Stat(context.Background(), k); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat(%v) = %v, want ErrNotFound", k, err)
	}
	if _, _, err := s.Get(context.Background(), k, 0, -1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(%v) = %v, want ErrNotFound", k, err)
	}
	if n := blockKeyCount(t, s, k); n != 0 {
		t.Fatalf("%v: %d leftover block keys", k, n)
	}
	if n := pendingCount(t, s); n != 0 {
		t.Fatalf("%d leftover pending markers", n)
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		opts    *Options
		wantErr bool
	}{
		{"nil", nil, false},
		{"default", DefaultOptions(), false},
		{"zero means default", &Options{}, false},
		{"min block", &Options{BlockSize: minBlockSize}, false},
		{"tiny block", &Options{BlockSize: 100}, true},
		{"huge block", &Options{BlockSize: maxBlockSize + 1}, true},
		{"negative max chunk", &Options{MaxChunkSize: -1}, true},
		{"negative puts", &Options{MaxConcurrentPuts: -1}, true},
		{"negative cache", &Options{CacheSize: -1}, true},
		{"bad path", &Options{writePath: 9}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalidOptions) {
				t.Fatalf("Validate() = %v, want ErrInvalidOptions", err)
			}
		})
	}
	if _, err := Open("/x", &Options{FS: vfs.NewMem(), BlockSize: 1}); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("Open with bad options = %v, want ErrInvalidOptions", err)
	}
}

func TestRoundTrip(t *testing.T) {
	sizes := []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"one byte", 1},
		{"block-1", testBlockSize - 1},
		{"block", testBlockSize},
		{"block+1", testBlockSize + 1},
		{"multi-block", 5*testBlockSize + 123},
		{"exact multi-block", 4 * testBlockSize},
	}
	for _, path := range paths {
		t.Run(path.String(), func(t *testing.T) {
			s := mustOpenMem(t, path)
			for i, tt := range sizes {
				t.Run(tt.name, func(t *testing.T) {
					k := Key{UID: 1, Chunk: uint32(i), Shard: 0}
					data := value(uint64(i), tt.size)
					want := mustPut(t, s, k, data)
					got, info := mustGet(t, s, k, 0, -1)
					if !bytes.Equal(got, data) {
						t.Fatalf("Get returned %d bytes, differing from the %d put", len(got), len(data))
					}
					if info != want {
						t.Fatalf("Get info = %+v, want %+v", info, want)
					}
					if st, err := s.Stat(context.Background(), k); err != nil || st != want {
						t.Fatalf("Stat = %+v, %v; want %+v", st, err, want)
					}
					if vi, err := s.Verify(context.Background(), k); err != nil || vi != want {
						t.Fatalf("Verify = %+v, %v; want %+v", vi, err, want)
					}
				})
			}
		})
	}
}

func TestRangedRead(t *testing.T) {
	const bs = testBlockSize
	size := int64(3*bs + 100)
	data := value(7, int(size))
	tests := []struct {
		name     string
		off, n   int64
		from, to int64 // expected data[from:to]
	}{
		{"all", 0, -1, 0, size},
		{"all explicit", 0, size, 0, size},
		{"empty at start", 0, 0, 0, 0},
		{"first byte", 0, 1, 0, 1},
		{"last byte of block 0", bs - 1, 1, bs - 1, bs},
		{"across boundary", bs - 1, 2, bs - 1, bs + 1},
		{"exact block 1", bs, bs, bs, 2 * bs},
		{"block 1 to end", bs, -1, bs, size},
		{"spanning three blocks", bs - 10, bs + 20, bs - 10, 2*bs + 10},
		{"tail block", 3 * bs, -1, 3 * bs, size},
		{"last byte", size - 1, -1, size - 1, size},
		{"n past end is clamped", size - 5, 100, size - 5, size},
		{"at end", size, -1, size, size},
	}
	for _, path := range paths {
		t.Run(path.String(), func(t *testing.T) {
			s := mustOpenMem(t, path)
			k := Key{UID: 9, Chunk: 1}
			want := mustPut(t, s, k, data)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					got, info := mustGet(t, s, k, tt.off, tt.n)
					if !bytes.Equal(got, data[tt.from:tt.to]) {
						t.Fatalf("got %d bytes, want data[%d:%d]", len(got), tt.from, tt.to)
					}
					if info != want {
						t.Fatalf("info = %+v, want %+v", info, want)
					}
				})
			}
			for _, off := range []int64{-1, size + 1} {
				if _, _, err := s.Get(context.Background(), k, off, 1); !errors.Is(err, ErrInvalidRange) {
					t.Fatalf("Get(off=%d) = %v, want ErrInvalidRange", off, err)
				}
			}
		})
	}
}

// TestReadSmallBuffers reads with an odd buffer size, so reads straddle
// block boundaries, and through WriteTo.
func TestReadSmallBuffers(t *testing.T) {
	s := mustOpenMem(t, pathWAL)
	k := Key{UID: 3}
	data := value(3, 3*testBlockSize+7)
	mustPut(t, s, k, data)
	rc, _, err := s.Get(context.Background(), k, 5, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var got []byte
	buf := make([]byte, 999)
	for {
		n, err := rc.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, data[5:]) {
		t.Fatal("small-buffer read differs")
	}
	rc2, _, err := s.Get(context.Background(), k, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc2.Close()
	var out bytes.Buffer
	if n, err := rc2.(io.WriterTo).WriteTo(&out); err != nil || n != int64(len(data)) || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("WriteTo = %d, %v", n, err)
	}
}

// shortReader returns fewer bytes than promised.
func TestSizeMismatch(t *testing.T) {
	data := value(1, 2*testBlockSize+10)
	tests := []struct {
		name string
		r    func() io.Reader
		size int64
	}{
		{"short", func() io.Reader { return bytes.NewReader(data[:len(data)-1]) }, int64(len(data))},
		{"short by a block", func() io.Reader { return bytes.NewReader(data[:testBlockSize]) }, int64(len(data))},
		{"empty reader", func() io.Reader { return bytes.NewReader(nil) }, 10},
		{"long", func() io.Reader { return bytes.NewReader(data) }, int64(len(data) - 1)},
		{"long for empty", func() io.Reader { return bytes.NewReader(data) }, 0},
		{"negative size", func() io.Reader { return bytes.NewReader(data) }, -1},
	}
	for _, path := range paths {
		t.Run(path.String(), func(t *testing.T) {
			s := mustOpenMem(t, path)
			old := Key{UID: 1, Chunk: 1}
			oldData := value(99, testBlockSize+3)
			oldInfo := mustPut(t, s, old, oldData)
			for i, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					fresh := Key{UID: 2, Chunk: uint32(i)}
					if _, err := s.Put(context.Background(), fresh, tt.r(), tt.size); !errors.Is(err, ErrSizeMismatch) {
						t.Fatalf("Put = %v, want ErrSizeMismatch", err)
					}
					assertAbsent(t, s, fresh)
					// A failed replacement leaves the old value intact.
					if _, err := s.Put(context.Background(), old, tt.r(), tt.size); !errors.Is(err, ErrSizeMismatch) {
						t.Fatalf("replacing Put = %v, want ErrSizeMismatch", err)
					}
					got, info := mustGet(t, s, old, 0, -1)
					if !bytes.Equal(got, oldData) || info != oldInfo {
						t.Fatal("old value changed by a failed Put")
					}
				})
			}
			if m := s.Metrics(); m.PutErrors != int64(2*len(tests)) || m.Chunks != 1 {
				t.Fatalf("Metrics = %+v", m)
			}
		})
	}
}

// TestReplaceAtomic has readers read a value while a writer replaces it
// with versions of different sizes: every read must return exactly one
// version, whole.
func TestReplaceAtomic(t *testing.T) {
	for _, path := range paths {
		t.Run(path.String(), func(t *testing.T) {
			s := mustOpenMem(t, path)
			k := Key{UID: 5, Chunk: 2}
			const versions = 30
			// Version v is v+1 blocks-ish of byte v, so a mix is visible.
			version := func(v int) []byte {
				return bytes.Repeat([]byte{byte(v)}, (v%4)*testBlockSize+v+1)
			}
			mustPut(t, s, k, version(0))
			var wg sync.WaitGroup
			var stop atomic.Bool
			errc := make(chan error, 4)
			for range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for !stop.Load() {
						got, info, err := get(s, k, 0, -1)
						if err != nil {
							errc <- err
							return
						}
						if len(got) == 0 {
							errc <- errors.New("empty read")
							return
						}
						want := version(int(got[0]))
						if !bytes.Equal(got, want) || info.Sum != xxhash.Sum64(want) {
							errc <- fmt.Errorf("read a mix: %d bytes starting with %d", len(got), got[0])
							return
						}
					}
				}()
			}
			for v := 1; v < versions; v++ {
				mustPut(t, s, k, version(v))
			}
			stop.Store(true)
			wg.Wait()
			close(errc)
			for err := range errc {
				t.Fatal(err)
			}
			got, _ := mustGet(t, s, k, 0, -1)
			if !bytes.Equal(got, version(versions-1)) {
				t.Fatal("final value is not the last version")
			}
			// Replaced generations were dropped.
			m, _, _ := s.readManifest(k)
			want := int(m.blocks)
			if m.file {
				want = 1 // one blob file
			}
			if n := blockKeyCount(t, s, k); n != want {
				t.Fatalf("%d block keys or blob files, want %d", n, want)
			}
		})
	}
}

// TestReaderSnapshot checks that an open reader keeps reading the value it
// started with across a replacement and a delete.
func TestReaderSnapshot(t *testing.T) {
	for _, path := range paths {
		t.Run(path.String(), func(t *testing.T) {
			s := mustOpenMem(t, path)
			k := Key{UID: 1}
			v1 := value(1, 3*testBlockSize)
			mustPut(t, s, k, v1)
			rc, _, err := s.Get(context.Background(), k, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			first := make([]byte, 10)
			if _, err := io.ReadFull(rc, first); err != nil {
				t.Fatal(err)
			}
			mustPut(t, s, k, value(2, 2*testBlockSize))
			if err := s.Delete(context.Background(), k); err != nil {
				t.Fatal(err)
			}
			rest, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(append(first, rest...), v1) {
				t.Fatal("reader did not keep its view of the old value")
			}
		})
	}
}

// corruptBlock flips one byte of block idx of k's current value, writing
// straight to Pebble (the test hook into internal state).
func corruptBlock(t *testing.T, s *Store, k Key, idx uint32, at int) {
	t.Helper()
	m, found, err := s.readManifest(k)
	if err != nil || !found {
		t.Fatalf("readManifest: %v, %v", found, err)
	}
	if m.file {
		path := s.blobPath(k, m.gen)
		f, err := s.fs.OpenReadWrite(path, vfs.WriteCategoryUnspecified)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var b [1]byte
		off := m.blobOffset(idx) + int64(at)
		if _, err := f.ReadAt(b[:], off); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0x40
		if _, err := f.WriteAt(b[:], off); err != nil {
			t.Fatal(err)
		}
		return
	}
	bk := blockKey(k, m.gen, idx)
	v, closer, err := s.db.Get(bk)
	if err != nil {
		t.Fatal(err)
	}
	v = slices.Clone(v)
	closer.Close()
	v[at] ^= 0x40
	if err := s.db.Set(bk, v, pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

func TestCorruption(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(t *testing.T, s *Store, k Key)
	}{
		{"data byte", func(t *testing.T, s *Store, k Key) { corruptBlock(t, s, k, 1, 17) }},
		{"stored checksum", func(t *testing.T, s *Store, k Key) { corruptBlock(t, s, k, 1, testBlockSize+2) }},
		{"missing block", func(t *testing.T, s *Store, k Key) {
			m, _, _ := s.readManifest(k)
			if err := s.db.Delete(blockKey(k, m.gen, 1), pebble.Sync); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncated block", func(t *testing.T, s *Store, k Key) {
			m, _, _ := s.readManifest(k)
			if err := s.db.Set(blockKey(k, m.gen, 1), []byte("short"), pebble.Sync); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, path := range paths {
		for _, tt := range tests {
			t.Run(path.String()+"/"+tt.name, func(t *testing.T) {
				if path == pathFile && strings.Contains(tt.name, "block") {
					t.Skip("blocks are not Pebble keys on the file path: TestBlobFileDamage")
				}
				s := mustOpenMem(t, path)
				k := Key{UID: 77, Chunk: 3, Shard: 2}
				data := value(5, 3*testBlockSize)
				mustPut(t, s, k, data)
				tt.corrupt(t, s, k)

				_, _, err := get(s, k, 0, -1)
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Get = %v, want ErrCorrupt", err)
				}
				if !strings.Contains(err.Error(), k.String()) {
					t.Fatalf("error %q does not name key %v", err, k)
				}
				if _, err := s.Verify(context.Background(), k); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Verify = %v, want ErrCorrupt", err)
				}
				// A range that avoids the bad block still reads.
				got, _ := mustGet(t, s, k, 2*testBlockSize, -1)
				if !bytes.Equal(got, data[2*testBlockSize:]) {
					t.Fatal("clean range differs")
				}
				// A range that touches any byte of it fails.
				if _, _, err := get(s, k, 2*testBlockSize-1, 1); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("ranged Get over bad block = %v, want ErrCorrupt", err)
				}
				if c := s.Metrics().Corrupt; c < 3 {
					t.Fatalf("Metrics().Corrupt = %d, want >= 3", c)
				}
			})
		}
	}
}

func TestCorruptManifest(t *testing.T) {
	s := mustOpenMem(t, pathWAL)
	k := Key{UID: 1}
	mustPut(t, s, k, value(1, 100))
	mustPut(t, s, Key{UID: 2}, value(2, 100))
	if err := s.db.Set(manifestKey(k), []byte{manifestVersion, 1, 2}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(context.Background(), k); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Stat = %v, want ErrCorrupt", err)
	}
	if _, _, err := s.Get(context.Background(), k, 0, -1); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get = %v, want ErrCorrupt", err)
	}
	var seen []Key
	err := s.Scan(context.Background(), func(k Key, _ Info) error { seen = append(seen, k); return nil })
	if !errors.Is(err, ErrCorrupt) || !slices.Equal(seen, []Key{{UID: 2}}) {
		t.Fatalf("Scan = %v, saw %v; want ErrCorrupt and the good key", err, seen)
	}
	// A corrupt value can be replaced or deleted.
	mustPut(t, s, k, value(3, 10))
	if err := s.Delete(context.Background(), k); err != nil {
		t.Fatal(err)
	}
}

func TestDelete(t *testing.T) {
	for _, path := range paths {
		t.Run(path.String(), func(t *testing.T) {
			s := mustOpenMem(t, path)
			ctx := context.Background()
			k := Key{UID: 4, Chunk: 1}
			if err := s.Delete(ctx, k); err != nil {
				t.Fatalf("Delete(missing) = %v", err)
			}
			mustPut(t, s, k, value(1, 2*testBlockSize))
			keep := Key{UID: 4, Chunk: 2}
			mustPut(t, s, keep, value(2, 10))
			if err := s.Delete(ctx, k); err != nil {
				t.Fatal(err)
			}
			assertAbsent(t, s, k)
			if _, err := s.Verify(ctx, k); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Verify = %v, want ErrNotFound", err)
			}
			if _, err := s.Stat(ctx, keep); err != nil {
				t.Fatalf("Stat(other) = %v", err)
			}
			if m := s.Metrics(); m.Chunks != 1 || m.BytesStored != 10 || m.Deletes != 1 {
				t.Fatalf("Metrics = %+v", m)
			}
		})
	}
}

func TestDeleteUID(t *testing.T) {
	for _, path := range paths {
		t.Run(path.String(), func(t *testing.T) {
			s := mustOpenMem(t, path)
			ctx := context.Background()
			var doomed, kept []Key
			for _, uid := range []uint64{9, 10, 11, ^uint64(0)} {
				for c := uint32(1); c <= 3; c++ {
					for sh := uint16(0); sh < 3; sh++ {
						k := Key{UID: uid, Chunk: c, Shard: sh}
						mustPut(t, s, k, value(uid^uint64(c), int(c)*testBlockSize/2))
						if uid == 10 || uid == ^uint64(0) {
							doomed = append(doomed, k)
						} else {
							kept = append(kept, k)
						}
					}
				}
			}
			for _, uid := range []uint64{10, ^uint64(0), 12345} {
				if err := s.DeleteUID(ctx, uid); err != nil {
					t.Fatalf("DeleteUID(%d): %v", uid, err)
				}
			}
			for _, k := range doomed {
				assertAbsent(t, s, k)
			}
			for _, k := range kept {
				if _, err := s.Verify(ctx, k); err != nil {
					t.Fatalf("Verify(%v) = %v", k, err)
				}
			}
			if m := s.Metrics(); m.Chunks != int64(len(kept)) || m.Deletes != int64(len(doomed)) {
				t.Fatalf("Metrics = %+v, want %d chunks", m, len(kept))
			}
		})
	}
}

func TestScan(t *testing.T) {
	s := mustOpenMem(t, pathWAL)
	ctx := context.Background()
	want := map[Key]Info{}
	// More than a scan page, in scrambled order.
	for i := range 2*scanPage + 3 {
		k := Key{UID: uint64(i*7919) % 1000, Chunk: uint32(i % 3), Shard: uint16(i % 2)}
		want[k] = mustPut(t, s, k, value(uint64(i), i%50))
	}
	var keys []Key
	err := s.Scan(ctx, func(k Key, info Info) error {
		if info != want[k] {
			t.Errorf("Scan %v: %+v, want %+v", k, info, want[k])
		}
		keys = append(keys, k)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != len(want) {
		t.Fatalf("Scan saw %d keys, want %d", len(keys), len(want))
	}
	if !slices.IsSortedFunc(keys, func(a, b Key) int {
		return bytes.Compare(manifestKey(a), manifestKey(b))
	}) {
		t.Fatal("Scan not in key order")
	}

	stop := errors.New("stop")
	n := 0
	if err := s.Scan(ctx, func(Key, Info) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("Scan with failing fn = %v after %d calls", err, n)
	}
	// fn may call back into the store, e.g. a scrubber deleting.
	err = s.Scan(ctx, func(k Key, _ Info) error {
		if k.Chunk == 0 {
			return s.Delete(ctx, k)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Scan(cctx, func(Key, Info) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Scan(cancelled) = %v", err)
	}
}

func TestReopen(t *testing.T) {
	for _, path := range paths {
		t.Run(path.String(), func(t *testing.T) {
			fs := vfs.NewMem()
			opts := testOptions(t, fs, path)
			s, err := Open("/store", opts)
			if err != nil {
				t.Fatal(err)
			}
			k1, k2 := Key{UID: 1}, Key{UID: 2, Chunk: 1}
			d1, d2 := value(1, 3*testBlockSize+1), value(2, 0)
			mustPut(t, s, k1, d1)
			mustPut(t, s, k2, d2)
			mustPut(t, s, k1, d1) // a replacement, so generations matter
			rc, _, err := s.Get(context.Background(), k1, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("second Close = %v", err)
			}
			// The open reader was closed by Close.
			if _, err := io.ReadAll(rc); !errors.Is(err, ErrClosed) {
				t.Fatalf("Read after Close = %v, want ErrClosed", err)
			}
			if err := rc.Close(); err != nil {
				t.Fatal(err)
			}
			assertClosed(t, s)

			s = mustOpen(t, opts)
			for k, d := range map[Key][]byte{k1: d1, k2: d2} {
				got, _ := mustGet(t, s, k, 0, -1)
				if !bytes.Equal(got, d) {
					t.Fatalf("%v differs after reopen", k)
				}
			}
			if m := s.Metrics(); m.Chunks != 2 || m.BytesStored != int64(len(d1)+len(d2)) {
				t.Fatalf("Metrics after reopen = %+v", m)
			}
			// New generations do not collide with the old ones.
			d3 := value(3, 2*testBlockSize)
			mustPut(t, s, k1, d3)
			if got, _ := mustGet(t, s, k1, 0, -1); !bytes.Equal(got, d3) {
				t.Fatal("replacement after reopen differs")
			}
		})
	}
}

func assertClosed(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	k := Key{UID: 1}
	errs := map[string]error{}
	_, errs["Put"] = s.Put(ctx, k, bytes.NewReader(nil), 0)
	_, _, errs["Get"] = s.Get(ctx, k, 0, -1)
	_, errs["Stat"] = s.Stat(ctx, k)
	_, errs["Verify"] = s.Verify(ctx, k)
	errs["Delete"] = s.Delete(ctx, k)
	errs["DeleteUID"] = s.DeleteUID(ctx, 1)
	errs["Scan"] = s.Scan(ctx, func(Key, Info) error { return nil })
	for op, err := range errs {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", op, err)
		}
	}
}

// TestCrashRecovery crashes the filesystem while a Put has written its
// blocks but not committed, and checks that the reopened store shows
// nothing of it, drops its blocks, and keeps committed values.
func TestCrashRecovery(t *testing.T) {
	for _, path := range paths {
		for _, unsynced := range []int{0, 50, 100} {
			t.Run(fmt.Sprintf("%v/unsynced=%d%%", path, unsynced), func(t *testing.T) {
				fs := vfs.NewCrashableMem()
				opts := testOptions(t, fs, path)
				s := mustOpen(t, opts)
				committed, inflight := Key{UID: 1}, Key{UID: 2}
				cdata := value(1, 2*testBlockSize+5)
				mustPut(t, s, committed, cdata)

				var crashed *vfs.MemFS
				s.testHookBeforeCommit = func(k Key) {
					if k == inflight {
						crashed = fs.CrashClone(vfs.CrashCloneCfg{
							UnsyncedDataPercent: unsynced,
							RNG:                 rand.New(rand.NewPCG(uint64(unsynced), 1)),
						})
					}
				}
				mustPut(t, s, inflight, value(2, 3*testBlockSize))

				s2 := mustOpen(t, testOptions(t, crashed, path))
				assertAbsent(t, s2, inflight)
				got, _ := mustGet(t, s2, committed, 0, -1)
				if !bytes.Equal(got, cdata) {
					t.Fatal("committed value lost in crash")
				}
				if m := s2.Metrics(); m.Chunks != 1 {
					t.Fatalf("Metrics after crash = %+v", m)
				}
			})
		}
	}
}

// TestInjectedWriteError fails writes of the staging sstable (ingest path)
// and of the blob file and its directory sync (file path), and checks that
// the Put fails and leaves nothing visible. The WAL path cannot be tested
// this way: Pebble treats a failed WAL write as fatal (see
// pebbleLogger.Fatalf), which the store deliberately does not mask.
func TestInjectedWriteError(t *testing.T) {
	tests := []struct {
		name string
		path writePath
		op   errorfs.OpKind
		in   func(path string) bool // which files fail
	}{
		{"ingest/write", pathIngest, errorfs.OpFileWrite, inDir("/staging/")},
		{"ingest/sync", pathIngest, errorfs.OpFileSync, inDir("/staging/")},
		{"ingest/create", pathIngest, errorfs.OpCreate, inDir("/staging/")},
		{"file/write", pathFile, errorfs.OpFileWrite, inDir("/blobs/")},
		{"file/sync", pathFile, errorfs.OpFileSyncData, inDir("/blobs/")},
		{"file/create", pathFile, errorfs.OpCreate, inDir("/blobs/")},
		{"file/dir-sync", pathFile, errorfs.OpFileSync, func(p string) bool { return strings.HasSuffix(p, "/blobs") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var armed atomic.Bool
			var hits atomic.Int64
			inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
				if armed.Load() && op.Kind == tt.op && tt.in(op.Path) {
					hits.Add(1)
					return errorfs.ErrInjected
				}
				return nil
			})
			fs := errorfs.Wrap(vfs.NewMem(), inj)
			s := mustOpen(t, testOptions(t, fs, tt.path))
			old, fresh := Key{UID: 1}, Key{UID: 2}
			oldData := value(1, 2*testBlockSize)
			mustPut(t, s, old, oldData)

			armed.Store(true)
			data := value(2, 3*testBlockSize)
			for _, k := range []Key{fresh, old} {
				if _, err := s.Put(context.Background(), k, bytes.NewReader(data), int64(len(data))); !errors.Is(err, errorfs.ErrInjected) {
					t.Fatalf("Put(%v) = %v, want injected error", k, err)
				}
			}
			if hits.Load() == 0 {
				t.Fatal("no error injected")
			}
			assertAbsent(t, s, fresh)
			if got, _ := mustGet(t, s, old, 0, -1); !bytes.Equal(got, oldData) {
				t.Fatal("old value changed by a failed Put")
			}
			if names, err := fs.List(s.stagingDir); err != nil || len(names) != 0 {
				t.Fatalf("staging dir = %v, %v; want empty", names, err)
			}
			if n := blockKeyCount(t, s, old); tt.path == pathFile && n != 1 {
				t.Fatalf("%d blob files of the old value, want 1", n)
			}
			// The store keeps working once the fault clears.
			armed.Store(false)
			mustPut(t, s, fresh, data)
		})
	}
}

func inDir(dir string) func(string) bool {
	return func(p string) bool { return strings.Contains(p, dir) }
}

// TestBlobFileDamage: a blob file that lost its tail or vanished reads as
// ErrCorrupt naming the key, for Get and Verify, and counts in Metrics.
func TestBlobFileDamage(t *testing.T) {
	for _, tt := range []struct {
		name   string
		damage func(t *testing.T, s *Store, path string)
	}{
		{"truncated", func(t *testing.T, s *Store, path string) {
			f, err := s.fs.OpenReadWrite(path, vfs.WriteCategoryUnspecified)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			// vfs.File has no Truncate: rewrite the file shorter.
			buf := make([]byte, testBlockSize+8+100)
			if _, err := f.ReadAt(buf, 0); err != nil {
				t.Fatal(err)
			}
			if err := s.fs.Remove(path); err != nil {
				t.Fatal(err)
			}
			g, err := s.fs.Create(path, vfs.WriteCategoryUnspecified)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := g.Write(buf); err != nil {
				t.Fatal(err)
			}
			if err := g.Close(); err != nil {
				t.Fatal(err)
			}
		}},
		{"missing", func(t *testing.T, s *Store, path string) {
			if err := s.fs.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := mustOpenMem(t, pathFile)
			k := Key{UID: 9, Chunk: 1, Shard: 4}
			mustPut(t, s, k, value(3, 3*testBlockSize))
			m, _, _ := s.readManifest(k)
			if !m.file {
				t.Fatal("value not stored as a blob file")
			}
			tt.damage(t, s, s.blobPath(k, m.gen))
			if _, _, err := get(s, k, 0, -1); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), k.String()) {
				t.Fatalf("Get = %v, want ErrCorrupt naming %v", err, k)
			}
			if _, err := s.Verify(context.Background(), k); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Verify = %v, want ErrCorrupt", err)
			}
			if s.Metrics().Corrupt == 0 {
				t.Fatal("corruption not counted")
			}
		})
	}
}

func TestTooLarge(t *testing.T) {
	opts := testOptions(t, vfs.NewMem(), pathAuto)
	opts.MaxChunkSize = 3 * testBlockSize
	s := mustOpen(t, opts)
	r := readerFunc(func([]byte) (int, error) {
		t.Error("Put read from the reader of a too-large value")
		return 0, io.EOF
	})
	if _, err := s.Put(context.Background(), Key{UID: 1}, r, opts.MaxChunkSize+1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Put = %v, want ErrTooLarge", err)
	}
	mustPut(t, s, Key{UID: 1}, value(1, int(opts.MaxChunkSize)))
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestCancelMidPut cancels the context after the reader has delivered one
// block and a half; the Put fails at the next block boundary and nothing is
// visible.
func TestCancelMidPut(t *testing.T) {
	for _, path := range paths {
		t.Run(path.String(), func(t *testing.T) {
			s := mustOpenMem(t, path)
			k := Key{UID: 8}
			data := value(8, 4*testBlockSize)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			src := bytes.NewReader(data)
			var delivered int
			r := readerFunc(func(p []byte) (int, error) {
				n, err := src.Read(p)
				delivered += n
				if delivered >= testBlockSize+testBlockSize/2 {
					cancel()
				}
				return n, err
			})
			if _, err := s.Put(ctx, k, r, int64(len(data))); !errors.Is(err, context.Canceled) {
				t.Fatalf("Put = %v, want context.Canceled", err)
			}
			if delivered == len(data) {
				t.Fatal("Put read the whole value despite the cancel")
			}
			assertAbsent(t, s, k)
		})
	}
}

// TestConcurrentPuts runs Puts to different keys and to one shared key in
// parallel (run it with -race), checks that at most MaxConcurrentPuts read
// at once, and that every value reads back.
func TestConcurrentPuts(t *testing.T) {
	for _, path := range []writePath{pathAuto, pathWAL, pathIngest, pathFile} {
		t.Run(path.String(), func(t *testing.T) {
			opts := testOptions(t, vfs.NewMem(), path)
			opts.MaxConcurrentPuts = 3
			opts.ingestThreshold = 2 * testBlockSize // auto: both paths
			s := mustOpen(t, opts)
			const workers, each = 6, 8
			shared := Key{UID: 999}
			var active, peak atomic.Int64
			var wg sync.WaitGroup
			errc := make(chan error, workers)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						k := Key{UID: uint64(w), Chunk: uint32(i)}
						if i%4 == 3 {
							k = shared
						}
						data := value(uint64(w*100+i), (w+i)%5*testBlockSize+w)
						r := &countingReader{r: bytes.NewReader(data), active: &active, peak: &peak}
						if _, err := s.Put(context.Background(), k, r, int64(len(data))); err != nil {
							errc <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errc)
			for err := range errc {
				t.Fatal(err)
			}
			if p := peak.Load(); p > int64(opts.MaxConcurrentPuts) {
				t.Fatalf("%d Puts read at once, limit %d", p, opts.MaxConcurrentPuts)
			}
			for w := range workers {
				for i := range each {
					if i%4 == 3 {
						continue
					}
					k := Key{UID: uint64(w), Chunk: uint32(i)}
					data := value(uint64(w*100+i), (w+i)%5*testBlockSize+w)
					if got, _ := mustGet(t, s, k, 0, -1); !bytes.Equal(got, data) {
						t.Fatalf("%v differs", k)
					}
				}
			}
			if _, err := s.Verify(context.Background(), shared); err != nil {
				t.Fatal(err)
			}
			if m := s.Metrics(); m.Puts != workers*each || m.Chunks != workers*(each-2)+1 {
				t.Fatalf("Metrics = %+v", m)
			}
		})
	}
}

// countingReader tracks how many readers are between their first Read and
// EOF, a window inside the one in which a Put holds its slot.
type countingReader struct {
	r            io.Reader
	started      bool
	finished     bool
	active, peak *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if !c.started {
		c.started = true
		n := c.active.Add(1)
		for {
			old := c.peak.Load()
			if n <= old || c.peak.CompareAndSwap(old, n) {
				break
			}
		}
	}
	n, err := c.r.Read(p)
	if err == io.EOF {
		// Put probes for EOF before it commits and frees its slot.
		c.done()
	}
	return n, err
}

func (c *countingReader) done() {
	if c.started && !c.finished {
		c.finished = true
		c.active.Add(-1)
	}
}

// TestPutWaitsForSlot fills the Put slots with blocked Puts and checks a
// further Put gives up on its context without reading.
func TestPutWaitsForSlot(t *testing.T) {
	opts := testOptions(t, vfs.NewMem(), pathWAL)
	opts.MaxConcurrentPuts = 1
	s := mustOpen(t, opts)
	release := make(chan struct{})
	reading := make(chan struct{})
	blocked := readerFunc(func(p []byte) (int, error) {
		close(reading)
		<-release
		return 0, io.EOF
	})
	done := make(chan error)
	go func() {
		_, err := s.Put(context.Background(), Key{UID: 1}, blocked, 10)
		done <- err
	}()
	<-reading
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	untouched := readerFunc(func([]byte) (int, error) {
		t.Error("waiting Put read its reader")
		return 0, io.EOF
	})
	if _, err := s.Put(ctx, Key{UID: 2}, untouched, 10); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put = %v, want context.Canceled", err)
	}
	close(release)
	if err := <-done; !errors.Is(err, ErrSizeMismatch) {
		t.Fatalf("blocked Put = %v, want ErrSizeMismatch", err)
	}
}

func TestGenerationsSurviveReopen(t *testing.T) {
	fs := vfs.NewMem()
	opts := testOptions(t, fs, pathWAL)
	var last uint64
	for range 3 {
		s, err := Open("/store", opts)
		if err != nil {
			t.Fatal(err)
		}
		g, err := s.allocGen()
		if err != nil {
			t.Fatal(err)
		}
		if g <= last {
			t.Fatalf("generation %d after %d", g, last)
		}
		last = g
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestKeyEncoding(t *testing.T) {
	keys := []Key{{}, {UID: 1}, {UID: 1, Chunk: 1}, {UID: 1, Chunk: 1, Shard: 1}, {UID: 2}, {UID: ^uint64(0), Chunk: ^uint32(0), Shard: ^uint16(0)}}
	for i, k := range keys {
		mk := manifestKey(k)
		if got := decodeKeyID(mk[1:]); got != k {
			t.Fatalf("decode(encode(%v)) = %v", k, got)
		}
		if i > 0 && bytes.Compare(manifestKey(keys[i-1]), mk) >= 0 {
			t.Fatalf("%v does not sort after %v", k, keys[i-1])
		}
		// Every generation's span lies inside the key's and excludes others.
		start, end := genBlockSpan(k, 7)
		if bytes.Compare(start, blockKey(k, 7, 0)) > 0 || bytes.Compare(blockKey(k, 7, ^uint32(0)), end) >= 0 {
			t.Fatalf("span of %v misses its blocks", k)
		}
		if bytes.Compare(blockKey(k, 8, 0), end) < 0 || bytes.Compare(blockKey(k, 6, ^uint32(0)), start) >= 0 {
			t.Fatalf("span of %v covers another generation", k)
		}
	}
	m := manifest{size: 5*testBlockSize + 1, blockSize: testBlockSize, blocks: 6, sum: 42, gen: 9}
	got, err := decodeManifest(m.encode())
	if err != nil || got != m {
		t.Fatalf("manifest round trip = %+v, %v", got, err)
	}
	bad := m.encode()
	bad[3] ^= 1
	if _, err := decodeManifest(bad); err == nil {
		t.Fatal("flipped manifest decoded")
	}
}

// TestOpenEarlierLayout: values an earlier build wrote into Pebble (WAL and
// ingest paths, version-1 manifests) stay readable after the store moves
// large values to blob files, and replacing or deleting them drops their
// Pebble blocks.
func TestOpenEarlierLayout(t *testing.T) {
	fs := vfs.NewMem()
	walKey, ingestKey := Key{UID: 1}, Key{UID: 2}
	walData, ingestData := value(1, 2*testBlockSize+3), value(2, 3*testBlockSize)
	for _, w := range []struct {
		path writePath
		k    Key
		data []byte
	}{{pathWAL, walKey, walData}, {pathIngest, ingestKey, ingestData}} {
		s, err := Open("/store", testOptions(t, fs, w.path))
		if err != nil {
			t.Fatal(err)
		}
		mustPut(t, s, w.k, w.data)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	opts := testOptions(t, fs, pathAuto)
	opts.ingestThreshold = testBlockSize
	s := mustOpen(t, opts)
	for k, want := range map[Key][]byte{walKey: walData, ingestKey: ingestData} {
		if got, _ := mustGet(t, s, k, 0, -1); !bytes.Equal(got, want) {
			t.Fatalf("%v changed across the upgrade", k)
		}
		if m, _, _ := s.readManifest(k); m.file {
			t.Fatalf("%v: old manifest decoded as a blob file", k)
		}
	}
	next := value(3, 2*testBlockSize)
	mustPut(t, s, ingestKey, next)
	if m, _, _ := s.readManifest(ingestKey); !m.file {
		t.Fatal("replacement not written as a blob file")
	}
	if n := blockKeyCount(t, s, ingestKey); n != 1 {
		t.Fatalf("%d block keys or files after replacement, want the one blob file", n)
	}
	if err := s.Delete(context.Background(), walKey); err != nil {
		t.Fatal(err)
	}
	assertAbsent(t, s, walKey)
	if got, _ := mustGet(t, s, ingestKey, 0, -1); !bytes.Equal(got, next) {
		t.Fatal("replacement reads wrong")
	}
}

// TestOneBlockPutCrash: a one-block value on the WAL path is written as a
// single synced batch (block and manifest, no pending marker). A crash
// before that batch commits leaves nothing of it; a crash after Put
// returned keeps it whole, also replacing an older value of the key.
func TestOneBlockPutCrash(t *testing.T) {
	for _, unsynced := range []int{0, 50, 100} {
		t.Run(fmt.Sprintf("unsynced=%d%%", unsynced), func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			s := mustOpen(t, testOptions(t, fs, pathWAL))
			before, after := Key{UID: 1}, Key{UID: 2}
			rng := func() *rand.Rand { return rand.New(rand.NewPCG(uint64(unsynced), 2)) }
			mustPut(t, s, after, value(9, testBlockSize*2)) // replaced below by a one-block value
			var crashed *vfs.MemFS
			s.testHookBeforeCommit = func(k Key) {
				if k == before {
					crashed = fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: unsynced, RNG: rng()})
				}
			}
			mustPut(t, s, before, value(1, 100))
			small := value(2, testBlockSize-1)
			mustPut(t, s, after, small)
			done := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: unsynced, RNG: rng()})

			s1 := mustOpen(t, testOptions(t, crashed, pathWAL))
			assertAbsent(t, s1, before)
			s2 := mustOpen(t, testOptions(t, done, pathWAL))
			got, _ := mustGet(t, s2, after, 0, -1)
			if !bytes.Equal(got, small) {
				t.Fatal("acknowledged one-block value lost or torn in the crash")
			}
			if m := s2.Metrics(); m.Chunks != 2 || m.BytesStored != int64(100+len(small)) {
				t.Fatalf("Metrics after crash = %+v", m)
			}
		})
	}
}

// TestDeleteFewBlocksLeavesNoRangeTombstone: a value of a few blocks is
// deleted (and replaced) with point deletions, so the memtable gains no
// range tombstone (which every later read would fragment again); a value
// of many blocks takes a range deletion. Either way no block is left.
func TestDeleteFewBlocksLeavesNoRangeTombstone(t *testing.T) {
	for _, tc := range []struct {
		blocks    int
		wantRange bool
	}{{1, false}, {pointDeleteBlocks, false}, {pointDeleteBlocks + 1, true}} {
		s := mustOpenMem(t, pathWAL)
		k := Key{UID: 7, Chunk: 1}
		size := tc.blocks * testBlockSize
		mustPut(t, s, k, value(1, size))
		mustPut(t, s, k, value(2, size)) // a replace drops the first generation's blocks
		if err := s.Delete(context.Background(), k); err != nil {
			t.Fatal(err)
		}
		start, end := kindSpan(kindBlock)
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
		if err != nil {
			t.Fatal(err)
		}
		left := 0
		for ok := it.First(); ok; ok = it.Next() {
			left++
		}
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
		if left != 0 {
			t.Fatalf("%d blocks: %d block keys left after the delete", tc.blocks, left)
		}
		// Flushed, the memtable's range tombstones show in the sstable's
		// properties.
		if err := s.db.Flush(); err != nil {
			t.Fatal(err)
		}
		tables, err := s.db.SSTables(pebble.WithProperties())
		if err != nil {
			t.Fatal(err)
		}
		var ranges uint64
		for _, level := range tables {
			for _, tab := range level {
				ranges += tab.Properties.NumRangeDeletions
			}
		}
		if (ranges > 0) != tc.wantRange {
			t.Fatalf("%d blocks: %d range deletions written, want some: %v", tc.blocks, ranges, tc.wantRange)
		}
	}
}
