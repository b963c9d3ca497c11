package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
)

// Key prefixes of the raft log and stable store inside a shared Pebble
// instance. The owner of the instance (chunkstore) keeps none of its keys
// under them.
const (
	prefixLog    byte = 'R'
	prefixStable byte = 'S'
)

// errStableNotFound is what raft expects from a StableStore for a key it
// never wrote: it compares the message, not the value.
var errStableNotFound = errors.New("not found")

// PebbleLog is a raft.LogStore and raft.StableStore kept in a Pebble
// instance shared with other data. A batch of entries is one synced
// write to Pebble's WAL: one sequential append and one fdatasync, which
// Pebble shares with the other synced writes committed at the same time
// (the chunk store's). Truncation is a range deletion.
type PebbleLog struct {
	db *pebble.DB

	mu          sync.Mutex // guards first/last
	first, last uint64     // 0, 0 when empty
}

var (
	_ raft.LogStore    = (*PebbleLog)(nil)
	_ raft.StableStore = (*PebbleLog)(nil)
)

// NewPebbleLog opens the log kept in db.
func NewPebbleLog(db *pebble.DB) (*PebbleLog, error) {
	l := &PebbleLog{db: db}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixLog}, UpperBound: []byte{prefixLog + 1}})
	if err != nil {
		return nil, fmt.Errorf("raftstore: open log: %w", err)
	}
	if it.First() {
		l.first = logIndex(it.Key())
		it.Last()
		l.last = logIndex(it.Key())
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, fmt.Errorf("raftstore: open log: %w", err)
	}
	return l, nil
}

// reset deletes every entry and stable value.
func (l *PebbleLog) reset() error {
	b := l.db.NewBatch()
	defer b.Close()
	for _, p := range []byte{prefixLog, prefixStable} {
		if err := b.DeleteRange([]byte{p}, []byte{p + 1}, nil); err != nil {
			return fmt.Errorf("raftstore: reset log: %w", err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("raftstore: reset log: %w", err)
	}
	l.mu.Lock()
	l.first, l.last = 0, 0
	l.mu.Unlock()
	return nil
}

func logKey(i uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixLog
	binary.BigEndian.PutUint64(k[1:], i)
	return k
}

func logIndex(k []byte) uint64 { return binary.BigEndian.Uint64(k[1:]) }

// FirstIndex returns the first index written, 0 for no entries.
func (l *PebbleLog) FirstIndex() (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first, nil
}

// LastIndex returns the last index written, 0 for no entries.
func (l *PebbleLog) LastIndex() (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last, nil
}

// GetLog gets the entry at index.
func (l *PebbleLog) GetLog(index uint64, out *raft.Log) error {
	v, closer, err := l.db.Get(logKey(index))
	if errors.Is(err, pebble.ErrNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return fmt.Errorf("raftstore: read log %d: %w", index, err)
	}
	defer closer.Close()
	if err := decodeLog(v, out); err != nil {
		return fmt.Errorf("raftstore: log %d: %w", index, err)
	}
	out.Index = index
	return nil
}

// StoreLog stores one entry.
func (l *PebbleLog) StoreLog(log *raft.Log) error { return l.StoreLogs([]*raft.Log{log}) }

// StoreLogs stores entries in one synced write.
func (l *PebbleLog) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	b := l.db.NewBatch()
	defer b.Close()
	var buf []byte
	for _, e := range logs {
		buf = encodeLog(buf[:0], e)
		if err := b.Set(logKey(e.Index), buf, nil); err != nil {
			return fmt.Errorf("raftstore: store log %d: %w", e.Index, err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("raftstore: store logs: %w", err)
	}
	l.mu.Lock()
	if l.first == 0 {
		l.first = logs[0].Index
	}
	if n := logs[len(logs)-1].Index; n > l.last {
		l.last = n
	}
	l.mu.Unlock()
	return nil
}

// DeleteRange deletes the entries from min to max, inclusive.
func (l *PebbleLog) DeleteRange(min, max uint64) error {
	if err := l.db.DeleteRange(logKey(min), logKey(max+1), pebble.Sync); err != nil {
		return fmt.Errorf("raftstore: delete logs %d-%d: %w", min, max, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case min <= l.first && max >= l.last:
		l.first, l.last = 0, 0
	case min <= l.first:
		l.first = max + 1
	case max >= l.last:
		l.last = min - 1
	}
	return nil
}

func stableKey(k []byte) []byte { return append([]byte{prefixStable}, k...) }

// Set stores a stable value, synced.
func (l *PebbleLog) Set(k, v []byte) error {
	if err := l.db.Set(stableKey(k), v, pebble.Sync); err != nil {
		return fmt.Errorf("raftstore: store %q: %w", k, err)
	}
	return nil
}

// Get returns a stable value, or an error "not found".
func (l *PebbleLog) Get(k []byte) ([]byte, error) {
	v, closer, err := l.db.Get(stableKey(k))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, errStableNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("raftstore: read %q: %w", k, err)
	}
	defer closer.Close()
	return append([]byte(nil), v...), nil
}

// SetUint64 stores a stable integer.
func (l *PebbleLog) SetUint64(k []byte, v uint64) error {
	return l.Set(k, binary.BigEndian.AppendUint64(nil, v))
}

// GetUint64 returns a stable integer, or an error "not found".
func (l *PebbleLog) GetUint64(k []byte) (uint64, error) {
	v, err := l.Get(k)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("raftstore: stable value %q is %d bytes, not 8", k, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// logFormat is the first byte of an encoded entry.
const logFormat = 1

// encodeLog appends e (without its index, which is the key) to buf.
func encodeLog(buf []byte, e *raft.Log) []byte {
	buf = append(buf, logFormat, byte(e.Type))
	buf = binary.AppendUvarint(buf, e.Term)
	var at int64
	if !e.AppendedAt.IsZero() {
		at = e.AppendedAt.UnixNano()
	}
	buf = binary.AppendVarint(buf, at)
	buf = binary.AppendUvarint(buf, uint64(len(e.Data)))
	buf = append(buf, e.Data...)
	buf = binary.AppendUvarint(buf, uint64(len(e.Extensions)))
	return append(buf, e.Extensions...)
}

var errLogCorrupt = errors.New("corrupt log entry")

// decodeLog decodes an entry written by encodeLog; Data and Extensions
// are copies.
func decodeLog(v []byte, e *raft.Log) error {
	if len(v) < 2 || v[0] != logFormat {
		return errLogCorrupt
	}
	e.Type = raft.LogType(v[1])
	v = v[2:]
	term, n := binary.Uvarint(v)
	if n <= 0 {
		return errLogCorrupt
	}
	e.Term, v = term, v[n:]
	at, n := binary.Varint(v)
	if n <= 0 {
		return errLogCorrupt
	}
	v = v[n:]
	e.AppendedAt = time.Time{}
	if at != 0 {
		e.AppendedAt = time.Unix(0, at)
	}
	var err error
	if e.Data, v, err = decodeBytes(v); err != nil {
		return err
	}
	if e.Extensions, v, err = decodeBytes(v); err != nil {
		return err
	}
	if len(v) != 0 {
		return errLogCorrupt
	}
	return nil
}

func decodeBytes(v []byte) ([]byte, []byte, error) {
	l, n := binary.Uvarint(v)
	if n <= 0 || uint64(len(v)-n) < l {
		return nil, nil, errLogCorrupt
	}
	v = v[n:]
	if l == 0 {
		return nil, v, nil
	}
	return append([]byte(nil), v[:l]...), v[l:], nil
}
