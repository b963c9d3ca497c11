package jepsen

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/anishathalye/porcupine"
)

// This file holds the sequential specification the linearizability checker
// (porcupine) holds the history against. The history is partitioned into
// independent keys: one per uid (the object's metadata) and one per md5 of
// the dedup pool (the content index behind /resume). An op on a uid that
// touches pooled content is placed in both partitions; checking projections
// independently can miss anomalies but never reports a false one, because a
// real linearization projects onto a valid linearization of every key.

// objPhase is the lifecycle of one uid.
type objPhase uint8

const (
	phAbsent    objPhase = iota // uid not issued yet
	phUploading                 // linked, chunks may be stored
	phComplete                  // single upload or merge acknowledged (or tiered)
	phDeleted                   // deleted
)

func (p objPhase) String() string {
	return [...]string{"absent", "uploading", "complete", "deleted"}[p]
}

// objState is the model state of one uid. It is comparable, so porcupine's
// default equality works.
type objState struct {
	Phase  objPhase
	Chunks uint64 // bit n set = chunk n stored (n < 64)
	MD5    string // complete: content md5
	Size   int64  // complete: content size
}

// result is what a definite or unknown response told us.
type result uint8

const (
	resOK result = iota
	resNotFound
	resConflict
	resUnknown // outcome unknown: the write may or may not have happened
)

// objInput is one op on a uid as the model sees it.
type objInput struct {
	Type   OpType
	Chunk  int    // chunk
	Num    int    // merge
	MD5    string // upload/merge/resume: content md5
	Size   int64  // upload/merge/resume: content size
	Create bool   // resume that created this uid
}

// objOutput is what came back.
type objOutput struct {
	Res    result
	State  string // stat
	MD5    string // stat
	Size   int64  // stat
	Chunks uint64 // checkpoint
}

func chunkBits(ns []int) uint64 {
	var b uint64
	for _, n := range ns {
		if n > 0 && n < 64 {
			b |= 1 << uint(n)
		}
	}
	return b
}

func allChunks(num int) uint64 {
	var b uint64
	for n := 1; n <= num && n < 64; n++ {
		b |= 1 << uint(n)
	}
	return b
}

// applyObj returns the state after a successful write in s, and whether
// the write could succeed in s at all.
func applyObj(s objState, in objInput) (objState, bool) {
	switch in.Type {
	case OpLink:
		if s.Phase == phAbsent {
			return objState{Phase: phUploading}, true
		}
	case OpResume:
		if s.Phase == phAbsent && in.Create {
			return objState{Phase: phComplete, MD5: in.MD5, Size: in.Size}, true
		}
	case OpUpload:
		switch {
		case s.Phase == phUploading:
			return objState{Phase: phComplete, MD5: in.MD5, Size: in.Size}, true
		case s.Phase == phComplete && s.MD5 == in.MD5:
			return s, true // a repeated identical upload is harmless
		}
	case OpChunk:
		if s.Phase == phUploading {
			s.Chunks |= chunkBits([]int{in.Chunk})
			return s, true
		}
	case OpMerge:
		need := allChunks(in.Num)
		switch {
		case s.Phase == phUploading && s.Chunks&need == need:
			return objState{Phase: phComplete, MD5: in.MD5, Size: in.Size}, true
		case s.Phase == phComplete && s.MD5 == in.MD5:
			return s, true // merging twice is idempotent (SPEC §3)
		}
	case OpDelete:
		if s.Phase == phUploading || s.Phase == phComplete || s.Phase == phDeleted {
			return objState{Phase: phDeleted}, true
		}
	}
	return s, false
}

// stepObj is the nondeterministic step of the per-uid model: the list of
// states the object can be in after in/out, empty if impossible.
func stepObj(s objState, in objInput, out objOutput) []objState {
	if out.Res == resUnknown {
		// Unknown writes may or may not have taken effect. Reads with an
		// unknown outcome are never put into the history.
		if ns, ok := applyObj(s, in); ok && ns != s {
			return []objState{s, ns}
		}
		return []objState{s}
	}
	deletedLike := s.Phase == phDeleted || s.Phase == phAbsent
	ok := false
	switch in.Type {
	case OpLink, OpResume, OpUpload, OpChunk, OpMerge, OpDelete:
		switch out.Res {
		case resOK:
			ns, can := applyObj(s, in)
			if can {
				return []objState{ns}
			}
			return nil
		case resNotFound:
			ok = deletedLike
		case resConflict:
			switch in.Type {
			case OpMerge:
				// 409 names missing chunks; also acceptable once gone.
				ok = (s.Phase == phUploading && s.Chunks&allChunks(in.Num) != allChunks(in.Num)) || deletedLike
			case OpUpload, OpChunk:
				ok = s.Phase == phComplete || deletedLike
			case OpDelete:
				ok = false
			}
		}
	case OpStat:
		switch out.Res {
		case resOK:
			switch s.Phase {
			case phUploading:
				ok = out.State == "uploading"
			case phComplete:
				ok = (out.State == "complete" || out.State == "tiered" || out.State == "failed") &&
					out.MD5 == s.MD5 && out.Size == s.Size
			}
		case resNotFound:
			ok = deletedLike
		}
	case OpCheckpoint:
		switch out.Res {
		case resOK:
			switch s.Phase {
			case phUploading:
				ok = out.Chunks == s.Chunks
			case phComplete:
				ok = true // what a finished upload reports is not specified
			}
		case resNotFound:
			ok = deletedLike
		case resConflict:
			ok = s.Phase == phComplete
		}
	case OpDownload:
		switch out.Res {
		case resOK:
			ok = s.Phase == phComplete
		case resNotFound, resConflict:
			ok = s.Phase != phComplete
		}
	}
	if ok {
		return []objState{s}
	}
	return nil
}

// md5State is the model state of one pooled content: which uids hold it.
// Members are encoded in a sorted string so the state stays comparable:
// "uid!" = definitely indexed, "uid?" = maybe (a merge whose md5 is
// verified in the background), "*" = a uid we never learnt (a /resume
// whose reply was lost but which may have created one).
type md5State string

func (m md5State) members() []string {
	if m == "" {
		return nil
	}
	return strings.Split(string(m), ",")
}

func makeMD5State(ms []string) md5State {
	sort.Strings(ms)
	return md5State(strings.Join(ms, ","))
}

func (m md5State) with(member string) md5State {
	ms := m.members()
	for _, x := range ms {
		if x == member {
			return m
		}
	}
	return makeMD5State(append(ms, member))
}

func (m md5State) without(uid string) md5State {
	var keep []string
	for _, x := range m.members() {
		if strings.TrimRight(x, "!?") != uid {
			keep = append(keep, x)
		}
	}
	return makeMD5State(keep)
}

func (m md5State) hasDefinite() bool {
	for _, x := range m.members() {
		if x == "*" || strings.HasSuffix(x, "!") {
			return true
		}
	}
	return false
}

// md5Input is one op on a pooled content.
type md5Input struct {
	Type OpType
	UID  string // upload/merge/delete: the uid; resume: ""
}

// md5Output is what came back; for resume, UID is the uid returned ("" none).
type md5Output struct {
	Res result
	UID string
}

func applyMD5(s md5State, in md5Input, out md5Output) md5State {
	switch in.Type {
	case OpUpload:
		return s.with(in.UID + "!")
	case OpMerge:
		return s.with(in.UID + "?")
	case OpDelete:
		return s.without(in.UID)
	case OpResume:
		if out.UID != "" {
			return s.with(out.UID + "!")
		}
		return s.with("*")
	}
	return s
}

func stepMD5(s md5State, in md5Input, out md5Output) []md5State {
	switch out.Res {
	case resUnknown:
		ns := applyMD5(s, in, out)
		if ns == s {
			return []md5State{s}
		}
		return []md5State{s, ns}
	case resOK:
		if in.Type == OpResume {
			if out.UID == "" {
				if s.hasDefinite() {
					return nil // content known complete, yet not found
				}
				return []md5State{s}
			}
			if len(s.members()) == 0 {
				return nil // dedup answered from content nobody holds
			}
		}
		return []md5State{applyMD5(s, in, out)}
	}
	return []md5State{s} // definite rejections change nothing
}

// linInput and linOutput are what porcupine carries: the partition key
// plus the per-model input/output.
type linInput struct {
	Key string
	Obj objInput
	MD5 md5Input
	Op  int // history index, for visualisation
}

type linOutput struct {
	Obj objOutput
	MD5 md5Output
}

// linState is either an objState or an md5State, depending on the key.
type linState struct {
	Obj objState
	MD5 md5State
}

func isMD5Key(k string) bool { return strings.HasPrefix(k, "md5:") }

// linModel returns the porcupine model over all keys.
func linModel() porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
			byKey := map[string][]porcupine.Operation{}
			var keys []string
			for _, op := range h {
				k := op.Input.(linInput).Key
				if _, ok := byKey[k]; !ok {
					keys = append(keys, k)
				}
				byKey[k] = append(byKey[k], op)
			}
			sort.Strings(keys)
			out := make([][]porcupine.Operation, 0, len(keys))
			for _, k := range keys {
				out = append(out, byKey[k])
			}
			return out
		},
		Init: func() []interface{} { return []interface{}{linState{}} },
		Step: func(state, input, output interface{}) []interface{} {
			s, in, out := state.(linState), input.(linInput), output.(linOutput)
			var res []interface{}
			if isMD5Key(in.Key) {
				for _, ns := range stepMD5(s.MD5, in.MD5, out.MD5) {
					res = append(res, linState{MD5: ns})
				}
				return res
			}
			for _, ns := range stepObj(s.Obj, in.Obj, out.Obj) {
				res = append(res, linState{Obj: ns})
			}
			return res
		},
		DescribeOperation: func(input, output interface{}) string {
			in, out := input.(linInput), output.(linOutput)
			if isMD5Key(in.Key) {
				return fmt.Sprintf("#%d %s(%s) -> %s %q", in.Op, in.MD5.Type, in.MD5.UID, resName(out.MD5.Res), out.MD5.UID)
			}
			o := out.Obj
			switch in.Obj.Type {
			case OpStat:
				return fmt.Sprintf("#%d stat -> %s %s %d %.8s", in.Op, resName(o.Res), o.State, o.Size, o.MD5)
			case OpCheckpoint:
				return fmt.Sprintf("#%d checkpoint -> %s %b", in.Op, resName(o.Res), o.Chunks)
			case OpChunk:
				return fmt.Sprintf("#%d chunk %d -> %s", in.Op, in.Obj.Chunk, resName(o.Res))
			case OpMerge:
				return fmt.Sprintf("#%d merge %d -> %s", in.Op, in.Obj.Num, resName(o.Res))
			}
			return fmt.Sprintf("#%d %s -> %s", in.Op, in.Obj.Type, resName(o.Res))
		},
		DescribeState: func(state interface{}) string {
			s := state.(linState)
			if s.MD5 != "" {
				return string(s.MD5)
			}
			return fmt.Sprintf("%s chunks=%b %.8s %d", s.Obj.Phase, s.Obj.Chunks, s.Obj.MD5, s.Obj.Size)
		},
	}
	return nm.ToModel()
}

func resName(r result) string {
	return [...]string{"ok", "not-found", "conflict", "unknown"}[r]
}

// resultOf maps a completed client op to a model result. skip is true for
// ops that tell the model nothing: requests certainly not applied (503,
// refused connections, malformed-request rejections) and reads whose
// outcome is unknown.
func resultOf(op Op) (r result, skip bool) {
	switch op.Outcome {
	case OK:
		return resOK, false
	case Info:
		if writeOps[op.Type] {
			return resUnknown, false
		}
		return 0, true
	case Fail:
		switch op.Status {
		case 404:
			return resNotFound, false
		case 409:
			return resConflict, false
		}
	}
	return 0, true
}

// infinity is the return time of ops whose outcome is unknown: they may
// take effect at any point after their invocation.
const infinity = math.MaxInt64

// linOps converts a history into porcupine operations. pool holds the md5s
// whose content index is checked; contentOf maps a uid to its content md5
// (what the workload uploads to it).
func linOps(h []Op, pool map[string]bool, md5Of map[string]string) []porcupine.Operation {
	var out []porcupine.Operation
	clientID := map[string]int{}
	cid := func(p string) int {
		if id, ok := clientID[p]; ok {
			return id
		}
		clientID[p] = len(clientID)
		return clientID[p]
	}
	add := func(op Op, key string, in linInput, out1 linOutput, r result) {
		ret := int64(op.T1)
		if r == resUnknown {
			ret = infinity
		}
		in.Key, in.Op = key, op.Index
		out = append(out, porcupine.Operation{ClientId: cid(op.Process), Input: in, Call: int64(op.T0), Output: out1, Return: ret,
			Metadata: op.Process + "@" + op.Node})
	}
	for _, op := range h {
		if op.Type == OpNemesis {
			continue
		}
		r, skip := resultOf(op)
		if skip {
			continue
		}
		v := op.Value
		// Per-uid partition.
		if op.Key != "" {
			in := objInput{Type: op.Type, Chunk: v.Chunk, Num: v.Num, MD5: v.MD5, Size: v.Size}
			o := objOutput{Res: r}
			switch op.Type {
			case OpResume:
				in.Create = true
			case OpStat:
				o.State, o.MD5, o.Size = v.State, v.MD5, v.Size
				in.MD5, in.Size = "", 0
			case OpCheckpoint:
				o.Chunks = chunkBits(v.Chunks)
			}
			add(op, op.Key, linInput{Obj: in}, linOutput{Obj: o}, r)
		}
		// Per-content partition (dedup index).
		switch op.Type {
		case OpUpload, OpMerge, OpDelete:
			m := md5Of[op.Key]
			if op.Type != OpDelete {
				m = v.MD5
			}
			if op.Key != "" && pool[m] {
				add(op, "md5:"+m, linInput{MD5: md5Input{Type: op.Type, UID: op.Key}}, linOutput{MD5: md5Output{Res: r}}, r)
			}
		case OpResume:
			if pool[v.MD5] {
				add(op, "md5:"+v.MD5, linInput{MD5: md5Input{Type: OpResume}}, linOutput{MD5: md5Output{Res: r, UID: op.Key}}, r)
			}
		}
	}
	return out
}
