package erasure

import (
	"runtime"
	"sync"

	"github.com/klauspost/reedsolomon"
)

// BlockSize is the number of bytes each shard contributes to one full
// stripe. A stripe holds K×BlockSize bytes of chunk data. It is part of the
// on-disk format (see the package documentation) and must not change.
const BlockSize = 64 << 10

// layout is the stripe geometry of one chunk under one policy. See the
// package documentation for the definition; every offset computation in the
// package goes through it.
type layout struct {
	k         int
	size      int64 // chunk size in bytes
	stripes   int   // number of stripes; 0 for an empty chunk
	last      int   // block size of the last stripe (1..BlockSize), 0 if empty
	shardSize int64 // bytes per shard
}

func newLayout(p Policy, size int64) layout {
	l := layout{k: p.K, size: size}
	if size <= 0 {
		return l
	}
	t := int64(p.K) * BlockSize
	full := size / t
	rem := size % t
	if rem == 0 {
		l.stripes = int(full)
		l.last = BlockSize
	} else {
		l.stripes = int(full) + 1
		l.last = int((rem + int64(p.K) - 1) / int64(p.K))
	}
	l.shardSize = int64(l.stripes-1)*BlockSize + int64(l.last)
	return l
}

// stripeLen is the number of chunk bytes a full stripe holds.
func (l layout) stripeLen() int64 { return int64(l.k) * BlockSize }

// block returns the size of each shard's block in stripe s.
func (l layout) block(s int) int {
	if s == l.stripes-1 {
		return l.last
	}
	return BlockSize
}

// stripeStart returns the chunk offset of stripe s's first byte.
func (l layout) stripeStart(s int) int64 { return int64(s) * l.stripeLen() }

// stripeData returns the number of chunk bytes (not padding) in stripe s.
func (l layout) stripeData(s int) int64 {
	return min(l.size-l.stripeStart(s), l.stripeLen())
}

// shardOff returns the shard offset of stripe s's block.
func (l layout) shardOff(s int) int64 { return int64(s) * BlockSize }

// ShardSize returns the size in bytes of each of the K+M shards of an n-byte
// chunk: BlockSize for every full stripe plus ceil(r/K) for a final partial
// stripe of r bytes. It is 0 for an empty chunk or an invalid policy.
func ShardSize(p Policy, n int64) int64 {
	if p.check() != nil {
		return 0
	}
	return newLayout(p, n).shardSize
}

// Stripes returns the number of stripes of an n-byte chunk, which is also
// the length of every ShardInfo.StripeSums. It is 0 for an empty chunk or an
// invalid policy.
func Stripes(p Policy, n int64) int {
	if p.check() != nil {
		return 0
	}
	return newLayout(p, n).stripes
}

// newCodec returns a Reed–Solomon codec for p. The options only tune speed:
// none of them may change the coding matrix, which is part of the format
// (see the package documentation and TestFormatReference). One goroutine per
// call, because the package runs stripes in parallel itself and measured
// faster that way than with the library's own splitting of 64 KiB blocks.
func newCodec(p Policy) (reedsolomon.Encoder, error) {
	return reedsolomon.New(p.K, p.M, reedsolomon.WithMaxGoroutines(1))
}

// forEachStripe calls fn for every stripe of l, on up to GOMAXPROCS
// goroutines, each with a codec of its own. It returns the first error
// returned by fn or by codec construction; it always waits for every
// goroutine it started.
func forEachStripe(p Policy, l layout, fn func(enc reedsolomon.Encoder, sub [][]byte, s int) error) error {
	workers := min(runtime.GOMAXPROCS(0), l.stripes)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		run := func() {
			enc, err := newCodec(p)
			if err != nil {
				errs[w] = err
				return
			}
			sub := make([][]byte, p.Shards())
			for s := w; s < l.stripes; s += workers {
				if err := fn(enc, sub, s); err != nil {
					errs[w] = err
					return
				}
			}
		}
		if w == workers-1 {
			run() // the calling goroutine takes a share instead of idling
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			run()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
