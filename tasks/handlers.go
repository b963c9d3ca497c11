package tasks

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/backend"
	"github.com/osprey-storage/osprey/datapath"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/ring"
)

// --- tier ---

// TierConfig configures the tier handler.
type TierConfig struct {
	// ID is this node's member id.
	ID string
	// LocalBackend is set when objects live on each node's own disk: a
	// tiered object is then copied to Replicas members' local backends.
	LocalBackend bool
	State        interface {
		Content(id osprey.UID) (fsm.Content, bool)
	}
	Data interface {
		OpenStaged(ctx context.Context, chunks []fsm.Chunk, off, length int64) io.ReadCloser
		PutObjectOn(ctx context.Context, owner, bucket, key string, body io.Reader, size int64, md5 string) error
	}
	Placement interface {
		Ring() (*ring.Ring, error)
		// RingWorkers: see placement.Placement.RingWorkers.
		RingWorkers() (*ring.Ring, map[osprey.NodeID]uint32, error)
		Replicas() int
	}
	Objects interface {
		EnsureBucket(ctx context.Context, bucket string) error
		Put(ctx context.Context, bucket, key string, r io.Reader, size int64, opts backend.PutOptions) (backend.ObjectInfo, error)
	}
	// TieredBytes counts bytes copied into the backend; optional.
	TieredBytes prometheus.Counter
	Logger      *slog.Logger
}

// Tier copies a merged content into the backend, verifying its md5 while
// the bytes stream, and completes with TierDone (or TierFailed when the
// bytes are not what the client declared).
type Tier struct{ cfg TierConfig }

// NewTier returns the tier handler.
func NewTier(cfg TierConfig) *Tier {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.TieredBytes == nil {
		cfg.TieredBytes = prometheus.NewCounter(prometheus.CounterOpts{Name: "osprey_tiered_bytes_total"})
	}
	return &Tier{cfg: cfg}
}

// Type is fsm.TaskTier.
func (*Tier) Type() string { return fsm.TaskTier }

// Run tiers the content the task targets; idempotent.
func (h *Tier) Run(ctx context.Context, t fsm.Task) (*Completion, error) {
	c := h.cfg
	id, err := osprey.ParseUID(t.Target)
	if err != nil {
		return nil, Permanent(fmt.Errorf("tier: bad target %q", t.Target))
	}
	ct, ok := c.State.Content(id)
	if !ok || ct.State != fsm.ContentStaged || ct.Inline {
		return nil, nil // deleted, already tiered, failed or kept inline: nothing to do
	}
	bucket, key := ct.Bucket, ct.Key
	if bucket == "" || key == "" {
		bucket, key = "unknown", ct.ID.String()
	}
	loc := fsm.Location{Bucket: bucket, Key: key}
	// The backends verify PutOptions.MD5 while the bytes stream and make
	// nothing visible on a mismatch, so the md5 is computed once, there.
	// The SHA-256 (part of the dedup key) is hashed from the same stream
	// as it passes: no second read.
	var stall *Stall
	if c.LocalBackend {
		// Every byte goes between members: a hung one fails the pass
		// (retried) instead of holding it.
		var stop func()
		stall, ctx, stop = GuardStall(ctx, CopyMinTime)
		defer stop()
	}
	staged := c.Data.OpenStaged(ctx, ct.Chunks, 0, ct.Size)
	defer staged.Close()
	var src io.Reader = staged
	if stall != nil {
		src = stall.Reader(staged)
	}
	sum := &hashingReader{r: src, h: sha256.New()}
	if ct.MD5 == "" {
		// An S3 multipart upload completes without reading its parts back:
		// its md5 is computed here, from the same stream.
		sum.md5 = md5.New()
	}
	// The members' worker ids before copying: a member removed, wiped and
	// re-added while the copies are written is a new incarnation, and the
	// FSM drops it as a holder (TierDone.HolderWorkers).
	// Once every member is at fsm.FeatureLevelWorkers the placement's map
	// is exact (a 0 is the first member's id, HolderWorkersExact).
	workers := map[osprey.NodeID]uint32{}
	exact := false
	if _, ws, rerr := c.Placement.RingWorkers(); c.LocalBackend && rerr == nil && ws != nil {
		workers, exact = ws, true
	} else if ns, ok := c.State.(interface {
		Node(id osprey.NodeID) (fsm.Node, bool)
	}); ok && c.LocalBackend {
		if r, rerr := c.Placement.Ring(); rerr == nil {
			for _, o := range r.Owners(ring.ChunkKey(uint64(ct.ID), 0), r.Len()) {
				if n, ok := ns.Node(osprey.NodeID(o)); ok {
					workers[n.ID] = n.WorkerID
				}
			}
		}
	}
	if c.LocalBackend {
		loc.Nodes, err = h.tierLocal(ctx, ct, bucket, key, sum)
		err = WithStall(ctx, err)
	} else if err = c.Objects.EnsureBucket(ctx, bucket); err == nil {
		_, err = c.Objects.Put(ctx, bucket, key, sum, ct.Size, backend.PutOptions{MD5: ct.MD5, ContentType: datapath.ContentType(key)})
	}
	if errors.Is(err, backend.ErrChecksum) {
		// The staged bytes are not what the client declared: mark the file
		// failed and keep the data for inspection.
		reason := fmt.Sprintf("md5 mismatch: the uploaded bytes do not hash to the declared %s (%v)", ct.MD5, err)
		c.Logger.Error("tier verification failed", "content", ct.ID, "reason", reason)
		return &Completion{fsm.CmdTierFailed, fsm.TierFailed{TaskID: t.ID, Node: osprey.NodeID(c.ID), Content: ct.ID, Reason: reason, Now: time.Now().UnixMilli()}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tier content %s: %w", ct.ID, err)
	}
	c.TieredBytes.Add(float64(ct.Size))
	done := fsm.TierDone{TaskID: t.ID, Node: osprey.NodeID(c.ID), Content: ct.ID, Location: loc, Now: time.Now().UnixMilli(),
		DropRemoved: true, SharedGC: true}
	// The chunks' sums outlive the staged copies once every member's FSM
	// keeps them (a replica of an earlier build would not).
	if ns, ok := c.State.(interface{ Nodes() []fsm.Node }); ok {
		lvl := fsm.ClusterLevel(ns.Nodes())
		done.KeepSums, done.KeepOneSum = lvl >= fsm.FeatureLevelSums, lvl >= fsm.FeatureLevelOneSum
	}
	if len(workers) > 0 {
		known := true
		for _, o := range loc.Nodes {
			w, ok := workers[o]
			known = known && ok
			done.HolderWorkers = append(done.HolderWorkers, w) // 0 if not seen
		}
		done.HolderWorkersExact = exact && known
	}
	// Recorded only when the hash saw exactly the content's bytes (a
	// backend that stopped reading at Size leaves nothing unread).
	if sum.n == ct.Size {
		done.SHA256 = hex.EncodeToString(sum.h.Sum(nil))
		if sum.md5 != nil {
			done.MD5 = hex.EncodeToString(sum.md5.Sum(nil))
		}
	}
	return &Completion{fsm.CmdTierDone, done}, nil
}

// hashingReader hashes and counts the bytes read through it.
type hashingReader struct {
	r   io.Reader
	h   hash.Hash
	md5 hash.Hash // nil unless the content's md5 is unknown
	n   int64
}

func (r *hashingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.h.Write(p[:n])
	if r.md5 != nil {
		r.md5.Write(p[:n])
	}
	r.n += int64(n)
	return n, err
}

// tierLocal copies the content to the local backends of `replicas` nodes
// (ring owners of the content id), reading the staged bytes once.
func (h *Tier) tierLocal(ctx context.Context, ct fsm.Content, bucket, key string, src io.Reader) ([]osprey.NodeID, error) {
	r, err := h.cfg.Placement.Ring()
	if err != nil {
		return nil, err
	}
	owners := r.Owners(ring.ChunkKey(uint64(ct.ID), 0), min(h.cfg.Placement.Replicas(), r.Len()))
	pipes := make([]*io.PipeWriter, len(owners))
	writers := make([]io.Writer, len(owners))
	errs := make([]error, len(owners))
	var wg sync.WaitGroup
	for i, o := range owners {
		pr, pw := io.Pipe()
		pipes[i], writers[i] = pw, pw
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = h.cfg.Data.PutObjectOn(ctx, o, bucket, key, pr, ct.Size, ct.MD5)
			pr.CloseWithError(errs[i]) // unblock the writer if this copy failed
		}()
	}
	_, cerr := io.Copy(io.MultiWriter(writers...), src)
	for _, pw := range pipes {
		pw.CloseWithError(cerr)
	}
	wg.Wait()
	if errors.Is(cerr, io.ErrClosedPipe) {
		// A copy that ended without an error of its own reading closes its
		// pipe, and the copy loop then sees only "read/write on closed
		// pipe": name the copy's own error.
		for i, o := range owners {
			if errs[i] != nil && !errors.Is(errs[i], io.ErrClosedPipe) { // not a copy the loop's end cut off
				if errors.Is(errs[i], backend.ErrChecksum) {
					return nil, errs[i]
				}
				return nil, fmt.Errorf("copy on %s: %w", o, errs[i])
			}
		}
	}
	if cerr != nil {
		return nil, cerr
	}
	var nodes []osprey.NodeID
	for i, o := range owners {
		if errs[i] != nil {
			if errors.Is(errs[i], backend.ErrChecksum) {
				return nil, errs[i]
			}
			return nil, fmt.Errorf("copy on %s: %w", o, errs[i])
		}
		nodes = append(nodes, osprey.NodeID(o))
	}
	return nodes, nil
}

// --- gc and delete ---

// Chunks deletes chunk copies on their owners.
type Chunks interface {
	DeleteChunks(ctx context.Context, chunks []fsm.Chunk) error
}

// GC deletes staged chunks that nothing references any more (tiered and
// past the grace period, or replaced).
type GC struct{ data Chunks }

// NewGC returns the gc handler.
func NewGC(data Chunks) *GC { return &GC{data: data} }

// Type is fsm.TaskGC.
func (*GC) Type() string { return fsm.TaskGC }

// Run deletes the chunks in the payload; owners that left are skipped.
func (h *GC) Run(ctx context.Context, t fsm.Task) (*Completion, error) {
	var p fsm.GCPayload
	if err := json.Unmarshal(t.Payload, &p); err != nil {
		return nil, Permanent(fmt.Errorf("gc: bad payload: %w", err))
	}
	return nil, h.data.DeleteChunks(ctx, p.Chunks)
}

// DeleteConfig configures the delete handler.
type DeleteConfig struct {
	State interface {
		Node(id osprey.NodeID) (fsm.Node, bool)
	}
	Data interface {
		DeleteChunks(ctx context.Context, chunks []fsm.Chunk) error
		DeleteObjectOn(ctx context.Context, owner, bucket, key string) error
	}
	Objects interface {
		Delete(ctx context.Context, bucket, key string) error
	}
}

// Delete removes an unreferenced content's staged chunks and its backend
// object (or its copies on members' local backends).
type Delete struct{ cfg DeleteConfig }

// NewDelete returns the delete handler.
func NewDelete(cfg DeleteConfig) *Delete { return &Delete{cfg: cfg} }

// Type is fsm.TaskDelete.
func (*Delete) Type() string { return fsm.TaskDelete }

// Run deletes everything the payload names; missing pieces are fine.
func (h *Delete) Run(ctx context.Context, t fsm.Task) (*Completion, error) {
	c := h.cfg
	var p fsm.DeletePayload
	if err := json.Unmarshal(t.Payload, &p); err != nil {
		return nil, Permanent(fmt.Errorf("delete: bad payload: %w", err))
	}
	err := c.Data.DeleteChunks(ctx, p.Content.Chunks)
	if loc := p.Content.Location; loc != nil {
		if len(loc.Nodes) > 0 {
			for _, o := range loc.Nodes {
				if rec, ok := c.State.Node(o); !ok || rec.Removed {
					continue
				}
				if derr := c.Data.DeleteObjectOn(ctx, string(o), loc.Bucket, loc.Key); derr != nil && !errors.Is(derr, osprey.ErrNotFound) {
					err = errors.Join(err, derr)
				}
			}
		} else if derr := c.Objects.Delete(ctx, loc.Bucket, loc.Key); derr != nil {
			err = errors.Join(err, derr)
		}
	}
	return nil, err
}

// --- webhook ---

// Webhook delivers file events to a configured URL.
type Webhook struct {
	url    string
	secret []byte
	client *http.Client
}

// NewWebhook returns the webhook handler; secret signs every delivery.
func NewWebhook(url string, secret []byte, client *http.Client) *Webhook {
	return &Webhook{url: url, secret: secret, client: client}
}

// Type is fsm.TaskWebhook.
func (*Webhook) Type() string { return fsm.TaskWebhook }

// Run POSTs the event as JSON with an HMAC-SHA256 signature of the body in
// X-Osprey-Signature ("sha256=<hex>"), so receivers can authenticate it.
func (h *Webhook) Run(ctx context.Context, t fsm.Task) (*Completion, error) {
	body := t.Payload
	var ev fsm.WebhookPayload
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, Permanent(fmt.Errorf("webhook: bad payload: %w", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, strings.NewReader(string(body)))
	if err != nil {
		return nil, Permanent(err)
	}
	m := hmac.New(sha256.New, h.secret)
	m.Write(body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Osprey-Event", ev.Event)
	req.Header.Set("X-Osprey-Delivery", strconv.FormatUint(t.ID, 10))
	req.Header.Set("X-Osprey-Signature", "sha256="+hex.EncodeToString(m.Sum(nil)))
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("webhook: %s answered %d", h.url, resp.StatusCode)
	}
	return nil, nil
}
