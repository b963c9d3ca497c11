package httpapi

import (
	"context"
	"io"
	"net/http"
	"strconv"
)

// Metadata serves metadata backup and restore (optional; nil leaves the
// routes out). Both run on the leader.
type Metadata interface {
	// Backup streams a consistent, checksummed point-in-time copy of the
	// metadata to w, preceded by a call to started with the Raft index the
	// copy reflects (so it can be sent as a header before the body).
	Backup(ctx context.Context, w io.Writer, started func(index uint64)) error
	// Restore replaces the cluster's metadata with a backup read from r,
	// keeping the cluster's current members. A corrupt or truncated
	// backup returns an error wrapping ErrInvalid and changes nothing.
	Restore(ctx context.Context, r io.Reader) (RestoreResult, error)
	// Snapshot takes a Raft snapshot of this node's state now.
	Snapshot(ctx context.Context) (SnapshotResult, error)
}

// SnapshotResult is the reply of POST /cluster/snapshot.
type SnapshotResult struct {
	Index  uint64  `json:"index"`
	Bytes  int64   `json:"bytes"`
	Millis float64 `json:"millis"`
}

// RestoreResult is the reply of POST /cluster/restore.
type RestoreResult struct {
	// Index is the Raft index of the backup.
	Index uint64 `json:"index"`
	// Files is the number of files the restored metadata holds.
	Files int `json:"files"`
	// Removed lists members of the backup that are not in this cluster.
	Removed []string `json:"removed,omitempty"`
	// Lost counts contents whose bytes no member or backend holds any
	// more (only staged when the backup was taken); their files answer
	// 410 Gone.
	Lost int `json:"lost"`
}

// HeaderBackupIndex carries the Raft index a backup reflects.
const HeaderBackupIndex = "X-Osprey-Backup-Index"

func (s *Server) handleBackup(w http.ResponseWriter, r *http.Request) {
	wrote := false
	err := s.cfg.Metadata.Backup(r.Context(), w, func(index uint64) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set(HeaderBackupIndex, strconv.FormatUint(index, 10))
		w.Header().Set("Content-Disposition", `attachment; filename="osprey-metadata-`+strconv.FormatUint(index, 10)+`.backup"`)
		w.WriteHeader(http.StatusOK)
		wrote = true
	})
	if err != nil {
		if !wrote {
			s.writeError(w, r, err)
			return
		}
		// The body is cut short; the client sees a truncated stream,
		// which restore refuses (its trailer is missing).
		s.log.Error("backup stream failed", "err", err, "request_id", RequestID(r.Context()))
		panic(http.ErrAbortHandler)
	}
}

func (s *Server) handleRestore(w http.ResponseWriter, r *http.Request) {
	res, err := s.cfg.Metadata.Restore(r.Context(), r.Body)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.log.Info("metadata restored", "index", res.Index, "files", res.Files, "lost", res.Lost, "removed", res.Removed)
	writeOK(w, r, res)
}

func (s *Server) handleSnapshot(w http.ResponseWriter, r *http.Request) {
	res, err := s.cfg.Metadata.Snapshot(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeOK(w, r, res)
}
