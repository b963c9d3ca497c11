// Package repair restores redundancy: the repair task Handler rebuilds a
// copy a removed or down member held (a replicated chunk from a surviving
// copy, an erasure-coded shard by decoding and re-encoding the chunk, a
// local-backend object from another holder) on the next ring candidate,
// verifies it against the record and only then completes with the
// ChunkMoved/ChunkConverted/ObjectMoved command. It is a tasks.Batcher:
// a member leases, runs (Parallel at a time) and records repairs in
// batches, preferring those whose surviving copy it holds. The Scrubber walks
// the staged copies the records name this node the holder of (the owner
// index, a page at a time) at a bounded rate, verifies their checksums
// against the records, rewrites bad or missing copies from healthy ones,
// and deletes orphans: copies no record has named this node the holder of
// for OrphanGrace, checked again after a read barrier. With the local-disk
// backend (ScrubConfig.Objects) it does the same for the node's object
// copies: each is read and checked against its content's md5, a bad or
// missing one is rewritten from another holder, and object files whose
// content is gone or tiered to other members are collected by version.
//
// The Rebalancer (rebalance.go) moves copies to the members the ring
// names after a membership change: the leader plans moves from the owner
// index, any node copies and verifies them, one RebalanceDone entry
// records a task's moves, and a release task deletes the old copies after
// the gc grace period.
//
// All three are data movement driven by the FSM's records. They reach the
// data path, placement and state only through small interfaces
// (config.go, rebalance.go), so their tests run on in-memory fakes.
package repair
