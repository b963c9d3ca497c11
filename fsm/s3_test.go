package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"path"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/osprey-storage/osprey"
)

// s3Applier is an FSM with a cluster of three members, the start of every
// S3 test.
func s3Applier(t testing.TB) *applier {
	t.Helper()
	a := newApplier(t)
	a.mustOK(CmdInitCluster, InitCluster{ClusterID: "c-s3", Secret: exampleSecret(), Time: t0})
	for _, id := range []osprey.NodeID{"n1", "n2", "n3"} {
		a.mustOK(CmdNodeUpsert, NodeUpsert{ID: id, RaftAddr: string(id) + ":7000", Time: t0})
	}
	return a
}

// mustPut creates uid as a complete single-upload file holding data.
func mustPut(t testing.TB, a *applier, uid osprey.UID, data string) {
	t.Helper()
	a.mustOK(CmdFilesCreate, FilesCreate{Files: []NewFile{{UID: uid, Name: "o.bin", Bucket: "s3"}}, Time: t0})
	a.mustOK(CmdFileComplete, FileComplete{UID: uid, Chunks: []Chunk{chunk(uint64(uid)*10, 1, data, "n1", "n2")},
		Size: int64(len(data)), MD5: md5hex(data), Time: t0})
}

// mustConsistent checks every index, counter and invariant.
func mustConsistent(t testing.TB, f *FSM) {
	t.Helper()
	if msg := checkIndexes(f); msg != "" {
		t.Fatal(msg)
	}
	if msg := checkInvariants(dumpState(f)); msg != "" {
		t.Fatal(msg)
	}
}

func TestBuckets(t *testing.T) {
	a := s3Applier(t)
	a.mustOK(CmdBucketCreate, BucketCreate{Name: "beta", Time: t0 + 1})
	a.mustOK(CmdBucketCreate, BucketCreate{Name: "alpha", Time: t0 + 2})
	wantErr(t, a.apply(CmdBucketCreate, BucketCreate{Name: "alpha", Time: t0 + 3}), ErrBucketExists, "alpha")
	wantErr(t, a.apply(CmdBucketCreate, BucketCreate{Name: "al", Time: t0 + 3}), ErrInvalid, "")
	wantErr(t, a.apply(CmdBucketCreate, BucketCreate{Name: strings.Repeat("x", 64), Time: t0 + 3}), ErrInvalid, "")
	if got := a.f.Buckets(); len(got) != 2 || got[0].Name != "alpha" || got[1].Name != "beta" || got[0].Created != t0+2 {
		t.Fatalf("buckets %+v", got)
	}
	wantErr(t, a.apply(CmdBucketDelete, BucketDelete{Name: "gamma"}), ErrNoSuchBucket, "gamma")

	// Not empty while it has a key or a multipart upload.
	mustPut(t, a, 11, "hello")
	a.mustOK(CmdObjectBind, ObjectBind{Bucket: "alpha", Key: "k", UID: 11, Time: t0 + 4})
	a.mustOK(CmdMultipartCreate, MultipartCreate{Bucket: "alpha", Key: "m", UID: 12, Time: t0 + 4})
	if b, _ := a.f.Bucket("alpha"); b.Objects != 1 || b.Uploads != 1 {
		t.Fatalf("bucket %+v", b)
	}
	if st := a.f.Stats(); st["s3_buckets"] != 2 || st["s3_objects"] != 1 || st["s3_multipart_uploads"] != 1 {
		t.Fatalf("stats %v", st)
	}
	wantErr(t, a.apply(CmdBucketDelete, BucketDelete{Name: "alpha"}), ErrBucketNotEmpty, "")
	a.mustOK(CmdObjectUnbind, ObjectUnbind{Bucket: "alpha", Key: "k", Time: t0 + 5})
	wantErr(t, a.apply(CmdBucketDelete, BucketDelete{Name: "alpha"}), ErrBucketNotEmpty, "")
	a.mustOK(CmdMultipartAbort, MultipartAbort{Bucket: "alpha", Key: "m", UID: 12, Time: t0 + 5})
	mustConsistent(t, a.f)
	a.mustOK(CmdBucketDelete, BucketDelete{Name: "alpha"})
	if _, ok := a.f.Bucket("alpha"); ok {
		t.Fatal("alpha still exists")
	}
	// Every kind of S3 error is also its generic kind.
	for kind, generic := range map[error]error{ErrNoSuchBucket: ErrNotFound, ErrNoSuchUpload: ErrNotFound,
		ErrBucketExists: ErrConflict, ErrBucketNotEmpty: ErrConflict, ErrInvalidPart: ErrConflict} {
		if !errors.Is(errorf(kind, "x"), generic) || !errors.Is(errorf(kind, "x"), osprey.ErrNotFound) &&
			!errors.Is(errorf(kind, "x"), osprey.ErrConflict) {
			t.Errorf("%v does not wrap %v", kind, generic)
		}
	}
	mustConsistent(t, a.f)
}

// TestObjectBindOverwrite: rebinding a key deletes the old file in the
// same entry (content refcount, delete task); a reader sees one or the
// other.
func TestObjectBindOverwrite(t *testing.T) {
	a := s3Applier(t)
	a.mustOK(CmdBucketCreate, BucketCreate{Name: "bkt", Time: t0})
	mustPut(t, a, 21, "version one")
	mustPut(t, a, 22, "version two")
	// 23 shares 22's content (dedup).
	a.mustOK(CmdResume, Resume{Items: []ResumeItem{{UID: 23, Name: "c", Bucket: "s3", MD5: md5hex("version two")}}, Time: t0})

	wantErr(t, a.apply(CmdObjectBind, ObjectBind{Bucket: "nope", Key: "k", UID: 21}), ErrNoSuchBucket, "")
	wantErr(t, a.apply(CmdObjectBind, ObjectBind{Bucket: "bkt", Key: "k", UID: 99}), ErrNotFound, "")
	wantErr(t, a.apply(CmdObjectBind, ObjectBind{Bucket: "bkt", Key: "", UID: 21}), ErrInvalid, "")
	wantErr(t, a.apply(CmdObjectBind, ObjectBind{Bucket: "bkt", Key: strings.Repeat("k", MaxKeyLen+1), UID: 21}), ErrInvalid, "")
	a.mustOK(CmdFilesCreate, FilesCreate{Files: []NewFile{{UID: 24, Name: "u"}}, Time: t0})
	wantErr(t, a.apply(CmdObjectBind, ObjectBind{Bucket: "bkt", Key: "k", UID: 24}), ErrConflict, "uploading")

	meta := ObjectMeta{ContentType: "text/plain", UserMeta: map[string]string{"a": "1"}}
	res := a.mustOK(CmdObjectBind, ObjectBind{Bucket: "bkt", Key: "doc", UID: 21, Meta: meta, Time: t0 + 10}).(BindResult)
	if res.Replaced != 0 || res.Deleted != nil {
		t.Fatalf("first bind %+v", res)
	}
	o, ok := a.f.Object("bkt", "doc")
	if !ok || o.UID != 21 || o.Size != int64(len("version one")) || o.MD5 != md5hex("version one") ||
		o.Meta.ETag != md5hex("version one") || o.Meta.UserMeta["a"] != "1" || o.Time != t0+10 {
		t.Fatalf("object %+v", o)
	}
	// A uid names one key.
	wantErr(t, a.apply(CmdObjectBind, ObjectBind{Bucket: "bkt", Key: "other", UID: 21}), ErrConflict, "bound")
	// Binding the same uid again only updates the metadata.
	res = a.mustOK(CmdObjectBind, ObjectBind{Bucket: "bkt", Key: "doc", UID: 21, Time: t0 + 11,
		Meta: ObjectMeta{ContentType: "text/html"}}).(BindResult)
	if o, _ := a.f.Object("bkt", "doc"); res.Replaced != 0 || o.Meta.ContentType != "text/html" {
		t.Fatalf("rebind %+v %+v", res, o)
	}

	// Overwrite: 21's file and its only content go, in the same entry.
	ct21, _ := a.f.Content(21)
	tasksBefore := len(a.f.Tasks(""))
	res = a.mustOK(CmdObjectBind, ObjectBind{Bucket: "bkt", Key: "doc", UID: 22, Time: t0 + 12}).(BindResult)
	if res.Replaced != 21 || res.Deleted == nil || res.Deleted.Content == nil || res.Deleted.Content.ID != 21 ||
		!reflect.DeepEqual(res.Deleted.Garbage, ct21.Chunks) {
		t.Fatalf("overwrite %+v", res)
	}
	if _, ok := a.f.File(21); ok {
		t.Fatal("replaced file still exists")
	}
	if _, ok := a.f.Content(21); ok {
		t.Fatal("replaced content still exists")
	}
	if n := len(a.f.Tasks("")); n != tasksBefore+1 {
		t.Fatalf("%d tasks, want one more (delete)", n)
	}
	if o, _ := a.f.Object("bkt", "doc"); o.UID != 22 {
		t.Fatalf("object %+v", o)
	}
	if _, _, ok := a.f.ObjectKeyOf(21); ok {
		t.Fatal("21 still has a key")
	}
	mustConsistent(t, a.f)

	// Overwrite with a file sharing the content: the content stays, one
	// reference fewer.
	res = a.mustOK(CmdObjectBind, ObjectBind{Bucket: "bkt", Key: "doc", UID: 23, Time: t0 + 13}).(BindResult)
	if res.Replaced != 22 || res.Deleted == nil || res.Deleted.Content != nil || len(res.Deleted.Garbage) != 0 {
		t.Fatalf("overwrite onto shared content %+v", res)
	}
	if ct, ok := a.f.Content(22); !ok || ct.Refs != 1 {
		t.Fatalf("content 22 %+v", ct)
	}
	if b, _ := a.f.Bucket("bkt"); b.Objects != 1 {
		t.Fatalf("bucket %+v", b)
	}
	mustConsistent(t, a.f)
}

// TestUnbindAndNativeDelete: ObjectUnbind deletes the file, FileDelete of
// a bound uid removes its key; the indexes agree both ways.
func TestUnbindAndNativeDelete(t *testing.T) {
	a := s3Applier(t)
	a.mustOK(CmdBucketCreate, BucketCreate{Name: "bkt", Time: t0})
	mustPut(t, a, 31, "one")
	mustPut(t, a, 32, "two")
	a.mustOK(CmdObjectBind, ObjectBind{Bucket: "bkt", Key: "a/1", UID: 31, Time: t0})
	a.mustOK(CmdObjectBind, ObjectBind{Bucket: "bkt", Key: "a/2", UID: 32, Time: t0})
	if b, k, ok := a.f.ObjectKeyOf(32); !ok || b != "bkt" || k != "a/2" {
		t.Fatalf("key of 32: %q %q", b, k)
	}

	// Missing key: not an error; missing bucket is.
	if r := a.mustOK(CmdObjectUnbind, ObjectUnbind{Bucket: "bkt", Key: "zzz", Time: t0}).(UnbindResult); r.UID != 0 {
		t.Fatalf("unbind of a missing key %+v", r)
	}
	wantErr(t, a.apply(CmdObjectUnbind, ObjectUnbind{Bucket: "nob", Key: "zzz"}), ErrNoSuchBucket, "")

	r := a.mustOK(CmdObjectUnbind, ObjectUnbind{Bucket: "bkt", Key: "a/1", Time: t0 + 1}).(UnbindResult)
	if r.UID != 31 || r.Deleted.Content == nil {
		t.Fatalf("unbind %+v", r)
	}
	if _, ok := a.f.File(31); ok {
		t.Fatal("unbound file still exists")
	}
	mustConsistent(t, a.f)

	a.mustOK(CmdFileDelete, FileDelete{UID: 32, Time: t0 + 2})
	if _, ok := a.f.Object("bkt", "a/2"); ok {
		t.Fatal("key of a deleted file still bound")
	}
	if _, _, ok := a.f.ObjectKeyOf(32); ok {
		t.Fatal("back-reference of a deleted file")
	}
	if l, _ := a.f.ListObjects("bkt", "", "", "", 0); len(l.Objects) != 0 {
		t.Fatalf("list %+v", l)
	}
	mustConsistent(t, a.f)
	a.mustOK(CmdBucketDelete, BucketDelete{Name: "bkt"})
	mustConsistent(t, a.f)
}

// TestS3NamesDoNotCollide: names are framed, so bucket "abc" key "d/e"
// and bucket "abc/d" key "e" are distinct, and keys with 0x00 and 0xFF
// bytes are stored and listed as they are.
func TestS3NamesDoNotCollide(t *testing.T) {
	a := s3Applier(t)
	a.mustOK(CmdBucketCreate, BucketCreate{Name: "abc", Time: t0})
	a.mustOK(CmdBucketCreate, BucketCreate{Name: "abc/d", Time: t0})
	a.mustOK(CmdBucketCreate, BucketCreate{Name: "abc\x00", Time: t0})
	if err := CheckName("ab\xff", ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid UTF-8 bucket accepted: %v", err)
	}
	if err := CheckName("abc", "k\xff"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid UTF-8 key accepted: %v", err)
	}
	mustPut(t, a, 41, "x1")
	mustPut(t, a, 42, "x2")
	mustPut(t, a, 43, "x3")
	mustPut(t, a, 44, "x4")
	a.mustOK(CmdObjectBind, ObjectBind{Bucket: "abc", Key: "d/e", UID: 41})
	a.mustOK(CmdObjectBind, ObjectBind{Bucket: "abc/d", Key: "e", UID: 42})
	a.mustOK(CmdObjectBind, ObjectBind{Bucket: "abc\x00", Key: "\x00\U0010FFFF", UID: 43})
	a.mustOK(CmdObjectBind, ObjectBind{Bucket: "abc", Key: "d/e\x00", UID: 44})
	for _, c := range []struct {
		bucket, key string
		uid         osprey.UID
	}{{"abc", "d/e", 41}, {"abc/d", "e", 42}, {"abc\x00", "\x00\U0010FFFF", 43}, {"abc", "d/e\x00", 44}} {
		if o, ok := a.f.Object(c.bucket, c.key); !ok || o.UID != c.uid {
			t.Errorf("%q/%q: %+v", c.bucket, c.key, o)
		}
	}
	if l, _ := a.f.ListObjects("abc", "", "", "", 0); len(l.Objects) != 2 || l.Objects[0].Key != "d/e" {
		t.Fatalf("list abc %+v", l)
	}
	for _, key := range []string{"k", "k\x00", "k\x00\x01", "k\x01", "k\u00ff", "k\x00\u00ff"} {
		a.mustOK(CmdMultipartCreate, MultipartCreate{Bucket: "abc", Key: key, UID: osprey.UID(500 + len(key)*10 + int(key[len(key)-1]%7)), Time: t0})
	}
	ul, _ := a.f.MultipartUploads("abc", "k\x00", "", 0, 0)
	var keys []string
	for _, u := range ul.Uploads {
		keys = append(keys, u.Key)
	}
	if want := []string{"k\x00", "k\x00\x01", "k\x00\u00ff"}; !reflect.DeepEqual(keys, want) {
		t.Fatalf("uploads under k\\x00: %q, want %q", keys, want)
	}
	mustConsistent(t, a.f)
}

// listModel is ListObjects by brute force over sorted keys.
func listModel(keys []string, prefix, startAfter, delim string, max int) (objs, cps []string, truncated bool, next string) {
	skip := ""
	if rest, ok := strings.CutPrefix(startAfter, prefix); ok && delim != "" &&
		strings.Index(rest, delim) >= 0 && strings.Index(rest, delim)+len(delim) == len(rest) {
		skip = startAfter
	}
	n, last := 0, ""
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix) || k <= startAfter || skip != "" && strings.HasPrefix(k, skip) {
			continue
		}
		if delim != "" {
			if i := strings.Index(k[len(prefix):], delim); i >= 0 {
				cp := k[:len(prefix)+i+len(delim)]
				if cp == last {
					continue
				}
				if n == max {
					return objs, cps, true, next
				}
				cps, last, next = append(cps, cp), cp, cp
				n++
				continue
			}
		}
		if n == max {
			return objs, cps, true, next
		}
		objs, next = append(objs, k), k
		n++
	}
	return objs, cps, false, next
}

// TestListObjectsMatchesModel binds a few thousand random keys over a
// small alphabet (many shared prefixes, 0x00 and 0xFF bytes) and compares
// ListObjects with a brute-force model for random prefixes, delimiters,
// start points and page sizes, and walks whole listings page by page.
func TestListObjectsMatchesModel(t *testing.T) {
	a := s3Applier(t)
	a.mustOK(CmdBucketCreate, BucketCreate{Name: "list", Time: t0})
	a.mustOK(CmdBucketCreate, BucketCreate{Name: "lisu", Time: t0}) // a neighbour that must not leak in
	mustPut(t, a, 10, "shared")
	r := rand.New(rand.NewPCG(7, 7))
	// Valid UTF-8 only (see CheckName), with 0x00 and high bytes.
	alphabet := []string{"a", "b", "/", "\x00", "\u00ff", "\U0010FFFF", "."}
	randKey := func(maxLen int) string {
		var b strings.Builder
		for n := 1 + r.IntN(maxLen); n > 0; n-- {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		return b.String()
	}
	n := 3000
	if raceEnabled {
		n = 2000
	}
	seen := map[string]bool{}
	var keys []string
	for len(keys) < n {
		if k := randKey(7); !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	// Every key gets a file of its own sharing one content (one Resume).
	items := make([]ResumeItem, len(keys))
	for i := range keys {
		items[i] = ResumeItem{UID: osprey.UID(1000 + i), Name: "x", MD5: md5hex("shared")}
	}
	a.mustOK(CmdResume, Resume{Items: items, Time: t0})
	for i, k := range keys {
		a.mustOK(CmdObjectBind, ObjectBind{Bucket: "list", Key: k, UID: osprey.UID(1000 + i), Time: t0 + int64(i)})
	}
	mustPut(t, a, 11, "neighbour")
	a.mustOK(CmdObjectBind, ObjectBind{Bucket: "lisu", Key: "a", UID: 11})
	sort.Strings(keys)

	check := func(prefix, startAfter, delim string, max int) ObjectList {
		t.Helper()
		got, err := a.f.ListObjects("list", prefix, startAfter, delim, max)
		if err != nil {
			t.Fatal(err)
		}
		objs, cps, trunc, next := listModel(keys, prefix, startAfter, delim, max)
		var gotKeys []string
		for _, o := range got.Objects {
			gotKeys = append(gotKeys, o.Key)
			if o.Size != int64(len("shared")) || o.Bucket != "list" {
				t.Fatalf("object %+v", o)
			}
		}
		if !reflect.DeepEqual(gotKeys, objs) || !reflect.DeepEqual(nilIfEmpty(got.CommonPrefixes), cps) ||
			got.IsTruncated != trunc || got.Next != next {
			t.Fatalf("list(prefix %q, after %q, delim %q, max %d):\n got %q %q %v %q\nwant %q %q %v %q",
				prefix, startAfter, delim, max, gotKeys, got.CommonPrefixes, got.IsTruncated, got.Next,
				objs, cps, trunc, next)
		}
		return got
	}
	for i := 0; i < 400; i++ {
		prefix, startAfter, delim := "", "", ""
		if r.IntN(3) > 0 {
			prefix = randKey(3)
		}
		switch r.IntN(4) {
		case 0:
			startAfter = randKey(5)
		case 1:
			startAfter = keys[r.IntN(len(keys))]
		case 2:
			startAfter = prefix + randKey(3)
		}
		switch r.IntN(4) {
		case 0, 1:
			delim = "/"
		case 2:
			delim = "\x00\u00ff"
		}
		check(prefix, startAfter, delim, 1+r.IntN(60))
	}
	// Whole walks page by page equal one big page.
	for _, c := range []struct{ prefix, delim string }{{"", ""}, {"", "/"}, {"a", "/"}, {"a/", "/"}, {"b", "."}, {"\x00", "\x00\u00ff"}} {
		all := check(c.prefix, "", c.delim, 1<<20)
		var objs, cps []string
		after := ""
		for pages := 0; ; pages++ {
			p := check(c.prefix, after, c.delim, 37)
			for _, o := range p.Objects {
				objs = append(objs, o.Key)
			}
			cps = append(cps, p.CommonPrefixes...)
			if !p.IsTruncated {
				break
			}
			after = p.Next
			if pages > len(keys) {
				t.Fatal("pagination does not end")
			}
		}
		var allKeys []string
		for _, o := range all.Objects {
			allKeys = append(allKeys, o.Key)
		}
		if !reflect.DeepEqual(objs, allKeys) || !reflect.DeepEqual(nilIfEmpty(cps), nilIfEmpty(all.CommonPrefixes)) {
			t.Fatalf("paged walk of %+v differs from one page", c)
		}
	}
	if _, err := a.f.ListObjects("none", "", "", "", 0); !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("list of a missing bucket: %v", err)
	}
	mustConsistent(t, a.f)
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// TestMultipart: parts may be re-uploaded (the replaced copy is
// garbage), completed from a non-contiguous subset in order (the others
// are garbage), and the completion binds the key in the same entry.
func TestMultipart(t *testing.T) {
	a := s3Applier(t)
	a.mustOK(CmdBucketCreate, BucketCreate{Name: "mpu", Time: t0})
	wantErr(t, a.apply(CmdMultipartCreate, MultipartCreate{Bucket: "none", Key: "k", UID: 60, Time: t0}), ErrNoSuchBucket, "")
	meta := ObjectMeta{ContentType: "video/mp4", UserMeta: map[string]string{"x": "y"}}
	up := a.mustOK(CmdMultipartCreate, MultipartCreate{Bucket: "mpu", Key: "dir/movie.MP4", UID: 60, Meta: meta, Time: t0}).(MultipartUpload)
	if up.UID != 60 || up.Initiated != t0 {
		t.Fatalf("upload %+v", up)
	}
	wantErr(t, a.apply(CmdMultipartCreate, MultipartCreate{Bucket: "mpu", Key: "k", UID: 60, Time: t0}), ErrConflict, "exists")
	if f, _ := a.f.File(60); f.Name != "movie.MP4" || f.Bucket != "mpu" || f.State != StateUploading {
		t.Fatalf("file %+v", f)
	}
	if u, ok := a.f.MultipartUploadOf(60); !ok || u.Key != "dir/movie.MP4" || u.Meta.ContentType != "video/mp4" {
		t.Fatalf("upload of 60: %+v", u)
	}
	if _, _, ok := a.f.ObjectKeyOf(60); ok {
		t.Fatal("an upload in progress has no key yet")
	}
	put := func(blob uint64, num uint32, data string) ChunkPutResult {
		return a.mustOK(CmdChunkPut, ChunkPut{UID: 60, Chunk: chunk(blob, num, data, "n1", "n2"), Time: t0 + 1}).(ChunkPutResult)
	}
	put(601, 1, "aa")
	put(602, 2, "bb")
	put(603, 3, "cc")
	put(607, 7, "gg")
	gcBefore := len(a.f.Tasks(""))
	if r := put(613, 3, "CC"); r.Replaced == nil || r.Replaced.Blob != 603 {
		t.Fatalf("re-upload of part 3: %+v", r)
	}
	if len(a.f.Tasks("")) != gcBefore+1 {
		t.Fatal("replaced part not queued for gc")
	}
	parts, err := a.f.MultipartParts("mpu", "dir/movie.MP4", 60, 0, 2)
	if err != nil || len(parts.Parts) != 2 || parts.Parts[1].Num != 2 || !parts.IsTruncated || parts.Next != 2 {
		t.Fatalf("parts page 1: %+v %v", parts, err)
	}
	parts, _ = a.f.MultipartParts("mpu", "dir/movie.MP4", 60, 2, 2)
	if len(parts.Parts) != 2 || parts.Parts[0].Blob != 613 || parts.Parts[1].Num != 7 || parts.IsTruncated {
		t.Fatalf("parts page 2: %+v", parts)
	}
	if _, err := a.f.MultipartParts("mpu", "other", 60, 0, 0); !errors.Is(err, ErrNoSuchUpload) {
		t.Fatalf("parts of a wrong key: %v", err)
	}

	// A native completion of a multipart upload is refused.
	wantErr(t, a.apply(CmdMerge, Merge{UID: 60, Num: 1, Size: 2, MD5: md5hex("aa"), Time: t0 + 2}), ErrConflict, "multipart")
	wantErr(t, a.apply(CmdFileComplete, FileComplete{UID: 60, Chunks: []Chunk{chunk(699, 1, "z")}, Size: 1, MD5: md5hex("z"), Time: t0 + 2}), ErrConflict, "multipart")

	// An existing binding of the key is replaced by the completion.
	mustPut(t, a, 61, "old movie")
	a.mustOK(CmdObjectBind, ObjectBind{Bucket: "mpu", Key: "dir/movie.MP4", UID: 61, Time: t0 + 2})

	whole := md5hex("aaCCgg")
	mc := MultipartComplete{Bucket: "mpu", Key: "dir/movie.MP4", UID: 60, Parts: []uint32{1, 3, 7}, Size: 6, MD5: whole,
		ETag: "abc-3", Time: t0 + 3}
	bad := mc
	bad.Parts = []uint32{1, 5, 7}
	wantErr(t, a.apply(CmdMultipartComplete, bad), ErrInvalidPart, "5")
	bad.Parts = []uint32{3, 1}
	wantErr(t, a.apply(CmdMultipartComplete, bad), ErrInvalid, "ascending")
	bad.Parts = nil
	wantErr(t, a.apply(CmdMultipartComplete, bad), ErrInvalid, "")
	bad = mc
	bad.Size = 7
	wantErr(t, a.apply(CmdMultipartComplete, bad), ErrInvalidPart, "size")
	bad = mc
	bad.Key = "other"
	wantErr(t, a.apply(CmdMultipartComplete, bad), ErrNoSuchUpload, "")
	mustConsistent(t, a.f)

	res := a.mustOK(CmdMultipartComplete, mc).(MultipartCompleteResult)
	if len(res.Garbage) != 1 || res.Garbage[0].Blob != 602 {
		t.Fatalf("garbage %+v, want part 2", res.Garbage)
	}
	if res.Replaced != 61 || res.Deleted == nil || res.Deleted.Content == nil {
		t.Fatalf("replaced %+v", res.BindResult)
	}
	if res.File.State != StateComplete || res.File.Size != 6 || res.File.MD5 != whole {
		t.Fatalf("file %+v", res.File)
	}
	ct, _ := a.f.Content(60)
	var blobs []uint64
	for _, ch := range ct.Chunks {
		blobs = append(blobs, ch.Blob)
	}
	if !reflect.DeepEqual(blobs, []uint64{601, 613, 607}) {
		t.Fatalf("content chunks %v", blobs)
	}
	o, ok := a.f.Object("mpu", "dir/movie.MP4")
	if !ok || o.UID != 60 || o.Meta.ETag != "abc-3" || o.Meta.ContentType != "video/mp4" || o.Size != 6 {
		t.Fatalf("object %+v", o)
	}
	if l, _ := a.f.MultipartUploads("mpu", "", "", 0, 0); len(l.Uploads) != 0 {
		t.Fatalf("uploads after complete %+v", l)
	}
	if b, _ := a.f.Bucket("mpu"); b.Objects != 1 || b.Uploads != 0 {
		t.Fatalf("bucket %+v", b)
	}
	mustConsistent(t, a.f)
	// A retried complete is answered as already done.
	if r := a.mustOK(CmdMultipartComplete, mc).(MultipartCompleteResult); !r.Already {
		t.Fatalf("retry %+v", r)
	}
	bad = mc
	bad.MD5 = md5hex("other")
	wantErr(t, a.apply(CmdMultipartComplete, bad), ErrNoSuchUpload, "")
	// Parts of a completed upload are no longer listed.
	if _, err := a.f.MultipartParts("mpu", "dir/movie.MP4", 60, 0, 0); !errors.Is(err, ErrNoSuchUpload) {
		t.Fatalf("parts after complete: %v", err)
	}
	mustConsistent(t, a.f)
}

func TestMultipartAbortAndExpire(t *testing.T) {
	a := s3Applier(t)
	a.mustOK(CmdBucketCreate, BucketCreate{Name: "mpu", Time: t0})
	a.mustOK(CmdMultipartCreate, MultipartCreate{Bucket: "mpu", Key: "a", UID: 70, Time: t0})
	a.mustOK(CmdChunkPut, ChunkPut{UID: 70, Chunk: chunk(701, 1, "p1", "n1"), Time: t0})
	a.mustOK(CmdChunkPut, ChunkPut{UID: 70, Chunk: chunk(702, 2, "p2", "n2"), Time: t0})
	wantErr(t, a.apply(CmdMultipartAbort, MultipartAbort{Bucket: "mpu", Key: "b", UID: 70, Time: t0}), ErrNoSuchUpload, "")
	r := a.mustOK(CmdMultipartAbort, MultipartAbort{Bucket: "mpu", Key: "a", UID: 70, Time: t0 + 1}).(DeleteResult)
	if len(r.Garbage) != 2 {
		t.Fatalf("abort garbage %+v", r)
	}
	if _, ok := a.f.File(70); ok {
		t.Fatal("aborted file still exists")
	}
	wantErr(t, a.apply(CmdMultipartAbort, MultipartAbort{Bucket: "mpu", Key: "a", UID: 70, Time: t0}), ErrNoSuchUpload, "")
	mustConsistent(t, a.f)

	// Abandoned uploads expire with their index entries; a fresh one and
	// a native upload are judged by the same clock.
	a.mustOK(CmdMultipartCreate, MultipartCreate{Bucket: "mpu", Key: "old", UID: 71, Time: t0})
	a.mustOK(CmdChunkPut, ChunkPut{UID: 71, Chunk: chunk(711, 1, "p1", "n1"), Time: t0 + 10})
	a.mustOK(CmdMultipartCreate, MultipartCreate{Bucket: "mpu", Key: "new", UID: 72, Time: t0 + 1000})
	a.mustOK(CmdFilesCreate, FilesCreate{Files: []NewFile{{UID: 73, Name: "n"}}, Time: t0})
	res := a.mustOK(CmdExpire, Expire{Before: t0 + 500, Now: t0 + 2000}).(ExpireResult)
	if !reflect.DeepEqual(res.UIDs, []osprey.UID{71, 73}) {
		t.Fatalf("expired %v", res.UIDs)
	}
	l, _ := a.f.MultipartUploads("mpu", "", "", 0, 0)
	if len(l.Uploads) != 1 || l.Uploads[0].UID != 72 {
		t.Fatalf("uploads %+v", l)
	}
	if b, _ := a.f.Bucket("mpu"); b.Uploads != 1 {
		t.Fatalf("bucket %+v", b)
	}
	// A native delete of an upload drops its entry too.
	a.mustOK(CmdFileDelete, FileDelete{UID: 72, Time: t0 + 2000})
	if _, ok := a.f.MultipartUploadOf(72); ok {
		t.Fatal("entry of a deleted upload")
	}
	mustConsistent(t, a.f)
	a.mustOK(CmdBucketDelete, BucketDelete{Name: "mpu"})
}

// uploadsModel is MultipartUploads by brute force.
type upKey struct {
	key string
	uid osprey.UID
}

func TestMultipartUploadsListing(t *testing.T) {
	a := s3Applier(t)
	a.mustOK(CmdBucketCreate, BucketCreate{Name: "mpl", Time: t0})
	r := rand.New(rand.NewPCG(3, 3))
	var all []upKey
	uid := osprey.UID(100)
	for i := 0; i < 300; i++ {
		k := string([]byte{"ab\x00/"[r.IntN(4)], "ab\x00/"[r.IntN(4)], "ab\x00/"[r.IntN(4)]}[:1+r.IntN(3)])
		uid += osprey.UID(1 + r.IntN(3))
		a.mustOK(CmdMultipartCreate, MultipartCreate{Bucket: "mpl", Key: k, UID: uid, Time: t0})
		all = append(all, upKey{k, uid})
	}
	sort.Slice(all, func(i, j int) bool {
		return all[i].key < all[j].key || all[i].key == all[j].key && all[i].uid < all[j].uid
	})
	for i := 0; i < 200; i++ {
		prefix, keyMarker := "", ""
		var upMarker osprey.UID
		if r.IntN(2) == 0 {
			prefix = all[r.IntN(len(all))].key[:1]
		}
		if r.IntN(2) == 0 {
			m := all[r.IntN(len(all))]
			keyMarker = m.key
			if r.IntN(2) == 0 {
				upMarker = m.uid
			}
		}
		max := 1 + r.IntN(40)
		var want []upKey
		trunc := false
		for _, u := range all {
			if !strings.HasPrefix(u.key, prefix) {
				continue
			}
			if keyMarker != "" && (u.key < keyMarker || u.key == keyMarker && (upMarker == 0 || u.uid <= upMarker)) {
				continue
			}
			if len(want) == max {
				trunc = true
				break
			}
			want = append(want, u)
		}
		got, err := a.f.MultipartUploads("mpl", prefix, keyMarker, upMarker, max)
		if err != nil {
			t.Fatal(err)
		}
		var gotKeys []upKey
		for _, u := range got.Uploads {
			gotKeys = append(gotKeys, upKey{u.Key, u.UID})
		}
		if !reflect.DeepEqual(gotKeys, want) || got.IsTruncated != trunc {
			t.Fatalf("uploads(prefix %q, marker %q/%d, max %d):\n got %v %v\nwant %v %v", prefix, keyMarker, upMarker, max,
				gotKeys, got.IsTruncated, want, trunc)
		}
		if len(want) > 0 && (got.NextKey != want[len(want)-1].key || got.NextUID != want[len(want)-1].uid) {
			t.Fatalf("next %q/%d", got.NextKey, got.NextUID)
		}
	}
	mustConsistent(t, a.f)
}

// genS3Log builds a seeded random S3 history over a small name space, so
// commands both succeed and fail: buckets, puts, binds, unbinds, native
// deletes, multipart uploads with re-uploaded and skipped parts, aborts
// and expiry.
func genS3Log(seed uint64, n int) []entry {
	r := rand.New(rand.NewPCG(seed, seed^0x53))
	now := t0
	log := []entry{{CmdInitCluster, InitCluster{ClusterID: "c-s3", Secret: exampleSecret(), Time: t0}}}
	for _, id := range []osprey.NodeID{"n1", "n2", "n3"} {
		log = append(log, entry{CmdNodeUpsert, NodeUpsert{ID: id, RaftAddr: string(id) + ":7000", Time: t0}})
	}
	buckets := []string{"b-one", "b-two", "b/one", "b-spare"} // keys never go into b-spare
	keys := []string{"a", "a/b", "a/c", "b", "b\x00", "c/d/e"}
	var uid osprey.UID = 5000
	blob := uint64(90000)
	owners := []osprey.NodeID{"n1", "n2", "n3"}
	pick := func() (string, string) { return buckets[r.IntN(3)], keys[r.IntN(len(keys))] }
	recent := func() osprey.UID { return uid - osprey.UID(r.IntN(12)) }
	type upload struct {
		bucket, key string
		uid         osprey.UID
	}
	var uploads []upload
	pickUpload := func() upload {
		if len(uploads) == 0 || r.IntN(8) == 0 {
			b, k := pick()
			return upload{b, k, recent()}
		}
		return uploads[len(uploads)-1-r.IntN(min(len(uploads), 6))]
	}
	part := func(u osprey.UID, num uint32) entry {
		blob++
		return entry{CmdChunkPut, ChunkPut{UID: u, Chunk: chunk(blob, num, fmt.Sprintf("p%d", num), owners[r.IntN(3)]), Time: now}}
	}
	for len(log) < n {
		now += int64(r.IntN(300))
		b, k := pick()
		switch r.IntN(12) {
		case 0:
			log = append(log, entry{CmdBucketCreate, BucketCreate{Name: buckets[r.IntN(len(buckets))], Time: now}})
		case 1:
			log = append(log, entry{CmdBucketDelete, BucketDelete{Name: buckets[r.IntN(len(buckets))]}})
		case 2, 3: // a PUT: create, complete, bind
			uid++
			data := fmt.Sprintf("obj-%d", r.IntN(6)) // some dedup
			blob++
			log = append(log,
				entry{CmdFilesCreate, FilesCreate{Files: []NewFile{{UID: uid, Name: k, Bucket: b}}, Time: now}},
				entry{CmdFileComplete, FileComplete{UID: uid, Chunks: []Chunk{chunk(blob, 1, data, owners[r.IntN(3)])},
					Size: int64(len(data)), MD5: md5hex(data), Time: now}},
				entry{CmdObjectBind, ObjectBind{Bucket: b, Key: k, UID: uid, Time: now,
					Meta: ObjectMeta{ContentType: "t", UserMeta: map[string]string{"n": fmt.Sprint(r.IntN(3))}}}})
		case 4:
			log = append(log, entry{CmdObjectBind, ObjectBind{Bucket: b, Key: k, UID: recent(), Time: now}})
		case 5:
			log = append(log, entry{CmdObjectUnbind, ObjectUnbind{Bucket: b, Key: k, Time: now}})
		case 6:
			log = append(log, entry{CmdFileDelete, FileDelete{UID: recent(), Time: now}})
		case 7: // a multipart upload with its parts
			uid++
			uploads = append(uploads, upload{b, k, uid})
			log = append(log, entry{CmdMultipartCreate, MultipartCreate{Bucket: b, Key: k, UID: uid, Time: now}})
			for p := uint32(1); p <= 4; p++ {
				if r.IntN(4) > 0 {
					log = append(log, part(uid, p))
				}
			}
		case 8: // a re-uploaded (or stray) part
			log = append(log, part(pickUpload().uid, uint32(1+r.IntN(4))))
		case 9, 10:
			u := pickUpload()
			parts := []uint32{}
			size := int64(0)
			data := ""
			for p := uint32(1); p <= 4; p++ {
				if r.IntN(2) == 0 {
					parts = append(parts, p)
					size += 2
					data += fmt.Sprintf("p%d", p)
				}
			}
			log = append(log, entry{CmdMultipartComplete, MultipartComplete{Bucket: u.bucket, Key: u.key, UID: u.uid, Parts: parts,
				Size: size, MD5: md5hex(data), ETag: fmt.Sprintf("x-%d", len(parts)), Time: now}})
		case 11:
			if r.IntN(2) == 0 {
				u := pickUpload()
				log = append(log, entry{CmdMultipartAbort, MultipartAbort{Bucket: u.bucket, Key: u.key, UID: u.uid, Time: now}})
			} else {
				log = append(log, entry{CmdExpire, Expire{Before: now - 3000, Now: now}})
			}
		}
	}
	return log
}

// TestS3Determinism: the same S3 history gives the same results and hash
// on fresh replicas, keeps every index consistent along the way, and a
// replica restored from a mid-log snapshot ends in the same state.
func TestS3Determinism(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		log := genS3Log(seed, scaled(2000))
		a, b := newApplier(t), newApplier(t)
		ok := map[CommandType]int{}
		var mid []byte
		var midIdx int
		for i, e := range log {
			before, _ := a.f.Hash()
			ra, rb := a.apply(e.Type, e.Payload), b.apply(e.Type, e.Payload)
			if x, y := resultString(ra), resultString(rb); x != y {
				t.Fatalf("seed %d entry %d: %s vs %s", seed, i, x, y)
			}
			if ra.Err == nil {
				ok[e.Type]++
			} else if after, _ := a.f.Hash(); after != before {
				t.Fatalf("seed %d entry %d (%s): failed with %v but changed the state", seed, i, e.Type, ra.Err)
			}
			if i%97 == 0 {
				mustConsistent(t, a.f)
			}
			if i == len(log)/2 {
				mid, midIdx = mustSnapshot(t, a.f), i
			}
		}
		mustConsistent(t, a.f)
		t.Logf("seed %d: succeeded %v", seed, ok)
		ha, _ := a.f.Hash()
		if hb, _ := b.f.Hash(); ha != hb {
			t.Fatalf("seed %d: hashes differ", seed)
		}
		for _, typ := range []CommandType{CmdBucketCreate, CmdBucketDelete, CmdObjectBind, CmdObjectUnbind,
			CmdMultipartCreate, CmdMultipartComplete, CmdMultipartAbort} {
			if ok[typ] == 0 {
				t.Errorf("seed %d: %s never succeeded", seed, typ)
			}
		}
		// Restore the mid-log snapshot and apply the rest.
		c := &applier{t: t, f: mustRestore(t, mid), idx: uint64(midIdx + 1)}
		for _, e := range log[midIdx+1:] {
			c.apply(e.Type, e.Payload)
		}
		if hc, _ := c.f.Hash(); hc != ha {
			t.Fatalf("seed %d: restored replica's hash differs", seed)
		}
		mustSameS3(t, a.f, c.f)
		mustConsistent(t, c.f)
	}
}

// mustSameS3 compares everything the S3 reads return.
func mustSameS3(t testing.TB, want, got *FSM) {
	t.Helper()
	wb, gb := want.Buckets(), got.Buckets()
	if !reflect.DeepEqual(wb, gb) {
		t.Fatalf("buckets %+v, want %+v", gb, wb)
	}
	for _, b := range wb {
		wl, _ := want.ListObjects(b.Name, "", "", "", 1<<20)
		gl, _ := got.ListObjects(b.Name, "", "", "", 1<<20)
		if !reflect.DeepEqual(wl, gl) {
			t.Fatalf("bucket %s: objects differ", b.Name)
		}
		wu, _ := want.MultipartUploads(b.Name, "", "", 0, 1<<20)
		gu, _ := got.MultipartUploads(b.Name, "", "", 0, 1<<20)
		if !reflect.DeepEqual(wu, gu) {
			t.Fatalf("bucket %s: uploads differ", b.Name)
		}
	}
}

// TestS3SnapshotRoundTrip: S3 records are in the v3 stream, restored
// with their derived indexes and covered by the state hash; a state
// restored from a v1/v2 JSON snapshot has none.
func TestS3SnapshotRoundTrip(t *testing.T) {
	a := newApplier(t)
	a.applyLog(genS3Log(5, scaled(1500)))
	if len(a.f.Buckets()) == 0 {
		t.Fatal("history left no bucket")
	}
	snap := mustSnapshot(t, a.f)
	got := mustRestore(t, snap)
	h1, _ := a.f.Hash()
	if h2, _ := got.Hash(); h1 != h2 {
		t.Fatal("hash differs after restore")
	}
	mustSameS3(t, a.f, got)
	mustConsistent(t, got)
	if st, st2 := a.f.Stats(), got.Stats(); !reflect.DeepEqual(st, st2) {
		t.Fatalf("stats %v, want %v", st2, st)
	}
	if b2 := mustSnapshot(t, got); !bytes.Equal(snap, b2) {
		t.Fatal("snapshot of the restored state differs")
	}

	// The hash covers the bindings: the same files with a different
	// binding hash differently.
	x, y := s3Applier(t), s3Applier(t)
	for _, ap := range []*applier{x, y} {
		ap.mustOK(CmdBucketCreate, BucketCreate{Name: "hsh", Time: t0})
		mustPut(t, ap, 81, "h")
	}
	x.mustOK(CmdObjectBind, ObjectBind{Bucket: "hsh", Key: "k1", UID: 81, Time: t0})
	y.mustOK(CmdObjectBind, ObjectBind{Bucket: "hsh", Key: "k2", UID: 81, Time: t0})
	if hx, _ := x.f.Hash(); func() bool { hy, _ := y.f.Hash(); return hx == hy }() {
		t.Fatal("different bindings, same hash")
	}
}

// TestListObjectsSkipsCommonPrefixes: the keys under a common prefix are
// skipped with one seek, so a page costs what it returns.
func TestListObjectsSkipsCommonPrefixes(t *testing.T) {
	a := s3Applier(t)
	a.mustOK(CmdBucketCreate, BucketCreate{Name: "big", Time: t0})
	mustPut(t, a, 10, "shared")
	const n = 500
	items := make([]ResumeItem, n+2)
	for i := range items {
		items[i] = ResumeItem{UID: osprey.UID(100 + i), Name: "x", MD5: md5hex("shared")}
	}
	a.mustOK(CmdResume, Resume{Items: items, Time: t0})
	a.mustOK(CmdObjectBind, ObjectBind{Bucket: "big", Key: "a", UID: 100})
	for i := 0; i < n; i++ {
		a.mustOK(CmdObjectBind, ObjectBind{Bucket: "big", Key: fmt.Sprintf("dir/%04d", i), UID: osprey.UID(101 + i)})
	}
	a.mustOK(CmdObjectBind, ObjectBind{Bucket: "big", Key: "z", UID: osprey.UID(101 + n)})
	l, err := a.f.ListObjects("big", "", "", "/", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Objects) != 2 || !reflect.DeepEqual(l.CommonPrefixes, []string{"dir/"}) || l.IsTruncated || l.visited != 3 {
		t.Fatalf("list %+v (visited %d)", l, l.visited)
	}
	// Continuing after the prefix skips it too.
	l, _ = a.f.ListObjects("big", "", "dir/", "/", 10)
	if len(l.Objects) != 1 || l.Objects[0].Key != "z" || l.visited != 1 {
		t.Fatalf("list after dir/ %+v (visited %d)", l, l.visited)
	}
}

// TestObjectPut: one entry creates, completes (deduplicating) and binds;
// a failed put changes nothing.
func TestObjectPut(t *testing.T) {
	a := s3Applier(t)
	a.mustOK(CmdBucketCreate, BucketCreate{Name: "bkt", Time: t0})
	put := func(uid osprey.UID, key, data string) *Result {
		return a.apply(CmdObjectPut, ObjectPut{Bucket: "bkt", Key: key, UID: uid, Name: path.Base(key), FileBucket: "unknown",
			Chunks: []Chunk{chunk(uint64(uid)*10, 1, data, "n1", "n2")}, Size: int64(len(data)), MD5: md5hex(data), Time: t0 + int64(uid)})
	}
	before := dumpState(a.f)
	wantErr(t, a.apply(CmdObjectPut, ObjectPut{Bucket: "nope", Key: "k", UID: 30, Chunks: []Chunk{chunk(300, 1, "x", "n1")}, Size: 1, MD5: md5hex("x")}), ErrNoSuchBucket, "")
	wantErr(t, a.apply(CmdObjectPut, ObjectPut{Bucket: "bkt", Key: "k", UID: 30, Chunks: []Chunk{chunk(300, 2, "x", "n1")}, Size: 1, MD5: md5hex("x")}), ErrInvalid, "numbered")
	wantErr(t, a.apply(CmdObjectPut, ObjectPut{Bucket: "bkt", Key: "k", UID: 30, Chunks: []Chunk{chunk(300, 1, "x", "n1")}, Size: 5, MD5: md5hex("x")}), ErrInvalid, "size")
	if after := dumpState(a.f); !reflect.DeepEqual(before, after) {
		t.Fatal("a failed put changed the state")
	}
	if r := put(31, "dir/a.txt", "first"); r.Err != nil {
		t.Fatal(r.Err)
	}
	o, ok := a.f.Object("bkt", "dir/a.txt")
	if f, _ := a.f.File(31); !ok || o.UID != 31 || o.Meta.ETag != md5hex("first") || f.Name != "a.txt" || f.Bucket != "unknown" || f.State != StateComplete {
		t.Fatalf("object %+v file %+v", o, f)
	}
	// The same bytes under another key share the content; the new chunk
	// is garbage.
	r := put(32, "dir/b.txt", "first")
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	res := r.Data.(ObjectPutResult)
	if len(res.Garbage) != 1 {
		t.Fatalf("dedup put %+v", res)
	}
	if ct, _ := a.f.ContentByMD5("", md5hex("first")); ct.Refs != 2 {
		t.Fatalf("content refs %d, want 2", ct.Refs)
	}
	// Overwrite: the old file goes in the same entry.
	r = put(33, "dir/a.txt", "second")
	if r.Err != nil || r.Data.(ObjectPutResult).Replaced != 31 {
		t.Fatalf("overwrite %+v %v", r.Data, r.Err)
	}
	if _, ok := a.f.File(31); ok {
		t.Fatal("replaced file still there")
	}
	// A uid that exists is refused.
	wantErr(t, put(33, "dir/c.txt", "third"), ErrConflict, "exists")
	mustConsistent(t, a.f)
}

// A multipart upload completed without its md5 (this build no longer reads
// the parts back) is complete and bound at once, but no dedup target and
// without an md5 until the tiering pass records the md5 it computed; then
// the content and the file take it and the content is found by it.
func TestMultipartMD5FromTiering(t *testing.T) {
	a := s3Applier(t)
	a.mustOK(CmdNodeUpsert, NodeUpsert{ID: "n1", RaftAddr: "n1:7000", Time: t0})
	a.mustOK(CmdBucketCreate, BucketCreate{Name: "mpu", Time: t0})
	a.mustOK(CmdMultipartCreate, MultipartCreate{Bucket: "mpu", Key: "big.bin", UID: 70, Time: t0})
	a.mustOK(CmdChunkPut, ChunkPut{UID: 70, Chunk: chunk(701, 1, "part one ", "n1"), Time: t0})
	a.mustOK(CmdChunkPut, ChunkPut{UID: 70, Chunk: chunk(702, 2, "part two", "n1"), Time: t0})
	whole := md5hex("part one part two")
	mc := MultipartComplete{Bucket: "mpu", Key: "big.bin", UID: 70, Parts: []uint32{1, 2}, Size: 17, ETag: "e-2", Time: t0 + 1}
	res := a.mustOK(CmdMultipartComplete, mc).(MultipartCompleteResult)
	if res.File.State != StateComplete || res.File.MD5 != "" {
		t.Fatalf("file %+v: want complete, md5 not known yet", res.File)
	}
	if _, ok := a.f.ContentByMD5("", whole); ok {
		t.Fatal("a content whose md5 nobody computed is a dedup target")
	}
	if _, ok := a.f.ContentByMD5("", ""); ok {
		t.Fatal("the empty md5 matched a content")
	}
	// A retried complete is still answered as done.
	if r := a.mustOK(CmdMultipartComplete, mc).(MultipartCompleteResult); !r.Already {
		t.Fatalf("retry %+v", r)
	}
	ts := a.f.RunnableTasks(t0+1, map[string]bool{TaskTier: true}, 10)
	if len(ts) != 1 {
		t.Fatalf("%d tier tasks", len(ts))
	}
	a.mustOK(CmdTaskLease, TaskLease{Node: "n1", IDs: []uint64{ts[0].ID}, Now: t0 + 2, LeaseMillis: 60_000})
	a.mustOK(CmdTierDone, TierDone{TaskID: ts[0].ID, Node: "n1", Content: 70, Now: t0 + 3, MD5: whole,
		SHA256: sha256hex("part one part two"), Location: Location{Bucket: "mpu", Key: "70.bin"}})
	if f, _ := a.f.File(70); f.MD5 != whole {
		t.Fatalf("file md5 after tiering %q, want %s", f.MD5, whole)
	}
	if ct, ok := a.f.ContentByMD5("", whole); !ok || ct.ID != 70 || ct.MD5 != whole || !ct.Verified {
		t.Fatalf("content by md5 after tiering: %+v %v", ct, ok)
	}
	// After tiering, a retry of the complete (md5 "" as this build sends
	// it) is still recognised.
	if r := a.mustOK(CmdMultipartComplete, mc).(MultipartCompleteResult); !r.Already {
		t.Fatalf("retry after tiering %+v", r)
	}
	mustConsistent(t, a.f)
}
