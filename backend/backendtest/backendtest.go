package backendtest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/backend"
)

// LargeSize is the size of the objects the suite uses to force multipart
// uploads. Configure the backend under test with a part size below it.
const LargeSize = 12 << 20

const mib = 1 << 20

// bucket is the logical bucket most subtests use.
const bucket = "image"

// Run runs the conformance suite. newBackend must return a fresh backend
// whose buckets are empty and not shared with any other call; it may
// register its own cleanup with t.Cleanup. The suite closes each backend
// when its subtest ends (Close must be idempotent).
func Run(t *testing.T, newBackend func(t *testing.T) backend.Backend) {
	s := &suite{newBackend: newBackend}
	tests := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"EnsureBucket", s.testEnsureBucket},
		{"RoundTrip", s.testRoundTrip},
		{"RoundTripWithoutMD5", s.testRoundTripWithoutMD5},
		{"Range", s.testRange},
		{"RangeLarge", s.testRangeLarge},
		{"NotFound", s.testNotFound},
		{"Delete", s.testDelete},
		{"Overwrite", s.testOverwrite},
		{"OverwriteAtomic", s.testOverwriteAtomic},
		{"ChecksumMismatch", s.testChecksumMismatch},
		{"InvalidMD5", s.testInvalidMD5},
		{"BadBody", s.testBadBody},
		{"ExtraBytesIgnored", s.testExtraBytesIgnored},
		{"ContextCanceled", s.testContextCanceled},
		{"CancelDuringPut", s.testCancelDuringPut},
		{"CancelDuringGet", s.testCancelDuringGet},
		{"ConcurrentPuts", s.testConcurrentPuts},
		{"Keys", s.testKeys},
		{"KeyRules", s.testKeyRules},
		{"Check", s.testCheck},
		{"Close", s.testClose},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.fn)
	}
}

type suite struct {
	newBackend func(t *testing.T) backend.Backend
}

// mustBackend returns a fresh backend with bucket ensured.
func (s *suite) mustBackend(t *testing.T) backend.Backend {
	t.Helper()
	b := s.newBackend(t)
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := b.EnsureBucket(ctxFor(t), bucket); err != nil {
		t.Fatalf("EnsureBucket(%q): %v", bucket, err)
	}
	return b
}

// ctxFor returns a context that ends with the test (or after a generous
// deadline, so a hung backend fails the test instead of the whole run).
func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// payload returns n deterministic pseudo-random bytes for seed.
func payload(seed uint64, n int) []byte {
	var key [32]byte
	key[0] = byte(seed)
	key[1] = byte(seed >> 8)
	r := rand.NewChaCha8(key)
	b := make([]byte, n)
	_, _ = r.Read(b)
	return b
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

// onlyReader hides every method but Read (no io.ReaderAt, io.Seeker,
// io.WriterTo), as a network body would.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func body(b []byte) io.Reader { return onlyReader{bytes.NewReader(b)} }

func mustPut(t *testing.T, b backend.Backend, key string, data []byte, opts backend.PutOptions) backend.ObjectInfo {
	t.Helper()
	info, err := b.Put(ctxFor(t), bucket, key, body(data), int64(len(data)), opts)
	if err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", key, len(data), err)
	}
	if info.Size != int64(len(data)) {
		t.Fatalf("Put(%q) returned size %d, want %d", key, info.Size, len(data))
	}
	if info.MD5 != "" && info.MD5 != md5hex(data) {
		t.Fatalf("Put(%q) returned md5 %s, want %s", key, info.MD5, md5hex(data))
	}
	if info.Bucket != bucket || info.Key != key {
		t.Fatalf("Put returned bucket/key %q/%q, want %q/%q", info.Bucket, info.Key, bucket, key)
	}
	return info
}

func mustGet(t *testing.T, b backend.Backend, key string, offset, length int64) []byte {
	t.Helper()
	rc, err := b.Get(ctxFor(t), bucket, key, offset, length)
	if err != nil {
		t.Fatalf("Get(%q, %d, %d): %v", key, offset, length, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q, %d, %d): reading: %v", key, offset, length, err)
	}
	return got
}

// mustContent checks that key holds exactly want, through Get and Stat.
// withMD5 says the object was stored with PutOptions.MD5, so Stat must
// report it.
func mustContent(t *testing.T, b backend.Backend, key string, want []byte, withMD5 bool) {
	t.Helper()
	got := mustGet(t, b, key, 0, -1)
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q): got %d bytes (md5 %s), want %d bytes (md5 %s)", key, len(got), md5hex(got), len(want), md5hex(want))
	}
	info, err := b.Stat(ctxFor(t), bucket, key)
	if err != nil {
		t.Fatalf("Stat(%q): %v", key, err)
	}
	if info.Size != int64(len(want)) {
		t.Fatalf("Stat(%q).Size = %d, want %d", key, info.Size, len(want))
	}
	if info.MD5 != "" || withMD5 {
		if info.MD5 != md5hex(want) {
			t.Fatalf("Stat(%q).MD5 = %q, want %s", key, info.MD5, md5hex(want))
		}
	}
	if info.Bucket != bucket || info.Key != key {
		t.Fatalf("Stat returned bucket/key %q/%q, want %q/%q", info.Bucket, info.Key, bucket, key)
	}
	if d := time.Since(info.ModTime); d < -time.Hour || d > time.Hour {
		t.Fatalf("Stat(%q).ModTime = %v, not within an hour of now", key, info.ModTime)
	}
}

func mustMissing(t *testing.T, b backend.Backend, key string) {
	t.Helper()
	if _, err := b.Stat(ctxFor(t), bucket, key); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Stat(%q) = %v, want ErrNotFound", key, err)
	}
	rc, err := b.Get(ctxFor(t), bucket, key, 0, -1)
	if err == nil {
		rc.Close()
	}
	if !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Get(%q) = %v, want ErrNotFound", key, err)
	}
}

func (s *suite) testEnsureBucket(t *testing.T) {
	b := s.newBackend(t)
	t.Cleanup(func() { _ = b.Close() })
	ctx := ctxFor(t)
	for _, name := range osprey.Buckets {
		for i := range 2 {
			if err := b.EnsureBucket(ctx, name); err != nil {
				t.Fatalf("EnsureBucket(%q) call %d: %v", name, i+1, err)
			}
		}
		data := []byte("in " + name)
		if _, err := b.Put(ctx, name, "k", body(data), int64(len(data)), backend.PutOptions{}); err != nil {
			t.Fatalf("Put into %q: %v", name, err)
		}
	}
	// Buckets are separate namespaces.
	for _, name := range osprey.Buckets {
		rc, err := b.Get(ctx, name, "k", 0, -1)
		if err != nil {
			t.Fatalf("Get from %q: %v", name, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || string(got) != "in "+name {
			t.Fatalf("Get from %q = %q, %v; want %q", name, got, err, "in "+name)
		}
	}
	for _, name := range []string{"", "Image", "../x", "a/b", "-x", "x-", "a_b", ".hidden", strings.Repeat("a", 64)} {
		if err := b.EnsureBucket(ctx, name); !errors.Is(err, backend.ErrInvalid) {
			t.Errorf("EnsureBucket(%q) = %v, want ErrInvalid", name, err)
		}
	}
}

func (s *suite) testRoundTrip(t *testing.T) {
	b := s.mustBackend(t)
	for _, n := range []int{0, 1, mib - 1, mib, mib + 1, LargeSize} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			data := payload(uint64(n), n)
			key := fmt.Sprintf("rt/%d.bin", n)
			info := mustPut(t, b, key, data, backend.PutOptions{MD5: md5hex(data), ContentType: "application/x-test"})
			if info.MD5 != md5hex(data) {
				t.Fatalf("Put with MD5 returned md5 %q, want %s", info.MD5, md5hex(data))
			}
			mustContent(t, b, key, data, true)
		})
	}
}

func (s *suite) testRoundTripWithoutMD5(t *testing.T) {
	b := s.mustBackend(t)
	for _, n := range []int{0, 1000, LargeSize} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			data := payload(uint64(n)+7, n)
			key := fmt.Sprintf("nomd5/%d", n)
			mustPut(t, b, key, data, backend.PutOptions{})
			mustContent(t, b, key, data, false)
		})
	}
}

func (s *suite) testRange(t *testing.T) {
	b := s.mustBackend(t)
	const size = 1000
	data := payload(1, size)
	mustPut(t, b, "r", data, backend.PutOptions{})
	mustPut(t, b, "empty", nil, backend.PutOptions{})
	tests := []struct {
		name           string
		key            string
		offset, length int64
		want           []byte // nil with wantErr
		wantErr        error
	}{
		{"start", "r", 0, 10, data[:10], nil},
		{"whole", "r", 0, -1, data, nil},
		{"whole exact", "r", 0, size, data, nil},
		{"first byte", "r", 0, 1, data[:1], nil},
		{"middle", "r", 500, 100, data[500:600], nil},
		{"end", "r", 990, 10, data[990:], nil},
		{"to end", "r", 990, -1, data[990:], nil},
		{"last byte", "r", size - 1, 1, data[size-1:], nil},
		{"length past end is clamped", "r", 995, 100, data[995:], nil},
		{"zero length", "r", 10, 0, []byte{}, nil},
		{"offset at end", "r", size, -1, []byte{}, nil},
		{"offset at end zero length", "r", size, 0, []byte{}, nil},
		{"offset at end with length", "r", size, 5, []byte{}, nil},
		{"empty object whole", "empty", 0, -1, []byte{}, nil},
		{"empty object zero length", "empty", 0, 0, []byte{}, nil},
		{"empty object with length", "empty", 0, 5, []byte{}, nil},
		{"huge length", "r", 10, math.MaxInt64, data[10:], nil},
		{"huge length at end", "r", size, math.MaxInt64, []byte{}, nil},
		{"offset past end", "r", size + 1, -1, nil, backend.ErrInvalid},
		{"offset far past end", "r", 2 * size, 10, nil, backend.ErrInvalid},
		{"negative offset", "r", -1, 10, nil, backend.ErrInvalid},
		{"empty object offset 1", "empty", 1, -1, nil, backend.ErrInvalid},
		{"missing object", "nope", 0, -1, nil, backend.ErrNotFound},
		{"missing object zero length", "nope", 0, 0, nil, backend.ErrNotFound},
		{"missing object offset", "nope", 5, 1, nil, backend.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, err := b.Get(ctxFor(t), bucket, tt.key, tt.offset, tt.length)
			if tt.wantErr != nil {
				if err == nil {
					rc.Close()
				}
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Get(%d, %d) = %v, want %v", tt.offset, tt.length, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Get(%d, %d): %v", tt.offset, tt.length, err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatalf("reading: %v", err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("Get(%d, %d) = %d bytes, want %d bytes (content differs: %v)", tt.offset, tt.length, len(got), len(tt.want), len(got) == len(tt.want))
			}
		})
	}
}

func (s *suite) testRangeLarge(t *testing.T) {
	b := s.mustBackend(t)
	data := payload(2, LargeSize)
	mustPut(t, b, "large", data, backend.PutOptions{MD5: md5hex(data)})
	for _, r := range []struct{ offset, length int64 }{
		{0, 1},
		{5*mib - 1, 2}, // across the boundary of 5 MiB parts
		{8*mib - 3, 7}, // across the boundary of 8 MiB parts
		{LargeSize - 10, -1},
		{LargeSize - 1, 1},
		{mib, 3 * mib},
	} {
		got := mustGet(t, b, "large", r.offset, r.length)
		end := int64(LargeSize)
		if r.length >= 0 {
			end = r.offset + r.length
		}
		if !bytes.Equal(got, data[r.offset:end]) {
			t.Errorf("Get(%d, %d): got %d bytes, want %d (content differs)", r.offset, r.length, len(got), end-r.offset)
		}
	}
}

func (s *suite) testNotFound(t *testing.T) {
	b := s.mustBackend(t)
	ctx := ctxFor(t)
	mustMissing(t, b, "missing")
	mustMissing(t, b, "missing/deeper/key")
	mustPut(t, b, "dir/file", []byte("x"), backend.PutOptions{})
	mustMissing(t, b, "dir") // a "directory" is not an object
	mustMissing(t, b, "dir/file/below")

	// "audio" was never ensured on this backend.
	const absent = "audio"
	if _, err := b.Stat(ctx, absent, "k"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Stat in missing bucket = %v, want ErrNotFound", err)
	}
	if rc, err := b.Get(ctx, absent, "k", 0, -1); !errors.Is(err, backend.ErrNotFound) {
		if err == nil {
			rc.Close()
		}
		t.Errorf("Get in missing bucket = %v, want ErrNotFound", err)
	}
	if _, err := b.Put(ctx, absent, "k", body([]byte("x")), 1, backend.PutOptions{}); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Put into missing bucket = %v, want ErrNotFound", err)
	}
	if err := b.Delete(ctx, absent, "k"); err != nil {
		t.Errorf("Delete in missing bucket = %v, want nil", err)
	}
}

func (s *suite) testDelete(t *testing.T) {
	b := s.mustBackend(t)
	ctx := ctxFor(t)
	if err := b.Delete(ctx, bucket, "never-existed"); err != nil {
		t.Fatalf("Delete of missing object: %v", err)
	}
	mustPut(t, b, "a/b/c", []byte("abc"), backend.PutOptions{})
	mustPut(t, b, "a/keep", []byte("keep"), backend.PutOptions{})
	for i := range 2 {
		if err := b.Delete(ctx, bucket, "a/b/c"); err != nil {
			t.Fatalf("Delete call %d: %v", i+1, err)
		}
	}
	mustMissing(t, b, "a/b/c")
	mustContent(t, b, "a/keep", []byte("keep"), false)
	if err := b.Delete(ctx, bucket, "a"); err != nil { // a prefix, not an object
		t.Fatalf("Delete of a prefix: %v", err)
	}
	mustContent(t, b, "a/keep", []byte("keep"), false)
	// Once "a/b/c" is gone, "a/b" may be an object itself.
	mustPut(t, b, "a/b", []byte("now a leaf"), backend.PutOptions{})
	mustContent(t, b, "a/b", []byte("now a leaf"), false)
	// Deleted objects can be recreated, and a deleted leaf can become a
	// prefix again.
	if err := b.Delete(ctx, bucket, "a/b"); err != nil {
		t.Fatalf("Delete(a/b): %v", err)
	}
	mustPut(t, b, "a/b/c", []byte("again"), backend.PutOptions{})
	mustContent(t, b, "a/b/c", []byte("again"), false)
}

func (s *suite) testOverwrite(t *testing.T) {
	b := s.mustBackend(t)
	small, large := payload(10, 1000), payload(11, LargeSize)
	steps := [][]byte{small, payload(12, 2000), large, small, nil, small}
	for i, data := range steps {
		mustPut(t, b, "ow", data, backend.PutOptions{MD5: md5hex(data)})
		mustContent(t, b, "ow", data, true)
		if t.Failed() {
			t.Fatalf("step %d", i)
		}
	}
}

// testOverwriteAtomic overwrites a key with two alternating contents while
// readers check they only ever see one of them, whole.
func (s *suite) testOverwriteAtomic(t *testing.T) {
	b := s.mustBackend(t)
	ctx := ctxFor(t)
	contents := [][]byte{payload(20, 256<<10), payload(21, 384<<10)}
	valid := map[string]int{md5hex(contents[0]): len(contents[0]), md5hex(contents[1]): len(contents[1])}
	mustPut(t, b, "atomic", contents[0], backend.PutOptions{MD5: md5hex(contents[0])})

	done := make(chan struct{})
	errC := make(chan error, 3)
	var wg sync.WaitGroup
	reader := func() {
		defer wg.Done()
		for reads := 0; ; reads++ {
			select {
			case <-done:
				if reads == 0 {
					errC <- errors.New("reader made no reads")
				}
				return
			default:
			}
			rc, err := b.Get(ctx, bucket, "atomic", 0, -1)
			if err != nil {
				errC <- fmt.Errorf("Get during overwrite: %w", err)
				return
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				errC <- fmt.Errorf("reading during overwrite: %w", err)
				return
			}
			if _, ok := valid[md5hex(got)]; !ok {
				errC <- fmt.Errorf("read a torn object: %d bytes, md5 %s", len(got), md5hex(got))
				return
			}
			info, err := b.Stat(ctx, bucket, "atomic")
			if err != nil {
				errC <- fmt.Errorf("Stat during overwrite: %w", err)
				return
			}
			if size, ok := valid[info.MD5]; info.MD5 != "" && (!ok || size != int(info.Size)) {
				errC <- fmt.Errorf("Stat during overwrite: size %d with md5 %q matches neither content", info.Size, info.MD5)
				return
			}
		}
	}
	wg.Add(2)
	go reader()
	go reader()
	for i := range 20 {
		data := contents[(i+1)%2]
		if _, err := b.Put(ctx, bucket, "atomic", body(data), int64(len(data)), backend.PutOptions{MD5: md5hex(data)}); err != nil {
			errC <- fmt.Errorf("Put %d: %w", i, err)
			break
		}
	}
	close(done)
	wg.Wait()
	close(errC)
	for err := range errC {
		t.Error(err)
	}
}

// prior describes what is stored under a key before a failing Put.
type prior struct {
	name string
	data []byte // nil: nothing stored before
}

func priors() []prior {
	return []prior{
		{"fresh", nil},
		{"over existing", payload(30, 3000)},
	}
}

// mustUnchanged checks that key holds p.data, or nothing if p.data is nil.
func mustUnchanged(t *testing.T, b backend.Backend, key string, p prior) {
	t.Helper()
	if p.data == nil {
		mustMissing(t, b, key)
		return
	}
	mustContent(t, b, key, p.data, true)
}

func (s *suite) testChecksumMismatch(t *testing.T) {
	b := s.mustBackend(t)
	for _, p := range priors() {
		for _, n := range []int{0, 1, 1000, LargeSize} {
			t.Run(fmt.Sprintf("%s/%d", p.name, n), func(t *testing.T) {
				key := fmt.Sprintf("md5/%s/%d", p.name, n)
				if p.data != nil {
					mustPut(t, b, key, p.data, backend.PutOptions{MD5: md5hex(p.data)})
				}
				data := payload(31, n)
				wrong := md5hex(append(bytes.Clone(data), 'x'))
				_, err := b.Put(ctxFor(t), bucket, key, body(data), int64(n), backend.PutOptions{MD5: wrong})
				if !errors.Is(err, backend.ErrChecksum) {
					t.Fatalf("Put with wrong md5 = %v, want ErrChecksum", err)
				}
				mustUnchanged(t, b, key, p)
			})
		}
	}
	// Upper-case hex is the same md5.
	data := []byte("case")
	mustPut(t, b, "md5/upper", data, backend.PutOptions{MD5: strings.ToUpper(md5hex(data))})
	mustContent(t, b, "md5/upper", data, true)
}

func (s *suite) testInvalidMD5(t *testing.T) {
	b := s.mustBackend(t)
	for _, bad := range []string{"xyz", "0123", strings.Repeat("g", 32), strings.Repeat("a", 33)} {
		_, err := b.Put(ctxFor(t), bucket, "badmd5", body([]byte("x")), 1, backend.PutOptions{MD5: bad})
		if !errors.Is(err, backend.ErrInvalid) {
			t.Errorf("Put with md5 %q = %v, want ErrInvalid", bad, err)
		}
	}
	mustMissing(t, b, "badmd5")
	if _, err := b.Put(ctxFor(t), bucket, "negative", body(nil), -1, backend.PutOptions{}); !errors.Is(err, backend.ErrInvalid) {
		t.Errorf("Put with size -1 = %v, want ErrInvalid", err)
	}
}

// failingReader yields data and then err.
type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

var errBoom = errors.New("backendtest: boom")

func (s *suite) testBadBody(t *testing.T) {
	b := s.mustBackend(t)
	for _, p := range priors() {
		for _, n := range []int{1, 1000, LargeSize} {
			data := payload(40, n)
			cases := []struct {
				name    string
				r       io.Reader
				md5     string
				wantErr error
			}{
				{"short", body(data[:n-1]), "", backend.ErrChecksum},
				{"short with md5", body(data[:n-1]), md5hex(data), backend.ErrChecksum},
				{"empty", body(nil), "", backend.ErrChecksum},
				{"reader error", &failingReader{bytes.NewReader(data[:n/2]), errBoom}, "", errBoom},
			}
			for _, c := range cases {
				t.Run(fmt.Sprintf("%s/%d/%s", p.name, n, c.name), func(t *testing.T) {
					key := fmt.Sprintf("short/%s/%d/%s", p.name, n, strings.ReplaceAll(c.name, " ", "-"))
					if p.data != nil {
						mustPut(t, b, key, p.data, backend.PutOptions{MD5: md5hex(p.data)})
					}
					_, err := b.Put(ctxFor(t), bucket, key, c.r, int64(n), backend.PutOptions{MD5: c.md5})
					if !errors.Is(err, c.wantErr) {
						t.Fatalf("Put = %v, want %v", err, c.wantErr)
					}
					mustUnchanged(t, b, key, p)
				})
			}
		}
	}
}

func (s *suite) testExtraBytesIgnored(t *testing.T) {
	b := s.mustBackend(t)
	data := payload(50, 2000)
	info, err := b.Put(ctxFor(t), bucket, "extra", body(data), 1000, backend.PutOptions{MD5: md5hex(data[:1000])})
	if err != nil {
		t.Fatalf("Put of the first 1000 of 2000 bytes: %v", err)
	}
	if info.Size != 1000 {
		t.Fatalf("Put size = %d, want 1000", info.Size)
	}
	mustContent(t, b, "extra", data[:1000], true)
}

func (s *suite) testContextCanceled(t *testing.T) {
	b := s.mustBackend(t)
	mustPut(t, b, "exists", []byte("x"), backend.PutOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	wantCanceled := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with cancelled context = %v, want context.Canceled", op, err)
		}
	}
	wantCanceled("EnsureBucket", b.EnsureBucket(ctx, "video"))
	_, err := b.Put(ctx, bucket, "canceled", body([]byte("x")), 1, backend.PutOptions{})
	wantCanceled("Put", err)
	rc, err := b.Get(ctx, bucket, "exists", 0, -1)
	if err == nil {
		rc.Close()
	}
	wantCanceled("Get", err)
	_, err = b.Stat(ctx, bucket, "exists")
	wantCanceled("Stat", err)
	wantCanceled("Delete", b.Delete(ctx, bucket, "exists"))
	wantCanceled("Check", b.Check(ctx))
	mustMissing(t, b, "canceled")
	mustContent(t, b, "exists", []byte("x"), false)
}

// cancelingReader cancels its context once it has delivered after bytes,
// then keeps delivering.
type cancelingReader struct {
	r      io.Reader
	n      int
	after  int
	cancel context.CancelFunc
}

func (c *cancelingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	if c.n >= c.after {
		c.cancel()
	}
	return n, err
}

func (s *suite) testCancelDuringPut(t *testing.T) {
	b := s.mustBackend(t)
	for _, p := range priors() {
		t.Run(p.name, func(t *testing.T) {
			key := "cancel-put/" + strings.ReplaceAll(p.name, " ", "-")
			if p.data != nil {
				mustPut(t, b, key, p.data, backend.PutOptions{MD5: md5hex(p.data)})
			}
			data := payload(60, LargeSize)
			ctx, cancel := context.WithCancel(ctxFor(t))
			defer cancel()
			r := &cancelingReader{r: bytes.NewReader(data), after: mib, cancel: cancel}
			_, err := b.Put(ctx, bucket, key, r, int64(len(data)), backend.PutOptions{})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Put cancelled midway = %v, want context.Canceled", err)
			}
			mustUnchanged(t, b, key, p)
		})
	}
}

func (s *suite) testCancelDuringGet(t *testing.T) {
	b := s.mustBackend(t)
	data := payload(61, 4*mib)
	mustPut(t, b, "cancel-get", data, backend.PutOptions{})
	ctx, cancel := context.WithCancel(ctxFor(t))
	defer cancel()
	rc, err := b.Get(ctx, bucket, "cancel-get", 0, -1)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, make([]byte, 1)); err != nil {
		t.Fatalf("reading first byte: %v", err)
	}
	cancel()
	n, err := io.Copy(io.Discard, rc)
	if err == nil {
		t.Fatalf("reading after cancel: got the remaining %d bytes and no error", n)
	}
}

func (s *suite) testConcurrentPuts(t *testing.T) {
	b := s.mustBackend(t)
	ctx := ctxFor(t)
	const workers, perWorker = 8, 4
	var wg sync.WaitGroup
	errC := make(chan error, workers*perWorker)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				data := payload(uint64(100+w*perWorker+i), 64<<10+w*perWorker+i)
				key := fmt.Sprintf("conc/%d/%d", w, i)
				if _, err := b.Put(ctx, bucket, key, body(data), int64(len(data)), backend.PutOptions{MD5: md5hex(data)}); err != nil {
					errC <- fmt.Errorf("Put(%q): %w", key, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errC)
	for err := range errC {
		t.Fatal(err)
	}
	for w := range workers {
		for i := range perWorker {
			data := payload(uint64(100+w*perWorker+i), 64<<10+w*perWorker+i)
			mustContent(t, b, fmt.Sprintf("conc/%d/%d", w, i), data, true)
		}
	}
}

func (s *suite) testKeys(t *testing.T) {
	b := s.mustBackend(t)
	keys := []string{
		"a",
		"a.jpg",
		"x/y",
		"x/yz",
		"x/y.z/w",
		"deep/er/and/deeper/still/file.bin",
		"dir/子目录/文件.jpg",
		"spaces in name (1).png",
		"emoji-😀.gif",
		"UPPER/lower.MiXeD",
		"a..b/c...d",
		"...",
		".dotfile",
		"dir/.hidden",
		"percent%20and+plus&amp=q?x#frag",
		"1234567890123456789",
		strings.Repeat("s", 200) + "/" + strings.Repeat("t", 200),
	}
	for i, key := range keys {
		mustPut(t, b, key, []byte(fmt.Sprintf("content %d", i)), backend.PutOptions{})
	}
	for i, key := range keys {
		mustContent(t, b, key, []byte(fmt.Sprintf("content %d", i)), false)
	}
	for _, key := range keys {
		if err := b.Delete(ctxFor(t), bucket, key); err != nil {
			t.Fatalf("Delete(%q): %v", key, err)
		}
		mustMissing(t, b, key)
	}
}

func (s *suite) testKeyRules(t *testing.T) {
	b := s.mustBackend(t)
	ctx := ctxFor(t)
	for _, key := range []string{
		"", "/abs", "trailing/", "a//b", "..", ".", "../escape", "a/../../b", "a/./b", "a/..",
		"back\\slash", "nul\x00byte", "new\nline", "bad\xffutf8", strings.Repeat("k", 1025),
	} {
		if _, err := b.Put(ctx, bucket, key, body([]byte("x")), 1, backend.PutOptions{}); !errors.Is(err, backend.ErrInvalid) {
			t.Errorf("Put(%q) = %v, want ErrInvalid", key, err)
		}
		if rc, err := b.Get(ctx, bucket, key, 0, -1); !errors.Is(err, backend.ErrInvalid) {
			if err == nil {
				rc.Close()
			}
			t.Errorf("Get(%q) = %v, want ErrInvalid", key, err)
		}
		if _, err := b.Stat(ctx, bucket, key); !errors.Is(err, backend.ErrInvalid) {
			t.Errorf("Stat(%q) = %v, want ErrInvalid", key, err)
		}
		if err := b.Delete(ctx, bucket, key); !errors.Is(err, backend.ErrInvalid) {
			t.Errorf("Delete(%q) = %v, want ErrInvalid", key, err)
		}
	}
	for _, name := range []string{"", "Bad", "../x"} {
		if _, err := b.Put(ctx, name, "k", body([]byte("x")), 1, backend.PutOptions{}); !errors.Is(err, backend.ErrInvalid) {
			t.Errorf("Put into bucket %q = %v, want ErrInvalid", name, err)
		}
		if _, err := b.Stat(ctx, name, "k"); !errors.Is(err, backend.ErrInvalid) {
			t.Errorf("Stat in bucket %q = %v, want ErrInvalid", name, err)
		}
	}
}

func (s *suite) testCheck(t *testing.T) {
	b := s.mustBackend(t)
	if err := b.Check(ctxFor(t)); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if b.Name() == "" {
		t.Fatal("Name() is empty")
	}
}

func (s *suite) testClose(t *testing.T) {
	b := s.newBackend(t)
	for i := range 2 {
		if err := b.Close(); err != nil {
			t.Fatalf("Close call %d: %v", i+1, err)
		}
	}
}
