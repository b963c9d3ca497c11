package jepsen

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
)

func TestContent(t *testing.T) {
	for _, size := range []int64{0, 1, MiB - 1, MiB, MiB + 1} {
		c := Content{Seed: 99, Size: size}
		all := c.Bytes(0, size)
		if int64(len(all)) != size {
			t.Fatalf("size %d: got %d bytes", size, len(all))
		}
		sum := md5.Sum(all)
		if c.MD5() != hex.EncodeToString(sum[:]) {
			t.Fatalf("size %d: md5 mismatch", size)
		}
		if size > 10 {
			off := size / 3
			if !bytes.Equal(c.Bytes(off, 7), all[off:off+7]) {
				t.Fatalf("size %d: range differs from whole", size)
			}
		}
		if bad, err := c.Compare(bytes.NewReader(all), 0, size); err != nil || bad != "" {
			t.Fatalf("size %d: identical compare: %q %v", size, bad, err)
		}
		if size > 0 {
			if bad, _ := c.Compare(bytes.NewReader(all[:size-1]), 0, size); bad == "" {
				t.Fatalf("size %d: a dropped last byte went unnoticed", size)
			}
			flipped := append([]byte(nil), all...)
			flipped[size-1] ^= 1
			if bad, _ := c.Compare(bytes.NewReader(flipped), 0, size); bad == "" {
				t.Fatalf("size %d: a flipped byte went unnoticed", size)
			}
		}
		if bad, _ := c.Compare(bytes.NewReader(append(all, 0)), 0, size); bad == "" {
			t.Fatalf("size %d: an extra byte went unnoticed", size)
		}
	}
	if (Content{Seed: 1, Size: 64}).MD5() == (Content{Seed: 2, Size: 64}).MD5() {
		t.Fatal("different seeds, same bytes")
	}
}

func TestExpectRange(t *testing.T) {
	tests := []struct {
		h         string
		size      int64
		start, n  int64
		satisfied bool
	}{
		{"bytes=0-0", 10, 0, 1, true},
		{"bytes=3-", 10, 3, 7, true},
		{"bytes=-4", 10, 6, 4, true},
		{"bytes=-40", 10, 0, 10, true},
		{"bytes=2-9", 10, 2, 8, true},
		{"bytes=2-99", 10, 2, 8, true},
		{"bytes=10-", 10, 0, 0, false},
		{"bytes=-0", 10, 0, 0, false},
		{"bytes=0-", 0, 0, 0, false},
		{"bytes=1048575-1048576", MiB + 1, MiB - 1, 2, true},
	}
	for _, tt := range tests {
		s, n, ok := expectRange(tt.h, tt.size)
		if s != tt.start || n != tt.n || ok != tt.satisfied {
			t.Errorf("expectRange(%q, %d) = %d, %d, %v; want %d, %d, %v", tt.h, tt.size, s, n, ok, tt.start, tt.n, tt.satisfied)
		}
	}
}

func TestClassify(t *testing.T) {
	dial := &RequestError{Err: &net.OpError{Op: "dial", Err: errors.New("refused")}}
	tests := []struct {
		name string
		err  error
		want Outcome
	}{
		{"ok", nil, OK},
		{"503 is certainly not applied", &StatusError{Status: http.StatusServiceUnavailable}, Fail},
		{"504 is unknown", &StatusError{Status: http.StatusGatewayTimeout}, Info},
		{"500 is unknown", &StatusError{Status: http.StatusInternalServerError}, Info},
		{"409 is definite", &StatusError{Status: http.StatusConflict}, Fail},
		{"refused dial never sent", dial, Fail},
		{"timeout after sending", &RequestError{Err: errors.New("deadline"), Sent: true}, Info},
	}
	for _, tt := range tests {
		if got, _ := Classify(tt.err); got != tt.want {
			t.Errorf("%s: Classify = %s, want %s", tt.name, got, tt.want)
		}
	}
	if !isDialError(&net.OpError{Op: "dial"}) || isDialError(io.EOF) {
		t.Error("isDialError")
	}
}

func TestPlanChunksAndSizes(t *testing.T) {
	rng := newTestRand(5)
	for i := 0; i < 500; i++ {
		size := 1 + pickSize(rng)
		cs := planChunks(rng, size)
		var sum int64
		for _, c := range cs {
			if c <= 0 || c > MiB+1 && len(cs) < 12 {
				t.Fatalf("bad chunk size %d in %v", c, cs)
			}
			sum += c
		}
		if sum != size || len(cs) > 12 {
			t.Fatalf("plan %v for %d", cs, size)
		}
		if s, n, ok := expectRange(pickRange(rng, size), size); ok && (s < 0 || s+n > size) {
			t.Fatalf("range out of bounds: %d+%d of %d", s, n, size)
		}
	}
}
