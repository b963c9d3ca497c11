package jepsen

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestFlipByteAndRestored(t *testing.T) {
	p := filepath.Join(t.TempDir(), "42.bin")
	orig := bytes.Repeat([]byte("abcdefgh"), 100)
	if err := os.WriteFile(p, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	r, ok := flipByte(p)
	if !ok {
		t.Fatal("flipByte failed")
	}
	got, _ := os.ReadFile(p)
	if len(got) != len(orig) || got[r.off] == orig[r.off] || r.was != orig[r.off] {
		t.Fatalf("flip at %d: %q -> %q", r.off, orig[r.off], got[r.off])
	}
	if good, gone := byteRestored(r); good || gone {
		t.Fatalf("rotted copy reads good=%v gone=%v", good, gone)
	}
	if err := os.WriteFile(p, orig, 0o644); err != nil { // rewritten
		t.Fatal(err)
	}
	if good, gone := byteRestored(r); !good || gone {
		t.Fatalf("rewritten copy reads good=%v gone=%v", good, gone)
	}
	os.Remove(p)
	if _, gone := byteRestored(r); !gone {
		t.Fatal("deleted copy not gone")
	}
	empty := filepath.Join(t.TempDir(), "0.bin")
	_ = os.WriteFile(empty, nil, 0o644)
	if _, ok := flipByte(empty); ok {
		t.Fatal("flipped a byte of an empty file")
	}
}
