package httpapi

import (
	"fmt"
	"net/http"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/osprey-storage/osprey"
)

// contentionProfiling serialises /debug/pprof/block and /debug/pprof/mutex:
// the runtime's rates are process-wide, so one recording runs at a time.
var contentionProfiling sync.Mutex

// contentionProfile serves the block or mutex profile recorded over
// ?seconds=N (default 30, at most 300). Recording costs on every blocking
// event, so the rate is switched on only for the request and off again:
// a node nobody profiles pays nothing.
func (s *Server) contentionProfile(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		secs := 30
		if v := r.URL.Query().Get("seconds"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 || n > 300 {
				s.writeError(w, r, fmt.Errorf("%w: seconds: want an integer in [1, 300], got %q", osprey.ErrInvalid, v))
				return
			}
			secs = n
		}
		if !contentionProfiling.TryLock() {
			s.writeError(w, r, fmt.Errorf("%w: another block or mutex profile is being recorded", osprey.ErrConflict))
			return
		}
		defer contentionProfiling.Unlock()
		p := pprof.Lookup(name)
		if name == "block" {
			runtime.SetBlockProfileRate(int((100 * time.Microsecond).Nanoseconds()))
			defer runtime.SetBlockProfileRate(0)
		} else {
			runtime.SetMutexProfileFraction(10)
			defer runtime.SetMutexProfileFraction(0)
		}
		t := time.NewTimer(time.Duration(secs) * time.Second)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
		_ = p.WriteTo(w, 0)
	}
}
