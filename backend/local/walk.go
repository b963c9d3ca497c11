package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Walk calls fn for every object stored, in lexical order of bucket and
// key, with its size and version (see Version). Temporary files of Puts
// and the sidecars are not objects and are skipped. An object removed
// while the walk runs may or may not be reported; fn's error ends the
// walk and is returned.
func (b *Backend) Walk(ctx context.Context, fn func(bucket, key string, size int64, version string) error) error {
	buckets, err := os.ReadDir(b.dir)
	if err != nil {
		return fmt.Errorf("local: walk: %w", classify(err))
	}
	for _, bk := range buckets {
		if !bk.IsDir() || strings.HasPrefix(bk.Name(), ".") {
			continue // the sidecar directory and the owner mark
		}
		root := filepath.Join(b.dir, bk.Name())
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil // pruned by a Delete meanwhile
				}
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if strings.HasPrefix(d.Name(), reservedPrefix) || !d.Type().IsRegular() {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			return fn(bk.Name(), filepath.ToSlash(rel), fi.Size(), version(fi))
		})
		if err != nil {
			return fmt.Errorf("local: walk %s: %w", bk.Name(), err)
		}
	}
	return nil
}

// RemoveStaleTemps removes the temporary files of Puts that were last
// written more than age ago: a Put writes its temporary file as the body
// arrives and renames it at the end, so one that old belongs to a Put a
// crash or a kill interrupted. It returns how many it removed and their
// bytes.
func (b *Backend) RemoveStaleTemps(ctx context.Context, age time.Duration) (n int, bytes int64, err error) {
	cutoff := time.Now().Add(-age)
	err = filepath.WalkDir(b.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			if p != b.dir && d.Name() == metaDirName {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(d.Name(), tmpPrefix) || !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil || !fi.ModTime().Before(cutoff) {
			return nil
		}
		if err := os.Remove(p); err == nil {
			n++
			bytes += fi.Size()
			b.log.Info("removed the temporary file of an interrupted put", "file", p, "bytes", fi.Size(), "modified", fi.ModTime())
		}
		return nil
	})
	if err != nil {
		return n, bytes, fmt.Errorf("local: remove stale temporary files: %w", err)
	}
	return n, bytes, nil
}

// ownerName is the file under Config.Dir naming the node that keeps its
// objects there (reserved prefix: never a bucket).
const ownerName = ".osprey-owner"

// Claim records id as the node keeping its objects in this directory, or
// reports the other node that did (a directory shared by several nodes,
// by mistake or on a network file system). A node must not delete objects
// it does not recognise from a directory another node also writes.
func (b *Backend) Claim(id string) (other string, err error) {
	p := filepath.Join(b.dir, ownerName)
	got, err := os.ReadFile(p)
	switch {
	case err == nil:
		if s := strings.TrimSpace(string(got)); s != id {
			return s, nil
		}
		return "", nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("local: read %s: %w", p, classify(err))
	}
	f, err := createTemp(b.dir, b.dir, true)
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	_, werr := f.WriteString(id + "\n")
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		// Link, not rename: of two nodes claiming at once, one wins.
		werr = os.Link(tmp, p)
	}
	_ = os.Remove(tmp)
	if errors.Is(werr, fs.ErrExist) {
		return b.Claim(id)
	}
	if werr != nil {
		return "", fmt.Errorf("local: write %s: %w", p, classify(werr))
	}
	return "", syncDir(b.dir)
}
