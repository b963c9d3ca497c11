package node_test

import (
	"context"
	"testing"

	"github.com/osprey-storage/osprey"
)

func TestSearchFilesByNamePrefix(t *testing.T) {
	c := newCluster(t, 1)
	n := c.nodes[0]
	a := apiOf(t, n)
	links := a.link("logs/a1.txt", "img/b.png", "logs/a2.txt", "logs/a3.txt", "LOGS/upper.txt")
	var got []string
	var cursor osprey.UID
	for page := 0; ; page++ {
		items, next, err := n.Storage().SearchFiles(context.Background(), "logs/", cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) > 2 {
			t.Fatalf("page %d: %d items over the limit", page, len(items))
		}
		for _, it := range items {
			got = append(got, it.UID.String()+" "+it.Name)
		}
		if next == 0 {
			break
		}
		if page > 3 {
			t.Fatal("search does not end")
		}
		cursor = next
	}
	want := []string{links[0].UID + " logs/a1.txt", links[2].UID + " logs/a2.txt", links[3].UID + " logs/a3.txt"}
	if len(got) != len(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	// The empty prefix lists everything; an unknown one nothing.
	if all, _, _ := n.Storage().SearchFiles(context.Background(), "", 0, 100); len(all) != 5 {
		t.Fatalf("empty prefix: %d files", len(all))
	}
	if none, next, _ := n.Storage().SearchFiles(context.Background(), "zzz", 0, 100); len(none) != 0 || next != 0 {
		t.Fatalf("unknown prefix: %d files, cursor %d", len(none), next)
	}
	// Detail of an upload with no chunks yet: no parts, no content.
	d, err := n.Storage().FileDetail(context.Background(), mustUID(t, links[1].UID))
	if err != nil || d.Name != "img/b.png" || len(d.Parts) != 0 || d.Content != "" || d.Tier != nil {
		t.Fatalf("detail %+v, %v", d, err)
	}
	if _, err := n.Storage().FileDetail(context.Background(), 12345); err == nil {
		t.Fatal("detail of an unknown uid succeeded")
	}
}
