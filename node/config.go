package node

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/osprey-storage/osprey/erasure"
	"github.com/osprey-storage/osprey/httpapi"
	"github.com/osprey-storage/osprey/raftstore"
	"github.com/osprey-storage/osprey/tlsconf"
)

// Config configures a Node. cmd/osprey fills it from flags, YAML and the
// environment; tests fill it directly.
type Config struct {
	// Build describes the running binary, for /cluster/status and the
	// osprey_build_info metric.
	Build BuildInfo
	// NodeID is this node's id. Empty means: the id persisted in DataDir,
	// or a new generated one on first start.
	NodeID string
	// DataDir holds all of the node's state.
	DataDir string
	// HTTPAddr is the HTTP listen address ("127.0.0.1:0" picks a port).
	HTTPAddr string
	// RaftAddr is the raft transport's listen address.
	RaftAddr string
	// AdvertiseHTTP and AdvertiseRaft are the addresses other nodes use;
	// they default to the bound addresses.
	AdvertiseHTTP string
	AdvertiseRaft string
	// Bootstrap forms a new single-node cluster on first start (unless a
	// peer in Join already belongs to a cluster).
	Bootstrap bool
	// BootstrapExpect forms a cluster once this many nodes, found through
	// Join, are up. All of them use the same Join list.
	BootstrapExpect int
	// Join lists HTTP addresses of existing members (or, with
	// BootstrapExpect, of all the expected peers).
	Join []string
	// JoinToken authorises joining. A bootstrapping node without one
	// generates one and writes it to DataDir/join-token.
	JoinToken string
	// APIKeys authorise business endpoints; none means protected mode.
	APIKeys []string
	// Raft tunes the raft store (Dir, ID, addresses and FSM are set by New).
	Raft raftstore.Config
	// Limits bounds requests and links.
	Limits httpapi.Limits
	// S3 configures the S3 API listener; an empty Addr turns it off.
	S3 S3Config
	// MetricsRequireKey makes /metrics need an API key (or loopback in
	// protected mode).
	MetricsRequireKey bool
	// NoResumeMD5 makes /resume answer uid "" for every item: md5-only
	// dedup gives stored content to whoever knows its md5
	// (--dedup-resume-md5=false). Proof of possession (/dedup/*) is
	// unaffected.
	NoResumeMD5 bool
	// Replicas is the number of nodes each staged chunk is stored on
	// (capped by the number of members).
	Replicas int
	// EC, when K > 0, erasure-codes staged chunks into K data and M parity
	// shards on K+M distinct members instead of replicating them.
	EC erasure.Policy
	// RepairGrace is how long a member may stay unreachable before the
	// leader marks it down and its copies are rebuilt elsewhere (0 = only
	// on removal).
	RepairGrace time.Duration
	// ScrubRate is how many staged bytes per second the scrubber verifies
	// (0 turns it off); ScrubPause separates full passes.
	ScrubRate  int64
	ScrubPause time.Duration
	// UncheckedReads serves this node's local-disk object copies without
	// checking each chunk against its sum as it is read (a filesystem
	// that checks its own blocks, such as ZFS or btrfs, makes the check
	// redundant); the scrubber still checks them at ScrubRate.
	UncheckedReads bool
	// OrphanGrace is how long a staged copy no record names this node the
	// holder of must stay so, across scrub passes, before the scrubber
	// deletes it (0 keeps orphans). It must exceed the longest time
	// between writing a copy and recording it (an upload's chunk, a
	// rebalance task's moves).
	OrphanGrace time.Duration
	// RebalanceRate bounds the bytes per second this node copies to new
	// ring owners after a membership change (0 turns rebalancing off).
	RebalanceRate int64
	// BufferBudget bounds the bytes all upload requests may hold in memory
	// at once; further uploads wait.
	BufferBudget int64
	// Backend is the cluster-wide object backend merged files tier to.
	Backend BackendConfig
	// TaskWorkers bounds the background tasks this node runs at once.
	TaskWorkers int
	// TaskLease is how long a node holds a task before others may take it
	// over; the holder renews it every third of that while working.
	TaskLease time.Duration
	// TaskPoll is how often the node looks for runnable tasks.
	TaskPoll time.Duration
	// TaskMaxAttempts is how often a task is tried before it is dead.
	TaskMaxAttempts int
	// GCGrace delays deleting staged chunks after a file is tiered, so
	// downloads that started from staging finish there.
	GCGrace time.Duration
	// InlineMax: with the local backend, a file of at most this many bytes
	// whose md5 is checked as it arrives (a single upload or S3 PUT) keeps
	// its staged chunks as its final copy instead of being tiered into a
	// file on each holder (0 = tier everything). Cluster-wide: the
	// leader's value applies, once every member runs a build that knows it.
	InlineMax int64
	// ExpireUploads drops uploads left incomplete this long (0 = never).
	ExpireUploads time.Duration
	// WebhookURL, if set, receives a signed POST when a file completes,
	// tiers or fails. WebhookSecret signs it (HMAC-SHA256).
	WebhookURL    string
	WebhookSecret string
	// JoinRetry is the pause between join attempts.
	JoinRetry time.Duration
	// TLS names the node's certificate, key and the cluster CA; all three
	// or none. With them the HTTP API and S3 listeners serve only HTTPS,
	// node-to-node calls and the raft transport use mutual TLS with the
	// cluster CA, and the files are reloaded on change (TLSReloadEvery) and
	// on ReloadTLS.
	TLS tlsconf.Files
	// TLSReloadEvery is how often the TLS files are checked for changes.
	TLSReloadEvery time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the configuration of `osprey server` with no flags:
// a single-node cluster on 127.0.0.1:8080 with data in ./data.
func DefaultConfig() Config {
	return Config{
		DataDir:         "data",
		HTTPAddr:        "127.0.0.1:8080",
		RaftAddr:        "127.0.0.1:8081",
		Raft:            raftstore.DefaultConfig(),
		Limits:          httpapi.DefaultLimits(),
		JoinRetry:       time.Second,
		Replicas:        2,
		Backend:         DefaultBackendConfig(),
		TaskWorkers:     8,
		TaskLease:       30 * time.Second,
		TaskPoll:        250 * time.Millisecond,
		TaskMaxAttempts: 10,
		ExpireUploads:   24 * time.Hour,
		GCGrace:         30 * time.Second,
		InlineMax:       128 << 10,
		ScrubRate:       16 << 20,
		RepairGrace:     10 * time.Minute,
		ScrubPause:      time.Hour,
		OrphanGrace:     6 * time.Hour,
		RebalanceRate:   32 << 20,
		BufferBudget:    256 << 20,
		TLSReloadEvery:  5 * time.Second,
	}
}

// Validate reports the first invalid field or combination.
func (c Config) Validate() error {
	switch {
	case c.DataDir == "":
		return errors.New("node: data dir is required")
	case c.HTTPAddr == "" || c.RaftAddr == "":
		return errors.New("node: http and raft addresses are required")
	case c.Bootstrap && c.BootstrapExpect > 0:
		return errors.New("node: --bootstrap and --bootstrap-expect are exclusive")
	case c.BootstrapExpect < 0:
		return errors.New("node: --bootstrap-expect must be positive")
	case c.BootstrapExpect > 1 && len(c.Join) == 0:
		return fmt.Errorf("node: --bootstrap-expect %d needs --join with the peers' HTTP addresses", c.BootstrapExpect)
	case c.BootstrapExpect > 0 && c.JoinToken == "":
		return errors.New("node: --bootstrap-expect needs --join-token (the same on every node)")
	case len(c.Join) > 0 && c.JoinToken == "" && !c.Bootstrap:
		return errors.New("node: --join needs --join-token (or OSPREY_JOIN_TOKEN): the cluster's join token")
	case c.Replicas < 1:
		return errors.New("node: replicas must be ≥ 1")
	case c.BufferBudget < 8<<20:
		return errors.New("node: buffer budget must be at least 8 MiB")
	case c.TaskWorkers < 1 || c.TaskLease < 300*time.Millisecond || c.TaskPoll <= 0 || c.TaskMaxAttempts < 1:
		return errors.New("node: task workers, lease (≥ 300ms), poll and max attempts must be positive")
	case c.WebhookURL != "" && c.WebhookSecret == "":
		return errors.New("node: --webhook-url needs a webhook secret (OSPREY_WEBHOOK_SECRET)")
	case c.JoinRetry <= 0:
		return errors.New("node: JoinRetry must be positive")
	case c.TLS.Validate() != nil:
		return fmt.Errorf("node: %w", c.TLS.Validate())
	case c.TLS.Enabled() && c.TLSReloadEvery <= 0:
		return errors.New("node: TLSReloadEvery must be positive")
	case c.S3.Addr != "" && len(c.S3.Credentials) == 0:
		return errors.New("node: the S3 API (--s3api-addr) needs credentials: OSPREY_S3API_ACCESS_KEY and OSPREY_S3API_SECRET_KEY, or --s3api-credentials-file")
	}
	return c.Limits.Validate()
}

// S3Config configures the S3 API listener.
type S3Config struct {
	// Addr is the listen address; empty turns the S3 API off.
	Addr string
	// Credentials maps access keys to secret keys.
	Credentials map[string]string
	// Region is the region clients sign for (default us-east-1).
	Region string
	// Domains enable virtual-host-style requests: Host
	// "<bucket>.<domain>" addresses bucket.
	Domains []string
}

// BuildInfo describes the binary a node runs.
type BuildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	Date      string `json:"date,omitempty"`
	GoVersion string `json:"go_version"`
}
