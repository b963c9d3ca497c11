package node

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

// scrubLoop walks this node's staged chunks at cfg.ScrubRate bytes per
// second, verifies every block checksum and compares each copy with the
// checksum its record holds, and rewrites bad copies from healthy ones.
func (n *Node) scrubLoop() {
	if n.cfg.ScrubRate <= 0 {
		return
	}
	for {
		if err := n.scrubPass(n.ctx); err != nil && n.ctx.Err() == nil {
			n.log.Warn("scrub pass failed", "err", err)
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(n.cfg.ScrubPause):
		}
	}
}

func (n *Node) scrubPass(ctx context.Context) error {
	var keys []chunkstore.Key
	if err := n.chunks.Scan(ctx, func(k chunkstore.Key, _ chunkstore.Info) error {
		keys = append(keys, k)
		return nil
	}); err != nil {
		return err
	}
	records := n.fsm.ChunkIndex()
	start := time.Now()
	var done int64
	for _, k := range keys {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		info, err := n.chunks.Verify(ctx, k)
		if errors.Is(err, chunkstore.ErrNotFound) {
			continue // deleted meanwhile
		}
		done += info.Size
		n.scrubBytes.Add(float64(info.Size))
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
			n.scrubCorrupt.Inc()
			n.log.Warn("scrub found a bad copy", "blob", k.UID, "num", k.Chunk, "shard", k.Shard, "err", err)
			if herr := n.healCopy(ctx, rec, k); herr != nil {
				n.log.Error("scrub could not repair a copy", "blob", k.UID, "num", k.Chunk, "shard", k.Shard, "err", herr)
			} else {
				n.scrubRepaired.Inc()
				n.log.Info("scrub repaired a copy", "blob", k.UID, "num", k.Chunk, "shard", k.Shard)
			}
		}
		// Pace to ScrubRate so scrubbing never competes with uploads.
		if ahead := time.Duration(float64(done)/float64(n.cfg.ScrubRate)*float64(time.Second)) - time.Since(start); ahead > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(ahead):
			}
		}
	}
	n.scrubPasses.Inc()
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
func (n *Node) healCopy(ctx context.Context, rec fsm.Chunk, k chunkstore.Key) error {
	me := osprey.NodeID(n.id)
	var buf []byte
	if rec.EC != nil {
		rd := n.data.OpenECRange(ctx, rec, 0, rec.Size, me)
		defer rd.Close()
		data, release, err := n.data.ReadPiece(ctx, rd, rec.Size+1, rec.Size+1)
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
		cr := n.data.OpenCopies(ctx, src, 0, rec.Size)
		defer cr.Close()
		data, release, err := n.data.ReadPiece(ctx, cr, rec.Size+1, rec.Size+1)
		if err != nil {
			return err
		}
		defer release()
		if sum := md5.Sum(data); int64(len(data)) != rec.Size || hex.EncodeToString(sum[:]) != rec.MD5 {
			return errors.New("other copy does not match its record")
		}
		buf = data
	}
	return n.data.PutChunkOn(ctx, n.id, httpapi.ChunkRef{Blob: k.UID, Num: k.Chunk, Shard: k.Shard}, buf, wantSum(rec, k))
}
