package datapath

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
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
	"github.com/osprey-storage/osprey/erasure"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
	"github.com/osprey-storage/osprey/ring"
)

// LinkSecret returns the replicated link-signing secret.
func (p *Path) LinkSecret() ([]byte, error) {
	s := p.cfg.State.Secret()
	if len(s) == 0 {
		return nil, fmt.Errorf("%w: cluster not initialised yet", osprey.ErrUnavailable)
	}
	return s, nil
}

func nowMillis() int64 { return time.Now().UnixMilli() }

// CreateFiles mints uids on this node and records the files through raft.
func (p *Path) CreateFiles(ctx context.Context, items []httpapi.NewFile) ([]osprey.UID, error) {
	cmd := fsm.FilesCreate{Time: nowMillis(), Files: make([]fsm.NewFile, len(items))}
	tenant := osprey.PrincipalFrom(ctx).Tenant
	uids := make([]osprey.UID, len(items))
	for i, it := range items {
		uid, err := p.cfg.UIDs.NextUID()
		if err != nil {
			return nil, err
		}
		uids[i] = uid
		cmd.Files[i] = fsm.NewFile{UID: uid, Name: it.Name, Bucket: it.Bucket, Tenant: tenant}
	}
	if err := p.cfg.Proposer.Apply(ctx, fsm.CmdFilesCreate, cmd, nil); err != nil {
		return nil, err
	}
	recs := make([]fsm.File, len(cmd.Files))
	for i, nf := range cmd.Files {
		recs[i] = fsm.File{UID: nf.UID, Name: nf.Name, Bucket: nf.Bucket, Tenant: nf.Tenant, State: fsm.StateUploading,
			CreatedAt: cmd.Time, UpdatedAt: cmd.Time}
	}
	p.created.add(recs)
	return uids, nil
}

// Resume creates dedup aliases for items whose content is stored under the
// caller's tenant (md5 only: the osproxy-compatible /resume).
func (p *Path) Resume(ctx context.Context, items []httpapi.ResumeItem) ([]osprey.UID, error) {
	if err := p.cfg.Proposer.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	tenant := osprey.PrincipalFrom(ctx).Tenant
	cmd := fsm.Resume{Time: nowMillis()}
	idx := make([]int, 0, len(items))
	for i, it := range items {
		if _, ok := p.cfg.State.ContentByMD5(tenant, it.MD5); !ok {
			continue // certainly absent: no need to propose it
		}
		uid, err := p.cfg.UIDs.NextUID()
		if err != nil {
			return nil, err
		}
		cmd.Items = append(cmd.Items, fsm.ResumeItem{UID: uid, Name: it.Name, Bucket: it.Bucket, MD5: it.MD5, Tenant: tenant})
		idx = append(idx, i)
	}
	out := make([]osprey.UID, len(items))
	if len(cmd.Items) == 0 {
		return out, nil
	}
	var res fsm.ResumeResult
	if err := p.cfg.Proposer.Apply(ctx, fsm.CmdResume, cmd, &res); err != nil {
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
// file created through another node moments ago is found. A scoped API
// key (osprey.PrincipalFrom(ctx)) only finds its own tenant's files: any
// other uid is ErrNotFound exactly like a missing one, so uids do not leak
// across tenants; a file of its tenant outside its prefixes is
// ErrForbidden.
func (p *Path) file(ctx context.Context, uid osprey.UID, consistent bool) (fsm.File, error) {
	if !consistent {
		if f, ok := p.cfg.State.File(uid); ok {
			return f, inScope(ctx, f)
		}
	}
	if err := p.cfg.Proposer.ReadBarrier(ctx); err != nil {
		return fsm.File{}, err
	}
	f, ok := p.cfg.State.File(uid)
	if !ok {
		return fsm.File{}, fmt.Errorf("%w: uid %s", osprey.ErrNotFound, uid)
	}
	return f, inScope(ctx, f)
}

// fileForWrite is file for a chunk upload: the local FSM, then the files
// this node created moments ago (see created), whose commands the leader
// checks again, then a read barrier. The FSM comes first: a chunk upload
// decides from the record's chunks (a resent chunk is a no-op), which a
// created entry lacks.
func (p *Path) fileForWrite(ctx context.Context, uid osprey.UID) (fsm.File, error) {
	if f, ok := p.cfg.State.File(uid); ok {
		return f, inScope(ctx, f)
	}
	if f, ok := p.created.get(uid); ok {
		return f, inScope(ctx, f)
	}
	return p.file(ctx, uid, true)
}

// fileForUpload is the single upload's lookup: the files this node
// created moments ago first, then the local FSM. The single upload
// decides nothing from the record but whether it is already complete with
// other content, which the leader's FileComplete checks again. A small body
// (one piece at most) of a uid this node has not seen (linked through
// another node moments ago, its entry not applied here yet) is therefore
// uploaded without the read barrier (a round trip to the leader) and
// found is false: FileComplete then answers ErrNotFound for a uid that
// does not exist, and the copies are collected. A larger body, or a
// request acting for a scoped API key (whose scope needs the record),
// reads the record after a barrier as before, so no large body is stored
// for a uid that does not exist.
func (p *Path) fileForUpload(ctx context.Context, uid osprey.UID, size int64) (fsm.File, bool, error) {
	if f, ok := p.created.get(uid); ok {
		return f, true, inScope(ctx, f)
	}
	if f, ok := p.cfg.State.File(uid); ok {
		return f, true, inScope(ctx, f)
	}
	if size >= 0 && size <= p.pieceSize() && !osprey.PrincipalFrom(ctx).Scoped() {
		return fsm.File{}, false, nil
	}
	f, err := p.file(ctx, uid, true)
	return f, err == nil, err
}

// inScope checks f against the request's principal (see file).
func inScope(ctx context.Context, f fsm.File) error {
	pr := osprey.PrincipalFrom(ctx)
	if !pr.Sees(f.Tenant) {
		return fmt.Errorf("%w: uid %s", osprey.ErrNotFound, f.UID)
	}
	if !pr.AllowsName(f.Name) {
		return fmt.Errorf("%w: API key %s may not access %q (outside its prefixes)", osprey.ErrForbidden, pr.KeyID, f.Name)
	}
	return nil
}

func (p *Path) fileInfo(f fsm.File) httpapi.FileInfo {
	info := baseFileInfo(f)
	info.S3Bucket, info.S3Key, _ = p.cfg.State.ObjectKeyOf(f.UID)
	if f.State == fsm.StateUploading {
		info.Chunks = len(f.Chunks)
		for _, c := range f.Chunks {
			info.Size += c.Size
		}
		info.Location = "staging"
		return info
	}
	if ct, ok := p.cfg.State.Content(f.Content); ok {
		withContent(&info, fsm.ContentInfo{Chunks: len(ct.Chunks), State: ct.State, Inline: ct.Inline, Location: ct.Location})
	}
	return info
}

// contentFileInfo is fileInfo of a file not bound to an S3 key whose
// content is ci.
func contentFileInfo(f fsm.File, ci *fsm.ContentInfo) httpapi.FileInfo {
	info := baseFileInfo(f)
	withContent(&info, *ci)
	return info
}

func baseFileInfo(f fsm.File) httpapi.FileInfo {
	return httpapi.FileInfo{UID: f.UID, Name: f.Name, Size: f.Size, MD5: f.MD5, Bucket: f.Bucket,
		State: string(f.State), CreatedAt: time.UnixMilli(f.CreatedAt).UTC(), UpdatedAt: time.UnixMilli(f.UpdatedAt).UTC(),
		ContentType: ContentType(f.Name)}
}

// withContent sets what info shows of the file's content.
func withContent(info *httpapi.FileInfo, ct fsm.ContentInfo) {
	info.Chunks = ct.Chunks
	switch {
	case ct.State == fsm.ContentLost:
		info.State = string(fsm.ContentLost)
		info.Location = "lost"
	case ct.Location != nil:
		info.State = string(fsm.StateTiered)
		info.Location = "backend:" + ct.Location.Bucket + "/" + ct.Location.Key
	case ct.Inline:
		// In its final place: the staged copies are the stored object.
		info.State = string(fsm.StateTiered)
		info.Location = "inline"
	case ct.State == fsm.ContentFailed:
		info.State = string(fsm.StateFailed)
		info.Location = "staging"
	default:
		info.Location = "staging"
	}
}

// ContentType guesses a MIME type from a file name.
func ContentType(name string) string {
	if t := mime.TypeByExtension(strings.ToLower(path.Ext(name))); t != "" {
		return t
	}
	return "application/octet-stream"
}

// Stat returns a file's metadata with linearizable semantics.
func (p *Path) Stat(ctx context.Context, uid osprey.UID) (httpapi.FileInfo, error) {
	f, err := p.file(ctx, uid, true)
	if err != nil {
		return httpapi.FileInfo{}, err
	}
	return p.fileInfo(f), nil
}

// Checkpoint lists the stored chunk numbers of an upload.
func (p *Path) Checkpoint(ctx context.Context, uid osprey.UID) ([]uint32, error) {
	f, err := p.file(ctx, uid, true)
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
func (p *Path) List(ctx context.Context, cursor osprey.UID, limit int) ([]httpapi.FileInfo, osprey.UID, error) {
	if err := p.cfg.Proposer.ReadBarrier(ctx); err != nil {
		return nil, 0, err
	}
	pr := osprey.PrincipalFrom(ctx)
	if pr.Scoped() {
		return p.listScoped(ctx, pr, cursor, limit)
	}
	files := p.cfg.State.Files(cursor, limit+1)
	var next osprey.UID
	if len(files) > limit {
		files = files[:limit]
		next = files[limit-1].UID
	}
	out := make([]httpapi.FileInfo, len(files))
	for i, f := range files {
		out[i] = p.fileInfo(f)
	}
	return out, next, nil
}

// listScanCap bounds the records one page of a scoped listing reads; a
// page that reaches it ends early with a cursor to go on from.
const listScanCap = 10_000

// listScoped pages through the files a scoped key may read (its tenant,
// within its prefixes), reading the uid index in batches.
func (p *Path) listScoped(ctx context.Context, pr osprey.Principal, cursor osprey.UID, limit int) ([]httpapi.FileInfo, osprey.UID, error) {
	out := []httpapi.FileInfo{}
	for scanned := 0; scanned < listScanCap; {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		batch := p.cfg.State.Files(cursor, 256)
		for _, f := range batch {
			scanned++
			cursor = f.UID
			if inScope(ctx, f) != nil {
				continue
			}
			if len(out) == limit {
				// One more exists: the page ends at the last returned.
				return out, out[limit-1].UID, nil
			}
			out = append(out, p.fileInfo(f))
		}
		if len(batch) < 256 {
			return out, 0, nil
		}
	}
	// The cap was reached: go on after the last record read.
	return out, cursor, nil
}

// Locate returns the HTTP addresses of nodes holding uid's staged chunks.
func (p *Path) Locate(ctx context.Context, uid osprey.UID) ([]string, error) {
	f, err := p.file(ctx, uid, false)
	if err != nil {
		return nil, err
	}
	var chunks []fsm.Chunk
	if f.State == fsm.StateUploading {
		for _, c := range f.Chunks {
			chunks = append(chunks, *c)
		}
	} else if ct, ok := p.cfg.State.Content(f.Content); ok {
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
			if rec, ok := p.cfg.State.Node(o); ok {
				out = append(out, rec.HTTPAddr)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// Delete removes a file and, when it held the last reference, its bytes.
func (p *Path) Delete(ctx context.Context, uid osprey.UID) error {
	if osprey.PrincipalFrom(ctx).Scoped() {
		// Only a file the key may see and read (uids are never reused,
		// so its tenant and name cannot change in between).
		if _, err := p.file(ctx, uid, true); err != nil {
			return err
		}
	}
	var res fsm.DeleteResult
	// The FSM queues gc/delete tasks for whatever became unreferenced.
	return p.cfg.Proposer.Apply(ctx, fsm.CmdFileDelete, fsm.FileDelete{UID: uid, Time: nowMillis()}, &res)
}

// --- uploads ---

// Upload stores a single-request upload. The body is cut into pieces of at
// most pieceSize bytes, each replicated like a chunk, so memory stays
// bounded whatever the file size.
func (p *Path) Upload(ctx context.Context, uid osprey.UID, body io.Reader, size int64, wantMD5 string) (httpapi.FileInfo, error) {
	f, found, err := p.fileForUpload(ctx, uid, size)
	if err != nil {
		return httpapi.FileInfo{}, err
	}
	if found && f.State != fsm.StateUploading && f.MD5 != wantMD5 {
		return httpapi.FileInfo{}, fmt.Errorf("%w: uid %s is already complete", osprey.ErrConflict, uid)
	}
	st, err := p.StageHashed(ctx, body, size, wantMD5)
	if err != nil {
		return httpapi.FileInfo{}, err
	}
	var res fsm.CompleteResult
	cmd := fsm.FileComplete{UID: uid, Chunks: st.Chunks, Size: st.Size, MD5: st.MD5, SHA256: st.SHA256, Time: nowMillis()}
	if err := p.cfg.Proposer.Apply(ctx, fsm.CmdFileComplete, cmd, &res); err != nil {
		if !errors.Is(err, osprey.ErrIndeterminate) {
			p.collect(st.Chunks) // certainly not recorded
		} // else the record may point at these chunks: keep them
		return httpapi.FileInfo{}, err
	}
	if res.Content != nil && !res.Already {
		// Just completed from uploading: not bound to an S3 key (only a
		// complete file is), and the result says what the content is.
		return contentFileInfo(res.File, res.Content), nil
	}
	return p.fileInfo(res.File), nil
}

// StagePieces stores body as pieces of at most pieceSize bytes, each
// replicated (or erasure-coded) like a chunk, and returns their records,
// the total size and the md5 of the whole, checked against wantMD5 unless
// it is "" (the S3 gateway, which has no declared md5). Nothing refers to
// the pieces yet: the caller records them in a command (FileComplete,
// ObjectPut) or gives them back with Discard.
func (p *Path) StagePieces(ctx context.Context, body io.Reader, wantMD5 string) ([]fsm.Chunk, int64, string, error) {
	st, err := p.StageHashed(ctx, body, -1, wantMD5)
	return st.Chunks, st.Size, st.MD5, err
}

// Staged is a body stored by StageHashed: its pieces, size and hashes.
type Staged struct {
	Chunks []fsm.Chunk
	Size   int64
	MD5    string
	// SHA256 is hashed in the same pass as the md5 (part of the dedup key).
	SHA256 string
}

// StageHashed is StagePieces that also returns the SHA-256 of the body,
// computed as the bytes arrive (no second read).
//
// size is the body's declared length, -1 if unknown: a hint that sizes
// each piece's buffer (a 4 KiB upload takes a 4 KiB buffer, not a whole
// piece's); the body decides what is stored.
func (p *Path) StageHashed(ctx context.Context, body io.Reader, size int64, wantMD5 string) (Staged, error) {
	p.lastUpload.Store(time.Now().UnixNano())
	whole, strong := md5.New(), sha256.New()
	var (
		chunks []fsm.Chunk
		total  int64
	)
	fail := func(err error) (Staged, error) {
		p.collect(chunks)
		return Staged{}, err
	}
	add := func(ch fsm.Chunk) error {
		chunks = append(chunks, ch)
		total += ch.Size
		if total > p.cfg.Limits.MaxUploadSize {
			return fmt.Errorf("%w: upload exceeds %d bytes", osprey.ErrTooLarge, p.cfg.Limits.MaxUploadSize)
		}
		return nil
	}
	hashes := io.MultiWriter(whole, strong)
	tee := io.TeeReader(body, hashes)
	for num := uint32(1); ; num++ {
		if n := min(p.pieceSize(), size-total); size >= 0 && n >= streamMinSize && p.streams() {
			// A piece of known size streams to its owners as it arrives.
			ch, _, err := p.streamChunk(ctx, num, tee, n, true, "")
			if err == nil {
				err = add(ch)
			}
			if err != nil {
				return fail(err)
			}
			continue // the next piece, or the end of the body (read below)
		}
		reserve := p.pieceSize()
		if size >= 0 {
			reserve = max(min(reserve, size-total+1), 1) // +1: the read that sees the end
		}
		buf, release, err := p.ReadPiece(ctx, tee, p.pieceSize(), reserve)
		if err != nil {
			return fail(err)
		}
		if len(buf) == 0 && num > 1 {
			release()
			break
		}
		last := int64(len(buf)) < p.pieceSize()
		pieceMD5 := ""
		if last && num == 1 {
			// A one-piece body: its md5 is the whole's, hashed once.
			pieceMD5 = hex.EncodeToString(whole.Sum(nil))
		}
		ch, err := p.storeChunk(ctx, num, buf, pieceMD5)
		release()
		if err == nil {
			err = add(ch)
		}
		if err != nil {
			return fail(err)
		}
		if last {
			break
		}
	}
	got := hex.EncodeToString(whole.Sum(nil))
	if wantMD5 != "" && got != wantMD5 {
		return fail(fmt.Errorf("%w: md5 mismatch: body has %s, md5 parameter says %s; nothing was stored", osprey.ErrInvalid, got, wantMD5))
	}
	return Staged{Chunks: chunks, Size: total, MD5: got, SHA256: hex.EncodeToString(strong.Sum(nil))}, nil
}

// Discard deletes staged pieces no record refers to (best effort, in the
// background).
func (p *Path) Discard(chunks []fsm.Chunk) { p.collect(chunks) }

// UploadChunk stores one chunk of a chunked upload.
func (p *Path) UploadChunk(ctx context.Context, uid osprey.UID, num uint32, body io.Reader, size int64, wantMD5 string) error {
	_, err := p.uploadChunk(ctx, uid, num, body, size, wantMD5)
	return err
}

// UploadPart stores one part of an S3 multipart upload as chunk num of uid
// and returns the md5 of its bytes (the part's ETag).
func (p *Path) UploadPart(ctx context.Context, uid osprey.UID, num uint32, body io.Reader, size int64) (string, error) {
	return p.uploadChunk(ctx, uid, num, body, size, "")
}

// uploadChunk stores chunk num of uid and returns its md5; wantMD5 ""
// takes whatever the body hashes to.
func (p *Path) uploadChunk(ctx context.Context, uid osprey.UID, num uint32, body io.Reader, size int64, wantMD5 string) (string, error) {
	p.lastUpload.Store(time.Now().UnixNano())
	f, err := p.fileForWrite(ctx, uid)
	if err != nil {
		return "", err
	}
	if f.State != fsm.StateUploading {
		if c, ok := f.Chunks[num]; !ok || c.MD5 != wantMD5 {
			return "", fmt.Errorf("%w: uid %s is already merged", osprey.ErrConflict, uid)
		}
	}
	if c, ok := f.Chunks[num]; ok && c.MD5 == wantMD5 && (size < 0 || c.Size == size) {
		// Re-sending a stored chunk is a no-op; drain so the client's
		// request completes normally.
		_, _ = io.Copy(io.Discard, io.LimitReader(body, p.cfg.Limits.MaxChunkSize))
		return c.MD5, nil
	}
	limit := p.cfg.Limits.MaxChunkSize
	var (
		ch  fsm.Chunk
		got string
	)
	if size >= streamMinSize && size <= limit && p.streams() {
		ch, got, err = p.streamChunk(ctx, num, body, size, false, wantMD5)
	} else {
		ch, got, err = p.bufferChunk(ctx, num, body, size, wantMD5)
	}
	if err != nil {
		return "", err
	}
	var res fsm.ChunkPutResult
	if err := p.cfg.Proposer.Apply(ctx, fsm.CmdChunkPut, fsm.ChunkPut{UID: uid, Chunk: ch, Time: nowMillis()}, &res); err != nil {
		if !errors.Is(err, osprey.ErrIndeterminate) {
			p.collect([]fsm.Chunk{ch})
		}
		return "", err
	}
	return got, nil // a replaced or duplicate copy is collected by a gc task
}

// bufferChunk reads a chunk whole, checks it and stores its copies.
func (p *Path) bufferChunk(ctx context.Context, num uint32, body io.Reader, size int64, wantMD5 string) (fsm.Chunk, string, error) {
	limit := p.cfg.Limits.MaxChunkSize
	reserve := limit + 1
	if size >= 0 {
		reserve = size + 1
	}
	buf, release, err := p.ReadPiece(ctx, body, limit+1, reserve)
	if err != nil {
		return fsm.Chunk{}, "", err
	}
	defer release()
	got, err := checkChunk(num, buf, limit, size, wantMD5)
	if err != nil {
		return fsm.Chunk{}, "", err
	}
	ch, err := p.storeChunk(ctx, num, buf, got)
	return ch, got, err
}

// checkChunk checks a chunk's body against its limit, declared size (if
// ≥ 0) and md5 (if not "") and returns its md5.
func checkChunk(num uint32, buf []byte, limit, size int64, wantMD5 string) (string, error) {
	if int64(len(buf)) > limit {
		return "", fmt.Errorf("%w: chunk larger than %d bytes", osprey.ErrTooLarge, limit)
	}
	if size >= 0 && int64(len(buf)) != size {
		return "", fmt.Errorf("%w: body has %d bytes, Content-Length said %d", osprey.ErrInvalid, len(buf), size)
	}
	sum := md5.Sum(buf)
	got := hex.EncodeToString(sum[:])
	if wantMD5 != "" && got != wantMD5 {
		return "", fmt.Errorf("%w: chunk %d md5 mismatch: body has %s, md5 parameter says %s; nothing was stored", osprey.ErrInvalid, num, got, wantMD5)
	}
	return got, nil
}

// streams says whether chunks stream to their owners: replicated staging
// (an erasure-coded chunk is encoded whole).
func (p *Path) streams() bool {
	return !(p.cfg.Placement.ECEnabled() && p.cfg.Placement.ECFits())
}

// streamMinSize is the smallest declared chunk size that streams to its
// owners while the client sends it (streamChunk); smaller ones are read
// whole first, which costs them nothing.
const streamMinSize = 256 << 10

// streamChunk stores a chunk of known size (replicated, not erasure-coded)
// by streaming it to its owners as it arrives: the copies read the
// request's buffer as it fills (piece), so the owners write while the
// client is still sending and the chunk is durable about when its last
// byte arrives, instead of a whole chunk's transfer later. The chunk is
// checked (size, md5) once whole; a chunk that fails a check, or whose body
// breaks off, cancels its copies and the ones already written are
// collected: as with a buffered chunk, nothing of it is recorded.
//
// With exact, body goes on after the chunk (a piece of a single upload):
// exactly size bytes are read, and fewer is an error.
func (p *Path) streamChunk(ctx context.Context, num uint32, body io.Reader, size int64, exact bool, wantMD5 string) (fsm.Chunk, string, error) {
	limit, readLimit := p.cfg.Limits.MaxChunkSize, p.cfg.Limits.MaxChunkSize+1
	if exact {
		limit, readLimit = size, size
	}
	blob, err := p.cfg.UIDs.NextUID()
	if err != nil {
		return fsm.Chunk{}, "", err
	}
	pc := newPiece(size)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type stored struct {
		owners  []osprey.NodeID
		workers []uint32
		err     error
	}
	done := make(chan stored, 1)
	go func() {
		owners, workers, err := p.storeCopies(sctx, uint64(blob), num, pc)
		done <- stored{owners, workers, err}
	}()
	buf, release, err := p.readPiece(ctx, body, readLimit, size+1, pc.fill)
	got := ""
	switch {
	case err == nil && exact && int64(len(buf)) < size:
		err = fmt.Errorf("%w: body ended %d bytes before its declared length; nothing was stored", osprey.ErrInvalid, size-int64(len(buf)))
	case err == nil:
		got, err = checkChunk(num, buf, limit, size, wantMD5)
	}
	pc.finish(buf, err)
	if err != nil {
		cancel()
	}
	st := <-done // no copy reads buf any more
	if release != nil {
		release()
	}
	if err != nil {
		return fsm.Chunk{}, "", err // storeCopies collected what it wrote
	}
	if st.err != nil {
		return fsm.Chunk{}, "", st.err
	}
	sum, _ := pc.checksum(ctx) // complete: computed by the copies' checks already
	return fsm.Chunk{Blob: uint64(blob), Num: num, Size: size, MD5: got, Sum: sum, Owners: st.owners, Workers: st.workers}, got, nil
}

// Merge declares a chunked upload complete; it returns at once.
func (p *Path) Merge(ctx context.Context, uid osprey.UID, num uint32, size int64, md5 string) (httpapi.FileInfo, error) {
	var res fsm.CompleteResult
	cmd := fsm.Merge{UID: uid, Num: num, Size: size, MD5: md5, Time: nowMillis()}
	if err := p.cfg.Proposer.Apply(ctx, fsm.CmdMerge, cmd, &res); err != nil {
		return httpapi.FileInfo{}, err
	}
	return p.fileInfo(res.File), nil
}

// pieceSize is the size single uploads are cut into.
func (p *Path) pieceSize() int64 {
	return min(p.cfg.Limits.MaxChunkSize, 8<<20)
}

// ReadPiece reads up to limit bytes into a pooled buffer. It takes the
// node's buffer budget as the bytes arrive, budgetStep at a time (at most
// reserve, the expected size, up front), so a client that declares a large
// body and then trickles holds only what it has sent, not the budget other
// uploads need. Waiting for budget is bounded by budgetWait: when every
// buffer is held by requests that all wait for more, some give up with 503
// and the rest go on. The buffer is sized for reserve once (a pooled slab,
// no regrowth for a body of the expected size). The caller MUST call
// release.
func (p *Path) ReadPiece(ctx context.Context, r io.Reader, limit, reserve int64) ([]byte, func(), error) {
	return p.readPiece(ctx, r, limit, reserve, nil)
}

// readPiece is ReadPiece that calls onFill (if not nil) with the buffer
// after every read from r, for readers of the filled prefix (piece). With
// onFill, a failed read returns release too, not yet called: the caller
// calls it once those readers are done with the buffer.
func (p *Path) readPiece(ctx context.Context, r io.Reader, limit, reserve int64, onFill func([]byte)) ([]byte, func(), error) {
	var held int64
	grow := func(n int64) error {
		wctx, cancel := context.WithTimeout(ctx, budgetWait)
		defer cancel()
		if err := p.budget.acquire(wctx, n); err != nil {
			return err
		}
		held += n
		return nil
	}
	if err := grow(max(min(reserve, budgetStep, limit), 1)); err != nil {
		return nil, nil, err
	}
	slab := getSlab(int(max(min(reserve, limit), 1)))
	buf := (*slab)[:0]
	release := func() {
		*slab = buf[:0]
		putSlab(slab)
		p.budget.release(held)
	}
	fail := func(err error) ([]byte, func(), error) {
		if onFill != nil {
			return nil, release, bodyError(err)
		}
		release()
		return nil, nil, bodyError(err)
	}
	// fillTo reads until buf holds target bytes (like io.ReadFull),
	// publishing each read.
	fillTo := func(target int) error {
		for len(buf) < target {
			n, err := r.Read(buf[len(buf):target])
			buf = buf[:len(buf)+n]
			if n > 0 && onFill != nil {
				onFill(buf)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	var one [1]byte
	for {
		target := int(min(held, limit))
		if cap(buf) < target {
			buf = append(make([]byte, 0, max(target, 2*cap(buf))), buf...) // a body longer than reserve
		}
		err := fillTo(target)
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return buf, release, nil // end of body (a short one fails the caller's size or md5 check)
		case err != nil:
			return fail(err)
		case int64(len(buf)) >= limit:
			return buf, release, nil
		}
		// More budget only if the body goes on: one byte (held unbudgeted
		// until the next step is granted) tells.
		if n, err := io.ReadFull(r, one[:]); n == 0 {
			if errors.Is(err, io.EOF) {
				return buf, release, nil
			}
			return fail(err)
		}
		if err := grow(min(budgetStep, limit-int64(len(buf)))); err != nil {
			if onFill != nil {
				return nil, release, err
			}
			release()
			return nil, nil, err
		}
		buf = append(buf, one[0])
		if onFill != nil {
			onFill(buf)
		}
	}
}

// Upload buffers are pooled slabs; slabs above maxPooledSlab (larger than
// the usual 8-16 MiB chunks and parts) are left to the GC, so the pool
// does not pin memory the budget no longer accounts for, and so are slabs
// below minPooledSlab (small uploads, sized by their Content-Length): they
// cost little to allocate, and in the pool they would crowd out the large
// slabs chunked uploads reuse.
const (
	maxPooledSlab = 16<<20 + 64<<10
	minPooledSlab = 1 << 20
)

var slabPool sync.Pool

func getSlab(n int) *[]byte {
	if n >= minPooledSlab {
		if s, ok := slabPool.Get().(*[]byte); ok && cap(*s) >= n {
			return s
		}
	}
	b := make([]byte, 0, n)
	return &b
}

func putSlab(s *[]byte) {
	if c := cap(*s); c >= minPooledSlab && c <= maxPooledSlab {
		slabPool.Put(s)
	}
}

// bodyError classifies a failed body read: a client that stalled past the
// idle timeout (408) or a broken body (400).
func bodyError(err error) error {
	if errors.Is(err, osprey.ErrTimeout) || errors.Is(err, osprey.ErrTooLarge) {
		return fmt.Errorf("reading body: %w", err)
	}
	return fmt.Errorf("%w: reading body: %w", osprey.ErrInvalid, err)
}

// budgetStep is how much buffer budget a reader takes at a time.
const budgetStep = 1 << 20

// budgetWait bounds how long a reader waits for buffer budget.
var budgetWait = 30 * time.Second

// storeChunk writes buf to the chunk's owners and returns its record. It
// succeeds only once the wanted number of copies are durable.
func (p *Path) storeChunk(ctx context.Context, num uint32, buf []byte, md5hex string) (fsm.Chunk, error) {
	if md5hex == "" {
		sum := md5.Sum(buf)
		md5hex = hex.EncodeToString(sum[:])
	}
	if p.cfg.Placement.ECEnabled() && p.cfg.Placement.ECFits() {
		return p.storeChunkEC(ctx, num, buf, md5hex)
	}
	blob, err := p.cfg.UIDs.NextUID()
	if err != nil {
		return fsm.Chunk{}, err
	}
	pc := fullPiece(buf)
	owners, workers, err := p.storeCopies(ctx, uint64(blob), num, pc)
	if err != nil {
		return fsm.Chunk{}, err
	}
	sum, _ := pc.checksum(ctx) // complete: no wait
	return fsm.Chunk{Blob: uint64(blob), Num: num, Size: int64(len(buf)), MD5: md5hex, Sum: sum, Owners: owners, Workers: workers}, nil
}

// storeCopies writes piece pc (complete, or still arriving) as chunk
// (blob, num) to the chunk's ring owners and returns the owners that hold
// a durable, checksum-verified copy, sorted, and their worker ids as the
// ring saw them (fsm.Chunk.Workers; nil before fsm.FeatureLevelWorkers).
// It succeeds only once the wanted number of copies are durable; otherwise
// every copy it started is collected. It returns only when no copy reads
// pc any more.
func (p *Path) storeCopies(ctx context.Context, blob uint64, num uint32, pc *piece) ([]osprey.NodeID, []uint32, error) {
	r, workers, err := p.cfg.Placement.RingWorkers()
	if err != nil {
		return nil, nil, err
	}
	want := min(p.cfg.Placement.Replicas(), r.Len())
	candidates := r.Owners(ring.ChunkKey(blob, num), r.Len())
	ref := httpapi.ChunkRef{Blob: blob, Num: num}
	// Write to the first `want` candidates in parallel; a failed copy moves
	// on to the next candidate in ring order, and so does a copy that lags
	// far behind one that is already done (hedging: a member that is
	// paused or cut off would otherwise hold the upload until the peer
	// call times out). Once `want` copies are durable the others are
	// cancelled, and any that completed anyway are collected.
	type result struct {
		owner string
		err   error
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next    = want
		pending = 0
		results = make(chan result, len(candidates))
		errs    []error
		owners  []osprey.NodeID
		failed  []osprey.NodeID // copies that failed may have stored something
		hedge   <-chan time.Time
		started = time.Now()
	)
	start := func(owner string) {
		pending++
		go func() {
			results <- result{owner, p.putCopy(cctx, owner, ref, pc, httpapi.CopyUpload)}
		}()
	}
	for _, o := range candidates[:want] {
		start(o)
	}
	for pending > 0 && len(owners) < want {
		select {
		case res := <-results:
			pending--
			if res.err == nil {
				owners = append(owners, osprey.NodeID(res.owner))
				if hedge == nil && len(owners) < want {
					// The others get twice as long as this one took, at
					// least hedgeAfter, before a spare copy starts.
					hedge = time.After(max(p.hedgeAfter(), 2*time.Since(started)))
				}
				continue
			}
			failed = append(failed, osprey.NodeID(res.owner))
			errs = append(errs, fmt.Errorf("%s: %w", res.owner, res.err))
			if next < len(candidates) && ctx.Err() == nil && !errors.Is(res.err, errPieceAbandoned) {
				start(candidates[next])
				next++
			}
		case <-hedge:
			hedge = nil
			if next < len(candidates) && ctx.Err() == nil {
				p.log.Debug("copy lagging: starting a spare", "blob", blob, "num", num, "spare", candidates[next])
				start(candidates[next])
				next++
			}
		}
	}
	// Cancel the copies still running and wait for them (they read the
	// caller's buffer); one that completed anyway is garbage.
	cancel()
	for ; pending > 0; pending-- {
		if res := <-results; res.err == nil && len(owners) < want {
			owners = append(owners, osprey.NodeID(res.owner))
		} else {
			failed = append(failed, osprey.NodeID(res.owner))
		}
	}
	if len(owners) < want {
		p.collect([]fsm.Chunk{{Blob: blob, Num: num, Owners: append(owners, failed...)}})
		return nil, nil, fmt.Errorf("%w: stored %d of %d copies of chunk %d: %w", osprey.ErrUnavailable, len(owners), want, num, errors.Join(errs...))
	}
	if len(failed) > 0 {
		p.collect([]fsm.Chunk{{Blob: blob, Num: num, Owners: failed}})
	}
	sort.Slice(owners, func(i, j int) bool { return owners[i] < owners[j] })
	return owners, ownerWorkers(owners, workers), nil
}

// ownerWorkers returns the worker ids of owners, or nil when workers
// does not name them all.
func ownerWorkers(owners []osprey.NodeID, workers map[osprey.NodeID]uint32) []uint32 {
	if workers == nil {
		return nil
	}
	out := make([]uint32, len(owners))
	for i, o := range owners {
		w, ok := workers[o]
		if !ok {
			return nil
		}
		out[i] = w
	}
	return out
}

// putCopy stores one copy of pc on owner (this node or another) on behalf
// of origin and checks the checksum the owner reports against the piece's.
func (p *Path) putCopy(ctx context.Context, owner string, ref httpapi.ChunkRef, pc *piece, origin httpapi.CopyOrigin) error {
	var (
		got uint64
		err error
	)
	if owner == p.id {
		// Only a leader's log append covers an unsynced copy at no cost;
		// a follower would sync before forwarding the command that records
		// it (LocalCopiesSyncWithLog), after every copy is done, so it
		// syncs now, while the other owners store theirs.
		got, err = p.putLocal(ctx, ref, pc.reader(ctx), pc.size, origin, p.cfg.Proposer.IsLeader())
	} else {
		got, err = p.cfg.Peers.PutChunkStream(ctx, owner, ref, pc.reader(ctx), pc.size, origin)
	}
	if err != nil {
		return err
	}
	want, err := pc.checksum(ctx)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("checksum %x after store, want %x", got, want)
	}
	return nil
}

// PutChunkOn stores a copy of a recorded chunk on owner (this node or
// another), replacing whatever is there, and checks the checksum it
// reports against sum: repair, rebalance and scrub.
func (p *Path) PutChunkOn(ctx context.Context, owner string, ref httpapi.ChunkRef, buf []byte, sum uint64) error {
	return p.putBuf(ctx, owner, ref, buf, sum, httpapi.CopyRecorded)
}

func (p *Path) putBuf(ctx context.Context, owner string, ref httpapi.ChunkRef, buf []byte, sum uint64, origin httpapi.CopyOrigin) error {
	pc := fullPiece(buf)
	pc.sumOnce.Do(func() { pc.sum = sum })
	return p.putCopy(ctx, owner, ref, pc, origin)
}

// collect deletes chunk copies that were stored but never recorded (the
// upload failed before its raft command, or gave a lagging copy up), in
// the background and best effort: a copy left behind wastes space but
// never changes what is served. Recorded garbage is collected by durable
// gc tasks instead.
//
// Each delete removes only the upload's own copy (httpapi.CopyUpload): it
// may reach an owner late (it sat in a partitioned connection), after
// rebalance or repair wrote that owner a copy of the chunk once it was
// recorded with other holders, and that copy must stay.
func (p *Path) collect(chunks []fsm.Chunk) {
	if len(chunks) == 0 {
		return
	}
	p.background(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		for _, ch := range chunks {
			ref := httpapi.ChunkRef{Blob: ch.Blob, Num: ch.Num}
			for _, o := range ch.Owners {
				var err error
				if string(o) == p.id {
					err = p.DeleteLocalChunk(ctx, ref, httpapi.CopyUpload, 0)
				} else {
					err = p.cfg.Peers.DeleteChunk(ctx, string(o), ref, httpapi.CopyUpload, 0)
				}
				if err != nil {
					p.log.Debug("garbage chunk not deleted", "blob", ch.Blob, "num", ch.Num, "owner", o, "err", err)
				}
			}
		}
	})
}

// storeChunkEC splits buf into K data and M parity shards and stores them
// on K+M distinct ring owners; a failed shard write moves on to the next
// candidate. It succeeds only when every shard is durable.
func (p *Path) storeChunkEC(ctx context.Context, num uint32, buf []byte, md5hex string) (fsm.Chunk, error) {
	pol := p.cfg.Placement.EC()
	blob, err := p.cfg.UIDs.NextUID()
	if err != nil {
		return fsm.Chunk{}, err
	}
	ch := fsm.Chunk{Blob: uint64(blob), Num: num, Size: int64(len(buf)), MD5: md5hex, Sum: xxhash.Sum64(buf)}
	r, workers, err := p.cfg.Placement.RingWorkers()
	if err != nil {
		return fsm.Chunk{}, err
	}
	if err := pol.Validate(r.Len()); err != nil {
		return fsm.Chunk{}, fmt.Errorf("%w: %w", osprey.ErrUnavailable, err)
	}
	shards, infos, err := erasure.Encode(pol, buf)
	if err != nil {
		return fsm.Chunk{}, err
	}
	candidates := r.Owners(ring.ChunkKey(ch.Blob, num), r.Len())
	type result struct {
		idx   int
		owner string
		err   error
	}
	results := make(chan result, len(candidates)+len(shards))
	start := func(idx int, owner string) {
		go func() {
			ref := httpapi.ChunkRef{Blob: ch.Blob, Num: num, Shard: uint16(idx + 1)}
			results <- result{idx, owner, p.putBuf(ctx, owner, ref, shards[idx], infos[idx].Sum, httpapi.CopyUpload)}
		}()
	}
	layout := &fsm.ECLayout{K: pol.K, M: pol.M, Shards: make([]fsm.ECShard, len(shards))}
	next, pending, placed := len(shards), len(shards), 0
	var errs []error
	for i := range shards {
		start(i, candidates[i])
	}
	for pending > 0 {
		res := <-results
		pending--
		if res.err == nil {
			in := infos[res.idx]
			layout.Shards[res.idx] = fsm.ECShard{Index: in.Index, Owner: osprey.NodeID(res.owner), Size: in.Size, Sum: in.Sum, StripeSums: in.StripeSums}
			placed++
			continue
		}
		errs = append(errs, fmt.Errorf("shard %d on %s: %w", res.idx, res.owner, res.err))
		if next < len(candidates) && ctx.Err() == nil {
			start(res.idx, candidates[next])
			next++
			pending++
		}
	}
	for _, sh := range layout.Shards {
		if sh.Owner != "" {
			ch.Owners = append(ch.Owners, sh.Owner)
		}
	}
	sort.Slice(ch.Owners, func(i, j int) bool { return ch.Owners[i] < ch.Owners[j] })
	ch.Workers = ownerWorkers(ch.Owners, workers)
	ch.EC = layout
	if placed < len(shards) {
		p.collectShards(ch)
		return fsm.Chunk{}, fmt.Errorf("%w: stored %d of %d shards of chunk %d: %w", osprey.ErrUnavailable, placed, len(shards), num, errors.Join(errs...))
	}
	return ch, nil
}

// collectShards deletes the stored shards of a chunk that was not
// recorded; as collect, only the upload's own copies.
func (p *Path) collectShards(ch fsm.Chunk) {
	p.background(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_ = p.deleteChunks(ctx, []fsm.Chunk{ch}, httpapi.CopyUpload)
	})
}

// DeleteChunks deletes copies of recorded chunks on their owners. Owners
// that left the cluster are skipped: their data went with them.
func (p *Path) DeleteChunks(ctx context.Context, chunks []fsm.Chunk) error {
	return p.deleteChunks(ctx, chunks, httpapi.CopyRecorded)
}

func (p *Path) deleteChunks(ctx context.Context, chunks []fsm.Chunk, origin httpapi.CopyOrigin) error {
	var errs []error
	del := func(owner osprey.NodeID, ref httpapi.ChunkRef) {
		if rec, ok := p.cfg.State.Node(owner); !ok || rec.Removed {
			return
		}
		var err error
		if string(owner) == p.id {
			err = p.DeleteLocalChunk(ctx, ref, origin, 0)
		} else {
			err = p.cfg.Peers.DeleteChunk(ctx, string(owner), ref, origin, 0)
		}
		if err != nil && !errors.Is(err, osprey.ErrNotFound) {
			errs = append(errs, fmt.Errorf("chunk %d/%d/%d on %s: %w", ref.Blob, ref.Num, ref.Shard, owner, err))
		}
	}
	for _, ch := range chunks {
		if ch.EC != nil {
			for _, sh := range ch.EC.Shards {
				if sh.Owner != "" {
					del(sh.Owner, httpapi.ChunkRef{Blob: ch.Blob, Num: ch.Num, Shard: uint16(sh.Index + 1)})
				}
			}
			continue
		}
		for _, o := range ch.Owners {
			del(o, httpapi.ChunkRef{Blob: ch.Blob, Num: ch.Num})
		}
	}
	return errors.Join(errs...)
}
