// Package erasure splits a chunk into K data shards and M parity shards
// with Reed–Solomon coding, and reads any byte range of it back from any K
// healthy shards, streaming, with memory bounded by the policy rather than
// the chunk. The node stages shard i of a chunk on its own cluster member,
// so the chunk survives the loss of any M of those members.
//
// It is a pure library: no network, no disk, no Raft. Encode and
// Reconstruct work on shards in memory (the upload and repair paths already
// hold the chunk); NewReader pulls shard bytes through a ShardSource the
// caller provides (a local chunkstore read or a request to the node holding
// the shard). The caller records the chunk size and the ShardInfos Encode
// returns with the chunk (they are what NewReader and VerifyShard check
// against) and stores shard i under chunkstore.Key{Shard: i+1}, Shard 0
// being reserved for plain replicas.
//
// # Policies
//
// A Policy is written "ec:K+M" (ParsePolicy, Policy.String). ParsePolicy
// returns ErrNotEC for "replicas:N" so that configuration parsing can fall
// back to replication. Policy.Validate(members) requires K ≥ 1, M ≥ 1,
// K+M ≤ 256 and K+M ≤ members: each shard of a chunk needs its own node.
//
// # Format
//
// Shards are stored on disk and their checksums in the replicated chunk
// records, so what follows is a stored format. NB: it must not change. A
// different layout, block size, field or matrix needs a new, distinct
// policy name (or a format version recorded with each chunk) and readers
// for both. TestFormatReference re-derives the encoding from this text with
// an independent implementation, and testdata/golden.txt pins checksums.
//
// Parameters are the policy's K and M, the chunk size n (recorded by the
// caller; shards do not contain it) and the block size B = BlockSize =
// 65536 bytes.
//
//   - Stripes. The chunk is cut into stripes of T = K·B bytes: stripe s
//     holds chunk bytes [s·T, min((s+1)·T, n)). There are S = ⌈n/T⌉
//     stripes; an empty chunk has none.
//   - Blocks. In stripe s every shard has a block of b_s bytes: b_s = B,
//     except in the last stripe, which holds r = n − (S−1)·T bytes
//     (1 ≤ r ≤ T) and has b_{S−1} = ⌈r/K⌉. Data block j (0 ≤ j < K) is
//     stripe bytes [j·b_s, (j+1)·b_s), zero-padded to b_s bytes; padding
//     therefore only occurs at the end of the last stripe and is less than
//     K bytes in all.
//   - Parity. Byte x of parity block i (K ≤ i < K+M) of a stripe is
//     Σ_j E[i][j]·d_j[x] over GF(2^8) with the reducing polynomial
//     x^8+x^4+x^3+x^2+1 (0x11D), where d_j is data block j. The K+M × K
//     coding matrix is E = V·U⁻¹, where V[r][c] = r^c (with 0^0 = 1) is a
//     Vandermonde matrix and U its top K×K square; E's top K rows are the
//     identity, so data blocks are stored as they are. This is the default
//     matrix of github.com/klauspost/reedsolomon (New without matrix
//     options).
//   - Shards. Shard i is its blocks of stripes 0, 1, …, S−1 concatenated:
//     its block of stripe s starts at shard offset s·B, and every shard is
//     ShardSize(p, n) = (S−1)·B + b_{S−1} bytes (0 for an empty chunk).
//     Shards 0..K−1 are data shards, K..K+M−1 parity shards.
//   - Checksums. All are xxhash64 (seed 0, github.com/cespare/xxhash/v2).
//     ShardInfo.StripeSums[s] is the checksum of shard i's block of stripe
//     s, padding included; ShardInfo.Sum is the checksum of the whole
//     shard, the same value chunkstore computes for a stored value.
//
// For example, a 300000-byte chunk under ec:2+1 has T = 131072, S = 3
// stripes and a last stripe of r = 37856 bytes in blocks of 18928, so each
// shard is 2·65536 + 18928 = 150000 bytes.
//
// # Detecting corruption while streaming
//
// A whole-shard checksum can only be checked after the whole shard has been
// read, too late for a reader that has already passed the bytes on. So
// Encode also returns a checksum per shard per stripe (ShardInfo.StripeSums)
// and the reader checks every block before using it: a corrupt block is
// never returned or fed to the decoder. The shard is reported through
// ReaderOptions.OnCorrupt, treated as missing from then on, and that stripe
// and the following ones are reconstructed from the other shards.
//
// The table lives in ShardInfo, recorded with the chunk, rather than next to
// the shard bytes, because only then does it bind the shard to the recorded
// chunk: a shard of an older upload of the same chunk, or a misdirected
// one, is internally consistent and passes chunkstore's own block
// checksums, but not the recorded StripeSums. The cost is 8 bytes per shard
// per stripe, 1/8192 of the stored bytes: 384 bytes for an 8 MiB chunk
// under ec:2+1 (64 stripes, 3 shards), 1.5 KiB under ec:4+2, 12 KiB for a
// 64 MiB chunk under ec:4+2. The block size trades this table, and the read
// amplification of small ranges, against per-stripe overhead; encoding
// speed varied little between 32 KiB and 256 KiB blocks on the development
// machine, and 64 KiB keeps a reader of ec:4+2 under 400 KiB.
//
// # Reading
//
// NewReader reads the stripes covering the requested range in order. For
// each it needs, on the fast path, only the data blocks that hold requested
// bytes, copied out with no decoding. Once one of those shards has failed
// (its source errored, its stream broke or ended early, or a block failed
// its checksum) the reader reads any K healthy blocks of the stripe,
// lowest index first (so data shards first), and reconstructs the missing
// data blocks; it keeps any blocks of the stripe it already read. Fewer
// than K healthy shards fails the read with ErrTooFewShards naming every
// failed shard, after all bytes of the earlier stripes have been returned.
// A shard that failed is not retried by the same reader; OnCorrupt or
// OnUnavailable is called once for it, so the node can schedule a repair.
//
// Each shard is opened once, at the first stripe it is needed for, for the
// bytes up to the last stripe of the range (the reader reopens it only if it
// is needed again after being skipped). The blocks of a stripe are read in
// parallel, one goroutine per shard, all joined before Read returns. Memory
// is one block buffer per shard in use: at most (K+M)·B, 384 KiB for
// ec:4+2, whatever the chunk or range size.
//
// # Repair
//
// Reconstruct rebuilds missing shards of one chunk in memory from any K
// present ones. It trusts its inputs: verify them with VerifyShard first,
// and the rebuilt shards against their recorded ShardInfo afterwards.
//
// # Errors
//
// Errors wrap the package's sentinels: ErrInvalidPolicy, ErrNotEC,
// ErrInvalidShards (shards or infos that do not match the policy and chunk
// size: a caller bug or a mixed-up record), ErrInvalidRange,
// ErrTooFewShards, ErrCorrupt and ErrClosed. ErrTooFewShards also wraps each
// failed shard's own error, so errors.Is sees, say, a source's not-found
// error or context.DeadlineExceeded through it.
//
// # Performance
//
// Measured by the benchmarks in bench_test.go on the 2-core development
// machine (AMD EPYC with GFNI, shared, so ±20% between runs), median of 6,
// on 8 MiB chunks; MB/s of chunk bytes, with the memory-bandwidth floor of
// the same run for scale:
//
//	Encode ec:2+1               2140 MB/s  (floor, allocate and copy: 3350)
//	Encode ec:4+2               2100 MB/s
//	NewReader ec:2+1 fast       9980 MB/s  (all data shards healthy)
//	NewReader ec:2+1 degraded   7800 MB/s  (data shard 0 missing: every stripe decoded)
//	NewReader ec:4+2 fast       9450 MB/s
//	NewReader ec:4+2 degraded   7360 MB/s
//	Reconstruct ec:2+1          9330 MB/s  (one data shard rebuilt)
//	Reconstruct ec:4+2         15900 MB/s
//
// Encode is bound by allocating and filling its (K+M)/K × n output and by
// hashing it twice (stripe sums, then whole-shard sums), not by the coding
// itself; the reader, fast or degraded, is well above the network or disk
// a shard comes from. Encoding a 4 KiB chunk takes 7-8 µs, mostly building
// the codec.
package erasure
