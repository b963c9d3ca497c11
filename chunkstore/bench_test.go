package chunkstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// The write-path benchmarks run on the real disk (b.TempDir), because fsync
// cost is what they measure. Compare every store figure with raw-file of the
// same size and mode from the same run: that is the physical limit (one
// sequential write and one fsync per value, no index, no checksums).
//
//	go test -run '^$' -bench 'Put' -benchtime 2s ./chunkstore/
//
// See DESIGN.md for recorded figures.

type benchVariant struct {
	name   string
	path   writePath
	valSep bool
}

var benchVariants = []benchVariant{
	{"auto", pathAuto, false},
	{"wal", pathWAL, false},
	{"wal-valsep", pathWAL, true},
	{"ingest", pathIngest, false},
	{"file", pathFile, false},
}

var benchSizes = []int{1 << 20, 8 << 20}

func benchOptions(v benchVariant) *Options {
	return &Options{
		FS:              vfs.Default,
		Logger:          slog.New(slog.DiscardHandler),
		writePath:       v.path,
		valueSeparation: v.valSep,
	}
}

// BenchmarkPut measures durable Put throughput (MB/s) for 1 MiB and 8 MiB
// values, sequentially and from 4 goroutines, for each write path, next to
// the raw-file baseline.
func BenchmarkPut(b *testing.B) {
	for _, size := range benchSizes {
		data := value(1, size)
		for _, par := range []int{1, 4} {
			mode := "seq"
			if par > 1 {
				mode = fmt.Sprintf("par%d", par)
			}
			b.Run(fmt.Sprintf("raw-append/%dMiB/%s", size>>20, mode), func(b *testing.B) {
				benchRawAppend(b, data, par)
			})
			b.Run(fmt.Sprintf("raw-file/%dMiB/%s", size>>20, mode), func(b *testing.B) {
				benchRaw(b, data, par)
			})
			for _, v := range benchVariants {
				b.Run(fmt.Sprintf("%s/%dMiB/%s", v.name, size>>20, mode), func(b *testing.B) {
					benchPut(b, v, data, par)
				})
			}
		}
	}
}

// BenchmarkPutSize compares the WAL and ingest paths across value sizes,
// with the raw-append baseline: it is what the auto path's ingest threshold
// (defaultIngestThreshold) is chosen from.
func BenchmarkPutSize(b *testing.B) {
	for _, size := range []int{4 << 10, 64 << 10, 256 << 10, 1 << 20, 2 << 20, 4 << 20} {
		data := value(1, size)
		for _, par := range []int{1, 4} {
			mode := "seq"
			if par > 1 {
				mode = fmt.Sprintf("par%d", par)
			}
			b.Run(fmt.Sprintf("raw-append/%dKiB/%s", size>>10, mode), func(b *testing.B) {
				benchRawAppend(b, data, par)
			})
			for _, v := range []benchVariant{benchVariants[1], benchVariants[3]} {
				b.Run(fmt.Sprintf("%s/%dKiB/%s", v.name, size>>10, mode), func(b *testing.B) {
					benchPut(b, v, data, par)
				})
			}
		}
	}
}

// runPar runs fn(i) for i in [0, b.N) on par goroutines (par > 1) or the
// benchmark goroutine.
func runPar(b *testing.B, par int, fn func(i int64) error) {
	if par == 1 {
		for i := int64(0); b.Loop(); i++ {
			if err := fn(i); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	// RunParallel starts parallelism*GOMAXPROCS goroutines.
	b.SetParallelism(max(1, par/runtime.GOMAXPROCS(0)))
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := fn(next.Add(1)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func benchPut(b *testing.B, v benchVariant, data []byte, par int) {
	s, err := Open(b.TempDir(), benchOptions(v))
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			b.Error(err)
		}
	}()
	ctx := context.Background()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	io0 := settle(b)
	runPar(b, par, func(i int64) error {
		_, err := s.Put(ctx, Key{UID: uint64(i/16 + 1), Chunk: uint32(i % 16)}, bytes.NewReader(data), int64(len(data)))
		return err
	})
	b.StopTimer()
	reportWriteAmp(b, io0, s.Metrics().PutBytes)
}

// settle flushes dirty pages left by earlier benchmarks (and the discards of
// their deleted directories) so they do not slow this one, and returns the
// process's disk write counter.
func settle(b *testing.B) int64 {
	b.StopTimer()
	syscall.Sync()
	n := diskWriteBytes()
	b.StartTimer()
	return n
}

// reportWriteAmp reports bytes the process sent to disk per byte put while
// the benchmark ran ("w-amp"); work Pebble deferred (compactions still
// pending) is not included.
func reportWriteAmp(b *testing.B, before, put int64) {
	if before < 0 || put <= 0 {
		return
	}
	if after := diskWriteBytes(); after >= before {
		b.ReportMetric(float64(after-before)/float64(put), "w-amp")
	}
}

// diskWriteBytes returns write_bytes from /proc/self/io, or -1.
func diskWriteBytes() int64 {
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// benchRawAppend is the physical limit: values appended to one file in the
// same directory, one write and one fsync per value (par goroutines share
// the file through WriteAt at disjoint offsets).
func benchRawAppend(b *testing.B, data []byte, par int) {
	f, err := os.Create(filepath.Join(b.TempDir(), "raw"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	b.SetBytes(int64(len(data)))
	io0 := settle(b)
	var put atomic.Int64
	runPar(b, par, func(i int64) error {
		if _, err := f.WriteAt(data, i*int64(len(data))); err != nil {
			return err
		}
		put.Add(int64(len(data)))
		return f.Sync()
	})
	b.StopTimer()
	reportWriteAmp(b, io0, put.Load())
}

// benchRaw writes each value to a new file in the same directory with one
// write and one fsync: what a file-per-chunk store would pay.
func benchRaw(b *testing.B, data []byte, par int) {
	dir := b.TempDir()
	b.SetBytes(int64(len(data)))
	io0 := settle(b)
	var put atomic.Int64
	runPar(b, par, func(i int64) error {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%d", i)))
		if err != nil {
			return err
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		put.Add(int64(len(data)))
		return f.Close()
	})
	b.StopTimer()
	reportWriteAmp(b, io0, put.Load())
}

// BenchmarkGet measures a full streaming read of a stored value.
func BenchmarkGet(b *testing.B) {
	for _, v := range []benchVariant{benchVariants[1], benchVariants[3]} {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%s/%dMiB", v.name, size>>20), func(b *testing.B) {
				s, err := Open(b.TempDir(), benchOptions(v))
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				ctx := context.Background()
				const keys = 8
				for i := range keys {
					mustPut(b, s, Key{UID: uint64(i)}, value(uint64(i), size))
				}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					rc, _, err := s.Get(ctx, Key{UID: uint64(i % keys)}, 0, -1)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.Copy(io.Discard, rc); err != nil {
						b.Fatal(err)
					}
					rc.Close()
				}
			})
		}
	}
}

// BenchmarkDeleteSmall measures deleting small values (4 KiB, one block)
// the way gc does, each delete reading the value's manifest first, after
// storing b.N of them: the cost of a delete once many deletes sit in the
// memtable. Run it with a large -benchtime (e.g. 20000x): a range
// tombstone per delete made each read fragment all earlier ones again.
//
//	go test -run '^$' -bench DeleteSmall -benchtime 20000x ./chunkstore/
func BenchmarkDeleteSmall(b *testing.B) {
	s, err := Open(b.TempDir(), benchOptions(benchVariant{name: "auto", path: pathAuto}))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	data := value(1, 4<<10)
	for i := 0; i < b.N; i++ {
		if _, err := s.PutUploadNoSync(ctx, Key{UID: uint64(i + 1), Chunk: 1}, bytes.NewReader(data), int64(len(data))); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.Delete(ctx, Key{UID: uint64(i + 1), Chunk: 1}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deletes/s")
}
