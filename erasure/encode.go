package erasure

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/reedsolomon"
)

// ShardInfo describes one shard of an encoded chunk. Encode returns one per
// shard; the caller records them with the chunk (they are small: 8 bytes per
// stripe) and hands them back to NewReader and VerifyShard, which trust
// nothing else about the shard.
type ShardInfo struct {
	// Index is the shard's position: 0..K-1 are data shards, K..K+M-1
	// parity shards.
	Index int
	// Size is the shard's length in bytes, ShardSize(p, chunkSize).
	Size int64
	// Sum is the xxhash64 of the whole shard.
	Sum uint64
	// StripeSums holds the xxhash64 of the shard's block in each stripe, in
	// stripe order; len(StripeSums) == Stripes(p, chunkSize). A reader
	// checks every block it uses against it before use, so a corrupt shard
	// is caught, skipped and reported at the stripe where it goes wrong
	// rather than after the whole shard has been streamed.
	StripeSums []uint64
}

// Encode splits data, one whole chunk, into p.K data shards and p.M parity
// shards of ShardSize(p, len(data)) bytes each, laid out as described in the
// package documentation, and returns them with their ShardInfos. Shard i is
// shards[i] and infos[i]. The shards are newly allocated (in one block) and
// do not alias data; the chunk's length is not stored in them and must be
// recorded by the caller, since decoding needs it. An empty chunk gives K+M
// empty shards. It returns ErrInvalidPolicy (wrapped) for an invalid policy.
//
// Memory: the shards take (K+M)/K × len(data) bytes. Stripes are encoded in
// parallel on up to GOMAXPROCS goroutines, all finished before it returns.
func Encode(p Policy, data []byte) (shards [][]byte, infos []ShardInfo, err error) {
	if err := p.check(); err != nil {
		return nil, nil, err
	}
	l := newLayout(p, int64(len(data)))
	shards, infos = allocShards(p, l)
	err = forEachStripe(p, l, func(enc reedsolomon.Encoder, sub [][]byte, s int) error {
		bs := l.block(s)
		off := l.shardOff(s)
		start := l.stripeStart(s)
		stripe := data[start : start+l.stripeData(s)]
		for i := range sub {
			sub[i] = shards[i][off : off+int64(bs)]
		}
		// Data blocks are consecutive bs-byte pieces of the stripe; the
		// shards come zeroed, so a short final piece is already padded.
		for j := range p.K {
			if lo := j * bs; lo < len(stripe) {
				copy(sub[j], stripe[lo:min(lo+bs, len(stripe))])
			}
		}
		if err := enc.Encode(sub); err != nil {
			return fmt.Errorf("erasure: encode %v stripe %d: %w", p, s, err)
		}
		for i := range sub {
			infos[i].StripeSums[s] = xxhash.Sum64(sub[i])
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	sumShards(shards, infos)
	return shards, infos, nil
}

// allocShards allocates K+M zeroed shards of l.shardSize bytes and their
// infos (with Index, Size and room for the stripe sums), each kind in one
// allocation.
func allocShards(p Policy, l layout) ([][]byte, []ShardInfo) {
	n := p.Shards()
	buf := make([]byte, int64(n)*l.shardSize)
	sums := make([]uint64, n*l.stripes)
	shards := make([][]byte, n)
	infos := make([]ShardInfo, n)
	for i := range n {
		lo := int64(i) * l.shardSize
		shards[i] = buf[lo : lo+l.shardSize : lo+l.shardSize]
		infos[i] = ShardInfo{
			Index:      i,
			Size:       l.shardSize,
			StripeSums: sums[i*l.stripes : (i+1)*l.stripes : (i+1)*l.stripes],
		}
	}
	return shards, infos
}

// sumShards fills infos[i].Sum with the xxhash64 of shards[i], hashing
// shards in parallel on up to GOMAXPROCS goroutines (xxhash cannot be split
// within a shard, and this pass is a third of Encode's time).
func sumShards(shards [][]byte, infos []ShardInfo) {
	workers := min(runtime.GOMAXPROCS(0), len(shards))
	if len(shards) > 0 && len(shards[0]) < 1<<20 {
		workers = 1 // not worth a goroutine
	}
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		wg.Go(func() {
			for i := w; i < len(shards); i += workers {
				infos[i].Sum = xxhash.Sum64(shards[i])
			}
		})
	}
	for i := 0; i < len(shards); i += workers {
		infos[i].Sum = xxhash.Sum64(shards[i])
	}
	wg.Wait()
}

// Reconstruct rebuilds, in place, the missing shards of one chunk of
// chunkSize bytes: shards must hold K+M entries, nil (or empty, for a
// non-empty chunk) for a missing shard and ShardSize(p, chunkSize) bytes for
// a present one. Each missing entry is replaced by a newly allocated,
// rebuilt shard; present shards are not modified.
//
// Reconstruct trusts the present shards: check each with VerifyShard first,
// and check the rebuilt ones against their recorded ShardInfo afterwards,
// which catches any corrupt input that slipped through. It returns
// ErrTooFewShards (wrapped) if fewer than K shards are present,
// ErrInvalidShards (wrapped) if the count or a length is wrong, and
// ErrInvalidPolicy (wrapped) for an invalid policy.
func Reconstruct(p Policy, chunkSize int64, shards [][]byte) error {
	if err := p.check(); err != nil {
		return err
	}
	if chunkSize < 0 {
		return fmt.Errorf("erasure: reconstruct %v: chunk size %d: %w", p, chunkSize, ErrInvalidShards)
	}
	if len(shards) != p.Shards() {
		return fmt.Errorf("erasure: reconstruct %v: %d shards, want %d: %w", p, len(shards), p.Shards(), ErrInvalidShards)
	}
	l := newLayout(p, chunkSize)
	var missing []int
	for i, sh := range shards {
		switch {
		case sh == nil || len(sh) == 0 && l.shardSize > 0:
			missing = append(missing, i)
		case int64(len(sh)) != l.shardSize:
			return fmt.Errorf("erasure: reconstruct %v: shard %d has %d bytes, want %d for a %d-byte chunk: %w",
				p, i, len(sh), l.shardSize, chunkSize, ErrInvalidShards)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if len(missing) > p.M {
		return fmt.Errorf("erasure: reconstruct %v: shards %s missing, at most %d can be rebuilt: %w",
			p, joinInts(missing), p.M, ErrTooFewShards)
	}
	isMissing := make([]bool, p.Shards())
	buf := make([]byte, int64(len(missing))*l.shardSize)
	for n, i := range missing {
		isMissing[i] = true
		lo := int64(n) * l.shardSize
		shards[i] = buf[lo : lo+l.shardSize : lo+l.shardSize]
	}
	return forEachStripe(p, l, func(enc reedsolomon.Encoder, sub [][]byte, s int) error {
		lo := l.shardOff(s)
		hi := lo + int64(l.block(s))
		for i := range sub {
			if isMissing[i] {
				sub[i] = shards[i][lo:lo:hi] // empty with capacity: rebuilt in place
			} else {
				sub[i] = shards[i][lo:hi]
			}
		}
		if err := enc.Reconstruct(sub); err != nil {
			return fmt.Errorf("erasure: reconstruct %v stripe %d: %w", p, s, err)
		}
		for _, i := range missing {
			if !sameStart(sub[i], shards[i][lo:hi]) {
				copy(shards[i][lo:hi], sub[i])
			}
		}
		return nil
	})
}

// sameStart reports whether a and b start at the same address, that is the
// codec wrote into the capacity it was given rather than a new slice.
func sameStart(a, b []byte) bool {
	return len(a) > 0 && len(b) > 0 && unsafe.SliceData(a) == unsafe.SliceData(b)
}

// VerifyShard checks data against info: its length, the checksum of every
// stripe block (when info.StripeSums is set) and the whole-shard checksum.
// It returns ErrCorrupt (wrapped, naming the shard and the first bad
// stripe) on a mismatch, and ErrInvalidShards (wrapped) if info.StripeSums
// has the wrong length for info.Size. Stripe boundaries within a shard do
// not depend on K (every block but the last is BlockSize bytes), so no
// policy is needed.
func VerifyShard(info ShardInfo, data []byte) error {
	if int64(len(data)) != info.Size {
		return fmt.Errorf("erasure: shard %d: %d bytes, want %d: %w", info.Index, len(data), info.Size, ErrCorrupt)
	}
	if info.StripeSums != nil {
		want := int((info.Size + BlockSize - 1) / BlockSize)
		if len(info.StripeSums) != want {
			return fmt.Errorf("erasure: shard %d: %d stripe sums for %d bytes, want %d: %w",
				info.Index, len(info.StripeSums), info.Size, want, ErrInvalidShards)
		}
		for s, sum := range info.StripeSums {
			lo := int64(s) * BlockSize
			block := data[lo:min(lo+BlockSize, info.Size)]
			if got := xxhash.Sum64(block); got != sum {
				return fmt.Errorf("erasure: shard %d stripe %d: checksum %016x, want %016x: %w",
					info.Index, s, got, sum, ErrCorrupt)
			}
		}
	}
	if got := xxhash.Sum64(data); got != info.Sum {
		return fmt.Errorf("erasure: shard %d: checksum %016x, want %016x: %w", info.Index, got, info.Sum, ErrCorrupt)
	}
	return nil
}

func joinInts(v []int) string {
	var b strings.Builder
	for i, x := range v {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprint(&b, x)
	}
	return b.String()
}
