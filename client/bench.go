package client

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// BenchConfig configures RunBench.
type BenchConfig struct {
	// Addr is one node or a comma-separated list; requests are spread over
	// the list round-robin.
	Addr string
	// APIKey is the business-endpoint key.
	APIKey string
	// Dir is a scratch directory on the disk being measured. "" means a
	// new directory under os.TempDir(). Files created there are removed.
	Dir string
	// Size is the size of the large file, in bytes.
	Size int64
	// Chunk is the chunk size of the large upload.
	Chunk int64
	// Parallel is how many chunks are uploaded at once.
	Parallel int
	// SmallN caps the number of 4 KiB uploads at each concurrency level.
	SmallN int
	// Duration caps each rate measurement (small uploads, link and resume
	// calls, fsync'd writes).
	Duration time.Duration
	// Concurrency is the number of concurrent callers for the link and
	// resume rates and the high small-upload level.
	Concurrency int
	// SettleWait bounds how long the settled download waits for the large
	// upload's background tiering to finish (0 means 3 minutes).
	SettleWait time.Duration
	// Only limits the run to these groups of steps (BenchGroups); empty
	// means all. "large" also runs "disk", which writes its source file.
	Only []string
	// NoDropCaches skips dropping the page cache before the disk read
	// (which needs root and affects the whole machine).
	NoDropCaches bool
	// Progress receives one line per stage; nil means none.
	Progress io.Writer
	// Logger receives debug logs; nil means slog.Default().
	Logger *slog.Logger
	// HTTPClient is passed to the Client; nil means the default.
	HTTPClient *http.Client
	// TLS is passed to the Client (https: the CA, a client certificate).
	TLS *tls.Config
}

// DefaultBenchConfig returns the defaults of `osprey bench`.
func DefaultBenchConfig() BenchConfig {
	return BenchConfig{
		Addr:        DefaultAddr,
		Size:        1 << 30,
		Chunk:       DefaultChunkSize,
		Parallel:    DefaultParallel,
		SmallN:      2000,
		Duration:    5 * time.Second,
		Concurrency: 16,
	}
}

// Validate checks the configuration.
func (c BenchConfig) Validate() error {
	switch {
	case c.Size <= 0:
		return fmt.Errorf("%w: bench size must be positive", ErrInvalidConfig)
	case c.Chunk <= 0:
		return fmt.Errorf("%w: bench chunk must be positive", ErrInvalidConfig)
	case c.Parallel <= 0 || c.Concurrency <= 0:
		return fmt.Errorf("%w: bench parallelism must be positive", ErrInvalidConfig)
	case c.SmallN <= 0:
		return fmt.Errorf("%w: bench small-n must be positive", ErrInvalidConfig)
	case c.Duration <= 0:
		return fmt.Errorf("%w: bench duration must be positive", ErrInvalidConfig)
	}
	for _, g := range c.Only {
		if !slices.Contains(BenchGroups, g) {
			return fmt.Errorf("%w: bench: unknown step group %q (accepted: %s)", ErrInvalidConfig, g, strings.Join(BenchGroups, ", "))
		}
	}
	_, err := parseAddrs(c.Addr)
	return err
}

// BenchResult is one row of the bench table.
type BenchResult struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	// Limit names the physical-limit row Value is compared with, and Ratio
	// is Value divided by that row's value (0 when there is none).
	Limit string  `json:"limit,omitempty"`
	Ratio float64 `json:"ratio,omitempty"`
	Note  string  `json:"note,omitempty"`
}

// BenchReport is the outcome of RunBench.
type BenchReport struct {
	Started  time.Time     `json:"started"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	Nodes    []string      `json:"nodes"`
	Dir      string        `json:"dir"`
	Size     int64         `json:"size"`
	Chunk    int64         `json:"chunk"`
	Parallel int           `json:"parallel"`
	Results  []BenchResult `json:"results"`
}

// Bench row names. Physical limits come first; their names are what
// BenchResult.Limit refers to.
const (
	benchDiskWrite   = "disk sequential write (fsync)"
	benchDiskRead    = "disk sequential read"
	benchLoopback    = "loopback TCP copy"
	benchLoopbackMD5 = "loopback TCP read + md5"
	benchFsync4K     = "disk 4 KiB write+fsync"
	benchSmall1      = "4 KiB upload (link+PUT), c=1"
	benchSmallN      = "4 KiB upload (link+PUT), c=%d"
	benchUpload      = "large upload (chunked)"
	benchDownload    = "large download (md5 verified)"
	benchDownloadNow = "large download right after the upload (tiering it meanwhile)"
	benchParallelGet = "parallel ranged get (%d streams)"
	benchLink        = "link/upload calls, c=%d"
	benchResume      = "resume calls (miss), c=%d"
	benchPeakRSS     = "peak RSS %s"
	benchBlock       = 8 << 20  // write size of the disk test
	benchSyncEvery   = 64 << 20 // fsync interval of the disk test
	benchSmallSize   = 4 << 10
	benchRSSMetric   = "process_resident_memory_bytes"
	benchRSSPeriod   = 200 * time.Millisecond
	benchStampEvery  = 64 << 10
)

// Markdown writes the report as a Markdown table preceded by a one-line
// summary, ready to paste into a README.
func (r *BenchReport) Markdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "osprey bench: %d node(s), file %s, chunk %s, parallel %d, %s\n\n", len(r.Nodes),
		HumanBytes(r.Size), HumanBytes(r.Chunk), r.Parallel, r.Started.UTC().Format(time.RFC3339))
	b.WriteString("| metric | value | unit | vs. physical limit | ratio | note |\n")
	b.WriteString("|---|---:|---|---|---:|---|\n")
	for _, res := range r.Results {
		ratio := ""
		if res.Limit != "" && res.Ratio > 0 {
			ratio = strconv.FormatFloat(res.Ratio, 'f', 2, 64)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", res.Name, formatValue(res.Value), res.Unit,
			res.Limit, ratio, strings.ReplaceAll(res.Note, "|", "/"))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// JSON writes the report as indented JSON.
func (r *BenchReport) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func formatValue(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

type bench struct {
	cfg    BenchConfig
	c      *Client
	log    *slog.Logger
	rep    *BenchReport
	limits map[string]float64
	data   string // path of the large file
	md5    string // its md5
}

// RunBench measures physical limits and then the cluster at cfg.Addr, in
// this order: disk write and read, loopback TCP (plain and with the receiver hashing md5), fsync'd 4 KiB writes; 4 KiB
// uploads at concurrency 1 and cfg.Concurrency; a chunked upload of a
// cfg.Size file and its download; link and resume call rates. Peak RSS of
// every node is sampled from /metrics during the large upload. Rows that
// fail are reported with a note rather than aborting the run, except when
// the cluster cannot be reached at all.
func RunBench(ctx context.Context, cfg BenchConfig) (*BenchReport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	c, err := New(Config{Addr: cfg.Addr, APIKey: cfg.APIKey, Logger: logger, HTTPClient: cfg.HTTPClient, TLS: cfg.TLS})
	if err != nil {
		return nil, err
	}
	dir := cfg.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "osprey-bench-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	b := &bench{cfg: cfg, c: c, log: logger.With("component", "bench"), limits: map[string]float64{},
		rep: &BenchReport{Started: time.Now(), Nodes: c.Addrs(), Dir: dir, Size: cfg.Size, Chunk: cfg.Chunk,
			Parallel: cfg.Parallel},
		data: filepath.Join(dir, fmt.Sprintf("osprey-bench-%d.bin", os.Getpid()))}
	defer os.Remove(b.data)

	for _, base := range c.Addrs() {
		err := c.doJSON(ctx, &request{method: http.MethodGet, target: base + APIPrefix + "/health", idempotent: true}, nil)
		if err != nil {
			return nil, fmt.Errorf("bench: node %s: %w", base, err)
		}
	}
	steps := []struct {
		group, name string
		run         func(context.Context) error
	}{
		{"disk", "disk write", b.diskWrite},
		{"disk", "disk read", b.diskRead},
		{"loopback", "loopback tcp", b.loopback},
		{"loopback", "loopback tcp + md5", b.loopbackMD5},
		{"fsync", "fsync 4k", b.fsync4K},
		{"small", "small uploads c=1", func(ctx context.Context) error { return b.smallUploads(ctx, 1) }},
		{"small", "small uploads", func(ctx context.Context) error { return b.smallUploads(ctx, cfg.Concurrency) }},
		{"large", "large upload+download", b.large},
		{"link", "link calls", b.linkCalls},
		{"resume", "resume calls", b.resumeCalls},
	}
	only := slices.Clone(cfg.Only)
	if slices.Contains(only, "large") {
		only = append(only, "disk") // the large upload's source file
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return b.rep, err
		}
		if len(only) > 0 && !slices.Contains(only, s.group) {
			continue
		}
		b.stage("%s", s.name)
		if err := s.run(ctx); err != nil {
			if ctx.Err() != nil {
				return b.rep, ctx.Err()
			}
			if errors.Is(err, errBenchFatal) {
				return b.rep, err
			}
			b.log.Warn("bench step failed", "step", s.name, "err", err)
			b.add(BenchResult{Name: s.name, Unit: "-", Note: "failed: " + oneLine(err.Error(), 120)})
		}
	}
	b.rep.Elapsed = time.Since(b.rep.Started)
	return b.rep, nil
}

// BenchGroups names the groups of steps BenchConfig.Only selects from, in
// the order they run.
var BenchGroups = []string{"disk", "loopback", "fsync", "small", "large", "link", "resume"}

// waitTiered polls uid until it is tiered (or cfg.SettleWait passes) and
// says whether it was, and how long it waited.
func (b *bench) waitTiered(ctx context.Context, uid string) (bool, time.Duration) {
	wait := b.cfg.SettleWait
	if wait <= 0 {
		wait = 3 * time.Minute
	}
	t0 := time.Now()
	for {
		if o, err := b.c.Object(ctx, uid); err == nil && o.State != StateComplete && o.State != StateUploading {
			return true, time.Since(t0)
		}
		if time.Since(t0) >= wait || ctx.Err() != nil {
			return false, time.Since(t0)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

var errBenchFatal = errors.New("bench: fatal")

func (b *bench) stage(format string, args ...any) {
	if b.cfg.Progress != nil {
		fmt.Fprintf(b.cfg.Progress, "bench: "+format+"\n", args...)
	}
}

func (b *bench) add(r BenchResult) {
	if r.Limit != "" {
		if l := b.limits[r.Limit]; l > 0 {
			r.Ratio = r.Value / l
		}
	}
	b.rep.Results = append(b.rep.Results, r)
}

func (b *bench) limit(name string, value float64, unit, note string) {
	b.limits[name] = value
	b.add(BenchResult{Name: name, Value: value, Unit: unit, Note: note})
}

// lowerLimit returns whichever of two limits is smaller (the bottleneck).
func (b *bench) lowerLimit(x, y string) string {
	lx, okx := b.limits[x]
	ly, oky := b.limits[y]
	switch {
	case okx && oky && ly < lx:
		return y
	case okx:
		return x
	case oky:
		return y
	}
	return ""
}

func mbps(n int64, d time.Duration) float64 {
	if d <= 0 {
		d = time.Nanosecond
	}
	return float64(n) / 1e6 / d.Seconds()
}

// fillBlock fills buf with random bytes and stamps block number n every
// benchStampEvery bytes, so no two chunks of 64 KiB or more in the file are
// equal (a content-addressed store must not dedup the benchmark away).
func fillBlock(buf []byte, rng *rand.ChaCha8, n uint64) {
	if rng != nil {
		_, _ = rng.Read(buf)
	}
	for off := 0; off+16 <= len(buf); off += benchStampEvery {
		binary.LittleEndian.PutUint64(buf[off:], n)
		binary.LittleEndian.PutUint64(buf[off+8:], uint64(off))
	}
}

// diskWrite writes cfg.Size bytes in 8 MiB writes with an fsync every
// 64 MiB and at the end. The file becomes the large upload's source.
func (b *bench) diskWrite(ctx context.Context) error {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(time.Now().UnixNano()))
	rng := rand.NewChaCha8(seed)
	buf := make([]byte, benchBlock)
	rng.Read(buf)
	f, err := os.OpenFile(b.data, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("%w: %w", errBenchFatal, err)
	}
	defer f.Close()
	h := md5.New()
	var written, sinceSync int64
	var busy time.Duration
	for blk := uint64(0); written < b.cfg.Size; blk++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		fillBlock(buf, nil, blk)
		n := min(int64(len(buf)), b.cfg.Size-written)
		h.Write(buf[:n]) // not timed: md5 of the source for the upload step
		t0 := time.Now()
		if _, err := f.Write(buf[:n]); err != nil {
			return fmt.Errorf("%w: %w", errBenchFatal, err)
		}
		written += n
		sinceSync += n
		if sinceSync >= benchSyncEvery || written == b.cfg.Size {
			if err := f.Sync(); err != nil {
				return fmt.Errorf("%w: %w", errBenchFatal, err)
			}
			sinceSync = 0
		}
		busy += time.Since(t0)
	}
	b.md5 = hex.EncodeToString(h.Sum(nil))
	b.limit(benchDiskWrite, mbps(written, busy), "MB/s", fmt.Sprintf("%s in 8 MiB writes, fsync every 64 MiB", HumanBytes(written)))
	return nil
}

// dropCaches drops the page cache (root only) and says what it did.
func (b *bench) dropCaches() string {
	if b.cfg.NoDropCaches {
		return "cached: page cache not dropped (--no-drop-caches)"
	}
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("1"), 0); err != nil {
		return "cached: page cache not dropped (needs root)"
	}
	return "cold (drop_caches)"
}

// diskRead reads the file back after dropping the page cache (root only).
func (b *bench) diskRead(ctx context.Context) error {
	note := b.dropCaches()
	f, err := os.Open(b.data)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, benchBlock)
	t0 := time.Now()
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, err := f.Read(buf)
		n += int64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	b.limit(benchDiskRead, mbps(n, time.Since(t0)), "MB/s", note)
	return nil
}

// loopback copies cfg.Size bytes over a loopback TCP connection.
func (b *bench) loopback(ctx context.Context) error { return b.loopbackRead(ctx, false) }

// loopbackMD5 measures the same copy with the receiver hashing the stream:
// the ceiling of any md5-verified download on this machine (the client's
// own limit, whatever the server does).
func (b *bench) loopbackMD5(ctx context.Context) error { return b.loopbackRead(ctx, true) }

func (b *bench) loopbackRead(ctx context.Context, withMD5 bool) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	recv := make(chan error, 1)
	var got int64
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			recv <- err
			return
		}
		defer conn.Close()
		var sink io.Writer = io.Discard
		if withMD5 {
			sink = md5.New()
		}
		got, err = io.CopyBuffer(sink, conn, make([]byte, 256<<10))
		recv <- err
	}()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		return err
	}
	buf := make([]byte, benchBlock)
	fillBlock(buf, rand.NewChaCha8([32]byte{1}), 0)
	t0 := time.Now()
	var sent int64
	for sent < b.cfg.Size {
		n := min(int64(len(buf)), b.cfg.Size-sent)
		if _, err := conn.Write(buf[:n]); err != nil {
			conn.Close()
			return err
		}
		sent += n
	}
	conn.Close()
	if err := <-recv; err != nil {
		return err
	}
	if withMD5 {
		b.limit(benchLoopbackMD5, mbps(got, time.Since(t0)), "MB/s", "one connection, the receiver hashing: the ceiling of an md5-verified download")
		return nil
	}
	b.limit(benchLoopback, mbps(got, time.Since(t0)), "MB/s", "one connection, 8 MiB writes")
	return nil
}

// fsync4K measures 4 KiB appends each followed by fsync, the floor under
// every durable small write (a Raft commit needs at least one).
func (b *bench) fsync4K(ctx context.Context) error {
	p := filepath.Join(filepath.Dir(b.data), fmt.Sprintf("osprey-bench-%d.fsync", os.Getpid()))
	f, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer os.Remove(p)
	defer f.Close()
	buf := make([]byte, benchSmallSize)
	limit := min(b.cfg.Duration, 3*time.Second)
	t0 := time.Now()
	n := 0
	for ; n < 100000 && time.Since(t0) < limit; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		buf[0] = byte(n)
		if _, err := f.Write(buf); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
	}
	b.limit(benchFsync4K, float64(n)/time.Since(t0).Seconds(), "ops/s", "append + fsync, one writer")
	return nil
}

// rate runs op from conc workers until max ops or the duration is up, and
// returns ops/s plus latency percentiles.
func (b *bench) rate(ctx context.Context, conc, max int, op func(ctx context.Context, i int) error) (float64, string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Duration)
	defer cancel()
	var (
		next     atomic.Int64
		mu       sync.Mutex
		lats     []time.Duration
		firstErr error
		errs     int
		wg       sync.WaitGroup
	)
	t0 := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= max {
					break
				}
				s := time.Now()
				err := op(ctx, i)
				if err != nil {
					if ctx.Err() != nil {
						break // cut off by the duration, not a failure
					}
					mu.Lock()
					errs++
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				mine = append(mine, time.Since(s))
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	if len(lats) == 0 {
		if firstErr == nil {
			firstErr = errors.New("no operation completed")
		}
		return 0, "", firstErr
	}
	slices.Sort(lats)
	pct := func(p float64) time.Duration { return lats[min(len(lats)-1, int(float64(len(lats))*p))] }
	note := fmt.Sprintf("n=%d, p50 %s, p99 %s", len(lats), roundDur(pct(0.5)), roundDur(pct(0.99)))
	if errs > 0 {
		note += fmt.Sprintf(", %d errors (first: %s)", errs, oneLine(firstErr.Error(), 80))
	}
	return float64(len(lats)) / elapsed.Seconds(), note, nil
}

func roundDur(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= 100*time.Microsecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// smallUploads measures link + single PUT of unique 4 KiB files.
func (b *bench) smallUploads(ctx context.Context, conc int) error {
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	v, note, err := b.rate(ctx, conc, b.cfg.SmallN, func(ctx context.Context, i int) error {
		buf := make([]byte, benchSmallSize)
		var seed [32]byte
		copy(seed[:], run)
		binary.LittleEndian.PutUint64(seed[24:], uint64(i)+uint64(conc)<<40)
		_, _ = rand.NewChaCha8(seed).Read(buf)
		sum := md5.Sum(buf)
		links, err := b.c.LinkUpload(ctx, []string{fmt.Sprintf("bench-%s-%d-%d.bin", run, conc, i)}, 0)
		if err != nil {
			return err
		}
		return b.c.Upload(ctx, links[0].URL.Single, hex.EncodeToString(sum[:]), bytes.NewReader(buf), int64(len(buf)), UploadOptions{})
	})
	name := benchSmall1
	if conc != 1 {
		name = fmt.Sprintf(benchSmallN, conc)
	}
	if err != nil {
		return err
	}
	b.add(BenchResult{Name: name, Value: v, Unit: "files/s", Limit: benchFsync4K, Note: note})
	return nil
}

// large uploads the disk-test file in chunks while sampling every node's
// RSS, then downloads it and verifies the md5.
func (b *bench) large(ctx context.Context) error {
	if b.md5 == "" {
		return errors.New("no source file (disk write failed)")
	}
	sctx, stop := context.WithCancel(ctx)
	peaks := make([]atomic.Int64, len(b.c.Addrs()))
	var wg sync.WaitGroup
	for i, base := range b.c.Addrs() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(benchRSSPeriod)
			defer t.Stop()
			for {
				if v, err := b.c.Metric(sctx, base, benchRSSMetric); err == nil && int64(v) > peaks[i].Load() {
					peaks[i].Store(int64(v))
				}
				select {
				case <-sctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	t0 := time.Now()
	res, err := b.c.PutFile(ctx, b.data, PutOptions{ChunkSize: b.cfg.Chunk, Parallel: b.cfg.Parallel,
		Name: "bench-large.bin", NoDedup: true, StateDir: "-", Logger: b.log,
		// Hashed while the disk test wrote the file (untimed): the client
		// does not spend a whole-file md5 pass inside the upload's time.
		MD5: b.md5})
	upTime := time.Since(t0)
	stop()
	wg.Wait()
	var rss []BenchResult
	defer func() { // RSS rows go after the throughput rows
		for _, r := range rss {
			b.add(r)
		}
	}()
	for i, base := range b.c.Addrs() {
		r := BenchResult{Name: fmt.Sprintf(benchPeakRSS, base), Value: float64(peaks[i].Load()) / (1 << 20), Unit: "MiB",
			Note: "sampled from /metrics every 200ms during the large upload"}
		if peaks[i].Load() == 0 {
			r.Note = "not available (" + benchRSSMetric + " missing)"
		}
		rss = append(rss, r)
	}
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	b.add(BenchResult{Name: benchUpload, Value: mbps(b.cfg.Size, upTime), Unit: "MB/s",
		Limit: b.lowerLimit(benchDiskWrite, benchLoopback),
		Note:  fmt.Sprintf("%s, chunk %s, parallel %d, link to merge", HumanBytes(b.cfg.Size), HumanBytes(b.cfg.Chunk), b.cfg.Parallel)})

	links, err := b.c.LinkDownload(ctx, []string{res.UID}, 0)
	if err != nil {
		return fmt.Errorf("download link: %w", err)
	}
	if links[0].URL == "" {
		return fmt.Errorf("download link: %w for %s", ErrNoLink, res.UID)
	}
	// Right after the upload the cluster is tiering the file (every byte
	// read from staging and written to the backend, on 3 nodes to two
	// owners through the network): one download then, and the main one once
	// the file is tiered, which is what the download path itself does.
	download := func() (*GetResult, time.Duration, error) {
		t0 := time.Now()
		got, err := b.c.DownloadFile(ctx, links[0].URL, "-", b.cfg.Size, b.md5, GetOptions{Stdout: io.Discard})
		return got, time.Since(t0), err
	}
	got, downTime, err := download()
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	b.add(BenchResult{Name: benchDownloadNow, Value: mbps(got.Size, downTime), Unit: "MB/s",
		Limit: b.lowerLimit(benchDiskRead, benchLoopbackMD5), Note: "one stream, md5 " + got.MD5[:8] + "… ok"})
	settled, waited := b.waitTiered(ctx, res.UID)
	got, downTime, err = download()
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	note := fmt.Sprintf("one stream, md5 %s… ok, the file tiered (waited %s)", got.MD5[:8], waited.Round(100*time.Millisecond))
	if !settled {
		note = fmt.Sprintf("one stream, md5 %s… ok; the file was still not tiered after %s", got.MD5[:8], waited.Round(time.Second))
	}
	b.add(BenchResult{Name: benchDownload, Value: mbps(got.Size, downTime), Unit: "MB/s",
		Limit: b.lowerLimit(benchDiskRead, benchLoopbackMD5), Note: note})

	// osprey get --parallel: concurrent Range requests written at their
	// offsets into a file on the bench disk, each chunk checked against
	// its xxhash64 sum as it lands (or the md5 at the end, from a server
	// without sums).
	out := b.data + ".get"
	defer os.Remove(out)
	cache := b.dropCaches()
	t0 = time.Now()
	pgot, err := b.c.DownloadFile(ctx, links[0].URL, out, b.cfg.Size, b.md5, GetOptions{Parallel: b.cfg.Parallel})
	pTime := time.Since(t0)
	if err != nil {
		return fmt.Errorf("parallel get: %w", err)
	}
	b.add(BenchResult{Name: fmt.Sprintf(benchParallelGet, b.cfg.Parallel), Value: mbps(pgot.Size, pTime), Unit: "MB/s",
		Limit: benchDiskRead, Note: "to a file on the bench disk, " + verifiedNote(pgot.Verified) + "; page cache " + strings.TrimSuffix(strings.SplitN(cache, ":", 2)[0], " (drop_caches)") + " before"})
	if err := b.c.DeleteObject(ctx, res.UID); err != nil {
		b.log.Debug("cannot delete bench object", "uid", res.UID, "err", err)
	}
	return nil
}

// linkCalls measures POST /link/upload with one path per call.
func (b *bench) linkCalls(ctx context.Context) error {
	v, note, err := b.rate(ctx, b.cfg.Concurrency, 1<<30, func(ctx context.Context, i int) error {
		_, err := b.c.LinkUpload(ctx, []string{"bench-link-" + strconv.Itoa(i) + ".bin"}, 0)
		return err
	})
	if err != nil {
		return err
	}
	b.add(BenchResult{Name: fmt.Sprintf(benchLink, b.cfg.Concurrency), Value: v, Unit: "calls/s",
		Limit: benchFsync4K, Note: note})
	return nil
}

// resumeCalls measures POST /resume for md5s that are not stored (a pure
// metadata read).
func (b *bench) resumeCalls(ctx context.Context) error {
	salt := strconv.FormatInt(time.Now().UnixNano(), 10)
	v, note, err := b.rate(ctx, b.cfg.Concurrency, 1<<30, func(ctx context.Context, i int) error {
		sum := md5.Sum([]byte(salt + strconv.Itoa(i)))
		_, err := b.c.Resume(ctx, []ResumeItem{{MD5: hex.EncodeToString(sum[:]), Path: "bench-resume.bin"}})
		return err
	})
	if err != nil {
		return err
	}
	b.add(BenchResult{Name: fmt.Sprintf(benchResume, b.cfg.Concurrency), Value: v, Unit: "calls/s", Note: note})
	return nil
}

// verifiedNote says how a parallel get checked the bytes.
func verifiedNote(how string) string {
	switch how {
	case VerifiedChunkSums:
		return "every chunk checked against its xxhash64 sum"
	case VerifiedMD5:
		return "md5 checked at the end"
	}
	return "not verified"
}
