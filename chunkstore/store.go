package chunkstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

var (
	// ErrNotFound is returned by Get, Stat and Verify when no value is
	// stored under the key.
	ErrNotFound = errors.New("chunkstore: not found")
	// ErrCorrupt is returned (wrapped, naming the key and block) when stored
	// data fails its checksum, a block is missing, or a manifest is
	// unreadable. Reads that hit it count in Stats.Corrupt.
	ErrCorrupt = errors.New("chunkstore: corrupt")
	// ErrTooLarge is returned (wrapped) by Put when size exceeds
	// Options.MaxChunkSize. Nothing is read from the reader.
	ErrTooLarge = errors.New("chunkstore: value too large")
	// ErrSizeMismatch is returned (wrapped) by Put when the reader yields
	// fewer or more than size bytes, or size is negative. Nothing becomes
	// visible.
	ErrSizeMismatch = errors.New("chunkstore: size mismatch")
	// ErrClosed is returned by every method called after Close, and by reads
	// from a reader whose Store was closed.
	ErrClosed = errors.New("chunkstore: closed")
	// ErrInvalidRange is returned (wrapped) by Get when off is negative or
	// beyond the end of the value.
	ErrInvalidRange = errors.New("chunkstore: invalid range")
	// ErrInvalidOptions is returned (wrapped) by Options.Validate and Open.
	ErrInvalidOptions = errors.New("chunkstore: invalid options")
	// ErrDiscarded is returned (wrapped) by PutUpload for a key whose
	// upload copy DeleteUpload already cleaned up. Nothing is stored.
	ErrDiscarded = errors.New("chunkstore: upload copy already discarded")
)

// Info describes a stored value.
type Info struct {
	// Size is the value's length in bytes.
	Size int64
	// Sum is the xxhash64 of the whole value.
	Sum uint64
}

// Stats are cheap in-memory counters. BytesStored and Chunks are recomputed
// from the manifests at Open; the others count since Open.
type Stats struct {
	// BytesStored is the total size of the visible values.
	BytesStored int64
	// Chunks is the number of visible values (chunks and shards).
	Chunks int64
	// Puts and PutBytes count successful Puts and their sizes.
	Puts, PutBytes int64
	// PutErrors counts failed Puts (including size mismatches and cancels).
	PutErrors int64
	// Gets counts Get and Verify calls that found a value.
	Gets int64
	// Deletes counts Delete calls that removed a value and values removed
	// by DeleteUID.
	Deletes int64
	// Corrupt counts checksum failures, missing blocks and bad manifests
	// seen by reads, Verify and Scan.
	Corrupt int64
}

// Store is a Pebble-backed store of chunk values on one node. All methods are
// safe for concurrent use.
type Store struct {
	opts       *Options
	fs         vfs.FS
	dbDir      string
	stagingDir string
	// blobsDir holds the blob files of large values; blobsDirFile is
	// kept open to fsync new entries.
	blobsDir     string
	blobsDirFile vfs.File
	db           *pebble.DB
	writerOpts   sstable.WriterOptions
	log          *slog.Logger

	// putSem bounds the Puts that hold block buffers.
	putSem chan struct{}
	// bufPool recycles the ingest path's block buffers (BlockSize+8
	// bytes); batches keeps the WAL path's batches, whose buffers hold a
	// block. Both are needed by at most MaxConcurrentPuts Puts at once,
	// so batches (bounded to that many) retains at most that many blocks.
	bufPool sync.Pool
	batches chan *pebble.Batch

	// commitMu orders commits against DeleteUID: a commit (Put's manifest,
	// Delete) holds it shared, DeleteUID exclusively, so DeleteUID sees a
	// stable set of manifests and knows exactly which generations to drop.
	commitMu sync.RWMutex
	// locks serializes commits and deletes of the same key, so reading the
	// old manifest and replacing it (and dropping its blocks) is atomic.
	locks keyLocks

	// discards are the keys DeleteUpload discarded (see PutUpload).
	discards discardSet
	// unsynced counts commits left unsynced (PutUploadNoSync); synced is
	// the count SyncWAL last made durable.
	unsynced, synced atomic.Int64

	genMu    sync.Mutex
	nextGen  uint64 // next generation to hand out
	genLimit uint64 // first generation not reserved in the 'g' key

	// mu guards closed and readers; ops counts in-flight calls so Close can
	// wait for them.
	mu      sync.Mutex
	closed  bool
	readers map[*reader]struct{}
	ops     sync.WaitGroup
	// closing is closed by Close so Puts waiting for putSem or between
	// blocks give up.
	closing chan struct{}

	// testHookBeforeCommit, if set, runs after a Put's blocks are written
	// and before its manifest commit. Tests set it right after Open.
	testHookBeforeCommit func(Key)

	stats struct {
		bytes, chunks, puts, putBytes, putErrors, gets, deletes, corrupt atomic.Int64
	}
}

// genReserve is how many generations one 'g' write reserves. A reservation
// is a synced write, so the gap is large; wasted generations cost nothing.
const genReserve = 1 << 32

// Open opens (creating if needed) the store in dir. opts may be nil for
// DefaultOptions. It recovers from a crash by dropping the blocks of Puts
// that never committed. It returns an error wrapping ErrInvalidOptions for
// bad options.
func Open(dir string, opts *Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	s := &Store{
		opts:       o,
		fs:         o.FS,
		dbDir:      o.FS.PathJoin(dir, "db"),
		stagingDir: o.FS.PathJoin(dir, "staging"),
		blobsDir:   o.FS.PathJoin(dir, "blobs"),
		log:        o.Logger.With("component", "chunkstore"),
		putSem:     make(chan struct{}, o.MaxConcurrentPuts),
		batches:    make(chan *pebble.Batch, o.MaxConcurrentPuts),
		readers:    make(map[*reader]struct{}),
		closing:    make(chan struct{}),
	}
	s.bufPool.New = func() any { b := make([]byte, o.BlockSize+8); return &b }
	if err := s.prepareDirs(); err != nil {
		return nil, err
	}
	bd, err := s.fs.OpenDir(s.blobsDir)
	if err != nil {
		return nil, fmt.Errorf("chunkstore: open %s: %w", s.blobsDir, err)
	}
	s.blobsDirFile = bd
	popts := s.pebbleOptions()
	db, err := pebble.Open(s.dbDir, popts)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("chunkstore: open %s: %w", dir, err), bd.Close())
	}
	s.db = db
	s.writerOpts = popts.MakeWriterOptions(len(popts.Levels)-1, db.TableFormat())
	// Ingested tables hold only block keys, read by ranged iteration: a
	// bloom filter would never be consulted.
	s.writerOpts.FilterPolicy = pebble.NoFilterPolicy
	if err := s.recover(); err != nil {
		return nil, errors.Join(err, db.Close(), bd.Close())
	}
	s.log.Info("chunkstore opened", "dir", dir, "chunks", s.stats.chunks.Load(),
		"bytes", s.stats.bytes.Load(), "write_path", o.writePath.String())
	return s, nil
}

// DB returns the store's Pebble instance for keys outside the store's own
// kinds (see keys.go: the node's Raft log). It is closed by Close.
func (s *Store) DB() *pebble.DB { return s.db }

// prepareDirs creates the directories and empties the staging directory:
// a staging file left there was never ingested, so its Put never committed.
func (s *Store) prepareDirs() error {
	for _, d := range []string{s.dbDir, s.stagingDir, s.blobsDir} {
		if err := s.fs.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("chunkstore: mkdir %s: %w", d, err)
		}
	}
	// Make the directory entries durable: Pebble syncs the files inside
	// db/ but not db/'s own entry, and a crash could otherwise lose the
	// whole store even though every Put was synced.
	dir := s.fs.PathDir(s.dbDir)
	for _, d := range []string{s.fs.PathDir(dir), dir} {
		if err := syncDir(s.fs, d); err != nil {
			return err
		}
	}
	names, err := s.fs.List(s.stagingDir)
	if err != nil {
		return fmt.Errorf("chunkstore: list staging: %w", err)
	}
	for _, n := range names {
		if err := s.fs.Remove(s.fs.PathJoin(s.stagingDir, n)); err != nil {
			return fmt.Errorf("chunkstore: clean staging: %w", err)
		}
	}
	return nil
}

func syncDir(fs vfs.FS, dir string) error {
	f, err := fs.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("chunkstore: open dir %s: %w", dir, err)
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("chunkstore: sync dir %s: %w", dir, err)
	}
	return nil
}

// pebbleOptions tunes Pebble for this workload (few large values, a small
// machine); DESIGN.md explains each choice.
func (s *Store) pebbleOptions() *pebble.Options {
	o := s.opts
	p := &pebble.Options{
		FS:                 o.FS,
		CacheSize:          o.CacheSize,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{s.log},
		// Data blocks pass through memtables only on the WAL path. 32 MiB
		// keeps flushes (and their sstables) few; at most two memtables
		// (64 MiB) may be queued before writes stall.
		MemTableSize:                32 << 20,
		MemTableStopWritesThreshold: 2,
		L0CompactionThreshold:       4,
		L0StopWritesThreshold:       16,
		// Two cores: one background compaction normally, a second only
		// when Pebble judges it is falling behind.
		CompactionConcurrencyRange: func() (int, int) { return 1, 2 },
		// Space of deleted values comes back only once their range
		// deletions are flushed; on the ingest path little else goes
		// through the memtable, so force that flush soon after a delete.
		FlushDelayDeleteRange: 10 * time.Second,
	}
	if o.MemTableSize != 0 {
		p.MemTableSize = o.MemTableSize
	}
	// Chunk data is usually already compressed (media, archives) and has
	// its own checksum; compressing it burns the CPU we do not have.
	p.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionNone })
	for i := range p.Levels {
		// Manifest lookups (Stat, Get, every commit) are point reads.
		p.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	if o.valueSeparation {
		p.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
			return pebble.ValueSeparationPolicy{
				Enabled:               true,
				MinimumSize:           minBlockSize,
				MaxBlobReferenceDepth: 10,
				TargetGarbageRatio:    0.2,
			}
		}
	}
	return p
}

// recover restores the generation counter, drops the blocks of Puts that did
// not commit before a crash, and recomputes the size counters.
func (s *Store) recover() error {
	if err := s.reserveGens(); err != nil {
		return err
	}
	// Every uncommitted Put left a 'p' marker that is durable no later than
	// its first block (same WAL batch, or a synced write before ingestion).
	lo, hi := kindSpan(kindPending)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("chunkstore: recover: %w", err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	dropped := 0
	for ok := it.First(); ok; ok = it.Next() {
		key := it.Key()
		if len(key) != pendingKeyLen {
			continue
		}
		k := decodeKeyID(key[1:])
		gen := binary.BigEndian.Uint64(key[manifestKeyLen:])
		start, end := genBlockSpan(k, gen)
		if err := errors.Join(b.DeleteRange(start, end, nil), b.Delete(key, nil)); err != nil {
			return errors.Join(fmt.Errorf("chunkstore: recover: %w", err), it.Close())
		}
		dropped++
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("chunkstore: recover: %w", err)
	}
	if dropped > 0 {
		if err := b.Commit(pebble.Sync); err != nil {
			return fmt.Errorf("chunkstore: recover: %w", err)
		}
		s.log.Info("dropped uncommitted puts", "count", dropped)
	}
	if err := s.sweepBlobs(); err != nil {
		return err
	}
	return s.countManifests()
}

// reserveGens reads the generation high-water mark and durably moves it up by
// genReserve. Generations are never reused, so a new Put can never write
// blocks into a generation a manifest (or a crashed Put) still points at.
func (s *Store) reserveGens() error {
	s.genMu.Lock()
	defer s.genMu.Unlock()
	start := s.genLimit
	if start == 0 {
		v, closer, err := s.db.Get([]byte{kindGen})
		switch {
		case errors.Is(err, pebble.ErrNotFound):
			start = 1
		case err != nil:
			return fmt.Errorf("chunkstore: read generation: %w", err)
		default:
			if len(v) == 8 {
				start = binary.BigEndian.Uint64(v)
			}
			err = closer.Close()
			if len(v) != 8 || err != nil {
				return fmt.Errorf("chunkstore: read generation: %w", errors.Join(err, ErrCorrupt))
			}
		}
	}
	limit := start + genReserve
	if err := s.db.Set([]byte{kindGen}, binary.BigEndian.AppendUint64(nil, limit), pebble.Sync); err != nil {
		return fmt.Errorf("chunkstore: reserve generations: %w", err)
	}
	s.nextGen, s.genLimit = start, limit
	return nil
}

// allocGen returns a fresh generation for a Put.
func (s *Store) allocGen() (uint64, error) {
	s.genMu.Lock()
	if s.nextGen < s.genLimit {
		g := s.nextGen
		s.nextGen++
		s.genMu.Unlock()
		return g, nil
	}
	s.genMu.Unlock()
	// Exhausted 2^32 generations in one session: reserve more. Rare enough
	// that racing reservations (each durable and increasing) do not matter.
	if err := s.reserveGens(); err != nil {
		return 0, err
	}
	return s.allocGen()
}

// countManifests recomputes BytesStored and Chunks.
func (s *Store) countManifests() error {
	var chunks, size int64
	lo, hi := kindSpan(kindManifest)
	err := s.scanManifests(context.Background(), lo, hi, func(_ Key, m manifest, err error) error {
		if err == nil {
			chunks++
			size += m.size
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("chunkstore: count: %w", err)
	}
	s.stats.chunks.Store(chunks)
	s.stats.bytes.Store(size)
	return nil
}

// begin registers an in-flight call; the caller must call the returned
// function when done. It returns ErrClosed after Close.
func (s *Store) begin() (func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	s.ops.Add(1)
	return s.ops.Done, nil
}

// Close waits for in-flight calls (Puts give up at their next block with
// ErrClosed), closes readers still open (their next Read returns ErrClosed)
// and closes Pebble. Calling it again returns nil.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()
	// Wait first: a Put between blocks or a reader in Read may be using
	// Pebble, and Pebble must not be closed under them.
	s.ops.Wait()
	s.mu.Lock()
	readers := make([]*reader, 0, len(s.readers))
	for r := range s.readers {
		readers = append(readers, r)
	}
	s.mu.Unlock()
	var errs []error
	for _, r := range readers {
		errs = append(errs, r.close(ErrClosed))
	}
	for len(s.batches) > 0 {
		errs = append(errs, (<-s.batches).Close())
	}
	errs = append(errs, s.db.Close(), s.blobsDirFile.Close())
	s.log.Info("chunkstore closed")
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("chunkstore: close: %w", err)
	}
	return nil
}

// Metrics returns the current counters.
func (s *Store) Metrics() Stats {
	return Stats{
		BytesStored: s.stats.bytes.Load(),
		Chunks:      s.stats.chunks.Load(),
		Puts:        s.stats.puts.Load(),
		PutBytes:    s.stats.putBytes.Load(),
		PutErrors:   s.stats.putErrors.Load(),
		Gets:        s.stats.gets.Load(),
		Deletes:     s.stats.deletes.Load(),
		Corrupt:     s.stats.corrupt.Load(),
	}
}

// corrupt counts and returns a corruption error naming the key.
func (s *Store) corrupt(k Key, format string, args ...any) error {
	s.stats.corrupt.Add(1)
	return fmt.Errorf("chunkstore: %v: %s: %w", k, fmt.Sprintf(format, args...), ErrCorrupt)
}

// readManifest returns k's manifest. found is false if there is none; a
// manifest that does not decode is an ErrCorrupt error.
func (s *Store) readManifest(k Key) (m manifest, found bool, err error) {
	v, closer, err := s.db.Get(manifestKey(k))
	if errors.Is(err, pebble.ErrNotFound) {
		return manifest{}, false, nil
	}
	if err != nil {
		return manifest{}, false, fmt.Errorf("chunkstore: %v: read manifest: %w", k, err)
	}
	m, derr := decodeManifest(v)
	if err := closer.Close(); err != nil {
		return manifest{}, false, fmt.Errorf("chunkstore: %v: read manifest: %w", k, err)
	}
	if derr != nil {
		return manifest{}, true, s.corrupt(k, "%v", derr)
	}
	return m, true, nil
}

// Stat returns the Info of the value stored under k, ErrNotFound if there is
// none, or ErrCorrupt if its manifest is unreadable. It reads no data blocks.
func (s *Store) Stat(ctx context.Context, k Key) (Info, error) {
	done, err := s.begin()
	if err != nil {
		return Info{}, err
	}
	defer done()
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}
	m, found, err := s.readManifest(k)
	if err != nil {
		return Info{}, err
	}
	if !found {
		return Info{}, fmt.Errorf("chunkstore: stat %v: %w", k, ErrNotFound)
	}
	return m.info(), nil
}

// Gen returns the generation of the value stored under k: every Put and
// PutUpload writes a new one, larger than any this store gave before, so
// a generation names one write of a key (DeleteGen removes that write and
// no later one). ErrNotFound if there is none, ErrCorrupt if its manifest
// is unreadable.
func (s *Store) Gen(ctx context.Context, k Key) (uint64, error) {
	done, err := s.begin()
	if err != nil {
		return 0, err
	}
	defer done()
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m, found, err := s.readManifest(k)
	if err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("chunkstore: gen %v: %w", k, ErrNotFound)
	}
	return m.gen, nil
}

// Delete removes the value stored under k, durably. A missing key is not an
// error. A Put of k still in progress is not affected and commits after.
func (s *Store) Delete(ctx context.Context, k Key) error {
	_, err := s.delete(ctx, k, false, 0)
	return err
}

// DeleteGen removes the value stored under k only if it is generation gen
// (as Gen returned it), durably; removed says whether it did. A value
// written since (a later Put of the same key, with a newer generation) is
// kept. This is how a copy is released after a Stat: a delete that arrives
// late, after the key was written again, removes nothing. A missing key is
// not an error.
func (s *Store) DeleteGen(ctx context.Context, k Key, gen uint64) (removed bool, err error) {
	if gen == 0 {
		return false, fmt.Errorf("chunkstore: DeleteGen of %v needs a generation", k)
	}
	return s.delete(ctx, k, false, gen)
}

// DeleteUpload is an upload's cleanup of the copy it gave up on: it removes
// the value under k only if PutUpload wrote it, and keeps a value that
// Put wrote (a copy made by repair or rebalance after the upload, which
// the cluster may have recorded since); removed says whether a value went.
// It also discards k for PutUpload until the store closes (see
// PutUpload), so a copy of the upload still on its way cannot land after
// its cleanup. A missing key is not an error.
func (s *Store) DeleteUpload(ctx context.Context, k Key) (removed bool, err error) {
	return s.delete(ctx, k, true, 0)
}

// pointDeleteBlocks is the most blocks deleteBlocks deletes one by one.
const pointDeleteBlocks = 16

// deleteBlocks adds to b the deletion of the blocks of generation gen of
// k, of which there are blocks: point deletions for a few, a range
// deletion for more. A range tombstone in the memtable makes every later
// read of the memtable fragment all of its tombstones again until it is
// flushed, so a run of small deletes each reading a manifest (gc of many
// small files) cost 1.7 ms a delete after a few thousand and gigabytes of
// garbage; point deletions cost a read nothing. Ingested values (the
// ingest write path, a benchmark variant) keep the range deletion, which
// lets Pebble drop their whole sstable (see DESIGN.md).
func (s *Store) deleteBlocks(b *pebble.Batch, k Key, gen uint64, blocks uint32) error {
	if blocks > pointDeleteBlocks || s.opts.writePath == pathIngest {
		start, end := genBlockSpan(k, gen)
		return b.DeleteRange(start, end, nil)
	}
	key := make([]byte, 0, blockKeyLen)
	for idx := uint32(0); idx < blocks; idx++ {
		key = appendBlockKey(key[:0], k, gen, idx)
		if err := b.Delete(key, nil); err != nil {
			return err
		}
	}
	return nil
}

// delete removes k's value: only the upload's copy if upload is set, only
// generation gen if gen is not 0.
func (s *Store) delete(ctx context.Context, k Key, upload bool, gen uint64) (removed bool, _ error) {
	done, err := s.begin()
	if err != nil {
		return false, err
	}
	defer done()
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.commitMu.RLock()
	defer s.commitMu.RUnlock()
	unlock := s.locks.lock(k)
	defer unlock()
	if upload {
		s.discards.add(k)
	}
	m, found, err := s.readManifest(k)
	if !found {
		return false, err // nil: a missing key is not an error
	}
	if upload && (err != nil || !m.upload) {
		// Not the upload's copy (or unreadable, so not known to be).
		s.log.Info("upload cleanup kept a later copy", "key", k.String(), "corrupt", err != nil)
		return false, nil
	}
	if gen != 0 && (err != nil || m.gen != gen) {
		// Written again since the caller's Stat (or unreadable, so not
		// known to be the same write).
		s.log.Info("release kept a later copy", "key", k.String(), "gen", gen, "corrupt", err != nil)
		return false, nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Delete(manifestKey(k), nil); err != nil {
		return false, fmt.Errorf("chunkstore: delete %v: %w", k, err)
	}
	if err == nil && m.blocks > 0 && !m.file {
		if err := s.deleteBlocks(b, k, m.gen, m.blocks); err != nil {
			return false, fmt.Errorf("chunkstore: delete %v: %w", k, err)
		}
	}
	// A corrupt manifest (err != nil) is deleted too, but its generation is
	// unknown, so its blocks stay as unreachable garbage; say so.
	if err != nil {
		s.log.Warn("deleting corrupt manifest, its blocks leak", "key", k.String(), "err", err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return false, fmt.Errorf("chunkstore: delete %v: %w", k, err)
	}
	if err == nil && m.file {
		s.removeBlob(k, m.gen)
	}
	if err == nil {
		s.stats.chunks.Add(-1)
		s.stats.bytes.Add(-m.size)
	}
	s.stats.deletes.Add(1)
	return true, nil
}

// DeleteUID removes, durably, every chunk and shard of uid, by range
// deletion. Puts of uid still in progress are not affected and commit after.
func (s *Store) DeleteUID(ctx context.Context, uid uint64) error {
	done, err := s.begin()
	if err != nil {
		return err
	}
	defer done()
	if err := ctx.Err(); err != nil {
		return err
	}
	// Exclusive: no manifest of uid can change between listing the
	// manifests (to learn their generations) and deleting them.
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	var n, size int64
	type blob struct {
		k   Key
		gen uint64
	}
	var blobs []blob
	lo, hi := uidSpan(kindManifest, uid)
	err = s.scanManifests(ctx, lo, hi, func(k Key, m manifest, merr error) error {
		if merr != nil {
			s.log.Warn("deleting corrupt manifest, its blocks leak", "key", k.String(), "err", merr)
			return nil
		}
		n++
		size += m.size
		if m.blocks == 0 {
			return nil
		}
		if m.file {
			blobs = append(blobs, blob{k, m.gen})
			return nil
		}
		return s.deleteBlocks(b, k, m.gen, m.blocks)
	})
	if err != nil {
		return fmt.Errorf("chunkstore: delete uid %d: %w", uid, err)
	}
	if err := b.DeleteRange(lo, hi, nil); err != nil {
		return fmt.Errorf("chunkstore: delete uid %d: %w", uid, err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("chunkstore: delete uid %d: %w", uid, err)
	}
	for _, bl := range blobs {
		s.removeBlob(bl.k, bl.gen)
	}
	s.stats.chunks.Add(-n)
	s.stats.bytes.Add(-size)
	s.stats.deletes.Add(n)
	return nil
}

// scanPage is how many manifests scanManifests reads per iterator, so the
// callback never runs while an iterator pins memtables and sstables.
const scanPage = 256

// scanManifests calls fn for each manifest in [lo, hi), in key order. A
// manifest that does not decode is passed with its error.
func (s *Store) scanManifests(ctx context.Context, lo, hi []byte, fn func(Key, manifest, error) error) error {
	type entry struct {
		k   Key
		m   manifest
		err error
	}
	page := make([]entry, 0, scanPage)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return err
		}
		page = page[:0]
		var last []byte
		for ok := it.First(); ok && len(page) < scanPage; ok = it.Next() {
			key := it.Key()
			if len(key) != manifestKeyLen {
				continue
			}
			v, err := it.ValueAndErr()
			if err != nil {
				return errors.Join(err, it.Close())
			}
			m, merr := decodeManifest(v)
			page = append(page, entry{k: decodeKeyID(key[1:]), m: m, err: merr})
			last = append(last[:0], key...)
		}
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return err
		}
		for _, e := range page {
			if err := fn(e.k, e.m, e.err); err != nil {
				return err
			}
		}
		if len(page) < scanPage {
			return nil
		}
		// Resume just after the last key: append a zero byte, the
		// smallest key greater than it. last is fresh for each page, so
		// a bound is never modified under a live iterator.
		lo = append(last, 0)
	}
}

// Scan calls fn with the key and Info of every stored value, in key order
// (uid, chunk, shard). It reads manifests only, in pages, so fn may call any
// Store method (Verify, Delete…); values put during the scan may or may not
// be seen. fn returning an error stops the scan and Scan returns it. Values
// whose manifest is unreadable are skipped and reported at the end as one
// error joining an ErrCorrupt per key.
func (s *Store) Scan(ctx context.Context, fn func(Key, Info) error) error {
	done, err := s.begin()
	if err != nil {
		return err
	}
	defer done()
	var corrupt []error
	lo, hi := kindSpan(kindManifest)
	err = s.scanManifests(ctx, lo, hi, func(k Key, m manifest, merr error) error {
		if merr != nil {
			corrupt = append(corrupt, s.corrupt(k, "%v", merr))
			return nil
		}
		select {
		case <-s.closing:
			return ErrClosed
		default:
		}
		return fn(k, m.info())
	})
	if err != nil {
		return err
	}
	return errors.Join(corrupt...)
}

// checksum is the block and manifest checksum.
func checksum(b []byte) uint64 { return xxhash.Sum64(b) }

// keyLocks is a set of per-key mutexes, created on demand and dropped when
// unused, so unrelated keys never contend.
type keyLocks struct {
	mu sync.Mutex
	m  map[Key]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int // guarded by keyLocks.mu
}

// lock locks k and returns its unlock function.
func (l *keyLocks) lock(k Key) func() {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[Key]*keyLock)
	}
	kl := l.m[k]
	if kl == nil {
		kl = &keyLock{}
		l.m[k] = kl
	}
	kl.refs++
	l.mu.Unlock()
	kl.mu.Lock()
	return func() {
		kl.mu.Unlock()
		l.mu.Lock()
		kl.refs--
		if kl.refs == 0 {
			delete(l.m, k)
		}
		l.mu.Unlock()
	}
}

// pebbleLogger routes Pebble's log output to slog. Pebble's Infof is chatty
// (every flush and compaction) so it goes to Debug.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug("pebble", "msg", fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error("pebble", "msg", fmt.Sprintf(format, args...))
}

// Fatalf is called by Pebble on unrecoverable errors (notably a failed WAL
// write) and must not return: Pebble's state is undefined after it. The
// process crashes; the node restarts and recovers from the WAL, and the Put
// that hit the error was never acknowledged.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error("pebble fatal", "msg", msg)
	panic("chunkstore: pebble fatal: " + msg)
}

// sameKey reports whether the iterator key equals want.
func sameKey(got, want []byte) bool { return bytes.Equal(got, want) }

// maxDiscards bounds the keys a discardSet remembers. A late copy of an
// upload arrives within seconds of its cleanup (it was on the network
// when the upload gave it up), and cleanups are rare (a copy fails or
// lags), so the oldest can be forgotten; one that is forgotten and then
// overtaken costs an unreferenced copy, never a lost one.
const maxDiscards = 1 << 14

// discardSet is a bounded set of keys, forgetting the oldest first.
type discardSet struct {
	mu   sync.Mutex
	m    map[Key]struct{}
	ring []Key // insertion order, used as a circular buffer
	next int
}

func (d *discardSet) add(k Key) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.m[k]; ok {
		return
	}
	if d.m == nil {
		d.m = make(map[Key]struct{})
	}
	if len(d.ring) < maxDiscards {
		d.ring = append(d.ring, k)
	} else {
		delete(d.m, d.ring[d.next])
		d.ring[d.next] = k
		d.next = (d.next + 1) % maxDiscards
	}
	d.m[k] = struct{}{}
}

func (d *discardSet) has(k Key) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.m[k]
	return ok
}
