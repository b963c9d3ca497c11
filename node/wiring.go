package node

import (
	"context"
	"time"

	"github.com/osprey-storage/osprey/consensus"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
	"github.com/osprey-storage/osprey/membership"
	"github.com/osprey-storage/osprey/placement"
)

// The adapters below join components where httpapi wants one value with
// methods from two of them. They hold no logic of their own.

// clusterAPI is httpapi.Cluster (membership) plus the optional
// ReadyDetails capability (the backend health check).
type clusterAPI struct {
	*membership.Membership
	health *backendHealth
}

// ReadyDetails reports the backend check on /readyz.
func (c clusterAPI) ReadyDetails() map[string]string { return c.health.details() }

// internalAPI is httpapi.Internal: commands and read indexes come from
// the proposer, tokens and bootstrap info from membership.
type internalAPI struct {
	prop *consensus.Proposer
	mem  *membership.Membership
}

func (i internalAPI) NodeAuthToken() string { return i.mem.NodeAuthToken() }
func (i internalAPI) ApplyEncoded(ctx context.Context, cmd []byte) ([]byte, error) {
	return i.prop.ApplyEncoded(ctx, cmd)
}
func (i internalAPI) ReadIndex(ctx context.Context) (uint64, error) { return i.prop.ReadIndex(ctx) }
func (i internalAPI) BootstrapInfo() httpapi.BootstrapInfo          { return i.mem.BootstrapInfo() }
func (i internalAPI) CheckJoinToken(token string) bool              { return i.mem.CheckJoinToken(token) }

var (
	_ httpapi.Cluster  = clusterAPI{}
	_ httpapi.Internal = internalAPI{}
)

// storageReport summarises staged-data protection and the task queue for
// /cluster/status.
type storageReport struct {
	fsm         *fsm.FSM
	place       *placement.Placement
	fingerprint string
}

func (s storageReport) StorageInfo() *httpapi.StorageInfo {
	copies, under := s.fsm.Protection(s.place.Replicas())
	info := &httpapi.StorageInfo{Redundancy: s.place.Redundancy(), Backend: s.fingerprint,
		StagedCopies: copies, UnderProtected: under, Tasks: map[string]int{}}
	info.Files = s.fsm.Stats()["files"]
	for _, t := range s.fsm.Tasks("") {
		info.Tasks[t.Type+"_"+string(t.State)]++
	}
	if p := s.fsm.Rebalance(); p.Planned > 0 {
		info.Rebalance = &httpapi.RebalanceInfo{PendingMoves: p.Pending, PlannedMoves: p.Planned, MovedCopies: p.Moved,
			MovedBytes: p.Bytes}
		for _, m := range p.Members {
			info.Rebalance.Members = append(info.Rebalance.Members, string(m))
		}
		if p.StartedAt > 0 {
			at := time.UnixMilli(p.StartedAt).UTC()
			info.Rebalance.StartedAt = &at
		}
	}
	return info
}
