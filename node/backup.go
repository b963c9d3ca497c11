package node

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
)

// metadataService serves metadata backup and restore for httpapi.
type metadataService struct{ n *Node }

var _ httpapi.Metadata = metadataService{}

// Backup streams the leader's metadata after a read barrier, so the copy
// holds every write acknowledged before the request.
func (m metadataService) Backup(ctx context.Context, w io.Writer, started func(index uint64)) error {
	if err := m.n.prop.ReadBarrier(ctx); err != nil {
		return err
	}
	return m.n.fsm.Backup(w, started)
}

// Restore spools the backup to the data dir, verifies it whole (a corrupt
// or truncated file changes nothing), hands it to raft's user restore
// (leader first, then every follower installs it), and then reconciles the
// restored state with the current members (fsm.Restored).
func (m metadataService) Restore(ctx context.Context, r io.Reader) (httpapi.RestoreResult, error) {
	n := m.n
	tmp, err := os.CreateTemp(n.cfg.DataDir, "restore-*.backup")
	if err != nil {
		return httpapi.RestoreResult{}, fmt.Errorf("node: spool backup: %w", err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	if _, err := io.Copy(tmp, r); err != nil {
		return httpapi.RestoreResult{}, fmt.Errorf("%w: reading the backup: %w", osprey.ErrInvalid, err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return httpapi.RestoreResult{}, fmt.Errorf("node: spool backup: %w", err)
	}
	info, err := fsm.VerifySnapshot(tmp)
	if err != nil {
		return httpapi.RestoreResult{}, fmt.Errorf("%w: not a complete osprey metadata backup: %w", osprey.ErrInvalid, err)
	}
	// Members as they are now, with their HTTP addresses, before the
	// restore replaces the records that hold them.
	servers, err := n.raft.Servers()
	if err != nil {
		return httpapi.RestoreResult{}, err
	}
	http := map[string]string{}
	for _, rec := range n.fsm.Nodes() {
		http[string(rec.ID)] = rec.HTTPAddr
	}
	http[n.id] = n.httpAddr
	cmd := fsm.Restored{Time: time.Now().UnixMilli(), JoinTokenHash: n.fsm.JoinTokenHash(),
		NewCluster: info.ClusterID != n.fsm.ClusterID()}
	for _, s := range servers {
		cmd.Members = append(cmd.Members, fsm.NodeUpsert{ID: osprey.NodeID(s.ID), RaftAddr: s.Address, HTTPAddr: http[s.ID]})
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return httpapi.RestoreResult{}, fmt.Errorf("node: spool backup: %w", err)
	}
	if err := n.raft.UserRestore(ctx, tmp, info.Bytes, info.Index); err != nil {
		return httpapi.RestoreResult{}, fmt.Errorf("node: restore: %w", err)
	}
	var res fsm.RestoredResult
	if err := n.prop.Apply(ctx, fsm.CmdRestored, cmd, &res); err != nil {
		return httpapi.RestoreResult{}, fmt.Errorf("node: reconcile restored state: %w", err)
	}
	out := httpapi.RestoreResult{Index: info.Index, Files: n.fsm.Stats()["files"], Lost: len(res.Lost)}
	for _, id := range res.Removed {
		out.Removed = append(out.Removed, string(id))
	}
	return out, nil
}

// Snapshot takes a Raft snapshot of this node's state now.
func (m metadataService) Snapshot(ctx context.Context) (httpapi.SnapshotResult, error) {
	info, err := m.n.raft.Snapshot(ctx)
	if err != nil {
		return httpapi.SnapshotResult{}, err
	}
	return httpapi.SnapshotResult{Index: info.Index, Bytes: info.Size, Millis: float64(info.Took.Microseconds()) / 1000}, nil
}
