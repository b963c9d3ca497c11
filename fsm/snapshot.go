package fsm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
	"github.com/klauspost/compress/zstd"

	"github.com/osprey-storage/osprey"
)

// Snapshot format (integers big endian):
//
//	v1: magic[8] | version u32 = 1 | JSON state
//	v2: magic[8] | version u32 = 2 | applied index u64 | JSON state
//	v3: magic[8] | version u32 = 3 | applied index u64 | zstd(body)
//	    body   = record* | end
//	    record = uvarint len(key) > 0 | key | uvarint len(value) | value
//	    end    = uvarint 0 | records u64 | xxhash64 of every byte before records u64
//
// v3 is every key of the metadata store in key order (the keys' own format
// byte says how to read them), streamed from a Pebble point-in-time
// snapshot. v1 and v2 (the whole state as one JSON document, from builds
// that kept the state in memory) are still restored: they are converted
// into the key layout, which is how an upgraded node takes over the
// snapshots an older build wrote. A version's meaning never changes.
var snapshotMagic = [8]byte{'O', 'S', 'P', 'R', 'S', 'N', 'A', 'P'}

// SnapshotVersion is the snapshot format version written by this build.
const SnapshotVersion uint32 = 3

// ErrBadSnapshot is returned by Restore for a stream that is not a complete
// snapshot of a known format (bad magic, unknown version, truncated, or a
// checksum mismatch).
var ErrBadSnapshot = errors.New("fsm: bad snapshot")

// Snapshot captures a point-in-time view of the store and returns at once;
// Persist streams it while Apply goes on. The WAL is synced first, so the
// store on disk is at or past every snapshot raft records: a restart can
// then start from the store without restoring the snapshot.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return nil, ErrClosed
	}
	if err := f.h.db.LogData(nil, pebble.Sync); err != nil {
		return nil, fmt.Errorf("fsm: sync before snapshot: %w", err)
	}
	f.h.refs.Add(1)
	return &snapshot{h: f.h, snap: f.h.db.NewSnapshot(), applied: f.applied, rate: f.cfg.SnapshotRate}, nil
}

type snapshot struct {
	h       *handle
	snap    *pebble.Snapshot
	applied uint64
	rate    int64 // record bytes per second, 0 = unpaced
}

// pacer sleeps as needed to keep a stream at rate bytes per second.
type pacer struct {
	rate  int64
	start time.Time
	done  int64
	next  int64 // bytes at which to check again
}

func (p *pacer) add(n int) {
	if p.rate <= 0 {
		return
	}
	p.done += int64(n)
	if p.done < p.next {
		return
	}
	p.next = p.done + 256<<10
	due := p.start.Add(time.Duration(float64(p.done) / float64(p.rate) * float64(time.Second)))
	if d := time.Until(due); d > 0 {
		time.Sleep(d) // pacing a background stream, not synchronisation
	}
}

// Persist writes the snapshot to sink, calling sink.Cancel on error.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.writeTo(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("fsm: persist snapshot: %w", err)
	}
	return sink.Close()
}

// WriteTo streams the snapshot to w (for backups).
func (s *snapshot) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	err := s.writeTo(cw)
	return cw.n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (s *snapshot) writeTo(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	var hdr [20]byte
	copy(hdr[:], snapshotMagic[:])
	binary.BigEndian.PutUint32(hdr[8:], SnapshotVersion)
	binary.BigEndian.PutUint64(hdr[12:], s.applied)
	if _, err := bw.Write(hdr[:]); err != nil {
		return err
	}
	zw, err := zstd.NewWriter(bw, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithWindowSize(1<<20))
	if err != nil {
		return err
	}
	body := bufio.NewWriterSize(zw, 64<<10)
	sum := xxhash.New()
	var records uint64
	var klen, vlen [binary.MaxVarintLen64]byte
	pace := &pacer{rate: s.rate, start: time.Now()}
	put := func(b []byte) error {
		_, _ = sum.Write(b)
		_, err := body.Write(b)
		pace.add(len(b))
		return err
	}
	err = iterate(s.snap, []byte{keyFormat}, []byte{keyFormat + 1}, func(k, v []byte) (bool, error) {
		records++
		for _, p := range [][]byte{klen[:binary.PutUvarint(klen[:], uint64(len(k)))], k,
			vlen[:binary.PutUvarint(vlen[:], uint64(len(v)))], v} {
			if err := put(p); err != nil {
				return false, err
			}
		}
		return true, nil
	})
	if err != nil {
		_ = zw.Close()
		return err
	}
	if err := put([]byte{0}); err != nil {
		_ = zw.Close()
		return err
	}
	var end [16]byte
	binary.BigEndian.PutUint64(end[0:], records)
	binary.BigEndian.PutUint64(end[8:], sum.Sum64())
	if _, err := body.Write(end[:]); err != nil {
		_ = zw.Close()
		return err
	}
	if err := body.Flush(); err != nil {
		_ = zw.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// Release frees the point-in-time view.
func (s *snapshot) Release() {
	if s.snap != nil {
		_ = s.snap.Close()
		s.snap = nil
		s.h.refs.Done()
	}
}

// Backup streams a consistent point-in-time copy of the metadata to w in
// the snapshot format (v3: checksummed, with the applied index it
// reflects). started, if set, is called with that index before the first
// byte is written.
func (f *FSM) Backup(w io.Writer, started func(index uint64)) error {
	snap, err := f.Snapshot()
	if err != nil {
		return err
	}
	s := snap.(*snapshot)
	defer s.Release()
	if started != nil {
		started(s.applied)
	}
	if _, err := s.WriteTo(w); err != nil {
		return fmt.Errorf("fsm: backup: %w", err)
	}
	return nil
}

// SnapshotInfo describes a verified snapshot or backup stream.
type SnapshotInfo struct {
	Version   uint32
	Index     uint64 // applied index the state reflects
	Files     int64  // files the state holds
	Bytes     int64  // stream length
	ClusterID string // the cluster the state belongs to
}

// VerifySnapshot reads a whole v3 snapshot or backup stream and checks
// its structure, record count, checksum and state hash without storing
// anything. It returns ErrBadSnapshot for a stream that would not restore.
func VerifySnapshot(r io.Reader) (SnapshotInfo, error) {
	cr := &countReader{r: r}
	br := bufio.NewReaderSize(cr, 256<<10)
	var hdr [20]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil || [8]byte(hdr[:8]) != snapshotMagic {
		return SnapshotInfo{}, fmt.Errorf("%w: missing magic", ErrBadSnapshot)
	}
	info := SnapshotInfo{Version: binary.BigEndian.Uint32(hdr[8:]), Index: binary.BigEndian.Uint64(hdr[12:])}
	if info.Version != 3 {
		return info, fmt.Errorf("%w: version %d, a backup is version 3", ErrBadSnapshot, info.Version)
	}
	err := readV3(br, func(k, v []byte) error {
		if bytes.Equal(k, metaKey(metaCluster)) {
			var m clusterMeta
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("%w: cluster record: %w", ErrBadSnapshot, err)
			}
			info.ClusterID = m.ClusterID
		}
		if bytes.Equal(k, metaKey(metaCounters)) {
			var c counters
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("%w: counters: %w", ErrBadSnapshot, err)
			}
			info.Files = c.Files
		}
		return nil
	})
	info.Bytes = cr.n
	return info, err
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Restore replaces the whole state with the snapshot's. The snapshot is
// loaded into a fresh generation of the store, which replaces the current
// one atomically (CURRENT is rewritten) only once it loaded completely and
// its checksums matched; a failed restore leaves the old state as it was.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	f.mu.RLock()
	closed, gen, prev := f.closed, f.gen, f.applied
	f.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	next := gen + 1
	_ = f.fs.RemoveAll(f.genDir(next))
	h, err := f.openGen(next)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		_ = h.db.Close()
		_ = f.fs.RemoveAll(h.dir)
		return err
	}
	if err := loadSnapshot(h.db, bufio.NewReaderSize(rc, 256<<10), prev); err != nil {
		return fail(err)
	}
	// Make the new generation durable before CURRENT names it.
	if err := h.db.Flush(); err != nil {
		return fail(fmt.Errorf("fsm: flush restored state: %w", err))
	}
	if err := f.writeCurrent(next); err != nil {
		return fail(err)
	}
	f.mu.RLock()
	old := f.h
	f.mu.RUnlock()
	if err := f.install(h, next); err != nil {
		// CURRENT already names the new generation; it is complete on
		// disk, so the next open takes it. Keep serving the old one.
		_ = h.db.Close()
		return err
	}
	old.refs.Wait()
	if err := old.db.Close(); err != nil {
		f.log.Warn("close replaced metadata generation", "err", err)
	}
	if err := f.fs.RemoveAll(old.dir); err != nil {
		f.log.Warn("remove replaced metadata generation", "dir", old.dir, "err", err)
	}
	// A snapshot or backup written by an earlier build holds the md5-only
	// index.
	return f.migrateDedupIndex()
}

// loadSnapshot writes a snapshot stream of any known version into an empty
// store. A v1 snapshot records no index: the state then keeps prev, the
// index the replaced state had, until the next Apply.
func loadSnapshot(db *pebble.DB, r *bufio.Reader, prev uint64) error {
	var magic [8]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil || magic != snapshotMagic {
		return fmt.Errorf("%w: missing magic", ErrBadSnapshot)
	}
	var v uint32
	if err := binary.Read(r, binary.BigEndian, &v); err != nil {
		return fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	var applied uint64
	hasIndex := false
	switch v {
	case 1:
	case 2, 3:
		if err := binary.Read(r, binary.BigEndian, &applied); err != nil {
			return fmt.Errorf("%w: %w", ErrBadSnapshot, err)
		}
		hasIndex = true
	default:
		return fmt.Errorf("%w: unknown version %d", ErrBadSnapshot, v)
	}
	if v == 3 {
		return loadV3(db, r, applied)
	}
	s := newState()
	if err := json.NewDecoder(r).Decode(s); err != nil {
		return fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	if !hasIndex {
		applied = prev
	}
	return loadLegacy(db, s, applied)
}

// loadV3 copies a v3 body into db; nothing counts as restored unless the
// whole stream verified (readV3).
func loadV3(db *pebble.DB, r io.Reader, applied uint64) error {
	b := db.NewBatch()
	err := readV3(r, func(k, v []byte) error {
		if err := b.Set(k, v, nil); err != nil {
			return fmt.Errorf("fsm: restore: %w", err)
		}
		if b.Len() > 4<<20 {
			if err := b.Commit(pebble.NoSync); err != nil {
				return fmt.Errorf("fsm: restore: %w", err)
			}
			_ = b.Close()
			b = db.NewBatch()
		}
		return nil
	})
	if err != nil {
		_ = b.Close()
		return err
	}
	if err := b.Set(metaKey(metaApplied), binary.BigEndian.AppendUint64(nil, applied), nil); err != nil {
		_ = b.Close()
		return fmt.Errorf("fsm: restore: %w", err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		_ = b.Close()
		return fmt.Errorf("fsm: restore: %w", err)
	}
	return b.Close()
}

// readV3 decodes a v3 body, calling fn for every record in order, and
// verifies the key order, the record count, the checksum and that the
// state hash it carries matches the records.
func readV3(r io.Reader, fn func(k, v []byte) error) error {
	zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(8<<20))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	defer zr.Close()
	br := bufio.NewReaderSize(zr, 64<<10)
	sum := xxhash.New()
	var records uint64
	var hash stateHash
	var wantHash []byte
	var lastKey []byte
	for {
		kl, err := readUvarint(br, sum)
		if err != nil {
			return fmt.Errorf("%w: truncated: %w", ErrBadSnapshot, err)
		}
		if kl == 0 {
			break
		}
		if kl > 1<<20 {
			return fmt.Errorf("%w: key of %d bytes", ErrBadSnapshot, kl)
		}
		k, err := readN(br, sum, kl)
		if err != nil {
			return fmt.Errorf("%w: truncated: %w", ErrBadSnapshot, err)
		}
		vl, err := readUvarint(br, sum)
		if err != nil || vl > 64<<20 {
			return fmt.Errorf("%w: bad value length: %v", ErrBadSnapshot, err)
		}
		val, err := readN(br, sum, vl)
		if err != nil {
			return fmt.Errorf("%w: truncated: %w", ErrBadSnapshot, err)
		}
		if len(k) < 2 || k[0] != keyFormat || (lastKey != nil && bytes.Compare(k, lastKey) <= 0) {
			return fmt.Errorf("%w: key %x out of order or of an unknown format", ErrBadSnapshot, k)
		}
		lastKey = k
		records++
		if hashed(k) {
			hash.add(k, val)
		} else if bytes.Equal(k, metaKey(metaHash)) {
			wantHash = val
		}
		if err := fn(k, val); err != nil {
			return err
		}
	}
	var end [16]byte
	if _, err := io.ReadFull(br, end[:]); err != nil {
		return fmt.Errorf("%w: truncated trailer: %w", ErrBadSnapshot, err)
	}
	if n := binary.BigEndian.Uint64(end[:8]); n != records {
		return fmt.Errorf("%w: %d records, trailer says %d", ErrBadSnapshot, records, n)
	}
	if got, want := sum.Sum64(), binary.BigEndian.Uint64(end[8:]); got != want {
		return fmt.Errorf("%w: checksum %016x, want %016x", ErrBadSnapshot, got, want)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: data after the trailer", ErrBadSnapshot)
	}
	if wantHash != nil {
		var hb [32]byte
		for i, v := range hash {
			binary.BigEndian.PutUint64(hb[i*8:], v)
		}
		if !bytes.Equal(hb[:], wantHash) {
			return fmt.Errorf("%w: state hash does not match the records", ErrBadSnapshot)
		}
	}
	return nil
}

func readUvarint(r *bufio.Reader, sum hash.Hash64) (uint64, error) {
	var buf [binary.MaxVarintLen64]byte
	for i := range buf {
		c, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		buf[i] = c
		if c < 0x80 {
			_, _ = sum.Write(buf[:i+1])
			v, n := binary.Uvarint(buf[:i+1])
			if n <= 0 {
				return 0, errors.New("bad varint")
			}
			return v, nil
		}
	}
	return 0, errors.New("varint too long")
}

func readN(r io.Reader, sum hash.Hash64, n uint64) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	_, _ = sum.Write(b)
	return b, nil
}

// loadLegacy converts a v1/v2 JSON state into the key layout, through the
// same typed writers Apply uses, so every index is built. Tasks keep their
// ids and order.
func loadLegacy(db *pebble.DB, s *state, applied uint64) error {
	t := &tx{b: db.NewIndexedBatch(), cnt: counters{}.clone(), minRunnable: maxTimeID, minUpload: maxTimeID}
	t.r = t.b
	t.meta = clusterMeta{ClusterID: s.ClusterID, Secret: s.Secret, JoinTokenHash: s.JoinTokenHash,
		CreatedAt: s.CreatedAt, NextWorkerID: s.NextWorkerID, NextTaskID: s.NextTaskID, Settings: s.Settings}
	t.setMeta()
	for _, id := range sortedKeys(s.Nodes) {
		t.putNode(s.Nodes[id])
	}
	for _, uid := range sortedKeys(s.Files) {
		f := s.Files[uid]
		for _, n := range sortedChunkNums(f.Chunks) {
			t.putUpChunk(uid, f.Chunks[n])
		}
		t.putFile(f)
	}
	for _, id := range sortedKeys(s.Contents) {
		t.putContent(s.Contents[id])
	}
	// The v1/v2 md5 index predates tenants and SHA-256: its contents are
	// indexed like migrated ones (migrateDedupIndex).
	for _, md5 := range sortedKeys(s.MD5Index) {
		if ct, ok := t.content(s.MD5Index[md5]); ok && ct.MD5 == md5 && ct.State != ContentFailed && ct.State != ContentLost {
			t.indexContent(ct)
		}
	}
	for _, id := range sortedKeys(s.Tasks) {
		t.putTask(s.Tasks[id])
	}
	t.seal(applied)
	if err := t.b.Commit(pebble.NoSync); err != nil {
		_ = t.b.Close()
		return fmt.Errorf("fsm: restore: %w", err)
	}
	return t.b.Close()
}

func sortedKeys[K osprey.NodeID | osprey.UID | string | uint64, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
