package objio

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osprey-storage/osprey/backend"
)

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func TestValidateBucket(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"image", true}, {"a", true}, {"a-b", true}, {"x1", true}, {strings.Repeat("a", MaxBucketLen), true},
		{"", false}, {"Image", false}, {"-a", false}, {"a-", false}, {"a_b", false}, {"a.b", false},
		{"a/b", false}, {"..", false}, {strings.Repeat("a", MaxBucketLen+1), false},
	}
	for _, tt := range tests {
		err := ValidateBucket(tt.name)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, backend.ErrInvalid)) {
			t.Errorf("ValidateBucket(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestValidateKey(t *testing.T) {
	tests := []struct {
		key string
		ok  bool
	}{
		{"a", true}, {"a/b/c.jpg", true}, {"文件/子.png", true}, {"...", true}, {".x", true}, {"a..b", true},
		{"with space", true}, {strings.Repeat("k", MaxKeyLen), true},
		{"", false}, {"/a", false}, {"a/", false}, {"a//b", false}, {".", false}, {"..", false},
		{"a/./b", false}, {"a/../b", false}, {"../a", false}, {"a\\b", false}, {"a\x00b", false},
		{"a\tb", false}, {"a\x7fb", false}, {"\xff", false}, {strings.Repeat("k", MaxKeyLen+1), false},
	}
	for _, tt := range tests {
		err := ValidateKey(tt.key)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, backend.ErrInvalid)) {
			t.Errorf("ValidateKey(%q) = %v, want ok=%v", tt.key, err, tt.ok)
		}
	}
}

func TestParseMD5(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"", "", true},
		{EmptyMD5, EmptyMD5, true},
		{strings.ToUpper(EmptyMD5), EmptyMD5, true},
		{"abc", "", false},
		{strings.Repeat("z", 32), "", false},
		{EmptyMD5 + "0", "", false},
	}
	for _, tt := range tests {
		got, err := ParseMD5(tt.in)
		if got != tt.want || (err == nil) != tt.ok || (err != nil && !errors.Is(err, backend.ErrInvalid)) {
			t.Errorf("ParseMD5(%q) = %q, %v; want %q ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestValidateRange(t *testing.T) {
	tests := []struct {
		name                 string
		offset, length, size int64
		want                 int64
		ok                   bool
	}{
		{"whole", 0, -1, 10, 10, true},
		{"prefix", 0, 3, 10, 3, true},
		{"clamped", 8, 5, 10, 2, true},
		{"at end", 10, -1, 10, 0, true},
		{"zero length", 5, 0, 10, 0, true},
		{"empty object", 0, -1, 0, 0, true},
		{"past end", 11, -1, 10, 0, false},
		{"negative", -1, 1, 10, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ValidateRange(tt.offset, tt.length, tt.size)
			if got != tt.want || (err == nil) != tt.ok {
				t.Fatalf("ValidateRange(%d, %d, %d) = %d, %v; want %d ok=%v", tt.offset, tt.length, tt.size, got, err, tt.want, tt.ok)
			}
		})
	}
}

// smallReads returns at most n bytes per Read.
type smallReads struct {
	r io.Reader
	n int
}

func (s smallReads) Read(p []byte) (int, error) {
	if len(p) > s.n {
		p = p[:s.n]
	}
	return s.r.Read(p)
}

var errBoom = errors.New("boom")

type failAfter struct {
	r io.Reader
}

func (f failAfter) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errBoom
	}
	return n, err
}

func TestVerifyingReader(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 1000)
	tests := []struct {
		name     string
		r        io.Reader
		size     int64
		want     string
		wantData []byte // what the consumer may see before the error/EOF
		wantErr  error  // nil: success
	}{
		{"exact", bytes.NewReader(data), int64(len(data)), md5hex(data), data, nil},
		{"no md5", bytes.NewReader(data), int64(len(data)), "", data, nil},
		{"prefix only", bytes.NewReader(data), 100, md5hex(data[:100]), data[:100], nil},
		{"small reads", smallReads{bytes.NewReader(data), 7}, int64(len(data)), md5hex(data), data, nil},
		{"empty", bytes.NewReader(nil), 0, EmptyMD5, []byte{}, nil},
		{"empty wrong md5", bytes.NewReader(nil), 0, md5hex(data), []byte{}, backend.ErrChecksum},
		{"md5 mismatch withholds tail", bytes.NewReader(data), int64(len(data)), EmptyMD5, nil, backend.ErrChecksum},
		{"short", bytes.NewReader(data[:50]), 100, "", nil, backend.ErrChecksum},
		{"reader error", failAfter{bytes.NewReader(data[:50])}, 100, "", nil, errBoom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vr := NewVerifyingReader(context.Background(), tt.r, tt.size, tt.want)
			got, err := io.ReadAll(vr)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("ReadAll: %v", err)
				}
				if !bytes.Equal(got, tt.wantData) {
					t.Fatalf("read %d bytes, want %d", len(got), len(tt.wantData))
				}
				sum, verr := vr.Verify()
				if verr != nil || sum != md5hex(tt.wantData) {
					t.Fatalf("Verify = %q, %v", sum, verr)
				}
				return
			}
			if tt.size == 0 {
				err = nil // an empty body is never read; Verify catches it
			}
			if _, verr := vr.Verify(); !errors.Is(verr, tt.wantErr) {
				t.Fatalf("Verify = %v, want %v", verr, tt.wantErr)
			}
			if err != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("ReadAll error = %v, want %v", err, tt.wantErr)
			}
			if int64(len(got)) >= tt.size && tt.size > 0 {
				t.Fatalf("consumer received all %d bytes despite the failure", len(got))
			}
		})
	}
}

func TestVerifyingReaderContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	vr := NewVerifyingReader(ctx, bytes.NewReader(make([]byte, 100)), 100, "")
	if _, err := vr.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := vr.Read(make([]byte, 10)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read after cancel = %v", err)
	}
	if !errors.Is(vr.Err(), context.Canceled) {
		t.Fatalf("Err = %v", vr.Err())
	}
}

func TestVerifyingReaderClose(t *testing.T) {
	vr := NewVerifyingReader(context.Background(), bytes.NewReader(make([]byte, 100)), 100, "")
	vr.Close()
	if _, err := vr.Read(make([]byte, 10)); err == nil {
		t.Fatal("Read after Close succeeded")
	}
	if _, err := vr.Verify(); !errors.Is(err, backend.ErrChecksum) {
		t.Fatalf("Verify of an unread body = %v, want ErrChecksum", err)
	}
}

func TestContextReadCloser(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	rc := ContextReadCloser(ctx, io.NopCloser(strings.NewReader("abc")))
	if _, err := rc.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := rc.Read(make([]byte, 1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read after cancel = %v", err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestPrefetch(t *testing.T) {
	data := bytes.Repeat([]byte("abcdefghij"), 10000)
	tests := []struct {
		name    string
		r       func() io.Reader
		bufSize int
		want    []byte
		wantErr error
	}{
		{"exact multiple", func() io.Reader { return bytes.NewReader(data) }, 1000, data, nil},
		{"ragged", func() io.Reader { return bytes.NewReader(data) }, 777, data, nil},
		{"small reads", func() io.Reader { return smallReads{bytes.NewReader(data), 13} }, 4096, data, nil},
		{"empty", func() io.Reader { return bytes.NewReader(nil) }, 100, []byte{}, nil},
		{"source error after data", func() io.Reader { return failAfter{bytes.NewReader(data[:2500])} }, 1000, data[:2500], errBoom},
		{"withheld tail", func() io.Reader {
			return NewVerifyingReader(context.Background(), bytes.NewReader(data), int64(len(data)), EmptyMD5)
		}, 1000, nil, backend.ErrChecksum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Prefetch(tt.r(), tt.bufSize)
			defer p.Close()
			got, err := io.ReadAll(p)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ReadAll error = %v, want %v", err, tt.wantErr)
			}
			if tt.want != nil && !bytes.Equal(got, tt.want) {
				t.Fatalf("read %d bytes, want %d", len(got), len(tt.want))
			}
			if tt.wantErr != nil && len(got) >= len(data) {
				t.Fatalf("consumer got all %d bytes despite the error", len(got))
			}
		})
	}
}

// blockingReader signals started on its first Read and blocks until
// released.
type blockingReader struct {
	started chan struct{}
	once    *sync.Once
	release chan struct{}
}

func (b blockingReader) Read(p []byte) (int, error) {
	b.once.Do(func() { close(b.started) })
	<-b.release
	return 0, io.EOF
}

func TestPrefetchCloseWhileReading(t *testing.T) {
	src := blockingReader{started: make(chan struct{}), once: new(sync.Once), release: make(chan struct{})}
	p := Prefetch(src, 10)
	<-src.started // the filler is now inside the source's Read
	readErr := make(chan error, 1)
	go func() {
		_, err := p.Read(make([]byte, 5))
		readErr <- err
	}()
	closed := make(chan struct{})
	go func() {
		p.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while the source was still being read")
	case <-time.After(50 * time.Millisecond): // negative check: nothing may happen
	}
	close(src.release)
	<-closed
	if err := <-readErr; err == nil {
		t.Fatal("Read racing Close returned no error")
	}
	if err := p.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
}
