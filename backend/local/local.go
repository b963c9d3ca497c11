package local

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/cespare/xxhash/v2"

	"github.com/osprey-storage/osprey/backend"
	"github.com/osprey-storage/osprey/backend/internal/objio"
)

// Config configures the local-disk backend.
type Config struct {
	// Dir is the root directory; buckets are its subdirectories. It is
	// created if missing. Required.
	Dir string
	// BufferSize is the size of the copy buffers. A Put uses up to three
	// (two read ahead and hashed while the third is written), a Stat that
	// has to recompute an md5 one; they bound memory per call.
	BufferSize int
	// Logger receives lifecycle messages. Nil means slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the defaults; Dir must still be set.
func DefaultConfig() Config {
	return Config{BufferSize: 256 << 10}
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("local: Dir is required")
	}
	if c.BufferSize < 4<<10 || c.BufferSize > 64<<20 {
		return fmt.Errorf("local: BufferSize %d outside [4 KiB, 64 MiB]", c.BufferSize)
	}
	return nil
}

// metaDirName is the directory under Config.Dir holding the md5 sidecars.
// Logical bucket names cannot start with '.', so it never collides with a
// bucket.
const metaDirName = ".osprey-meta"

// reservedPrefix starts the names of temporary files; keys may not contain
// a segment with it.
const reservedPrefix = ".osprey-"

// tmpPrefix starts the names of a Put's temporary files.
const tmpPrefix = reservedPrefix + "tmp-"

// metaSuffix is appended to a key to name its sidecar.
const metaSuffix = ".json"

// maxSegment is the longest path segment accepted: NAME_MAX minus the
// sidecar suffix.
const maxSegment = 255 - len(metaSuffix)

// createRetries bounds how often Put recreates a directory that a
// concurrent Delete pruned between mkdir and create.
const createRetries = 5

// Backend stores objects as files under a directory. It is safe for
// concurrent use.
type Backend struct {
	dir     string
	metaDir string
	log     *slog.Logger
	bufs    sync.Pool
	// renames serialises a Put's rename with DeleteVersion's check and
	// remove of the same key (striped by the key's path).
	renames [64]sync.Mutex
}

var _ backend.Backend = (*Backend)(nil)

// New validates cfg, creates cfg.Dir if needed and returns the backend.
func New(cfg Config) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("local: resolving %q: %w", cfg.Dir, err)
	}
	metaDir := filepath.Join(dir, metaDirName)
	if err := os.MkdirAll(metaDir, 0o755); err != nil {
		return nil, fmt.Errorf("local: creating %q: %w", metaDir, classify(err))
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	b := &Backend{dir: dir, metaDir: metaDir, log: logger.With("component", "backend", "backend", "local")}
	size := cfg.BufferSize
	b.bufs.New = func() any { buf := make([]byte, size); return &buf }
	b.log.Info("local backend ready", "dir", dir)
	return b, nil
}

// Name returns "local".
func (b *Backend) Name() string { return "local" }

// EnsureBucket creates the bucket directory (and its sidecar directory) if
// missing. It returns an error wrapping backend.ErrInvalid for a bad name.
func (b *Backend) EnsureBucket(ctx context.Context, bucket string) error {
	if err := objio.ValidateBucket(bucket); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("local: ensure bucket %s: %w", bucket, err)
	}
	if _, err := mkdirAll(b.dir, bucket, true); err != nil {
		return fmt.Errorf("local: ensure bucket %s: %w", bucket, err)
	}
	if _, err := mkdirAll(b.metaDir, bucket, false); err != nil {
		return fmt.Errorf("local: ensure bucket %s: %w", bucket, err)
	}
	return nil
}

// paths returns the content and sidecar paths of bucket/key after
// validating both.
func (b *Backend) paths(bucket, key string) (content, meta string, err error) {
	if err := objio.ValidateBucket(bucket); err != nil {
		return "", "", err
	}
	if err := objio.ValidateKey(key); err != nil {
		return "", "", err
	}
	for seg := range strings.SplitSeq(key, "/") {
		if strings.HasPrefix(seg, reservedPrefix) {
			return "", "", fmt.Errorf("%w: key %q: segments starting with %q are reserved", backend.ErrInvalid, key, reservedPrefix)
		}
		if len(seg) > maxSegment {
			return "", "", fmt.Errorf("%w: key %q: path segment longer than %d bytes", backend.ErrInvalid, key, maxSegment)
		}
	}
	rel := filepath.FromSlash(key)
	return filepath.Join(b.dir, bucket, rel), filepath.Join(b.metaDir, bucket, rel+metaSuffix), nil
}

// sidecarMinSize is the smallest object given an md5 sidecar: Stat hashes
// a smaller one again (at most a millisecond or two), which costs less
// than writing a second file on every Put of a small object and keeps
// one inode per object. A variable so tests can cover both kinds.
var sidecarMinSize int64 = 1 << 20

// meta is the JSON sidecar of an object.
type meta struct {
	Version     int    `json:"v"`
	MD5         string `json:"md5"`
	Size        int64  `json:"size"`
	Ino         uint64 `json:"ino"`
	MtimeNS     int64  `json:"mtime_ns"`
	ContentType string `json:"content_type,omitempty"`
}

// describes reports whether m was written for the file fi.
func (m meta) describes(fi fs.FileInfo) bool {
	ino := inode(fi)
	return m.Version == 1 && ino != 0 && m.Ino == ino && m.Size == fi.Size() && m.MtimeNS == fi.ModTime().UnixNano()
}

// Put stores exactly size bytes from r under bucket/key, atomically
// replacing any previous object (see the package documentation). It returns
// an error wrapping backend.ErrNotFound if the bucket does not exist,
// backend.ErrChecksum if the body is short or its md5 differs from
// opts.MD5, backend.ErrInvalid for bad arguments or a key that conflicts
// with another key's directory, and the context's or reader's error when
// those fail. On error nothing changes.
func (b *Backend) Put(ctx context.Context, bucket, key string, r io.Reader, size int64, opts backend.PutOptions) (backend.ObjectInfo, error) {
	content, metaPath, err := b.paths(bucket, key)
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	want, err := objio.ParseMD5(opts.MD5)
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	if size < 0 {
		return backend.ObjectInfo{}, fmt.Errorf("%w: negative size %d", backend.ErrInvalid, size)
	}
	info, err := b.put(ctx, bucket, key, content, metaPath, r, size, want, opts.ContentType)
	if err != nil {
		return backend.ObjectInfo{}, fmt.Errorf("local: put %s/%s: %w", bucket, key, err)
	}
	return info, nil
}

func (b *Backend) put(ctx context.Context, bucket, key, content, metaPath string, r io.Reader, size int64, want, contentType string) (info backend.ObjectInfo, err error) {
	if err := ctx.Err(); err != nil {
		return info, err
	}
	bucketDir := filepath.Join(b.dir, bucket)
	if _, err := os.Stat(bucketDir); err != nil {
		return info, classifyMissing(err, "bucket")
	}

	// Refuse a key that is a prefix of stored keys before reading the body
	// (renameOver checks again, racing Puts aside).
	if fi, err := os.Lstat(content); err == nil && fi.IsDir() && os.Remove(content) != nil {
		return info, fmt.Errorf("%w: key is a prefix of other stored keys", backend.ErrInvalid)
	}

	f, err := createTemp(bucketDir, filepath.Dir(content), true)
	if err != nil {
		return info, err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()

	vr := objio.NewVerifyingReader(ctx, r, size, want)
	cerr := b.copyBody(f, vr, size)
	vr.Close()
	sum, verr := vr.Verify()
	switch {
	case verr != nil: // the body's fault (short, md5, ctx, reader error) wins
		return info, verr
	case cerr != nil:
		return info, classify(cerr)
	}
	// fsync before rename: otherwise a crash could leave the new name
	// pointing at a file whose data never reached the disk.
	if err := f.Sync(); err != nil {
		return info, classify(err)
	}
	fi, err := f.Stat()
	if err != nil {
		return info, classify(err)
	}
	if err := f.Close(); err != nil {
		return info, classify(err)
	}

	mu := b.renameLock(content)
	mu.Lock()
	err = renameOver(tmp, content)
	mu.Unlock()
	if err != nil {
		return info, err
	}
	// fsync the directory so the rename itself is durable.
	if err := syncDir(filepath.Dir(content)); err != nil {
		return info, err
	}
	// The sidecar goes last and is not fsynced (see writeMeta): were it
	// renamed before the directory fsync, that fsync's journal commit would
	// have to write the sidecar too. Until it lands, the previous sidecar
	// names another inode and Stat recomputes the md5.
	if fi.Size() < sidecarMinSize {
		// Hashing a small object again on Stat costs less than a second
		// file (an inode, a rename) on every Put. A sidecar left by an
		// earlier, larger object at this key names another inode, so
		// Stat ignores it; remove it anyway so it does not linger.
		if err := os.Remove(metaPath); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			b.log.Warn("removing a stale md5 sidecar failed; Stat ignores it", "bucket", bucket, "key", key, "err", err)
		}
	} else {
		m := meta{Version: 1, MD5: sum, Size: fi.Size(), Ino: inode(fi), MtimeNS: fi.ModTime().UnixNano(), ContentType: contentType}
		if err := b.writeMeta(bucket, metaPath, m); err != nil {
			// The object is stored and durable; only the md5 cache is missing.
			b.log.Warn("writing md5 sidecar failed; Stat will recompute", "bucket", bucket, "key", key, "err", err)
		}
	}
	return backend.ObjectInfo{Bucket: bucket, Key: key, Size: size, MD5: sum, ModTime: fi.ModTime()}, nil
}

// copyBody copies size bytes from src (which hashes as it is read) to f
// through pooled buffers: bounded memory whatever src is. A body larger
// than one buffer is prefetched on another goroutine, so hashing the next
// buffer overlaps writing this one.
func (b *Backend) copyBody(f *os.File, src io.Reader, size int64) error {
	bufp := b.bufs.Get().(*[]byte)
	defer b.bufs.Put(bufp)
	if size > int64(len(*bufp)) {
		pf := objio.Prefetch(src, len(*bufp))
		defer pf.Close()
		src = pf
	}
	// writerOnly hides (*os.File).ReadFrom so the copy uses our buffer.
	_, err := io.CopyBuffer(writerOnly{f}, src, *bufp)
	return err
}

// writeMeta writes m to metaPath through a temporary file and a rename. It
// is not fsynced: a sidecar is a validated cache (see meta.describes), so
// losing it in a crash only costs Stat a rehash, and a Put keeps to the two
// fsyncs of a plain durable file write.
func (b *Backend) writeMeta(bucket, metaPath string, m meta) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	// Rooted at metaDir, not at the bucket's sidecar directory, so a bucket
	// directory created by hand (without one) still works.
	f, err := createTemp(b.metaDir, filepath.Dir(metaPath), false)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), metaPath)
	}
	if err != nil {
		os.Remove(f.Name())
		return classify(err)
	}
	return nil
}

// createTemp creates a temporary file in dir, creating dir (below root,
// which must exist) as needed; durable says whether created directories are
// fsynced into their parents. A concurrent Delete may prune a directory
// between mkdir and create, so ENOENT is retried a few times.
func createTemp(root, dir string, durable bool) (*os.File, error) {
	rel, err := filepath.Rel(root, dir)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		if _, err := mkdirAll(root, rel, durable); err != nil {
			return nil, err
		}
		f, err := os.CreateTemp(dir, tmpPrefix+"*")
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt == createRetries {
			return nil, classify(err)
		}
	}
}

// renameOver renames tmp to target. A leftover empty directory at target
// (from a key that used to be a prefix) is removed; a non-empty one means
// the key is a prefix of stored keys, which this backend cannot represent.
func renameOver(tmp, target string) error {
	err := os.Rename(tmp, target)
	if err == nil {
		return nil
	}
	if fi, serr := os.Lstat(target); serr == nil && fi.IsDir() {
		if os.Remove(target) == nil {
			if err = os.Rename(tmp, target); err == nil {
				return nil
			}
		} else {
			os.Remove(tmp)
			return fmt.Errorf("%w: key is a prefix of other stored keys", backend.ErrInvalid)
		}
	}
	os.Remove(tmp)
	return classify(err)
}

// mkdirAll creates root/rel and any missing parents below root; if durable,
// it fsyncs each parent a directory was created in. It reports whether it
// created anything. A file where a directory is needed is ErrInvalid: the
// key conflicts with a stored key.
func mkdirAll(root, rel string, durable bool) (bool, error) {
	if rel == "." || rel == "" {
		return false, nil
	}
	created := false
	cur := root
	for part := range strings.SplitSeq(rel, string(filepath.Separator)) {
		parent := cur
		cur = filepath.Join(cur, part)
		err := os.Mkdir(cur, 0o755)
		switch {
		case err == nil:
			created = true
			if durable {
				if err := syncDir(parent); err != nil {
					return created, err
				}
			}
		case errors.Is(err, fs.ErrExist):
			fi, serr := os.Stat(cur)
			if serr != nil {
				return created, classify(serr)
			}
			if !fi.IsDir() {
				return created, fmt.Errorf("%w: key conflicts with stored object %q", backend.ErrInvalid, part)
			}
		case errors.Is(err, syscall.ENOTDIR):
			return created, fmt.Errorf("%w: key conflicts with a stored object", backend.ErrInvalid)
		default:
			return created, classify(err)
		}
	}
	return created, nil
}

// open opens the content file of bucket/key for reading. A missing file, a
// missing bucket and a directory are all ErrNotFound.
func (b *Backend) open(content string) (*os.File, fs.FileInfo, error) {
	f, err := os.Open(content)
	if err != nil {
		return nil, nil, classifyMissing(err, "object")
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, classify(err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%w: object", backend.ErrNotFound)
	}
	return f, fi, nil
}

// Get returns a reader for length bytes of bucket/key from offset (length <
// 0: to the end; a length past the end is clamped). offset == size gives an
// empty reader. It returns an error wrapping backend.ErrNotFound or
// backend.ErrInvalid (offset outside [0, size]). Reads fail once ctx is
// done. The caller MUST Close the reader; it keeps reading the object as it
// was when Get returned, even if it is overwritten meanwhile.
func (b *Backend) Get(ctx context.Context, bucket, key string, offset, length int64) (io.ReadCloser, error) {
	content, _, err := b.paths(bucket, key)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("local: get %s/%s: %w", bucket, key, err)
	}
	f, fi, err := b.open(content)
	if err != nil {
		return nil, fmt.Errorf("local: get %s/%s: %w", bucket, key, err)
	}
	n, err := objio.ValidateRange(offset, length, fi.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("local: get %s/%s: %w", bucket, key, err)
	}
	return objio.ContextReadCloser(ctx, &fileReader{SectionReader: io.NewSectionReader(f, offset, n), f: f, off: offset}), nil
}

type fileReader struct {
	*io.SectionReader
	f   *os.File
	off int64 // where the section starts in f
}

// WriteTo sends the rest of the section with the file itself as the
// source, so a socket destination (net/http's ReadFrom, a TCP conn) uses
// sendfile(2) instead of copying the bytes through user space.
func (r *fileReader) WriteTo(w io.Writer) (int64, error) {
	pos, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, err
	}
	rest := r.Size() - pos
	if _, err := r.f.Seek(r.off+pos, io.SeekStart); err != nil {
		return 0, err
	}
	n, err := io.Copy(w, &io.LimitedReader{R: r.f, N: rest})
	_, _ = r.Seek(n, io.SeekCurrent)
	if err == nil && n < rest {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (r *fileReader) Close() error { return r.f.Close() }

// Stat returns the object's size, md5 and modification time, or an error
// wrapping backend.ErrNotFound. The md5 is always known: if the sidecar is
// missing or stale (an overwrite in progress, a crash mid-Put) it is
// recomputed from the file, which costs a full read.
func (b *Backend) Stat(ctx context.Context, bucket, key string) (backend.ObjectInfo, error) {
	content, metaPath, err := b.paths(bucket, key)
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	info, err := b.stat(ctx, content, metaPath)
	if err != nil {
		return backend.ObjectInfo{}, fmt.Errorf("local: stat %s/%s: %w", bucket, key, err)
	}
	info.Bucket, info.Key = bucket, key
	return info, nil
}

func (b *Backend) stat(ctx context.Context, content, metaPath string) (backend.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return backend.ObjectInfo{}, err
	}
	f, fi, err := b.open(content)
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	defer f.Close()
	info := backend.ObjectInfo{Size: fi.Size(), ModTime: fi.ModTime()}
	if data, err := os.ReadFile(metaPath); err == nil {
		var m meta
		if json.Unmarshal(data, &m) == nil && m.describes(fi) {
			info.MD5 = m.MD5
			return info, nil
		}
	}
	// No trustworthy sidecar: hash the file we have open, which is the
	// object Stat reports on even if it is replaced meanwhile.
	h := md5.New()
	bufp := b.bufs.Get().(*[]byte)
	defer b.bufs.Put(bufp)
	r := objio.ContextReadCloser(ctx, io.NopCloser(io.NewSectionReader(f, 0, fi.Size())))
	if _, err := io.CopyBuffer(h, r, *bufp); err != nil {
		return backend.ObjectInfo{}, classify(err)
	}
	info.MD5 = hex.EncodeToString(h.Sum(nil))
	return info, nil
}

// Delete removes bucket/key and its sidecar, then any directories left
// empty. A missing object or bucket is not an error, and neither is a key
// that names a directory of other keys (it is not an object).
func (b *Backend) Delete(ctx context.Context, bucket, key string) error {
	content, metaPath, err := b.paths(bucket, key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("local: delete %s/%s: %w", bucket, key, err)
	}
	fi, err := os.Lstat(content)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		// Nothing there; still clear a sidecar a crash may have orphaned.
	case err != nil:
		return fmt.Errorf("local: delete %s/%s: %w", bucket, key, classify(err))
	case fi.IsDir():
		return nil
	default:
		if err := os.Remove(content); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("local: delete %s/%s: %w", bucket, key, classify(err))
		}
	}
	return b.removed(bucket, key, content, metaPath)
}

// removed finishes the deletion of content: makes it durable, removes the
// md5 sidecar and the directories left empty.
func (b *Backend) removed(bucket, key, content, metaPath string) error {
	if err := syncDir(filepath.Dir(content)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("local: delete %s/%s: %w", bucket, key, err)
	}
	if err := os.Remove(metaPath); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("local: delete %s/%s: %w", bucket, key, classify(err))
	}
	pruneEmpty(filepath.Join(b.dir, bucket), filepath.Dir(content))
	pruneEmpty(filepath.Join(b.metaDir, bucket), filepath.Dir(metaPath))
	return nil
}

// renameLock returns the stripe of renames that guards content.
func (b *Backend) renameLock(content string) *sync.Mutex {
	return &b.renames[xxhash.Sum64String(content)%uint64(len(b.renames))]
}

// version names one write of an object: every Put renames a new file into
// place, with its own inode and modification time, which rename keeps.
func version(fi fs.FileInfo) string {
	return strconv.FormatUint(inode(fi), 10) + "-" + strconv.FormatInt(fi.ModTime().UnixNano(), 10)
}

// Version returns a token naming the stored write of bucket/key (every Put
// makes a new one), or an error wrapping backend.ErrNotFound.
func (b *Backend) Version(ctx context.Context, bucket, key string) (string, error) {
	content, _, err := b.paths(bucket, key)
	if err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	fi, err := os.Lstat(content)
	if err == nil && fi.IsDir() {
		err = fs.ErrNotExist
	}
	if err != nil {
		return "", fmt.Errorf("local: version %s/%s: %w", bucket, key, classifyMissing(err, "object"))
	}
	return version(fi), nil
}

// DeleteVersion deletes bucket/key as Delete does, but only if it is still
// the write Version named; a later Put of the key is kept, and removed
// reports false. A missing object is not an error.
func (b *Backend) DeleteVersion(ctx context.Context, bucket, key, v string) (removed bool, err error) {
	content, metaPath, err := b.paths(bucket, key)
	if err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("local: delete %s/%s: %w", bucket, key, err)
	}
	mu := b.renameLock(content)
	mu.Lock()
	fi, err := os.Lstat(content)
	if err != nil || fi.IsDir() || version(fi) != v {
		mu.Unlock()
		if err == nil && !fi.IsDir() {
			b.log.Info("release kept a later object", "bucket", bucket, "key", key)
		}
		return false, nil
	}
	err = os.Remove(content)
	mu.Unlock()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("local: delete %s/%s: %w", bucket, key, classify(err))
	}
	// A Put landing from here on is a later write: removing the sidecar
	// at worst makes Stat recompute its md5 (sidecars name their inode).
	return true, b.removed(bucket, key, content, metaPath)
}

// pruneEmpty removes dir and its parents up to (not including) stop while
// they are empty. Failures just stop it: a non-empty directory is expected,
// and a Put racing with it recreates what it needs (see createTemp).
func pruneEmpty(stop, dir string) {
	for dir != stop && strings.HasPrefix(dir, stop+string(filepath.Separator)) {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// Check verifies that the root directory is writable by creating and
// removing a temporary file.
func (b *Backend) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("local: check: %w", err)
	}
	f, err := os.CreateTemp(b.dir, reservedPrefix+"check-*")
	if err != nil {
		return fmt.Errorf("local: check: %w", classify(err))
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("local: check: %w", classify(err))
	}
	return nil
}

// Close releases nothing (files are closed per call); it is idempotent.
func (b *Backend) Close() error { return nil }

// syncDir fsyncs a directory so that entries created, renamed or removed in
// it survive a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return classify(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return classify(err)
	}
	return nil
}

// writerOnly hides every method of the writer but Write.
type writerOnly struct{ w io.Writer }

func (w writerOnly) Write(p []byte) (int, error) { return w.w.Write(p) }

// classifyMissing maps "no such file" and "not a directory" to
// backend.ErrNotFound and other errors as classify does.
func classifyMissing(err error, what string) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%w: %s", backend.ErrNotFound, what)
	}
	return classify(err)
}

// classify wraps errors of the disk itself (full, read-only, failing) with
// backend.ErrUnavailable and permission errors with backend.ErrAuth; others
// are returned as they are.
func classify(err error) error {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.EIO), errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%w: %w", backend.ErrUnavailable, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w: %w", backend.ErrAuth, err)
	}
	return err
}
