package node

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/erasure"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
	"github.com/osprey-storage/osprey/ring"
	"github.com/osprey-storage/osprey/tasks"
)

// repairShard rebuilds one shard of a coded chunk on a new holder: it
// decodes the chunk from the other shards, re-encodes it (encoding is
// deterministic, checked against the recorded checksum) and stores the
// lost shard on the first ring candidate not holding one.
func (n *Node) repairShard(ctx context.Context, ch fsm.Chunk, shard int, lost osprey.NodeID) (string, error) {
	l := ch.EC
	if shard < 1 || shard > len(l.Shards) {
		return "", tasks.Permanent(fmt.Errorf("repair: chunk %d/%d has no shard %d", ch.Blob, ch.Num, shard))
	}
	rd := n.data.OpenECRange(ctx, ch, 0, ch.Size, lost)
	defer rd.Close()
	buf, release, err := n.data.ReadPiece(ctx, rd, ch.Size+1, ch.Size+1)
	if err != nil {
		return "", err
	}
	defer release()
	if sum := md5.Sum(buf); int64(len(buf)) != ch.Size || hex.EncodeToString(sum[:]) != ch.MD5 {
		return "", fmt.Errorf("repair: decoded chunk %d/%d does not match its record", ch.Blob, ch.Num)
	}
	shards, infos, err := erasure.Encode(erasure.Policy{K: l.K, M: l.M}, buf)
	if err != nil {
		return "", err
	}
	idx := shard - 1
	if infos[idx].Sum != l.Shards[idx].Sum {
		return "", tasks.Permanent(fmt.Errorf("repair: re-encoded shard %d of chunk %d/%d differs from its record", idx, ch.Blob, ch.Num))
	}
	holders := make([]osprey.NodeID, 0, len(l.Shards))
	for _, sh := range l.Shards {
		holders = append(holders, sh.Owner)
	}
	targets, err := n.place.NewOwners(ring.ChunkKey(ch.Blob, ch.Num), holders)
	if err != nil {
		return "", errNeedsConversion{buf: append([]byte(nil), buf...)}
	}
	var errs []error
	for _, t := range targets {
		ref := httpapi.ChunkRef{Blob: ch.Blob, Num: ch.Num, Shard: uint16(shard)}
		if err := n.data.PutChunkOn(ctx, t, ref, shards[idx], infos[idx].Sum); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", t, err))
			continue
		}
		return t, nil
	}
	return "", fmt.Errorf("repair: store shard %d of chunk %d/%d: %w", shard, ch.Blob, ch.Num, errors.Join(errs...))
}

// errNeedsConversion tells the repair handler that no member is free to
// hold the lost shard; it carries the decoded chunk.
type errNeedsConversion struct{ buf []byte }

func (errNeedsConversion) Error() string { return "no free member for the shard" }

// convertToReplicas stores buf whole on M+1 active members (ring order)
// and returns them; the caller records the conversion.
func (n *Node) convertToReplicas(ctx context.Context, ch fsm.Chunk, buf []byte) ([]osprey.NodeID, error) {
	r, err := n.place.Ring()
	if err != nil {
		return nil, err
	}
	want := min(n.cfg.EC.M+1, r.Len())
	var owners []osprey.NodeID
	var errs []error
	for _, c := range r.Owners(ring.ChunkKey(ch.Blob, ch.Num), r.Len()) {
		if len(owners) == want {
			break
		}
		if err := n.data.PutChunkOn(ctx, c, httpapi.ChunkRef{Blob: ch.Blob, Num: ch.Num}, buf, ch.Sum); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c, err))
			continue
		}
		owners = append(owners, osprey.NodeID(c))
	}
	if len(owners) < want {
		return nil, fmt.Errorf("repair: %d of %d replicas stored: %w", len(owners), want, errors.Join(errs...))
	}
	return owners, nil
}
