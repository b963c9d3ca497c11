package chunkstore

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Key identifies one stored value: a chunk of a file, or one erasure-coded
// shard of it.
type Key struct {
	// UID is the file's uid.
	UID uint64
	// Chunk is the chunk number within the file.
	Chunk uint32
	// Shard is 0 for a plain replica; erasure-coded shards use 1..K+M.
	Shard uint16
}

// String formats k as "uid/chunk/shard" for errors and logs.
func (k Key) String() string { return fmt.Sprintf("%d/%d/%d", k.UID, k.Chunk, k.Shard) }

// Pebble key layout. Every key starts with a one-byte kind so each kind is a
// contiguous range: manifests are small and clustered (Scan and Open read
// only them), blocks of one generation of one value are adjacent (a ranged
// read is a short forward scan, and dropping a generation is one range
// deletion).
//
//	'm' uid(8) chunk(4) shard(2)                     -> manifest
//	'b' uid(8) chunk(4) shard(2) gen(8) block(4)     -> data || xxhash64(data)
//	'p' uid(8) chunk(4) shard(2) gen(8)              -> pending put marker (empty)
//	'g'                                              -> generation high-water mark
//
// Keys starting with 'R' and 'S' are not the store's: the node keeps its
// Raft log and stable store there (raftstore.PebbleLog, through DB), so
// that a log append shares its WAL sync with chunk writes.
//
// All integers are big-endian so byte order is numeric order.
const (
	kindManifest = 'm'
	kindBlock    = 'b'
	kindPending  = 'p'
	kindGen      = 'g'

	keyIDLen       = 8 + 4 + 2
	manifestKeyLen = 1 + keyIDLen
	pendingKeyLen  = manifestKeyLen + 8
	blockKeyLen    = pendingKeyLen + 4
)

func appendKeyID(dst []byte, k Key) []byte {
	dst = binary.BigEndian.AppendUint64(dst, k.UID)
	dst = binary.BigEndian.AppendUint32(dst, k.Chunk)
	return binary.BigEndian.AppendUint16(dst, k.Shard)
}

func decodeKeyID(b []byte) Key {
	return Key{
		UID:   binary.BigEndian.Uint64(b),
		Chunk: binary.BigEndian.Uint32(b[8:]),
		Shard: binary.BigEndian.Uint16(b[12:]),
	}
}

func manifestKey(k Key) []byte {
	return appendKeyID(append(make([]byte, 0, manifestKeyLen), kindManifest), k)
}

func pendingKey(k Key, gen uint64) []byte {
	b := appendKeyID(append(make([]byte, 0, pendingKeyLen), kindPending), k)
	return binary.BigEndian.AppendUint64(b, gen)
}

// appendBlockKey appends the key of block idx of generation gen of k.
func appendBlockKey(dst []byte, k Key, gen uint64, idx uint32) []byte {
	dst = appendKeyID(append(dst, kindBlock), k)
	dst = binary.BigEndian.AppendUint64(dst, gen)
	return binary.BigEndian.AppendUint32(dst, idx)
}

func blockKey(k Key, gen uint64, idx uint32) []byte {
	return appendBlockKey(make([]byte, 0, blockKeyLen), k, gen, idx)
}

// genBlockSpan returns [start, end) covering every block of generation gen of
// k, for a range deletion or a bounded iterator.
func genBlockSpan(k Key, gen uint64) (start, end []byte) {
	start = appendBlockKey(make([]byte, 0, blockKeyLen), k, gen, 0)
	end = prefixSuccessor(start[:pendingKeyLen])
	return start, end
}

// uidSpan returns [start, end) of all keys of the given kind for uid.
func uidSpan(kind byte, uid uint64) (start, end []byte) {
	start = binary.BigEndian.AppendUint64([]byte{kind}, uid)
	return start, prefixSuccessor(start)
}

// kindSpan returns [start, end) of all keys of a kind.
func kindSpan(kind byte) (start, end []byte) {
	return []byte{kind}, []byte{kind + 1}
}

// prefixSuccessor returns the smallest key greater than every key with the
// given prefix. The prefix must contain a byte below 0xff, which always holds
// here because every prefix starts with a kind byte.
func prefixSuccessor(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	panic("chunkstore: prefix has no successor") // unreachable: kinds are < 0xff
}

// manifest is the commit record of a value: it is written last, with a
// synced batch, and a value is visible only through it.
type manifest struct {
	size      int64  // value length in bytes
	blockSize uint32 // block size the value was written with
	blocks    uint32 // number of blocks
	sum       uint64 // xxhash64 of the whole value
	gen       uint64 // generation whose blocks hold the value
	// file is set when the blocks are in the value's blob file (see
	// blob.go) rather than in Pebble; such manifests are encoded as
	// version 2.
	file bool
	// upload is set on a value written by PutUpload (an upload's own copy,
	// not a later copy by repair or rebalance); only DeleteUpload's
	// cleanup removes such a value, and only it. Encoded as version 3.
	upload bool
}

// manifestVersion is the first byte of every encoded manifest. Its meaning
// must never change; a new layout gets a new version.
const manifestVersion = 1

// manifestVersionFile is the version of manifests whose blocks live in a
// blob file: the version-1 layout followed by one layout byte (1 = blob
// file) before the checksum. Version-1 manifests (blocks in Pebble) are
// still written for small values and read as before, so a data dir of an
// earlier build opens unchanged.
const manifestVersionFile = 2

const layoutFile = 1

// manifestVersionFlags is the version of manifests that carry flags: the
// version-1 layout followed by the layout byte (0 = blocks in Pebble,
// 1 = blob file) and a flags byte, then the checksum. It is written only
// when a flag is set, so every other manifest keeps its earlier encoding.
const manifestVersionFlags = 3

// Manifest flags (version 3).
const flagUpload = 1 << 0

// manifestLen is the encoded length: version, size, blockSize, blocks, sum,
// gen, and an xxhash64 of the preceding bytes.
const manifestLen = 1 + 8 + 4 + 4 + 8 + 8 + 8

var errBadManifest = errors.New("bad manifest")

func (m manifest) encode() []byte {
	b := make([]byte, 0, manifestLen+2)
	switch {
	case m.upload:
		b = append(b, manifestVersionFlags)
	case m.file:
		b = append(b, manifestVersionFile)
	default:
		b = append(b, manifestVersion)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(m.size))
	b = binary.BigEndian.AppendUint32(b, m.blockSize)
	b = binary.BigEndian.AppendUint32(b, m.blocks)
	b = binary.BigEndian.AppendUint64(b, m.sum)
	b = binary.BigEndian.AppendUint64(b, m.gen)
	switch {
	case m.upload:
		layout := byte(0)
		if m.file {
			layout = layoutFile
		}
		b = append(b, layout, flagUpload)
	case m.file:
		b = append(b, layoutFile)
	}
	return binary.BigEndian.AppendUint64(b, checksum(b))
}

func decodeManifest(b []byte) (manifest, error) {
	n := manifestLen
	switch firstByte(b) {
	case manifestVersionFile:
		n++
	case manifestVersionFlags:
		n += 2
	}
	if len(b) != n || (b[0] != manifestVersion && b[0] != manifestVersionFile && b[0] != manifestVersionFlags) {
		return manifest{}, fmt.Errorf("%w: length %d version %d", errBadManifest, len(b), firstByte(b))
	}
	if got, want := checksum(b[:n-8]), binary.BigEndian.Uint64(b[n-8:]); got != want {
		return manifest{}, fmt.Errorf("%w: checksum %016x, stored %016x", errBadManifest, got, want)
	}
	m := manifest{
		size:      int64(binary.BigEndian.Uint64(b[1:])),
		blockSize: binary.BigEndian.Uint32(b[9:]),
		blocks:    binary.BigEndian.Uint32(b[13:]),
		sum:       binary.BigEndian.Uint64(b[17:]),
		gen:       binary.BigEndian.Uint64(b[25:]),
	}
	switch b[0] {
	case manifestVersionFile:
		if b[33] != layoutFile {
			return manifest{}, fmt.Errorf("%w: layout %d", errBadManifest, b[33])
		}
		m.file = true
	case manifestVersionFlags:
		if b[33] > layoutFile {
			return manifest{}, fmt.Errorf("%w: layout %d", errBadManifest, b[33])
		}
		if b[34]&^flagUpload != 0 {
			return manifest{}, fmt.Errorf("%w: unknown flags %#x", errBadManifest, b[34])
		}
		m.file = b[33] == layoutFile
		m.upload = b[34]&flagUpload != 0
	}
	if m.size < 0 || m.blockSize == 0 || uint64(m.blocks) != blockCount(m.size, int64(m.blockSize)) {
		return manifest{}, fmt.Errorf("%w: size %d block size %d blocks %d", errBadManifest, m.size, m.blockSize, m.blocks)
	}
	return m, nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

// blockCount is the number of blocks of a value: zero for an empty value.
func blockCount(size, blockSize int64) uint64 {
	return uint64((size + blockSize - 1) / blockSize)
}

func (m manifest) info() Info { return Info{Size: m.size, Sum: m.sum} }

// blockLen is the data length of block idx.
func (m manifest) blockLen(idx uint32) int64 {
	return min(int64(m.blockSize), m.size-int64(idx)*int64(m.blockSize))
}
