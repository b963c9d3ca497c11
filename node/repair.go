package node

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
	"github.com/osprey-storage/osprey/ring"
	"github.com/osprey-storage/osprey/tasks"
)

// repairHandler rebuilds a copy a removed member held on another member:
// it reads a surviving copy, verifies it, stores it on the next ring
// candidate and only then records the move through raft.
type repairHandler struct{ n *Node }

func (repairHandler) Type() string { return fsm.TaskRepair }

func (h repairHandler) Run(ctx context.Context, t fsm.Task) (*tasks.Completion, error) {
	var p fsm.RepairPayload
	if err := json.Unmarshal(t.Payload, &p); err != nil {
		return nil, tasks.Permanent(fmt.Errorf("repair: bad payload: %w", err))
	}
	switch p.Kind {
	case fsm.RepairChunk:
		return h.chunk(ctx, t, p)
	case fsm.RepairObject:
		return h.object(ctx, t, p)
	}
	return nil, tasks.Permanent(fmt.Errorf("repair: unknown kind %q", p.Kind))
}

func (h repairHandler) chunk(ctx context.Context, t fsm.Task, p fsm.RepairPayload) (*tasks.Completion, error) {
	n := h.n
	ch, ok := n.fsm.ChunkRecord(p.File, p.Content, p.Blob)
	if !ok {
		return nil, nil // gone
	}
	if p.Shard > 0 {
		// The shard needs a holder if it has none (its holder was
		// removed) or it is still on the lost (down) member.
		if ch.EC == nil || p.Shard > len(ch.EC.Shards) {
			return nil, nil
		}
		if o := ch.EC.Shards[p.Shard-1].Owner; o != "" && o != p.Lost {
			return nil, nil // already rebuilt
		}
		target, err := n.repairShard(ctx, ch, p.Shard, p.Lost)
		var conv errNeedsConversion
		if errors.As(err, &conv) {
			owners, err := n.convertToReplicas(ctx, ch, conv.buf)
			if err != nil {
				return nil, err
			}
			return &tasks.Completion{Type: fsm.CmdChunkConverted, Payload: fsm.ChunkConverted{TaskID: t.ID, Node: osprey.NodeID(n.id), File: p.File,
				Content: p.Content, Blob: ch.Blob, Owners: owners, Now: time.Now().UnixMilli()}}, nil
		}
		if err != nil {
			return nil, err
		}
		return &tasks.Completion{Type: fsm.CmdChunkMoved, Payload: fsm.ChunkMoved{TaskID: t.ID, Node: osprey.NodeID(n.id), File: p.File, Content: p.Content,
			Blob: ch.Blob, Num: ch.Num, Shard: p.Shard, Remove: p.Lost, Add: osprey.NodeID(target), Now: time.Now().UnixMilli()}}, nil
	}
	// A removed member is no longer listed; a down one still is. Either
	// way, repair only while the chunk has fewer healthy copies than wanted.
	var survivors []osprey.NodeID
	for _, o := range ch.Owners {
		if o != p.Lost && n.isActive(o) {
			survivors = append(survivors, o)
		}
	}
	if len(survivors) >= n.place.WantCopies() {
		return nil, nil // already repaired
	}
	if len(survivors) == 0 {
		return nil, tasks.Permanent(fmt.Errorf("repair: no surviving copy of chunk %d/%d", ch.Blob, ch.Num))
	}
	targets, err := n.place.NewOwners(ring.ChunkKey(ch.Blob, ch.Num), ch.Owners)
	if err != nil {
		return nil, err
	}
	// Read one surviving copy whole (a chunk is bounded by the chunk size
	// limit and the buffer budget) and check it against the record.
	cr := n.data.OpenCopies(ctx, fsm.Chunk{Blob: ch.Blob, Num: ch.Num, Size: ch.Size, Owners: survivors}, 0, ch.Size)
	defer cr.Close()
	buf, release, err := n.data.ReadPiece(ctx, cr, ch.Size+1, ch.Size+1)
	if err != nil {
		return nil, err
	}
	defer release()
	sum := md5.Sum(buf)
	if int64(len(buf)) != ch.Size || hex.EncodeToString(sum[:]) != ch.MD5 {
		return nil, fmt.Errorf("repair: surviving copy of chunk %d/%d does not match its record", ch.Blob, ch.Num)
	}
	var target string
	var errs []error
	for _, c := range targets {
		if err := n.data.PutChunkOn(ctx, c, httpapi.ChunkRef{Blob: ch.Blob, Num: ch.Num}, buf, ch.Sum); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c, err))
			continue
		}
		target = c
		break
	}
	if target == "" {
		return nil, fmt.Errorf("repair: copy chunk %d/%d: %w", ch.Blob, ch.Num, errors.Join(errs...))
	}
	return &tasks.Completion{Type: fsm.CmdChunkMoved, Payload: fsm.ChunkMoved{TaskID: t.ID, Node: osprey.NodeID(n.id), File: p.File, Content: p.Content,
		Blob: ch.Blob, Num: ch.Num, Remove: p.Lost, Add: osprey.NodeID(target), Now: time.Now().UnixMilli()}}, nil
}

func (h repairHandler) object(ctx context.Context, t fsm.Task, p fsm.RepairPayload) (*tasks.Completion, error) {
	n := h.n
	ct, ok := n.fsm.Content(p.Content)
	if !ok || ct.Location == nil {
		return nil, nil
	}
	healthy := 0
	for _, o := range ct.Location.Nodes {
		if o != p.Lost && n.isActive(o) {
			healthy++
		}
	}
	if healthy >= n.place.WantCopies() {
		return nil, nil // already repaired
	}
	targets, err := n.place.NewOwners(ring.ChunkKey(uint64(ct.ID), 0), ct.Location.Nodes)
	if err != nil {
		return nil, err
	}
	target := targets[0]
	var survivors []osprey.NodeID
	for _, o := range ct.Location.Nodes {
		if o != p.Lost {
			survivors = append(survivors, o)
		}
	}
	loc := *ct.Location
	loc.Nodes = survivors
	ct.Location = &loc
	var src io.ReadCloser = io.NopCloser(bytes.NewReader(nil))
	if ct.Size > 0 {
		if src, err = n.data.OpenTiered(ctx, ct, 0, ct.Size); err != nil {
			return nil, err
		}
	}
	defer src.Close()
	// The receiving backend verifies the md5 before the copy is visible.
	if err := n.data.PutObjectOn(ctx, target, loc.Bucket, loc.Key, src, ct.Size, ct.MD5); err != nil {
		return nil, fmt.Errorf("repair: copy object %s to %s: %w", ct.ID, target, err)
	}
	return &tasks.Completion{Type: fsm.CmdObjectMoved, Payload: fsm.ObjectMoved{TaskID: t.ID, Node: osprey.NodeID(n.id), Content: ct.ID,
		Remove: p.Lost, Add: osprey.NodeID(target), Now: time.Now().UnixMilli()}}, nil
}

// isActive reports whether a member is neither removed nor down.
func (n *Node) isActive(id osprey.NodeID) bool {
	rec, ok := n.fsm.Node(id)
	return ok && !rec.Removed && !rec.Down
}
