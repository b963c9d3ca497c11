// Command jepsen runs the osprey chaos harness: real osprey processes, real
// network faults, a workload, seeded nemeses, a checker and a report.
// Usually started through scripts/jepsen.sh, which builds osprey first.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/osprey-storage/osprey/jepsen"
)

// Exit codes: 0 all invariants held, 1 an invariant broke, 2 the harness
// could not run (bad flags, cluster never formed), 130 interrupted.
const (
	exitBroken      = 1
	exitHarness     = 2
	exitInterrupted = 130
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// A second signal exits at once; the next run removes leftovers.
		<-ctx.Done()
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
		<-ch
		fmt.Fprintln(os.Stderr, "jepsen: second signal, exiting without cleanup")
		os.Exit(exitInterrupted)
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("jepsen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		binary    = fs.String("binary", os.Getenv("OSPREY_BINARY"), "osprey binary (env OSPREY_BINARY)")
		minio     = fs.String("minio", envOr("OSPREY_MINIO", "/root/.cache/osprey-bin/minio"), "minio binary for --backend s3 (env OSPREY_MINIO)")
		nodes     = fs.Int("nodes", 3, "cluster size: 3 or 5")
		dur       = fs.Duration("time", 2*time.Minute, "workload duration")
		nemesis   = fs.String("nemesis", "all", "nemeses: all, none, or a comma list of "+kinds())
		seed      = fs.Int64("seed", 0, "seed for the schedule and workload (0 = random, printed)")
		backend   = fs.String("backend", "local", "storage backend: local or s3")
		out       = fs.String("out", "", "output directory (default $TMPDIR/osprey-jepsen/<time>-seed<N>)")
		procs     = fs.Int("processes", 0, "client processes (default 2 per node)")
		quiet     = fs.Duration("quiet", 5*time.Second, "quiet period after healing, before the final reads")
		scenario  = fs.String("scenario", "", "replay a named regression scenario (see --list)")
		list      = fs.Bool("list", false, "list scenarios and exit")
		local     = fs.Bool("local", false, "run processes on 127.0.0.1 even as root (no network faults)")
		keep      = fs.Bool("keep", false, "keep data directories even when the run passes")
		withTLS   = fs.Bool("tls", false, "run the nodes with TLS: a CA and per-node certificates made in the run directory, HTTPS for clients, mutual TLS between nodes")
		srvFlags  = fs.String("server-flags", "", "extra flags for every osprey server, space separated (e.g. \"--redundancy ec:2+1\")")
		checkOnly = fs.String("check", "", "re-check a history.jsonl offline (linearizability and history-only invariants) and exit")
	)
	if err := fs.Parse(args); err != nil {
		return exitHarness
	}
	if *list {
		for _, s := range jepsen.Scenarios {
			fmt.Fprintf(stdout, "%-26s seed=%-5d nodes=%d time=%-5s nemesis=%s%s\n    %s\n", s.Name, s.Seed, s.Nodes, s.Duration,
				joinKinds(s.Faults), map[bool]string{true: " backend=" + s.Backend}[s.Backend != ""], s.Description)
		}
		return 0
	}
	if *checkOnly != "" {
		return recheck(*checkOnly, stdout, stderr)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	cfg := jepsen.Config{Binary: *binary, MinIOBinary: *minio, Nodes: *nodes, Duration: *dur, Seed: *seed,
		Backend: *backend, Processes: *procs, Quiet: *quiet, Local: *local, KeepData: *keep, TLS: *withTLS}
	var err error
	if cfg.Faults, err = jepsen.ParseFaults(*nemesis); err != nil {
		fmt.Fprintln(stderr, err)
		return exitHarness
	}
	if *scenario != "" {
		sc, err := jepsen.FindScenario(*scenario)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitHarness
		}
		// The scenario fixes seed and nemeses; explicit flags still win
		// for size, time and backend so a scenario can be shortened.
		cfg.Scenario, cfg.Seed, cfg.Faults, cfg.Steps = sc.Name, sc.Seed, sc.Faults, sc.Steps
		if !set["nodes"] && sc.Nodes > 0 {
			cfg.Nodes = sc.Nodes
		}
		if !set["time"] && sc.Duration > 0 {
			cfg.Duration = sc.Duration
		}
		if !set["backend"] && sc.Backend != "" {
			cfg.Backend = sc.Backend
		}
		if sc.Mix != nil {
			cfg.Mix = *sc.Mix
		}
		if !set["server-flags"] {
			cfg.ServerFlags = sc.ServerFlags
		}
	}
	if *srvFlags != "" {
		cfg.ServerFlags = strings.Fields(*srvFlags)
	}
	if cfg.Seed == 0 {
		cfg.Seed = time.Now().UnixNano() % 1_000_000_000
	}
	if cfg.Nodes != 3 && cfg.Nodes != 5 {
		fmt.Fprintf(stderr, "jepsen: --nodes %d: use 3 or 5\n", cfg.Nodes)
		return exitHarness
	}
	if *out == "" {
		*out = filepath.Join(os.TempDir(), "osprey-jepsen", fmt.Sprintf("%s-seed%d", time.Now().Format("20060102-150405"), cfg.Seed))
	}
	cfg.Out, _ = filepath.Abs(*out)
	cfg.Command = replay(cfg, *scenario)
	cfg.Log = stderr
	rep, err := jepsen.Run(ctx, cfg)
	if errors.Is(err, jepsen.ErrInterrupted) {
		fmt.Fprintf(stderr, "jepsen: interrupted; history and logs kept in %s\n", cfg.Out)
		return exitInterrupted
	}
	if err != nil {
		fmt.Fprintf(stderr, "%v\njepsen: seed %d; logs kept in %s\n", err, cfg.Seed, cfg.Out)
		return exitHarness
	}
	rep.WriteText(stdout)
	fmt.Fprintf(stdout, "\nreport: %s\n", filepath.Join(cfg.Out, "report.html"))
	if !rep.Check.OK {
		fmt.Fprintf(stdout, "seed %d; history, node logs and data dirs kept in %s\n", cfg.Seed, cfg.Out)
		return exitBroken
	}
	return 0
}

func recheck(path string, stdout, stderr io.Writer) int {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitHarness
	}
	defer f.Close()
	h, err := jepsen.ReadHistory(f)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitHarness
	}
	pool := map[string]bool{}
	if seed, err := os.ReadFile(filepath.Join(filepath.Dir(path), "seed")); err == nil {
		var s int64
		fmt.Sscan(string(seed), &s)
		for _, c := range jepsen.ContentPool(s) {
			pool[c.MD5()] = true
		}
	}
	// The run's fault records (summary.json beside the history) let the
	// checker tell a double fault from a bad move; without them every
	// refused probe read counts.
	var summary struct {
		Faults []jepsen.FaultRecord `json:"faults"`
	}
	if b, err := os.ReadFile(filepath.Join(filepath.Dir(path), "summary.json")); err == nil {
		if err := json.Unmarshal(b, &summary); err != nil {
			fmt.Fprintf(stderr, "summary.json: %v (fault records ignored)\n", err)
		}
	}
	res := jepsen.Check(jepsen.CheckInput{History: h, Pool: pool, HashErr: "", ObjectsErr: "offline re-check",
		TasksErr: "offline re-check", LinVisualization: filepath.Join(filepath.Dir(path), "linearizability.html"),
		Faults: summary.Faults})
	ok := true
	for _, inv := range res.Invariants {
		if inv.Name == "fsm-converged" {
			continue // needs the live cluster
		}
		fmt.Fprintf(stdout, "%-28s %-8s %s\n", inv.Name, strings.ToUpper(string(inv.Verdict)), inv.Detail)
		for _, e := range inv.Examples {
			fmt.Fprintf(stdout, "    - %s\n", e)
		}
		ok = ok && inv.Verdict != jepsen.Broken
	}
	if !ok {
		return exitBroken
	}
	return 0
}

func replay(cfg jepsen.Config, scenario string) string {
	tls := ""
	if cfg.TLS {
		tls = " --tls"
	}
	if scenario != "" {
		return fmt.Sprintf("scripts/jepsen.sh --scenario %s --nodes %d --time %s --backend %s%s", scenario, cfg.Nodes, cfg.Duration, cfg.Backend, tls)
	}
	return fmt.Sprintf("scripts/jepsen.sh --nodes %d --time %s --nemesis %s --seed %d --backend %s%s",
		cfg.Nodes, cfg.Duration, joinKinds(cfg.Faults), cfg.Seed, cfg.Backend, tls)
}

func joinKinds(ks []jepsen.FaultKind) string {
	if len(ks) == 0 {
		return "none"
	}
	var s []string
	for _, k := range ks {
		s = append(s, string(k))
	}
	return strings.Join(s, ",")
}

func kinds() string { return joinKinds(jepsen.AllFaults) }

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
