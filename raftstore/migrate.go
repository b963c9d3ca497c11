package raftstore

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// boltFile is the log and stable store of earlier builds (raft-boltdb/v2); migratedSuffix is appended to it once its contents
// live in the PebbleLog.
const (
	boltFile       = "raft.db"
	migratedSuffix = ".migrated"
)

// keyMigrated, in the stable store, records that raft.db was copied in
// full (its value is the last index copied). raft's own stable keys are
// below: the only ones it writes.
var (
	keyMigrated = []byte("osprey:migrated-raft.db")
	raftStable  = [][]byte{[]byte("CurrentTerm"), []byte("LastVoteTerm"), []byte("LastVoteCand")}
)

// migrateBatch bounds one synced write of the copy.
const migrateBatch = 512

// migrateBolt moves the log and stable store of dir's raft.db, if there
// is one, into l, then renames raft.db to raft.db.migrated. The copy is
// committed before the rename and marked complete by keyMigrated in its
// last write: a crash during the copy leaves raft.db in place and the
// next start copies it again from the beginning.
func migrateBolt(dir string, l *PebbleLog, lg *slog.Logger) error {
	path := filepath.Join(dir, boltFile)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("raftstore: %w", err)
	}
	if _, err := l.Get(keyMigrated); err == nil {
		return retireBolt(dir, path)
	}
	if err := l.reset(); err != nil {
		return err
	}
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: path,
		BoltOptions: &bbolt.Options{ReadOnly: true, Timeout: time.Second}})
	if err != nil {
		return fmt.Errorf("raftstore: open %s to migrate it: %w", path, err)
	}
	n, first, last, err := copyBolt(bolt, l)
	if err = errors.Join(err, bolt.Close()); err != nil {
		return fmt.Errorf("raftstore: migrate %s: %w", path, err)
	}
	lg.Info("moved the raft log out of raft.db", "entries", n, "first", first, "last", last,
		"kept_as", boltFile+migratedSuffix)
	return retireBolt(dir, path)
}

// copyBolt copies every entry and raft's stable keys, then sets
// keyMigrated.
func copyBolt(bolt *raftboltdb.BoltStore, l *PebbleLog) (n int, first, last uint64, err error) {
	if first, err = bolt.FirstIndex(); err != nil {
		return 0, 0, 0, err
	}
	if last, err = bolt.LastIndex(); err != nil {
		return 0, 0, 0, err
	}
	var batch []*raft.Log
	for i := first; first > 0 && i <= last; i++ {
		e := new(raft.Log)
		if err := bolt.GetLog(i, e); err != nil {
			return n, first, last, fmt.Errorf("entry %d of %d-%d: %w", i, first, last, err)
		}
		if batch = append(batch, e); len(batch) == migrateBatch || i == last {
			if err := l.StoreLogs(batch); err != nil {
				return n, first, last, err
			}
			n += len(batch)
			batch = batch[:0]
		}
	}
	b := l.db.NewBatch()
	defer b.Close()
	for _, k := range raftStable {
		v, err := bolt.Get(k)
		if err != nil && err.Error() == errStableNotFound.Error() {
			continue
		}
		if err != nil {
			return n, first, last, err
		}
		if err := b.Set(stableKey(k), v, nil); err != nil {
			return n, first, last, err
		}
	}
	if err := b.Set(stableKey(keyMigrated), strconv.AppendUint(nil, last, 10), nil); err != nil {
		return n, first, last, err
	}
	return n, first, last, b.Commit(pebble.Sync)
}

// retireBolt renames raft.db once its contents are in the PebbleLog. It is
// kept, not deleted, for inspection; nothing reads it again.
func retireBolt(dir, path string) error {
	if err := os.Rename(path, path+migratedSuffix); err != nil {
		return fmt.Errorf("raftstore: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("raftstore: %w", err)
	}
	if err := errors.Join(d.Sync(), d.Close()); err != nil {
		return fmt.Errorf("raftstore: sync %s: %w", dir, err)
	}
	return nil
}
