package node

import (
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/osprey-storage/osprey/chunkstore"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/raftstore"
)

// metrics are the counters components increment; registerMetrics also
// registers the gauges read from the raft store, the FSM, the chunk store
// and the backend health check.
type metrics struct {
	taskRuns                                             *prometheus.CounterVec
	tieredBytes                                          prometheus.Counter
	corruptReads                                         prometheus.Counter
	scrubBytes, scrubCorrupt, scrubRepaired, scrubPasses prometheus.Counter
	scrubOrphans, scrubOrphanBytes, scrubMissing         prometheus.Counter
	rebalanceBytes, rebalanceMoves, rebalanceFailed      prometheus.Counter
}

// metricSources are what the gauges read.
type metricSources struct {
	raft   *raftstore.Store
	fsm    *fsm.FSM
	chunks *chunkstore.Store
	health *backendHealth
	// mismatch reports whether this node's backend differs from the
	// cluster's.
	mismatch func() bool
	// degraded counts the members that cost protection now.
	degraded func() int
	// groupCommit reports the Raft entries this node proposed as leader
	// and the commands they carried.
	groupCommit func() (entries, commands uint64)
	build       BuildInfo
}

func registerMetrics(reg *prometheus.Registry, src metricSources) *metrics {
	n := &metrics{}
	n.taskRuns = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "osprey_task_runs_total",
		Help: "Background task attempts on this node by type and outcome."}, []string{"type", "outcome"})
	n.tieredBytes = prometheus.NewCounter(prometheus.CounterOpts{Name: "osprey_tiered_bytes_total",
		Help: "Bytes this node copied into the backend."})
	n.corruptReads = prometheus.NewCounter(prometheus.CounterOpts{Name: "osprey_corrupt_reads_total",
		Help: "Chunk copies, shards and object copies found corrupt while reading."})
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		reg.MustRegister(c)
		return c
	}
	n.scrubBytes = counter("osprey_scrub_bytes_total", "Bytes the scrubber verified (staged copies, and with the local-disk backend this node's object copies).")
	n.scrubCorrupt = counter("osprey_scrub_corrupt_total", "Bad staged or local object copies the scrubber found.")
	n.scrubRepaired = counter("osprey_scrub_repaired_total", "Bad or missing staged or local object copies the scrubber rewrote from healthy ones.")
	n.scrubPasses = counter("osprey_scrub_passes_total", "Completed scrub passes: over this node's staged copies and, with the local-disk backend, over its object copies (a walk of its own).")
	n.scrubMissing = counter("osprey_scrub_missing_total", "Staged or local object copies the records name this node the holder of that its store lacked (restored from other holders when possible).")
	n.scrubOrphans = counter("osprey_scrub_orphans_deleted_total", "Orphaned staged copies and local object files (named by no record for --orphan-grace) and stale temporary files the scrubber deleted.")
	n.scrubOrphanBytes = counter("osprey_scrub_orphan_bytes_deleted_total", "Bytes of the orphaned copies and files the scrubber deleted.")
	n.rebalanceBytes = counter("osprey_rebalance_bytes_total", "Bytes this node copied to new ring owners (rebalancing).")
	n.rebalanceMoves = counter("osprey_rebalance_moves_total", "Copies this node moved to new ring owners (rebalancing).")
	n.rebalanceFailed = counter("osprey_rebalance_failed_total", "Moves that failed on this node (planned again later).")
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "osprey_rebalance_pending_moves",
		Help: "Moves to new ring owners queued and not finished, cluster-wide."},
		func() float64 { return float64(src.fsm.Rebalance().Pending) }))
	reg.MustRegister(n.taskRuns, n.tieredBytes, n.corruptReads)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "osprey_repairs_pending",
		Help: "Repairs queued or running, cluster-wide: copies of lost members not rebuilt yet (done ones count in osprey_task_runs_total{type=\"repair\"})."},
		func() float64 { return float64(src.fsm.LiveTasks(fsm.TaskRepair)) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "osprey_backend_up",
		Help: "1 if the last backend check succeeded."}, func() float64 {
		if src.health.up.Load() {
			return 1
		}
		return 0
	}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "osprey_backend_config_mismatch",
		Help: "1 if this node's backend settings differ from the cluster's."}, func() float64 {
		if src.mismatch() {
			return 1
		}
		return 0
	}))
	for _, st := range []string{"pending", "leased", "dead"} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "osprey_tasks",
			Help: "Tasks in the queue by state.", ConstLabels: prometheus.Labels{"state": st}}, func() float64 {
			return float64(src.fsm.Stats()["tasks_"+st])
		}))
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "osprey_files",
		Help: "Files in the cluster."}, func() float64 { return float64(src.fsm.Stats()["files"]) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "osprey_build_info",
		Help: "Always 1; the labels describe the running binary.",
		ConstLabels: prometheus.Labels{"version": src.build.Version, "commit": src.build.Commit,
			"goversion": runtime.Version()}}, func() float64 { return 1 }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "osprey_members_degraded",
		Help: "Members unreachable from this node or marked down (their copies do not count); 0 when protection is full."},
		func() float64 { return float64(src.degraded()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "osprey_content_bytes",
		Help: "Bytes of all stored contents, each deduplicated content once (a counter the metadata store keeps, never a scan)."},
		func() float64 { return float64(src.fsm.ContentBytes()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "osprey_chunkstore_bytes",
		Help: "Bytes staged in this node's chunk store."}, func() float64 { return float64(src.chunks.Metrics().BytesStored) }))
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	gauge("osprey_raft_leader", "1 if this node is the raft leader.", func() float64 {
		if src.raft.IsLeader() {
			return 1
		}
		return 0
	})
	gauge("osprey_raft_has_leader", "1 if this node knows a leader.", func() float64 {
		if _, id := src.raft.Leader(); id != "" {
			return 1
		}
		return 0
	})
	gauge("osprey_raft_term", "Current raft term.", func() float64 { return float64(src.raft.Term()) })
	gauge("osprey_raft_commit_index", "Raft commit index.", func() float64 { return float64(src.raft.CommitIndex()) })
	gauge("osprey_raft_applied_index", "Raft applied index.", func() float64 { return float64(src.raft.AppliedIndex()) })
	gauge("osprey_raft_last_contact_seconds", "Seconds since a follower heard from the leader (0 on the leader).", func() float64 {
		if src.raft.IsLeader() {
			return 0
		}
		lc := src.raft.LastContact()
		if lc.IsZero() {
			return -1
		}
		return time.Since(lc).Seconds()
	})
	gauge("osprey_cluster_members", "Members in the raft configuration.", func() float64 {
		s, err := src.raft.Servers()
		if err != nil {
			return -1
		}
		return float64(len(s))
	})
	if src.groupCommit != nil {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "osprey_raft_proposed_entries_total",
			Help: "Raft entries this node proposed while leading (group commit: one entry carries many commands)."},
			func() float64 { e, _ := src.groupCommit(); return float64(e) }))
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "osprey_raft_proposed_commands_total",
			Help: "Commands those entries carried; divided by osprey_raft_proposed_entries_total, the mean batch size."},
			func() float64 { _, c := src.groupCommit(); return float64(c) }))
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "osprey_raft_state",
		Help: "Raft state as a number: 0 follower, 1 candidate, 2 leader, 3 shutdown."}, func() float64 {
		switch src.raft.State() {
		case "Candidate":
			return 1
		case "Leader":
			return 2
		case "Shutdown":
			return 3
		}
		return 0
	}))
	return n
}
