package repair

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
	"github.com/osprey-storage/osprey/erasure"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
	"github.com/osprey-storage/osprey/ring"
	"github.com/osprey-storage/osprey/tasks"
)

// Handler rebuilds a copy a removed member held on another member:
// it reads a surviving copy, verifies it, stores it on the next ring
// candidate and only then records the move through raft.
type Handler struct{ cfg Config }

// Type is fsm.TaskRepair.
func (*Handler) Type() string { return fsm.TaskRepair }

// BatchSize is how many repairs are leased and recorded together
// (tasks.Batcher): after a member is lost there is one per copy it held.
func (h *Handler) BatchSize() int { return h.cfg.BatchSize }

// Parallel is how many copies this node rebuilds at once.
func (h *Handler) Parallel() int { return h.cfg.Parallel }

// Prefer reports whether this node holds a surviving copy of what t
// rebuilds (it reads it locally, and the members split the repairs by what
// they hold), or the repair needs no copy read from a holder (a coded
// shard is decoded from several members; a record that is gone completes
// at once).
func (h *Handler) Prefer(t fsm.Task) bool {
	var p fsm.RepairPayload
	if err := json.Unmarshal(t.Payload, &p); err != nil {
		return true
	}
	me := osprey.NodeID(h.cfg.ID)
	switch p.Kind {
	case fsm.RepairChunk:
		ch, ok := h.cfg.State.ChunkRecord(p.File, p.Content, p.Blob)
		return !ok || p.Shard > 0 || (me != p.Lost && hasNode(ch.Owners, me))
	case fsm.RepairObject:
		ct, ok := h.cfg.State.Content(p.Content)
		return !ok || ct.Location == nil || (me != p.Lost && hasNode(ct.Location.Nodes, me))
	}
	return true
}

// Run rebuilds the copy the task names; idempotent (a copy already
// rebuilt, or a record that is gone, completes at once).
func (h *Handler) Run(ctx context.Context, t fsm.Task) (*tasks.Completion, error) {
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

func (h *Handler) chunk(ctx context.Context, t fsm.Task, p fsm.RepairPayload) (*tasks.Completion, error) {
	c := h.cfg
	workers := h.memberWorkers()
	ch, ok := c.State.ChunkRecord(p.File, p.Content, p.Blob)
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
		target, err := h.repairShard(ctx, ch, p.Shard, p.Lost)
		var conv errNeedsConversion
		if errors.As(err, &conv) {
			owners, err := h.convertToReplicas(ctx, ch, conv.buf)
			if err != nil {
				return nil, err
			}
			return &tasks.Completion{Type: fsm.CmdChunkConverted, Payload: fsm.ChunkConverted{TaskID: t.ID, Node: osprey.NodeID(c.ID), File: p.File,
				Content: p.Content, Blob: ch.Blob, Owners: owners, Now: time.Now().UnixMilli()}}, nil
		}
		if err != nil {
			return nil, err
		}
		return &tasks.Completion{Type: fsm.CmdChunkMoved, Payload: fsm.ChunkMoved{TaskID: t.ID, Node: osprey.NodeID(c.ID), File: p.File, Content: p.Content,
			Blob: ch.Blob, Num: ch.Num, Shard: p.Shard, Remove: p.Lost, Add: osprey.NodeID(target), AddWorker: workers[target],
			Now: time.Now().UnixMilli()}}, nil
	}
	// A removed member is no longer listed; a down one still is. Either
	// way, repair only while the chunk has fewer healthy copies than wanted.
	var survivors []osprey.NodeID
	for _, o := range ch.Owners {
		if o != p.Lost && h.isActive(o) {
			survivors = append(survivors, o)
		}
	}
	if len(survivors) >= c.Placement.WantCopies() {
		return nil, nil // already repaired
	}
	if len(survivors) == 0 {
		return nil, tasks.Permanent(fmt.Errorf("repair: no surviving copy of chunk %d/%d", ch.Blob, ch.Num))
	}
	targets, err := c.Placement.NewOwners(ring.ChunkKey(ch.Blob, ch.Num), ch.Owners)
	if err != nil {
		return nil, err
	}
	// Read one surviving copy whole (a chunk is bounded by the chunk size
	// limit and the buffer budget) and check it against the record.
	cr := c.Data.OpenCopies(ctx, fsm.Chunk{Blob: ch.Blob, Num: ch.Num, Size: ch.Size, Owners: survivors}, 0, ch.Size)
	defer cr.Close()
	buf, release, err := c.Data.ReadPiece(ctx, cr, ch.Size+1, ch.Size+1)
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
	releasing := h.releasing(fsm.Move{Blob: ch.Blob})
	for _, cand := range targets {
		if workers[cand] == nil {
			continue // no longer a member (the ring has not caught up): the record would refuse it
		}
		if releasing[osprey.NodeID(cand)] {
			errs = append(errs, fmt.Errorf("%s: %w", cand, errReleasing))
			continue
		}
		if err := c.Data.PutChunkOn(ctx, cand, httpapi.ChunkRef{Blob: ch.Blob, Num: ch.Num}, buf, ch.Sum); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", cand, err))
			continue
		}
		target = cand
		break
	}
	if target == "" {
		return nil, fmt.Errorf("repair: copy chunk %d/%d: %w", ch.Blob, ch.Num, errors.Join(errs...))
	}
	return &tasks.Completion{Type: fsm.CmdChunkMoved, Payload: fsm.ChunkMoved{TaskID: t.ID, Node: osprey.NodeID(c.ID), File: p.File, Content: p.Content,
		Blob: ch.Blob, Num: ch.Num, Remove: p.Lost, Add: osprey.NodeID(target), AddWorker: workers[target],
		Now: time.Now().UnixMilli()}}, nil
}

func (h *Handler) object(ctx context.Context, t fsm.Task, p fsm.RepairPayload) (*tasks.Completion, error) {
	c := h.cfg
	workers := h.memberWorkers()
	ct, ok := c.State.Content(p.Content)
	if !ok || ct.Location == nil {
		return nil, nil
	}
	healthy := 0
	for _, o := range ct.Location.Nodes {
		if o != p.Lost && h.isActive(o) {
			healthy++
		}
	}
	if healthy >= c.Placement.WantCopies() {
		return nil, nil // already repaired
	}
	targets, err := c.Placement.NewOwners(ring.ChunkKey(uint64(ct.ID), 0), ct.Location.Nodes)
	if err != nil {
		return nil, err
	}
	target := ""
	releasing := h.releasing(fsm.Move{Object: true, Content: ct.ID})
	for _, cand := range targets {
		if workers[cand] != nil && !releasing[osprey.NodeID(cand)] {
			target = cand // the first that is still a member (the ring may lag a removal)
			break
		}
	}
	if target == "" {
		return nil, fmt.Errorf("repair: object %s: no member to copy it to among %v (none a member without a release of it queued)", ct.ID, targets)
	}
	if err := copyObject(ctx, c.Data, ct, p.Lost, target); err != nil {
		return nil, fmt.Errorf("repair: copy object %s to %s: %w", ct.ID, target, err)
	}
	return &tasks.Completion{Type: fsm.CmdObjectMoved, Payload: fsm.ObjectMoved{TaskID: t.ID, Node: osprey.NodeID(c.ID), Content: ct.ID,
		Remove: p.Lost, Add: osprey.NodeID(target), AddWorker: workers[target],
		Now: time.Now().UnixMilli()}}, nil
}

// objectCopier reads a tiered object from its holders and writes a copy.
type objectCopier interface {
	OpenTiered(ctx context.Context, ct fsm.Content, off, length int64) (io.ReadCloser, error)
	PutObjectOn(ctx context.Context, owner, bucket, key string, body io.Reader, size int64, md5 string) error
}

// copyObject writes content ct's local-backend object to target, read
// from its holders other than skip. The receiving backend verifies the
// md5 before the copy is visible.
func copyObject(ctx context.Context, data objectCopier, ct fsm.Content, skip osprey.NodeID, target string) error {
	var from []osprey.NodeID
	for _, o := range ct.Location.Nodes {
		if o != skip {
			from = append(from, o)
		}
	}
	if len(from) == 0 {
		return errors.New("no other member holds a copy")
	}
	loc := *ct.Location
	loc.Nodes = from
	ct.Location = &loc
	var src io.ReadCloser = io.NopCloser(bytes.NewReader(nil))
	if ct.Size > 0 {
		var err error
		if src, err = data.OpenTiered(ctx, ct, 0, ct.Size); err != nil {
			return err
		}
	}
	defer src.Close()
	return data.PutObjectOn(ctx, target, loc.Bucket, loc.Key, src, ct.Size, ct.MD5)
}

// errReleasing marks a repair target skipped because a release of the
// same copy on it is queued or running.
var errReleasing = errors.New("a release of this copy is queued there")

// releasing returns the members on which a release of m's copy set (m's
// Blob and Shard, or its Content's object) is queued or running. A repair
// must not write the copy there: the release, deciding from a replica of
// the record that may not show the repair yet, could delete the new copy.
// Call it after reading the record the repair works from: a release that
// is no longer live by then has deleted what it was going to (its delete
// removes only the write it read the generation of, older than the
// repair's), and one queued later is for a copy the record already shows
// moved away, which is not among the repair's targets. Releases are
// rare and short-lived (after a rebalance), so with none live this costs
// one counter read.
func (h *Handler) releasing(m fsm.Move) map[osprey.NodeID]bool {
	if h.cfg.State.LiveTasks(fsm.TaskRelease) == 0 {
		return nil
	}
	out := map[osprey.NodeID]bool{}
	id := copyID(m)
	for _, tk := range h.cfg.State.Tasks("") {
		if tk.Type != fsm.TaskRelease || tk.State != fsm.TaskPending && tk.State != fsm.TaskLeased {
			continue
		}
		var p fsm.ReleasePayload
		if json.Unmarshal(tk.Payload, &p) != nil {
			continue
		}
		for _, r := range p.Moves {
			if copyID(r) == id {
				out[r.From] = true
			}
		}
	}
	return out
}

// isActive reports whether a member is neither removed nor down.
func (h *Handler) isActive(id osprey.NodeID) bool {
	rec, ok := h.cfg.State.Node(id)
	return ok && !rec.Removed && !rec.Down
}

// repairShard rebuilds one shard of a coded chunk on a new holder: it
// decodes the chunk from the other shards, re-encodes it (encoding is
// deterministic, checked against the recorded checksum) and stores the
// lost shard on the first ring candidate not holding one.
func (h *Handler) repairShard(ctx context.Context, ch fsm.Chunk, shard int, lost osprey.NodeID) (string, error) {
	c := h.cfg
	l := ch.EC
	if shard < 1 || shard > len(l.Shards) {
		return "", tasks.Permanent(fmt.Errorf("repair: chunk %d/%d has no shard %d", ch.Blob, ch.Num, shard))
	}
	rd := c.Data.OpenECRange(ctx, ch, 0, ch.Size, lost)
	defer rd.Close()
	buf, release, err := c.Data.ReadPiece(ctx, rd, ch.Size+1, ch.Size+1)
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
	targets, err := c.Placement.NewOwners(ring.ChunkKey(ch.Blob, ch.Num), holders)
	if err != nil {
		return "", errNeedsConversion{buf: append([]byte(nil), buf...)}
	}
	var errs []error
	releasing := h.releasing(fsm.Move{Blob: ch.Blob, Shard: shard})
	for _, t := range targets {
		if releasing[osprey.NodeID(t)] {
			errs = append(errs, fmt.Errorf("%s: %w", t, errReleasing))
			continue
		}
		ref := httpapi.ChunkRef{Blob: ch.Blob, Num: ch.Num, Shard: uint16(shard)}
		if err := c.Data.PutChunkOn(ctx, t, ref, shards[idx], infos[idx].Sum); err != nil {
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
func (h *Handler) convertToReplicas(ctx context.Context, ch fsm.Chunk, buf []byte) ([]osprey.NodeID, error) {
	c := h.cfg
	r, err := c.Placement.Ring()
	if err != nil {
		return nil, err
	}
	want := min(c.Placement.EC().M+1, r.Len())
	var owners []osprey.NodeID
	var errs []error
	for _, cand := range r.Owners(ring.ChunkKey(ch.Blob, ch.Num), r.Len()) {
		if len(owners) == want {
			break
		}
		if err := c.Data.PutChunkOn(ctx, cand, httpapi.ChunkRef{Blob: ch.Blob, Num: ch.Num}, buf, ch.Sum); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", cand, err))
			continue
		}
		owners = append(owners, osprey.NodeID(cand))
	}
	if len(owners) < want {
		return nil, fmt.Errorf("repair: %d of %d replicas stored: %w", len(owners), want, errors.Join(errs...))
	}
	return owners, nil
}

// memberWorkers returns every current member's worker id, read before a
// repair writes a copy: the record it proposes names the incarnation that
// received it (fsm.ChunkMoved.AddWorker).
func (h *Handler) memberWorkers() map[string]*uint32 {
	out := map[string]*uint32{}
	for _, rec := range h.cfg.State.Nodes() {
		if !rec.Removed {
			w := rec.WorkerID
			out[string(rec.ID)] = &w
		}
	}
	return out
}
