package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/julienschmidt/httprouter"

	"github.com/osprey-storage/osprey"
)

// Tasks is what the task routes need: the durable background queue.
type Tasks interface {
	// ListTasks lists tasks, optionally only those in state.
	ListTasks(ctx context.Context, state string) ([]TaskInfo, error)
	// RetryTask moves a dead task back to pending.
	RetryTask(ctx context.Context, id uint64) (TaskInfo, error)
}

// TaskInfo is a task as the API shows it.
type TaskInfo struct {
	ID          uint64 `json:"id"`
	Type        string `json:"type"`
	Target      string `json:"target"`
	State       string `json:"state"`
	Attempts    int    `json:"attempts"`
	LeaseHolder string `json:"lease_holder"`
	LeaseExpiry string `json:"lease_expiry,omitempty"`
	NextAttempt string `json:"next_attempt,omitempty"`
	LastError   string `json:"last_error,omitempty"`
	CreatedAt   string `json:"created_at"`
}

// Replicas serves node-to-node object copies when the backend is each
// node's local disk.
type Replicas interface {
	PutLocalObject(ctx context.Context, bucket, key string, body io.Reader, size int64, md5 string) error
	GetLocalObject(ctx context.Context, bucket, key string, off, n int64) (io.ReadCloser, error)
	// GetCheckedObject is GetLocalObject for a copy of the tiered content
	// id, checked against the content's chunk sums as it is read: a bad
	// chunk fails the read before any of its bytes are returned.
	GetCheckedObject(ctx context.Context, bucket, key string, id osprey.UID, off, n int64) (io.ReadCloser, error)
	// LocalObjectVersion names the stored write of an object copy (every
	// write makes a new one); errors.ErrUnsupported if the backend cannot.
	LocalObjectVersion(ctx context.Context, bucket, key string) (string, error)
	// DeleteLocalObject deletes an object copy; a version other than ""
	// deletes it only if it is still that write.
	DeleteLocalObject(ctx context.Context, bucket, key, version string) error
}

func (s *Server) taskRoutes() {
	s.handle(http.MethodGet, "/tasks", business, s.handleTasks)
	s.handle(http.MethodPost, "/tasks/:id/retry", business, s.handleTaskRetry)
}

func (s *Server) handleTasks(w http.ResponseWriter, r *http.Request) {
	st := r.URL.Query().Get("state")
	switch st {
	case "", "pending", "leased", "dead":
	default:
		s.writeError(w, r, invalidf("state must be pending, leased or dead"))
		return
	}
	tasks, err := s.cfg.Tasks.ListTasks(r.Context(), st)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if tasks == nil {
		tasks = []TaskInfo{}
	}
	writeOK(w, r, tasks)
}

func (s *Server) handleTaskRetry(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(httprouter.ParamsFromContext(r.Context()).ByName("id"), 10, 64)
	if err != nil {
		s.writeError(w, r, invalidf("task id must be a number"))
		return
	}
	t, err := s.cfg.Tasks.RetryTask(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeOK(w, r, t)
}

func (s *Server) replicaRoutes() {
	s.handle(http.MethodPut, "/internal/v1/objects/:bucket/:key", node, s.handleObjectPut)
	s.handle(http.MethodGet, "/internal/v1/objects/:bucket/:key", node, s.handleObjectGet)
	s.handle(http.MethodHead, "/internal/v1/objects/:bucket/:key", node, s.handleObjectHead)
	s.handle(http.MethodDelete, "/internal/v1/objects/:bucket/:key", node, s.handleObjectDelete)
}

// handleObjectHead reports the version of the local object copy in a
// header; a missing copy is 404, and a backend without versions answers
// 405, as a build before versions does (the caller then deletes plainly).
func (s *Server) handleObjectHead(w http.ResponseWriter, r *http.Request) {
	b, k := objectParams(r)
	v, err := s.cfg.Replicas.LocalObjectVersion(r.Context(), b, k)
	if errors.Is(err, errors.ErrUnsupported) {
		err = fmt.Errorf("%w: %w", errMethodNotAllowed, err)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set(HeaderObjectVersion, v)
	w.WriteHeader(http.StatusOK)
}

func objectParams(r *http.Request) (string, string) {
	p := httprouter.ParamsFromContext(r.Context())
	return p.ByName("bucket"), p.ByName("key")
}

func (s *Server) handleObjectPut(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength < 0 {
		s.writeError(w, r, invalidf("Content-Length is required"))
		return
	}
	b, k := objectParams(r)
	if err := s.cfg.Replicas.PutLocalObject(r.Context(), b, k, r.Body, r.ContentLength, r.URL.Query().Get("md5")); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeOK(w, r, nil)
}

func (s *Server) handleObjectGet(w http.ResponseWriter, r *http.Request) {
	b, k := objectParams(r)
	q := r.URL.Query()
	off, err1 := strconv.ParseInt(q.Get("off"), 10, 64)
	n, err2 := strconv.ParseInt(q.Get("n"), 10, 64)
	if err1 != nil || err2 != nil || off < 0 || n < 0 {
		s.writeError(w, r, invalidf("off and n must be non-negative numbers"))
		return
	}
	var rc io.ReadCloser
	var err error
	if c := q.Get("content"); c != "" {
		id, perr := osprey.ParseUID(c)
		if perr != nil {
			s.writeError(w, r, invalidf("content must be a uid"))
			return
		}
		rc, err = s.cfg.Replicas.GetCheckedObject(r.Context(), b, k, id, off, n)
	} else {
		rc, err = s.cfg.Replicas.GetLocalObject(r.Context(), b, k, off, n)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer rc.Close()
	// Set, or net/http sniffs one from the first bytes.
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	w.WriteHeader(http.StatusOK)
	if m, err := io.Copy(w, rc); err != nil || m != n {
		panic(http.ErrAbortHandler)
	}
}

func (s *Server) handleObjectDelete(w http.ResponseWriter, r *http.Request) {
	b, k := objectParams(r)
	if err := s.cfg.Replicas.DeleteLocalObject(r.Context(), b, k, r.URL.Query().Get("version")); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeOK(w, r, nil)
}
