package jepsen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/osprey-storage/osprey/tlsconf"
)

// Config is one harness run.
type Config struct {
	Binary      string        // osprey binary (required)
	MinIOBinary string        // minio binary, for --backend s3
	Nodes       int           // cluster size (3 or 5)
	Duration    time.Duration // workload length
	Faults      []FaultKind   // nemeses to schedule
	Seed        int64         // schedule and workload seed
	Backend     string        // "local" or "s3"
	Out         string        // run directory (created)
	Processes   int           // client processes (default 2 per node)
	Quiet       time.Duration // quiet period after healing (default 5s)
	Scenario    string        // scenario name, for the report
	Steps       []Step        // explicit schedule, replacing the generated one
	Mix         Mix           // workload mix (zero = DefaultMix)
	Local       bool          // force 127.0.0.1 processes even as root
	KeepData    bool          // keep data directories even when the run passes
	Command     string        // how to replay this run, for the report
	ServerFlags []string      // extra flags for every osprey server (e.g. --redundancy ec:2+1)
	TLS         bool          // a CA and per-node certificates in Out/tls; nodes serve HTTPS, mutual TLS between them
	Log         io.Writer     // progress output (default os.Stderr)
}

// Validate checks the config.
func (c *Config) Validate() error {
	switch {
	case c.Binary == "":
		return errors.New("jepsen: no osprey binary")
	case c.Nodes < 1:
		return errors.New("jepsen: need at least one node")
	case c.Duration <= 0:
		return errors.New("jepsen: duration must be positive")
	case c.Backend != "local" && c.Backend != "s3":
		return fmt.Errorf("jepsen: backend %q (want local or s3)", c.Backend)
	case c.Backend == "s3" && c.MinIOBinary == "":
		return errors.New("jepsen: --backend s3 needs a minio binary")
	case c.Out == "":
		return errors.New("jepsen: no output directory")
	}
	return nil
}

// ErrInterrupted is returned when the run was cancelled before checking.
var ErrInterrupted = errors.New("jepsen: interrupted")

// Run executes one run: cluster up, workload and nemeses for Duration,
// heal, quiet period, final reads, checks, report. It always tears down
// what it started. The report is returned even when an invariant broke;
// err is for harness failures (the cluster never formed, interrupted).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Log == nil {
		cfg.Log = os.Stderr
	}
	if cfg.Quiet == 0 {
		cfg.Quiet = 5 * time.Second
	}
	if cfg.Mix == (Mix{}) {
		cfg.Mix = DefaultMix()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	began := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(cfg.Log, "jepsen: "+format+"\n", args...)
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, fmt.Errorf("jepsen: %w", err)
	}
	rep := &Report{Seed: cfg.Seed, Scenario: cfg.Scenario, Nodes: cfg.Nodes, Duration: cfg.Duration,
		Backend: cfg.Backend, Command: cfg.Command}
	logf("seed %d (replay: %s)", cfg.Seed, cfg.Command)
	_ = os.WriteFile(filepath.Join(cfg.Out, "seed"), []byte(fmt.Sprintf("%d\n", cfg.Seed)), 0o644)

	faults := cfg.Faults
	var netw *Network
	if ok, why := NetworkAvailable(); ok && !cfg.Local {
		if removed, err := CleanLeftovers(ctx); err != nil {
			logf("cleaning leftovers: %v", err)
		} else if len(removed) > 0 {
			logf("removed leftovers of crashed runs: %s", strings.Join(removed, ", "))
		}
		members := []string{}
		for i := 1; i <= cfg.Nodes; i++ {
			members = append(members, fmt.Sprintf("n%d", i))
		}
		members = append(members, "client")
		if cfg.Backend == "s3" {
			members = append(members, "minio")
		}
		var err error
		netw, err = NewNetwork(ctx, members)
		if err != nil {
			return nil, err
		}
		defer func() {
			if err := netw.Close(); err != nil {
				logf("network teardown: %v", err)
			}
		}()
		rep.Network = fmt.Sprintf("namespaces %s-* on bridge %s, subnet %s; clients in their own namespace", netw.prefix, netw.bridge, netw.Subnet())
	} else {
		if why == "" {
			why = "--local given"
		}
		var kept []FaultKind
		var skipped []string
		for _, k := range faults {
			if k.IsPartition() {
				skipped = append(skipped, string(k))
				continue
			}
			kept = append(kept, k)
		}
		faults = kept
		rep.Network = "processes on 127.0.0.1 (" + why + ")"
		if len(skipped) > 0 {
			msg := fmt.Sprintf("network faults skipped (%s): %s", why, strings.Join(skipped, ","))
			rep.Notes = append(rep.Notes, msg)
			logf("%s", msg)
		}
	}
	if cfg.Backend != "s3" {
		var kept []FaultKind
		for _, k := range faults {
			if k == FaultBackend {
				rep.Notes = append(rep.Notes, "backend outage skipped: it needs --backend s3")
				continue
			}
			kept = append(kept, k)
		}
		faults = kept
	}
	rep.Nemeses = faults
	logf("network: %s", rep.Network)

	api := NewAPI(nil, randomHex(16))
	if netw != nil {
		api = NewAPI(netw.DialContext("client"), randomHex(16))
	}
	defer api.Close()
	var ca *tlsconf.CA
	if cfg.TLS {
		var err error
		if ca, err = tlsconf.NewCA("osprey jepsen CA"); err != nil {
			return nil, fmt.Errorf("jepsen: tls: %w", err)
		}
		if err := api.TrustCA(ca.CertPEM()); err != nil {
			return nil, err
		}
		rep.Notes = append(rep.Notes, "TLS: nodes serve HTTPS with certificates of a CA made for this run; raft and node-to-node calls use mutual TLS")
	}
	cluster, err := NewCluster(ClusterConfig{
		Binary: cfg.Binary, Dir: cfg.Out, Nodes: cfg.Nodes, APIKey: api.key, JoinToken: randomHex(16),
		Net: netw, Backend: cfg.Backend, S3: S3Config{AccessKey: "jepsen" + randomHex(4), SecretKey: randomHex(16)},
		ExtraArgs: cfg.ServerFlags, CA: ca,
	}, api)
	if err != nil {
		return nil, err
	}
	defer cluster.Stop(3 * time.Second)
	if cfg.Backend == "s3" {
		if err := cluster.StartMinIO(ctx, cfg.MinIOBinary); err != nil {
			return nil, err
		}
		rep.extraLanes = append(rep.extraLanes, "minio")
		logf("minio ready at %s", cluster.S3().Endpoint)
	}
	var nodeNames []string
	for _, n := range cluster.Nodes {
		nodeNames = append(nodeNames, n.ID+"="+n.HTTP)
	}
	logf("starting %d nodes: %s", cfg.Nodes, strings.Join(nodeNames, " "))
	t0 := time.Now()
	if err := cluster.Start(ctx, 90*time.Second); err != nil {
		return nil, fmt.Errorf("jepsen: cluster did not form (logs in %s): %w", filepath.Join(cfg.Out, "logs"), err)
	}
	logf("cluster formed in %s", time.Since(t0).Round(10*time.Millisecond))

	sched := Schedule{Seed: cfg.Seed, Steps: cfg.Steps}
	if cfg.Steps == nil {
		sched = NewSchedule(ScheduleConfig{Seed: cfg.Seed, Nodes: cfg.Nodes, Kinds: faults, Duration: cfg.Duration})
	}
	rep.Schedule = sched
	writeJSON(filepath.Join(cfg.Out, "schedule.json"), sched)
	for _, s := range sched.Steps {
		var fs []string
		for _, f := range s.Faults {
			fs = append(fs, f.String())
		}
		logf("schedule: %5.1fs +%4.1fs %s", s.At.Seconds(), s.For.Seconds(), strings.Join(fs, " + "))
	}

	rec, err := NewRecorder(filepath.Join(cfg.Out, "history.jsonl"))
	if err != nil {
		return nil, err
	}
	defer rec.Close()
	wl := NewWorkload(WorkloadConfig{Seed: cfg.Seed, Processes: cfg.Processes, Mix: cfg.Mix}, api, rec, cluster.Nodes)
	rep.Processes = wl.cfg.Processes
	nem := NewNemesis(cluster, netw, api, rec, cfg.Log)
	nem.Probe = wl.Probe

	logf("workload: %d client processes for %s", wl.cfg.Processes, cfg.Duration)
	wctx, wcancel := context.WithTimeout(ctx, cfg.Duration)
	mctx, mcancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); wl.Run(wctx, ctx) }()
	go func() { defer wg.Done(); nem.Run(wctx, sched) }()
	go func() { defer wg.Done(); nem.MonitorTasks(mctx, 2*time.Second, 10*time.Second) }()
	go progress(wctx, rec, cfg.Log)
	<-wctx.Done()
	wcancel()
	mcancel()
	wg.Wait()
	if ctx.Err() != nil {
		nem.HealAll(context.Background())
		return rep, ErrInterrupted
	}

	logf("workload over; healing everything")
	hctx, hcancel := context.WithTimeout(ctx, 120*time.Second)
	defer hcancel()
	problems := nem.HealAll(hctx)
	if err := cluster.WaitHealthy(hctx, 90*time.Second); err != nil {
		problems = append(problems, err.Error())
	}
	logf("quiet period %s", cfg.Quiet)
	sleepUntil(ctx, time.Now().Add(cfg.Quiet))

	logf("final reads of %d files", len(wl.Files()))
	fctx, fcancel := context.WithTimeout(ctx, 120*time.Second)
	wl.Final(fctx, 4)
	fcancel()
	if ctx.Err() != nil {
		return rep, ErrInterrupted
	}

	in := CheckInput{Pool: wl.PoolMD5s(), ClusterProblems: problems,
		LinVisualization: filepath.Join(cfg.Out, "linearizability.html"), LinTimeout: 60 * time.Second}
	in.Hashes, in.HashErr = collectHashes(ctx, api, cluster)
	in.Objects, in.ObjectsErr = listObjects(ctx, api, cluster)
	in.TaskProblems, in.TasksErr = nem.TaskFindings()
	in.Rotted, in.RotProblems = nem.RotFindings()
	rep.TaskStates, err = taskStates(ctx, api, cluster)
	if err != nil && in.TasksErr == "" {
		in.TasksErr = err.Error()
	}
	if err := rec.Close(); err != nil {
		logf("history: %v", err)
	}
	in.History = rec.Ops()
	rep.Faults = nem.Records()
	in.Faults = rep.Faults
	logf("checking %d ops", len(in.History))
	rep.Check = Check(in)
	rep.CountOps(in.History)
	rep.Elapsed = time.Since(began)
	cluster.Stop(3 * time.Second)
	var logs []string
	for _, n := range cluster.Nodes {
		logs = append(logs, n.Proc.LogPath)
	}
	raftEvs := readRaftEvents(logs, rec.Start())
	rep.Scrub = readScrubActivity(logs)
	// For failover, a removed member is down until it has joined again.
	quorumFaults := memberRejoined(rep.Faults, raftEvs)
	rep.Failover = Failover(in.History, quorumFaults, cfg.Nodes)
	rep.Breakdown = FailoverBreakdown(in.History, quorumFaults, cfg.Nodes, raftEvs)
	rep.OtherElections = OtherElections(raftEvs, rep.Breakdown)
	writeReport(cfg.Out, rep, in.History)
	if rep.Check.OK && !cfg.KeepData {
		_ = os.RemoveAll(filepath.Join(cfg.Out, "data"))
	}
	return rep, nil
}

func writeReport(dir string, rep *Report, h []Op) {
	if f, err := os.Create(filepath.Join(dir, "summary.txt")); err == nil {
		rep.WriteText(f)
		f.Close()
	}
	writeJSON(filepath.Join(dir, "summary.json"), rep)
	if f, err := os.Create(filepath.Join(dir, "report.html")); err == nil {
		_ = rep.WriteHTML(f, h)
		f.Close()
	}
}

func writeJSON(path string, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err == nil {
		_ = os.WriteFile(path, append(b, '\n'), 0o644)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func progress(ctx context.Context, rec *Recorder, w io.Writer) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			counts := map[Outcome]int{}
			for _, op := range rec.Ops() {
				if op.Type != OpNemesis {
					counts[op.Outcome]++
				}
			}
			fmt.Fprintf(w, "%7.1fs progress: ok=%d fail=%d info=%d\n", rec.Since().Seconds(), counts[OK], counts[Fail], counts[Info])
		}
	}
}

// collectHashes polls every node until all report the same applied index
// (background tasks may still be committing), then returns their hashes.
// Two observations of equal indexes with different hashes are a
// divergence; never converging within the deadline is reported as such.
func collectHashes(ctx context.Context, api *API, c *Cluster) ([]NodeHash, string) {
	deadline := time.Now().Add(45 * time.Second)
	var last []NodeHash
	lastErr := ""
	mismatches := 0
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var hs []NodeHash
		lastErr = ""
		for _, n := range c.Nodes {
			sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			st, err := api.Status(sctx, n.Base())
			cancel()
			if err != nil {
				lastErr = fmt.Sprintf("%s: %v", n.ID, err)
				break
			}
			idx := st.AppliedIndex
			if st.FSMIndex != 0 {
				idx = st.FSMIndex // the index the hash describes
			}
			hs = append(hs, NodeHash{Node: n.ID, Applied: idx, Hash: st.FSMHash})
		}
		if lastErr == "" {
			last = hs
			same := true
			for _, h := range hs {
				same = same && h.Applied == hs[0].Applied
			}
			if same {
				hashSame := true
				for _, h := range hs {
					hashSame = hashSame && h.Hash == hs[0].Hash
				}
				if hashSame {
					return hs, ""
				}
				mismatches++
				if mismatches >= 2 {
					return hs, ""
				}
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	if lastErr != "" {
		return last, "could not read every node's status: " + lastErr
	}
	var parts []string
	for _, h := range last {
		parts = append(parts, fmt.Sprintf("%s@%d", h.Node, h.Applied))
	}
	return last, "applied indexes never converged: " + strings.Join(parts, " ")
}

func listObjects(ctx context.Context, api *API, c *Cluster) ([]ObjectName, string) {
	var all []ObjectName
	cursor := ""
	seen := map[string]bool{}
	for page := 0; page < 10000; page++ {
		var items []ObjectName
		var next string
		var err error
		for _, n := range c.Nodes {
			lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			items, next, err = api.Objects(lctx, n.Base(), cursor, 500)
			cancel()
			if err == nil {
				break
			}
			var se *StatusError
			if errors.As(err, &se) && (se.Status == http.StatusNotFound || se.Status == http.StatusMethodNotAllowed) {
				return nil, fmt.Sprintf("GET /objects answered %d", se.Status)
			}
		}
		if err != nil {
			return nil, err.Error()
		}
		for _, it := range items {
			if !seen[it.UID] {
				seen[it.UID] = true
				all = append(all, it)
			}
		}
		if next == "" || next == cursor || len(items) == 0 {
			break
		}
		cursor = next
	}
	sort.Slice(all, func(i, j int) bool { return all[i].UID < all[j].UID })
	return all, ""
}

func taskStates(ctx context.Context, api *API, c *Cluster) (map[string]int, error) {
	var lastErr error
	for _, n := range c.Nodes {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ts, err := api.Tasks(tctx, n.Base())
		cancel()
		if err == nil {
			m := map[string]int{}
			for _, t := range ts {
				m[t.Type+":"+t.State]++
			}
			return m, nil
		}
		var se *StatusError
		if errors.As(err, &se) && (se.Status == http.StatusNotFound || se.Status == http.StatusMethodNotAllowed) {
			return nil, fmt.Errorf("GET /tasks answered %d: the server has no task listing yet, so stuck tasks were not checked", se.Status)
		}
		lastErr = err
	}
	return nil, lastErr
}
