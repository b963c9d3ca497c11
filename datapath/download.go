package datapath

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/erasure"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
)

// errLost is returned for a file whose content was lost (see
// fsm.ContentLost).
var errLost = errors.New("its bytes were only staged when the restored metadata backup was taken, and the nodes that held them are gone")

// openChunk opens length bytes at off of one chunk copy on owner.
func (p *Path) openChunk(ctx context.Context, owner string, ref httpapi.ChunkRef, off, length int64) (io.ReadCloser, error) {
	if owner == p.id {
		rc, _, err := p.GetLocalChunk(ctx, ref, off, length)
		return rc, err
	}
	return p.cfg.Peers.OpenChunk(ctx, owner, ref, off, length)
}

// OpenCopies reads a byte range of a replicated chunk from its owners in
// turn (this node first), resuming on the next owner where a failed one
// stopped, so a bad or lost copy costs a retry, not the download. The
// caller MUST Close the reader.
func (p *Path) OpenCopies(ctx context.Context, ch fsm.Chunk, off, length int64) io.ReadCloser {
	ref := httpapi.ChunkRef{Blob: ch.Blob, Num: ch.Num}
	return &failoverReader{p: p, ctx: ctx, what: fmt.Sprintf("chunk %d (blob %d)", ch.Num, ch.Blob), srcs: p.localFirst(ch.Owners), off: off, remain: length,
		open: func(owner string, off, n int64) (io.ReadCloser, error) { return p.openChunk(ctx, owner, ref, off, n) }}
}

// localFirst lists members with this node first (its copy is read
// without a network hop).
func (p *Path) localFirst(ids []osprey.NodeID) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if string(id) == p.id {
			out = append([]string{p.id}, out...)
		} else {
			out = append(out, string(id))
		}
	}
	return out
}

// failoverReader reads a byte range from one source at a time (a chunk's
// owners, a tiered content's holders), in turn; when one fails, at open
// or mid-range (a bad copy, a short one, a member gone), the read goes on
// at the same offset from the next. An error writing to the destination
// (WriteTo) is returned as it is.
type failoverReader struct {
	p      *Path
	ctx    context.Context
	what   string // for errors: "chunk 3 (blob 7)", "content 9"
	srcs   []string
	open   func(src string, off, n int64) (io.ReadCloser, error)
	off    int64 // offset within the range's source
	remain int64
	cur    io.ReadCloser
	remote bool // cur is another member's answer
	errs   []error
}

// next opens the rest of the range on the next source that answers.
func (r *failoverReader) next() error {
	for len(r.srcs) > 0 && r.ctx.Err() == nil {
		src := r.srcs[0]
		r.srcs = r.srcs[1:]
		rc, err := r.open(src, r.off, r.remain)
		if err == nil {
			r.cur, r.remote = rc, src != r.p.id
			return nil
		}
		r.errs = append(r.errs, fmt.Errorf("%s: %w", src, err))
	}
	return r.exhausted()
}

func (r *failoverReader) exhausted() error {
	errs := r.errs
	if err := r.ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return fmt.Errorf("%w: no readable copy of %s: %w", osprey.ErrUnavailable, r.what, errors.Join(errs...))
}

// drop closes the current source after it failed with err; the next read
// opens the next one.
func (r *failoverReader) drop(err error) {
	r.cur.Close()
	r.cur = nil
	r.errs = append(r.errs, fmt.Errorf("at offset %d: %w", r.off, err))
	if r.off > 0 {
		r.p.log.Warn("a copy failed mid-read: continuing from the next", "copy", r.what, "offset", r.off, "err", err)
	}
}

func (r *failoverReader) Read(b []byte) (int, error) {
	for r.remain > 0 {
		if r.cur == nil {
			if err := r.next(); err != nil {
				return 0, err
			}
		}
		if int64(len(b)) > r.remain {
			b = b[:r.remain]
		}
		k, err := r.cur.Read(b)
		r.off += int64(k)
		r.remain -= int64(k)
		if r.remain == 0 {
			// Release the copy's reader (a pebble iterator, a file, a
			// connection) as soon as the range is read.
			r.cur.Close()
			r.cur = nil
			return k, nil
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			r.drop(err)
		}
		if k > 0 {
			return k, nil
		}
	}
	return 0, io.EOF
}

// WriteTo sends through the source reader's own WriteTo when it is this
// node's (a local object goes out by sendfile, checkedObject marks its own
// read errors); another member's answer is copied with its read errors
// marked, so that a write error is told apart.
func (r *failoverReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for r.remain > 0 {
		if r.cur == nil {
			if err := r.next(); err != nil {
				return total, err
			}
		}
		var n int64
		var err error
		if wt, ok := r.cur.(io.WriterTo); ok && !r.remote {
			n, err = wt.WriteTo(w)
		} else {
			n, err = copyLarge(w, sourceReader{r.cur})
		}
		total += n
		r.off += n
		r.remain -= n
		if r.remain == 0 {
			r.cur.Close()
			r.cur = nil
			return total, nil
		}
		var re *readError
		if err != nil && !errors.As(err, &re) {
			return total, err
		}
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		r.drop(err)
	}
	return total, nil
}

func (r *failoverReader) Close() error {
	if r.cur != nil {
		return r.cur.Close()
	}
	return nil
}

// sourceReader marks its reader's errors as the source's (readError).
type sourceReader struct{ r io.Reader }

func (s sourceReader) Read(b []byte) (int, error) {
	n, err := s.r.Read(b)
	return n, sourceErr(err)
}

// stagedReader streams a byte range of staged content chunk by chunk;
// memory is one read buffer whatever the file size.
type stagedReader struct {
	p      *Path
	ctx    context.Context
	cancel context.CancelFunc
	chunks []fsm.Chunk
	idx    int   // current chunk
	off    int64 // offset within the current chunk
	remain int64
	cur    io.ReadCloser
	once   sync.Once
	// next is the following chunk, already being read from a remote owner
	// into a pipe (nextIdx is its index): a read-ahead window of one pipe
	// buffer plus the connection's socket buffers.
	next    io.ReadCloser
	nextIdx int
}

var _ io.ReadCloser = (*failoverReader)(nil)

// readAheadBuf is the most a prefetching goroutine holds.
const readAheadBuf = 256 << 10

// prefetch starts reading a chunk range in the background into a pipe. The
// goroutine stops when the range is read, the reader is closed, or ctx
// ends; it holds at most readAheadBuf bytes.
func (p *Path) prefetch(ctx context.Context, ch fsm.Chunk, off, length int64) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		src := p.openChunkRange(ctx, ch, off, length)
		buf := make([]byte, readAheadBuf)
		_, err := io.CopyBuffer(pw, src, buf)
		src.Close()
		pw.CloseWithError(err)
	}()
	return pr
}

func (p *Path) holdsCopy(ch fsm.Chunk) bool {
	for _, o := range ch.Owners {
		if string(o) == p.id {
			return ch.EC == nil
		}
	}
	return false
}

// Open returns a complete file for reading.
func (p *Path) Open(ctx context.Context, uid osprey.UID) (*httpapi.Object, error) {
	f, err := p.file(ctx, uid, false)
	if err != nil {
		return nil, err
	}
	if f.State == fsm.StateUploading {
		// This replica may lag a merge acknowledged elsewhere: confirm.
		if f, err = p.file(ctx, uid, true); err != nil {
			return nil, err
		}
	}
	if f.State == fsm.StateUploading {
		return nil, fmt.Errorf("%w: uid %s is still uploading", osprey.ErrConflict, uid)
	}
	ct, ok := p.cfg.State.Content(f.Content)
	if !ok {
		return nil, fmt.Errorf("%w: content of uid %s", osprey.ErrNotFound, uid)
	}
	if ct.State == fsm.ContentLost {
		return nil, fmt.Errorf("%w: uid %s: %w", osprey.ErrGone, uid, errLost)
	}
	info := p.fileInfo(f)
	obj := &httpapi.Object{FileInfo: info}
	for _, c := range ct.ChunkSums() {
		obj.Sums = append(obj.Sums, httpapi.ChunkSum{Size: c.Size, Sum: c.Sum})
	}
	obj.Reader = func(ctx context.Context, off, length int64) (io.ReadCloser, error) {
		return p.openFresh(ctx, ct, off, length)
	}
	return obj, nil
}

// openFresh is openContent that, when no holder this replica's record
// names could serve the range, reads the record again after a read
// barrier and tries the holders it names then. The record read without a
// barrier may lag (a member that just rejoined, or one that has not
// applied a move yet): the copies may have moved to other members and the
// old ones been released, which the holders answer as missing. A barrier
// that fails (no leader to confirm with) is the answer then: this node
// cannot tell where the copies are.
func (p *Path) openFresh(ctx context.Context, ct fsm.Content, off, length int64) (io.ReadCloser, error) {
	rc, err := p.openContent(ctx, ct, off, length)
	if err == nil || !errors.Is(err, osprey.ErrUnavailable) {
		return rc, err
	}
	if berr := p.cfg.Proposer.ReadBarrier(ctx); berr != nil {
		return nil, fmt.Errorf("no copy this node's record names could be read, and it could not confirm the record: %w", berr)
	}
	fresh, ok := p.cfg.State.Content(ct.ID)
	if !ok {
		return nil, fmt.Errorf("%w: content %s", osprey.ErrNotFound, ct.ID)
	}
	if sameLocation(ct.Location, fresh.Location) {
		return nil, err
	}
	p.log.Info("record had moved: reading from its current holders", "content", ct.ID)
	return p.openContent(ctx, fresh, off, length)
}

// sameLocation reports whether two versions of a tiered content's
// location name the same object and holders. (Only a tiered content fails
// when it is opened: staged chunks are opened as they are read, and
// switchingReader follows their moves.)
func sameLocation(a, b *fsm.Location) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Bucket == b.Bucket && a.Key == b.Key && slices.Equal(a.Nodes, b.Nodes)
}

// openContent reads a byte range of a content wherever it lives.
func (p *Path) openContent(ctx context.Context, ct fsm.Content, off, length int64) (io.ReadCloser, error) {
	if off < 0 || length < 0 || off+length > ct.Size {
		return nil, fmt.Errorf("%w: range %d+%d of %d bytes", osprey.ErrRange, off, length, ct.Size)
	}
	if ct.Location != nil {
		return p.OpenTiered(ctx, ct, off, length)
	}
	// Staged: if tiering finishes and the staged chunks are collected
	// while this download runs, continue from the backend copy.
	return &switchingReader{p: p, ctx: ctx, ct: ct, off: off, remain: length,
		cur: p.OpenStaged(ctx, ct.Chunks, off, length)}, nil
}

// OpenTiered reads a byte range of a tiered content from the backend: a
// shared backend directly, a replicated local backend from any holder.
func (p *Path) OpenTiered(ctx context.Context, ct fsm.Content, off, length int64) (io.ReadCloser, error) {
	loc := ct.Location
	if len(loc.Nodes) == 0 {
		rc, err := p.cfg.Objects.Get(ctx, loc.Bucket, loc.Key, off, length)
		if err != nil {
			return nil, mapBackendErr(err)
		}
		return rc, nil
	}
	// Each holder checks its copy as it reads it (GetCheckedObject).
	r := &failoverReader{p: p, ctx: ctx, what: "content " + ct.ID.String(), srcs: p.localFirst(loc.Nodes), off: off, remain: length,
		open: func(h string, off, n int64) (io.ReadCloser, error) {
			if h == p.id {
				return p.GetCheckedObject(ctx, loc.Bucket, loc.Key, ct.ID, off, n)
			}
			return p.cfg.Peers.OpenObject(ctx, h, loc.Bucket, loc.Key, ct.ID, off, n)
		}}
	if err := r.next(); err != nil {
		return nil, err
	}
	return r, nil
}

// switchingReader serves a staged content and, should its staged chunks
// fail mid-download, continues at the same offset from wherever the
// content's record says the bytes are now: from the backend if the content
// was tiered and its staged copies collected meanwhile, or from the chunks'
// current owners if a rebalance or repair moved the copies and released the
// ones this reader was sent to. A record read without a barrier may lag (a
// member that just rejoined, or one that has not applied the move yet), so
// when this replica's record still names the failed copies, it is read
// again once after a read barrier.
type switchingReader struct {
	p        *Path
	ctx      context.Context
	ct       fsm.Content // the version of the record being read
	off      int64       // offset within the content
	remain   int64
	cur      io.ReadCloser
	switched bool // reading the tiered copy: nothing to follow any more
	barrier  bool // a read barrier was taken
	reopens  int
}

// maxReopens bounds how often one read follows a moved record.
const maxReopens = 8

func (s *switchingReader) Read(p []byte) (int, error) {
	k, err := s.cur.Read(p)
	s.off += int64(k)
	s.remain -= int64(k)
	if err == nil || err == io.EOF || s.switched || s.remain <= 0 {
		return k, err
	}
	if rerr := s.reopen(err); rerr != nil {
		return k, rerr
	}
	return k, nil
}

// reopen continues the read after the staged copies failed with err, or
// returns the error to give the reader.
func (s *switchingReader) reopen(err error) error {
	if s.reopens >= maxReopens || s.ctx.Err() != nil {
		return err
	}
	ct, ok := s.p.cfg.State.Content(s.ct.ID)
	if ok && ct.Location == nil && sameChunks(s.ct.Chunks, ct.Chunks) && !s.barrier {
		s.barrier = true
		if berr := s.p.cfg.Proposer.ReadBarrier(s.ctx); berr != nil {
			return fmt.Errorf("%w; and this node could not confirm the record: %w", err, berr)
		}
		ct, ok = s.p.cfg.State.Content(s.ct.ID)
	}
	if !ok {
		return err
	}
	if ct.Location != nil {
		rc, oerr := s.p.OpenTiered(s.ctx, ct, s.off, s.remain)
		if oerr != nil {
			return errors.Join(err, oerr)
		}
		s.cur.Close()
		s.cur, s.switched = rc, true
		return nil
	}
	if sameChunks(s.ct.Chunks, ct.Chunks) {
		return err
	}
	s.p.log.Info("staged copies had moved: reading from their current owners", "content", ct.ID, "offset", s.off)
	s.reopens++
	s.cur.Close()
	s.ct = ct
	s.cur = s.p.OpenStaged(s.ctx, ct.Chunks, s.off, s.remain)
	return nil
}

// sameChunks reports whether two versions of a staged content's record
// name the same copies.
func sameChunks(a, b []fsm.Chunk) bool {
	return slices.EqualFunc(a, b, func(x, y fsm.Chunk) bool {
		if x.Blob != y.Blob || x.Num != y.Num || !slices.Equal(x.Owners, y.Owners) || (x.EC == nil) != (y.EC == nil) {
			return false
		}
		return x.EC == nil || slices.EqualFunc(x.EC.Shards, y.EC.Shards, func(p, q fsm.ECShard) bool { return p.Owner == q.Owner })
	})
}

func (s *switchingReader) Close() error { return s.cur.Close() }

// WriteTo lets io.Copy (the download handler) send in large writes: a
// tiered copy passes its own WriteTo on (a local file goes out by
// sendfile), staged bytes go through one pooled sendBuf-sized buffer
// instead of net/http's 32 KiB copy buffer, so a 1 GiB download costs
// about a thousand write(2) calls instead of 32,768.
func (s *switchingReader) WriteTo(w io.Writer) (int64, error) {
	if wt, ok := s.cur.(io.WriterTo); ok && s.switched {
		n, err := wt.WriteTo(w)
		s.off += n
		s.remain -= n
		return n, err
	}
	return copyLarge(w, s)
}

// sendBuf is the write size of staged downloads: one chunk-store block.
const sendBuf = 1 << 20

var sendBufs = sync.Pool{New: func() any { b := make([]byte, sendBuf); return &b }}

// copyLarge copies src to w through a pooled sendBuf buffer, hiding w's
// ReadFrom (net/http's would copy in 32 KiB pieces) and src's WriteTo.
func copyLarge(w io.Writer, src io.Reader) (int64, error) {
	bp := sendBufs.Get().(*[]byte)
	defer sendBufs.Put(bp)
	return io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{src}, *bp)
}

// OpenStaged streams a byte range of staged content chunk by chunk, with
// a read-ahead of one chunk from remote owners. The caller MUST Close the
// reader.
func (p *Path) OpenStaged(ctx context.Context, chunks []fsm.Chunk, off, length int64) io.ReadCloser {
	ctx, cancel := context.WithCancel(ctx)
	s := &stagedReader{p: p, ctx: ctx, cancel: cancel, chunks: chunks, remain: length}
	for s.idx < len(chunks) && off >= chunks[s.idx].Size {
		off -= chunks[s.idx].Size
		s.idx++
	}
	s.off = off
	return s
}

func (s *stagedReader) Read(p []byte) (int, error) {
	for s.remain > 0 {
		if s.cur == nil {
			for s.idx < len(s.chunks) && s.off >= s.chunks[s.idx].Size {
				s.off -= s.chunks[s.idx].Size
				s.idx++
			}
			if s.idx >= len(s.chunks) {
				return 0, io.ErrUnexpectedEOF
			}
			ch := s.chunks[s.idx]
			n := min(ch.Size-s.off, s.remain)
			if s.next != nil && s.nextIdx == s.idx && s.off == 0 {
				s.cur, s.next = s.next, nil
			} else {
				s.cur = s.p.openChunkRange(s.ctx, ch, s.off, n)
			}
			// Start the next chunk now if it lives elsewhere, so its
			// transfer overlaps with sending this one.
			if rest := s.remain - n; rest > 0 && s.idx+1 < len(s.chunks) && s.next == nil {
				nx := s.chunks[s.idx+1]
				if !s.p.holdsCopy(nx) {
					s.next, s.nextIdx = s.p.prefetch(s.ctx, nx, 0, min(nx.Size, rest)), s.idx+1
				}
			}
		}
		if int64(len(p)) > s.remain {
			p = p[:s.remain]
		}
		k, err := s.cur.Read(p)
		s.off += int64(k)
		s.remain -= int64(k)
		if err == io.EOF || s.remain == 0 && err == nil {
			s.cur.Close()
			s.cur = nil
			if k > 0 {
				return k, nil
			}
			continue
		}
		return k, err
	}
	return 0, io.EOF
}

// WriteTo copies in sendBuf-sized writes (io.Copy would use 32 KiB):
// the tier pass copies staged content through io.Copy into the backend.
func (s *stagedReader) WriteTo(w io.Writer) (int64, error) { return copyLarge(w, s) }

func (s *stagedReader) Close() error {
	s.once.Do(s.cancel)
	if s.next != nil {
		s.next.Close()
	}
	if s.cur != nil {
		return s.cur.Close()
	}
	return nil
}

func ecPolicy(l *fsm.ECLayout) erasure.Policy { return erasure.Policy{K: l.K, M: l.M} }

func ecInfos(l *fsm.ECLayout) []erasure.ShardInfo {
	out := make([]erasure.ShardInfo, len(l.Shards))
	for i, sh := range l.Shards {
		out[i] = erasure.ShardInfo{Index: sh.Index, Size: sh.Size, Sum: sh.Sum, StripeSums: sh.StripeSums}
	}
	return out
}

// OpenECRange reads a byte range of an erasure-coded chunk from any K
// healthy shards, streaming with bounded memory. Shards held by skip are
// not read (a repair excludes the copy it replaces).
func (p *Path) OpenECRange(ctx context.Context, ch fsm.Chunk, off, length int64, skip osprey.NodeID) io.ReadCloser {
	l := ch.EC
	src := func(ctx context.Context, idx int, o, k int64) (io.ReadCloser, error) {
		sh := l.Shards[idx]
		if sh.Owner == skip {
			return nil, fmt.Errorf("shard %d is being replaced", idx)
		}
		return p.openChunk(ctx, string(sh.Owner), httpapi.ChunkRef{Blob: ch.Blob, Num: ch.Num, Shard: uint16(idx + 1)}, o, k)
	}
	rd, err := erasure.NewReader(ctx, ecPolicy(l), ch.Size, ecInfos(l), src, off, length, erasure.ReaderOptions{
		OnCorrupt: func(idx int, err error) {
			p.corrupt.Inc()
			p.log.Warn("corrupt shard", "blob", ch.Blob, "num", ch.Num, "shard", idx, "owner", l.Shards[idx].Owner, "err", err)
		},
	})
	if err != nil {
		return io.NopCloser(errReader{err})
	}
	return rd
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// openChunkRange reads a byte range of a chunk, replicated or coded.
func (p *Path) openChunkRange(ctx context.Context, ch fsm.Chunk, off, length int64) io.ReadCloser {
	if ch.EC != nil {
		return p.OpenECRange(ctx, ch, off, length, "")
	}
	return p.OpenCopies(ctx, ch, off, length)
}
