package client

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3BenchTarget is one S3 endpoint to measure.
type S3BenchTarget struct {
	// Name labels the target's rows ("osprey", "minio").
	Name string
	// Endpoint is http://host:port.
	Endpoint  string
	AccessKey string
	SecretKey string
}

// S3BenchConfig configures RunS3Bench: the same client (minio-go) and the
// same workload against each target in turn, so the ratios compare the
// servers, not the clients.
type S3BenchConfig struct {
	Targets []S3BenchTarget
	// Size is the large object's size; PartSize its multipart part size.
	Size, PartSize int64
	// Concurrency is the number of concurrent 4 KiB PUTs; Duration caps
	// that measurement.
	Concurrency int
	Duration    time.Duration
	// Progress receives one line per stage; nil means none.
	Progress io.Writer
	// Settle, when set, runs before each target is measured and returns
	// once the osprey node under test has finished its background work
	// (tiering and gc of what earlier steps stored): otherwise the server
	// measured second competes for the machine with osprey's backlog of
	// the first, and the one measured first with that of earlier benches.
	// It returns how long it waited, and an error (reported, not fatal)
	// when the work did not finish in time.
	Settle func(ctx context.Context) (time.Duration, error)
}

// DefaultS3BenchConfig returns the defaults of `osprey bench-s3`.
func DefaultS3BenchConfig() S3BenchConfig {
	return S3BenchConfig{Size: 1 << 30, PartSize: 16 << 20, Concurrency: 16, Duration: 5 * time.Second}
}

// S3BenchRow is one measurement of every target.
type S3BenchRow struct {
	Name   string
	Unit   string
	Values []float64 // by target
	Notes  []string  // by target
}

// S3BenchReport is the outcome of RunS3Bench.
type S3BenchReport struct {
	Targets []S3BenchTarget
	Rows    []S3BenchRow
	Size    int64
	// Settled says, by target, how long the run waited for osprey's
	// background work before measuring it (empty without Config.Settle).
	Settled []string
}

// Markdown writes the report as a table: one column per target and, with
// two or more, the first target's value as a ratio of the second's.
func (r *S3BenchReport) Markdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "osprey bench-s3: same client (minio-go), object %s, %s\n\n", HumanBytes(r.Size), time.Now().UTC().Format(time.RFC3339))
	if len(r.Settled) > 0 {
		var parts []string
		for i, t := range r.Targets {
			parts = append(parts, t.Name+": "+r.Settled[i])
		}
		fmt.Fprintf(&b, "Before each server was measured, the osprey node's background work (tiering, gc) was let finish (%s).\n\n", strings.Join(parts, "; "))
	}
	b.WriteString("| metric | unit |")
	sep := "|---|---|"
	for _, t := range r.Targets {
		fmt.Fprintf(&b, " %s |", t.Name)
		sep += "---:|"
	}
	if len(r.Targets) >= 2 {
		fmt.Fprintf(&b, " %s / %s |", r.Targets[0].Name, r.Targets[1].Name)
		sep += "---:|"
	}
	b.WriteString(" note |\n" + sep + "---|\n")
	for _, row := range r.Rows {
		fmt.Fprintf(&b, "| %s | %s |", row.Name, row.Unit)
		for _, v := range row.Values {
			fmt.Fprintf(&b, " %s |", formatValue(v))
		}
		if len(row.Values) >= 2 {
			if row.Values[1] > 0 {
				fmt.Fprintf(&b, " %.2f |", row.Values[0]/row.Values[1])
			} else {
				b.WriteString(" |")
			}
		}
		fmt.Fprintf(&b, " %s |\n", strings.Join(nonEmpty(row.Notes), "; "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func nonEmpty(ss []string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// RunS3Bench measures 4 KiB PUTs at the configured concurrency, a large
// multipart upload and a large md5-verified download on every target.
func RunS3Bench(ctx context.Context, cfg S3BenchConfig) (*S3BenchReport, error) {
	if len(cfg.Targets) == 0 || cfg.Size <= 0 || cfg.PartSize < 5<<20 || cfg.Concurrency <= 0 || cfg.Duration <= 0 {
		return nil, fmt.Errorf("%w: bench-s3 needs a target, a positive size, parts of at least 5 MiB, concurrency and duration", ErrInvalidConfig)
	}
	rep := &S3BenchReport{Targets: cfg.Targets, Size: cfg.Size}
	rows := map[string]*S3BenchRow{}
	order := []string{}
	set := func(i int, name, unit string, v float64, note string) {
		r, ok := rows[name]
		if !ok {
			r = &S3BenchRow{Name: name, Unit: unit, Values: make([]float64, len(cfg.Targets)), Notes: make([]string, len(cfg.Targets))}
			rows[name] = r
			order = append(order, name)
		}
		r.Values[i] = v
		if note != "" {
			r.Notes[i] = cfg.Targets[i].Name + ": " + note
		}
	}
	stage := func(format string, args ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "bench-s3: "+format+"\n", args...)
		}
	}
	for i, t := range cfg.Targets {
		u, err := url.Parse(t.Endpoint)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("%w: endpoint %q: want http://host:port", ErrInvalidConfig, t.Endpoint)
		}
		cl, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(t.AccessKey, t.SecretKey, ""),
			Secure: u.Scheme == "https", Region: "us-east-1"})
		if err != nil {
			return nil, err
		}
		if cfg.Settle != nil {
			stage("%s: waiting for osprey's background work to finish", t.Name)
			waited, err := cfg.Settle(ctx)
			note := fmt.Sprintf("waited %s", waited.Round(100*time.Millisecond))
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				note += fmt.Sprintf(", not finished: %v", err)
			}
			rep.Settled = append(rep.Settled, note)
		}
		bucket := fmt.Sprintf("bench-%d", time.Now().UnixNano())
		if err := cl.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
			return nil, fmt.Errorf("bench-s3: %s: create bucket: %w", t.Name, err)
		}
		stage("%s: 4 KiB PUTs, c=%d", t.Name, cfg.Concurrency)
		rate, p50, p99, n, err := s3SmallPuts(ctx, cl, bucket, cfg.Concurrency, cfg.Duration)
		if err != nil {
			return nil, fmt.Errorf("bench-s3: %s: small PUTs: %w", t.Name, err)
		}
		set(i, fmt.Sprintf("4 KiB PUT, c=%d", cfg.Concurrency), "objects/s", rate, fmt.Sprintf("n=%d p50 %s p99 %s", n, p50, p99))

		stage("%s: large upload (%s, %s parts)", t.Name, HumanBytes(cfg.Size), HumanBytes(cfg.PartSize))
		up, sum, err := s3LargeUpload(ctx, cl, bucket, cfg.Size, cfg.PartSize)
		if err != nil {
			return nil, fmt.Errorf("bench-s3: %s: large upload: %w", t.Name, err)
		}
		set(i, "large upload (multipart)", "MB/s", up, "")
		stage("%s: large download", t.Name)
		down, err := s3LargeDownload(ctx, cl, bucket, sum)
		if err != nil {
			return nil, fmt.Errorf("bench-s3: %s: large download: %w", t.Name, err)
		}
		set(i, "large download right after the upload (md5 verified)", "MB/s", down, "")
		if cfg.Settle != nil {
			// osprey tiers the object it just assembled while the first
			// download reads it; read it again once that is done (as the
			// native bench does), so both situations are on record.
			stage("%s: large download once background work settled", t.Name)
			waited, err := cfg.Settle(ctx)
			note := ""
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				note = fmt.Sprintf("waited %s, not finished: %v", waited.Round(100*time.Millisecond), err)
			}
			down, err := s3LargeDownload(ctx, cl, bucket, sum)
			if err != nil {
				return nil, fmt.Errorf("bench-s3: %s: large download once settled: %w", t.Name, err)
			}
			set(i, "large download once settled (md5 verified)", "MB/s", down, note)
		}
		s3Cleanup(ctx, cl, bucket)
	}
	for _, name := range order {
		rep.Rows = append(rep.Rows, *rows[name])
	}
	return rep, nil
}

func s3SmallPuts(ctx context.Context, cl *minio.Client, bucket string, conc int, d time.Duration) (rate float64, p50, p99 time.Duration, n int, err error) {
	body := make([]byte, benchSmallSize)
	_, _ = rand.Read(body)
	var (
		mu    sync.Mutex
		lat   []time.Duration
		count atomic.Int64
		first error
		wg    sync.WaitGroup
	)
	deadline := time.Now().Add(d)
	start := time.Now()
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				b := append([]byte(nil), body...)
				copy(b, fmt.Sprintf("%d-%d-", w, i)) // distinct contents: no dedup shortcut
				t0 := time.Now()
				_, err := cl.PutObject(ctx, bucket, fmt.Sprintf("small/%d/%d", w, i), bytes.NewReader(b), int64(len(b)),
					minio.PutObjectOptions{DisableMultipart: true})
				el := time.Since(t0)
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				lat = append(lat, el)
				mu.Unlock()
				if err != nil {
					return
				}
				count.Add(1)
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return 0, 0, 0, 0, first
	}
	elapsed := time.Since(start)
	n = int(count.Load())
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return roundDur(lat[min(len(lat)-1, int(float64(len(lat))*p))]) }
	p50, p99 = pct(0.50), pct(0.99)
	return float64(n) / elapsed.Seconds(), p50, p99, n, nil
}

// s3LargeUpload uploads size pseudo-random bytes as one multipart object
// and returns MB/s and the object's md5.
func s3LargeUpload(ctx context.Context, cl *minio.Client, bucket string, size, part int64) (float64, string, error) {
	h := md5.New()
	src := io.TeeReader(io.LimitReader(newFastRand(), size), h)
	t0 := time.Now()
	info, err := cl.PutObject(ctx, bucket, "large.bin", src, size, minio.PutObjectOptions{PartSize: uint64(part), NumThreads: 4})
	if err != nil {
		return 0, "", err
	}
	el := time.Since(t0)
	if info.Size != size {
		return 0, "", fmt.Errorf("stored %d of %d bytes", info.Size, size)
	}
	return float64(size) / el.Seconds() / 1e6, hex.EncodeToString(h.Sum(nil)), nil
}

func s3LargeDownload(ctx context.Context, cl *minio.Client, bucket, want string) (float64, error) {
	t0 := time.Now()
	obj, err := cl.GetObject(ctx, bucket, "large.bin", minio.GetObjectOptions{})
	if err != nil {
		return 0, err
	}
	defer obj.Close()
	h := md5.New()
	n, err := io.Copy(h, obj)
	if err != nil {
		return 0, err
	}
	el := time.Since(t0)
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return 0, errors.New("downloaded bytes do not match the upload's md5")
	}
	return float64(n) / el.Seconds() / 1e6, nil
}

func s3Cleanup(ctx context.Context, cl *minio.Client, bucket string) {
	objs := cl.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true})
	for e := range cl.RemoveObjects(ctx, bucket, objs, minio.RemoveObjectsOptions{}) {
		_ = e
	}
	_ = cl.RemoveBucket(ctx, bucket)
}

// newFastRand returns an endless reader of cheap pseudo-random bytes (the
// upload measures the server, not crypto/rand).
func newFastRand() io.Reader {
	seed := make([]byte, 1<<20)
	_, _ = rand.Read(seed)
	return &fastRand{block: seed}
}

type fastRand struct {
	block []byte
	off   int
	round uint64
}

func (r *fastRand) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if r.off == len(r.block) {
			r.off = 0
			r.round++
			// Vary each round so no two blocks of the object are equal.
			for i := 0; i < len(r.block); i += 4096 {
				r.block[i] ^= byte(r.round)
			}
		}
		c := copy(p[n:], r.block[r.off:])
		n += c
		r.off += c
	}
	return n, nil
}
