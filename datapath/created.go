package datapath

import (
	"sync"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/fsm"
)

// created remembers the files this node recorded through raft moments ago,
// as the leader acknowledged them, for the upload that usually follows on
// the same node. On a follower the acknowledgement arrives before the
// follower's own FSM applies the entry (it learns the commit with the next
// append, up to raft's commit timeout later), so without this the upload
// missed the record and waited for a read barrier: a read-index round trip
// to the leader and then that apply, 8 ms of a 12.5 ms follower upload on
// this machine. The single upload looks here first even when the local
// FSM has the record: the upload of a file linked moments ago then reads
// no metadata before staging (a Pebble read and a JSON decode, 5% of a
// node's CPU under 4 KiB uploads).
//
// Only the write paths (Upload, uploadChunk) consult it: what they decide
// from the record (the file exists and is uploading) is checked again by
// the leader when their own command applies (FileComplete, ChunkPut refuse
// an unknown, deleted or completed uid, or another content), so a record
// that changed since is refused there, never acted on. Reads (Stat,
// downloads, listings) never see it.
type created struct {
	mu    sync.Mutex
	ttl   time.Duration
	max   int
	files map[osprey.UID]createdFile
	order []osprey.UID // insertion order, for eviction past max
	now   func() time.Time
}

type createdFile struct {
	f  fsm.File
	at time.Time
}

// Entries live createdTTL (the follower's FSM has applied them long before,
// unless it is far behind, when the read barrier is the right path) and at
// most createdMax are kept.
const (
	createdTTL = 5 * time.Second
	createdMax = 16384
)

func newCreated() *created {
	return &created{ttl: createdTTL, max: createdMax, files: map[osprey.UID]createdFile{}, now: time.Now}
}

// add remembers files the leader acknowledged.
func (c *created) add(files []fsm.File) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for _, f := range files {
		if _, ok := c.files[f.UID]; !ok {
			c.order = append(c.order, f.UID)
		}
		c.files[f.UID] = createdFile{f: f, at: now}
	}
	// Drop the oldest past max, and expired ones from the front.
	drop := 0
	for drop < len(c.order) {
		e, ok := c.files[c.order[drop]]
		if ok && len(c.order)-drop <= c.max && now.Sub(e.at) < c.ttl {
			break
		}
		delete(c.files, c.order[drop])
		drop++
	}
	if drop > 0 {
		c.order = append(c.order[:0], c.order[drop:]...)
	}
}

// get returns uid's record if it was added less than ttl ago.
func (c *created) get(uid osprey.UID) (fsm.File, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.files[uid]
	if !ok || c.now().Sub(e.at) >= c.ttl {
		return fsm.File{}, false
	}
	return e.f, true
}
