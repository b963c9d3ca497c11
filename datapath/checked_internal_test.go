package datapath

import (
	"testing"

	"github.com/osprey-storage/osprey/fsm"
)

func TestPlanChecks(t *testing.T) {
	loc := &fsm.Location{Bucket: "b", Key: "k"}
	three := fsm.Content{Size: 2500, MD5: "m", Location: loc,
		Sums: []fsm.ChunkSum{{Size: 1000, Sum: 11}, {Size: 1000, Sum: 22}, {Size: 500, Sum: 33}}}
	c := func(off, n, cOff, cN int64, sum uint64) segment {
		return segment{off: off, n: n, cOff: cOff, cN: cN, sum: sum}
	}
	u := func(off, n int64) segment { return segment{off: off, n: n} }
	for _, tc := range []struct {
		name   string
		ct     fsm.Content
		off, n int64
		want   []segment
	}{
		{"whole file", three, 0, 2500, []segment{c(0, 1000, 0, 1000, 11), c(1000, 1000, 1000, 1000, 22), c(2000, 500, 2000, 500, 33)}},
		{"aligned range", three, 1000, 1000, []segment{c(1000, 1000, 1000, 1000, 22)}},
		// Every chunk a range touches is checked, read whole first.
		{"half of the edges", three, 500, 1750, []segment{c(500, 500, 0, 1000, 11), c(1000, 1000, 1000, 1000, 22), c(2000, 250, 2000, 500, 33)}},
		{"small edges", three, 900, 1200, []segment{c(900, 100, 0, 1000, 11), c(1000, 1000, 1000, 1000, 22), c(2000, 100, 2000, 500, 33)}},
		{"inside one chunk", three, 1100, 10, []segment{c(1100, 10, 1000, 1000, 22)}},
		{"two small parts", three, 990, 20, []segment{c(990, 10, 0, 1000, 11), c(1000, 10, 1000, 1000, 22)}},
		{"tail", three, 2400, 100, []segment{c(2400, 100, 2000, 500, 33)}},
		// A chunk whose sum is not known is served as read; unchecked
		// neighbours merge into one read.
		{"unknown sums", fsm.Content{Size: 2500, Location: loc, Sums: []fsm.ChunkSum{{Size: 1000}, {Size: 1000}, {Size: 500, Sum: 33}}},
			500, 2000, []segment{u(500, 1500), c(2000, 500, 2000, 500, 33)}},
		{"empty", three, 100, 0, nil},
		// No sums: a small content is checked whole by its md5.
		{"md5 whole", fsm.Content{Size: 300, MD5: "abc", Location: loc}, 0, 300, []segment{{off: 0, n: 300, cN: 300, md5: "abc"}}},
		{"md5 part", fsm.Content{Size: 300, MD5: "abc", Location: loc}, 100, 10, []segment{{off: 100, n: 10, cN: 300, md5: "abc"}}},
		{"large without sums", fsm.Content{Size: maxWholeCheck + 1, MD5: "abc", Location: loc}, 0, maxWholeCheck + 1, []segment{u(0, maxWholeCheck+1)}},
		{"no md5", fsm.Content{Size: 300, Location: loc}, 0, 300, []segment{u(0, 300)}},
		// Sums that do not add up to the size are not trusted: the md5 is.
		{"bad sums", fsm.Content{Size: 2400, MD5: "m", Location: loc, Sums: three.Sums}, 0, 2400, []segment{{off: 0, n: 2400, cN: 2400, md5: "m"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := planChecks(tc.ct, tc.off, tc.n)
			if len(got) != len(tc.want) {
				t.Fatalf("planChecks = %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("segment %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}
