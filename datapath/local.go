package datapath

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/backend"
	"github.com/osprey-storage/osprey/chunkstore"
	"github.com/osprey-storage/osprey/httpapi"
)

// --- local chunk store ---

func chunkKey(ref httpapi.ChunkRef) chunkstore.Key {
	return chunkstore.Key{UID: ref.Blob, Chunk: ref.Num, Shard: ref.Shard}
}

// PutLocalChunk stores a chunk copy in this node's chunk store durably. An
// upload's copy (origin CopyUpload) never replaces a stored one, and is
// refused once its cleanup has run (chunkstore.Store.PutUpload).
func (p *Path) PutLocalChunk(ctx context.Context, ref httpapi.ChunkRef, body io.Reader, size int64, origin httpapi.CopyOrigin) (uint64, error) {
	return p.putLocal(ctx, ref, body, size, origin, false)
}

// putLocal is PutLocalChunk; withLog leaves a one-block upload copy's
// sync to the Raft log append that records it (Config.LocalCopiesSyncWithLog),
// only for this node's own uploads, never for a copy another node sent.
func (p *Path) putLocal(ctx context.Context, ref httpapi.ChunkRef, body io.Reader, size int64, origin httpapi.CopyOrigin, withLog bool) (uint64, error) {
	var (
		info chunkstore.Info
		err  error
	)
	switch {
	case origin == httpapi.CopyUpload && withLog && p.cfg.LocalCopiesSyncWithLog:
		info, err = p.cfg.Chunks.PutUploadNoSync(ctx, chunkKey(ref), body, size)
	case origin == httpapi.CopyUpload:
		info, err = p.cfg.Chunks.PutUpload(ctx, chunkKey(ref), body, size)
	default:
		info, err = p.cfg.Chunks.Put(ctx, chunkKey(ref), body, size)
	}
	if err != nil {
		return 0, mapChunkErr(err)
	}
	return info.Sum, nil
}

// GetLocalChunk reads part of a local chunk copy.
func (p *Path) GetLocalChunk(ctx context.Context, ref httpapi.ChunkRef, off, length int64) (io.ReadCloser, int64, error) {
	rc, info, err := p.cfg.Chunks.Get(ctx, chunkKey(ref), off, length)
	if err != nil {
		return nil, 0, mapChunkErr(err)
	}
	if length < 0 {
		length = info.Size - off
	}
	return rc, length, nil
}

// DeleteLocalChunk deletes a local chunk copy: whatever is stored for
// CopyRecorded, only the upload's own copy for CopyUpload (a copy that
// repair or rebalance wrote since stays); a gen other than 0 deletes only
// that generation of it (a write since stays).
func (p *Path) DeleteLocalChunk(ctx context.Context, ref httpapi.ChunkRef, origin httpapi.CopyOrigin, gen uint64) error {
	switch {
	case origin == httpapi.CopyUpload:
		_, err := p.cfg.Chunks.DeleteUpload(ctx, chunkKey(ref))
		return mapChunkErr(err)
	case gen != 0:
		_, err := p.cfg.Chunks.DeleteGen(ctx, chunkKey(ref), gen)
		return mapChunkErr(err)
	}
	return mapChunkErr(p.cfg.Chunks.Delete(ctx, chunkKey(ref)))
}

// LocalChunkGen returns the generation of the local copy of ref.
func (p *Path) LocalChunkGen(ctx context.Context, ref httpapi.ChunkRef) (uint64, error) {
	gen, err := p.cfg.Chunks.Gen(ctx, chunkKey(ref))
	return gen, mapChunkErr(err)
}

// ReleaseCopy deletes owner's copy of ref, which a recorded move made
// redundant, unless keep (asked after the copy's generation was read)
// says the record names owner for it again. The delete names that
// generation, so a delete held up in the network (a partition) and
// delivered after a later move or repair wrote the chunk to owner again
// removes nothing: the late delete of a release can no longer take the
// copy a later record relies on. An owner that cannot report generations
// (an earlier build) gets a plain delete, as before.
func (p *Path) ReleaseCopy(ctx context.Context, owner osprey.NodeID, ref httpapi.ChunkRef, keep func() bool) error {
	what := fmt.Sprintf("chunk %d/%d/%d on %s", ref.Blob, ref.Num, ref.Shard, owner)
	if string(owner) == p.id {
		return release(what, keep,
			func() (uint64, error) { return p.LocalChunkGen(ctx, ref) },
			func(gen uint64) error { return p.DeleteLocalChunk(ctx, ref, httpapi.CopyRecorded, gen) })
	}
	if rec, ok := p.cfg.State.Node(owner); !ok || rec.Removed {
		return nil // its data went with it
	}
	return release(what, keep,
		func() (uint64, error) { return p.cfg.Peers.ChunkGen(ctx, string(owner), ref) },
		func(gen uint64) error {
			return p.cfg.Peers.DeleteChunk(ctx, string(owner), ref, httpapi.CopyRecorded, gen)
		})
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
	case errors.Is(err, chunkstore.ErrDiscarded):
		return fmt.Errorf("%w: %w", osprey.ErrConflict, err)
	case errors.Is(err, chunkstore.ErrClosed):
		return fmt.Errorf("%w: %w", osprey.ErrUnavailable, err)
	}
	return err
}

// mapBackendErr maps backend sentinels onto the project's error kinds.
func mapBackendErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, backend.ErrNotFound):
		return fmt.Errorf("%w: %w", osprey.ErrNotFound, err)
	case errors.Is(err, backend.ErrInvalid):
		return fmt.Errorf("%w: %w", osprey.ErrInvalid, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return fmt.Errorf("%w: %w", osprey.ErrBackend, err)
}

// --- node-to-node object copies for the local backend ---

// PutLocalObject stores an object copy in this node's local backend.
func (p *Path) PutLocalObject(ctx context.Context, bucket, key string, body io.Reader, size int64, md5 string) error {
	if err := p.cfg.Objects.EnsureBucket(ctx, bucket); err != nil {
		return mapBackendErr(err)
	}
	_, err := p.cfg.Objects.Put(ctx, bucket, key, body, size, backend.PutOptions{MD5: md5})
	if errors.Is(err, backend.ErrChecksum) {
		// 400 on the wire; putObjectOn turns it back into ErrChecksum.
		return fmt.Errorf("%w: %w", osprey.ErrInvalid, err)
	}
	return mapBackendErr(err)
}

// GetLocalObject reads part of an object copy from this node's backend.
func (p *Path) GetLocalObject(ctx context.Context, bucket, key string, off, length int64) (io.ReadCloser, error) {
	rc, err := p.cfg.Objects.Get(ctx, bucket, key, off, length)
	return rc, mapBackendErr(err)
}

// versioned is a backend that names each write of an object (the local
// disk backend): what a release needs to delete only the write it checked.
type versioned interface {
	Version(ctx context.Context, bucket, key string) (string, error)
	DeleteVersion(ctx context.Context, bucket, key, version string) (bool, error)
}

// DeleteLocalObject deletes an object copy from this node's backend; a
// version other than "" deletes it only if it is still that write.
func (p *Path) DeleteLocalObject(ctx context.Context, bucket, key, version string) error {
	if version == "" {
		return mapBackendErr(p.cfg.Objects.Delete(ctx, bucket, key))
	}
	vb, ok := p.cfg.Objects.(versioned)
	if !ok {
		return fmt.Errorf("%w: this node's backend has no object versions", osprey.ErrInvalid)
	}
	_, err := vb.DeleteVersion(ctx, bucket, key, version)
	return mapBackendErr(err)
}

// LocalObjectVersion names the stored write of an object copy in this
// node's backend; errors.ErrUnsupported if the backend cannot.
func (p *Path) LocalObjectVersion(ctx context.Context, bucket, key string) (string, error) {
	vb, ok := p.cfg.Objects.(versioned)
	if !ok {
		return "", fmt.Errorf("object versions: %w", errors.ErrUnsupported)
	}
	v, err := vb.Version(ctx, bucket, key)
	return v, mapBackendErr(err)
}

// PutObjectOn writes an object copy to owner (this node or another).
func (p *Path) PutObjectOn(ctx context.Context, owner, bucket, key string, body io.Reader, size int64, md5 string) error {
	if owner == p.id {
		return p.PutLocalObject(ctx, bucket, key, body, size, md5)
	}
	return p.cfg.Peers.PutObject(ctx, owner, bucket, key, body, size, md5)
}

// OpenObjectOn reads part of an object copy held by owner.
func (p *Path) OpenObjectOn(ctx context.Context, owner, bucket, key string, off, length int64) (io.ReadCloser, error) {
	if owner == p.id {
		return p.GetLocalObject(ctx, bucket, key, off, length)
	}
	return p.cfg.Peers.OpenObject(ctx, owner, bucket, key, 0, off, length)
}

// DeleteObjectOn deletes the object copy held by owner (this node or another).
func (p *Path) DeleteObjectOn(ctx context.Context, owner, bucket, key string) error {
	if owner == p.id {
		return p.DeleteLocalObject(ctx, bucket, key, "")
	}
	return p.cfg.Peers.DeleteObject(ctx, owner, bucket, key, "")
}

// ReleaseObject is ReleaseCopy for owner's copy of the object bucket/key
// (a local-disk backend's copy that a recorded move made redundant): the
// delete names the write whose version it read before asking keep.
func (p *Path) ReleaseObject(ctx context.Context, owner osprey.NodeID, bucket, key string, keep func() bool) error {
	what := fmt.Sprintf("object %s/%s on %s", bucket, key, owner)
	if string(owner) == p.id {
		return release(what, keep,
			func() (string, error) { return p.LocalObjectVersion(ctx, bucket, key) },
			func(v string) error { return p.DeleteLocalObject(ctx, bucket, key, v) })
	}
	return release(what, keep,
		func() (string, error) { return p.cfg.Peers.ObjectVersion(ctx, string(owner), bucket, key) },
		func(v string) error { return p.cfg.Peers.DeleteObject(ctx, string(owner), bucket, key, v) })
}

// release reads the version of a copy, asks keep, and deletes that
// version (what ReleaseCopy and ReleaseObject share). A copy already gone
// is released; a holder that cannot name versions (errors.ErrUnsupported:
// an earlier build, a backend without them) gets a plain delete, the
// zero version.
func release[V comparable](what string, keep func() bool, version func() (V, error), del func(V) error) error {
	v, err := version()
	switch {
	case errors.Is(err, osprey.ErrNotFound):
		return nil
	case errors.Is(err, errors.ErrUnsupported):
		var zero V
		v = zero
	case err != nil:
		return fmt.Errorf("release %s: %w", what, err)
	}
	if keep() {
		return nil
	}
	if err := del(v); err != nil && !errors.Is(err, osprey.ErrNotFound) {
		return fmt.Errorf("release %s: %w", what, err)
	}
	return nil
}
