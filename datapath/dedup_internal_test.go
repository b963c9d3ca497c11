package datapath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/osprey-storage/osprey"
)

func TestProofRange(t *testing.T) {
	for _, tt := range []struct {
		size   int64
		r      uint64
		off, n int64
	}{
		{0, 7, 0, 0},
		{10, 7, 0, 10},
		{maxProofRange, 99, 0, maxProofRange},
		{maxProofRange + 10, 10, 10, maxProofRange},
		{maxProofRange + 10, 11, 0, maxProofRange},
	} {
		var r [8]byte
		binary.BigEndian.PutUint64(r[:], tt.r)
		if off, n := proofRange(tt.size, r); off != tt.off || n != tt.n {
			t.Errorf("proofRange(%d, %d) = %d+%d, want %d+%d", tt.size, tt.r, off, n, tt.off, tt.n)
		}
	}
}

func TestUsedChallengesBounded(t *testing.T) {
	var u usedChallenges
	if err := u.claim("a", 100, 0); err != nil {
		t.Fatal(err)
	}
	if err := u.claim("a", 100, 0); !errors.Is(err, osprey.ErrForbidden) {
		t.Fatalf("reuse: %v", err)
	}
	for i := 0; i < maxUsedChallenges-1; i++ {
		if err := u.claim(fmt.Sprint(i), 100, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.claim("full", 100, 50); !errors.Is(err, osprey.ErrUnavailable) {
		t.Fatalf("full set: %v", err)
	}
	// Expired entries make room.
	if err := u.claim("later", 300, 200); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
}
