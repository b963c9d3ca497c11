package fsm

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"

	"github.com/osprey-storage/osprey"
)

// upload completes uid as a verified single upload of data, as the data
// path proposes it (md5 and sha256 hashed from the bytes), claiming md5,
// size and sha256 as given.
func (a *applier) upload(uid osprey.UID, md5 string, size int64, sha string, blob uint64) *Result {
	a.t.Helper()
	ch := Chunk{Blob: blob, Num: 1, Size: size, MD5: md5, Sum: blob, Owners: []osprey.NodeID{"n1", "n2"}}
	return a.apply(CmdFileComplete, FileComplete{UID: uid, Chunks: []Chunk{ch}, Size: size, MD5: md5, SHA256: sha, Time: t0 + 300})
}

func TestDedupKeyLayout(t *testing.T) {
	md5 := md5hex("x")
	for _, e := range []dedupEntry{
		{"", md5, 0, ""},
		{"acme", md5, 1 << 40, sha256hex("x")},
		{"a\x00b", md5, 7, sha256hex("y")},
	} {
		got, ok := decodeDedupKey(dedupKey(e.Tenant, e.MD5, e.Size, e.SHA256))
		if !ok || got != e {
			t.Fatalf("round trip %+v = %+v, %v", e, got, ok)
		}
	}
	// Tenants are framed: no tenant's keys share a prefix with another's.
	a, b := dedupPrefix("a", md5), dedupPrefix("ab", md5)
	if bytes.HasPrefix(b, a) || bytes.HasPrefix(a, b) {
		t.Fatal("tenant prefixes overlap")
	}
	if k := dedupKey("t", md5, 3, ""); k[0] != keyFormat || k[1] != tDedup {
		t.Fatalf("key %x not in table H", k)
	}
}

// TestDedupStrongKey: two contents that claim the same md5 but differ in
// SHA-256 (a collision pair, which a test cannot build cheaply; the
// commands claim it) or in size stay distinct, and each upload
// deduplicates onto the one whose md5, size and SHA-256 all match.
func TestDedupStrongKey(t *testing.T) {
	a := base(t)
	a.mustOK(CmdFilesCreate, FilesCreate{Time: t0, Files: []NewFile{{UID: 6, Name: "6.jpg"}, {UID: 7, Name: "7.jpg"}}})
	md5 := md5hex("collides")
	shaA, shaB := sha256hex("A"), sha256hex("B")
	wantErr(t, a.upload(1, md5, 100, shaA, 11), nil, "")
	wantErr(t, a.upload(2, md5, 100, shaB, 21), nil, "")
	wantErr(t, a.upload(3, md5, 200, shaA, 31), nil, "")
	for uid, want := range map[osprey.UID]osprey.UID{1: 1, 2: 2, 3: 3} {
		if got := a.file(uid).Content; got != want {
			t.Fatalf("file %d shares content %d, want its own", uid, got)
		}
	}
	if ct := a.content(2); ct.SHA256 != shaB || ct.Refs != 1 {
		t.Fatalf("content 2 %+v", ct)
	}
	// Later uploads find exactly their match.
	wantErr(t, a.upload(4, md5, 100, shaB, 41), nil, "")
	wantErr(t, a.upload(5, md5, 100, shaA, 51), nil, "")
	wantErr(t, a.upload(6, md5, 200, shaA, 61), nil, "")
	if a.file(4).Content != 2 || a.file(5).Content != 1 || a.file(6).Content != 3 {
		t.Fatalf("dedup picked contents %d %d %d, want 2 1 3", a.file(4).Content, a.file(5).Content, a.file(6).Content)
	}
	for id, sha := range map[osprey.UID]string{1: shaA, 2: shaB} {
		if ct, ok := a.f.DedupTarget("", md5, 100, sha); !ok || ct.ID != id {
			t.Fatalf("target of sha %s = %+v, %v", sha[:8], ct, ok)
		}
	}
	if _, ok := a.f.DedupTarget("", md5, 100, sha256hex("C")); ok {
		t.Fatal("a sha256 nobody stored has a target")
	}
	// A share names the content proven: a stale or wrong pairing creates
	// nothing.
	share := func(uid, content osprey.UID, sha string) osprey.UID {
		return a.mustOK(CmdDedupShare, DedupShare{UID: uid, Name: "s.jpg", Content: content, MD5: md5, Size: 100, SHA256: sha, Time: t0}).(DedupShareResult).UID
	}
	if got := share(70, 1, shaB); got != 0 {
		t.Fatalf("share of content 1 under content 2's key: %d", got)
	}
	if _, ok := a.f.File(70); ok {
		t.Fatal("a refused share created a file")
	}
	if got := share(71, 2, shaB); got != 71 || a.file(71).Content != 2 || a.content(2).Refs != 3 {
		t.Fatalf("share: %d, file %+v", got, a.file(71))
	}
	// md5-only /resume (the osproxy API) cannot tell them apart: it takes
	// the first in key order (smallest size, then sha256), deterministically.
	r := a.mustOK(CmdResume, Resume{Time: t0, Items: []ResumeItem{{UID: 80, Name: "r.jpg", MD5: md5}}}).(ResumeResult)
	first := osprey.UID(1)
	if shaB < shaA {
		first = 2
	}
	if r.UIDs[0] != 80 || a.file(80).Content != first {
		t.Fatalf("resume %v onto %d, want %d", r.UIDs, a.file(80).Content, first)
	}
	// Deleting one leaves the other's entry alone.
	a.mustOK(CmdFileDelete, FileDelete{UID: 3, Time: t0})
	a.mustOK(CmdFileDelete, FileDelete{UID: 6, Time: t0})
	if _, ok := a.f.DedupTarget("", md5, 200, shaA); ok {
		t.Fatal("deleted content still a target")
	}
	if ct, ok := a.f.DedupTarget("", md5, 100, shaA); !ok || ct.ID != 1 {
		t.Fatalf("content 1 lost its entry: %+v %v", ct, ok)
	}
	mustConsistent(t, a.f)
}

// TestDedupTenantIsolation: the same bytes stored by two tenants are two
// contents; no lookup (upload, /resume, share) crosses tenants.
func TestDedupTenantIsolation(t *testing.T) {
	a := base(t)
	a.mustOK(CmdFilesCreate, FilesCreate{Time: t0, Files: []NewFile{
		{UID: 10, Name: "a.jpg", Tenant: "acme"}, {UID: 11, Name: "b.jpg", Tenant: "acme"},
		{UID: 20, Name: "c.jpg", Tenant: "evil"}}})
	md5, sha := md5hex("secret"), sha256hex("secret")
	wantErr(t, a.upload(10, md5, 6, sha, 101), nil, "")
	if ct := a.content(10); ct.Tenant != "acme" || ct.SHA256 != sha {
		t.Fatalf("content %+v: want tenant acme and its sha256", ct)
	}
	// Another tenant asking by md5 gets nothing.
	r := a.mustOK(CmdResume, Resume{Time: t0, Items: []ResumeItem{
		{UID: 30, Name: "x.jpg", MD5: md5, Tenant: "evil"},
		{UID: 31, Name: "y.jpg", MD5: md5},
		{UID: 32, Name: "z.jpg", MD5: md5, Tenant: "acme"}}}).(ResumeResult)
	if r.UIDs[0] != 0 || r.UIDs[1] != 0 || r.UIDs[2] != 32 {
		t.Fatalf("resume uids %v, want [0 0 32]", r.UIDs)
	}
	if f := a.file(32); f.Tenant != "acme" || f.Content != 10 {
		t.Fatalf("resumed file %+v", f)
	}
	if _, ok := a.f.DedupTarget("evil", md5, 6, sha); ok {
		t.Fatal("tenant evil sees acme's content")
	}
	if got := a.mustOK(CmdDedupShare, DedupShare{UID: 33, Name: "s", Tenant: "evil", Content: 10, MD5: md5, Size: 6, SHA256: sha, Time: t0}).(DedupShareResult).UID; got != 0 {
		t.Fatalf("cross-tenant share created %d", got)
	}
	// Uploading the same bytes: same tenant dedups, the other stores its own.
	wantErr(t, a.upload(11, md5, 6, sha, 111), nil, "")
	wantErr(t, a.upload(20, md5, 6, sha, 201), nil, "")
	if a.file(11).Content != 10 || a.file(20).Content != 20 || a.content(20).Tenant != "evil" {
		t.Fatalf("contents %d %d", a.file(11).Content, a.file(20).Content)
	}
	if ct, ok := a.f.ContentByMD5("evil", md5); !ok || ct.ID != 20 {
		t.Fatalf("evil's own content %+v %v", ct, ok)
	}
	mustConsistent(t, a.f)
}

// TestTierRecordsSHA256: a merged content becomes a target only once
// tiering verified its md5, under the strong key holding the SHA-256 that
// pass computed; a content verified without a SHA-256 (an upload from an
// earlier build) is found md5-only and moves to its strong key when tiered.
func TestTierRecordsSHA256(t *testing.T) {
	a := base(t)
	md5, sha := md5hex("merged"), sha256hex("merged")
	a.put(1, 11, 1, "merged")
	wantErr(t, a.merge(1, 1, 6, md5), nil, "")
	tier := func(content osprey.UID, sha string) {
		t.Helper()
		for _, tk := range a.f.Tasks(TaskPending) {
			if tk.Type == TaskTier && tk.Target == content.String() {
				a.mustOK(CmdTaskLease, TaskLease{Node: "n1", IDs: []uint64{tk.ID}, Now: t0 + 1000, LeaseMillis: 60_000})
				a.mustOK(CmdTierDone, TierDone{TaskID: tk.ID, Node: "n1", Content: content, SHA256: sha,
					Location: Location{Bucket: "image", Key: content.String() + ".jpg"}, Now: t0 + 1100})
				return
			}
		}
		t.Fatalf("no tier task for %s", content)
	}
	if _, ok := a.f.ContentByMD5("", md5); ok {
		t.Fatal("unverified merge is a target")
	}
	tier(1, sha)
	if ct, ok := a.f.DedupTarget("", md5, 6, sha); !ok || ct.ID != 1 || ct.SHA256 != sha {
		t.Fatalf("tiered merge: %+v %v", ct, ok)
	}
	// An upload proposed without a sha256 (earlier build): weak entry.
	md52 := md5hex("old")
	wantErr(t, a.upload(2, md52, 3, "", 21), nil, "")
	if _, ok := a.f.ContentByMD5("", md52); !ok {
		t.Fatal("weak entry not found md5-only")
	}
	if _, ok := a.f.DedupTarget("", md52, 3, ""); ok {
		t.Fatal("a strong lookup found a content without sha256")
	}
	tier(2, sha256hex("old"))
	if ct, ok := a.f.DedupTarget("", md52, 3, sha256hex("old")); !ok || ct.ID != 2 {
		t.Fatalf("tiering did not move the entry: %+v %v", ct, ok)
	}
	if ct, ok := a.f.ContentByMD5("", md52); !ok || ct.ID != 2 {
		t.Fatal("md5-only lookup lost the tiered content")
	}
	mustConsistent(t, a.f)
}

// TestFalseMD5NeverAffectsOthers: a chunked upload declaring someone
// else's md5 and size neither gets their content nor becomes a target;
// tiering fails it and the honest content keeps its entry and its refs.
func TestFalseMD5NeverAffectsOthers(t *testing.T) {
	a := base(t)
	md5, sha := md5hex("victim"), sha256hex("victim")
	wantErr(t, a.upload(1, md5, 6, sha, 11), nil, "")
	a.put(2, 21, 1, "forged")
	r := a.merge(2, 1, 6, md5)
	wantErr(t, r, nil, "")
	if got := r.Data.(CompleteResult).File.Content; got != 2 {
		t.Fatalf("forged merge got content %d", got)
	}
	if a.content(1).Refs != 1 {
		t.Fatal("forged merge took a reference on the victim's content")
	}
	for _, tk := range a.f.Tasks(TaskPending) {
		if tk.Type == TaskTier && tk.Target == "2" {
			a.mustOK(CmdTaskLease, TaskLease{Node: "n1", IDs: []uint64{tk.ID}, Now: t0 + 1000, LeaseMillis: 60_000})
			a.mustOK(CmdTierFailed, TierFailed{TaskID: tk.ID, Node: "n1", Content: 2, Reason: "md5 mismatch", Now: t0 + 1100})
		}
	}
	if a.content(2).State != ContentFailed {
		t.Fatal("forged content not failed")
	}
	if ct, ok := a.f.DedupTarget("", md5, 6, sha); !ok || ct.ID != 1 || ct.Refs != 1 {
		t.Fatalf("victim's entry %+v %v", ct, ok)
	}
	mustConsistent(t, a.f)
}

// oldLayout rewrites a store into the layout of the build before the
// tenant/sha256 index: every 'H' entry becomes 'h' <md5> -> id, with the
// state hash maintained as that build maintained it.
func oldLayout(t *testing.T, f *FSM) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	tx := &tx{meta: f.meta, cnt: f.cnt.clone(), hash: f.hash, minRunnable: maxTimeID, minUpload: maxTimeID}
	tx.b = f.h.db.NewIndexedBatch()
	tx.r = tx.b
	lo, hi := tableBounds(tDedup)
	var keys [][]byte
	var vals [][]byte
	tx.scan(lo, hi, func(k, v []byte) bool {
		keys, vals = append(keys, append([]byte(nil), k...)), append(vals, append([]byte(nil), v...))
		return true
	})
	for i, k := range keys {
		e, _ := decodeDedupKey(k)
		if e.Tenant != "" || e.SHA256 != "" {
			t.Fatalf("old builds had no tenants nor sha256: %+v", e)
		}
		tx.del(k)
		tx.set(append([]byte{keyFormat, tMD5}, e.MD5...), vals[i])
	}
	tx.seal(f.applied)
	if err := tx.b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	f.hash = tx.hash
}

// TestDedupMigrationOnOpen: a data dir in the old layout ('h' md5 -> id)
// opens into the new one with the same state hash a store built by this
// build has, and md5-only lookups still find the old contents.
func TestDedupMigrationOnOpen(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig(dir)
	f, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := &applier{t: t, f: f}
	a.mustOK(CmdInitCluster, InitCluster{ClusterID: "c", Secret: exampleSecret(), Time: t0})
	a.mustOK(CmdFilesCreate, FilesCreate{Time: t0, Files: []NewFile{{UID: 1, Name: "a.jpg"}, {UID: 2, Name: "b.jpg"}, {UID: 3, Name: "c.jpg"}}})
	a.upload(1, md5hex("one"), 3, "", 11)
	a.upload(2, md5hex("two"), 3, "", 21)
	a.put(3, 31, 1, "three")
	a.merge(3, 1, 5, md5hex("three")) // unverified: in no index
	want, idx := f.Hash()
	oldLayout(t, f)
	if h, _ := f.Hash(); h == want {
		t.Fatal("old layout has the same hash: the test rewrites nothing")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	f, err = Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, gotIdx := f.Hash(); got != want || gotIdx != idx {
		t.Fatalf("migrated hash %s at %d, want %s at %d", got, gotIdx, want, idx)
	}
	for id, md5 := range map[osprey.UID]string{1: md5hex("one"), 2: md5hex("two")} {
		if ct, ok := f.ContentByMD5("", md5); !ok || ct.ID != id {
			t.Fatalf("content %d not found by md5 after migration", id)
		}
	}
	if _, ok := f.ContentByMD5("", md5hex("three")); ok {
		t.Fatal("migration indexed an unverified merge")
	}
	lo, hi := tableBounds(tMD5)
	f.read(func(tx *tx) {
		tx.scan(lo, hi, func(k, _ []byte) bool { t.Fatalf("old entry %q left", k); return false })
	})
	mustConsistent(t, f)
	// And it keeps applying.
	b := &applier{t: t, f: f, idx: idx}
	b.mustOK(CmdResume, Resume{Time: t0, Items: []ResumeItem{{UID: 9, Name: "r.jpg", MD5: md5hex("one")}}})
	if x, _ := f.File(9); x.Content != 1 {
		t.Fatalf("resume after migration: %+v", x)
	}
}

// TestDedupMigrationOfOldSnapshot: the v3 snapshot the previous build wrote
// of the example state restores into exactly the state (hash included)
// this build's snapshot of it holds.
func TestDedupMigrationOfOldSnapshot(t *testing.T) {
	old, err := os.ReadFile(filepath.Join("testdata", "snapshot-v3-md5index.golden"))
	if err != nil {
		t.Fatal(err)
	}
	f := mustRestore(t, old)
	mustConsistent(t, f)
	mustSameView(t, mustRestore(t, mustSnapshot(t, mustExample(t).f)), f)
	// A restore through raft's interface too (an install from a leader of
	// the previous build).
	g := New()
	if err := g.Restore(io.NopCloser(bytes.NewReader(old))); err != nil {
		t.Fatal(err)
	}
	r := g.Apply(&raft.Log{Index: 1 << 20, Type: raft.LogCommand, Data: mustEncode(t, CmdNoop, nil)})
	if res, ok := r.(*Result); !ok || res.Err != nil {
		t.Fatalf("apply after restore: %+v", r)
	}
	var n int
	g.read(func(tx *tx) {
		lo, hi := tableBounds(tDedup)
		tx.scan(lo, hi, func(_, _ []byte) bool { n++; return true })
	})
	if n == 0 {
		t.Fatal("no dedup entries after restoring the old snapshot")
	}
}
