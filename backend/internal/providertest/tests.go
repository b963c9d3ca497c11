package providertest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osprey-storage/osprey/backend"
	"github.com/osprey-storage/osprey/backend/internal/fakestore"
)

func testRoundTrip(t *testing.T, p Provider) {
	const mib = 1 << 20
	mp := int64(p.MinPartSize)
	tests := []struct {
		name      string
		partSize  int64
		size      int
		giveMD5   bool
		wantMulti bool
		wantParts int
	}{
		{"empty", 16 * mib, 0, true, false, 0},
		{"one byte", 16 * mib, 1, false, false, 0},
		{"1MiB-1", 16 * mib, mib - 1, true, false, 0},
		{"1MiB", 16 * mib, mib, false, false, 0},
		{"1MiB+1", 16 * mib, mib + 1, true, false, 0},
		{"exactly one part", mp, int(mp), true, false, 0},
		{"part plus one byte", mp, int(mp) + 1, true, true, 2},
		{"multipart md5 given", mp, 3*int(mp) + 17, true, true, 4},
		{"multipart md5 computed", mp, 3*int(mp) + 17, false, true, 4},
		{"multipart 1MiB+1", mp, mib + 1, false, true, int((mib + mp) / mp)},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := p.fake(t)
			b := p.backend(t, f, Options{PartSize: tt.partSize})
			MustEnsure(t, b, "image")
			data := RandomBytes(tt.size, uint64(i))
			opts := backend.PutOptions{ContentType: "image/png"}
			if tt.giveMD5 {
				opts.MD5 = MD5Hex(data)
			}
			f.ResetCalls()
			info, err := b.Put(context.Background(), "image", "a/b c+d.png", bytes.NewReader(data), int64(len(data)), opts)
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			if info.Size != int64(len(data)) || info.MD5 != MD5Hex(data) || info.Bucket != "image" || info.Key != "a/b c+d.png" {
				t.Fatalf("Put info = %+v, want size %d md5 %s", info, len(data), MD5Hex(data))
			}
			parts := 0
			for _, c := range f.Calls() {
				if c.Op == "UploadPart" {
					parts++
				}
			}
			if parts != tt.wantParts {
				t.Errorf("UploadPart calls = %d, want %d (calls %v)", parts, tt.wantParts, ops(f.Calls()))
			}

			got := MustGet(t, b, "image", "a/b c+d.png", 0, -1)
			if !bytes.Equal(got, data) {
				t.Fatalf("Get returned %d bytes (md5 %s), want %d (md5 %s)", len(got), MD5Hex(got), len(data), MD5Hex(data))
			}
			st, err := b.Stat(context.Background(), "image", "a/b c+d.png")
			if err != nil {
				t.Fatalf("Stat: %v", err)
			}
			if st.Size != int64(len(data)) || st.MD5 != MD5Hex(data) || st.ModTime.IsZero() {
				t.Errorf("Stat = %+v, want size %d md5 %s", st, len(data), MD5Hex(data))
			}
			obj, ok := f.Object(p.Physical("image"), "a/b c+d.png")
			if !ok {
				t.Fatal("object missing from the fake")
			}
			if obj.Multipart != tt.wantMulti || obj.Meta["md5"] != MD5Hex(data) || obj.ContentType != "image/png" {
				t.Errorf("stored multipart %v meta %v content type %q; want %v md5 %s image/png", obj.Multipart, obj.Meta, obj.ContentType, tt.wantMulti, MD5Hex(data))
			}
		})
	}
}

func testOverwriteReplacesObject(t *testing.T, p Provider) {
	f := p.fake(t)
	b := p.backend(t, f, Options{})
	MustEnsure(t, b, "doc")
	ctx := context.Background()
	for _, s := range []string{"first version", "second"} {
		if _, err := b.Put(ctx, "doc", "k", strings.NewReader(s), int64(len(s)), backend.PutOptions{}); err != nil {
			t.Fatalf("Put(%q): %v", s, err)
		}
	}
	if got := string(MustGet(t, b, "doc", "k", 0, -1)); got != "second" {
		t.Fatalf("Get = %q, want %q", got, "second")
	}
}

func testRangedGet(t *testing.T, p Provider) {
	f := p.fake(t)
	b := p.backend(t, f, Options{})
	MustEnsure(t, b, "video")
	ctx := context.Background()
	data := RandomBytes(1000, 7)
	if _, err := b.Put(ctx, "video", "v", bytes.NewReader(data), 1000, backend.PutOptions{}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if _, err := b.Put(ctx, "video", "empty", bytes.NewReader(nil), 0, backend.PutOptions{}); err != nil {
		t.Fatalf("Put empty: %v", err)
	}
	tests := []struct {
		name           string
		key            string
		offset, length int64
		want           []byte
		wantErr        error
	}{
		{"whole", "v", 0, -1, data, nil},
		{"prefix", "v", 0, 10, data[:10], nil},
		{"first byte", "v", 0, 1, data[:1], nil},
		{"tail from offset", "v", 10, -1, data[10:], nil},
		{"middle", "v", 100, 200, data[100:300], nil},
		{"last byte", "v", 999, 1, data[999:], nil},
		{"last byte open", "v", 999, -1, data[999:], nil},
		{"length past end clamps", "v", 995, 100, data[995:], nil},
		{"length overflowing int64", "v", 10, math.MaxInt64, data[10:], nil},
		{"zero length", "v", 10, 0, []byte{}, nil},
		{"offset at end", "v", 1000, -1, []byte{}, nil},
		{"offset at end with length", "v", 1000, 5, []byte{}, nil},
		{"offset beyond end", "v", 1001, -1, nil, backend.ErrInvalid},
		{"offset beyond end zero length", "v", 2000, 0, nil, backend.ErrInvalid},
		{"negative offset", "v", -1, 5, nil, backend.ErrInvalid},
		{"empty object whole", "empty", 0, -1, []byte{}, nil},
		{"empty object with length", "empty", 0, 10, []byte{}, nil},
		{"empty object beyond", "empty", 1, -1, nil, backend.ErrInvalid},
		{"missing object", "nope", 5, 5, nil, backend.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, err := b.Get(ctx, "video", tt.key, tt.offset, tt.length)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					if rc != nil {
						rc.Close()
					}
					t.Fatalf("Get err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("got %d bytes, want %d", len(got), len(tt.want))
			}
		})
	}
	// Every partial answer must come from a ranged request (an OSS fake,
	// for one, answers an unsatisfiable range without "standard" range
	// behaviour with the whole object).
	for _, c := range f.Calls() {
		if c.Op == "GetObject" && c.Range == "" && c.Status == 206 {
			t.Errorf("206 without a Range header: %+v", c)
		}
	}
}

func testNotFound(t *testing.T, p Provider) {
	f := p.fake(t)
	b := p.backend(t, f, Options{})
	MustEnsure(t, b, "image")
	ctx := context.Background()
	if _, err := b.Stat(ctx, "image", "missing"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Stat missing key: %v, want ErrNotFound", err)
	}
	if _, err := b.Get(ctx, "image", "missing", 0, -1); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Get missing key: %v, want ErrNotFound", err)
	}
	if _, err := b.Stat(ctx, "audio", "k"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Stat in missing bucket: %v, want ErrNotFound", err)
	}
	if _, err := b.Put(ctx, "audio", "k", strings.NewReader("x"), 1, backend.PutOptions{}); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Put in missing bucket: %v, want ErrNotFound", err)
	}
	if err := b.Delete(ctx, "image", "missing"); err != nil {
		t.Errorf("Delete missing key: %v", err)
	}
	if err := b.Delete(ctx, "audio", "missing"); err != nil {
		t.Errorf("Delete in missing bucket: %v", err)
	}
	if _, err := b.Put(ctx, "image", "k", strings.NewReader("x"), 1, backend.PutOptions{}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if err := b.Delete(ctx, "image", "k"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := b.Stat(ctx, "image", "k"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Stat after Delete: %v, want ErrNotFound", err)
	}
}

func testInvalidArguments(t *testing.T, p Provider) {
	f := p.fake(t)
	b := p.backend(t, f, Options{})
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
	}{
		{"bad bucket", func() error { return b.EnsureBucket(ctx, "Bad_Name") }},
		{"empty key", func() error {
			_, err := b.Put(ctx, "image", "", strings.NewReader(""), 0, backend.PutOptions{})
			return err
		}},
		{"bad md5", func() error {
			_, err := b.Put(ctx, "image", "k", strings.NewReader(""), 0, backend.PutOptions{MD5: "xyz"})
			return err
		}},
		{"negative size", func() error {
			_, err := b.Put(ctx, "image", "k", strings.NewReader(""), -1, backend.PutOptions{})
			return err
		}},
		{"leading slash", func() error { _, err := b.Stat(ctx, "image", "/k"); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, backend.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func testWrongCredentials(t *testing.T, p Provider) {
	f := p.fake(t)
	good := p.backend(t, f, Options{})
	MustEnsure(t, good, "image")
	if _, err := good.Put(context.Background(), "image", "k", strings.NewReader("x"), 1, backend.PutOptions{}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	tests := []struct {
		name     string
		id, key  string
		wantCode string
	}{
		{"wrong secret", KeyID, "not-the-secret", "SignatureDoesNotMatch"},
		{"unknown key id", "LTAI5tNobody", Secret, "InvalidAccessKeyId"},
		{"another account", OtherKeyID, OtherSecret, "AccessDenied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := p.backend(t, f, Options{KeyID: tt.id, Secret: tt.key})
			ctx := context.Background()
			f.ResetCalls()
			if _, err := b.Stat(ctx, "image", "k"); !errors.Is(err, backend.ErrAuth) {
				t.Errorf("Stat: %v, want ErrAuth", err)
			}
			if _, err := b.Get(ctx, "image", "k", 0, -1); !errors.Is(err, backend.ErrAuth) {
				t.Errorf("Get: %v, want ErrAuth", err)
			}
			if _, err := b.Put(ctx, "image", "k2", strings.NewReader("y"), 1, backend.PutOptions{}); !errors.Is(err, backend.ErrAuth) {
				t.Errorf("Put: %v, want ErrAuth", err)
			}
			if err := b.EnsureBucket(ctx, "image"); !errors.Is(err, backend.ErrAuth) {
				t.Errorf("EnsureBucket: %v, want ErrAuth", err)
			}
			if tt.wantCode != "AccessDenied" {
				if err := b.Check(ctx); !errors.Is(err, backend.ErrAuth) {
					t.Errorf("Check: %v, want ErrAuth", err)
				}
			}
			for _, c := range f.Calls() {
				if c.Op == "PutBucket" {
					continue // answered 409 BucketAlreadyExists before the probe
				}
				if c.ErrorCode != tt.wantCode {
					t.Errorf("%s answered %d %q, want %q", c.Op, c.Status, c.ErrorCode, tt.wantCode)
				}
			}
		})
	}
	if _, ok := f.Object(p.Physical("image"), "k2"); ok {
		t.Error("an unauthenticated Put stored an object")
	}
}

func testOutage(t *testing.T, p Provider) {
	faults := []struct {
		name  string
		fault fakestore.Fault
	}{
		{"503", fakestore.FaultUnavailable},
		{"500", fakestore.FaultInternalError},
		{"dropped connection", fakestore.FaultDropConnection},
	}
	for _, ft := range faults {
		t.Run(ft.name, func(t *testing.T) {
			f := p.fake(t)
			b := p.backend(t, f, Options{})
			MustEnsure(t, b, "image")
			ctx := context.Background()
			if _, err := b.Put(ctx, "image", "k", strings.NewReader("hello"), 5, backend.PutOptions{}); err != nil {
				t.Fatalf("Put: %v", err)
			}
			f.SetFault(func(fakestore.Call) fakestore.Fault { return ft.fault })
			checks := map[string]error{
				"Check":        b.Check(ctx),
				"EnsureBucket": b.EnsureBucket(ctx, "video"),
				"Delete":       b.Delete(ctx, "image", "k"),
			}
			_, checks["Put"] = b.Put(ctx, "image", "k2", strings.NewReader("x"), 1, backend.PutOptions{})
			_, checks["Stat"] = b.Stat(ctx, "image", "k")
			_, checks["Get"] = b.Get(ctx, "image", "k", 0, -1)
			for op, err := range checks {
				if !errors.Is(err, backend.ErrUnavailable) {
					t.Errorf("%s during outage: %v, want ErrUnavailable", op, err)
				}
			}
			f.SetFault(nil)
			if got := string(MustGet(t, b, "image", "k", 0, -1)); got != "hello" {
				t.Errorf("after outage Get = %q", got)
			}
		})
	}
}

func testServerGone(t *testing.T, p Provider) {
	f := p.fake(t)
	b := p.backend(t, f, Options{})
	f.Close()
	if err := b.Check(context.Background()); !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("Check with the server gone: %v, want ErrUnavailable", err)
	}
}

func testTruncatedBody(t *testing.T, p Provider) {
	f := p.fake(t)
	b := p.backend(t, f, Options{})
	MustEnsure(t, b, "video")
	data := RandomBytes(64<<10, 3)
	ctx := context.Background()
	if _, err := b.Put(ctx, "video", "k", bytes.NewReader(data), int64(len(data)), backend.PutOptions{}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	f.SetFault(func(c fakestore.Call) fakestore.Fault {
		if c.Op == "GetObject" {
			return fakestore.FaultTruncateBody
		}
		return fakestore.FaultNone
	})
	for _, r := range []struct{ off, n int64 }{{0, -1}, {10, 5000}} {
		rc, err := b.Get(ctx, "video", "k", r.off, r.n)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		_, err = io.ReadAll(rc)
		rc.Close()
		if !errors.Is(err, backend.ErrUnavailable) {
			t.Errorf("reading a truncated body (%d, %d): %v, want ErrUnavailable", r.off, r.n, err)
		}
	}
}

func testStalledBody(t *testing.T, p Provider) {
	f := p.fake(t)
	b := p.backend(t, f, Options{IOTimeout: 200 * time.Millisecond})
	MustEnsure(t, b, "video")
	data := RandomBytes(64<<10, 3)
	ctx := context.Background()
	if _, err := b.Put(ctx, "video", "k", bytes.NewReader(data), int64(len(data)), backend.PutOptions{}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	f.SetFault(func(c fakestore.Call) fakestore.Fault {
		if c.Op == "GetObject" {
			return fakestore.FaultStallBody
		}
		return fakestore.FaultNone
	})
	rc, err := b.Get(ctx, "video", "k", 0, -1)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	if !errors.Is(err, backend.ErrUnavailable) || n != int64(len(data)/2) {
		t.Fatalf("reading a stalled body: %d bytes, %v; want %d bytes and ErrUnavailable", n, err, len(data)/2)
	}
}

func testChecksumMismatchStoresNothing(t *testing.T, p Provider) {
	tests := []struct {
		name string
		size int
	}{
		{"single", 1000},
		{"multipart", 2*p.MinPartSize + 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := p.fake(t)
			b := p.backend(t, f, Options{PartSize: int64(p.MinPartSize)})
			MustEnsure(t, b, "archive")
			ctx := context.Background()
			old := []byte("the old object")
			if _, err := b.Put(ctx, "archive", "k", bytes.NewReader(old), int64(len(old)), backend.PutOptions{}); err != nil {
				t.Fatalf("Put: %v", err)
			}
			data := RandomBytes(tt.size, 9)
			f.ResetCalls()
			_, err := b.Put(ctx, "archive", "k", bytes.NewReader(data), int64(len(data)), backend.PutOptions{MD5: MD5Hex([]byte("something else"))})
			if !errors.Is(err, backend.ErrChecksum) {
				t.Fatalf("Put with wrong md5: %v, want ErrChecksum", err)
			}
			_, err = b.Put(ctx, "archive", "new", bytes.NewReader(data), int64(len(data)), backend.PutOptions{MD5: MD5Hex([]byte("something else"))})
			if !errors.Is(err, backend.ErrChecksum) {
				t.Fatalf("Put with wrong md5: %v, want ErrChecksum", err)
			}
			if got := string(MustGet(t, b, "archive", "k", 0, -1)); got != string(old) {
				t.Errorf("old object replaced by a failed Put: %q", got)
			}
			if _, err := b.Stat(ctx, "archive", "new"); !errors.Is(err, backend.ErrNotFound) {
				t.Errorf("Stat of a failed new object: %v, want ErrNotFound", err)
			}
			if n := f.Uploads(p.Physical("archive")); n != 0 {
				t.Errorf("%d multipart uploads left behind", n)
			}
			for _, c := range f.Calls() {
				if c.Op == "PutObject" || c.Op == "CompleteMultipartUpload" || c.Op == "CopyObject" {
					t.Errorf("a mismatched Put sent %s", c.Op)
				}
			}
		})
	}
}

// testShortBodyStoresNothing gives Put one byte less than it announces.
func testShortBodyStoresNothing(t *testing.T, p Provider) {
	for _, size := range []int{1000, 3 * p.MinPartSize} {
		f := p.fake(t)
		b := p.backend(t, f, Options{PartSize: int64(p.MinPartSize)})
		MustEnsure(t, b, "archive")
		data := RandomBytes(size-1, 1)
		_, err := b.Put(context.Background(), "archive", "k", bytes.NewReader(data), int64(size), backend.PutOptions{})
		if !errors.Is(err, backend.ErrChecksum) {
			t.Fatalf("size %d: short Put: %v, want ErrChecksum", size, err)
		}
		if _, ok := f.Object(p.Physical("archive"), "k"); ok {
			t.Errorf("size %d: a short Put stored an object", size)
		}
		if n := f.Uploads(p.Physical("archive")); n != 0 {
			t.Errorf("size %d: %d multipart uploads left behind", size, n)
		}
	}
}

func testMultipartSequence(t *testing.T, p Provider) {
	tests := []struct {
		name    string
		giveMD5 bool
		want    []string
	}{
		{"md5 given", true, []string{"InitiateMultipartUpload", "UploadPart", "UploadPart", "UploadPart", "CompleteMultipartUpload"}},
		{"md5 computed", false, []string{"InitiateMultipartUpload", "UploadPart", "UploadPart", "UploadPart", "CompleteMultipartUpload", "CopyObject"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := p.fake(t)
			b := p.backend(t, f, Options{PartSize: int64(p.MinPartSize)})
			MustEnsure(t, b, "video")
			data := RandomBytes(2*p.MinPartSize+1, 5)
			opts := backend.PutOptions{}
			if tt.giveMD5 {
				opts.MD5 = MD5Hex(data)
			}
			f.ResetCalls()
			if _, err := b.Put(context.Background(), "video", "movie.mp4", bytes.NewReader(data), int64(len(data)), opts); err != nil {
				t.Fatalf("Put: %v", err)
			}
			calls := f.Calls()
			if got := ops(f.Calls()); strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("calls = %v, want %v", got, tt.want)
			}
			uploadID := calls[0].UploadID
			for i, c := range calls[1:4] {
				if c.PartNumber != i+1 || c.UploadID != uploadID || c.Status != 200 || c.Key != "movie.mp4" || c.Bucket != p.Physical("video") {
					t.Errorf("part call %d = %+v", i+1, c)
				}
			}
			if c := calls[4]; c.UploadID != uploadID || c.Status != 200 {
				t.Errorf("complete = %+v", c)
			}
			obj, _ := f.Object(p.Physical("video"), "movie.mp4")
			if !strings.HasSuffix(obj.ETag, `-3"`) || obj.Meta["md5"] != MD5Hex(data) || obj.ContentType != "video/mp4" || !obj.Multipart {
				t.Errorf("stored etag %s meta %v content type %q", obj.ETag, obj.Meta, obj.ContentType)
			}
		})
	}
}

func testFailedPartAborts(t *testing.T, p Provider) {
	f := p.fake(t)
	b := p.backend(t, f, Options{PartSize: int64(p.MinPartSize)})
	MustEnsure(t, b, "video")
	f.SetFault(func(c fakestore.Call) fakestore.Fault {
		if c.Op == "UploadPart" && c.PartNumber == 2 {
			return fakestore.FaultUnavailable
		}
		return fakestore.FaultNone
	})
	f.ResetCalls()
	data := RandomBytes(3*p.MinPartSize, 2)
	_, err := b.Put(context.Background(), "video", "k", bytes.NewReader(data), int64(len(data)), backend.PutOptions{})
	if !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("Put: %v, want ErrUnavailable", err)
	}
	want := strings.Join(p.FailedPartCalls, ",")
	if got := strings.Join(ops(f.Calls()), ","); got != want {
		t.Errorf("calls = %s, want %s", got, want)
	}
	if n := f.Uploads(p.Physical("video")); n != 0 {
		t.Errorf("%d uploads left", n)
	}
}

func testCancelledContextAborts(t *testing.T, p Provider) {
	f := p.fake(t)
	b := p.backend(t, f, Options{PartSize: int64(p.MinPartSize)})
	MustEnsure(t, b, "video")
	ctx, cancel := context.WithCancel(context.Background())
	// Cancel once the first part is uploaded.
	f.SetFault(func(c fakestore.Call) fakestore.Fault {
		if c.Op == "UploadPart" && c.PartNumber == 2 {
			cancel()
		}
		return fakestore.FaultNone
	})
	data := RandomBytes(4*p.MinPartSize, 2)
	_, err := b.Put(ctx, "video", "k", bytes.NewReader(data), int64(len(data)), backend.PutOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Put: %v, want context.Canceled", err)
	}
	if n := f.Uploads(p.Physical("video")); n != 0 {
		t.Errorf("%d uploads left after a cancelled Put", n)
	}
	if _, ok := f.Object(p.Physical("video"), "k"); ok {
		t.Error("a cancelled Put stored an object")
	}
}

func testEnsureBucket(t *testing.T, p Provider) {
	f := p.fake(t)
	b := p.backend(t, f, Options{})
	ctx := context.Background()
	for range 2 { // idempotent
		if err := b.EnsureBucket(ctx, "image"); err != nil {
			t.Fatalf("EnsureBucket: %v", err)
		}
	}
	if !f.HasBucket(p.Physical("image")) {
		t.Fatal("bucket not created with the prefix")
	}
	// A bucket name taken by another account is not ours to use.
	other := p.backend(t, f, Options{KeyID: OtherKeyID, Secret: OtherSecret})
	if err := other.EnsureBucket(ctx, "image"); !errors.Is(err, backend.ErrAuth) {
		t.Fatalf("EnsureBucket on another account's bucket: %v, want ErrAuth", err)
	}
	if err := b.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

func testConcurrentPuts(t *testing.T, p Provider) {
	f := p.fake(t)
	b := p.backend(t, f, Options{PartSize: int64(p.MinPartSize)})
	MustEnsure(t, b, "image")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := RandomBytes(p.MinPartSize+i*1000, uint64(i))
			key := "k" + string(rune('a'+i))
			if _, err := b.Put(context.Background(), "image", key, bytes.NewReader(data), int64(len(data)), backend.PutOptions{MD5: MD5Hex(data)}); err != nil {
				errs <- err
				return
			}
			st, err := b.Stat(context.Background(), "image", key)
			if err != nil || st.MD5 != MD5Hex(data) {
				errs <- errors.Join(err, errors.New("stat mismatch "+key))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testClose(t *testing.T, p Provider) {
	f := p.fake(t)
	b := p.backend(t, f, Options{})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := b.Stat(context.Background(), "image", "k"); !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("Stat after Close: %v, want ErrUnavailable", err)
	}
}

// testMultipartOddKeys covers keys that need escaping in the copy source
// when Put records the md5 of a multipart upload after the fact.
func testMultipartOddKeys(t *testing.T, p Provider) {
	f := p.fake(t)
	b := p.backend(t, f, Options{PartSize: int64(p.MinPartSize)})
	MustEnsure(t, b, "doc")
	data := RandomBytes(p.MinPartSize+1, 6)
	for _, key := range []string{"q?x=1#frag", "a b+c/%41&z", "dir/子目录/文件.pdf"} {
		if _, err := b.Put(context.Background(), "doc", key, bytes.NewReader(data), int64(len(data)), backend.PutOptions{}); err != nil {
			t.Fatalf("Put(%q): %v", key, err)
		}
		if got := MustGet(t, b, "doc", key, 0, -1); !bytes.Equal(got, data) {
			t.Fatalf("Get(%q): content differs", key)
		}
		st, err := b.Stat(context.Background(), "doc", key)
		if err != nil || st.MD5 != MD5Hex(data) && !(st.MD5 == "" && p.MD5MayBeUnknown(key)) {
			t.Fatalf("Stat(%q) = %+v, %v; want md5 %s", key, st, err, MD5Hex(data))
		}
	}
}
