package client

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const testChunk = 1024

func mustRandom(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func mustWriteFile(t *testing.T, dir, name string, content []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestChunkMath(t *testing.T) {
	const c = testChunk
	tests := []struct {
		name     string
		size     int64
		want     int
		lastSize int64
	}{
		{"empty", 0, 0, 0},
		{"one byte", 1, 0, 0},
		{"chunk-1", c - 1, 0, 0},
		{"chunk", c, 0, 0},
		{"chunk+1", c + 1, 2, 1},
		{"3 chunks", 3 * c, 3, c},
		{"3 chunks+1", 3*c + 1, 4, 1},
		{"1 MiB+1 (osproxy dropped the last byte)", 1<<20 + 1, 1025, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := ChunkCount(tt.size, c)
			if n != tt.want {
				t.Fatalf("ChunkCount(%d) = %d, want %d", tt.size, n, tt.want)
			}
			var sum, next int64
			for i := 1; i <= n; i++ {
				off, l := ChunkSpan(i, tt.size, c)
				if off != next || l <= 0 || l > c {
					t.Fatalf("chunk %d: off %d len %d (next %d)", i, off, l, next)
				}
				next = off + l
				sum += l
				if i == n && l != tt.lastSize {
					t.Errorf("last chunk %d bytes, want %d", l, tt.lastSize)
				}
			}
			if n > 0 && sum != tt.size {
				t.Errorf("chunks add up to %d, want %d", sum, tt.size)
			}
		})
	}
}

func TestPutFileSizes(t *testing.T) {
	tests := []struct {
		name       string
		size       int
		wantChunks int
	}{
		{"empty", 0, 0},
		{"one byte", 1, 0},
		{"chunk-1", testChunk - 1, 0},
		{"chunk", testChunk, 0},
		{"chunk+1", testChunk + 1, 2},
		{"many chunks", 7*testChunk + 3, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeServer(t)
			_, c := f.start(t)
			dir := t.TempDir()
			content := mustRandom(t, tt.size)
			p := mustWriteFile(t, dir, "f.bin", content)
			stateDir := filepath.Join(dir, "state")
			res, err := c.PutFile(ctxT(t), p, PutOptions{ChunkSize: testChunk, Parallel: 3, StateDir: stateDir})
			if err != nil {
				t.Fatal(err)
			}
			if res.Chunks != tt.wantChunks || res.Dedup || res.Resumed || res.Uploaded != int64(tt.size) {
				t.Errorf("result %+v", res)
			}
			ff := f.file(res.UID)
			if ff == nil || ff.state != StateComplete || !bytes.Equal(ff.content, content) || ff.md5 != md5hex(content) {
				t.Fatalf("server holds %+v", ff)
			}
			singles, merges := f.count("PUT "+APIPrefix+"/upload"), f.count("PUT "+APIPrefix+"/upload/merge")
			if tt.wantChunks == 0 && (singles != 1 || merges != 0) {
				t.Errorf("single upload: %d PUT /upload, %d merges", singles, merges)
			}
			if tt.wantChunks > 0 {
				if singles != 0 || merges != 1 || f.count("PUT "+APIPrefix+"/upload/multi") != tt.wantChunks {
					t.Errorf("chunked upload: %d singles, %d merges, %d chunks", singles, merges,
						f.count("PUT "+APIPrefix+"/upload/multi"))
				}
				for n := 1; n <= tt.wantChunks; n++ {
					if f.chunkPuts[n] != 1 {
						t.Errorf("chunk %d sent %d times", n, f.chunkPuts[n])
					}
				}
			}
			if ents, _ := os.ReadDir(stateDir); len(ents) != 0 {
				t.Errorf("state left behind: %v", ents)
			}
		})
	}
}

func TestPutDedup(t *testing.T) {
	f := newFakeServer(t)
	_, c := f.start(t)
	content := mustRandom(t, 3*testChunk)
	orig := f.mustPut("orig.bin", content)
	p := mustWriteFile(t, t.TempDir(), "copy.bin", content)
	res, err := c.PutFile(ctxT(t), p, PutOptions{ChunkSize: testChunk, StateDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Dedup || res.UID == orig || res.UID == "" {
		t.Errorf("result %+v (orig %s)", res, orig)
	}
	if ff := f.file(res.UID); ff == nil || ff.name != "copy.bin" {
		t.Errorf("alias %+v", ff)
	}
	if n := f.count("POST " + APIPrefix + "/link/upload"); n != 0 {
		t.Errorf("%d link calls after a dedup hit", n)
	}
	// --no-dedup uploads anyway.
	res, err = c.PutFile(ctxT(t), p, PutOptions{ChunkSize: testChunk, StateDir: "-", NoDedup: true})
	if err != nil || res.Dedup || res.Uploaded != int64(len(content)) {
		t.Errorf("no-dedup: %+v, %v", res, err)
	}
}

// TestPutDedupProvesPossession: put asks for a challenge and answers it
// from the local file instead of trusting /resume with an md5; a proof the
// server rejects (its bytes differ in the challenged range, or it has no
// such content) makes put upload the bytes; a server without the /dedup
// routes is asked with /resume.
func TestPutDedupProvesPossession(t *testing.T) {
	f := newFakeServer(t)
	_, c := f.start(t)
	content := mustRandom(t, 3*testChunk+5)
	orig := f.mustPut("orig.bin", content)
	p := mustWriteFile(t, t.TempDir(), "copy.bin", content)
	res, err := c.PutFile(ctxT(t), p, PutOptions{ChunkSize: testChunk, StateDir: "-"})
	if err != nil || !res.Dedup || res.UID == orig || res.Uploaded != 0 || f.file(res.UID).name != "copy.bin" {
		t.Fatalf("put: %+v, %v", res, err)
	}
	if f.count("POST "+APIPrefix+"/dedup/challenge") != 1 || f.count("POST "+APIPrefix+"/dedup/prove") != 1 {
		t.Fatalf("challenge/prove calls: %d/%d", f.count("POST "+APIPrefix+"/dedup/challenge"), f.count("POST "+APIPrefix+"/dedup/prove"))
	}
	if n := f.count("POST " + APIPrefix + "/resume"); n != 0 {
		t.Fatalf("%d md5-only /resume calls", n)
	}

	// The server's bytes differ from the local file in the challenged
	// range: the proof fails (403) and put uploads.
	f.mu.Lock()
	fake := append([]byte(nil), content...)
	fake[len(fake)-1] ^= 0xff
	for _, ff := range f.files {
		ff.content = fake
	}
	f.mu.Unlock()
	res, err = c.PutFile(ctxT(t), p, PutOptions{ChunkSize: testChunk, StateDir: "-"})
	if err != nil || res.Dedup || res.Uploaded != int64(len(content)) {
		t.Fatalf("put after a failed proof: %+v, %v", res, err)
	}

	// A server without the routes (an older build): md5-only /resume.
	g := newFakeServer(t)
	g.hook = func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/dedup/") {
			g.fail(w, 404, 1004, "no route")
			return true
		}
		return false
	}
	_, gc := g.start(t)
	g.mustPut("orig.bin", content)
	res, err = gc.PutFile(ctxT(t), p, PutOptions{ChunkSize: testChunk, StateDir: "-"})
	if err != nil || !res.Dedup || g.count("POST "+APIPrefix+"/resume") != 1 {
		t.Fatalf("fallback: %+v, %v", res, err)
	}
}

func TestPutResumeSkipsStoredChunks(t *testing.T) {
	f := newFakeServer(t)
	_, c := f.start(t)
	dir := t.TempDir()
	content := mustRandom(t, 5*testChunk+3) // 6 chunks
	p := mustWriteFile(t, dir, "big.bin", content)
	stateDir := filepath.Join(dir, "state")

	// First run: chunk 3 is refused (a non-retryable 400), as if the user
	// hit Ctrl-C after two chunks.
	f.hook = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == APIPrefix+"/upload/multi" && r.URL.Query().Get("chunkNum") == "3" {
			f.fail(w, 400, 1000, "injected")
			return true
		}
		return false
	}
	opts := PutOptions{ChunkSize: testChunk, Parallel: 1, StateDir: stateDir}
	if _, err := c.PutFile(ctxT(t), p, opts); !errors.Is(err, ErrInvalid) {
		t.Fatalf("first run: err = %v, want the injected 400", err)
	}
	if ents, _ := os.ReadDir(stateDir); len(ents) != 1 {
		t.Fatalf("state files after interruption: %v", ents)
	}
	f.hook = nil
	var notices bytes.Buffer
	opts.Notices = &notices
	res, err := c.PutFile(ctxT(t), p, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || res.Uploaded != int64(len(content))-2*testChunk {
		t.Errorf("result %+v", res)
	}
	if want := fmt.Sprintf("resuming uid %s (big.bin), 2 of 6 chunks already stored\n", res.UID); notices.String() != want {
		t.Errorf("notice %q, want %q", notices.String(), want)
	}
	for n := 1; n <= 6; n++ {
		if f.chunkPuts[n] != 1 {
			t.Errorf("chunk %d stored %d times, want 1", n, f.chunkPuts[n])
		}
	}
	if ff := f.file(res.UID); ff == nil || !bytes.Equal(ff.content, content) || ff.state != StateComplete {
		t.Fatalf("server holds %+v", ff)
	}
	if got := f.count("POST " + APIPrefix + "/link/upload"); got != 1 {
		t.Errorf("%d link calls, want 1 (resume reuses the uid)", got)
	}
	if ents, _ := os.ReadDir(stateDir); len(ents) != 0 {
		t.Errorf("state left after success: %v", ents)
	}
}

func TestPutResumeStaleState(t *testing.T) {
	dir := t.TempDir()
	content := mustRandom(t, 3*testChunk)
	p := mustWriteFile(t, dir, "big.bin", content)
	stateDir := filepath.Join(dir, "state")
	opts := PutOptions{ChunkSize: testChunk, Parallel: 1, StateDir: stateDir}

	f1 := newFakeServer(t)
	_, c1 := f1.start(t)
	f1.hook = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == APIPrefix+"/upload/multi" && r.URL.Query().Get("chunkNum") == "2" {
			f1.fail(w, 400, 1000, "injected")
			return true
		}
		return false
	}
	if _, err := c1.PutFile(ctxT(t), p, opts); err == nil {
		t.Fatal("first run succeeded")
	}
	// A different cluster does not know the uid: start over.
	f2 := newFakeServer(t)
	f2.nextUID = 5000
	_, c2 := f2.start(t)
	res, err := c2.PutFile(ctxT(t), p, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed || res.Uploaded != int64(len(content)) {
		t.Errorf("result %+v", res)
	}
	if ff := f2.file(res.UID); ff == nil || !bytes.Equal(ff.content, content) {
		t.Fatal("content not stored")
	}

	// A file changed since the state was written is not resumed either.
	f1.hook = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == APIPrefix+"/upload/multi" && r.URL.Query().Get("chunkNum") == "2" {
			f1.fail(w, 400, 1000, "injected")
			return true
		}
		return false
	}
	if _, err := c1.PutFile(ctxT(t), p, opts); err == nil {
		t.Fatal("interrupted run succeeded")
	}
	f1.hook = nil
	content2 := mustRandom(t, 3*testChunk+5)
	mustWriteFile(t, dir, "big.bin", content2)
	res, err = c1.PutFile(ctxT(t), p, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed || res.MD5 != md5hex(content2) {
		t.Errorf("changed file: %+v", res)
	}
}

func TestPutMergeConflictRefillsChunks(t *testing.T) {
	f := newFakeServer(t)
	_, c := f.start(t)
	content := mustRandom(t, 4*testChunk)
	p := mustWriteFile(t, t.TempDir(), "m.bin", content)
	var once sync.Once
	f.hook = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == APIPrefix+"/upload/merge" {
			once.Do(func() { // chunk 2 was lost before merge
				f.mu.Lock()
				delete(f.files[r.URL.Query().Get("uid")].chunks, 2)
				f.mu.Unlock()
			})
		}
		return false
	}
	res, err := c.PutFile(ctxT(t), p, PutOptions{ChunkSize: testChunk, StateDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	if f.chunkPuts[2] != 2 || f.count("PUT "+APIPrefix+"/upload/merge") != 2 {
		t.Errorf("chunk 2 sent %d times, %d merges", f.chunkPuts[2], f.count("PUT "+APIPrefix+"/upload/merge"))
	}
	if ff := f.file(res.UID); !bytes.Equal(ff.content, content) {
		t.Error("content differs")
	}
}

func TestPutSingleRetriedAfterUnknownOutcome(t *testing.T) {
	f := newFakeServer(t)
	_, c := f.start(t)
	content := mustRandom(t, 100)
	p := mustWriteFile(t, t.TempDir(), "s.bin", content)
	var first sync.Once
	f.hook = func(w http.ResponseWriter, r *http.Request) bool {
		answered := false
		if r.URL.Path == APIPrefix+"/upload" {
			first.Do(func() { // stored, but the reply is lost: 504
				f.handleUpload(httptestRecorder(), r)
				f.fail(w, 504, 1008, "outcome unknown")
				answered = true
			})
		}
		return answered
	}
	res, err := c.PutFile(ctxT(t), p, PutOptions{ChunkSize: testChunk, StateDir: "-"})
	if err != nil {
		t.Fatalf("PutFile: %v", err)
	}
	if f.count("PUT "+APIPrefix+"/upload") != 2 {
		t.Errorf("%d PUTs, want 2", f.count("PUT "+APIPrefix+"/upload"))
	}
	if ff := f.file(res.UID); !bytes.Equal(ff.content, content) {
		t.Error("content differs")
	}
}

func TestUploadMultipart(t *testing.T) {
	f := newFakeServer(t)
	_, c := f.start(t)
	content := mustRandom(t, 3000)
	p := mustWriteFile(t, t.TempDir(), "mp.jpg", content)
	res, err := c.PutFile(ctxT(t), p, PutOptions{ChunkSize: 1 << 20, StateDir: "-", Multipart: true})
	if err != nil {
		t.Fatal(err)
	}
	if ff := f.file(res.UID); !bytes.Equal(ff.content, content) {
		t.Error("content differs")
	}
}

func TestGetFile(t *testing.T) {
	content := mustRandom(t, 10_000)
	tests := []struct {
		name        string
		part        []byte // existing .part content (nil = none)
		setup       func(f *fakeServer)
		wantErr     error
		wantRanges  []string // Range headers seen, in order
		wantResumed bool
		wantGot     int64 // bytes received
		keepPart    bool  // on error: .part kept
	}{
		{name: "fresh", wantRanges: []string{""}, wantGot: 10_000},
		{name: "resume from part", part: content[:4000], wantRanges: []string{"bytes=4000-"}, wantResumed: true, wantGot: 6000},
		{name: "part complete", part: content, wantRanges: nil, wantResumed: true, wantGot: 0},
		{name: "part too long", part: append(slices0(content), 1, 2, 3), wantRanges: []string{""}, wantGot: 10_000},
		{name: "part with wrong bytes", part: mustRandom(t, 4000), wantRanges: []string{"bytes=4000-"}, wantResumed: true,
			wantErr: ErrChecksum, keepPart: true},
		{name: "server ignores Range", part: content[:4000], setup: func(f *fakeServer) { f.ignoreRange = true },
			wantRanges: []string{"bytes=4000-"}, wantResumed: true, wantGot: 10_000},
		{name: "If-Range mismatch sends all", part: content[:4000], setup: func(f *fakeServer) { f.etag = `"other"` },
			wantRanges: []string{"bytes=4000-"}, wantResumed: true, wantGot: 10_000},
		{name: "broken body resumes", setup: func(f *fakeServer) { f.cutAfter = 3000 },
			wantRanges: []string{"", "bytes=3000-", "bytes=6000-", "bytes=9000-"}, wantGot: 10_000},
		{name: "corrupt download", setup: func(f *fakeServer) { f.corrupt = true }, wantRanges: []string{""},
			wantErr: ErrChecksum, keepPart: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeServer(t)
			_, c := f.start(t)
			uid := f.mustPut("data.bin", content)
			if tt.setup != nil {
				tt.setup(f)
			}
			var mu sync.Mutex
			var ranges []string
			f.hook = func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path == APIPrefix+"/download" {
					mu.Lock()
					ranges = append(ranges, r.Header.Get("Range"))
					mu.Unlock()
				}
				return false
			}
			dir := t.TempDir()
			out := filepath.Join(dir, "out.bin")
			if tt.part != nil {
				mustWriteFile(t, dir, "out.bin"+PartSuffix, tt.part)
			}
			res, err := c.GetFile(ctxT(t), uid, out, GetOptions{})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if _, serr := os.Stat(out + PartSuffix); (serr == nil) != tt.keepPart {
					t.Errorf(".part kept = %v, want %v", serr == nil, tt.keepPart)
				}
				if _, serr := os.Stat(out); serr == nil {
					t.Error("output created despite the error")
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				got, _ := os.ReadFile(out)
				if !bytes.Equal(got, content) {
					t.Fatal("downloaded content differs")
				}
				if _, serr := os.Stat(out + PartSuffix); serr == nil {
					t.Error(".part left behind")
				}
				if res.Resumed != tt.wantResumed || res.Downloaded != tt.wantGot || res.MD5 != md5hex(content) || res.Size != 10_000 {
					t.Errorf("result %+v", res)
				}
			}
			if strings.Join(ranges, ",") != strings.Join(tt.wantRanges, ",") {
				t.Errorf("Range headers %q, want %q", ranges, tt.wantRanges)
			}
		})
	}
}

func slices0(b []byte) []byte { return append([]byte(nil), b...) }

func TestGetFileEdgeCases(t *testing.T) {
	f := newFakeServer(t)
	_, c := f.start(t)
	ctx := ctxT(t)
	dir := t.TempDir()

	empty := f.mustPut("empty.txt", nil)
	out := filepath.Join(dir, "empty.txt")
	if _, err := c.GetFile(ctx, empty, out, GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(out); err != nil || st.Size() != 0 {
		t.Errorf("empty file: %v %v", st, err)
	}

	if _, err := c.GetFile(ctx, "999999", filepath.Join(dir, "x"), GetOptions{}); !errors.Is(err, ErrNoLink) {
		t.Errorf("unknown uid: err = %v, want ErrNoLink", err)
	}

	content := mustRandom(t, 5000)
	uid := f.mustPut("../../etc/evil.bin", content)
	var buf bytes.Buffer
	if _, err := c.GetFile(ctx, uid, "-", GetOptions{Stdout: &buf}); err != nil || !bytes.Equal(buf.Bytes(), content) {
		t.Errorf("stdout: %v, %d bytes", err, buf.Len())
	}

	// An existing directory as output gets the stored base name.
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if res, err := c.GetFile(ctx, uid, sub, GetOptions{}); err != nil || res.Path != filepath.Join(sub, "evil.bin") {
		t.Errorf("into a directory: %+v %v", res, err)
	}

	// Default output name is the stored base name, never a path outside.
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	res, err := c.GetFile(ctx, uid, "", GetOptions{})
	if err != nil || res.Path != "evil.bin" {
		t.Fatalf("default name: %+v %v", res, err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "evil.bin")); !bytes.Equal(got, content) {
		t.Error("content differs")
	}
}

// TestGetFileParallel: --parallel fetches the pieces with concurrent Range
// requests written at their offsets, resumes from a .part.ranges list (or
// a sequential .part prefix) fetching only missing pieces, checks the md5
// at the end, and a changed file (If-Range mismatch) fails rather than
// mixing versions.
func TestGetFileParallel(t *testing.T) {
	old := parallelPiece
	parallelPiece = 1000
	t.Cleanup(func() { parallelPiece = old })
	content := mustRandom(t, 10_500) // 11 pieces, the last short
	for _, tt := range []struct {
		name        string
		prepare     func(out string) // leave a .part behind
		setup       func(f *fakeServer)
		wantRanges  int
		wantGot     int64
		wantResumed bool
		wantErr     error
	}{
		{name: "fresh", wantRanges: 11, wantGot: 10_500},
		{name: "resume from ranges", prepare: func(out string) {
			part := slices0(content)
			for i := 3000; i < 5000; i++ {
				part[i] = 0 // pieces 3 and 4 never arrived
			}
			writeFile(t, out+PartSuffix, part)
			writeFile(t, out+PartSuffix+RangesSuffix, []byte("0\n1\n2\n5\n6\n7\n8\n9\n10\n"))
		}, wantRanges: 2, wantGot: 2000, wantResumed: true},
		{name: "resume from sequential part", prepare: func(out string) {
			writeFile(t, out+PartSuffix, content[:4500])
		}, wantRanges: 7, wantGot: 6500, wantResumed: true},
		{name: "broken bodies resume inside the piece", setup: func(f *fakeServer) { f.cutAfter = 700 },
			wantRanges: 21, wantGot: 10_500}, // the last piece (500 bytes) is not cut
		{name: "file changed", setup: func(f *fakeServer) { f.etag = `"other"` }, wantErr: ErrProtocol},
		{name: "corrupt", setup: func(f *fakeServer) { f.corrupt = true }, wantErr: ErrChecksum},
	} {
		for _, sums := range []bool{false, true} {
			name := tt.name
			if sums {
				name += " with chunk sums"
			}
			t.Run(name, func(t *testing.T) {
				f := newFakeServer(t)
				_, c := f.start(t)
				uid := f.mustPut("data.bin", content)
				if sums {
					f.sumChunk = 700 // chunks across piece boundaries
				}
				if tt.setup != nil {
					tt.setup(f)
				}
				var ranges atomic.Int64
				f.hook = func(w http.ResponseWriter, r *http.Request) bool {
					if r.URL.Path == APIPrefix+"/download" {
						if r.Header.Get("Range") == "" {
							t.Errorf("request without Range")
						}
						ranges.Add(1)
					}
					return false
				}
				out := filepath.Join(t.TempDir(), "data.bin")
				if tt.prepare != nil {
					tt.prepare(out)
				}
				res, err := c.GetFile(ctxT(t), uid, out, GetOptions{Parallel: 4})
				if tt.wantErr != nil {
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("err = %v, want %v", err, tt.wantErr)
					}
					if sums && errors.Is(err, ErrChecksum) && !strings.Contains(err.Error(), "xxhash64") {
						t.Fatalf("a bad chunk was not caught by its sum: %v", err)
					}
					if _, err := os.Stat(out); err == nil {
						t.Fatal("output written despite the error")
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				got, err := os.ReadFile(out)
				if err != nil || !bytes.Equal(got, content) {
					t.Fatalf("output differs (%v)", err)
				}
				if n := ranges.Load(); int(n) != tt.wantRanges {
					t.Errorf("%d range requests, want %d", n, tt.wantRanges)
				}
				if res.Downloaded != tt.wantGot || res.Resumed != tt.wantResumed {
					t.Errorf("downloaded %d resumed %v, want %d %v", res.Downloaded, res.Resumed, tt.wantGot, tt.wantResumed)
				}
				// Chunk sums check a download fetched whole in this run; a
				// resumed one has pieces no answer described: the md5.
				want := VerifiedMD5
				if sums && !tt.wantResumed {
					want = VerifiedChunkSums
				}
				if res.Verified != want || res.MD5 != md5hex(content) {
					t.Errorf("verified by %q (md5 %s), want %q", res.Verified, res.MD5, want)
				}
				for _, p := range []string{out + PartSuffix, out + PartSuffix + RangesSuffix} {
					if _, err := os.Stat(p); err == nil {
						t.Errorf("%s left behind", p)
					}
				}
			})
		}
	}
}

// TestGetFileParallelSumsMissingFromOneAnswer: one range answered without
// chunk sums (a node of an earlier build, say) leaves chunks unchecked:
// the md5 of the whole file decides.
func TestGetFileParallelSumsMissingFromOneAnswer(t *testing.T) {
	old := parallelPiece
	parallelPiece = 1000
	t.Cleanup(func() { parallelPiece = old })
	content := mustRandom(t, 10_500)
	f := newFakeServer(t)
	_, c := f.start(t)
	uid := f.mustPut("data.bin", content)
	f.sumChunk = 1000
	f.hook = func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.Header.Get("Range"), "bytes=5000-") {
			r.Header.Del(headerChunkSums)
		}
		return false
	}
	out := filepath.Join(t.TempDir(), "data.bin")
	res, err := c.GetFile(ctxT(t), uid, out, GetOptions{Parallel: 4})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("output differs (%v)", err)
	}
	if res.Verified != VerifiedMD5 || res.MD5 != md5hex(content) {
		t.Fatalf("verified by %q (md5 %s), want the md5", res.Verified, res.MD5)
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestPutFileKnownMD5: a caller-supplied md5 is what the merge declares
// (the client does not hash the whole file itself); a wrong one leaves the
// file failed, as the server's check at tiering would.
func TestPutFileKnownMD5(t *testing.T) {
	content := mustRandom(t, 3*testChunk+5)
	for _, tt := range []struct {
		name  string
		md5   string
		state string
	}{
		{"right", strings.ToUpper(md5hex(content)), StateComplete},
		{"wrong", md5hex([]byte("other")), StateFailed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeServer(t)
			_, c := f.start(t)
			p := mustWriteFile(t, t.TempDir(), "f.bin", content)
			res, err := c.PutFile(ctxT(t), p, PutOptions{ChunkSize: testChunk, NoDedup: true, StateDir: "-", MD5: tt.md5})
			if err != nil {
				t.Fatal(err)
			}
			if res.MD5 != strings.ToLower(tt.md5) {
				t.Fatalf("result md5 %s, want %s", res.MD5, tt.md5)
			}
			if ff := f.file(res.UID); ff == nil || ff.md5 != strings.ToLower(tt.md5) || ff.state != tt.state {
				t.Fatalf("server holds %+v", ff)
			}
		})
	}
}

// TestGetFileParallelHashesWhileFetching: the md5 of a parallel download is
// computed as the finished pieces become contiguous, not after the last
// one: the request for the last piece is answered only once the hasher
// has got through every piece before it.
func TestGetFileParallelHashesWhileFetching(t *testing.T) {
	oldPiece := parallelPiece
	parallelPiece = 1000
	var hashed atomic.Int64
	testHookPrefixHashed = func(n int64) { hashed.Store(n) }
	t.Cleanup(func() { parallelPiece, testHookPrefixHashed = oldPiece, nil })
	content := mustRandom(t, 10_500)
	f := newFakeServer(t)
	_, c := f.start(t)
	uid := f.mustPut("data.bin", content)
	f.hook = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == APIPrefix+"/download" && strings.HasPrefix(r.Header.Get("Range"), "bytes=10000-") {
			deadline := time.Now().Add(10 * time.Second)
			for hashed.Load() < 10_000 {
				if time.Now().After(deadline) {
					t.Errorf("last piece requested; the hasher is at %d of the 10000 bytes before it", hashed.Load())
					break
				}
				time.Sleep(time.Millisecond)
			}
		}
		return false
	}
	out := filepath.Join(t.TempDir(), "data.bin")
	if _, err := c.GetFile(ctxT(t), uid, out, GetOptions{Parallel: 4}); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("output differs (%v)", err)
	}
	if hashed.Load() != 10_500 {
		t.Fatalf("hasher ended at %d", hashed.Load())
	}
}

// TestGetFileParallelChecksChunksAsTheyStream: chunks an answer carries
// whole are checked as they stream (a bad one fails the piece there), the
// ones spanning two pieces once both are in; both kinds count.
func TestGetFileParallelChecksChunksAsTheyStream(t *testing.T) {
	old := parallelPiece
	parallelPiece = 1000
	t.Cleanup(func() { parallelPiece = old })
	content := mustRandom(t, 10_500)
	for _, tt := range []struct {
		name    string
		chunk   int64
		corrupt bool
	}{
		{"whole chunks", 500, false},
		{"whole chunks, one bad", 500, true},
		{"chunks across pieces", 1500, false},
		{"chunks across pieces, one bad", 1500, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeServer(t)
			_, c := f.start(t)
			uid := f.mustPut("data.bin", content)
			f.sumChunk, f.corrupt = tt.chunk, tt.corrupt
			out := filepath.Join(t.TempDir(), "data.bin")
			res, err := c.GetFile(ctxT(t), uid, out, GetOptions{Parallel: 3})
			if tt.corrupt {
				if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "bytes 5000-5499") && !strings.Contains(err.Error(), "bytes 4500-5999") {
					t.Fatalf("err = %v, want the bad chunk named", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(out); !bytes.Equal(got, content) || res.Verified != VerifiedChunkSums {
				t.Fatalf("verified by %q, output equal %v", res.Verified, bytes.Equal(got, content))
			}
		})
	}
}
