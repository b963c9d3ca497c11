package erasure

import (
	"context"
	"fmt"
	"io"
	"testing"
)

var benchPolicies = []Policy{{K: 2, M: 1}, {K: 4, M: 2}}

// BenchmarkEncode measures Encode on whole chunks; MB/s counts chunk bytes.
func BenchmarkEncode(b *testing.B) {
	for _, p := range benchPolicies {
		for _, size := range []int64{4 << 10, 8 << 20} {
			b.Run(fmt.Sprintf("%v/%s", p, sizeName(size)), func(b *testing.B) {
				data := testData(size, 1)
				b.SetBytes(size)
				b.ReportAllocs()
				for b.Loop() {
					if _, _, err := Encode(p, data); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkReader measures reading a whole 8 MiB chunk from in-memory
// shards: "fast" with every shard healthy (data shards only, no decoding),
// "reconstruct" with data shard 0 missing (every stripe decoded). MB/s
// counts chunk bytes.
func BenchmarkReader(b *testing.B) {
	const size = 8 << 20
	for _, p := range benchPolicies {
		data := testData(size, 2)
		shards, infos := mustEncode(b, p, data)
		for _, mode := range []struct {
			name    string
			missing uint
		}{{"fast", 0}, {"reconstruct", 1}} {
			b.Run(fmt.Sprintf("%v/%s/%s", p, sizeName(size), mode.name), func(b *testing.B) {
				src := newMemSource(shards, mode.missing)
				b.SetBytes(size)
				b.ReportAllocs()
				for b.Loop() {
					src.calls = src.calls[:0]
					r, err := NewReader(context.Background(), p, size, infos, src.open, 0, size, ReaderOptions{})
					if err != nil {
						b.Fatal(err)
					}
					if n, err := io.Copy(io.Discard, r); n != size || err != nil {
						b.Fatalf("copy: %d, %v", n, err)
					}
					r.Close()
				}
			})
		}
	}
}

// BenchmarkReconstruct measures rebuilding one lost data shard of an 8 MiB
// chunk in memory (repair). MB/s counts chunk bytes.
func BenchmarkReconstruct(b *testing.B) {
	const size = 8 << 20
	for _, p := range benchPolicies {
		shards, _ := mustEncode(b, p, testData(size, 3))
		b.Run(fmt.Sprintf("%v/%s", p, sizeName(size)), func(b *testing.B) {
			b.SetBytes(size)
			b.ReportAllocs()
			work := make([][]byte, len(shards))
			for b.Loop() {
				copy(work, shards)
				work[0] = nil
				if err := Reconstruct(p, size, work); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func sizeName(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dKiB", n>>10)
}

// BenchmarkFloor measures the memory-bandwidth floor the benchmarks above
// are compared with, on the same 8 MiB chunk: "alloc+copy" allocates
// Encode's output for 4+2 ((K+M)/K × 8 MiB, zeroed) and copies the chunk
// into it, the least any Encode must do; "copy" moves the chunk through a
// BlockSize buffer, the least a reader from an in-memory source must do.
func BenchmarkFloor(b *testing.B) {
	const size = 8 << 20
	data := testData(size, 4)
	b.Run("alloc+copy/8MiB", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			out := make([]byte, size*6/4)
			copy(out, data)
		}
	})
	b.Run("copy/8MiB", func(b *testing.B) {
		b.SetBytes(size)
		buf := make([]byte, BlockSize)
		for b.Loop() {
			for off := 0; off < size; off += BlockSize {
				copy(buf, data[off:])
			}
		}
	})
}
