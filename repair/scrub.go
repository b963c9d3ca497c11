package repair

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/chunkstore"
	"github.com/osprey-storage/osprey/erasure"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
)

// Run walks this node's staged chunks at cfg.ScrubRate bytes per
// second, verifies every block checksum and compares each copy with the
// checksum its record holds, and rewrites bad copies from healthy ones.
func (s *Scrubber) Run(ctx context.Context) {
	if s.cfg.Rate <= 0 {
		return
	}
	for {
		if err := s.pass(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("scrub pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.Pause):
		}
	}
}

func (s *Scrubber) pass(ctx context.Context) error {
	var keys []chunkstore.Key
	if err := s.cfg.Chunks.Scan(ctx, func(k chunkstore.Key, _ chunkstore.Info) error {
		keys = append(keys, k)
		return nil
	}); err != nil {
		return err
	}
	records := s.cfg.State.ChunkIndex()
	start := time.Now()
	var done int64
	for _, k := range keys {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		info, err := s.cfg.Chunks.Verify(ctx, k)
		if errors.Is(err, chunkstore.ErrNotFound) {
			continue // deleted meanwhile
		}
		done += info.Size
		s.bytes.Add(float64(info.Size))
		rec, ok := records[k.UID]
		switch {
		case err != nil && !errors.Is(err, chunkstore.ErrCorrupt):
			return err
		case !ok:
			// No record references it (garbage of a failed upload, or it
			// was collected meanwhile): nothing to protect.
			continue
		case err == nil && info.Sum == wantSum(rec, k):
			// healthy
		default:
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
		// Pace to ScrubRate so scrubbing never competes with uploads.
		if ahead := time.Duration(float64(done)/float64(s.cfg.Rate)*float64(time.Second)) - time.Since(start); ahead > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(ahead):
			}
		}
	}
	s.passes.Inc()
	return nil
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
