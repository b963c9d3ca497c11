package chunkstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Put stores exactly size bytes read from r under k, replacing any existing
// value atomically: concurrent readers see the old value or the new one,
// never a mix. The value is durable (fsynced) when Put returns nil.
//
// r is read in blocks of Options.BlockSize, so memory does not grow with
// size; at most Options.MaxConcurrentPuts Puts read at once and the rest
// wait. If r yields fewer or more than size bytes Put fails with
// ErrSizeMismatch; size above Options.MaxChunkSize fails with ErrTooLarge
// before anything is read. On any error nothing becomes visible and the
// previous value, if any, is intact. ctx is checked between blocks (a Read
// blocked inside r is not interrupted; close r to unblock it).
func (s *Store) Put(ctx context.Context, k Key, r io.Reader, size int64) (Info, error) {
	return s.putValue(ctx, k, r, size, false, false)
}

// PutUpload is Put for an upload's own copy of a value under a key the
// upload just created (a fresh blob uid). The value is marked as the
// upload's, so the upload's cleanup (DeleteUpload) removes it and nothing
// else, and it never replaces a value already stored: such a value is a
// copy that repair or rebalance wrote after the upload gave this one up
// (the same bytes, now recorded), so it is kept, its Info is returned and
// the blocks written from r are dropped. A PutUpload of a key that
// DeleteUpload has discarded since Open fails with ErrDiscarded: the
// cleanup may overtake a late copy on the network, and must not be
// outlived by it. Both cases are decided once, under the key's lock at
// commit: they are rare, and every upload copy would pay for a check
// before the write.
func (s *Store) PutUpload(ctx context.Context, k Key, r io.Reader, size int64) (Info, error) {
	return s.putValue(ctx, k, r, size, true, false)
}

// PutUploadNoSync is PutUpload that, for a value of one block (every
// small chunk), commits without syncing: the value is visible at once and
// durable once a later synced commit to the same Pebble instance returns
// (Pebble's WAL is one sequential log, so syncing it syncs every earlier
// record), or SyncWAL does. Larger values are synced as by PutUpload.
//
// It is for a node whose Raft log lives in this store's Pebble instance
// (DB): the entry that records the copy is appended to that log, with a
// sync, after the copy was committed and before the entry can commit on
// the leader, so the copy is durable before anything names it; a node
// that is not the leader must call SyncWAL before it forwards that entry.
func (s *Store) PutUploadNoSync(ctx context.Context, k Key, r io.Reader, size int64) (Info, error) {
	return s.putValue(ctx, k, r, size, true, true)
}

// SyncWAL makes every commit that returned before it durable, with one
// synced write of an empty record to Pebble's WAL; it returns at once when
// no commit was left unsynced (PutUploadNoSync) since the last SyncWAL.
func (s *Store) SyncWAL() error {
	done, err := s.begin()
	if err != nil {
		return err
	}
	defer done()
	target := s.unsynced.Load()
	if s.synced.Load() >= target {
		return nil
	}
	if err := s.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("chunkstore: sync wal: %w", err)
	}
	for {
		cur := s.synced.Load()
		if cur >= target || s.synced.CompareAndSwap(cur, target) {
			return nil
		}
	}
}

func (s *Store) putValue(ctx context.Context, k Key, r io.Reader, size int64, upload, noSync bool) (Info, error) {
	done, err := s.begin()
	if err != nil {
		return Info{}, err
	}
	defer done()
	var info Info
	switch {
	case size < 0:
		err = fmt.Errorf("chunkstore: put %v: negative size %d: %w", k, size, ErrSizeMismatch)
	case size > s.opts.MaxChunkSize:
		err = fmt.Errorf("chunkstore: put %v: %d bytes, limit %d: %w", k, size, s.opts.MaxChunkSize, ErrTooLarge)
	default:
		info, err = s.put(ctx, k, r, size, upload, noSync)
	}
	if err != nil {
		s.stats.putErrors.Add(1)
		return Info{}, err
	}
	s.stats.puts.Add(1)
	s.stats.putBytes.Add(size)
	return info, nil
}

func (s *Store) put(ctx context.Context, k Key, r io.Reader, size int64, upload, noSync bool) (Info, error) {
	if err := s.wait(ctx); err != nil {
		return Info{}, fmt.Errorf("chunkstore: put %v: %w", k, err)
	}
	select {
	case s.putSem <- struct{}{}:
	case <-ctx.Done():
		return Info{}, fmt.Errorf("chunkstore: put %v: %w", k, ctx.Err())
	case <-s.closing:
		return Info{}, fmt.Errorf("chunkstore: put %v: %w", k, ErrClosed)
	}
	defer func() { <-s.putSem }()

	gen, err := s.allocGen()
	if err != nil {
		return Info{}, fmt.Errorf("chunkstore: put %v: %w", k, err)
	}
	m := manifest{
		size:      size,
		blockSize: uint32(s.opts.BlockSize),
		blocks:    uint32(blockCount(size, int64(s.opts.BlockSize))),
		gen:       gen,
		upload:    upload,
	}
	bw := &blockWriter{s: s, ctx: ctx, k: k, r: r, m: &m, digest: xxhash.New()}
	if m.blocks == 1 && s.pathFor(size) == pathWAL {
		// A one-block value: block and manifest in one synced batch.
		kept, err := s.putOneBlock(bw, noSync)
		if err != nil {
			return Info{}, fmt.Errorf("chunkstore: put %v: %w", k, err)
		}
		if kept != nil {
			return kept.info(), nil // the batch was dropped uncommitted
		}
		return m.info(), nil
	}
	if m.blocks > 0 {
		switch s.pathFor(size) {
		case pathFile:
			m.file = true
			err = s.writeFile(bw)
		case pathIngest:
			err = s.writeIngest(bw)
		default:
			err = s.writeWAL(bw)
		}
	}
	if err == nil {
		err = bw.checkEOF()
	}
	if err == nil {
		m.sum = bw.digest.Sum64()
		if s.testHookBeforeCommit != nil {
			s.testHookBeforeCommit(k)
		}
		var kept *manifest
		if kept, err = s.commit(k, m); err == nil && kept != nil {
			s.drop(k, m)
			return kept.info(), nil
		}
	}
	if err != nil {
		s.drop(k, m)
		return Info{}, fmt.Errorf("chunkstore: put %v: %w", k, err)
	}
	return m.info(), nil
}

// drop removes the blocks of a Put that did not commit.
func (s *Store) drop(k Key, m manifest) {
	if m.file {
		s.removeBlob(k, m.gen) // no marker, nothing in Pebble
	} else if m.blocks > 0 {
		s.abort(k, m.gen)
	}
}

// wait returns the error to fail with if ctx is done or the store closing.
func (s *Store) wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-s.closing:
		return ErrClosed
	default:
		return nil
	}
}

// pathFor is the write path of a value of size bytes.
func (s *Store) pathFor(size int64) writePath {
	switch s.opts.writePath {
	case pathAuto:
		if size >= s.opts.ingestThreshold {
			return pathFile
		}
		return pathWAL
	default:
		return s.opts.writePath
	}
}

// blockWriter reads a value from the caller's reader block by block,
// checksumming each block and the whole value.
type blockWriter struct {
	s      *Store
	ctx    context.Context
	k      Key
	r      io.Reader
	m      *manifest
	digest *xxhash.Digest
	key    []byte // block key buffer
}

// each calls fn for every block with its key and a buffer of the block's
// data followed by 8 bytes holding its xxhash64, which fn may store
// directly. fill reads the block's data into a buffer of exactly the block
// length; it is how each lets fn choose where the bytes land.
func (bw *blockWriter) each(fn func(idx uint32, key []byte, n int, fill func(dst []byte) error) error) error {
	for idx := uint32(0); idx < bw.m.blocks; idx++ {
		if err := bw.s.wait(bw.ctx); err != nil {
			return err
		}
		bw.key = appendBlockKey(bw.key[:0], bw.k, bw.m.gen, idx)
		n := int(bw.m.blockLen(idx))
		fill := func(dst []byte) error {
			if err := bw.read(dst[:n], int64(idx)*int64(bw.m.blockSize)); err != nil {
				return err
			}
			binary.BigEndian.PutUint64(dst[n:n+8], checksum(dst[:n]))
			_, _ = bw.digest.Write(dst[:n]) // never fails
			return nil
		}
		if err := fn(idx, bw.key, n, fill); err != nil {
			return err
		}
	}
	return nil
}

// read fills dst from the reader; done is how many bytes came before.
func (bw *blockWriter) read(dst []byte, done int64) error {
	n, err := io.ReadFull(bw.r, dst)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("reader ended after %d of %d bytes: %w", done+int64(n), bw.m.size, ErrSizeMismatch)
	default:
		return fmt.Errorf("read: %w", err)
	}
}

// checkEOF fails with ErrSizeMismatch if the reader has more than size
// bytes. It reads at most one byte.
func (bw *blockWriter) checkEOF() error {
	var one [1]byte
	_, err := io.ReadFull(bw.r, one[:])
	switch {
	case errors.Is(err, io.EOF):
		return nil
	case err == nil:
		return fmt.Errorf("reader has more than %d bytes: %w", bw.m.size, ErrSizeMismatch)
	default:
		return fmt.Errorf("read: %w", err)
	}
}

// writeWAL writes each block in its own NoSync batch: the block is read
// straight into the batch's buffer, so a Put holds one block in memory, and
// the WAL sees a stream of appends that the synced manifest commit makes
// durable (the WAL is sequential: syncing it syncs every earlier record).
// The pending marker rides in the first batch, so it is durable no later
// than any block.
func (s *Store) writeWAL(bw *blockWriter) error {
	b := s.getBatch()
	defer s.putBatch(b)
	return bw.each(func(idx uint32, key []byte, n int, fill func([]byte) error) error {
		if idx == 0 {
			if err := b.Set(pendingKey(bw.k, bw.m.gen), nil, nil); err != nil {
				return err
			}
		}
		op := b.SetDeferred(len(key), n+8)
		copy(op.Key, key)
		if err := fill(op.Value); err != nil {
			return err
		}
		if err := op.Finish(); err != nil {
			return err
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			return err
		}
		b.Reset()
		return nil
	})
}

// putOneBlock stores a value of one block (every small chunk) with a
// single synced batch holding the block and the manifest: the batch is
// atomic, so no pending marker is needed, and the Put costs one WAL append
// and one sync (shared by concurrent Puts through Pebble's commit
// pipeline) instead of two commits.
func (s *Store) putOneBlock(bw *blockWriter, noSync bool) (kept *manifest, err error) {
	b := s.getBatch()
	defer s.putBatch(b)
	err = bw.each(func(_ uint32, key []byte, n int, fill func([]byte) error) error {
		op := b.SetDeferred(len(key), n+8)
		copy(op.Key, key)
		if err := fill(op.Value); err != nil {
			return err
		}
		return op.Finish()
	})
	if err == nil {
		err = bw.checkEOF()
	}
	if err != nil {
		return nil, err
	}
	bw.m.sum = bw.digest.Sum64()
	if s.testHookBeforeCommit != nil {
		s.testHookBeforeCommit(bw.k)
	}
	return s.commitInto(b, bw.k, *bw.m, false, noSync)
}

// getBatch returns a batch whose buffer fits one block: pooled, or new.
func (s *Store) getBatch() *pebble.Batch {
	select {
	case b := <-s.batches:
		return b
	default:
		// Room for the block, its key and checksum, the pending marker
		// and batch/record headers, retained across Reset (Pebble drops
		// buffers above 1 MiB by default, which would mean a fresh
		// allocation per block).
		size := s.opts.BlockSize + 256
		return s.db.NewBatch(pebble.WithInitialSizeBytes(size), pebble.WithMaxRetainedSizeBytes(size))
	}
}

// putBatch resets b and returns it to the pool, or closes it if the pool is
// full.
func (s *Store) putBatch(b *pebble.Batch) {
	b.Reset()
	select {
	case s.batches <- b:
	default:
		_ = b.Close() // only fails for batches still being committed
	}
}

// writeIngest writes the blocks into one sstable in the staging directory,
// syncs it, durably records the pending marker, and ingests the table: the
// data is written once, never passes through the WAL or a memtable, and
// lands in the lowest level it does not overlap (usually the bottom), so
// compactions never rewrite it.
func (s *Store) writeIngest(bw *blockWriter) (err error) {
	path := s.fs.PathJoin(s.stagingDir, fmt.Sprintf("%016x.sst", bw.m.gen))
	f, err := s.fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("create staging table: %w", err)
	}
	ingested := false
	defer func() {
		if !ingested {
			// Ingest removes its input on success; on failure it is ours.
			_ = s.fs.Remove(path)
		}
	}()
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), s.writerOpts)
	bufp := s.bufPool.Get().(*[]byte)
	defer s.bufPool.Put(bufp)
	err = bw.each(func(_ uint32, key []byte, n int, fill func([]byte) error) error {
		buf := (*bufp)[:n+8]
		if err := fill(buf); err != nil {
			return err
		}
		return w.Set(key, buf)
	})
	// Close finishes the table and syncs and closes the file (also on the
	// error path, where the file is then removed).
	if cerr := w.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("write staging table: %w", cerr)
	}
	if err != nil {
		return err
	}
	// The marker must be durable before the blocks can be: after a crash
	// between Ingest and the manifest commit, recovery finds it and drops
	// the ingested blocks.
	if err := s.db.Set(pendingKey(bw.k, bw.m.gen), nil, pebble.Sync); err != nil {
		return fmt.Errorf("pending marker: %w", err)
	}
	if err := s.db.Ingest(bw.ctx, []string{path}); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	ingested = true
	return nil
}

// commit makes m the visible value of k with one synced batch: the new
// manifest, removal of the pending marker, and a range deletion of the
// previous value's blocks. It is the only point where a Put becomes
// visible, and Sync makes the blocks durable too (see writeWAL and
// writeIngest). For an upload's Put (m.upload) it commits nothing and
// returns kept, the manifest already stored, if there is one.
func (s *Store) commit(k Key, m manifest) (kept *manifest, err error) {
	b := s.db.NewBatch()
	defer b.Close()
	return s.commitInto(b, k, m, m.blocks > 0 && !m.file, false)
}

// commitInto is commit adding to b, which may already hold the value's
// blocks (putOneBlock); marker says whether a pending marker was written
// for them and is to be removed; noSync leaves the commit unsynced (see
// PutUploadNoSync).
func (s *Store) commitInto(b *pebble.Batch, k Key, m manifest, marker, noSync bool) (kept *manifest, _ error) {
	s.commitMu.RLock()
	defer s.commitMu.RUnlock()
	unlock := s.locks.lock(k)
	defer unlock()
	old, found, err := s.readManifest(k)
	if err != nil && !errors.Is(err, ErrCorrupt) {
		return nil, err
	}
	if m.upload {
		// Under the key's lock, so DeleteUpload either ran before (and
		// discarded k) or runs after (and finds this value).
		if s.discards.has(k) {
			return nil, ErrDiscarded
		}
		if found && err == nil {
			return &old, nil
		}
	}
	if err := b.Set(manifestKey(k), m.encode(), nil); err != nil {
		return nil, err
	}
	if marker {
		if err := b.Delete(pendingKey(k, m.gen), nil); err != nil {
			return nil, err
		}
	}
	replaced := found && err == nil
	if replaced && old.blocks > 0 && !old.file {
		if err := s.deleteBlocks(b, k, old.gen, old.blocks); err != nil {
			return nil, err
		}
	}
	if found && err != nil {
		s.log.Warn("replacing corrupt manifest, its blocks leak", "key", k.String(), "err", err)
	}
	opts := pebble.Sync
	if noSync {
		opts = pebble.NoSync
	}
	if err := b.Commit(opts); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	if noSync {
		s.unsynced.Add(1)
	}
	if replaced && old.file && old.blocks > 0 {
		s.removeBlob(k, old.gen)
	}
	if replaced {
		s.stats.bytes.Add(m.size - old.size)
	} else {
		s.stats.chunks.Add(1)
		s.stats.bytes.Add(m.size)
	}
	return nil, nil
}

// abort drops the blocks and pending marker of a failed Put. It is best
// effort and need not be durable: if it is lost, recovery at the next Open
// finds the marker and does the same.
func (s *Store) abort(k Key, gen uint64) {
	b := s.db.NewBatch()
	defer b.Close()
	start, end := genBlockSpan(k, gen)
	err := errors.Join(
		b.DeleteRange(start, end, nil),
		b.Delete(pendingKey(k, gen), nil),
	)
	if err == nil {
		err = b.Commit(pebble.NoSync)
	}
	if err != nil {
		s.log.Warn("abort put", "key", k.String(), "gen", gen, "err", err)
	}
}
