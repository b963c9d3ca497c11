package client

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// GetOptions tunes GetFile and DownloadFile. The zero value uses the defaults.
type GetOptions struct {
	// Expire is the lifetime asked for the download link; 0 means the
	// server default.
	Expire time.Duration
	// Progress, when non-nil, receives a progress bar.
	Progress io.Writer
	// Stdout receives the bytes when the output path is "-".
	Stdout io.Writer
	// MaxResumes is how many times a download broken mid-stream is resumed
	// with a Range request. 0 means 5; negative means never.
	MaxResumes int
	// Parallel > 1 downloads to a file with that many concurrent Range
	// requests written at their offsets (see getparallel.go); the md5 is
	// checked at the end. Ignored for stdout and files smaller than two
	// pieces.
	Parallel int
}

// GetResult describes one downloaded file.
type GetResult struct {
	UID        string `json:"uid"`
	Path       string `json:"path"`
	Size       int64  `json:"size"`
	MD5        string `json:"md5"`
	Resumed    bool   `json:"resumed"`    // continued an existing .part file
	Downloaded int64  `json:"downloaded"` // bytes received in this run
	// Verified says how the bytes were checked: VerifiedMD5,
	// VerifiedChunkSums, or "" when there was nothing to check against.
	Verified string `json:"verified,omitempty"`
}

// GetResult.Verified values.
const (
	VerifiedMD5       = "md5"
	VerifiedChunkSums = "chunk-xxh64"
)

// PartSuffix is appended to the output path while a download is in progress.
const PartSuffix = ".part"

// GetFile downloads uid to out (or, when out is "" or a directory, to the
// file's stored base name there; "-" writes to opts.Stdout). It signs a link with
// POST /link/download, writes to out+".part", resumes an existing .part
// with a Range request, verifies the md5 and renames the .part to out. On
// an md5 mismatch it returns an error matching ErrChecksum and keeps the
// .part. An unknown or incomplete uid gives an error matching ErrNoLink.
func (c *Client) GetFile(ctx context.Context, uid, out string, opts GetOptions) (*GetResult, error) {
	links, err := c.LinkDownload(ctx, []string{uid}, opts.Expire)
	if err != nil {
		return nil, fmt.Errorf("client: get %s: %w", uid, err)
	}
	l := links[0]
	if l.URL == "" {
		why := l.Error
		if why == "" {
			why = "unknown or incomplete uid"
		}
		return nil, fmt.Errorf("client: get %s: %w: %s", uid, ErrNoLink, why)
	}
	size := int64(l.Meta.Size)
	if size == 0 && l.Meta.MD5 == "" {
		size = -1 // no metadata: learn the size from the reply
	}
	if out == "" {
		out = safeName(l.Meta.SrcName, uid)
	} else if st, err := os.Stat(out); err == nil && st.IsDir() {
		out = filepath.Join(out, safeName(l.Meta.SrcName, uid))
	}
	res, err := c.DownloadFile(ctx, l.URL, out, size, strings.ToLower(l.Meta.MD5), opts)
	if res != nil {
		res.UID = uid
	}
	if err != nil {
		return res, fmt.Errorf("client: get %s: %w", uid, err)
	}
	return res, nil
}

// safeName turns a server-supplied file name into a local base name.
func safeName(name, uid string) string {
	name = filepath.Base(strings.ReplaceAll(name, "\\", "/"))
	if name == "" || name == "." || name == ".." || name == "/" {
		return uid
	}
	return name
}

// DownloadFile downloads a signed link to out as GetFile does. size is the
// expected length (-1 if unknown) and md5hex the expected lowercase hex md5
// ("" skips verification).
func (c *Client) DownloadFile(ctx context.Context, link, out string, size int64, md5hex string, opts GetOptions) (*GetResult, error) {
	res := &GetResult{Path: out, MD5: md5hex}
	if out == "-" {
		w := opts.Stdout
		if w == nil {
			w = os.Stdout
		}
		sum, n, err := c.fetch(ctx, link, fetchTarget{w: w}, size, md5hex, opts, res.Path)
		res.Downloaded, res.Size = n, n
		if err != nil {
			return res, err
		}
		if md5hex != "" && sum != md5hex {
			return res, fmt.Errorf("%w: got %s, want %s", ErrChecksum, sum, md5hex)
		}
		res.MD5 = sum
		if md5hex != "" {
			res.Verified = VerifiedMD5
		}
		return res, nil
	}

	if opts.Parallel > 1 && size >= 2*parallelPiece {
		return c.downloadParallel(ctx, link, out, size, md5hex, opts, res)
	}
	part := out + PartSuffix
	pf, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	defer pf.Close()
	st, err := pf.Stat()
	if err != nil {
		return nil, err
	}
	have := st.Size()
	if size >= 0 && have > size {
		have = 0 // longer than the file: not ours
	}
	t := fetchTarget{w: pf, have: have, h: md5.New(), restart: func() error {
		if err := pf.Truncate(0); err != nil {
			return err
		}
		_, err := pf.Seek(0, io.SeekStart)
		return err
	}}
	if have > 0 {
		// Hash the prefix we keep so the final md5 covers the whole file.
		if _, err := io.CopyBuffer(t.h, io.NewSectionReader(pf, 0, have), make([]byte, copyBufSize)); err != nil {
			return nil, err
		}
		res.Resumed = true
	}
	if err := pf.Truncate(have); err != nil {
		return nil, err
	}
	if _, err := pf.Seek(have, io.SeekStart); err != nil {
		return nil, err
	}
	sum, n, err := c.fetch(ctx, link, t, size, md5hex, opts, filepath.Base(out))
	res.Downloaded = n
	if err != nil {
		return res, err
	}
	if err := pf.Sync(); err != nil {
		return res, err
	}
	if fi, err := pf.Stat(); err == nil {
		res.Size = fi.Size()
	}
	if md5hex != "" && sum != md5hex {
		return res, fmt.Errorf("%w: %s: got %s, want %s (kept %s)", ErrChecksum, out, sum, md5hex, part)
	}
	res.MD5 = sum
	if md5hex != "" {
		res.Verified = VerifiedMD5
	}
	if err := pf.Close(); err != nil {
		return res, err
	}
	if err := os.Rename(part, out); err != nil {
		return res, err
	}
	return res, nil
}

// fetchTarget is where fetch writes. have bytes are already there (and in
// h). restart empties it; nil means it cannot be emptied (a stream), so a
// full 200 reply is skipped forward instead.
type fetchTarget struct {
	w       io.Writer
	have    int64
	h       hash.Hash
	restart func() error
}

// errWrite marks failures of the local writer, which resuming cannot fix.
type writeErr struct{ err error }

func (e writeErr) Error() string { return e.err.Error() }
func (e writeErr) Unwrap() error { return e.err }

type errWriter struct{ w io.Writer }

func (e errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil {
		err = writeErr{err}
	}
	return n, err
}

// fetch streams link into t starting at t.have, resuming with Range after
// mid-stream failures. It returns the md5 of the whole content and the
// bytes received in this call.
func (c *Client) fetch(ctx context.Context, link string, t fetchTarget, size int64, md5hex string, opts GetOptions, desc string) (string, int64, error) {
	if t.h == nil {
		t.h = md5.New()
	}
	maxResumes := opts.MaxResumes
	if maxResumes == 0 {
		maxResumes = 5
	}
	var ifRange string
	if md5hex != "" {
		ifRange = `"` + md5hex + `"`
	}
	p := newProgress(opts.Progress, size, desc)
	defer p.finish()
	p.set(t.have)
	have, got, failures := t.have, int64(0), 0
	buf := make([]byte, copyBufSize)
	fail := func(err error) error {
		failures++
		if maxResumes < 0 || failures > maxResumes || ctx.Err() != nil {
			return err
		}
		c.logger.Debug("resuming download", "offset", have, "attempt", failures, "err", err)
		if c.sleep(ctx, c.backoff(failures-1)) != nil {
			return err
		}
		return nil
	}
	for size < 0 || have < size {
		d, err := c.Download(ctx, link, DownloadOptions{Offset: have, IfRange: ifRange})
		if err != nil {
			if errors.Is(err, ErrRangeNotSatisfiable) && have > 0 {
				if size < 0 {
					break // nothing past what we have: the file is complete
				}
				if t.restart == nil {
					return "", got, err
				}
				if err := t.restart(); err != nil {
					return "", got, err
				}
				t.h.Reset()
				have = 0
				p.set(0)
				if err := fail(err); err != nil {
					return "", got, err
				}
				continue
			}
			return "", got, err
		}
		body := io.Reader(d.Body)
		switch {
		case d.Partial && d.Start == have:
		case !d.Partial && have > 0 && t.restart != nil:
			// The validator did not match (or Range was ignored): start over.
			if err := t.restart(); err != nil {
				d.Close()
				return "", got, err
			}
			t.h.Reset()
			have = 0
			p.set(0)
		case !d.Partial && have > 0:
			if _, err := io.CopyN(io.Discard, d.Body, have); err != nil {
				d.Close()
				if err := fail(err); err != nil {
					return "", got, err
				}
				continue
			}
		case !d.Partial:
		default:
			d.Close()
			return "", got, fmt.Errorf("%w: asked for offset %d, got Content-Range %q", ErrProtocol, have,
				d.Header.Get("Content-Range"))
		}
		if d.Total >= 0 {
			if size >= 0 && d.Total != size {
				d.Close()
				return "", got, fmt.Errorf("%w: server reports %d bytes, link metadata %d", ErrProtocol, d.Total, size)
			}
			size = d.Total
		}
		if size >= 0 {
			// Never write past the end, whatever the server sends.
			body = io.LimitReader(body, size-have+1)
		}
		n, err := io.CopyBuffer(errWriter{io.MultiWriter(t.w, t.h, progressWriter{p})}, body, buf)
		d.Close()
		have += n
		got += n
		if size >= 0 && have > size {
			return "", got, fmt.Errorf("%w: server sent more than %d bytes", ErrProtocol, size)
		}
		if err != nil {
			var we writeErr
			if errors.As(err, &we) {
				return "", got, we.err
			}
			if err := fail(err); err != nil {
				return "", got, err
			}
			continue
		}
		if size < 0 {
			break // read to EOF without a known length
		}
		if have < size {
			if err := fail(fmt.Errorf("%w: body ended at %d of %d bytes", io.ErrUnexpectedEOF, have, size)); err != nil {
				return "", got, err
			}
		}
	}
	return hex.EncodeToString(t.h.Sum(nil)), got, nil
}
