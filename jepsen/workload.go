package jepsen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Mix weights what a client process does next. Weights need not sum to 1.
type Mix struct {
	NewFile   float64 // link + upload (single or chunked)
	Read      float64 // stat, checkpoint, full or ranged download of any known uid
	Dedup     float64 // POST /resume with pooled content
	Resume    float64 // resume an own unfinished chunked upload via /checkpoint
	Delete    float64 // delete an own file
	Chunked   float64 // probability that a new file is uploaded in chunks
	Interrupt float64 // probability that a chunked upload stops half way first
	PoolShare float64 // probability that a new file uses pooled (dedup) content
}

// DefaultMix exercises the whole user flow.
func DefaultMix() Mix {
	return Mix{NewFile: 0.35, Read: 0.45, Dedup: 0.07, Resume: 0.05, Delete: 0.08,
		Chunked: 0.5, Interrupt: 0.3, PoolShare: 0.12}
}

// WorkloadConfig configures the client processes.
type WorkloadConfig struct {
	Seed        int64         // derives every process's randomness and all content
	Processes   int           // concurrent client processes
	Mix         Mix           // what they do
	MetaTimeout time.Duration // per metadata request (default 5s)
	DataTimeout time.Duration // per upload/download request (default 20s)
}

// File is what the workload knows about one uid. The uid's content never
// changes: every upload, chunk and retry sends bytes of the same Content,
// so any successful download must return exactly those bytes.
type File struct {
	UID     string
	Name    string
	Content Content
	Link    LinkItem
	Owner   int
	Chunks  []int64 // chunk sizes when uploaded in chunks
	Chunked bool
	// Written is set once an upload, merge or dedup creation came back ok
	// or info (the file may be complete).
	Written bool
	// Deleted is set once a delete came back ok or info.
	Deleted bool
}

// Workload runs client processes against the cluster and records every
// request in the history.
type Workload struct {
	cfg   WorkloadConfig
	api   *API
	rec   *Recorder
	nodes []*Node
	pool  []Content

	// hard bounds requests; the ctx passed to Run only stops new steps, so
	// ops in flight at the end complete instead of turning into info.
	hard context.Context

	mu    sync.Mutex
	files map[string]*File
	uids  []string
	seq   int
	// probes counts Probe calls (their process names).
	probes int
	// health steers requests away from nodes that stopped answering.
	health *nodeHealth
}

// NewWorkload prepares a workload; Run starts it.
func NewWorkload(cfg WorkloadConfig, api *API, rec *Recorder, nodes []*Node) *Workload {
	if cfg.MetaTimeout == 0 {
		cfg.MetaTimeout = 5 * time.Second
	}
	if cfg.DataTimeout == 0 {
		cfg.DataTimeout = 20 * time.Second
	}
	if cfg.Processes <= 0 {
		cfg.Processes = 2 * len(nodes)
	}
	w := &Workload{cfg: cfg, api: api, rec: rec, nodes: nodes, files: map[string]*File{}, health: newNodeHealth()}
	w.pool = ContentPool(cfg.Seed)
	return w
}

// ContentPool returns the run's pooled contents: uploaded by several
// files, they exercise dedup (/resume) and reference counting. Sizes
// include 0 and a chunk boundary.
func ContentPool(seed int64) []Content {
	base := uint64(seed)*1000003 + 17
	return []Content{{Seed: base, Size: 0}, {Seed: base + 1, Size: 1024}, {Seed: base + 2, Size: 100 << 10}, {Seed: base + 3, Size: MiB + 1}}
}

// PoolMD5s returns the md5s of the pooled contents.
func (w *Workload) PoolMD5s() map[string]bool {
	m := map[string]bool{}
	for _, c := range w.pool {
		m[c.MD5()] = true
	}
	return m
}

// Files returns a snapshot of every file the workload learnt of.
func (w *Workload) Files() []File {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]File, 0, len(w.uids))
	for _, u := range w.uids {
		out = append(out, *w.files[u])
	}
	return out
}

type proc struct {
	id   int
	name string
	rng  *rand.Rand
}

// Run runs the client processes until ctx ends. Requests in flight then
// still complete, bounded by their timeouts and by hard.
func (w *Workload) Run(ctx, hard context.Context) {
	w.hard = hard
	var wg sync.WaitGroup
	for i := 0; i < w.cfg.Processes; i++ {
		p := &proc{id: i, name: fmt.Sprintf("c%d", i), rng: rand.New(rand.NewPCG(uint64(w.cfg.Seed), uint64(i)+1))}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				w.step(ctx, p)
			}
		}()
	}
	wg.Wait()
}

func (w *Workload) step(ctx context.Context, p *proc) {
	m := w.cfg.Mix
	total := m.NewFile + m.Read + m.Dedup + m.Resume + m.Delete
	r := p.rng.Float64() * total
	switch {
	case r < m.NewFile:
		w.newFiles(ctx, p, nil)
	case r < m.NewFile+m.Read:
		if f := w.pickFile(p, func(*File) bool { return true }); f != nil {
			w.read(ctx, p, f)
		} else {
			w.newFiles(ctx, p, nil)
		}
	case r < m.NewFile+m.Read+m.Dedup:
		w.dedup(ctx, p)
	case r < m.NewFile+m.Read+m.Dedup+m.Resume:
		if f := w.pickFile(p, func(f *File) bool { return f.Owner == p.id && f.Chunked && !f.Written && !f.Deleted }); f != nil {
			w.resumeChunked(ctx, p, f)
		}
	default:
		if f := w.pickFile(p, func(f *File) bool { return f.Owner == p.id && !f.Deleted }); f != nil {
			w.delete(ctx, p, f)
		}
	}
}

// pickFile returns a random file matching ok, preferring recent ones.
func (w *Workload) pickFile(p *proc, ok func(*File) bool) *File {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(w.uids)
	if n == 0 {
		return nil
	}
	for try := 0; try < 20; try++ {
		// Half the picks come from the 20 newest files, where writes and
		// reads are most likely to be concurrent.
		i := p.rng.IntN(n)
		if p.rng.IntN(2) == 0 && n > 20 {
			i = n - 1 - p.rng.IntN(20)
		}
		if f := w.files[w.uids[i]]; ok(f) {
			return f
		}
	}
	return nil
}

// node picks a random node for p's next request, steering clear of a node
// that stopped answering (health.go).
func (w *Workload) node(p *proc) *Node { return w.health.pick(w.nodes, p.rng.IntN(len(w.nodes))) }

// do records one request as an op. fn may fill op.Value and op.Key.
func (w *Workload) do(ctx context.Context, op Op, timeout time.Duration, fn func(ctx context.Context, op *Op) error) Op {
	op = w.rec.Invoke(op)
	cctx, cancel := context.WithTimeout(w.hardCtx(ctx), timeout)
	err := fn(cctx, &op)
	cancel()
	return w.finish(op, err)
}

// hardCtx is the context requests run under: the hard one during Run,
// ctx itself otherwise (the final reads).
func (w *Workload) hardCtx(ctx context.Context) context.Context {
	if w.hard != nil {
		return w.hard
	}
	return ctx
}

func (w *Workload) finish(op Op, err error) Op {
	op.Outcome, op.Status = Classify(err)
	if op.Node != "" {
		w.health.report(op.Node, err == nil || op.Status != 0)
	}
	if err != nil {
		op.Error = opError(err)
	}
	return w.rec.Complete(op)
}

// maxOpError bounds the error text an operation keeps in the history. The
// checker reads it: a "no readable copy" answer names every holder with
// what reaching it answered (~250 bytes each, up to one per replica or
// shard), and a holder whose answer was cut short cannot be told apart
// from one that answered (seed 488522862: the second holder's "i/o
// timeout" fell past the old limit of 300 bytes, and a read refused by a
// partition counted as a failed rebalance read).
const maxOpError = 4096

// opError is err's text as the history keeps it.
func opError(err error) string { return truncate(err.Error(), maxOpError) }

var exts = []string{"jpg", "png", "mp4", "mp3", "pdf", "zip", "bin", "tar"}

// pickSize favours sizes osproxy got wrong: 0, 1 and 1 MiB ± 1.
func pickSize(rng *rand.Rand) int64 {
	r := rng.Float64()
	switch {
	case r < 0.05:
		return 0
	case r < 0.10:
		return 1
	case r < 0.17:
		return MiB - 1
	case r < 0.24:
		return MiB
	case r < 0.31:
		return MiB + 1
	case r < 0.34:
		return 2*MiB + 1
	case r < 0.75:
		return 2 + rng.Int64N(64<<10)
	}
	return 64<<10 + rng.Int64N(MiB+MiB/2)
}

// planChunks splits size into chunk sizes, at most 12 chunks of at most
// 1 MiB + 1 bytes, often on the 1 MiB boundary.
func planChunks(rng *rand.Rand, size int64) []int64 {
	var cs int64
	switch rng.IntN(5) {
	case 0:
		cs = MiB
	case 1:
		cs = MiB - 1
	case 2:
		cs = MiB + 1
	case 3:
		cs = 256 << 10
	default:
		cs = 1 + rng.Int64N(size)
	}
	if cs > MiB+1 {
		cs = MiB + 1
	}
	if size/cs >= 12 {
		cs = (size + 11) / 12
	}
	var out []int64
	for left := size; left > 0; left -= cs {
		out = append(out, min(cs, left))
	}
	return out
}

func (w *Workload) register(f *File) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.files[f.UID]; ok {
		return // a duplicate uid; the checker reports it
	}
	w.files[f.UID] = f
	w.uids = append(w.uids, f.UID)
}

func (w *Workload) update(f *File, fn func(f *File)) {
	w.mu.Lock()
	fn(f)
	w.mu.Unlock()
}

// newFiles links one to three paths in one request and uploads each.
// content, if given, is used for the (single) file.
func (w *Workload) newFiles(ctx context.Context, p *proc, content *Content) {
	k := 1
	if content == nil && p.rng.IntN(5) == 0 {
		k = 2 + p.rng.IntN(2)
	}
	w.mu.Lock()
	w.seq++
	seq := w.seq
	w.mu.Unlock()
	node := w.node(p)
	var ops []Op
	var names []string
	var contents []Content
	for i := 0; i < k; i++ {
		name := fmt.Sprintf("jepsen/%s-%d-%d.%s", p.name, seq, i, exts[p.rng.IntN(len(exts))])
		c := Content{Seed: p.rng.Uint64(), Size: pickSize(p.rng)}
		switch {
		case content != nil:
			c = *content
		case p.rng.Float64() < w.cfg.Mix.PoolShare:
			c = w.pool[p.rng.IntN(len(w.pool))]
		}
		names, contents = append(names, name), append(contents, c)
		ops = append(ops, w.rec.Invoke(Op{Process: p.name, Type: OpLink, Node: node.ID, Value: OpValue{Name: name}}))
	}
	cctx, cancel := context.WithTimeout(w.hardCtx(ctx), w.cfg.MetaTimeout)
	items, err := w.api.Link(cctx, node.Base(), names)
	cancel()
	var files []*File
	for i, op := range ops {
		if err == nil {
			op.Key = items[i].UID
			op.Value.UID = items[i].UID
			if items[i].UID == "" {
				err = &StatusError{Status: http.StatusOK, Message: "link reply without uid"}
			}
		}
		w.finish(op, err)
		if err == nil {
			f := &File{UID: items[i].UID, Name: names[i], Content: contents[i], Link: items[i], Owner: p.id}
			w.register(f)
			files = append(files, f)
		}
	}
	for _, f := range files {
		if ctx.Err() != nil {
			return
		}
		if f.Content.Size > 0 && p.rng.Float64() < w.cfg.Mix.Chunked {
			w.update(f, func(f *File) { f.Chunked, f.Chunks = true, planChunks(p.rng, f.Content.Size) })
			w.uploadChunked(ctx, p, f)
		} else {
			w.uploadSingle(ctx, p, f)
		}
	}
}

// retry runs attempt up to n times while it fails certainly (503, refused)
// or with an unknown outcome, backing off briefly. It returns the last op.
func (w *Workload) retry(ctx context.Context, p *proc, n int, attempt func() Op) Op {
	var op Op
	for i := 0; i < n && ctx.Err() == nil; i++ {
		op = attempt()
		if op.Outcome == OK || (op.Outcome == Fail && op.Status >= 400 && op.Status < 500) {
			return op
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(100+p.rng.IntN(400)) * time.Millisecond):
		}
	}
	return op
}

func (w *Workload) uploadSingle(ctx context.Context, p *proc, f *File) {
	c := f.Content
	w.retry(ctx, p, 4, func() Op {
		node := w.node(p)
		form := "raw"
		if p.rng.IntN(4) == 0 {
			form = "multipart"
		}
		op := w.do(ctx, Op{Process: p.name, Type: OpUpload, Key: f.UID, Node: node.ID,
			Value: OpValue{MD5: c.MD5(), Size: c.Size, Seed: c.Seed, Form: form}}, w.cfg.DataTimeout,
			func(ctx context.Context, _ *Op) error {
				return w.api.Upload(ctx, node.Base(), f.Link.URL.Single, c, form == "multipart")
			})
		if op.Outcome != Fail {
			w.update(f, func(f *File) { f.Written = true })
		}
		return op
	})
}

func chunkOffset(sizes []int64, n int) int64 {
	var off int64
	for i := 0; i < n-1; i++ {
		off += sizes[i]
	}
	return off
}

func (w *Workload) uploadChunk(ctx context.Context, p *proc, f *File, n int) Op {
	c := f.Content
	off, size := chunkOffset(f.Chunks, n), f.Chunks[n-1]
	return w.retry(ctx, p, 4, func() Op {
		node := w.node(p) // chunks of one file go through different nodes
		return w.do(ctx, Op{Process: p.name, Type: OpChunk, Key: f.UID, Node: node.ID,
			Value: OpValue{Chunk: n, Offset: off, Length: size, Seed: c.Seed, MD5: c.RangeMD5(off, size)}}, w.cfg.DataTimeout,
			func(ctx context.Context, _ *Op) error {
				return w.api.Chunk(ctx, node.Base(), f.Link.URL.Multi.Upload, c, n, off, size)
			})
	})
}

func (w *Workload) merge(ctx context.Context, p *proc, f *File) Op {
	c := f.Content
	num := len(f.Chunks)
	return w.retry(ctx, p, 4, func() Op {
		node := w.node(p)
		op := w.do(ctx, Op{Process: p.name, Type: OpMerge, Key: f.UID, Node: node.ID,
			Value: OpValue{MD5: c.MD5(), Size: c.Size, Seed: c.Seed, Num: num}}, w.cfg.MetaTimeout,
			func(ctx context.Context, _ *Op) error {
				return w.api.Merge(ctx, node.Base(), f.Link.URL.Multi.Merge, c, num)
			})
		if op.Outcome == OK || op.Outcome == Info {
			w.update(f, func(f *File) { f.Written = true })
		}
		return op
	})
}

// uploadChunked uploads the chunks in a random order; sometimes it stops
// half way, checks the checkpoint and tries an early merge (which must be
// refused with nothing deleted) before finishing.
func (w *Workload) uploadChunked(ctx context.Context, p *proc, f *File) {
	num := len(f.Chunks)
	order := p.rng.Perm(num)
	first := num
	if num > 1 && p.rng.Float64() < w.cfg.Mix.Interrupt {
		first = 1 + p.rng.IntN(num-1)
	}
	for _, i := range order[:first] {
		if ctx.Err() != nil {
			return
		}
		w.uploadChunk(ctx, p, f, i+1)
	}
	if first < num {
		w.checkpoint(ctx, p, f)
		w.merge(ctx, p, f) // expected: 409, chunks missing
		if p.rng.IntN(3) == 0 {
			return // abandoned for now; a later resume step finishes it
		}
		for _, i := range order[first:] {
			if ctx.Err() != nil {
				return
			}
			w.uploadChunk(ctx, p, f, i+1)
		}
		w.checkpoint(ctx, p, f)
	}
	w.merge(ctx, p, f)
}

// resumeChunked is the client's resume flow: ask /checkpoint which chunks
// are stored, upload the others, merge.
func (w *Workload) resumeChunked(ctx context.Context, p *proc, f *File) {
	op := w.checkpoint(ctx, p, f)
	if op.Outcome != OK {
		return
	}
	have := map[int]bool{}
	for _, n := range op.Value.Chunks {
		have[n] = true
	}
	for n := 1; n <= len(f.Chunks); n++ {
		if !have[n] && ctx.Err() == nil {
			w.uploadChunk(ctx, p, f, n)
		}
	}
	w.merge(ctx, p, f)
}

func (w *Workload) checkpoint(ctx context.Context, p *proc, f *File) Op {
	node := w.node(p)
	return w.do(ctx, Op{Process: p.name, Type: OpCheckpoint, Key: f.UID, Node: node.ID}, w.cfg.MetaTimeout,
		func(ctx context.Context, op *Op) error {
			ns, err := w.api.Checkpoint(ctx, node.Base(), f.UID)
			sort.Ints(ns)
			op.Value.Chunks = ns
			return err
		})
}

func (w *Workload) dedup(ctx context.Context, p *proc) {
	c := w.pool[p.rng.IntN(len(w.pool))]
	w.mu.Lock()
	w.seq++
	name := fmt.Sprintf("jepsen/%s-%d-dedup.%s", p.name, w.seq, exts[p.rng.IntN(len(exts))])
	w.mu.Unlock()
	node := w.node(p)
	op := w.do(ctx, Op{Process: p.name, Type: OpResume, Node: node.ID, Value: OpValue{Name: name, MD5: c.MD5(), Size: c.Size, Seed: c.Seed}},
		w.cfg.MetaTimeout, func(ctx context.Context, op *Op) error {
			uid, err := w.api.Resume(ctx, node.Base(), c.MD5(), name)
			if err == nil {
				found := uid != ""
				op.Value.Found, op.Value.UID, op.Key = &found, uid, uid
			}
			return err
		})
	if op.Outcome != OK {
		return
	}
	if op.Key != "" {
		w.register(&File{UID: op.Key, Name: name, Content: c, Owner: p.id, Written: true})
		return
	}
	w.newFiles(ctx, p, &c) // not known yet: upload it normally
}

func (w *Workload) delete(ctx context.Context, p *proc, f *File) {
	node := w.node(p)
	op := w.do(ctx, Op{Process: p.name, Type: OpDelete, Key: f.UID, Node: node.ID}, w.cfg.MetaTimeout,
		func(ctx context.Context, _ *Op) error { return w.api.Delete(ctx, node.Base(), f.UID) })
	if op.Outcome == OK || op.Outcome == Info {
		w.update(f, func(f *File) { f.Deleted = true })
	}
}

func (w *Workload) read(ctx context.Context, p *proc, f *File) {
	switch r := p.rng.IntN(20); {
	case r < 7:
		w.stat(ctx, p, f, false, w.node(p))
	case r < 9:
		w.checkpoint(ctx, p, f)
	case r < 14:
		w.download(ctx, p, f, "", false, w.node(p), w.node(p))
	default:
		w.download(ctx, p, f, pickRange(p.rng, f.Content.Size), false, w.node(p), w.node(p))
	}
}

func (w *Workload) stat(ctx context.Context, p *proc, f *File, final bool, node *Node) Op {
	return w.do(ctx, Op{Process: p.name, Type: OpStat, Key: f.UID, Node: node.ID, Final: final}, w.cfg.MetaTimeout,
		func(ctx context.Context, op *Op) error {
			oi, err := w.api.Stat(ctx, node.Base(), f.UID)
			if err != nil {
				return err
			}
			op.Value.State, op.Value.MD5 = oi.State, oi.MD5
			if oi.Size != "" {
				sz, perr := strconv.ParseInt(string(oi.Size), 10, 64)
				if perr != nil {
					return &StatusError{Status: http.StatusOK, Message: "bad size " + string(oi.Size)}
				}
				op.Value.Size = sz
			}
			return nil
		})
}

// pickRange returns a Range header: the RFC 9110 forms, edge cases such as
// bytes=0-0 and ranges ending at EOF, and now and then an unsatisfiable one.
func pickRange(rng *rand.Rand, size int64) string {
	if size == 0 {
		return "bytes=0-"
	}
	a := rng.Int64N(size)
	switch rng.IntN(7) {
	case 0:
		return "bytes=0-0"
	case 1:
		return fmt.Sprintf("bytes=%d-", a)
	case 2:
		return fmt.Sprintf("bytes=-%d", 1+rng.Int64N(size+5))
	case 3:
		return fmt.Sprintf("bytes=%d-%d", a, size-1) // ends at EOF
	case 4:
		return fmt.Sprintf("bytes=%d-", size) // unsatisfiable
	case 5:
		return fmt.Sprintf("bytes=%d-%d", a, a+rng.Int64N(size+10)) // may run past EOF
	}
	return fmt.Sprintf("bytes=%d-%d", a, a+rng.Int64N(size-a))
}

// expectRange resolves a Range header against size per RFC 9110:
// satisfiable ranges give (start, length); unsatisfiable ones ok=false.
func expectRange(h string, size int64) (start, length int64, ok bool) {
	spec := strings.TrimPrefix(h, "bytes=")
	a, b, _ := strings.Cut(spec, "-")
	if a == "" {
		n, _ := strconv.ParseInt(b, 10, 64)
		if n <= 0 || size == 0 {
			return 0, 0, false
		}
		n = min(n, size)
		return size - n, n, true
	}
	s, _ := strconv.ParseInt(a, 10, 64)
	if s >= size {
		return 0, 0, false
	}
	e := size - 1
	if b != "" {
		e, _ = strconv.ParseInt(b, 10, 64)
		e = min(e, size-1)
	}
	return s, e - s + 1, true
}

// download fetches a signed link from one node and the bytes from another
// and compares them with the file's content.
func (w *Workload) download(ctx context.Context, p *proc, f *File, rangeHdr string, final bool, linkNode, dataNode *Node) Op {
	c := f.Content
	op := w.rec.Invoke(Op{Process: p.name, Type: OpDownload, Key: f.UID, Node: linkNode.ID + "/" + dataNode.ID,
		Final: final, Value: OpValue{Range: rangeHdr, MD5: c.MD5(), Size: c.Size}})
	hard := w.hardCtx(ctx)
	lctx, cancel := context.WithTimeout(hard, w.cfg.MetaTimeout)
	link, err := w.api.DownloadLink(lctx, linkNode.Base(), f.UID)
	cancel()
	if err != nil {
		return w.finish(op, err)
	}
	resp, done, err := w.api.Download(hard, dataNode.Base(), link, rangeHdr, w.cfg.DataTimeout)
	start, length, satisfiable := int64(0), c.Size, true
	if rangeHdr != "" {
		start, length, satisfiable = expectRange(rangeHdr, c.Size)
	}
	op.Value.Offset, op.Value.Length = start, length
	if err != nil {
		var se *StatusError
		if errors.As(err, &se) && se.Status == http.StatusRequestedRangeNotSatisfiable {
			if !satisfiable {
				return w.finish(op, nil)
			}
			op.Value.Bad = fmt.Sprintf("416 for satisfiable range (size %d)", c.Size)
			return w.finish(op, nil)
		}
		return w.finish(op, err)
	}
	defer done()
	defer resp.Body.Close()
	switch {
	case rangeHdr == "" && resp.StatusCode != http.StatusOK:
		op.Value.Bad = fmt.Sprintf("status %d without Range", resp.StatusCode)
	case rangeHdr != "" && !satisfiable:
		op.Value.Bad = fmt.Sprintf("status %d for unsatisfiable range (size %d), want 416", resp.StatusCode, c.Size)
	case rangeHdr != "" && resp.StatusCode != http.StatusPartialContent:
		op.Value.Bad = fmt.Sprintf("status %d for a range, want 206", resp.StatusCode)
	case rangeHdr != "":
		want := fmt.Sprintf("bytes %d-%d/%d", start, start+length-1, c.Size)
		if got := resp.Header.Get("Content-Range"); got != want {
			op.Value.Bad = fmt.Sprintf("Content-Range %q, want %q", got, want)
		}
	}
	if et := resp.Header.Get("ETag"); op.Value.Bad == "" && et != "" && !strings.Contains(et, c.MD5()) {
		op.Value.Bad = fmt.Sprintf("ETag %s, want the md5 %s", et, c.MD5())
	}
	if op.Value.Bad != "" {
		return w.finish(op, nil)
	}
	bad, rerr := c.Compare(resp.Body, start, length)
	if rerr != nil {
		// The stream broke mid-way (timeout, reset): unknown, not wrong.
		return w.finish(op, &RequestError{Err: fmt.Errorf("reading body: %w", rerr), Sent: true})
	}
	op.Value.Bad = bad
	return w.finish(op, nil)
}

// Final reads every known file after healing: a stat (which the
// linearizability check sees) and, if the file may be complete, a full
// download, retried on other nodes while the outcome is not definite.
func (w *Workload) Final(ctx context.Context, parallel int) {
	w.hard = nil
	files := w.Files()
	ch := make(chan File)
	var wg sync.WaitGroup
	for i := 0; i < parallel; i++ {
		p := &proc{id: 1000 + i, name: fmt.Sprintf("final%d", i), rng: rand.New(rand.NewPCG(uint64(w.cfg.Seed), uint64(1000+i)))}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range ch {
				w.finalFile(ctx, p, &f)
			}
		}()
	}
	for _, f := range files {
		select {
		case ch <- f:
		case <-ctx.Done():
		}
	}
	close(ch)
	wg.Wait()
}

func (w *Workload) finalFile(ctx context.Context, p *proc, f *File) {
	var st Op
	for i := 0; i < 5 && ctx.Err() == nil; i++ {
		st = w.stat(ctx, p, f, true, w.nodes[(i+p.rng.IntN(len(w.nodes)))%len(w.nodes)])
		if st.Outcome == OK || st.Status == http.StatusNotFound {
			break
		}
	}
	maybeComplete := f.Written || (st.Outcome == OK && st.Value.State != "uploading")
	if !maybeComplete || f.Deleted && st.Status == http.StatusNotFound {
		return
	}
	for i := 0; i < 5 && ctx.Err() == nil; i++ {
		n := w.nodes[(i+p.rng.IntN(len(w.nodes)))%len(w.nodes)]
		op := w.download(ctx, p, f, "", true, n, n)
		if op.Outcome == OK || (op.Outcome == Fail && op.Status == http.StatusNotFound && f.Deleted) {
			return
		}
	}
}

// Probe downloads files whose writes were acknowledged, one after another
// from random nodes, until ctx ends: the member nemesis runs it while
// copies move to a rejoined member (checkRebalanceReads judges it).
func (w *Workload) Probe(ctx context.Context) {
	w.mu.Lock()
	w.probes++
	p := &proc{id: 2000 + w.probes, name: fmt.Sprintf("probe%d", w.probes), rng: rand.New(rand.NewPCG(uint64(w.cfg.Seed), uint64(2000+w.probes)))}
	w.mu.Unlock()
	for ctx.Err() == nil {
		f := w.pickFile(p, func(f *File) bool { return f.Written && !f.Deleted })
		if f == nil {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		w.mu.Lock()
		cp := *f
		w.mu.Unlock()
		// Through members that are up: a wiped member that is joining
		// again has no files to serve yet.
		var ready []*Node
		for _, n := range w.nodes {
			if n.Ready() {
				ready = append(ready, n)
			}
		}
		if len(ready) == 0 {
			continue
		}
		w.download(ctx, p, &cp, "", false, ready[p.rng.IntN(len(ready))], ready[p.rng.IntN(len(ready))])
	}
}
