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
	"log/slog"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/erasure"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
	"github.com/osprey-storage/osprey/ring"
	"github.com/osprey-storage/osprey/tasks"
)

// Rebalancing moves copies to the members the ring names after a
// membership change. The leader plans: when the active member set differs
// from the one it last found balanced, it walks every active member's
// owner index, works out for each copy which holders the ring no longer
// names and which owners it names that hold nothing, and proposes the
// moves (From → To) with fsm.RebalancePlan, hundreds per entry, queued as
// rebalance tasks of PerTask moves. Any node runs a task: for each move it
// copies the bytes to To, verified (a replica against its md5 and the
// checksum To reports, a shard by re-encoding it from the decoded chunk,
// an object by To's backend checking the md5 while it streams), and
// completes the task with fsm.RebalanceDone, one entry recording every
// move that succeeded. Only then is From's copy released, by a release
// task due --gc-grace later that deletes it unless the record names From
// again. Moves run at most Parallel at a time per task, through a
// token bucket of Rate bytes per second per node, and rebalance tasks
// yield to uploads like every background task but repair.

// RebalanceState is the part of the FSM rebalancing reads.
type RebalanceState interface {
	Nodes() []fsm.Node
	Node(id osprey.NodeID) (fsm.Node, bool)
	HeldBy(node osprey.NodeID, cursor []byte, limit int) ([]fsm.Held, []byte)
	Tasks(state fsm.TaskState) []fsm.Task
	Rebalance() fsm.RebalanceProgress
	ChunkRecord(file, content osprey.UID, blob uint64) (fsm.Chunk, bool)
	Content(id osprey.UID) (fsm.Content, bool)
}

// RebalanceData is the part of the data path moves and releases use.
type RebalanceData interface {
	ReadPiece(ctx context.Context, r io.Reader, max, reserve int64) (buf []byte, release func(), err error)
	OpenCopies(ctx context.Context, ch fsm.Chunk, off, length int64) io.ReadCloser
	OpenECRange(ctx context.Context, ch fsm.Chunk, off, length int64, skip osprey.NodeID) io.ReadCloser
	OpenTiered(ctx context.Context, ct fsm.Content, off, length int64) (io.ReadCloser, error)
	PutChunkOn(ctx context.Context, owner string, ref httpapi.ChunkRef, buf []byte, sum uint64) error
	PutObjectOn(ctx context.Context, owner, bucket, key string, body io.Reader, size int64, md5 string) error
	// ReleaseCopy deletes owner's copy of ref unless keep, asked after the
	// copy's generation was read, says to keep it; the delete names that
	// generation, so a late one cannot remove a later write.
	ReleaseCopy(ctx context.Context, owner osprey.NodeID, ref httpapi.ChunkRef, keep func() bool) error
	// ReleaseObject is ReleaseCopy for an object copy.
	ReleaseObject(ctx context.Context, owner osprey.NodeID, bucket, key string, keep func() bool) error
}

// RebalancePlacement is the part of placement the planner reads.
type RebalancePlacement interface {
	Ring() (*ring.Ring, error)
	Replicas() int
}

// Proposer proposes commands.
type Proposer interface {
	Apply(ctx context.Context, t fsm.CommandType, payload, out any) error
}

// RebalanceConfig configures a Rebalancer.
type RebalanceConfig struct {
	// ID is this node's member id.
	ID        string
	State     RebalanceState
	Data      RebalanceData
	Placement RebalancePlacement
	Proposer  Proposer
	// IsLeader reports whether this node leads (only the leader plans).
	IsLeader func() bool
	// Rate bounds the bytes per second this node's moves copy (0 turns
	// rebalancing off on this node: it plans and moves nothing).
	Rate int64
	// Interval is how often the leader checks membership (default 1s);
	// Sweep is how often it walks a balanced cluster again, for copies
	// written to old owners while a plan ran (default 10m).
	Interval, Sweep time.Duration
	// PerTask moves make a task (default 16), PerEntry a plan entry
	// (default 512), Parallel moves of a task run at once (default 4).
	PerTask, PerEntry, Parallel int
	// Metrics; optional.
	Bytes, Moves, Failed prometheus.Counter
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Validate reports a missing dependency or a bad setting.
func (c RebalanceConfig) Validate() error {
	switch {
	case c.ID == "" || c.State == nil || c.Data == nil || c.Placement == nil || c.Proposer == nil || c.IsLeader == nil:
		return errors.New("repair: rebalancer needs ID, State, Data, Placement, Proposer and IsLeader")
	case c.Rate < 0:
		return fmt.Errorf("repair: rebalance rate %d is negative", c.Rate)
	}
	return nil
}

// Rebalancer plans moves on the leader (Run) and runs them on every node
// (the handlers Handlers returns).
type Rebalancer struct {
	cfg                  RebalanceConfig
	log                  *slog.Logger
	bucket               *tokenBucket
	bytes, moves, failed prometheus.Counter
}

// NewRebalancer returns a Rebalancer.
func NewRebalancer(cfg RebalanceConfig) (*Rebalancer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Sweep <= 0 {
		cfg.Sweep = 10 * time.Minute
	}
	if cfg.PerTask <= 0 {
		cfg.PerTask = 16
	}
	if cfg.PerEntry <= 0 {
		cfg.PerEntry = 512
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 4
	}
	r := &Rebalancer{cfg: cfg, log: cfg.Logger, bucket: newTokenBucket(cfg.Rate), bytes: cfg.Bytes, moves: cfg.Moves, failed: cfg.Failed}
	if r.log == nil {
		r.log = slog.Default()
	}
	r.log = r.log.With("component", "rebalance")
	for _, c := range []*prometheus.Counter{&r.bytes, &r.moves, &r.failed} {
		if *c == nil {
			*c = prometheus.NewCounter(prometheus.CounterOpts{Name: "osprey_rebalance_unregistered_total"})
		}
	}
	return r, nil
}

// Handlers returns the task handlers: releases always (a release queued
// by a move must run somewhere), moves only while rebalancing is on.
func (r *Rebalancer) Handlers() []tasks.Handler {
	if r.cfg.Rate <= 0 {
		return []tasks.Handler{releaseHandler{r}}
	}
	return []tasks.Handler{moveHandler{r}, releaseHandler{r}}
}

// Run plans moves while this node leads, until ctx ends.
func (r *Rebalancer) Run(ctx context.Context) {
	if r.cfg.Rate <= 0 {
		return
	}
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	var balanced, last string
	var balancedAt time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !r.cfg.IsLeader() {
			balanced, last = "", ""
			continue
		}
		key, ok := r.memberKey()
		switch {
		case !ok:
			continue // a member is down: repair is at work, the ring will change again
		case key == balanced && time.Since(balancedAt) < r.cfg.Sweep:
			continue
		case key == last && r.cfg.State.Rebalance().Pending > 0:
			continue // let the queued moves finish, then look again
		}
		planned, err := r.Plan(ctx)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("rebalance planning failed", "err", err)
			}
			continue
		}
		last = key
		if planned == 0 && r.cfg.State.Rebalance().Pending == 0 {
			if balanced != key {
				r.log.Info("rebalance: copies are on their ring owners", "members", key)
			}
			balanced, balancedAt = key, time.Now()
		}
	}
}

// memberKey names the active member set; false while a member is down.
func (r *Rebalancer) memberKey() (string, bool) {
	var ids []string
	for _, n := range r.cfg.State.Nodes() {
		if n.Removed {
			continue
		}
		if n.Down {
			return "", false
		}
		ids = append(ids, string(n.ID))
	}
	sort.Strings(ids)
	return strings.Join(ids, ","), len(ids) > 0
}

// copyID names a copy set (a chunk's replicas, one shard, or a content's
// object copies) for the planner's bookkeeping.
func copyID(m fsm.Move) string {
	if m.Object {
		return fmt.Sprintf("o%d", m.Content)
	}
	return fmt.Sprintf("c%d/%d", m.Blob, m.Shard)
}

// Plan walks every active member's copies once and proposes the moves
// that put them on their ring owners; it returns how many it proposed.
// Copies with a move queued are skipped, and so is a move onto a member
// whose earlier copy of the same data is still to be released (the
// release would delete the new copy).
func (r *Rebalancer) Plan(ctx context.Context) (int, error) {
	c := r.cfg
	// Queued moves and releases are read before the records: a move that
	// completes meanwhile still counts as queued, so nothing is planned
	// twice.
	busy, releasing := map[string]bool{}, map[string]bool{}
	for _, tk := range c.State.Tasks("") {
		if tk.Type != fsm.TaskRebalance && tk.Type != fsm.TaskRelease {
			continue
		}
		var p fsm.RebalancePayload
		if json.Unmarshal(tk.Payload, &p) != nil {
			continue
		}
		for _, m := range p.Moves {
			if tk.Type == fsm.TaskRebalance {
				busy[copyID(m)] = true
			} else {
				releasing[copyID(m)+"@"+string(m.From)] = true
			}
		}
	}
	rg, err := c.Placement.Ring()
	if err != nil {
		return 0, err
	}
	active := map[osprey.NodeID]bool{}
	var members []osprey.NodeID
	for _, id := range rg.Members() {
		active[osprey.NodeID(id)] = true
		members = append(members, osprey.NodeID(id))
	}
	replicas := min(c.Placement.Replicas(), rg.Len())
	var batch []fsm.Move
	total := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		err := c.Proposer.Apply(pctx, fsm.CmdRebalancePlan, fsm.RebalancePlan{Members: members, Moves: batch,
			PerTask: c.PerTask, Now: time.Now().UnixMilli()}, nil)
		if err != nil {
			return fmt.Errorf("propose rebalance plan: %w", err)
		}
		total += len(batch)
		batch = nil
		return nil
	}
	for _, from := range members {
		var cursor []byte
		for {
			page, next := c.State.HeldBy(from, cursor, 512)
			for _, h := range page {
				for _, m := range planCopy(h, from, rg, replicas, active) {
					if busy[copyID(m)] || releasing[copyID(m)+"@"+string(m.To)] {
						continue
					}
					batch = append(batch, m)
					if len(batch) >= c.PerEntry {
						if err := flush(); err != nil {
							return total, err
						}
					}
				}
			}
			if next == nil || ctx.Err() != nil {
				break
			}
			cursor = next
		}
	}
	if err := flush(); err != nil {
		return total, err
	}
	if total > 0 {
		r.log.Info("rebalance planned", "moves", total, "members", len(members))
	}
	return total, ctx.Err()
}

// planCopy returns the moves of h's copy set whose From is from: the
// holders the ring no longer names, paired in sorted order with the ring
// owners that hold nothing. A copy set with a holder that is not active,
// or fewer copies than wanted, is left to repair.
func planCopy(h fsm.Held, from osprey.NodeID, rg *ring.Ring, replicas int, active map[osprey.NodeID]bool) []fsm.Move {
	var key []byte
	var holders []osprey.NodeID
	want := replicas
	ch := h.Chunk
	switch {
	case h.Object:
		key, holders = ring.ChunkKey(uint64(h.Content), 0), h.Location.Nodes
	case ch.EC != nil:
		want = len(ch.EC.Shards)
		if rg.Len() < want {
			return nil
		}
		key = ring.ChunkKey(ch.Blob, ch.Num)
		for _, sh := range ch.EC.Shards {
			holders = append(holders, sh.Owner)
		}
	default:
		key, holders = ring.ChunkKey(ch.Blob, ch.Num), ch.Owners
	}
	if len(holders) < want {
		return nil
	}
	seen := map[osprey.NodeID]bool{}
	for _, o := range holders {
		if !active[o] || seen[o] {
			return nil // lost or doubled copy: repair's business
		}
		seen[o] = true
	}
	want = min(want, rg.Len())
	wanted := map[osprey.NodeID]bool{}
	var missing []osprey.NodeID
	for _, o := range rg.Owners(key, want) {
		wanted[osprey.NodeID(o)] = true
		if !seen[osprey.NodeID(o)] {
			missing = append(missing, osprey.NodeID(o))
		}
	}
	// Excess copies in a stable order: replicas and objects by holder,
	// shards by index.
	type excess struct {
		owner osprey.NodeID
		shard int
	}
	var extra []excess
	for i, o := range holders {
		if !wanted[o] {
			e := excess{owner: o}
			if ch.EC != nil && !h.Object {
				e.shard = i + 1
			}
			extra = append(extra, e)
		}
	}
	if ch.EC == nil || h.Object {
		sort.Slice(extra, func(i, j int) bool { return extra[i].owner < extra[j].owner })
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i] < missing[j] })
	var out []fsm.Move
	for i := 0; i < len(extra) && i < len(missing); i++ {
		if extra[i].owner != from {
			continue
		}
		m := fsm.Move{From: from, To: missing[i], Size: h.Size}
		if h.Object {
			m.Content, m.Object, m.Bucket, m.Key = h.Content, true, h.Location.Bucket, h.Location.Key
		} else {
			m.File, m.Content, m.Blob, m.Num, m.Shard = h.File, h.Content, ch.Blob, ch.Num, extra[i].shard
			if m.Shard > 0 {
				m.Size = ch.EC.Shards[m.Shard-1].Size
			}
		}
		out = append(out, m)
	}
	return out
}

// --- moves ---

type moveHandler struct{ r *Rebalancer }

// Type is fsm.TaskRebalance.
func (moveHandler) Type() string { return fsm.TaskRebalance }

// Run copies every move of the task, Parallel at a time, and completes
// with the ones that succeeded; failed ones are planned again later.
func (h moveHandler) Run(ctx context.Context, t fsm.Task) (*tasks.Completion, error) {
	r := h.r
	var p fsm.RebalancePayload
	if err := json.Unmarshal(t.Payload, &p); err != nil {
		return nil, tasks.Permanent(fmt.Errorf("rebalance: bad payload: %w", err))
	}
	workers := memberWorkers(r.cfg.State.Nodes())
	done := make([]bool, len(p.Moves))
	sem := make(chan struct{}, r.cfg.Parallel)
	var wg sync.WaitGroup
	for i, m := range p.Moves {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			copied, err := r.move(ctx, m)
			switch {
			case err != nil:
				r.failed.Inc()
				r.log.Info("move failed", "from", m.From, "to", m.To, "blob", m.Blob, "content", m.Content, "err", err)
			case copied:
				done[i] = true
				r.moves.Inc()
				r.bytes.Add(float64(m.Size))
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var moved []fsm.Move
	for i, m := range p.Moves {
		if done[i] {
			m.ToWorker = workers[string(m.To)]
			moved = append(moved, m)
		}
	}
	return &tasks.Completion{Type: fsm.CmdRebalanceDone, Payload: fsm.RebalanceDone{TaskID: t.ID, Node: osprey.NodeID(r.cfg.ID),
		Moved: moved, Now: time.Now().UnixMilli()}}, nil
}

// move copies m's data to m.To and verifies it. It reports false without
// an error when the record no longer wants the move (done already, or the
// data went away).
func (r *Rebalancer) move(ctx context.Context, m fsm.Move) (bool, error) {
	c := r.cfg
	if m.Object {
		ct, ok := c.State.Content(m.Content)
		if !ok || ct.Location == nil || !hasNode(ct.Location.Nodes, m.From) || hasNode(ct.Location.Nodes, m.To) {
			return false, nil
		}
		// Bounded by progress, not time: the throttle paces the copy.
		stall, ctx, stop := tasks.GuardStall(ctx, tasks.CopyMinTime)
		defer stop()
		var src io.ReadCloser = io.NopCloser(bytes.NewReader(nil))
		if ct.Size > 0 {
			var err error
			if src, err = c.Data.OpenTiered(ctx, ct, 0, ct.Size); err != nil {
				return false, err
			}
		}
		defer src.Close()
		// The receiving backend verifies the md5 before the copy is
		// visible.
		body := stall.Reader(&throttled{ctx: ctx, r: src, b: r.bucket})
		if err := c.Data.PutObjectOn(ctx, string(m.To), ct.Location.Bucket, ct.Location.Key, body, ct.Size, ct.MD5); err != nil {
			return false, fmt.Errorf("copy object %s to %s: %w", ct.ID, m.To, tasks.WithStall(ctx, err))
		}
		return true, nil
	}
	ch, ok := c.State.ChunkRecord(m.File, m.Content, m.Blob)
	if !ok {
		return false, nil
	}
	if err := r.bucket.wait(ctx, ch.Size); err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, tasks.CopyDeadline(ch.Size))
	defer cancel()
	if m.Shard > 0 {
		if ch.EC == nil || m.Shard > len(ch.EC.Shards) || ch.EC.Shards[m.Shard-1].Owner != m.From || hasNode(ch.Owners, m.To) {
			return false, nil
		}
		rd := c.Data.OpenECRange(ctx, ch, 0, ch.Size, "")
		defer rd.Close()
		buf, release, err := c.Data.ReadPiece(ctx, rd, ch.Size+1, ch.Size+1)
		if err != nil {
			return false, err
		}
		defer release()
		if sum := md5.Sum(buf); int64(len(buf)) != ch.Size || hex.EncodeToString(sum[:]) != ch.MD5 {
			return false, fmt.Errorf("decoded chunk %d/%d does not match its record", ch.Blob, ch.Num)
		}
		shards, infos, err := erasure.Encode(erasure.Policy{K: ch.EC.K, M: ch.EC.M}, buf)
		if err != nil {
			return false, err
		}
		idx := m.Shard - 1
		if infos[idx].Sum != ch.EC.Shards[idx].Sum {
			return false, fmt.Errorf("re-encoded shard %d of chunk %d/%d differs from its record", idx, ch.Blob, ch.Num)
		}
		ref := httpapi.ChunkRef{Blob: ch.Blob, Num: ch.Num, Shard: uint16(m.Shard)}
		return true, c.Data.PutChunkOn(ctx, string(m.To), ref, shards[idx], infos[idx].Sum)
	}
	if ch.EC != nil || !hasNode(ch.Owners, m.From) || hasNode(ch.Owners, m.To) {
		return false, nil
	}
	cr := c.Data.OpenCopies(ctx, ch, 0, ch.Size)
	defer cr.Close()
	buf, release, err := c.Data.ReadPiece(ctx, cr, ch.Size+1, ch.Size+1)
	if err != nil {
		return false, err
	}
	defer release()
	if sum := md5.Sum(buf); int64(len(buf)) != ch.Size || hex.EncodeToString(sum[:]) != ch.MD5 {
		return false, fmt.Errorf("copy of chunk %d/%d does not match its record", ch.Blob, ch.Num)
	}
	// To reports the checksum of what it stored; PutChunkOn checks it.
	if err := c.Data.PutChunkOn(ctx, string(m.To), httpapi.ChunkRef{Blob: ch.Blob, Num: ch.Num}, buf, ch.Sum); err != nil {
		return false, err
	}
	return true, nil
}

// --- releases ---

type releaseHandler struct{ r *Rebalancer }

// Type is fsm.TaskRelease.
func (releaseHandler) Type() string { return fsm.TaskRelease }

// Run deletes each released copy unless the current record names its
// holder again (a later move or repair put it back there). The record is
// read again after the copy's generation (datapath's ReleaseCopy), and
// the delete removes only that generation: a release delayed in the
// network past a later move back to its holder removes nothing.
func (h releaseHandler) Run(ctx context.Context, t fsm.Task) (*tasks.Completion, error) {
	c := h.r.cfg
	var p fsm.ReleasePayload
	if err := json.Unmarshal(t.Payload, &p); err != nil {
		return nil, tasks.Permanent(fmt.Errorf("release: bad payload: %w", err))
	}
	var errs []error
	for _, m := range p.Moves {
		if rec, ok := c.State.Node(m.From); !ok || rec.Removed {
			continue // its data went with it
		}
		if m.Object {
			kept := func() bool {
				ct, ok := c.State.Content(m.Content)
				return ok && ct.Location != nil && hasNode(ct.Location.Nodes, m.From)
			}
			if kept() {
				continue
			}
			if err := c.Data.ReleaseObject(ctx, m.From, m.Bucket, m.Key, kept); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		kept := func() bool {
			ch, ok := c.State.ChunkRecord(m.File, m.Content, m.Blob)
			return ok && (m.Shard == 0 && ch.EC == nil && hasNode(ch.Owners, m.From) ||
				m.Shard > 0 && ch.EC != nil && m.Shard <= len(ch.EC.Shards) && ch.EC.Shards[m.Shard-1].Owner == m.From)
		}
		if kept() {
			continue
		}
		ref := httpapi.ChunkRef{Blob: m.Blob, Num: m.Num, Shard: uint16(m.Shard)}
		if err := c.Data.ReleaseCopy(ctx, m.From, ref, kept); err != nil {
			errs = append(errs, err)
		}
	}
	return nil, errors.Join(errs...)
}

// --- helpers ---

func hasNode(ids []osprey.NodeID, id osprey.NodeID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// memberWorkers maps every current member to its worker id.
func memberWorkers(nodes []fsm.Node) map[string]*uint32 {
	out := map[string]*uint32{}
	for _, rec := range nodes {
		if !rec.Removed {
			w := rec.WorkerID
			out[string(rec.ID)] = &w
		}
	}
	return out
}

// tokenBucket paces bytes to rate per second with a burst of one second's
// worth; a request larger than the tokens left borrows and waits the debt
// off, so chunks of any size pass.
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64
	tokens float64
	last   time.Time
}

func newTokenBucket(rate int64) *tokenBucket {
	return &tokenBucket{rate: float64(rate), tokens: float64(rate), last: time.Now()}
}

func (b *tokenBucket) wait(ctx context.Context, n int64) error {
	if b.rate <= 0 || n <= 0 {
		return ctx.Err()
	}
	b.mu.Lock()
	now := time.Now()
	b.tokens = math.Min(b.rate, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	b.tokens -= float64(n)
	d := time.Duration(-b.tokens / b.rate * float64(time.Second))
	b.mu.Unlock()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// throttled paces a stream through a token bucket.
type throttled struct {
	ctx context.Context
	r   io.Reader
	b   *tokenBucket
}

func (t *throttled) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if werr := t.b.wait(t.ctx, int64(n)); werr != nil && err == nil {
		err = werr
	}
	return n, err
}
