package datapath_test

import (
	"context"
	"errors"
	"testing"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/erasure"
	"github.com/osprey-storage/osprey/httpapi"
)

// FuzzDedupProve: whatever a client sends as a challenge id and proof, the
// answer is a 4xx (or 503 when the used-challenge set is full) and never a
// uid, a panic or a 500: only the node's own signature opens a challenge.
func FuzzDedupProve(f *testing.F) {
	w := mustWorld(f, []string{"n1"}, 1, erasure.Policy{})
	ch, err := w.path.DedupChallenge(context.Background(), httpapi.DedupClaim{MD5: "0123456789abcdef0123456789abcdef",
		Size: 10, SHA256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Name: "a.jpg", Bucket: "image"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ch.ID, "00")
	f.Add(ch.ID+"x", "")
	f.Add("", "")
	f.Add(".", "zz")
	f.Add("e30.AAAA", "00")
	f.Fuzz(func(t *testing.T, id, proof string) {
		_, uid, err := w.path.DedupProve(context.Background(), id, proof)
		if uid != 0 {
			t.Fatalf("a fuzzed challenge %q produced uid %s", id, uid)
		}
		if err == nil {
			return // the content is absent: nothing to share, nothing created
		}
		if !errors.Is(err, osprey.ErrForbidden) && !errors.Is(err, osprey.ErrInvalid) &&
			!errors.Is(err, osprey.ErrUnavailable) && !errors.Is(err, osprey.ErrNotFound) {
			t.Fatalf("challenge %q proof %q: unexpected error kind: %v", id, proof, err)
		}
	})
}
