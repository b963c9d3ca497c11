package client

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// DefaultChunkSize is the chunk size of `osprey put` (8 MiB).
const DefaultChunkSize = 8 << 20

// DefaultParallel is how many chunks `osprey put` uploads at once.
const DefaultParallel = 4

// copyBufSize is the buffer used when hashing and copying files.
const copyBufSize = 256 << 10

// PutOptions tunes PutFile. The zero value uses the defaults.
type PutOptions struct {
	// ChunkSize: files up to this size go in one PUT /upload, larger ones in
	// chunks of this size. 0 means DefaultChunkSize.
	ChunkSize int64
	// Parallel is how many chunks are in flight at once. 0 means DefaultParallel.
	Parallel int
	// Name is the name the uid gets (it picks the bucket by extension).
	// "" means the file's base name.
	Name string
	// NoDedup skips instant upload (proof of possession, or POST /resume
	// on a server without it).
	NoDedup bool
	// MD5 is the file's md5 (lowercase hex) when the caller already knows
	// it: the client then skips its own hashing pass over the whole file
	// (each chunk is still hashed as it is sent). A wrong value fails the
	// upload (single PUT) or marks the file failed when it is tiered.
	MD5 string
	// Multipart sends single uploads as osproxy's multipart form.
	Multipart bool
	// Expire is the lifetime asked for the upload links; 0 means the
	// server default.
	Expire time.Duration
	// StateDir holds resume state for chunked uploads. "" means
	// DefaultStateDir(); "-" disables resume state.
	StateDir string
	// Progress, when non-nil, receives a progress bar.
	Progress io.Writer
	// Logger receives debug logs; nil means slog.Default().
	Logger *slog.Logger
	// Notices, when non-nil, receives one-line messages for the user:
	// that an earlier upload is being resumed, and how to resume one that
	// was interrupted.
	Notices io.Writer
}

// PutResult describes one stored file.
type PutResult struct {
	UID      string `json:"uid"`
	Path     string `json:"path"`
	Name     string `json:"name"`
	Size     int64  `json:"size"`
	MD5      string `json:"md5"`
	Dedup    bool   `json:"dedup"`    // satisfied by stored content (proof of possession or /resume), no bytes sent
	Resumed  bool   `json:"resumed"`  // continued an interrupted chunked upload
	Chunks   int    `json:"chunks"`   // number of chunks, 0 for a single PUT
	Uploaded int64  `json:"uploaded"` // bytes sent in this run (retries excluded)
}

// DefaultStateDir returns where resume state is kept:
// os.UserCacheDir()/osprey/uploads, or the temp dir if there is no cache dir.
func DefaultStateDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "osprey", "uploads")
}

// ChunkCount returns how many chunks a file of size bytes has when cut into
// chunkSize pieces. A file that fits one chunk (including an empty file)
// is sent with a single PUT and has 0 chunks.
func ChunkCount(size, chunkSize int64) int {
	if chunkSize <= 0 || size <= chunkSize {
		return 0
	}
	return int((size + chunkSize - 1) / chunkSize)
}

// ChunkSpan returns the byte offset and length of chunk num (1-based).
func ChunkSpan(num int, size, chunkSize int64) (off, n int64) {
	off = int64(num-1) * chunkSize
	return off, min(chunkSize, size-off)
}

// uploadState is the resume state of one chunked upload, saved before the
// first chunk is sent and removed after the merge succeeds.
type uploadState struct {
	Version   int       `json:"version"`
	Path      string    `json:"path"` // absolute path of the source file
	Size      int64     `json:"size"`
	ModTimeNS int64     `json:"mtime_ns"`
	MD5       string    `json:"md5"`
	ChunkSize int64     `json:"chunk_size"`
	Name      string    `json:"name"`
	UID       string    `json:"uid"`
	Upload    string    `json:"upload_url"` // multi upload link (relative)
	Merge     string    `json:"merge_url"`  // merge link (relative)
	Created   time.Time `json:"created"`
}

const stateVersion = 1

func statePath(dir, absPath string) string {
	sum := sha256.Sum256([]byte(absPath))
	return filepath.Join(dir, hex.EncodeToString(sum[:16])+".json")
}

func loadState(p string) (*uploadState, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var s uploadState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// saveState writes s atomically (temp file, fsync, rename).
func saveState(p string, s *uploadState) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".state-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// PutFile stores the file at path and returns its uid. It first asks POST
// /resume whether the content is already stored (dedup). Files up to
// ChunkSize go in one PUT; larger ones are cut into chunks uploaded
// Parallel at a time and then merged. A chunked upload saves resume state
// under StateDir first, so running PutFile again after an interruption
// asks GET /checkpoint and sends only the missing chunks. Memory use is
// bounded by Parallel small buffers, whatever the file size.
func (c *Client) PutFile(ctx context.Context, path string, opts PutOptions) (*PutResult, error) {
	if opts.ChunkSize <= 0 {
		opts.ChunkSize = DefaultChunkSize
	}
	if opts.Parallel <= 0 {
		opts.Parallel = DefaultParallel
	}
	if opts.StateDir == "" {
		opts.StateDir = DefaultStateDir()
	}
	log := opts.Logger
	if log == nil {
		log = c.logger
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("client: put %s: not a regular file", path)
	}
	res := &PutResult{Path: path, Name: opts.Name, Size: st.Size(), MD5: strings.ToLower(opts.MD5)}
	if res.Name == "" {
		res.Name = filepath.Base(abs)
	}

	var sp string
	if opts.StateDir != "-" {
		sp = statePath(opts.StateDir, abs)
		if s, err := loadState(sp); err == nil {
			if s.Version == stateVersion && s.Path == abs && s.Size == st.Size() &&
				s.ModTimeNS == st.ModTime().UnixNano() && s.Name == res.Name && s.ChunkSize > 0 {
				res.MD5 = s.MD5
				done, err := c.continueUpload(ctx, f, s, opts, res)
				switch {
				case err == nil && done:
					_ = os.Remove(sp)
					return res, nil
				case err != nil && !errors.Is(err, errStaleState):
					return nil, err
				}
				log.Debug("discarding stale upload state", "path", path, "uid", s.UID, "err", err)
				*res = PutResult{Path: res.Path, Name: res.Name, Size: res.Size, MD5: res.MD5}
			}
			_ = os.Remove(sp)
		}
	}

	var sha string
	if res.MD5 == "" || !opts.NoDedup {
		// md5 and SHA-256 in one read of the file.
		var hp *progress
		if opts.Progress != nil && st.Size() >= 64<<20 {
			hp = newProgress(opts.Progress, st.Size(), "hash "+res.Name)
		}
		var sum string
		sum, sha, err = hashBoth(io.NewSectionReader(f, 0, st.Size()), hp)
		hp.finish()
		if err != nil {
			return nil, fmt.Errorf("client: put %s: %w", path, err)
		}
		if res.MD5 == "" {
			res.MD5 = sum
		}
	}

	if !opts.NoDedup {
		uid, err := c.instantUpload(ctx, f, res.MD5, sha, st.Size(), res.Name)
		if err != nil {
			return nil, fmt.Errorf("client: put %s: %w", path, err)
		}
		if uid != "" {
			res.UID, res.Dedup = uid, true
			return res, nil
		}
	}

	links, err := c.LinkUpload(ctx, []string{res.Name}, opts.Expire)
	if err != nil {
		return nil, fmt.Errorf("client: put %s: link: %w", path, err)
	}
	link := links[0]
	res.UID = link.UID

	if ChunkCount(st.Size(), opts.ChunkSize) == 0 {
		p := newProgress(opts.Progress, st.Size(), res.Name)
		body := &progressReader{rs: io.NewSectionReader(f, 0, st.Size()), p: p}
		err := c.Upload(ctx, link.URL.Single, res.MD5, body, st.Size(),
			UploadOptions{Multipart: opts.Multipart, Filename: res.Name})
		p.finish()
		if errors.Is(err, ErrConflict) && c.alreadyStored(ctx, res.UID, res.MD5) {
			err = nil // a retried PUT whose first attempt succeeded
		}
		if err != nil {
			return nil, fmt.Errorf("client: put %s: upload: %w", path, err)
		}
		res.Uploaded = st.Size()
		return res, nil
	}

	s := &uploadState{Version: stateVersion, Path: abs, Size: st.Size(), ModTimeNS: st.ModTime().UnixNano(),
		MD5: res.MD5, ChunkSize: opts.ChunkSize, Name: res.Name, UID: link.UID,
		Upload: link.URL.Multi.Upload, Merge: link.URL.Multi.Merge, Created: time.Now().UTC()}
	if sp != "" {
		if err := saveState(sp, s); err != nil {
			// Resume is a convenience; the upload itself can still go on.
			log.Warn("cannot save upload state", "path", sp, "err", err)
			sp = ""
		}
	}
	if err := c.sendChunks(ctx, f, s, nil, opts, res); err != nil {
		if ctx.Err() != nil && sp != "" && opts.Notices != nil {
			fmt.Fprintf(opts.Notices, "interrupted: uid %s is partly uploaded; run the same put command again to send only the missing chunks\n", s.UID)
		}
		return nil, fmt.Errorf("client: put %s: %w", path, err)
	}
	if sp != "" {
		_ = os.Remove(sp)
	}
	return res, nil
}

// errStaleState means saved resume state no longer matches the server
// (uid unknown, links expired); the upload starts over.
var errStaleState = errors.New("client: stale upload state")

// continueUpload resumes the chunked upload in s. It returns done=true when
// the file is stored, or an error wrapping errStaleState when the state
// cannot be used.
func (c *Client) continueUpload(ctx context.Context, f *os.File, s *uploadState, opts PutOptions, res *PutResult) (bool, error) {
	res.UID = s.UID
	have, err := c.Checkpoint(ctx, s.UID)
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
			if c.alreadyStored(ctx, s.UID, s.MD5) {
				res.Resumed, res.Chunks = true, ChunkCount(s.Size, s.ChunkSize)
				return true, nil
			}
			return false, fmt.Errorf("%w: checkpoint: %w", errStaleState, err)
		}
		return false, fmt.Errorf("checkpoint: %w", err)
	}
	res.Resumed = true
	if opts.Notices != nil {
		fmt.Fprintf(opts.Notices, "resuming uid %s (%s), %d of %d chunks already stored\n",
			s.UID, res.Name, len(have), ChunkCount(s.Size, s.ChunkSize))
	}
	if err := c.sendChunks(ctx, f, s, have, opts, res); err != nil {
		if errors.Is(err, ErrUnauthorized) {
			return false, fmt.Errorf("%w: %w", errStaleState, err)
		}
		return false, err
	}
	return true, nil
}

// alreadyStored reports whether uid exists, is complete and has md5.
func (c *Client) alreadyStored(ctx context.Context, uid, md5hex string) bool {
	o, err := c.Object(ctx, uid)
	if err != nil {
		return false
	}
	return o.MD5 == md5hex && (o.State == StateComplete || o.State == StateTiered)
}

// sendChunks uploads every chunk of s not in have, then merges. If the
// merge reports missing chunks, it asks /checkpoint and tries once more.
func (c *Client) sendChunks(ctx context.Context, f *os.File, s *uploadState, have []int, opts PutOptions, res *PutResult) error {
	n := ChunkCount(s.Size, s.ChunkSize)
	res.Chunks = n
	p := newProgress(opts.Progress, s.Size, res.Name)
	defer p.finish()
	for round := 0; ; round++ {
		missing := missingChunks(n, have)
		var stored int64
		for _, num := range have {
			if num >= 1 && num <= n {
				_, l := ChunkSpan(num, s.Size, s.ChunkSize)
				stored += l
			}
		}
		p.set(stored)
		if err := c.uploadChunks(ctx, f, s, missing, opts.Parallel, p, res); err != nil {
			return err
		}
		err := c.Merge(ctx, s.Merge, s.MD5, n, s.Size)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrConflict) || round > 0 {
			return fmt.Errorf("merge: %w", err)
		}
		// The server says chunks are missing (e.g. one was lost with its
		// node before replication). Nothing was deleted; fill the gaps.
		if have, err = c.Checkpoint(ctx, s.UID); err != nil {
			return fmt.Errorf("checkpoint after merge conflict: %w", err)
		}
	}
}

// missingChunks returns 1..n minus have, in order.
func missingChunks(n int, have []int) []int {
	got := make(map[int]bool, len(have))
	for _, h := range have {
		got[h] = true
	}
	var out []int
	for i := 1; i <= n; i++ {
		if !got[i] {
			out = append(out, i)
		}
	}
	return out
}

// uploadChunks sends the given chunks with at most parallel in flight. The
// first failure cancels the rest.
func (c *Client) uploadChunks(ctx context.Context, f *os.File, s *uploadState, nums []int, parallel int, p *progress, res *PutResult) error {
	if len(nums) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan int)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range min(parallel, len(nums)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for num := range jobs {
				off, l := ChunkSpan(num, s.Size, s.ChunkSize)
				err := c.sendChunk(ctx, f, s.Upload, num, off, l, p)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("chunk %d: %w", num, err)
					cancel()
				} else if err == nil {
					res.Uploaded += l
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, num := range nums {
		select {
		case jobs <- num:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// sendChunk hashes one chunk in a first pass over its section, then
// streams it. Only the copy buffers are held in memory.
func (c *Client) sendChunk(ctx context.Context, f *os.File, link string, num int, off, l int64, p *progress) error {
	sec := io.NewSectionReader(f, off, l)
	sum, err := hashSection(sec, nil)
	if err != nil {
		return err
	}
	if _, err := sec.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return c.UploadChunk(ctx, link, num, sum, &progressReader{rs: sec, p: p}, l)
}

// instantUpload asks for a uid sharing content the server already stores,
// proving possession: it answers the server's challenge with an HMAC over
// the challenged range of the local file. "" means upload the bytes (no
// such content, or the proof did not match). A server without the
// /dedup routes (older builds, osproxy) is asked with md5-only /resume.
func (c *Client) instantUpload(ctx context.Context, f io.ReaderAt, md5hex, sha string, size int64, name string) (string, error) {
	ch, err := c.DedupChallenge(ctx, md5hex, sha, size, name)
	if errors.Is(err, ErrNotFound) {
		rr, err := c.Resume(ctx, []ResumeItem{{MD5: md5hex, Path: name}})
		if err != nil {
			return "", fmt.Errorf("resume: %w", err)
		}
		return rr[0].UID, nil
	}
	if err != nil {
		return "", fmt.Errorf("dedup challenge: %w", err)
	}
	nonce, err := hex.DecodeString(ch.Nonce)
	if err != nil || ch.Offset < 0 || ch.Length < 0 || ch.Offset+ch.Length > size {
		return "", fmt.Errorf("%w: dedup challenge %+v for a %d-byte file", ErrProtocol, ch, size)
	}
	m := hmac.New(sha256.New, nonce)
	if _, err := io.Copy(m, io.NewSectionReader(f, ch.Offset, ch.Length)); err != nil {
		return "", err
	}
	rr, err := c.DedupProve(ctx, ch.ID, hex.EncodeToString(m.Sum(nil)))
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusForbidden {
		return "", nil // not stored (or not these bytes): upload
	}
	if err != nil {
		return "", fmt.Errorf("dedup prove: %w", err)
	}
	return rr.UID, nil
}

// hashBoth returns the lowercase hex md5 and SHA-256 of r, read once.
func hashBoth(r io.Reader, p *progress) (string, string, error) {
	h, s := md5.New(), sha256.New()
	w := io.MultiWriter(h, s)
	if p != nil {
		w = io.MultiWriter(h, s, progressWriter{p})
	}
	if _, err := io.CopyBuffer(w, r, make([]byte, copyBufSize)); err != nil {
		return "", "", err
	}
	return hex.EncodeToString(h.Sum(nil)), hex.EncodeToString(s.Sum(nil)), nil
}

// hashSection returns the lowercase hex md5 of r.
func hashSection(r io.Reader, p *progress) (string, error) {
	h := md5.New()
	w := io.Writer(h)
	if p != nil {
		w = io.MultiWriter(h, progressWriter{p})
	}
	if _, err := io.CopyBuffer(w, r, make([]byte, copyBufSize)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
