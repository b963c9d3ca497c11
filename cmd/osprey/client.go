package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/osprey-storage/osprey/client"
	"github.com/osprey-storage/osprey/tlsconf"
)

// clientCommands returns the client subcommands (put, get, link, stat, rm,
// ls, cluster, tasks, bench). Each only parses its flags and calls package
// client, where the behaviour lives.
func clientCommands() []command {
	return []command{
		{name: "put", usage: "FILE...: upload files (dedup, chunked, parallel, resumable)", run: runPut},
		{name: "get", usage: "UID [-o FILE]: download a file (resumes with Range, verifies md5)", run: runGet},
		{name: "link", usage: "UID...: print signed download URLs", run: runLink},
		{name: "stat", usage: "UID: print a file's metadata", run: runStat},
		{name: "rm", usage: "UID...: delete files", run: runRm},
		{name: "ls", usage: "[--limit N] [--all]: list files", run: runLs},
		{name: "cluster", usage: "status|nodes|join|remove|leader-transfer: membership", run: runCluster},
		{name: "tasks", usage: "[list [--state S] | retry ID]: background tasks", run: runTasks},
		{name: "keys", usage: "create [--tenant T] [--read-only] [--prefix P]... | list | revoke ID: scoped API keys", run: runKeys},
		{name: "health", usage: "[--addr URL]: exit 0 if the node is ready (for health checks)", run: runHealth},
		{name: "backup", usage: "-o FILE: save a point-in-time copy of the cluster's metadata", run: runBackup},
		{name: "restore", usage: "FILE: load a metadata backup into the cluster (keeps its members)", run: runRestore},
		{name: "bench-metadata", usage: "[--links N] [--uploads N]: load the metadata store and measure it (see scripts/bench-metadata.sh)", run: runBenchMetadata},
		{name: "bench", usage: "[--addr A,B,C] [--dir D]: measure the cluster against the hardware", run: runBench},
		{name: "bench-compare", usage: "BASE.json [OTHER.json]: print an `osprey bench --json` report as Markdown, or compare two row by row, as ratios", run: runBenchCompare},
		{name: "bench-s3", usage: "--endpoint URL [--compare URL]: measure an S3 API, and another (MinIO) with the same client (see scripts/bench-s3.sh)", run: runBenchS3},
	}
}

// clientFlags are the flags every client subcommand takes.
type clientFlags struct {
	addr       string
	apiKey     string
	apiKeyFile string
	json       bool
	verbose    bool
	tlsCA      string
	tlsCert    string
	tlsKey     string
}

func addClientFlags(fs *flag.FlagSet, withJSON bool) *clientFlags {
	f := &clientFlags{}
	fs.StringVar(&f.addr, "addr", envOr("OSPREY_ADDR", client.DefaultAddr), "node URL, or a comma-separated list (env OSPREY_ADDR)")
	fs.StringVar(&f.apiKey, "api-key", "", "API key (default from env OSPREY_API_KEY)")
	fs.StringVar(&f.apiKeyFile, "api-key-file", "", "read the API key from this file")
	fs.BoolVar(&f.verbose, "verbose", false, "log retries and other details to stderr")
	fs.StringVar(&f.tlsCA, "tls-ca", os.Getenv("OSPREY_TLS_CA"), "CA certificate that signs the nodes' certificates, for https addresses (env OSPREY_TLS_CA; default: system roots)")
	fs.StringVar(&f.tlsCert, "tls-cert", os.Getenv("OSPREY_TLS_CERT"), "client certificate to present over https, with --tls-key (env OSPREY_TLS_CERT)")
	fs.StringVar(&f.tlsKey, "tls-key", os.Getenv("OSPREY_TLS_KEY"), "key of --tls-cert (env OSPREY_TLS_KEY)")
	if withJSON {
		fs.BoolVar(&f.json, "json", false, "print JSON instead of tables")
	}
	return f
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// key resolves the API key: flag, then file, then environment. Keys are
// best kept out of flags (they show in ps), hence the other two.
func (f *clientFlags) key() (string, error) {
	if f.apiKey != "" {
		return f.apiKey, nil
	}
	if f.apiKeyFile != "" {
		b, err := os.ReadFile(f.apiKeyFile)
		if err != nil {
			return "", fmt.Errorf("api key file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return os.Getenv("OSPREY_API_KEY"), nil
}

func (f *clientFlags) logger(stderr io.Writer) *slog.Logger {
	lvl := slog.LevelWarn
	if f.verbose {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
}

// tls is the https configuration the flags ask for; nil (system roots, no
// client certificate) when none is given.
func (f *clientFlags) tls() (*tls.Config, error) {
	if f.tlsCA == "" && f.tlsCert == "" && f.tlsKey == "" {
		return nil, nil
	}
	return tlsconf.ClientFiles(f.tlsCA, f.tlsCert, f.tlsKey)
}

func (f *clientFlags) cli(stdout, stderr io.Writer) (*client.CLI, error) {
	key, err := f.key()
	if err != nil {
		return nil, err
	}
	tc, err := f.tls()
	if err != nil {
		return nil, err
	}
	c, err := client.New(client.Config{Addr: f.addr, APIKey: key, Logger: f.logger(stderr), TLS: tc})
	if err != nil {
		return nil, err
	}
	return &client.CLI{Client: c, Stdout: stdout, Stderr: stderr, JSON: f.json}, nil
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name, args string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: osprey %s %s\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs parses flags anywhere among the arguments (flag stops at the
// first positional one) and returns the positional arguments. "--" ends
// flag parsing.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// sizeFlag is a byte count flag accepting units ("8MiB").
type sizeFlag struct{ v *int64 }

func (s sizeFlag) String() string {
	if s.v == nil {
		return ""
	}
	return client.HumanBytes(*s.v)
}

func (s sizeFlag) Set(v string) error {
	n, err := client.ParseSize(v)
	if err != nil {
		return err
	}
	*s.v = n
	return nil
}

// progressTo returns stderr when a progress bar should be drawn there.
func progressTo(quiet bool, stderr io.Writer) io.Writer {
	if quiet || !client.IsTerminal(stderr) {
		return nil
	}
	return stderr
}

// usageErr prints a usage mistake, then the command's usage, and returns
// an error main does not print again.
func usageErr(fs *flag.FlagSet, format string, args ...any) error {
	err := fmt.Errorf("%w: "+format, append([]any{client.ErrUsage}, args...)...)
	fmt.Fprintf(fs.Output(), "osprey %s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.Usage()
	return printedError{err}
}

func runPut(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("put", "[flags] FILE...", stderr)
	cf := addClientFlags(fs, true)
	opts := client.PutOptions{ChunkSize: client.DefaultChunkSize}
	fs.Var(sizeFlag{&opts.ChunkSize}, "chunk-size", "files larger than this are uploaded in chunks of this size")
	fs.IntVar(&opts.Parallel, "parallel", client.DefaultParallel, "chunks uploaded at once")
	fs.StringVar(&opts.Name, "name", "", "name to store the file under (one FILE only; default its base name)")
	fs.BoolVar(&opts.NoDedup, "no-dedup", false, "skip instant upload (proof of possession of stored content with the same md5, size and SHA-256)")
	fs.BoolVar(&opts.Multipart, "multipart", false, "send single uploads as a multipart form (osproxy style)")
	fs.DurationVar(&opts.Expire, "expire", 0, "upload link lifetime (0 = server default)")
	fs.StringVar(&opts.StateDir, "state-dir", client.DefaultStateDir(), `resume state directory ("-" disables resume)`)
	quiet := fs.Bool("quiet", false, "no progress bar")
	files, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usageErr(fs, "put needs at least one FILE")
	}
	if opts.Name != "" && len(files) > 1 {
		return usageErr(fs, "--name needs exactly one FILE")
	}
	if opts.ChunkSize <= 0 || opts.Parallel <= 0 {
		return usageErr(fs, "--chunk-size and --parallel must be positive")
	}
	c, err := cf.cli(stdout, stderr)
	if err != nil {
		return err
	}
	opts.Progress = progressTo(*quiet, stderr)
	if !*quiet {
		opts.Notices = stderr
	}
	return c.Put(ctx, files, opts)
}

func runGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("get", "[flags] UID [-o FILE]", stderr)
	cf := addClientFlags(fs, true)
	var out string
	fs.StringVar(&out, "o", "", `output file ("-" = stdout; default the stored name)`)
	fs.StringVar(&out, "output", "", "same as -o")
	var opts client.GetOptions
	fs.DurationVar(&opts.Expire, "expire", 0, "download link lifetime (0 = server default)")
	fs.IntVar(&opts.Parallel, "parallel", 1, "concurrent Range requests written at their offsets (files of 32 MiB and more; each chunk checked by its xxhash64 sum, or the md5 when the server sends none; resumable)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr(fs, "get needs exactly one UID")
	}
	c, err := cf.cli(stdout, stderr)
	if err != nil {
		return err
	}
	opts.Progress = progressTo(*quiet, stderr)
	return c.Get(ctx, pos[0], out, opts)
}

func runLink(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("link", "[flags] UID...", stderr)
	cf := addClientFlags(fs, true)
	expire := fs.Duration("expire", 0, "link lifetime (0 = server default)")
	uids, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(uids) == 0 {
		return usageErr(fs, "link needs at least one UID")
	}
	c, err := cf.cli(stdout, stderr)
	if err != nil {
		return err
	}
	return c.Link(ctx, uids, *expire)
}

func runStat(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("stat", "[flags] UID", stderr)
	cf := addClientFlags(fs, true)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr(fs, "stat needs exactly one UID")
	}
	c, err := cf.cli(stdout, stderr)
	if err != nil {
		return err
	}
	return c.Stat(ctx, pos[0])
}

func runRm(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("rm", "[flags] UID...", stderr)
	cf := addClientFlags(fs, false)
	uids, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(uids) == 0 {
		return usageErr(fs, "rm needs at least one UID")
	}
	c, err := cf.cli(stdout, stderr)
	if err != nil {
		return err
	}
	return c.Remove(ctx, uids)
}

func runLs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ls", "[flags]", stderr)
	cf := addClientFlags(fs, true)
	limit := fs.Int("limit", 100, "objects per page")
	all := fs.Bool("all", false, "follow cursors and list everything")
	cursor := fs.String("cursor", "", "start after this cursor (printed by a previous ls)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageErr(fs, "ls takes no arguments")
	}
	c, err := cf.cli(stdout, stderr)
	if err != nil {
		return err
	}
	return c.List(ctx, *cursor, *limit, *all)
}

func runCluster(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const sub = "status|nodes|join|remove|leader-transfer"
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(stderr, "usage: osprey cluster %s [flags]\n", sub)
		if len(args) > 0 && wantsHelp(args[:1]) {
			return flag.ErrHelp
		}
		return printedError{fmt.Errorf("%w: cluster needs a subcommand (%s)", client.ErrUsage, sub)}
	}
	name, args := args[0], args[1:]
	switch name {
	case "status", "nodes":
		fs := newFlagSet("cluster "+name, "[flags]", stderr)
		cf := addClientFlags(fs, true)
		pos, err := parseArgs(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 0 {
			return usageErr(fs, "cluster %s takes no arguments", name)
		}
		c, err := cf.cli(stdout, stderr)
		if err != nil {
			return err
		}
		if name == "status" {
			return c.ClusterStatus(ctx)
		}
		return c.ClusterNodes(ctx)
	case "join":
		fs := newFlagSet("cluster join", "--id ID --raft-addr HOST:PORT --http-addr HOST:PORT [flags]", stderr)
		cf := addClientFlags(fs, false)
		var j client.JoinRequest
		fs.StringVar(&j.ID, "id", "", "node id to add")
		fs.StringVar(&j.RaftAddr, "raft-addr", "", "the node's Raft address")
		fs.StringVar(&j.HTTPAddr, "http-addr", "", "the node's HTTP address")
		tokenFile := fs.String("join-token-file", "", "read the join token from this file (default env OSPREY_JOIN_TOKEN)")
		pos, err := parseArgs(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 0 || j.ID == "" || j.RaftAddr == "" {
			return usageErr(fs, "cluster join needs --id and --raft-addr")
		}
		j.Token = os.Getenv("OSPREY_JOIN_TOKEN")
		if *tokenFile != "" {
			b, err := os.ReadFile(*tokenFile)
			if err != nil {
				return fmt.Errorf("join token file: %w", err)
			}
			j.Token = strings.TrimSpace(string(b))
		}
		c, err := cf.cli(stdout, stderr)
		if err != nil {
			return err
		}
		return c.ClusterJoin(ctx, j)
	case "remove":
		fs := newFlagSet("cluster remove", "[flags] ID", stderr)
		cf := addClientFlags(fs, false)
		pos, err := parseArgs(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usageErr(fs, "cluster remove needs exactly one node ID")
		}
		c, err := cf.cli(stdout, stderr)
		if err != nil {
			return err
		}
		return c.ClusterRemove(ctx, pos[0])
	case "leader-transfer":
		fs := newFlagSet("cluster leader-transfer", "[flags] [ID]", stderr)
		cf := addClientFlags(fs, false)
		pos, err := parseArgs(fs, args)
		if err != nil {
			return err
		}
		if len(pos) > 1 {
			return usageErr(fs, "cluster leader-transfer takes at most one node ID")
		}
		c, err := cf.cli(stdout, stderr)
		if err != nil {
			return err
		}
		var id string
		if len(pos) == 1 {
			id = pos[0]
		}
		return c.LeaderTransfer(ctx, id)
	}
	fmt.Fprintf(stderr, "usage: osprey cluster %s [flags]\n", sub)
	return fmt.Errorf("%w: unknown cluster subcommand %q", client.ErrUsage, name)
}

func runTasks(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	name := "list"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	switch name {
	case "list":
		fs := newFlagSet("tasks list", "[--state S] [flags]", stderr)
		cf := addClientFlags(fs, true)
		state := fs.String("state", "", "only tasks in this state")
		pos, err := parseArgs(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 0 {
			return usageErr(fs, "tasks list takes no arguments")
		}
		c, err := cf.cli(stdout, stderr)
		if err != nil {
			return err
		}
		return c.Tasks(ctx, *state)
	case "retry":
		fs := newFlagSet("tasks retry", "[flags] ID", stderr)
		cf := addClientFlags(fs, false)
		pos, err := parseArgs(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usageErr(fs, "tasks retry needs exactly one task ID")
		}
		c, err := cf.cli(stdout, stderr)
		if err != nil {
			return err
		}
		return c.RetryTask(ctx, pos[0])
	}
	fmt.Fprintln(stderr, "usage: osprey tasks [list [--state S] | retry ID]")
	return fmt.Errorf("%w: unknown tasks subcommand %q", client.ErrUsage, name)
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", "[flags]", stderr)
	cf := addClientFlags(fs, true)
	cfg := client.DefaultBenchConfig()
	fs.StringVar(&cfg.Dir, "dir", "", "scratch directory on the disk being measured (default a temp dir)")
	fs.Var(sizeFlag{&cfg.Size}, "size", "large file size")
	fs.Var(sizeFlag{&cfg.Chunk}, "chunk", "chunk size of the large upload")
	fs.IntVar(&cfg.Parallel, "parallel", cfg.Parallel, "chunks uploaded at once")
	fs.IntVar(&cfg.SmallN, "small-n", cfg.SmallN, "max 4 KiB uploads per concurrency level")
	fs.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "callers for the concurrent rates")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "time limit of each rate measurement")
	fs.BoolVar(&cfg.NoDropCaches, "no-drop-caches", false, "do not drop the page cache before the disk read test")
	quiet := fs.Bool("quiet", false, "no stage messages on stderr")
	only := fs.String("only", "", "run only these comma-separated step groups: "+strings.Join(client.BenchGroups, ", ")+" (default all)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageErr(fs, "bench takes no arguments")
	}
	for _, g := range strings.Split(*only, ",") {
		if g = strings.TrimSpace(g); g != "" {
			cfg.Only = append(cfg.Only, g)
		}
	}
	key, err := cf.key()
	if err != nil {
		return err
	}
	cfg.Addr, cfg.APIKey, cfg.Logger = cf.addr, key, cf.logger(stderr)
	if cfg.TLS, err = cf.tls(); err != nil {
		return err
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	start := time.Now()
	rep, err := client.RunBench(ctx, cfg)
	if rep != nil && len(rep.Results) > 0 {
		var perr error
		if cf.json {
			perr = rep.JSON(stdout)
		} else {
			perr = rep.Markdown(stdout)
		}
		err = errors.Join(err, perr)
	}
	if !*quiet {
		fmt.Fprintf(stderr, "bench: done in %s\n", time.Since(start).Round(time.Second))
	}
	return err
}

// runBenchS3 measures osprey's S3 API and, with --compare, another S3
// server (MinIO) with the same client and workload.
func runBenchCompare(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench-compare", "BASE.json [OTHER.json] [flags]", stderr)
	baseName := fs.String("base-name", "base", "column label of the first report")
	otherName := fs.String("other-name", "other", "column label of the second report")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 && len(pos) != 2 {
		return usageErr(fs, "bench-compare takes one or two reports written by osprey bench --json")
	}
	base, err := client.ReadBenchReport(pos[0])
	if err != nil {
		return err
	}
	if len(pos) == 1 {
		return base.Markdown(stdout)
	}
	other, err := client.ReadBenchReport(pos[1])
	if err != nil {
		return err
	}
	return client.CompareMarkdown(stdout, *baseName, base, *otherName, other)
}

func runBenchS3(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench-s3", "--endpoint URL [--compare URL] [flags]", stderr)
	cfg := client.DefaultS3BenchConfig()
	var osp, cmp client.S3BenchTarget
	fs.StringVar(&osp.Endpoint, "endpoint", "", "osprey's S3 API, e.g. http://127.0.0.1:9000")
	fs.StringVar(&osp.AccessKey, "access-key", os.Getenv("OSPREY_S3API_ACCESS_KEY"), "access key (default $OSPREY_S3API_ACCESS_KEY)")
	fs.StringVar(&osp.SecretKey, "secret-key", os.Getenv("OSPREY_S3API_SECRET_KEY"), "secret key (default $OSPREY_S3API_SECRET_KEY)")
	fs.StringVar(&cmp.Name, "compare-name", "minio", "label of the compared server")
	fs.StringVar(&cmp.Endpoint, "compare", "", "another S3 server to measure the same way, e.g. MinIO")
	fs.StringVar(&cmp.AccessKey, "compare-access-key", os.Getenv("MINIO_ROOT_USER"), "its access key (default $MINIO_ROOT_USER)")
	fs.StringVar(&cmp.SecretKey, "compare-secret-key", os.Getenv("MINIO_ROOT_PASSWORD"), "its secret key (default $MINIO_ROOT_PASSWORD)")
	fs.Var(sizeFlag{&cfg.Size}, "size", "large object size")
	fs.Var(sizeFlag{&cfg.PartSize}, "part-size", "multipart part size of the large upload")
	fs.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "concurrent 4 KiB PUTs")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "time limit of the 4 KiB PUT measurement")
	settle := fs.String("settle", "", "the osprey node's HTTP URL: before measuring each server, wait until that node's background work (tiering, gc) finished (read from its /metrics, with $OSPREY_API_KEY if set)")
	settleTimeout := fs.Duration("settle-timeout", 3*time.Minute, "how long --settle waits at most before measuring anyway (said in the report)")
	quiet := fs.Bool("quiet", false, "no stage messages on stderr")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || osp.Endpoint == "" {
		return usageErr(fs, "bench-s3 needs --endpoint and takes no arguments")
	}
	if *settle != "" {
		if *settleTimeout <= 0 {
			return usageErr(fs, "--settle-timeout must be positive")
		}
		// OSPREY_API_KEY: the node may answer /metrics only with a key
		// (--metrics-require-key).
		cl, err := client.New(client.Config{Addr: *settle, APIKey: os.Getenv("OSPREY_API_KEY")})
		if err != nil {
			return usageErr(fs, "--settle: %v", err)
		}
		cfg.Settle = func(ctx context.Context) (time.Duration, error) {
			ctx, cancel := context.WithTimeout(ctx, *settleTimeout)
			defer cancel()
			return cl.WaitIdle(ctx, "", 250*time.Millisecond) // "": the --settle node
		}
	}
	osp.Name = "osprey"
	cfg.Targets = []client.S3BenchTarget{osp}
	if cmp.Endpoint != "" {
		cfg.Targets = append(cfg.Targets, cmp)
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	rep, err := client.RunS3Bench(ctx, cfg)
	if err != nil {
		return err
	}
	return rep.Markdown(stdout)
}

// stringsFlag collects a flag given several times.
type stringsFlag struct{ v *[]string }

func (s stringsFlag) String() string {
	if s.v == nil {
		return ""
	}
	return strings.Join(*s.v, ",")
}

func (s stringsFlag) Set(v string) error {
	*s.v = append(*s.v, v)
	return nil
}

func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const sub = "create|list|revoke"
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(stderr, "usage: osprey keys %s [flags]\n"+
			"Scoped API keys (tenants), managed with an admin key (--api-keys of the servers):\n"+
			"  create  [--tenant T] [--read-only] [--prefix P]... [--description D]: print a new key once\n"+
			"  list    the keys, revoked ones included (never their secrets)\n"+
			"  revoke  ID: every node refuses the key once the revocation is applied\n", sub)
		if len(args) > 0 && wantsHelp(args[:1]) {
			return flag.ErrHelp
		}
		return printedError{fmt.Errorf("%w: keys needs a subcommand (%s)", client.ErrUsage, sub)}
	}
	name, args := args[0], args[1:]
	switch name {
	case "create":
		fs := newFlagSet("keys create", "[--tenant T] [--read-only] [--prefix P]... [--description D] [flags]", stderr)
		cf := addClientFlags(fs, true)
		var req client.KeyRequest
		fs.StringVar(&req.Tenant, "tenant", "", "tenant the key's files belong to (default: the key's id); keys of one tenant see each other's files")
		fs.BoolVar(&req.ReadOnly, "read-only", false, "the key may read and list but never create, change or delete")
		fs.Var(stringsFlag{&req.Prefixes}, "prefix", "limit the key to names starting with this (repeatable)")
		fs.StringVar(&req.Description, "description", "", "free text shown by keys list")
		pos, err := parseArgs(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 0 {
			return usageErr(fs, "keys create takes no arguments")
		}
		c, err := cf.cli(stdout, stderr)
		if err != nil {
			return err
		}
		return c.KeysCreate(ctx, req)
	case "list":
		fs := newFlagSet("keys list", "[flags]", stderr)
		cf := addClientFlags(fs, true)
		pos, err := parseArgs(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 0 {
			return usageErr(fs, "keys list takes no arguments")
		}
		c, err := cf.cli(stdout, stderr)
		if err != nil {
			return err
		}
		return c.KeysList(ctx)
	case "revoke":
		fs := newFlagSet("keys revoke", "[flags] ID", stderr)
		cf := addClientFlags(fs, true)
		pos, err := parseArgs(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usageErr(fs, "keys revoke needs exactly one key ID")
		}
		c, err := cf.cli(stdout, stderr)
		if err != nil {
			return err
		}
		return c.KeysRevoke(ctx, pos[0])
	}
	fmt.Fprintf(stderr, "osprey keys: unknown subcommand %q\nusage: osprey keys %s [flags]\n", name, sub)
	return printedError{fmt.Errorf("%w: unknown keys subcommand %q", client.ErrUsage, name)}
}
