package jepsen

import (
	"strings"
	"testing"
)

func TestScrubActivityFromLogs(t *testing.T) {
	log := `time=2026-12-06T01:01:31.820Z level=INFO msg="scrub deleted orphaned copies" node=n1 copies=2 bytes=9630 grace=1m0s
time=2026-12-06T01:01:32.000Z level=INFO msg="raft: heartbeat timeout reached" node=n1
time=2026-12-06T01:01:47.903Z level=INFO msg="scrub deleted orphaned object copies" node=n1 copies=4 bytes=2621782 grace=1m0s
time=2026-12-06T01:01:48.000Z level=INFO msg="removed the temporary file of an interrupted put" node=n1 file=/x/.osprey-tmp-1 bytes=7
time=2026-12-06T01:01:49.000Z level=WARN msg="scrub found a missing copy" node=n1 blob=1 num=1 shard=0
time=2026-12-06T01:01:49.100Z level=INFO msg="scrub restored a missing copy" node=n1 blob=1 num=1 shard=0
time=2026-12-06T01:01:50.000Z level=WARN msg="scrub found a bad object copy" node=n1 content=5
time=2026-12-06T01:01:50.100Z level=ERROR msg="scrub cannot restore an object copy: no other member holds one" node=n1 content=5
time=2026-12-06T01:01:51.000Z level=WARN msg="scrub pass failed" node=n1 err="read barrier: no leader"
`
	var a ScrubActivity
	a.parse(strings.NewReader(log))
	want := ScrubActivity{OrphanCollections: 2, OrphansDeleted: 6, OrphanBytes: 2631412, ObjectOrphans: 4, StaleTemps: 1,
		Bad: 1, Missing: 1, Restored: 1, Unrestored: 1}
	if a != want {
		t.Fatalf("parsed %+v, want %+v", a, want)
	}
	if s := a.String(); !strings.Contains(s, "6 orphaned copies deleted (2.6 MB, 4 of them local object files) in 2 collections") {
		t.Fatalf("summary %q", s)
	}
}
