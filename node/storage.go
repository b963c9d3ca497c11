package node

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/chunkstore"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
	"github.com/osprey-storage/osprey/ring"
)

var _ httpapi.Storage = (*Node)(nil)

// LinkSecret returns the replicated link-signing secret.
func (n *Node) LinkSecret() ([]byte, error) {
	s := n.fsm.Secret()
	if len(s) == 0 {
		return nil, fmt.Errorf("%w: cluster not initialised yet", osprey.ErrUnavailable)
	}
	return s, nil
}

func nowMillis() int64 { return time.Now().UnixMilli() }

// CreateFiles mints uids on this node and records the files through raft.
func (n *Node) CreateFiles(ctx context.Context, items []httpapi.NewFile) ([]osprey.UID, error) {
	cmd := fsm.FilesCreate{Time: nowMillis(), Files: make([]fsm.NewFile, len(items))}
	uids := make([]osprey.UID, len(items))
	for i, it := range items {
		uid, err := n.NextUID()
		if err != nil {
			return nil, err
		}
		uids[i] = uid
		cmd.Files[i] = fsm.NewFile{UID: uid, Name: it.Name, Bucket: it.Bucket}
	}
	if err := n.prop.Apply(ctx, fsm.CmdFilesCreate, cmd, nil); err != nil {
		return nil, err
	}
	return uids, nil
}

// Resume creates dedup aliases for items whose content is stored.
func (n *Node) Resume(ctx context.Context, items []httpapi.ResumeItem) ([]osprey.UID, error) {
	if err := n.prop.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	cmd := fsm.Resume{Time: nowMillis()}
	idx := make([]int, 0, len(items))
	for i, it := range items {
		if _, ok := n.fsm.ContentByMD5(it.MD5); !ok {
			continue // certainly absent: no need to propose it
		}
		uid, err := n.NextUID()
		if err != nil {
			return nil, err
		}
		cmd.Items = append(cmd.Items, fsm.ResumeItem{UID: uid, Name: it.Name, Bucket: it.Bucket, MD5: it.MD5})
		idx = append(idx, i)
	}
	out := make([]osprey.UID, len(items))
	if len(cmd.Items) == 0 {
		return out, nil
	}
	var res fsm.ResumeResult
	if err := n.prop.Apply(ctx, fsm.CmdResume, cmd, &res); err != nil {
		return nil, err
	}
	for j, i := range idx {
		if j < len(res.UIDs) {
			out[i] = res.UIDs[j]
		}
	}
	return out, nil
}

// file reads uid's record; a miss is confirmed with a read barrier, so a
// file created through another node moments ago is found.
func (n *Node) file(ctx context.Context, uid osprey.UID, consistent bool) (fsm.File, error) {
	if !consistent {
		if f, ok := n.fsm.File(uid); ok {
			return f, nil
		}
	}
	if err := n.prop.ReadBarrier(ctx); err != nil {
		return fsm.File{}, err
	}
	f, ok := n.fsm.File(uid)
	if !ok {
		return fsm.File{}, fmt.Errorf("%w: uid %s", osprey.ErrNotFound, uid)
	}
	return f, nil
}

func (n *Node) fileInfo(f fsm.File) httpapi.FileInfo {
	info := httpapi.FileInfo{UID: f.UID, Name: f.Name, Size: f.Size, MD5: f.MD5, Bucket: f.Bucket,
		State: string(f.State), CreatedAt: time.UnixMilli(f.CreatedAt).UTC(), UpdatedAt: time.UnixMilli(f.UpdatedAt).UTC(),
		ContentType: mimeType(f.Name)}
	if f.State == fsm.StateUploading {
		info.Chunks = len(f.Chunks)
		for _, c := range f.Chunks {
			info.Size += c.Size
		}
		info.Location = "staging"
		return info
	}
	if ct, ok := n.fsm.Content(f.Content); ok {
		info.Chunks = len(ct.Chunks)
		switch {
		case ct.Location != nil:
			info.State = string(fsm.StateTiered)
			info.Location = "backend:" + ct.Location.Bucket + "/" + ct.Location.Key
		case ct.State == fsm.ContentFailed:
			info.State = string(fsm.StateFailed)
			info.Location = "staging"
		default:
			info.Location = "staging"
		}
	}
	return info
}

func mimeType(name string) string {
	if t := mime.TypeByExtension(strings.ToLower(path.Ext(name))); t != "" {
		return t
	}
	return "application/octet-stream"
}

// Stat returns a file's metadata with linearizable semantics.
func (n *Node) Stat(ctx context.Context, uid osprey.UID) (httpapi.FileInfo, error) {
	f, err := n.file(ctx, uid, true)
	if err != nil {
		return httpapi.FileInfo{}, err
	}
	return n.fileInfo(f), nil
}

// Checkpoint lists the stored chunk numbers of an upload.
func (n *Node) Checkpoint(ctx context.Context, uid osprey.UID) ([]uint32, error) {
	f, err := n.file(ctx, uid, true)
	if err != nil {
		return nil, err
	}
	out := make([]uint32, 0, len(f.Chunks))
	for num := range f.Chunks {
		out = append(out, num)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// List pages through files.
func (n *Node) List(ctx context.Context, cursor osprey.UID, limit int) ([]httpapi.FileInfo, osprey.UID, error) {
	if err := n.prop.ReadBarrier(ctx); err != nil {
		return nil, 0, err
	}
	files := n.fsm.Files(cursor, limit+1)
	var next osprey.UID
	if len(files) > limit {
		files = files[:limit]
		next = files[limit-1].UID
	}
	out := make([]httpapi.FileInfo, len(files))
	for i, f := range files {
		out[i] = n.fileInfo(f)
	}
	return out, next, nil
}

// Locate returns the HTTP addresses of nodes holding uid's staged chunks.
func (n *Node) Locate(ctx context.Context, uid osprey.UID) ([]string, error) {
	f, err := n.file(ctx, uid, false)
	if err != nil {
		return nil, err
	}
	var chunks []fsm.Chunk
	if f.State == fsm.StateUploading {
		for _, c := range f.Chunks {
			chunks = append(chunks, *c)
		}
	} else if ct, ok := n.fsm.Content(f.Content); ok {
		chunks = ct.Chunks
	}
	seen := map[osprey.NodeID]bool{}
	var out []string
	for _, c := range chunks {
		for _, o := range c.Owners {
			if seen[o] {
				continue
			}
			seen[o] = true
			if rec, ok := n.fsm.Node(o); ok {
				out = append(out, rec.HTTPAddr)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// Delete removes a file and, when it held the last reference, its bytes.
func (n *Node) Delete(ctx context.Context, uid osprey.UID) error {
	var res fsm.DeleteResult
	// The FSM queues gc/delete tasks for whatever became unreferenced.
	return n.prop.Apply(ctx, fsm.CmdFileDelete, fsm.FileDelete{UID: uid, Time: nowMillis()}, &res)
}

// --- uploads ---

// Upload stores a single-request upload. The body is cut into pieces of at
// most pieceSize bytes, each replicated like a chunk, so memory stays
// bounded whatever the file size.
func (n *Node) Upload(ctx context.Context, uid osprey.UID, body io.Reader, wantMD5 string) (httpapi.FileInfo, error) {
	n.lastUpload.Store(time.Now().UnixNano())
	f, err := n.file(ctx, uid, false)
	if err != nil {
		return httpapi.FileInfo{}, err
	}
	if f.State != fsm.StateUploading && f.MD5 != wantMD5 {
		return httpapi.FileInfo{}, fmt.Errorf("%w: uid %s is already complete", osprey.ErrConflict, uid)
	}
	whole := md5.New()
	var (
		chunks []fsm.Chunk
		size   int64
	)
	fail := func(err error) (httpapi.FileInfo, error) {
		n.collect(chunks)
		return httpapi.FileInfo{}, err
	}
	for num := uint32(1); ; num++ {
		buf, release, err := n.readPiece(ctx, io.TeeReader(body, whole), n.pieceSize(), n.pieceSize())
		if err != nil {
			return fail(err)
		}
		if len(buf) == 0 && num > 1 {
			release()
			break
		}
		ch, err := n.storeChunk(ctx, num, buf)
		release()
		if err != nil {
			return fail(err)
		}
		chunks = append(chunks, ch)
		size += ch.Size
		if size > n.cfg.Limits.MaxUploadSize {
			return fail(fmt.Errorf("%w: upload exceeds %d bytes", osprey.ErrTooLarge, n.cfg.Limits.MaxUploadSize))
		}
		if int64(len(buf)) < n.pieceSize() {
			break
		}
	}
	if got := hex.EncodeToString(whole.Sum(nil)); got != wantMD5 {
		return fail(fmt.Errorf("%w: md5 mismatch: body has %s, md5 parameter says %s; nothing was stored", osprey.ErrInvalid, got, wantMD5))
	}
	var res fsm.CompleteResult
	cmd := fsm.FileComplete{UID: uid, Chunks: chunks, Size: size, MD5: wantMD5, Time: nowMillis()}
	if err := n.prop.Apply(ctx, fsm.CmdFileComplete, cmd, &res); err != nil {
		if errors.Is(err, osprey.ErrIndeterminate) {
			return httpapi.FileInfo{}, err // the record may point at these chunks: keep them
		}
		return fail(err)
	}
	return n.fileInfo(res.File), nil
}

// UploadChunk stores one chunk of a chunked upload.
func (n *Node) UploadChunk(ctx context.Context, uid osprey.UID, num uint32, body io.Reader, size int64, wantMD5 string) error {
	n.lastUpload.Store(time.Now().UnixNano())
	f, err := n.file(ctx, uid, false)
	if err != nil {
		return err
	}
	if f.State != fsm.StateUploading {
		if c, ok := f.Chunks[num]; !ok || c.MD5 != wantMD5 {
			return fmt.Errorf("%w: uid %s is already merged", osprey.ErrConflict, uid)
		}
	}
	if c, ok := f.Chunks[num]; ok && c.MD5 == wantMD5 && (size < 0 || c.Size == size) {
		// Re-sending a stored chunk is a no-op; drain so the client's
		// request completes normally.
		_, _ = io.Copy(io.Discard, io.LimitReader(body, n.cfg.Limits.MaxChunkSize))
		return nil
	}
	limit := n.cfg.Limits.MaxChunkSize
	reserve := limit + 1
	if size >= 0 {
		reserve = size + 1
	}
	buf, release, err := n.readPiece(ctx, body, limit+1, reserve)
	if err != nil {
		return err
	}
	defer release()
	if int64(len(buf)) > limit {
		return fmt.Errorf("%w: chunk larger than %d bytes", osprey.ErrTooLarge, limit)
	}
	if size >= 0 && int64(len(buf)) != size {
		return fmt.Errorf("%w: body has %d bytes, Content-Length said %d", osprey.ErrInvalid, len(buf), size)
	}
	sum := md5.Sum(buf)
	if got := hex.EncodeToString(sum[:]); got != wantMD5 {
		return fmt.Errorf("%w: chunk %d md5 mismatch: body has %s, md5 parameter says %s; nothing was stored", osprey.ErrInvalid, num, got, wantMD5)
	}
	ch, err := n.storeChunk(ctx, num, buf)
	if err != nil {
		return err
	}
	var res fsm.ChunkPutResult
	if err := n.prop.Apply(ctx, fsm.CmdChunkPut, fsm.ChunkPut{UID: uid, Chunk: ch, Time: nowMillis()}, &res); err != nil {
		if !errors.Is(err, osprey.ErrIndeterminate) {
			n.collect([]fsm.Chunk{ch})
		}
		return err
	}
	return nil // a replaced or duplicate copy is collected by a gc task
}

// Merge declares a chunked upload complete; it returns at once.
func (n *Node) Merge(ctx context.Context, uid osprey.UID, num uint32, size int64, md5 string) (httpapi.FileInfo, error) {
	var res fsm.CompleteResult
	cmd := fsm.Merge{UID: uid, Num: num, Size: size, MD5: md5, Time: nowMillis()}
	if err := n.prop.Apply(ctx, fsm.CmdMerge, cmd, &res); err != nil {
		return httpapi.FileInfo{}, err
	}
	return n.fileInfo(res.File), nil
}

// pieceSize is the size single uploads are cut into.
func (n *Node) pieceSize() int64 {
	return min(n.cfg.Limits.MaxChunkSize, 8<<20)
}

// readPiece reads up to max bytes into a pooled buffer, first reserving
// reserve bytes of the node's buffer budget (the expected size). The caller
// MUST call release.
func (n *Node) readPiece(ctx context.Context, r io.Reader, max, reserve int64) ([]byte, func(), error) {
	if err := n.budget.acquire(ctx, reserve); err != nil {
		return nil, nil, err
	}
	bb := bufPool.Get().(*bytes.Buffer)
	bb.Reset()
	release := func() {
		if bb.Cap() <= 16<<20 {
			bufPool.Put(bb)
		}
		n.budget.release(reserve)
	}
	if _, err := bb.ReadFrom(io.LimitReader(r, max)); err != nil {
		release()
		return nil, nil, fmt.Errorf("%w: reading body: %w", osprey.ErrInvalid, err)
	}
	return bb.Bytes(), release, nil
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// storeChunk writes buf to the chunk's owners and returns its record. It
// succeeds only once the wanted number of copies are durable.
func (n *Node) storeChunk(ctx context.Context, num uint32, buf []byte) (fsm.Chunk, error) {
	if n.ecEnabled() && n.ecFits() {
		return n.storeChunkEC(ctx, num, buf)
	}
	blob, err := n.NextUID()
	if err != nil {
		return fsm.Chunk{}, err
	}
	sum := md5.Sum(buf)
	ch := fsm.Chunk{Blob: uint64(blob), Num: num, Size: int64(len(buf)), MD5: hex.EncodeToString(sum[:]), Sum: xxhash.Sum64(buf)}
	r, err := n.ring()
	if err != nil {
		return fsm.Chunk{}, err
	}
	want := min(n.replicas(), r.Len())
	candidates := r.Owners(ring.ChunkKey(ch.Blob, num), r.Len())
	ref := httpapi.ChunkRef{Blob: ch.Blob, Num: num}
	// Write to the first `want` candidates in parallel; a failed copy moves
	// on to the next candidate in ring order.
	type result struct {
		owner string
		err   error
	}
	var (
		next    = want
		pending = 0
		results = make(chan result, len(candidates))
		errs    []error
	)
	start := func(owner string) {
		pending++
		go func() {
			results <- result{owner, n.putChunkOn(ctx, owner, ref, buf, ch.Sum)}
		}()
	}
	for _, o := range candidates[:want] {
		start(o)
	}
	for pending > 0 {
		res := <-results
		pending--
		if res.err == nil {
			ch.Owners = append(ch.Owners, osprey.NodeID(res.owner))
			continue
		}
		errs = append(errs, fmt.Errorf("%s: %w", res.owner, res.err))
		if next < len(candidates) && ctx.Err() == nil {
			start(candidates[next])
			next++
		}
	}
	if len(ch.Owners) < want {
		n.collect([]fsm.Chunk{ch})
		return fsm.Chunk{}, fmt.Errorf("%w: stored %d of %d copies of chunk %d: %w", osprey.ErrUnavailable, len(ch.Owners), want, num, errors.Join(errs...))
	}
	sort.Slice(ch.Owners, func(i, j int) bool { return ch.Owners[i] < ch.Owners[j] })
	return ch, nil
}

func (n *Node) putChunkOn(ctx context.Context, owner string, ref httpapi.ChunkRef, buf []byte, sum uint64) error {
	if owner == n.id {
		got, err := n.PutLocalChunk(ctx, ref, bytes.NewReader(buf), int64(len(buf)))
		if err == nil && got != sum {
			err = fmt.Errorf("checksum %x after store, want %x", got, sum)
		}
		return err
	}
	return n.peers.PutChunk(ctx, owner, ref, buf, sum)
}

// replicas is the number of whole copies a chunk gets: the configured
// replicas, or M+1 when erasure coding does not fit the cluster.
func (n *Node) replicas() int {
	if n.ecEnabled() {
		return n.cfg.EC.M + 1
	}
	return n.cfg.Replicas
}

// ring returns the consistent-hash ring over the active members, rebuilt
// only when membership changes.
func (n *Node) ring() (*ring.Ring, error) {
	var ids []string
	for _, rec := range n.fsm.Nodes() {
		if !rec.Removed && !rec.Down {
			ids = append(ids, string(rec.ID))
		}
	}
	key := strings.Join(ids, ",")
	n.ringMu.Lock()
	defer n.ringMu.Unlock()
	if n.ringCache != nil && n.ringKey == key {
		return n.ringCache, nil
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%w: no active members", osprey.ErrUnavailable)
	}
	r, err := ring.New(ring.DefaultConfig(), ids)
	if err != nil {
		return nil, err
	}
	n.ringCache, n.ringKey = r, key
	return r, nil
}

// collect deletes chunk copies that were stored but never recorded (the
// upload failed before its raft command), in the background and best
// effort: a copy left behind wastes space but never changes what is
// served. Recorded garbage is collected by durable gc tasks instead.
func (n *Node) collect(chunks []fsm.Chunk) {
	if len(chunks) == 0 {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
		defer cancel()
		for _, ch := range chunks {
			ref := httpapi.ChunkRef{Blob: ch.Blob, Num: ch.Num}
			for _, o := range ch.Owners {
				var err error
				if string(o) == n.id {
					err = n.DeleteLocalChunk(ctx, ref)
				} else {
					err = n.peers.DeleteChunk(ctx, string(o), ref)
				}
				if err != nil {
					n.log.Debug("garbage chunk not deleted", "blob", ch.Blob, "num", ch.Num, "owner", o, "err", err)
				}
			}
		}
	}()
}

// --- local chunk store ---

func chunkKey(ref httpapi.ChunkRef) chunkstore.Key {
	return chunkstore.Key{UID: ref.Blob, Chunk: ref.Num, Shard: ref.Shard}
}

// PutLocalChunk stores a chunk copy in this node's chunk store durably.
func (n *Node) PutLocalChunk(ctx context.Context, ref httpapi.ChunkRef, body io.Reader, size int64) (uint64, error) {
	info, err := n.chunks.Put(ctx, chunkKey(ref), body, size)
	if err != nil {
		return 0, mapChunkErr(err)
	}
	return info.Sum, nil
}

// GetLocalChunk reads part of a local chunk copy.
func (n *Node) GetLocalChunk(ctx context.Context, ref httpapi.ChunkRef, off, length int64) (io.ReadCloser, int64, error) {
	rc, info, err := n.chunks.Get(ctx, chunkKey(ref), off, length)
	if err != nil {
		return nil, 0, mapChunkErr(err)
	}
	if length < 0 {
		length = info.Size - off
	}
	return rc, length, nil
}

// DeleteLocalChunk deletes a local chunk copy.
func (n *Node) DeleteLocalChunk(ctx context.Context, ref httpapi.ChunkRef) error {
	return mapChunkErr(n.chunks.Delete(ctx, chunkKey(ref)))
}

func mapChunkErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, chunkstore.ErrNotFound):
		return fmt.Errorf("%w: %w", osprey.ErrNotFound, err)
	case errors.Is(err, chunkstore.ErrTooLarge):
		return fmt.Errorf("%w: %w", osprey.ErrTooLarge, err)
	case errors.Is(err, chunkstore.ErrSizeMismatch):
		return fmt.Errorf("%w: %w", osprey.ErrInvalid, err)
	case errors.Is(err, chunkstore.ErrClosed):
		return fmt.Errorf("%w: %w", osprey.ErrUnavailable, err)
	}
	return err
}
