package jepsen

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"time"
)

// OpType names what a client or the nemesis did.
type OpType string

// Client operation types. Each is one user-visible step of the osprey flow.
const (
	OpLink       OpType = "link"       // POST /link/upload (one path)
	OpUpload     OpType = "upload"     // PUT /upload (single request)
	OpChunk      OpType = "chunk"      // PUT /upload/multi
	OpMerge      OpType = "merge"      // PUT /upload/merge
	OpCheckpoint OpType = "checkpoint" // GET /checkpoint
	OpResume     OpType = "resume"     // POST /resume (dedup by md5)
	OpDownload   OpType = "download"   // POST /link/download + GET /download (full or ranged)
	OpStat       OpType = "stat"       // GET /object
	OpDelete     OpType = "delete"     // DELETE /object
	OpNemesis    OpType = "nemesis"    // a fault started or healed (process "nemesis")
)

// writeOps lists the client operations that change state; the failover
// measurement counts the first successful one after a leader loss.
var writeOps = map[OpType]bool{OpLink: true, OpUpload: true, OpChunk: true, OpMerge: true, OpDelete: true, OpResume: true}

// Outcome is Jepsen's classification of a completed operation.
type Outcome string

// Outcomes. Fail means the request certainly had no effect (503, a
// deterministic 4xx, or a connection that was never established); Info means
// the effect is unknown (504, other 5xx, timeout or reset after sending).
const (
	Invoke Outcome = "invoke"
	OK     Outcome = "ok"
	Fail   Outcome = "fail"
	Info   Outcome = "info"
)

// Op is one entry of the history. A client operation is written twice to the
// JSON-lines history: once with Outcome Invoke when it starts, and once with
// its final outcome; the in-memory history keeps only the completed form.
type Op struct {
	Index   int           `json:"index"`            // unique, in invocation order
	Process string        `json:"process"`          // "c3" for client 3, "nemesis", "final"
	Type    OpType        `json:"type"`             // what was done
	Key     string        `json:"key,omitempty"`    // uid (decimal) the op is about, if known
	Value   OpValue       `json:"value"`            // inputs and observed outputs
	Outcome Outcome       `json:"outcome"`          // invoke/ok/fail/info
	Node    string        `json:"node,omitempty"`   // node id the request was sent to
	T0      time.Duration `json:"t0"`               // invocation, since the run started
	T1      time.Duration `json:"t1"`               // completion, since the run started
	Status  int           `json:"status,omitempty"` // HTTP status, 0 if none
	Error   string        `json:"error,omitempty"`  // error text for fail/info
	Final   bool          `json:"final,omitempty"`  // issued by the checker after healing
}

// OpValue carries the inputs and observed outputs of an op. Only the fields
// that matter for an op's type are set.
type OpValue struct {
	Name    string   `json:"name,omitempty"`    // link: path sent
	MD5     string   `json:"md5,omitempty"`     // content md5 (upload/merge/resume input, stat output)
	Size    int64    `json:"size,omitempty"`    // content size (upload/merge input, stat output)
	Seed    uint64   `json:"seed,omitempty"`    // content seed: bytes are Content{Seed,Size}
	Chunk   int      `json:"chunk,omitempty"`   // chunk: 1-based chunk number
	Num     int      `json:"num,omitempty"`     // merge: number of chunks
	Offset  int64    `json:"offset,omitempty"`  // chunk: offset in the file; download: range start
	Length  int64    `json:"length,omitempty"`  // chunk: length; download: expected length
	Range   string   `json:"range,omitempty"`   // download: Range header sent
	State   string   `json:"state,omitempty"`   // stat output
	Chunks  []int    `json:"chunks,omitempty"`  // checkpoint output
	UID     string   `json:"uid,omitempty"`     // resume output ("" = not found) or link output
	Found   *bool    `json:"found,omitempty"`   // resume: whether a uid came back
	Bad     string   `json:"bad,omitempty"`     // download: why the bytes were wrong
	Fault   string   `json:"fault,omitempty"`   // nemesis: fault description
	Targets []string `json:"targets,omitempty"` // nemesis: node ids affected
	Phase   string   `json:"phase,omitempty"`   // nemesis: "start" or "stop"
	Form    string   `json:"form,omitempty"`    // upload: "raw" or "multipart"
}

// Recorder collects the history of one run. It is safe for concurrent use.
// Every completed op is also appended to a JSON-lines file if one is given.
type Recorder struct {
	mu    sync.Mutex
	start time.Time
	next  int
	ops   []Op
	w     *bufio.Writer
	f     io.Closer
	err   error
}

// NewRecorder returns a recorder whose clock starts now. If path is not
// empty, the history is streamed to it as JSON lines; the caller MUST Close.
func NewRecorder(path string) (*Recorder, error) {
	r := &Recorder{start: time.Now()}
	if path != "" {
		f, err := os.Create(path)
		if err != nil {
			return nil, fmt.Errorf("jepsen: history: %w", err)
		}
		r.w, r.f = bufio.NewWriter(f), f
	}
	return r, nil
}

// Since returns the run-relative time of now.
func (r *Recorder) Since() time.Duration { return time.Since(r.start) }

// Start returns the wall-clock time the run started.
func (r *Recorder) Start() time.Time { return r.start }

// Invoke allocates an op index, stamps T0 and writes the invoke line.
func (r *Recorder) Invoke(op Op) Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	op.Index = r.next
	r.next++
	op.T0 = time.Since(r.start)
	op.Outcome = Invoke
	r.writeLocked(op)
	return op
}

// Complete stamps T1, stores the op and writes its completion line.
func (r *Recorder) Complete(op Op) Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	op.T1 = time.Since(r.start)
	r.ops = append(r.ops, op)
	r.writeLocked(op)
	return op
}

// Event records an instantaneous op (nemesis start/stop) with T0 == T1.
func (r *Recorder) Event(op Op) Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	op.Index = r.next
	r.next++
	op.T0 = time.Since(r.start)
	op.T1 = op.T0
	r.ops = append(r.ops, op)
	r.writeLocked(op)
	return op
}

func (r *Recorder) writeLocked(op Op) {
	if r.w == nil || r.err != nil {
		return
	}
	b, err := json.Marshal(op)
	if err == nil {
		b = append(b, '\n')
		_, err = r.w.Write(b)
	}
	if err == nil && op.Outcome != Invoke {
		// Flushing completions keeps the file useful if the harness dies.
		err = r.w.Flush()
	}
	r.err = err
}

// Ops returns a copy of the completed ops, sorted by index.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]Op(nil), r.ops...)
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out
}

// Close flushes and closes the history file.
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w == nil {
		return r.err
	}
	err := r.w.Flush()
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	r.w = nil
	if r.err != nil {
		return r.err
	}
	return err
}

// ReadHistory loads completed ops from a JSON-lines history file, skipping
// invoke lines. It lets a history be re-checked offline.
func ReadHistory(rd io.Reader) ([]Op, error) {
	var ops []Op
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var op Op
		if err := json.Unmarshal(sc.Bytes(), &op); err != nil {
			return nil, fmt.Errorf("jepsen: history line %d: %w", len(ops)+1, err)
		}
		if op.Outcome != Invoke {
			ops = append(ops, op)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("jepsen: history: %w", err)
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].Index < ops[j].Index })
	return ops, nil
}
