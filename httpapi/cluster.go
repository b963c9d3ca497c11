package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/julienschmidt/httprouter"

	"github.com/osprey-storage/osprey"
)

func (s *Server) handlePing(w http.ResponseWriter, r *http.Request) {
	writeOK(w, r, "pong")
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	reasons := s.cfg.Cluster.NotReady(r.Context())
	if len(reasons) > 0 {
		w.Header().Set("Retry-After", "1")
		writeJSON(w, r, http.StatusServiceUnavailable, Envelope{Code: CodeUnavailable, Message: "not ready", Data: reasons})
		return
	}
	// Optional details (backend reachability) are shown but do not fail
	// readiness.
	if d, ok := s.cfg.Cluster.(interface{ ReadyDetails() map[string]string }); ok {
		writeOK(w, r, map[string]any{"status": "ready", "checks": d.ReadyDetails()})
		return
	}
	writeOK(w, r, "ready")
}

func (s *Server) handleClusterStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.cfg.Cluster.Status(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeOK(w, r, st)
}

func (s *Server) handleClusterNodes(w http.ResponseWriter, r *http.Request) {
	nodes, err := s.cfg.Cluster.Nodes(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeOK(w, r, nodes)
}

func (s *Server) handleClusterJoin(w http.ResponseWriter, r *http.Request) {
	var req JoinRequest
	if err := decodeJSON(r, 64<<10, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	switch {
	case req.Token == "":
		s.writeError(w, r, fmt.Errorf("%w: join token missing: start the node with --join-token (or OSPREY_JOIN_TOKEN) set to the cluster's token", osprey.ErrUnauthorized))
		return
	case req.ID == "":
		s.writeError(w, r, invalidf("id is required"))
		return
	case req.RaftAddr == "":
		s.writeError(w, r, invalidf("raft_addr is required"))
		return
	}
	res, err := s.cfg.Cluster.Join(r.Context(), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeOK(w, r, res)
}

func (s *Server) handleClusterRemove(w http.ResponseWriter, r *http.Request) {
	id := httprouter.ParamsFromContext(r.Context()).ByName("id")
	if err := s.cfg.Cluster.Remove(r.Context(), id); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeOK(w, r, map[string]string{"removed": id})
}

func (s *Server) handleLeaderTransfer(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ID string `json:"id"`
	}
	if r.ContentLength != 0 {
		if err := decodeJSON(r, 4<<10, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if err := s.cfg.Cluster.TransferLeadership(r.Context(), req.ID); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeOK(w, r, map[string]string{"leader": s.cfg.Cluster.LeaderHTTP()})
}

// internalReply is the body of /internal/v1/apply replies.
type internalReply struct {
	Data  json.RawMessage `json:"data,omitempty"`
	Index uint64          `json:"index,omitempty"`
}

func (s *Server) handleInternalApply(w http.ResponseWriter, r *http.Request) {
	cmd, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		s.writeError(w, r, fmt.Errorf("%w: command body: %w", osprey.ErrTooLarge, err))
		return
	}
	data, err := s.cfg.Internal.ApplyEncoded(r.Context(), cmd)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeOK(w, r, internalReply{Data: data})
}

func (s *Server) handleInternalReadIndex(w http.ResponseWriter, r *http.Request) {
	idx, err := s.cfg.Internal.ReadIndex(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeOK(w, r, strconv.FormatUint(idx, 10))
}

func (s *Server) handleBootstrapInfo(w http.ResponseWriter, r *http.Request) {
	if !s.cfg.Internal.CheckJoinToken(r.Header.Get("X-Osprey-Join-Token")) {
		s.writeError(w, r, fmt.Errorf("%w: wrong or missing join token", osprey.ErrForbidden))
		return
	}
	writeOK(w, r, s.cfg.Internal.BootstrapInfo())
}
