package jepsen

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// ScrubActivity sums what the nodes' scrubbers did during a run, read from
// their logs (the metrics restart with every node, the logs do not): the
// orphaned copies and local object files they deleted, and the bad or
// missing copies they found and rewrote.
type ScrubActivity struct {
	OrphanCollections int   `json:"orphan_collections"`
	OrphansDeleted    int64 `json:"orphans_deleted"` // staged copies and local object files
	OrphanBytes       int64 `json:"orphan_bytes"`
	ObjectOrphans     int64 `json:"object_orphans"` // of which local object files
	StaleTemps        int   `json:"stale_temps"`    // temporary files of interrupted puts
	Bad               int   `json:"bad"`            // bad copies found (staged or object)
	Missing           int   `json:"missing"`        // missing copies found
	Restored          int   `json:"restored"`       // bad or missing copies rewritten
	Unrestored        int   `json:"unrestored"`     // ... that could not be
}

func (a ScrubActivity) String() string {
	return fmt.Sprintf("%d orphaned copies deleted (%.1f MB, %d of them local object files) in %d collections, "+
		"%d stale temporary files removed; %d bad and %d missing copies found, %d rewritten, %d could not be",
		a.OrphansDeleted, float64(a.OrphanBytes)/1e6, a.ObjectOrphans, a.OrphanCollections, a.StaleTemps,
		a.Bad, a.Missing, a.Restored, a.Unrestored)
}

var (
	scrubCopiesRE = regexp.MustCompile(` copies=(\d+)`)
	scrubBytesRE  = regexp.MustCompile(` bytes=(\d+)`)
)

// parseScrub adds the scrub lines of one node log to a.
func (a *ScrubActivity) parse(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	num := func(re *regexp.Regexp, line string) int64 {
		if m := re.FindStringSubmatch(line); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			return n
		}
		return 0
	}
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `msg="scrub `) && !strings.Contains(line, `msg="removed the temporary file`) {
			continue
		}
		switch {
		case strings.Contains(line, `msg="scrub deleted orphaned copies"`):
			a.OrphanCollections++
			a.OrphansDeleted += num(scrubCopiesRE, line)
			a.OrphanBytes += num(scrubBytesRE, line)
		case strings.Contains(line, `msg="scrub deleted orphaned object copies"`):
			a.OrphanCollections++
			n := num(scrubCopiesRE, line)
			a.OrphansDeleted += n
			a.ObjectOrphans += n
			a.OrphanBytes += num(scrubBytesRE, line)
		case strings.Contains(line, `msg="removed the temporary file of an interrupted put"`):
			a.StaleTemps++
		case strings.Contains(line, `msg="scrub found a bad`):
			a.Bad++
		case strings.Contains(line, `msg="scrub found a missing`):
			a.Missing++
		case strings.Contains(line, `msg="scrub repaired a copy"`), strings.Contains(line, `msg="scrub restored `):
			a.Restored++
		case strings.Contains(line, `msg="scrub could not repair`), strings.Contains(line, `msg="scrub could not restore`),
			strings.Contains(line, `msg="scrub cannot restore`):
			a.Unrestored++
		}
	}
}

// readScrubActivity sums the scrub lines of the node logs at paths.
func readScrubActivity(paths []string) ScrubActivity {
	var a ScrubActivity
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		a.parse(f)
		f.Close()
	}
	return a
}
