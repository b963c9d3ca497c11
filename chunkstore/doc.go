// Package chunkstore stages chunk data (whole chunk replicas, and later
// Reed–Solomon shards) on one node, in Pebble, with end-to-end checksums.
//
// It knows nothing about Raft or the ring: the caller decides which node
// stores what and records the resulting Info (size, xxhash64) through Raft.
// Chunk bytes never go through Raft.
//
// # Model
//
// A value is identified by a Key (uid, chunk, shard) and is at most
// Options.MaxChunkSize bytes. Put streams exactly size bytes from an
// io.Reader and returns only once the value is durable; it replaces an
// existing value atomically. Get returns a streaming, ranged reader that
// verifies every block it touches. Delete and DeleteUID remove values
// durably; Scan and Verify serve the scrubber and repair.
//
// # Layout and commit protocol
//
// A value is split into blocks of Options.BlockSize, each stored under its
// own key with an xxhash64 of its bytes, and described by a manifest (size,
// block size, block count, whole-value xxhash64, generation). Every Put gets
// a fresh generation that is part of its block keys, so blocks of two
// versions of a value never mix. Blocks are written first (without sync);
// the manifest is written last with a synced batch, and a value is visible
// only through its manifest, so the synced manifest is the commit point. The
// same batch drops the blocks of the value it replaces. A pending marker,
// durable no later than the first block, lets Open drop the blocks of Puts
// that crashed before committing.
//
// Blocks reach disk by one of two paths, chosen by value size from the
// measurements in DESIGN.md: small values through NoSync batches in the WAL
// (the synced manifest then syncs them, because the WAL is sequential), and
// values of 1 MiB and more as a blob file outside Pebble (one write per
// block, fdatasync, directory fsync), named by the manifest committed after
// it: the bytes are written once and only the index goes through Pebble.
//
// # Memory
//
// Memory is bounded by Options, never by value size: a Put holds about two
// blocks (one being read, one in Pebble's batch or sstable writer) and at
// most Options.MaxConcurrentPuts Puts run at once; a reader pins one block
// in the block cache (Options.CacheSize).
//
// # Errors
//
// Errors wrap the package's sentinels (ErrNotFound, ErrCorrupt, ErrTooLarge,
// ErrSizeMismatch, ErrClosed, ErrInvalidRange, ErrInvalidOptions) with the
// key and operation. Pebble treats a failed WAL write as fatal; the store
// passes that on as a panic (see pebbleLogger), which is the fail-stop a
// replicated staging tier wants: the Put was not acknowledged and the node
// recovers from its WAL on restart.
package chunkstore
