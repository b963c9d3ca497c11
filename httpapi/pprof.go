package httpapi

import (
	"net/http"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"time"
)

// contentionProfiling serialises /debug/pprof/block and /debug/pprof/mutex:
// the runtime's rates are process-wide, so one recording runs at a time.
var contentionProfiling sync.Mutex

// contentionProfile serves the block or mutex profile recorded over
// ?seconds=N (default 30, at most 300). Recording costs on every blocking
// event, so the rate is switched on only for the request and off again:
// a node nobody profiles pays nothing.
func contentionProfile(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		secs := 30
		if v := r.URL.Query().Get("seconds"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 || n > 300 {
				http.Error(w, "seconds: want an integer in [1, 300]", http.StatusBadRequest)
				return
			}
			secs = n
		}
		if !contentionProfiling.TryLock() {
			http.Error(w, "another block or mutex profile is being recorded", http.StatusConflict)
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
