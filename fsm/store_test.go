package fsm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"sort"
	"testing"

	"github.com/osprey-storage/osprey"
)

// dumpState reads the whole store back into the reference model's shape,
// so the invariants and the reference comparison see exactly what is
// stored.
func dumpState(f *FSM) *state {
	s := newState()
	f.read(func(t *tx) {
		s.ClusterID, s.Secret, s.JoinTokenHash, s.CreatedAt = t.meta.ClusterID, t.meta.Secret, t.meta.JoinTokenHash, t.meta.CreatedAt
		s.NextWorkerID, s.NextTaskID, s.Settings = t.meta.NextWorkerID, t.meta.NextTaskID, t.meta.Settings
		s.OpenGC = t.meta.OpenGC
		each := func(table byte, fn func(k, v []byte)) {
			lo, hi := tableBounds(table)
			t.scan(lo, hi, func(k, v []byte) bool { fn(k, v); return true })
		}
		must := func(err error) {
			if err != nil {
				panic(err)
			}
		}
		each(tNode, func(_, v []byte) {
			n := new(Node)
			must(json.Unmarshal(v, n))
			s.Nodes[n.ID] = n
		})
		each(tFile, func(_, v []byte) {
			x := new(File)
			must(json.Unmarshal(v, x))
			s.Files[x.UID] = x
		})
		each(tUpChunk, func(k, v []byte) {
			ch := new(Chunk)
			must(json.Unmarshal(v, ch))
			uid := osprey.UID(binary.BigEndian.Uint64(k[2:10]))
			x, ok := s.Files[uid]
			if !ok {
				panic(fmt.Sprintf("upload chunk of missing file %s", uid))
			}
			if x.Chunks == nil {
				x.Chunks = map[uint32]*Chunk{}
			}
			x.Chunks[ch.Num] = ch
		})
		each(tContent, func(_, v []byte) {
			c := new(Content)
			must(json.Unmarshal(v, c))
			s.Contents[c.ID] = c
		})
		each(tMD5, func(k, v []byte) { s.MD5Index[string(k[2:])] = osprey.UID(binary.BigEndian.Uint64(v)) })
		each(tDedup, func(k, v []byte) { s.Dedup[string(k)] = osprey.UID(binary.BigEndian.Uint64(v)) })
		each(tTask, func(_, v []byte) {
			tk := new(Task)
			must(json.Unmarshal(v, tk))
			s.Tasks[tk.ID] = tk
			s.taskOrder = append(s.taskOrder, tk.ID)
		})
	})
	return s
}

// checkIndexes rebuilds every secondary index, counter and the state hash
// from the primary records and compares them with what the store holds.
// It returns the first difference, or "".
func checkIndexes(f *FSM) string {
	s := dumpState(f)
	want := map[string]bool{}
	put := func(k []byte) { want[string(k)] = true }
	cnt := counters{}.clone()
	for _, x := range s.Files {
		cnt.Files++
		if x.State == StateUploading {
			put(uploadAgeKey(x.UpdatedAt, x.UID))
		}
		for num, ch := range x.Chunks {
			for _, o := range chunkHolders(ch) {
				put(ownerRef{kind: refUpload, id: uint64(x.UID), n: num}.key(o))
			}
		}
	}
	for _, c := range s.Contents {
		cnt.Contents++
		cnt.ContentState[c.State]++
		cnt.ContentBytes += c.Size
		if len(c.Chunks) > 0 {
			put(stagedKey(c.ID))
		}
		for i := range c.Chunks {
			for _, o := range chunkHolders(&c.Chunks[i]) {
				put(ownerRef{kind: refContent, id: uint64(c.ID), n: uint32(i)}.key(o))
			}
		}
		if c.Location != nil && len(c.Location.Nodes) > 0 {
			cnt.ObjectHolders[len(c.Location.Nodes)]++
			for _, o := range c.Location.Nodes {
				put(ownerRef{kind: refContent, id: uint64(c.ID), n: refObject}.key(o))
			}
		}
	}
	for _, tk := range s.Tasks {
		cnt.Tasks[tk.State]++
		if due, ok := taskDue(tk); ok {
			put(runnableKey(due, tk.ID))
			cnt.live(tk.Type, 1)
		}
		if tk.State == TaskDead {
			put(deadKey(tk.ID))
		}
	}
	got := map[string]bool{}
	var hash stateHash
	f.read(func(t *tx) {
		t.scan([]byte{keyFormat}, []byte{keyFormat + 1}, func(k, v []byte) bool {
			switch k[1] {
			case tRunnable, tDead, tUploadAge, tOwner, tStaged:
				got[string(k)] = true
			}
			if hashed(k) {
				hash.add(k, v)
			}
			return true
		})
	})
	for k := range want {
		if !got[k] {
			return fmt.Sprintf("index key %q missing", k)
		}
	}
	for k := range got {
		if !want[k] {
			return fmt.Sprintf("stale index key %q", k)
		}
	}
	if msg := checkS3Indexes(f, s, &cnt); msg != "" {
		return msg
	}
	f.mu.RLock()
	have, haveHash := f.cnt.clone(), f.hash
	f.mu.RUnlock()
	norm := func(c counters) string {
		for k, v := range c.Tasks {
			if v == 0 {
				delete(c.Tasks, k)
			}
		}
		for k, v := range c.ContentState {
			if v == 0 {
				delete(c.ContentState, k)
			}
		}
		b, _ := json.Marshal(c)
		return string(b)
	}
	if a, b := norm(have), norm(cnt); a != b {
		return fmt.Sprintf("counters %s, rebuilt %s", a, b)
	}
	if !maps.Equal(have.Live, cnt.Live) {
		return fmt.Sprintf("live tasks by type %v, rebuilt %v", have.Live, cnt.Live)
	}
	if got := liveTasks(f.h.db); !maps.Equal(got, cnt.Live) {
		return fmt.Sprintf("live tasks counted from the index %v, rebuilt %v", got, cnt.Live)
	}
	if hash != haveHash {
		return "state hash differs from a full recomputation"
	}
	return ""
}

// refState normalises a state for comparison: task order is derived.
func refJSON(t testing.TB, s *state) []byte {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStoreMatchesReference applies the example log and seeded random
// histories both to the Pebble-backed FSM and to the reference model (the
// previous in-memory implementation): every result and the whole state
// must be the same after every entry, and every index must match its
// primary records.
func TestStoreMatchesReference(t *testing.T) {
	logs := map[string][]entry{"example": exampleLog()}
	withGoldens := exampleLog()
	for _, g := range goldenCommands() {
		if !newerThanReference(g.typ) {
			withGoldens = append(withGoldens, entry{g.typ, g.payload})
		}
	}
	logs["example+goldens"] = withGoldens
	for seed := uint64(1); seed <= 5; seed++ {
		logs[fmt.Sprintf("random-%d", seed)] = genLog(t, seed, scaled(1500))
	}
	for name, log := range logs {
		t.Run(name, func(t *testing.T) {
			a := newApplier(t)
			ref := newState()
			for i, e := range log {
				data := mustEncode(t, e.Type, e.Payload)
				typ, payload, err := Decode(data)
				if err != nil {
					t.Fatal(err)
				}
				wantData, wantErr := ref.apply(typ, payload)
				got := a.applyRaw(data)
				if w, g := resultString(&Result{Data: wantData, Err: wantErr}), resultString(got); w != g {
					t.Fatalf("entry %d (%s): result %s, reference %s", i, e.Type, g, w)
				}
				if i > 100 && i%11 != 0 && i != len(log)-1 {
					continue
				}
				if g, w := refJSON(t, dumpState(a.f)), refJSON(t, ref); !bytes.Equal(g, w) {
					t.Fatalf("entry %d (%s): state differs from the reference\n got %s\nwant %s", i, e.Type, g, w)
				}
				if msg := checkIndexes(a.f); msg != "" {
					t.Fatalf("entry %d (%s): %s", i, e.Type, msg)
				}
			}
			// Runnable tasks: the same set as the reference's (the store
			// lists them by due time, the reference by id).
			got := a.f.RunnableTasks(1<<62, allTaskTypes, 1<<30)
			var want []Task
			for _, id := range ref.taskOrder {
				if tk, ok := ref.Tasks[id]; ok && allTaskTypes[tk.Type] && tk.Runnable(1<<62) {
					want = append(want, cloneTask(tk))
				}
			}
			sort.Slice(got, func(i, j int) bool { return got[i].ID < got[j].ID })
			if !reflect.DeepEqual(got, want) && (len(got) != 0 || len(want) != 0) {
				t.Fatalf("runnable tasks differ: %d vs %d", len(got), len(want))
			}
		})
	}
}

// checkS3Indexes rebuilds the S3 back-references and bucket counts from
// the bindings and multipart uploads, adds the S3 counters to cnt, and
// checks each binding and upload against its file.
func checkS3Indexes(f *FSM, s *state, cnt *counters) string {
	want := map[string]string{}
	counts := map[string][2]int64{}
	var msg string
	fail := func(format string, args ...any) bool {
		msg = fmt.Sprintf(format, args...)
		return false
	}
	f.read(func(t *tx) {
		lo, hi := tableBounds(tBucket)
		t.scan(lo, hi, func(k, _ []byte) bool {
			counts[string(k[2:])] = [2]int64{}
			cnt.Buckets++
			return true
		})
		lo, hi = tableBounds(tObject)
		t.scan(lo, hi, func(k, v []byte) bool {
			n := int(k[2])
			bucket, key := string(k[3:3+n]), string(k[3+n:])
			c, ok := counts[bucket]
			if !ok {
				return fail("object %s/%s in a missing bucket", bucket, key)
			}
			r := mustDecode[objectRecord](v)
			x, ok := s.Files[r.UID]
			if !ok || x.State == StateUploading || x.Size != r.Size || x.MD5 != r.MD5 {
				return fail("object %s/%s bound to %s: file %+v", bucket, key, r.UID, x)
			}
			if _, dup := want[string(s3RefKey(r.UID))]; dup {
				return fail("uid %s bound twice", r.UID)
			}
			want[string(s3RefKey(r.UID))] = string(s3Ref{kind: refBound, bucket: bucket, key: key}.encode())
			c[0]++
			counts[bucket] = c
			cnt.Objects++
			return true
		})
		if msg != "" {
			return
		}
		lo, hi = tableBounds(tMultipart)
		t.scan(lo, hi, func(k, _ []byte) bool {
			n := int(k[2])
			bucket := string(k[3 : 3+n])
			key, uid := decodeMultipartKey(k, bucket)
			if !bytes.Equal(multipartKey(bucket, key, uid), k) {
				return fail("multipart key %x does not round-trip", k)
			}
			c, ok := counts[bucket]
			if !ok {
				return fail("upload %s/%s in a missing bucket", bucket, key)
			}
			if x, ok := s.Files[uid]; !ok || x.State != StateUploading {
				return fail("multipart upload %s/%s/%s: file %+v", bucket, key, uid, x)
			}
			if _, dup := want[string(s3RefKey(uid))]; dup {
				return fail("uid %s indexed twice", uid)
			}
			want[string(s3RefKey(uid))] = string(s3Ref{kind: refMultipart, bucket: bucket, key: key}.encode())
			c[1]++
			counts[bucket] = c
			cnt.MultipartUploads++
			return true
		})
		if msg != "" {
			return
		}
		for b, c := range counts {
			v := binary.BigEndian.AppendUint64(nil, uint64(c[0]))
			want[string(bucketCntKey(b))] = string(binary.BigEndian.AppendUint64(v, uint64(c[1])))
		}
		got := map[string]string{}
		for _, table := range []byte{tBucketCnt, tS3Ref} {
			lo, hi = tableBounds(table)
			t.scan(lo, hi, func(k, v []byte) bool {
				got[string(k)] = string(v)
				return true
			})
		}
		for k, v := range want {
			if g, ok := got[k]; !ok || g != v {
				msg = fmt.Sprintf("s3 index %q = %q, rebuilt %q", k, g, v)
				return
			}
		}
		for k, v := range got {
			if _, ok := want[k]; !ok {
				msg = fmt.Sprintf("stale s3 index %q = %q", k, v)
				return
			}
		}
	})
	return msg
}
