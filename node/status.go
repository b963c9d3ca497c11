package node

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/httpapi"
)

// Status reports this node's view of the cluster.
func (n *Node) Status(ctx context.Context) (httpapi.ClusterStatus, error) {
	hash, idx := n.fsm.Hash()
	leaderAddr, leaderID := n.raft.Leader()
	st := httpapi.ClusterStatus{
		ID: n.id, ClusterID: n.fsm.ClusterID(), State: n.raft.State(),
		Leader: httpapi.LeaderInfo{ID: leaderID, RaftAddr: leaderAddr, HTTPAddr: n.LeaderHTTP()},
		Term:   n.raft.Term(), CommitIndex: n.raft.CommitIndex(), AppliedIndex: n.raft.AppliedIndex(),
		FSMHash: hash, FSMIndex: idx,
	}
	members, err := n.members()
	if err != nil {
		return st, err
	}
	st.Members = members
	st.Storage = n.storageInfo()
	return st, nil
}

// members joins the raft configuration with the FSM's records.
func (n *Node) members() ([]httpapi.MemberInfo, error) {
	servers, err := n.raft.Servers()
	if err != nil {
		return nil, err
	}
	out := make([]httpapi.MemberInfo, 0, len(servers))
	for _, s := range servers {
		m := httpapi.MemberInfo{ID: s.ID, RaftAddr: s.Address, Suffrage: s.Suffrage}
		if rec, ok := n.fsm.Node(osprey.NodeID(s.ID)); ok && !rec.Removed {
			w := int64(rec.WorkerID)
			m.HTTPAddr, m.WorkerID = rec.HTTPAddr, &w
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Nodes lists members and checks each one's /livez.
func (n *Node) Nodes(ctx context.Context) ([]httpapi.NodeInfo, error) {
	members, err := n.members()
	if err != nil {
		return nil, err
	}
	_, leader := n.raft.Leader()
	out := make([]httpapi.NodeInfo, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		out[i] = httpapi.NodeInfo{MemberInfo: m, Leader: m.ID == leader}
		if m.HTTPAddr == "" {
			out[i].Error = "no http address recorded yet"
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			ok, rtt, err := n.peers.Probe(cctx, m.HTTPAddr)
			if err != nil {
				out[i].Error = err.Error()
				return
			}
			out[i].Reachable = ok
			out[i].RTTMillis = float64(rtt.Microseconds()) / 1000
		}()
	}
	wg.Wait()
	return out, nil
}

// NotReady lists why this node cannot serve business requests yet.
func (n *Node) NotReady(ctx context.Context) []string {
	var r []string
	if _, id := n.raft.Leader(); id == "" {
		r = append(r, "no raft leader")
	}
	if n.fsm.ClusterID() == "" {
		r = append(r, "cluster not initialised")
	}
	if n.gen.Load() == nil {
		r = append(r, "node not registered (no worker id yet)")
	}
	if n.ctx.Err() != nil {
		r = append(r, "shutting down")
	}
	if n.backendMismatch() {
		r = append(r, "backend settings differ from the cluster's: this node has "+backendFingerprint(n.cfg.Backend)+
			", the cluster uses "+n.fsm.Settings().BackendFingerprint)
	}
	return r
}

func (n *Node) registerMetrics() {
	n.taskRuns = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "osprey_task_runs_total",
		Help: "Background task attempts on this node by type and outcome."}, []string{"type", "outcome"})
	n.tieredBytes = prometheus.NewCounter(prometheus.CounterOpts{Name: "osprey_tiered_bytes_total",
		Help: "Bytes this node copied into the backend."})
	n.corruptReads = prometheus.NewCounter(prometheus.CounterOpts{Name: "osprey_corrupt_reads_total",
		Help: "Chunk copies or shards found corrupt while reading."})
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		n.registry.MustRegister(c)
		return c
	}
	n.scrubBytes = counter("osprey_scrub_bytes_total", "Staged bytes the scrubber verified.")
	n.scrubCorrupt = counter("osprey_scrub_corrupt_total", "Bad staged copies the scrubber found.")
	n.scrubRepaired = counter("osprey_scrub_repaired_total", "Bad staged copies the scrubber rewrote from healthy ones.")
	n.scrubPasses = counter("osprey_scrub_passes_total", "Completed scrub passes over this node's staged data.")
	n.registry.MustRegister(n.taskRuns, n.tieredBytes, n.corruptReads)
	n.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "osprey_backend_up",
		Help: "1 if the last backend check succeeded."}, func() float64 {
		if n.backendUp.Load() {
			return 1
		}
		return 0
	}))
	n.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "osprey_backend_config_mismatch",
		Help: "1 if this node's backend settings differ from the cluster's."}, func() float64 {
		if n.backendMismatch() {
			return 1
		}
		return 0
	}))
	for _, st := range []string{"pending", "leased", "dead"} {
		n.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "osprey_tasks",
			Help: "Tasks in the queue by state.", ConstLabels: prometheus.Labels{"state": st}}, func() float64 {
			return float64(n.fsm.Stats()["tasks_"+st])
		}))
	}
	n.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "osprey_files",
		Help: "Files in the cluster."}, func() float64 { return float64(n.fsm.Stats()["files"]) }))
	n.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "osprey_chunkstore_bytes",
		Help: "Bytes staged in this node's chunk store."}, func() float64 { return float64(n.chunks.Metrics().BytesStored) }))
	gauge := func(name, help string, f func() float64) {
		n.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	gauge("osprey_raft_leader", "1 if this node is the raft leader.", func() float64 {
		if n.raft.IsLeader() {
			return 1
		}
		return 0
	})
	gauge("osprey_raft_has_leader", "1 if this node knows a leader.", func() float64 {
		if _, id := n.raft.Leader(); id != "" {
			return 1
		}
		return 0
	})
	gauge("osprey_raft_term", "Current raft term.", func() float64 { return float64(n.raft.Term()) })
	gauge("osprey_raft_commit_index", "Raft commit index.", func() float64 { return float64(n.raft.CommitIndex()) })
	gauge("osprey_raft_applied_index", "Raft applied index.", func() float64 { return float64(n.raft.AppliedIndex()) })
	gauge("osprey_raft_last_contact_seconds", "Seconds since a follower heard from the leader (0 on the leader).", func() float64 {
		if n.raft.IsLeader() {
			return 0
		}
		lc := n.raft.LastContact()
		if lc.IsZero() {
			return -1
		}
		return time.Since(lc).Seconds()
	})
	gauge("osprey_cluster_members", "Members in the raft configuration.", func() float64 {
		s, err := n.raft.Servers()
		if err != nil {
			return -1
		}
		return float64(len(s))
	})
	n.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "osprey_raft_state",
		Help: "Raft state as a number: 0 follower, 1 candidate, 2 leader, 3 shutdown."}, func() float64 {
		switch n.raft.State() {
		case "Candidate":
			return 1
		case "Leader":
			return 2
		case "Shutdown":
			return 3
		}
		return 0
	}))
}

// backendMismatch reports whether this node's backend differs from the one
// the cluster recorded.
func (n *Node) backendMismatch() bool {
	fp := n.fsm.Settings().BackendFingerprint
	return fp != "" && fp != backendFingerprint(n.cfg.Backend)
}

// ReadyDetails reports the state of optional dependencies on /readyz. A
// backend outage does not make a node unready: staged files keep being
// uploaded and served, and tiering catches up when the backend returns.
func (n *Node) ReadyDetails() map[string]string {
	d := map[string]string{"backend": n.backend.Name() + ": ok"}
	if b := n.backendErr.Load(); b != nil {
		d["backend"] = n.backend.Name() + ": unreachable: " + b.err.Error()
	}
	return d
}

func (n *Node) storageInfo() *httpapi.StorageInfo {
	copies, under := n.fsm.Protection(n.place.Replicas())
	info := &httpapi.StorageInfo{Redundancy: n.place.Redundancy(), Backend: backendFingerprint(n.cfg.Backend),
		StagedCopies: copies, UnderProtected: under, Tasks: map[string]int{}}
	info.Files = n.fsm.Stats()["files"]
	for _, t := range n.fsm.Tasks("") {
		info.Tasks[t.Type+"_"+string(t.State)]++
	}
	return info
}
