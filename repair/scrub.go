package repair

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/bits-and-blooms/bloom/v3"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/backend"
	"github.com/osprey-storage/osprey/chunkstore"
	"github.com/osprey-storage/osprey/erasure"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
)

// Run walks this node's staged chunks at cfg.ScrubRate bytes per
// second, verifies every block checksum and compares each copy with the
// checksum its record holds, and rewrites bad copies from healthy ones.
//
// With Objects (the local-disk backend), a second walk at the same rate
// does the same for this node's object copies, in its own passes: the
// objects are most of a node's bytes, and their walk must not delay the
// staged copies' checks and orphan collection.
func (s *Scrubber) Run(ctx context.Context) {
	if s.cfg.Rate <= 0 {
		return
	}
	var wg sync.WaitGroup
	if s.cfg.Objects != nil {
		wg.Add(2)
		go func() {
			defer wg.Done()
			s.loop(ctx, "object scrub pass failed", s.objectPass)
		}()
		go func() {
			defer wg.Done()
			s.checkReported(ctx)
		}()
	}
	s.loop(ctx, "scrub pass failed", s.pass)
	wg.Wait()
}

// loop runs pass, then waits Pause, until ctx ends.
func (s *Scrubber) loop(ctx context.Context, failed string, pass func(context.Context) error) {
	for {
		if err := pass(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn(failed, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.Pause):
		}
	}
}

// pacer keeps a walk at Rate bytes per second, so scrubbing never
// competes with uploads.
type pacer struct {
	rate  int64
	start time.Time
	done  int64
}

// wait accounts n more bytes and sleeps until the walk is back at rate.
func (p *pacer) wait(ctx context.Context, n int64) error {
	p.done += n
	if ahead := time.Duration(float64(p.done)/float64(p.rate)*float64(time.Second)) - time.Since(p.start); ahead > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(ahead):
		}
	}
	return nil
}

// objectPass checks this node's local object copies (see checkObject)
// and then, when collecting, looks for orphaned object files.
func (s *Scrubber) objectPass(ctx context.Context) error {
	if err := s.barrier(ctx); err != nil {
		return err
	}
	pace := &pacer{rate: s.cfg.Rate, start: time.Now()}
	if err := s.eachHeldObject(ctx, osprey.NodeID(s.cfg.ID), func(h fsm.Held) error {
		return pace.wait(ctx, s.checkObject(ctx, h))
	}); err != nil {
		return err
	}
	s.passes.Inc()
	if s.cfg.OrphanGrace > 0 && s.cfg.ObjectOrphans {
		return s.objectOrphans(ctx)
	}
	return nil
}

// pass verifies this node's copies by the records (its owner index, a
// page at a time: memory does not grow with the records), heals bad
// ones, and then looks for orphans among the copies it stores.
func (s *Scrubber) pass(ctx context.Context) error {
	// Walk records no older than the leader's commit index: a node that
	// just joined or restarted is still catching up, and its stale
	// records would name it the holder of copies long moved away.
	if err := s.barrier(ctx); err != nil {
		return err
	}
	me := osprey.NodeID(s.cfg.ID)
	collecting := s.cfg.OrphanGrace > 0
	// held holds this node's copies by the records, when collecting: a
	// Bloom filter (about 1.2 bytes a copy), salted afresh every pass. A
	// false positive only hides an orphan for a pass; deletion checks the
	// owner index exactly (collect).
	var held *bloom.BloomFilter
	var salt [8]byte
	heldKeys := 0
	if collecting {
		held = bloom.NewWithEstimates(uint(s.heldEstimate()), 0.01)
		_, _ = rand.Read(salt[:])
	}
	buf := make([]byte, 0, 32)
	pace := &pacer{rate: s.cfg.Rate, start: time.Now()}
	err := s.eachHeld(ctx, me, func(h fsm.Held, k chunkstore.Key) error {
		rec := h.Chunk
		if collecting {
			buf = saltedKey(buf[:0], salt, k)
			held.Add(buf)
			heldKeys++
		}
		info, err := s.cfg.Chunks.Verify(ctx, k)
		switch {
		case errors.Is(err, chunkstore.ErrNotFound):
			s.healMissing(ctx, h, k)
			return nil
		case err != nil && !errors.Is(err, chunkstore.ErrCorrupt):
			return err
		}
		s.bytes.Add(float64(info.Size))
		if err == nil && info.Sum == wantSum(rec, k) {
			// healthy
		} else {
			if err == nil {
				err = fmt.Errorf("checksum %x differs from the record's %x", info.Sum, wantSum(rec, k))
			}
			s.corrupt.Inc()
			s.log.Warn("scrub found a bad copy", "blob", k.UID, "num", k.Chunk, "shard", k.Shard, "err", err)
			if herr := s.healCopy(ctx, rec, k); herr != nil {
				s.log.Error("scrub could not repair a copy", "blob", k.UID, "num", k.Chunk, "shard", k.Shard, "err", herr)
			} else {
				s.repaired.Inc()
				s.log.Info("scrub repaired a copy", "blob", k.UID, "num", k.Chunk, "shard", k.Shard)
			}
		}
		return pace.wait(ctx, info.Size)
	})
	if err != nil {
		return err
	}
	s.passes.Inc()
	if !collecting {
		return nil
	}
	s.lastHeld = heldKeys
	// Every copy stored here that the records (as read above, after the
	// copy was listed) do not name this node the holder of is a suspect.
	seen := map[chunkstore.Key]bool{}
	err = s.cfg.Chunks.Scan(ctx, func(k chunkstore.Key, info chunkstore.Info) error {
		buf = saltedKey(buf[:0], salt, k)
		if !held.Test(buf) {
			s.suspect(ctx, k, info.Size, seen)
		}
		return ctx.Err()
	})
	if err != nil {
		return err
	}
	return s.collect(ctx, seen)
}

// heldEstimate sizes a pass's filter of held copies from the last pass's
// count (a quarter more, at least 2^16, at most 2^26: past that the false
// positive rate rises, which only slows orphan collection).
func (s *Scrubber) heldEstimate() int {
	return min(max(s.lastHeld+s.lastHeld/4, 1<<16), 1<<26)
}

// saltedKey appends salt and k's fields to b.
func saltedKey(b []byte, salt [8]byte, k chunkstore.Key) []byte {
	b = append(b, salt[:]...)
	b = binary.BigEndian.AppendUint64(b, k.UID)
	b = binary.BigEndian.AppendUint32(b, k.Chunk)
	return binary.BigEndian.AppendUint16(b, k.Shard)
}

// healMissing rewrites a copy the records name this node the holder of
// but that its store does not have (lost outside osprey, or by a fault),
// from the other holders, if the record, read again after a read barrier,
// still names this node: the copy may just have been moved or released
// away, or its file deleted, by entries this node had not applied yet (a
// chaos run counted a copy of a file deleted 3 s before as missing, and
// its restore failed for want of another copy).
func (s *Scrubber) healMissing(ctx context.Context, h fsm.Held, k chunkstore.Key) {
	if err := s.barrier(ctx); err != nil {
		s.log.Debug("scrub: missing copy not checked", "blob", k.UID, "num", k.Chunk, "shard", k.Shard, "err", err)
		return // looked at again next pass
	}
	rec, ok := s.cfg.State.ChunkRecord(h.File, h.Content, k.UID)
	if !ok || !holds(rec, k, osprey.NodeID(s.cfg.ID)) {
		return
	}
	s.missing.Inc()
	s.log.Warn("scrub found a missing copy", "blob", k.UID, "num", k.Chunk, "shard", k.Shard)
	if err := s.healCopy(ctx, rec, k); err != nil {
		s.log.Error("scrub could not restore a copy", "blob", k.UID, "num", k.Chunk, "shard", k.Shard, "err", err)
		return
	}
	s.repaired.Inc()
	s.log.Info("scrub restored a missing copy", "blob", k.UID, "num", k.Chunk, "shard", k.Shard)
}

// barrier brings this node's records up to the leader's commit index
// (nothing to do without a Barrier).
func (s *Scrubber) barrier(ctx context.Context) error {
	if s.cfg.Barrier == nil {
		return nil
	}
	bctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.cfg.Barrier(bctx); err != nil {
		return fmt.Errorf("read barrier: %w", err)
	}
	return nil
}

// holds reports whether rec names me the holder of the copy under k.
func holds(rec fsm.Chunk, k chunkstore.Key, me osprey.NodeID) bool {
	if k.Shard == 0 {
		return rec.EC == nil && hasNode(rec.Owners, me)
	}
	return rec.EC != nil && int(k.Shard) <= len(rec.EC.Shards) && rec.EC.Shards[k.Shard-1].Owner == me
}

// eachHeld calls fn for every copy the records name me the holder of:
// a replica, or each shard of a coded chunk that I own.
func (s *Scrubber) eachHeld(ctx context.Context, me osprey.NodeID, fn func(h fsm.Held, k chunkstore.Key) error) error {
	return s.walkHeld(ctx, me, func(h fsm.Held) error {
		if h.Object {
			return nil
		}
		rec := h.Chunk
		if rec.EC == nil {
			return fn(h, chunkstore.Key{UID: rec.Blob, Chunk: rec.Num})
		}
		for i, sh := range rec.EC.Shards {
			if sh.Owner == me {
				if err := fn(h, chunkstore.Key{UID: rec.Blob, Chunk: rec.Num, Shard: uint16(i + 1)}); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// eachHeldObject calls fn for every local-backend object copy the records
// name me the holder of.
func (s *Scrubber) eachHeldObject(ctx context.Context, me osprey.NodeID, fn func(h fsm.Held) error) error {
	return s.walkHeld(ctx, me, func(h fsm.Held) error {
		if !h.Object {
			return nil
		}
		return fn(h)
	})
}

// walkHeld calls fn for every entry of my owner index, a page at a time.
func (s *Scrubber) walkHeld(ctx context.Context, me osprey.NodeID, fn func(h fsm.Held) error) error {
	var cursor []byte
	for {
		page, next := s.cfg.State.HeldBy(me, cursor, 512)
		for _, h := range page {
			if err := fn(h); err != nil {
				return err
			}
		}
		if next == nil {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		cursor = next
	}
}

// maxReports bounds the reported contents waiting to be checked; past
// it, reports are dropped (the passes find those copies in time).
const maxReports = 256

// CheckObject asks for this node's copy of the tiered content id to be
// checked and, if bad, rewritten from another holder now rather than when
// the passes reach it: a download found it failing its checksum
// (datapath.Config.BadObjectCopy). It never blocks; a content already
// waiting is not queued twice. Without Objects (a shared backend, or
// scrubbing off) it does nothing.
func (s *Scrubber) CheckObject(id osprey.UID) {
	if s.cfg.Objects == nil || s.cfg.Rate <= 0 {
		return
	}
	s.reportMu.Lock()
	defer s.reportMu.Unlock()
	if s.reported[id] {
		return
	}
	select {
	case s.reports <- id:
		s.reported[id] = true
	default:
	}
}

// checkReported checks the copies CheckObject queued, one at a time,
// until ctx ends.
func (s *Scrubber) checkReported(ctx context.Context) {
	me := osprey.NodeID(s.cfg.ID)
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-s.reports:
			s.reportMu.Lock()
			delete(s.reported, id)
			s.reportMu.Unlock()
			ct, ok := s.cfg.State.Content(id)
			if !ok || ct.Location == nil || !hasNode(ct.Location.Nodes, me) {
				continue
			}
			s.checkObject(ctx, fsm.Held{Content: ct.ID, Object: true, Location: *ct.Location, Size: ct.Size, MD5: ct.MD5})
		}
	}
}

// checkObject reads this node's copy of a tiered object whole and checks
// its size and md5 against the content's record; a bad or missing copy is
// rewritten from another holder. It returns the bytes read.
func (s *Scrubber) checkObject(ctx context.Context, h fsm.Held) int64 {
	loc := h.Location
	rc, err := s.cfg.Objects.Get(ctx, loc.Bucket, loc.Key, 0, -1)
	if errors.Is(err, backend.ErrNotFound) {
		s.healObject(ctx, h, "missing")
		return 0
	}
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("scrub could not read an object copy", "content", h.Content, "key", loc.Key, "err", err)
		}
		return 0
	}
	sum := md5.New()
	n, err := io.Copy(sum, rc)
	rc.Close()
	s.bytes.Add(float64(n))
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("scrub could not read an object copy", "content", h.Content, "key", loc.Key, "err", err)
		}
		return n
	}
	// An S3 multipart upload's content learns its md5 when it is tiered;
	// until then (never here: this is the tiered copy) only its size counts.
	if n != h.Size || h.MD5 != "" && hex.EncodeToString(sum.Sum(nil)) != h.MD5 {
		s.healObject(ctx, h, "bad")
	}
	return n
}

// healObject rewrites this node's copy of an object from another holder,
// if the content's record, read again, still names this node a holder
// of that key: the copy may just have been moved, released or deleted.
func (s *Scrubber) healObject(ctx context.Context, h fsm.Held, what string) {
	me := osprey.NodeID(s.cfg.ID)
	ct, ok := s.cfg.State.Content(h.Content)
	if !ok || ct.Location == nil || !hasNode(ct.Location.Nodes, me) ||
		ct.Location.Bucket != h.Location.Bucket || ct.Location.Key != h.Location.Key || ct.Size != h.Size {
		return
	}
	if what == "missing" {
		s.missing.Inc()
	} else {
		s.corrupt.Inc()
	}
	log := s.log.With("content", ct.ID, "bucket", ct.Location.Bucket, "key", ct.Location.Key)
	log.Warn("scrub found a " + what + " object copy")
	// The backend checks the md5 before the new copy replaces the old.
	if err := copyObject(ctx, s.cfg.Data, ct, me, string(me)); err != nil {
		log.Error("scrub could not restore an object copy", "err", err)
		return
	}
	s.repaired.Inc()
	log.Info("scrub restored an object copy")
}

// suspect is a copy no record named this node the holder of: the write
// seen (its generation) and when it was first seen so.
type suspect struct {
	gen   uint64
	size  int64
	since time.Time
}

// maxSuspects bounds the copies the scrubber remembers between passes;
// past it, new suspects wait for a later pass.
const maxSuspects = 1 << 18

// suspect notes that no record named this node the holder of k's copy
// in this pass, and since when its current write has been seen so. A
// copy written again since it was first seen starts over.
func (s *Scrubber) suspect(ctx context.Context, k chunkstore.Key, size int64, seen map[chunkstore.Key]bool) {
	if s.cfg.OrphanGrace <= 0 {
		return
	}
	gen, err := s.cfg.Chunks.Gen(ctx, k)
	if err != nil {
		return // gone meanwhile, or unreadable: not known to be one write
	}
	seen[k] = true
	if old, ok := s.suspects[k]; ok && old.gen == gen {
		return
	}
	if _, ok := s.suspects[k]; !ok && len(s.suspects) >= maxSuspects {
		delete(seen, k)
		return
	}
	// The write existed, unnamed, when its generation was read: now.
	s.suspects[k] = suspect{gen: gen, size: size, since: s.now()}
}

// collect deletes the suspects of this pass that have been orphans for
// OrphanGrace: no record named this node their holder when the write was
// first seen, in any pass since, nor now, OrphanGrace later, and the
// write is still the one first seen. A copy is written before the record
// that names it (an upload's, a move's, a repair's), and no upload, task
// or forwarded command stays in flight for OrphanGrace (request
// deadlines, task leases), so a copy that old which no record names will
// never be named. The owner index is read again after a read barrier, so
// a record committed since the pass read it keeps its copy, and the
// delete removes only the write first seen.
func (s *Scrubber) collect(ctx context.Context, seen map[chunkstore.Key]bool) error {
	ripe := ripeSuspects(s.suspects, seen, func(sp suspect) time.Time { return sp.since }, s.now(), s.cfg.OrphanGrace)
	if len(ripe) == 0 {
		return nil
	}
	if err := s.barrier(ctx); err != nil {
		return fmt.Errorf("orphans: %w", err)
	}
	// The owner index again, exactly: only the ripe keys are kept.
	held := make(map[chunkstore.Key]bool, len(ripe))
	for _, k := range ripe {
		held[k] = false
	}
	if err := s.eachHeld(ctx, osprey.NodeID(s.cfg.ID), func(_ fsm.Held, k chunkstore.Key) error {
		if _, ok := held[k]; ok {
			held[k] = true
		}
		return nil
	}); err != nil {
		return err
	}
	var n, bytes int64
	for _, k := range ripe {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		sp := s.suspects[k]
		delete(s.suspects, k)
		if held[k] {
			continue
		}
		removed, err := s.cfg.Chunks.DeleteGen(ctx, k, sp.gen)
		if err != nil {
			return fmt.Errorf("orphans: delete %s: %w", k, err)
		}
		if removed {
			s.tally(&n, &bytes, sp.size)
		}
	}
	if n > 0 {
		s.log.Info("scrub deleted orphaned copies", "copies", n, "bytes", bytes, "grace", s.cfg.OrphanGrace)
	}
	return nil
}

// ripeSuspects forgets the suspects this pass did not see unnamed (named
// by a record now, or gone) and returns those first seen so at least
// grace before now.
func ripeSuspects[K comparable, V any](suspects map[K]V, seen map[K]bool, since func(V) time.Time, now time.Time, grace time.Duration) []K {
	var ripe []K
	for k, sp := range suspects {
		switch {
		case !seen[k]:
			delete(suspects, k)
		case now.Sub(since(sp)) >= grace:
			ripe = append(ripe, k)
		}
	}
	return ripe
}

// tally counts one deleted orphan of size bytes, in a collection's sums
// and the metrics.
func (s *Scrubber) tally(n, total *int64, size int64) {
	*n++
	*total += size
	s.orphans.Inc()
	s.orphanBytes.Add(float64(size))
}

// wantSum is the checksum the record holds for the copy under k.
func wantSum(rec fsm.Chunk, k chunkstore.Key) uint64 {
	if k.Shard > 0 && rec.EC != nil && int(k.Shard) <= len(rec.EC.Shards) {
		return rec.EC.Shards[k.Shard-1].Sum
	}
	return rec.Sum
}

// healCopy rebuilds this node's copy under k from the others.
func (s *Scrubber) healCopy(ctx context.Context, rec fsm.Chunk, k chunkstore.Key) error {
	me := osprey.NodeID(s.cfg.ID)
	var buf []byte
	if rec.EC != nil {
		rd := s.cfg.Data.OpenECRange(ctx, rec, 0, rec.Size, me)
		defer rd.Close()
		data, release, err := s.cfg.Data.ReadPiece(ctx, rd, rec.Size+1, rec.Size+1)
		if err != nil {
			return err
		}
		defer release()
		if sum := md5.Sum(data); int64(len(data)) != rec.Size || hex.EncodeToString(sum[:]) != rec.MD5 {
			return errors.New("decoded chunk does not match its record")
		}
		shards, infos, err := erasure.Encode(erasure.Policy{K: rec.EC.K, M: rec.EC.M}, data)
		if err != nil {
			return err
		}
		idx := int(k.Shard) - 1
		if idx < 0 || idx >= len(shards) || infos[idx].Sum != rec.EC.Shards[idx].Sum {
			return errors.New("re-encoded shard differs from its record")
		}
		buf = shards[idx]
	} else {
		var others []osprey.NodeID
		for _, o := range rec.Owners {
			if o != me {
				others = append(others, o)
			}
		}
		src := rec
		src.Owners = others
		cr := s.cfg.Data.OpenCopies(ctx, src, 0, rec.Size)
		defer cr.Close()
		data, release, err := s.cfg.Data.ReadPiece(ctx, cr, rec.Size+1, rec.Size+1)
		if err != nil {
			return err
		}
		defer release()
		if sum := md5.Sum(data); int64(len(data)) != rec.Size || hex.EncodeToString(sum[:]) != rec.MD5 {
			return errors.New("other copy does not match its record")
		}
		buf = data
	}
	return s.cfg.Data.PutChunkOn(ctx, s.cfg.ID, httpapi.ChunkRef{Blob: k.UID, Num: k.Chunk, Shard: k.Shard}, buf, wantSum(rec, k))
}

// objectKey names an object in this node's local backend.
type objectKey struct{ bucket, key string }

// objSuspect is a local object copy no content record named this node a
// holder of: the write seen (its version) and since when.
type objSuspect struct {
	version string
	size    int64
	since   time.Time
}

// objectOrphans notes the object copies in this node's local backend that
// no content record names this node a holder of, and deletes those that
// have stayed so, as the same write, for OrphanGrace (see collect: an
// object copy is written before the record naming it, by tiering, a
// repair or a move). It also removes the temporary files of Puts
// interrupted longer than OrphanGrace ago.
func (s *Scrubber) objectOrphans(ctx context.Context) error {
	if n, b, err := s.cfg.Objects.RemoveStaleTemps(ctx, s.cfg.OrphanGrace); err != nil {
		return fmt.Errorf("orphans: %w", err)
	} else if n > 0 {
		s.orphans.Add(float64(n))
		s.orphanBytes.Add(float64(b))
	}
	seen := map[objectKey]bool{}
	err := s.cfg.Objects.Walk(ctx, func(bucket, key string, size int64, version string) error {
		k := objectKey{bucket, key}
		if s.objectNamed(k) {
			return ctx.Err()
		}
		seen[k] = true
		old, ok := s.objSuspects[k]
		switch {
		case ok && old.version == version:
		case !ok && len(s.objSuspects) >= maxSuspects:
			delete(seen, k)
		default:
			s.objSuspects[k] = objSuspect{version: version, size: size, since: s.now()}
		}
		return ctx.Err()
	})
	if err != nil {
		return fmt.Errorf("orphans: %w", err)
	}
	ripe := ripeSuspects(s.objSuspects, seen, func(sp objSuspect) time.Time { return sp.since }, s.now(), s.cfg.OrphanGrace)
	if len(ripe) == 0 {
		return nil
	}
	if err := s.barrier(ctx); err != nil {
		return fmt.Errorf("orphans: %w", err)
	}
	var n, bytes int64
	for _, k := range ripe {
		sp := s.objSuspects[k]
		delete(s.objSuspects, k)
		if s.objectNamed(k) {
			continue // named by a record committed since the walk
		}
		removed, err := s.cfg.Objects.DeleteVersion(ctx, k.bucket, k.key, sp.version)
		if err != nil {
			return fmt.Errorf("orphans: delete object %s/%s: %w", k.bucket, k.key, err)
		}
		if removed {
			s.tally(&n, &bytes, sp.size)
		}
	}
	if n > 0 {
		s.log.Info("scrub deleted orphaned object copies", "copies", n, "bytes", bytes, "grace", s.cfg.OrphanGrace)
	}
	return nil
}

// objectNamed reports whether the records may still want this node's
// copy of the object: its content (whose id starts the key: osprey names
// a content's object after the uid that uploaded it) is tiered there with
// this node among the holders (or with no holders listed, as a shared
// backend would be), or not tiered yet with that object as its target.
// A key osprey would not have written is always kept.
func (s *Scrubber) objectNamed(k objectKey) bool {
	idPart, _, _ := strings.Cut(k.key, ".")
	id, err := osprey.ParseUID(idPart)
	if err != nil || strings.Contains(k.key, "/") {
		return true
	}
	ct, ok := s.cfg.State.Content(id)
	if !ok {
		return false // deleted
	}
	if l := ct.Location; l != nil {
		return l.Bucket == k.bucket && l.Key == k.key && (len(l.Nodes) == 0 || hasNode(l.Nodes, osprey.NodeID(s.cfg.ID)))
	}
	bucket, key := ct.Bucket, ct.Key
	if bucket == "" || key == "" {
		bucket, key = "unknown", ct.ID.String() // as the tier task names it
	}
	return bucket == k.bucket && key == k.key
}
