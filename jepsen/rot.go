package jepsen

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// rotCopies is how many object copies one rot fault damages.
const rotCopies = 3

// rottedCopy is one byte a rot fault flipped in a node's copy of a tiered
// object on the local-disk backend.
type rottedCopy struct {
	node *Node
	path string // the object file
	uid  string
	off  int64
	was  byte
}

// rot flips one byte in each of up to rotCopies object files on node's
// local-disk backend (same size, same inode: only the bytes tell), as bit
// rot would. Only one copy of an object is ever rotted in a run, and only
// while every copy is protected, so a good copy always exists: the fault
// model is one failure at a time. At heal, each rotted file is read
// through the node that holds it (the read must return the file's bytes,
// and the node must rewrite its copy from another holder), and the copy is
// watched until it is good again.
func (n *Nemesis) rot(ctx context.Context, f Fault, node *Node) (func(context.Context) error, int, error) {
	if n.cluster.MinIO != nil {
		return nil, 0, fmt.Errorf("rot needs the local-disk backend; skipped")
	}
	if st, _ := node.State(); st != ProcRunning {
		return nil, 0, fmt.Errorf("%s is %s", node.ID, st)
	}
	if why := n.waitProtected(ctx, 30*time.Second); why != "" {
		idx := n.start(f, f.String(), []string{node.ID}, false)
		n.note(idx, "skipped: "+why)
		return func(context.Context) error { return nil }, idx, nil
	}
	idx := n.start(f, f.String(), []string{node.ID}, false)
	var files []string
	root := filepath.Join(node.DataDir, "objects")
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a file renamed or deleted under the walk
		}
		if strings.HasPrefix(d.Name(), ".osprey-") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	rand.Shuffle(len(files), func(i, j int) { files[i], files[j] = files[j], files[i] })
	var rotted []rottedCopy
	for _, p := range files {
		if len(rotted) == rotCopies {
			break
		}
		key, _ := filepath.Rel(root, p)
		bucket, obj, _ := strings.Cut(key, string(filepath.Separator))
		uid, _, _ := strings.Cut(filepath.Base(obj), ".")
		n.mu.Lock()
		seen := n.rotted[bucket+"/"+obj]
		n.rotted[bucket+"/"+obj] = true
		n.mu.Unlock()
		if seen {
			continue
		}
		if rc, ok := flipByte(p); ok {
			rc.node, rc.uid = node, uid
			rotted = append(rotted, rc)
		}
	}
	var names []string
	for _, r := range rotted {
		names = append(names, fmt.Sprintf("uid %s at %d", r.uid, r.off))
	}
	if len(rotted) == 0 {
		n.note(idx, "no object copy to rot on "+node.ID)
	} else {
		n.note(idx, fmt.Sprintf("rotted %d copies: %s", len(rotted), strings.Join(names, ", ")))
	}
	n.mu.Lock()
	n.rots += len(rotted)
	n.rotPending++
	n.mu.Unlock()
	return func(context.Context) error {
		n.watchers.Add(1)
		go func() {
			defer n.watchers.Done()
			defer func() {
				n.mu.Lock()
				n.rotPending--
				n.mu.Unlock()
			}()
			for _, r := range rotted {
				if p := n.readRotted(ctx, r); p != "" {
					n.mu.Lock()
					n.rotProblems = append(n.rotProblems, p)
					n.mu.Unlock()
					n.note(idx, p)
				}
			}
		}()
		return nil
	}, idx, nil
}

// waitRotHealed waits until every rot fault's copies were checked healed;
// it returns why not if the limit passes.
func (n *Nemesis) waitRotHealed(ctx context.Context, limit time.Duration) string {
	deadline := time.Now().Add(limit)
	for ctx.Err() == nil {
		n.mu.Lock()
		pending := n.rotPending
		n.mu.Unlock()
		if pending == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return fmt.Sprintf("%d rot faults' copies not healed after %s", pending, limit)
		}
		time.Sleep(250 * time.Millisecond) // polling with a deadline
	}
	return "run ended"
}

// flipByte flips one byte of a non-empty file in place.
func flipByte(p string) (rottedCopy, bool) {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return rottedCopy{}, false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return rottedCopy{}, false
	}
	off := rand.Int64N(fi.Size())
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		return rottedCopy{}, false
	}
	was := b[0]
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		return rottedCopy{}, false
	}
	return rottedCopy{path: p, off: off, was: was}, true
}

// readRotted reads a rotted file whole through the node holding the bad
// copy and waits (60 s at most) for that copy to be good again; it
// returns what went wrong, or "". A file deleted meanwhile, or whose copy
// moved off the node, has nothing left to check.
func (n *Nemesis) readRotted(ctx context.Context, r rottedCopy) string {
	base := r.node.Base()
	deadline := time.Now().Add(60 * time.Second)
	read := false
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if !read && r.node.Ready() {
			switch got, want, err := n.readThrough(ctx, base, r.uid); {
			case err == nil && got != want:
				return fmt.Sprintf("uid %s read through %s with a rotted copy: md5 %s, want %s", r.uid, r.node.ID, got, want)
			case err == nil:
				read = true
			case isGone(err):
				return ""
			}
		}
		if good, gone := byteRestored(r); gone || good && read {
			return ""
		}
		time.Sleep(250 * time.Millisecond) // polling with a deadline
	}
	if ctx.Err() != nil {
		return ""
	}
	if good, gone := byteRestored(r); gone || good {
		return fmt.Sprintf("uid %s: could not be read through %s in 60 s (its copy there is good again)", r.uid, r.node.ID)
	}
	return fmt.Sprintf("uid %s: the rotted copy on %s was not rewritten within 60 s (read through it: %v)", r.uid, r.node.ID, read)
}

// readThrough downloads uid through base and returns the md5 of the bytes
// and the one the answer's ETag names.
func (n *Nemesis) readThrough(ctx context.Context, base, uid string) (string, string, error) {
	link, err := n.api.DownloadLink(ctx, base, uid)
	if err != nil {
		return "", "", err
	}
	resp, cancel, err := n.api.Download(ctx, base, link, "", 30*time.Second)
	if err != nil {
		return "", "", err
	}
	defer cancel()
	defer resp.Body.Close()
	h := md5.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		return "", "", err
	}
	return hex.EncodeToString(h.Sum(nil)), strings.Trim(resp.Header.Get("ETag"), `"`), nil
}

// isGone reports a file deleted by the workload (its link refused).
func isGone(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && (se.Status == http.StatusNotFound || se.Status == http.StatusGone)
}

// byteRestored reports whether the rotted byte is back (the copy was
// rewritten), or the file is gone (deleted, or moved off the node).
func byteRestored(r rottedCopy) (good, gone bool) {
	f, err := os.Open(r.path)
	if err != nil {
		return false, true
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, r.off); err != nil {
		return false, true
	}
	return b[0] == r.was, false
}
