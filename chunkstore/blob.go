package chunkstore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Blob files hold the blocks of large values outside Pebble (the measured
// choice in DESIGN.md): one file per value generation in <dir>/blobs,
// named uid-chunk-shard-gen in hex, holding each block's data followed by
// its xxhash64, exactly like a block value in Pebble, so block idx starts
// at idx*(blockSize+8). Only the manifest goes through Pebble.
//
// Commit protocol: write the file, fdatasync it, fsync the blobs
// directory, then commit the manifest (synced batch). A file no manifest
// names (a Put that crashed or failed before its commit, or a replaced or
// deleted value whose unlink was lost) is removed at Open, so no pending
// marker is needed. Replaced and deleted values' files are unlinked after
// their manifest change commits; a reader that opened the file before
// keeps reading it (an open descriptor survives the unlink).

// blobPath is the blob file of generation gen of k.
func (s *Store) blobPath(k Key, gen uint64) string {
	return s.fs.PathJoin(s.blobsDir, blobName(k, gen))
}

func blobName(k Key, gen uint64) string {
	return fmt.Sprintf("%016x-%08x-%04x-%016x", k.UID, k.Chunk, k.Shard, gen)
}

// parseBlobName is the inverse of blobName.
func parseBlobName(name string) (Key, uint64, bool) {
	parts := strings.Split(name, "-")
	if len(parts) != 4 || len(parts[0]) != 16 || len(parts[1]) != 8 || len(parts[2]) != 4 || len(parts[3]) != 16 {
		return Key{}, 0, false
	}
	var v [4]uint64
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 16, 64)
		if err != nil {
			return Key{}, 0, false
		}
		v[i] = n
	}
	return Key{UID: v[0], Chunk: uint32(v[1]), Shard: uint16(v[2])}, v[3], true
}

// blobOffset is where block idx starts in a blob file.
func (m manifest) blobOffset(idx uint32) int64 {
	return int64(idx) * (int64(m.blockSize) + 8)
}

// writeFile writes the value's blocks into its blob file with one write
// per block, and makes the file and its directory entry durable. Nothing
// names the file until commit writes the manifest.
func (s *Store) writeFile(bw *blockWriter) (err error) {
	path := s.blobPath(bw.k, bw.m.gen)
	f, err := s.fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("create blob file: %w", err)
	}
	defer func() {
		if f != nil {
			_ = f.Close()
		}
		if err != nil {
			_ = s.fs.Remove(path)
		}
	}()
	bufp := s.bufPool.Get().(*[]byte)
	defer s.bufPool.Put(bufp)
	err = bw.each(func(_ uint32, _ []byte, n int, fill func([]byte) error) error {
		buf := (*bufp)[:n+8]
		if err := fill(buf); err != nil {
			return err
		}
		if _, err := f.Write(buf); err != nil {
			return fmt.Errorf("write blob file: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := f.SyncData(); err != nil {
		return fmt.Errorf("sync blob file: %w", err)
	}
	err, f = f.Close(), nil
	if err != nil {
		return fmt.Errorf("close blob file: %w", err)
	}
	// The file's directory entry must be durable before the manifest
	// that names it.
	if err := s.blobsDirFile.Sync(); err != nil {
		return fmt.Errorf("sync blobs dir: %w", err)
	}
	return nil
}

// removeBlob unlinks a blob file no manifest names any more. It need not
// be durable: Open removes files without a manifest.
func (s *Store) removeBlob(k Key, gen uint64) {
	if err := s.fs.Remove(s.blobPath(k, gen)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("remove blob file", "key", k.String(), "gen", gen, "err", err)
	}
}

// openBlob opens the blob file of manifest m of k for reading. A missing
// file is corruption (the manifest is committed only after the file is
// durable).
func (s *Store) openBlob(k Key, m manifest) (vfs.File, error) {
	f, err := s.fs.Open(s.blobPath(k, m.gen))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, s.corrupt(k, "blob file of generation %d missing", m.gen)
	}
	if err != nil {
		return nil, fmt.Errorf("chunkstore: get %v: open blob file: %w", k, err)
	}
	return f, nil
}

// readBlobBlock reads block idx (data and checksum) of m from f into buf,
// which must have room for blockLen+8 bytes, and returns the data part.
func (s *Store) readBlobBlock(k Key, m manifest, f vfs.File, idx uint32, buf []byte) ([]byte, error) {
	n := m.blockLen(idx)
	v := buf[:n+8]
	got, err := f.ReadAt(v, m.blobOffset(idx))
	if got < len(v) {
		if err == nil || errors.Is(err, io.EOF) {
			return nil, s.corrupt(k, "block %d of %d truncated in blob file", idx, m.blocks)
		}
		return nil, fmt.Errorf("chunkstore: get %v block %d: %w", k, idx, err)
	}
	return v, nil
}

// sweepBlobs removes blob files no manifest names: Puts that crashed
// before their commit, and replaced or deleted values whose unlink was
// lost. It runs at Open, before any Put.
func (s *Store) sweepBlobs() error {
	names, err := s.fs.List(s.blobsDir)
	if err != nil {
		return fmt.Errorf("chunkstore: list blobs: %w", err)
	}
	removed := 0
	for _, name := range names {
		k, gen, ok := parseBlobName(name)
		if ok {
			m, found, err := s.readManifest(k)
			if err != nil && !errors.Is(err, ErrCorrupt) {
				return err
			}
			if found && err == nil && m.file && m.gen == gen {
				continue // live
			}
			if found && err != nil {
				// Corrupt manifest: its generation is unknown, keep
				// the file for inspection (it leaks, as blocks do).
				continue
			}
		}
		if err := s.fs.Remove(s.fs.PathJoin(s.blobsDir, name)); err != nil {
			return fmt.Errorf("chunkstore: remove orphan blob %s: %w", name, err)
		}
		removed++
	}
	if removed > 0 {
		s.log.Info("removed blob files of uncommitted or deleted values", "count", removed)
	}
	return nil
}
