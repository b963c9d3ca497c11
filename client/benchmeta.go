package client

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// MetaBenchOptions configures BenchMetadata.
type MetaBenchOptions struct {
	// Links is the number of link-only records (POST /link/upload, 50 per
	// request) loaded into the metadata.
	Links int
	// Uploads is the number of real 4 KiB uploads loaded.
	Uploads int
	// Sample is the number of 4 KiB uploads timed before and after the
	// load, and while a snapshot is taken.
	Sample int
	// Concurrency is the number of requests in flight.
	Concurrency int
}

// MetaBenchResult is what BenchMetadata measured.
type MetaBenchResult struct {
	Files            int     `json:"files"`
	RateBefore       float64 `json:"small_uploads_per_s_before"`
	RateAfter        float64 `json:"small_uploads_per_s_after"`
	P99SteadyMillis  float64 `json:"p99_upload_ms_steady"`
	P99DuringMillis  float64 `json:"p99_upload_ms_during_snapshot"`
	SnapshotBytes    int64   `json:"snapshot_bytes"`
	SnapshotMillis   float64 `json:"snapshot_ms"`
	SnapshotPerFile  float64 `json:"snapshot_bytes_per_file"`
	LoadSeconds      float64 `json:"load_seconds"`
	LinksPerSecond   float64 `json:"links_per_s"`
	UploadsPerSecond float64 `json:"load_uploads_per_s"`
}

// BenchMetadata measures how the metadata store behaves as it grows: the
// small-upload rate and p99 latency before and after loading Links
// link-only records and Uploads real small files, and the p99 while a Raft
// snapshot of the loaded state is taken (POST /cluster/snapshot on the
// first address). It prints one JSON object.
func (c *CLI) BenchMetadata(ctx context.Context, o MetaBenchOptions) error {
	if o.Concurrency <= 0 || o.Sample <= 0 || o.Links < 0 || o.Uploads < 0 {
		return fmt.Errorf("%w: bench metadata: counts must be positive", ErrUsage)
	}
	cl := c.Client
	res := MetaBenchResult{}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var seq atomic.Uint64
	seq.Store(rng.Uint64() >> 16)
	upload := func(ctx context.Context) error {
		buf := make([]byte, 4096)
		binary.LittleEndian.PutUint64(buf, seq.Add(1))
		binary.LittleEndian.PutUint64(buf[8:], uint64(time.Now().UnixNano()))
		sum := md5.Sum(buf)
		links, err := cl.LinkUpload(ctx, []string{"meta-bench.bin"}, 0)
		if err != nil {
			return err
		}
		return cl.Upload(ctx, links[0].URL.Single, hex.EncodeToString(sum[:]), bytes.NewReader(buf), int64(len(buf)), UploadOptions{})
	}
	// run performs n operations with the configured concurrency and
	// returns their rate and latencies.
	run := func(ctx context.Context, n int, op func(context.Context) error) (float64, []time.Duration, error) {
		var next atomic.Int64
		var mu sync.Mutex
		lat := make([]time.Duration, 0, n)
		var firstErr error
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < o.Concurrency; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(n) && ctx.Err() == nil {
					t0 := time.Now()
					err := op(ctx)
					d := time.Since(t0)
					mu.Lock()
					if err != nil && firstErr == nil {
						firstErr = err
					}
					lat = append(lat, d)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return float64(n) / time.Since(start).Seconds(), lat, firstErr
	}
	p99 := func(l []time.Duration) float64 {
		if len(l) == 0 {
			return 0
		}
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		return float64(l[min(len(l)-1, len(l)*99/100)].Microseconds()) / 1000
	}
	var err error
	if res.RateBefore, _, err = run(ctx, o.Sample, upload); err != nil {
		return fmt.Errorf("bench metadata: uploads before the load: %w", err)
	}
	loadStart := time.Now()
	batches := (o.Links + 49) / 50
	paths := make([]string, 50)
	for i := range paths {
		paths[i] = fmt.Sprintf("meta-link-%d.bin", i)
	}
	t0 := time.Now()
	var left atomic.Int64
	left.Store(int64(o.Links))
	if _, _, err = run(ctx, batches, func(ctx context.Context) error {
		k := min(50, max(int(left.Add(-50)+50), 0))
		if k == 0 {
			return nil
		}
		_, err := cl.LinkUpload(ctx, paths[:k], 0)
		return err
	}); err != nil {
		return fmt.Errorf("bench metadata: loading links: %w", err)
	}
	res.LinksPerSecond = float64(o.Links) / time.Since(t0).Seconds()
	t0 = time.Now()
	if _, _, err = run(ctx, o.Uploads, upload); err != nil {
		return fmt.Errorf("bench metadata: loading uploads: %w", err)
	}
	res.UploadsPerSecond = float64(o.Uploads) / time.Since(t0).Seconds()
	res.LoadSeconds = time.Since(loadStart).Seconds()
	var steady []time.Duration
	if res.RateAfter, steady, err = run(ctx, o.Sample, upload); err != nil {
		return fmt.Errorf("bench metadata: uploads after the load: %w", err)
	}
	res.P99SteadyMillis = p99(steady)

	// Uploads while a snapshot of the loaded state is taken.
	sctx, stop := context.WithCancel(ctx)
	var during []time.Duration
	var duringErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for sctx.Err() == nil {
			_, l, err := run(sctx, o.Concurrency*4, upload)
			if err != nil && sctx.Err() == nil {
				duringErr = err
				return
			}
			during = append(during, l...)
		}
	}()
	var snap struct {
		Index  uint64  `json:"index"`
		Bytes  int64   `json:"bytes"`
		Millis float64 `json:"millis"`
	}
	serr := cl.doJSON(ctx, &request{method: http.MethodPost, target: cl.Addrs()[0] + "/cluster/snapshot", auth: true}, &snap)
	stop()
	wg.Wait()
	if serr != nil {
		return fmt.Errorf("bench metadata: snapshot: %w", serr)
	}
	if duringErr != nil {
		return fmt.Errorf("bench metadata: uploads during the snapshot: %w", duringErr)
	}
	res.P99DuringMillis = p99(during)
	res.SnapshotBytes, res.SnapshotMillis = snap.Bytes, snap.Millis
	st, err := cl.ClusterStatus(ctx)
	if err != nil {
		return err
	}
	if st.Storage != nil {
		res.Files = st.Storage.Files
	}
	if res.Files > 0 {
		res.SnapshotPerFile = float64(res.SnapshotBytes) / float64(res.Files)
	}
	enc := json.NewEncoder(c.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}
