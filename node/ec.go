package node

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/erasure"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
	"github.com/osprey-storage/osprey/ring"
)

// ecEnabled reports whether staged chunks are erasure-coded.
func (n *Node) ecEnabled() bool { return n.cfg.EC.K > 0 }

// ecFits reports whether the active members can hold K+M distinct shards.
// With fewer, chunks are replicated M+1 times instead: the same number of
// losses is tolerated.
func (n *Node) ecFits() bool {
	r, err := n.ring()
	return err == nil && r.Len() >= n.cfg.EC.K+n.cfg.EC.M
}

// storeChunkEC splits buf into K data and M parity shards and stores them
// on K+M distinct ring owners; a failed shard write moves on to the next
// candidate. It succeeds only when every shard is durable.
func (n *Node) storeChunkEC(ctx context.Context, num uint32, buf []byte) (fsm.Chunk, error) {
	p := n.cfg.EC
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
	if err := p.Validate(r.Len()); err != nil {
		return fsm.Chunk{}, fmt.Errorf("%w: %w", osprey.ErrUnavailable, err)
	}
	shards, infos, err := erasure.Encode(p, buf)
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
			results <- result{idx, owner, n.putChunkOn(ctx, owner, ref, shards[idx], infos[idx].Sum)}
		}()
	}
	layout := &fsm.ECLayout{K: p.K, M: p.M, Shards: make([]fsm.ECShard, len(shards))}
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
	ch.EC = layout
	if placed < len(shards) {
		n.collectShards(ch)
		return fsm.Chunk{}, fmt.Errorf("%w: stored %d of %d shards of chunk %d: %w", osprey.ErrUnavailable, placed, len(shards), num, errors.Join(errs...))
	}
	return ch, nil
}

// collectShards deletes the stored shards of a chunk that was not recorded.
func (n *Node) collectShards(ch fsm.Chunk) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
		defer cancel()
		_ = n.deleteChunks(ctx, []fsm.Chunk{ch})
	}()
}

func ecPolicy(l *fsm.ECLayout) erasure.Policy { return erasure.Policy{K: l.K, M: l.M} }

func ecInfos(l *fsm.ECLayout) []erasure.ShardInfo {
	out := make([]erasure.ShardInfo, len(l.Shards))
	for i, sh := range l.Shards {
		out[i] = erasure.ShardInfo{Index: sh.Index, Size: sh.Size, Sum: sh.Sum, StripeSums: sh.StripeSums}
	}
	return out
}

// openECRange reads a byte range of an erasure-coded chunk from any K
// healthy shards, streaming with bounded memory. Shards held by skip are
// not read (a repair excludes the copy it replaces).
func (n *Node) openECRange(ctx context.Context, ch fsm.Chunk, off, length int64, skip osprey.NodeID) io.ReadCloser {
	l := ch.EC
	src := func(ctx context.Context, idx int, o, k int64) (io.ReadCloser, error) {
		sh := l.Shards[idx]
		if sh.Owner == skip {
			return nil, fmt.Errorf("shard %d is being replaced", idx)
		}
		return n.openChunk(ctx, string(sh.Owner), httpapi.ChunkRef{Blob: ch.Blob, Num: ch.Num, Shard: uint16(idx + 1)}, o, k)
	}
	rd, err := erasure.NewReader(ctx, ecPolicy(l), ch.Size, ecInfos(l), src, off, length, erasure.ReaderOptions{
		OnCorrupt: func(idx int, err error) {
			n.corruptReads.Inc()
			n.log.Warn("corrupt shard", "blob", ch.Blob, "num", ch.Num, "shard", idx, "owner", l.Shards[idx].Owner, "err", err)
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
func (n *Node) openChunkRange(ctx context.Context, ch fsm.Chunk, off, length int64) io.ReadCloser {
	if ch.EC != nil {
		return n.openECRange(ctx, ch, off, length, "")
	}
	return n.newChunkReader(ctx, ch, off, length)
}

// repairShard rebuilds one shard of a coded chunk on a new holder: it
// decodes the chunk from the other shards, re-encodes it (encoding is
// deterministic, checked against the recorded checksum) and stores the
// lost shard on the first ring candidate not holding one.
func (n *Node) repairShard(ctx context.Context, ch fsm.Chunk, shard int, lost osprey.NodeID) (string, error) {
	l := ch.EC
	if shard < 1 || shard > len(l.Shards) {
		return "", Permanent(fmt.Errorf("repair: chunk %d/%d has no shard %d", ch.Blob, ch.Num, shard))
	}
	rd := n.openECRange(ctx, ch, 0, ch.Size, lost)
	defer rd.Close()
	buf, release, err := n.readPiece(ctx, rd, ch.Size+1, ch.Size+1)
	if err != nil {
		return "", err
	}
	defer release()
	if sum := md5.Sum(buf); int64(len(buf)) != ch.Size || hex.EncodeToString(sum[:]) != ch.MD5 {
		return "", fmt.Errorf("repair: decoded chunk %d/%d does not match its record", ch.Blob, ch.Num)
	}
	shards, infos, err := erasure.Encode(ecPolicy(l), buf)
	if err != nil {
		return "", err
	}
	idx := shard - 1
	if infos[idx].Sum != l.Shards[idx].Sum {
		return "", Permanent(fmt.Errorf("repair: re-encoded shard %d of chunk %d/%d differs from its record", idx, ch.Blob, ch.Num))
	}
	holders := make([]osprey.NodeID, 0, len(l.Shards))
	for _, sh := range l.Shards {
		holders = append(holders, sh.Owner)
	}
	targets, err := n.newOwners(ring.ChunkKey(ch.Blob, ch.Num), holders)
	if err != nil {
		return "", errNeedsConversion{buf: append([]byte(nil), buf...)}
	}
	var errs []error
	for _, t := range targets {
		ref := httpapi.ChunkRef{Blob: ch.Blob, Num: ch.Num, Shard: uint16(shard)}
		if err := n.putChunkOn(ctx, t, ref, shards[idx], infos[idx].Sum); err != nil {
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
	r, err := n.ring()
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
		if err := n.putChunkOn(ctx, c, httpapi.ChunkRef{Blob: ch.Blob, Num: ch.Num}, buf, ch.Sum); err != nil {
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
