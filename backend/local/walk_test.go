package local

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/osprey-storage/osprey/backend"
)

func TestWalkListsObjectsWithTheirVersions(t *testing.T) {
	ctx := context.Background()
	b := mustNew(t, t.TempDir())
	for _, bk := range []string{"image", "doc"} {
		mustBucket(t, b, bk)
	}
	put := func(bucket, key, body string) {
		t.Helper()
		if _, err := b.Put(ctx, bucket, key, strings.NewReader(body), int64(len(body)), backend.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	put("image", "1.jpg", "one")
	put("image", "a/b/2.png", "two!")
	put("doc", "3.pdf", "three")
	// A Put's leftover temporary file is not an object.
	if err := os.WriteFile(filepath.Join(b.dir, "doc", tmpPrefix+"x"), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	var got []string
	err := b.Walk(ctx, func(bucket, key string, size int64, v string) error {
		want, err := b.Version(ctx, bucket, key)
		if err != nil || want != v {
			t.Errorf("%s/%s: version %q, Version says %q (%v)", bucket, key, v, want, err)
		}
		got = append(got, bucket+"/"+key+":"+string(rune('0'+size)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"doc/3.pdf:5", "image/1.jpg:3", "image/a/b/2.png:4"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("walk %v, want %v", got, want)
	}
}

func TestRemoveStaleTempsKeepsRecentOnes(t *testing.T) {
	ctx := context.Background()
	b := mustNew(t, t.TempDir())
	mustBucket(t, b, "doc")
	old := filepath.Join(b.dir, "doc", tmpPrefix+"old")
	recent := filepath.Join(b.dir, "doc", tmpPrefix+"recent")
	for _, p := range []string{old, recent} {
		if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	n, bytes, err := b.RemoveStaleTemps(ctx, time.Hour)
	if err != nil || n != 1 || bytes != 7 {
		t.Fatalf("removed %d (%d bytes), %v; want 1 (7 bytes)", n, bytes, err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Fatalf("stale temporary file kept: %v", err)
	}
	if _, err := os.Stat(recent); err != nil {
		t.Fatalf("recent temporary file removed: %v", err)
	}
}

func TestClaimNamesTheFirstNode(t *testing.T) {
	dir := t.TempDir()
	b := mustNew(t, dir)
	for _, tc := range []struct{ id, other string }{{"n1", ""}, {"n1", ""}, {"n2", "n1"}} {
		other, err := b.Claim(tc.id)
		if err != nil || other != tc.other {
			t.Fatalf("Claim(%s) = %q, %v; want %q", tc.id, other, err, tc.other)
		}
	}
	// Another backend on the same directory sees the claim too.
	if other, err := mustNew(t, dir).Claim("n3"); err != nil || other != "n1" {
		t.Fatalf("Claim(n3) on the same directory = %q, %v; want n1", other, err)
	}
	mustNoTempFiles(t, dir)
}
