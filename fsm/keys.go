package fsm

import (
	"encoding/binary"
	"math"

	"github.com/osprey-storage/osprey"
)

// Key layout of the metadata store (format 1). Every key starts with
// keyFormat, then a table byte, then the table's fields, fixed-width big
// endian where they must sort numerically. This file is the only place that
// knows the encoding: a change of layout is a new keyFormat and a migration,
// never a reinterpretation of existing keys (STYLE 20).
//
//	m <name>                      singletons: applied index, cluster record, counters, hash
//	n <node id>                   Node (JSON)
//	f <uid u64>                   File without its upload chunks (JSON)
//	k <uid u64> <num u32>         Chunk of an uploading file (JSON)
//	c <content id u64>            Content (JSON)
//	h <md5 hex>                   content id u64 (the md5-only dedup index of earlier builds;
//	                              migrated into 'H' on open and after a restore, never written)
//	H <len u16> <tenant> <len u8> <md5 hex> <size u64> <sha256 hex>
//	                              content id u64 (dedup index: verified contents by tenant,
//	                              md5, size and SHA-256; sha256 "" for a content verified
//	                              before its SHA-256 was known)
//	t <task id u64>               Task (JSON)
//	r <due i64> <task id u64>     runnable index: pending tasks by NextAttempt, leased by LeaseExpiry
//	q <task id u64>               dead tasks
//	u <updated i64> <uid u64>     uploading files by last touch (expiry)
//	o <node id> 0x00 <ref>        copies a member holds (repair, removal); ref below
//	g <content id u64>            contents with staged chunks (scrub, protection)
//	B <bucket>                    S3 bucket (JSON)
//	b <bucket>                    S3 bucket counts: objects u64, multipart uploads u64 (derived)
//	O <len u8> <bucket> <key>     S3 object binding bucket/key -> uid (JSON)
//	M <len u8> <bucket> <esc key> 0x00 0x01 <uid u64>
//	                              S3 multipart upload in progress (JSON)
//	x <uid u64>                   S3 back-reference of a uid (derived): kind ('O' bound, 'M'
//	                              multipart) | len u8 | bucket | key
//	a <key id>                    scoped API key (JSON): hash of its secret, tenant, scope
//
// S3 names are arbitrary bytes, so they are framed rather than delimited:
// a bucket name is length-prefixed (bucket "a" key "b/c" and bucket "a/b"
// key "c" never share a prefix), and an object key is the rest of an 'O'
// key, so a bucket's keys sort in byte order and a key prefix is a key
// range. In 'M' the key is followed by the upload id, so it is escaped
// (0x00 -> 0x00 0xFF) and terminated by 0x00 0x01: the encoding keeps byte
// order and no escaped key is a prefix of another's.
//
// An owner-index ref sorts in the order the FSM visits copies when a member
// is lost (uploading files by uid and chunk number, then contents by id,
// their chunks in order and then their local object copy), so repairs are
// enqueued in that order on every replica:
//
//	'A' <uid u64> <num u32>       chunk of an uploading file
//	'B' <content id u64> <i u32>  i-th staged chunk of a content (i = 0xFFFFFFFF: its local object)
const keyFormat byte = 1

const (
	tMeta      byte = 'm'
	tNode      byte = 'n'
	tFile      byte = 'f'
	tUpChunk   byte = 'k'
	tContent   byte = 'c'
	tMD5       byte = 'h' // legacy, migrated (dedup.go)
	tDedup     byte = 'H'
	tTask      byte = 't'
	tRunnable  byte = 'r'
	tDead      byte = 'q'
	tUploadAge byte = 'u'
	tOwner     byte = 'o'
	tStaged    byte = 'g'
	tBucket    byte = 'B'
	tBucketCnt byte = 'b'
	tObject    byte = 'O'
	tMultipart byte = 'M'
	tS3Ref     byte = 'x'
	tAPIKey    byte = 'a'
)

// Kinds of an S3 back-reference ('x').
const (
	refBound     byte = 'O'
	refMultipart byte = 'M'
)

// Meta singleton names.
const (
	metaApplied  = "applied"
	metaCluster  = "cluster"
	metaCounters = "counters"
	metaHash     = "hash"
)

const (
	refUpload  byte = 'A'
	refContent byte = 'B'
	// refObject is the chunk index of a content's local object copy.
	refObject uint32 = 0xFFFFFFFF
)

func tableKey(t byte, n int) []byte {
	k := make([]byte, 2, 2+n)
	k[0], k[1] = keyFormat, t
	return k
}

// tablePrefix returns the bounds of a whole table.
func tableBounds(t byte) (lo, hi []byte) {
	return []byte{keyFormat, t}, []byte{keyFormat, t + 1}
}

// prefixBounds returns [p, successor(p)).
func prefixBounds(p []byte) (lo, hi []byte) {
	hi = append([]byte(nil), p...)
	for i := len(hi) - 1; i >= 0; i-- {
		if hi[i] < 0xFF {
			hi[i]++
			return p, hi[:i+1]
		}
	}
	return p, nil
}

func metaKey(name string) []byte { return append(tableKey(tMeta, len(name)), name...) }

func nodeKey(id osprey.NodeID) []byte { return append(tableKey(tNode, len(id)), id...) }

func u64Key(t byte, v uint64) []byte { return binary.BigEndian.AppendUint64(tableKey(t, 8), v) }

func fileKey(uid osprey.UID) []byte { return u64Key(tFile, uint64(uid)) }

func upChunkKey(uid osprey.UID, num uint32) []byte {
	return binary.BigEndian.AppendUint32(u64Key(tUpChunk, uint64(uid)), num)
}

func upChunkPrefix(uid osprey.UID) []byte { return u64Key(tUpChunk, uint64(uid)) }

func contentKey(id osprey.UID) []byte { return u64Key(tContent, uint64(id)) }

func taskKey(id uint64) []byte { return u64Key(tTask, id) }

func deadKey(id uint64) []byte { return u64Key(tDead, id) }

func stagedKey(id osprey.UID) []byte { return u64Key(tStaged, uint64(id)) }

// orderedInt maps an int64 onto a uint64 that sorts the same way.
func orderedInt(v int64) uint64 { return uint64(v) ^ (1 << 63) }

func timeIDKey(t byte, at int64, id uint64) []byte {
	k := binary.BigEndian.AppendUint64(tableKey(t, 16), orderedInt(at))
	return binary.BigEndian.AppendUint64(k, id)
}

func runnableKey(due int64, id uint64) []byte { return timeIDKey(tRunnable, due, id) }

func uploadAgeKey(updated int64, uid osprey.UID) []byte {
	return timeIDKey(tUploadAge, updated, uint64(uid))
}

// decodeTimeID splits a runnable or upload-age key.
func decodeTimeID(k []byte) (at int64, id uint64) {
	return int64(binary.BigEndian.Uint64(k[2:10]) ^ (1 << 63)), binary.BigEndian.Uint64(k[10:18])
}

func ownerPrefix(node osprey.NodeID) []byte {
	k := append(tableKey(tOwner, len(node)+1+13), node...)
	return append(k, 0)
}

// ownerRef is one copy in the owner index.
type ownerRef struct {
	kind byte   // refUpload or refContent
	id   uint64 // uid or content id
	n    uint32 // chunk number, chunk index, or refObject
}

func (r ownerRef) key(node osprey.NodeID) []byte {
	k := append(ownerPrefix(node), r.kind)
	k = binary.BigEndian.AppendUint64(k, r.id)
	return binary.BigEndian.AppendUint32(k, r.n)
}

func decodeOwnerRef(k []byte, node osprey.NodeID) ownerRef {
	rest := k[len(ownerPrefix(node)):]
	return ownerRef{kind: rest[0], id: binary.BigEndian.Uint64(rest[1:9]), n: binary.BigEndian.Uint32(rest[9:13])}
}

// timeID is a position in a (time, id) index: the runnable index or the
// upload-age index.
type timeID struct {
	at int64
	id uint64
}

var (
	minTimeID = timeID{math.MinInt64, 0}
	maxTimeID = timeID{math.MaxInt64, math.MaxUint64}
)

func (a timeID) less(b timeID) bool { return a.at < b.at || a.at == b.at && a.id < b.id }

func (a timeID) min(b timeID) timeID {
	if b.less(a) {
		return b
	}
	return a
}

func (a timeID) key(table byte) []byte { return timeIDKey(table, a.at, a.id) }

func apiKeyKey(id string) []byte { return append(tableKey(tAPIKey, len(id)), id...) }

func bucketKey(name string) []byte { return append(tableKey(tBucket, len(name)), name...) }

func bucketCntKey(name string) []byte { return append(tableKey(tBucketCnt, len(name)), name...) }

// objectPrefix is the start of bucket's 'O' range; the caller checked
// that the name fits a length byte.
func objectPrefix(bucket string) []byte {
	k := append(tableKey(tObject, 1+len(bucket)), byte(len(bucket)))
	return append(k, bucket...)
}

func s3ObjectKey(bucket, key string) []byte { return append(objectPrefix(bucket), key...) }

func multipartPrefix(bucket string) []byte {
	k := append(tableKey(tMultipart, 1+len(bucket)), byte(len(bucket)))
	return append(k, bucket...)
}

// escapeKey appends key with every 0x00 escaped as 0x00 0xFF (no
// terminator): an order-preserving, prefix-preserving encoding.
func escapeKey(b []byte, key string) []byte {
	for i := 0; i < len(key); i++ {
		b = append(b, key[i])
		if key[i] == 0 {
			b = append(b, 0xFF)
		}
	}
	return b
}

// multipartKeyPrefix is the start of the uploads of bucket/key.
func multipartKeyPrefix(bucket, key string) []byte {
	return append(escapeKey(multipartPrefix(bucket), key), 0x00, 0x01)
}

func multipartKey(bucket, key string, uid osprey.UID) []byte {
	return binary.BigEndian.AppendUint64(multipartKeyPrefix(bucket, key), uint64(uid))
}

// decodeMultipartKey returns the object key and upload id of an 'M' key
// of bucket.
func decodeMultipartKey(k []byte, bucket string) (string, osprey.UID) {
	rest := k[len(multipartPrefix(bucket)) : len(k)-8]
	key := make([]byte, 0, len(rest))
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if c == 0 {
			if rest[i+1] == 0x01 { // terminator
				break
			}
			i++ // 0x00 0xFF is an escaped 0x00
		}
		key = append(key, c)
	}
	return string(key), osprey.UID(binary.BigEndian.Uint64(k[len(k)-8:]))
}

func s3RefKey(uid osprey.UID) []byte { return u64Key(tS3Ref, uint64(uid)) }

// s3Ref is the value of a back-reference: where a uid is bound, or which
// multipart upload it is.
type s3Ref struct {
	kind   byte // refBound or refMultipart
	bucket string
	key    string
}

func (r s3Ref) encode() []byte {
	b := make([]byte, 0, 2+len(r.bucket)+len(r.key))
	b = append(b, r.kind, byte(len(r.bucket)))
	b = append(b, r.bucket...)
	return append(b, r.key...)
}

func decodeS3Ref(v []byte) (s3Ref, bool) {
	if len(v) < 2 || len(v) < 2+int(v[1]) {
		return s3Ref{}, false
	}
	n := int(v[1])
	return s3Ref{kind: v[0], bucket: string(v[2 : 2+n]), key: string(v[2+n:])}, true
}
