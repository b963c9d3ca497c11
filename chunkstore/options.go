package chunkstore

import (
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Options configures a Store. The zero value of a field means its default.
type Options struct {
	// FS is the filesystem the store lives on. Nil means vfs.Default (the
	// OS). Tests use vfs.NewMem() and inject faults with vfs/errorfs.
	FS vfs.FS
	// MaxChunkSize is the largest value Put accepts; larger sizes fail with
	// ErrTooLarge. Default 64 MiB.
	MaxChunkSize int64
	// MaxConcurrentPuts bounds memory: at most this many Puts hold a block
	// buffer at once; further Puts wait (honouring their context). Default 8.
	MaxConcurrentPuts int
	// BlockSize is the unit values are split into, checksummed and read.
	// A Put holds about two blocks in memory and a reader about one (pinned
	// in the block cache), whatever the value size. Changing it only affects
	// new values; each value records its own block size. Default 1 MiB.
	BlockSize int
	// CacheSize is the size of Pebble's block cache in bytes. Default 64 MiB.
	CacheSize int64
	// Logger receives Pebble's and the store's messages. Nil means
	// slog.Default().
	Logger *slog.Logger

	// writePath selects how block data reaches disk; see DESIGN.md. Zero is
	// the measured default. Unexported: it exists for the benchmarks.
	writePath writePath
	// ingestThreshold is the smallest value size written by sstable
	// ingestion when writePath is pathAuto. Zero means the default.
	ingestThreshold int64
	// valueSeparation enables Pebble's blob files for block values (only
	// meaningful for values written through the WAL). For the benchmarks.
	valueSeparation bool
	// MemTableSize is the Pebble memtable size in bytes (0 = 32 MiB).
	// Small chunks are written through it; up to two are in memory while
	// one flushes.
	MemTableSize uint64
}

// writePath is how Put moves block data into Pebble.
type writePath int

const (
	// pathAuto writes values below ingestThreshold through the WAL and
	// larger ones as blob files.
	pathAuto writePath = iota
	// pathWAL writes every block through NoSync batches in the WAL.
	pathWAL
	// pathIngest writes every non-empty value as an ingested sstable.
	pathIngest
	// pathFile writes every non-empty value as a blob file (blob.go).
	pathFile
)

func (p writePath) String() string {
	switch p {
	case pathAuto:
		return "auto"
	case pathWAL:
		return "wal"
	case pathIngest:
		return "ingest"
	case pathFile:
		return "file"
	}
	return fmt.Sprintf("writePath(%d)", int(p))
}

// Defaults.
const (
	DefaultMaxChunkSize      = 64 << 20
	DefaultMaxConcurrentPuts = 8
	DefaultBlockSize         = 1 << 20
	DefaultCacheSize         = 64 << 20

	// defaultIngestThreshold is the value size from which pathAuto ingests
	// an sstable instead of writing the WAL. See DESIGN.md for the figures.
	defaultIngestThreshold = 1 << 20

	// minBlockSize keeps per-block overhead (a key, a checksum, an index
	// entry) negligible; maxBlockSize keeps a block well inside a memtable.
	minBlockSize = 4 << 10
	maxBlockSize = 16 << 20
	// maxMaxChunkSize keeps the block count of a value within uint32 and a
	// single value well below anything a node should stage.
	maxMaxChunkSize = 1 << 40
)

// DefaultOptions returns the options used when Open is given nil.
func DefaultOptions() *Options {
	return &Options{
		FS:                vfs.Default,
		MaxChunkSize:      DefaultMaxChunkSize,
		MaxConcurrentPuts: DefaultMaxConcurrentPuts,
		BlockSize:         DefaultBlockSize,
		CacheSize:         DefaultCacheSize,
	}
}

// withDefaults returns a copy of o (which may be nil) with zero fields set to
// their defaults.
func (o *Options) withDefaults() *Options {
	var c Options
	if o != nil {
		c = *o
	}
	d := DefaultOptions()
	if c.FS == nil {
		c.FS = d.FS
	}
	if c.MaxChunkSize == 0 {
		c.MaxChunkSize = d.MaxChunkSize
	}
	if c.MaxConcurrentPuts == 0 {
		c.MaxConcurrentPuts = d.MaxConcurrentPuts
	}
	if c.BlockSize == 0 {
		c.BlockSize = d.BlockSize
	}
	if c.CacheSize == 0 {
		c.CacheSize = d.CacheSize
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ingestThreshold == 0 {
		c.ingestThreshold = defaultIngestThreshold
	}
	return &c
}

// Validate reports whether o (after defaults are applied to zero fields) is
// usable. It returns an error wrapping ErrInvalidOptions if not.
func (o *Options) Validate() error {
	c := o.withDefaults()
	switch {
	case c.MaxChunkSize < 0 || c.MaxChunkSize > maxMaxChunkSize:
		return fmt.Errorf("%w: MaxChunkSize %d not in [0, %d]", ErrInvalidOptions, c.MaxChunkSize, int64(maxMaxChunkSize))
	case c.MaxConcurrentPuts < 0:
		return fmt.Errorf("%w: MaxConcurrentPuts %d < 0", ErrInvalidOptions, c.MaxConcurrentPuts)
	case c.BlockSize < minBlockSize || c.BlockSize > maxBlockSize:
		return fmt.Errorf("%w: BlockSize %d not in [%d, %d]", ErrInvalidOptions, c.BlockSize, minBlockSize, maxBlockSize)
	case c.CacheSize < 0:
		return fmt.Errorf("%w: CacheSize %d < 0", ErrInvalidOptions, c.CacheSize)
	case c.writePath < pathAuto || c.writePath > pathFile:
		return fmt.Errorf("%w: %v", ErrInvalidOptions, c.writePath)
	}
	return nil
}
