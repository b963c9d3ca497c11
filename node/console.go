package node

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/osprey-storage/osprey/datapath"
	"github.com/osprey-storage/osprey/httpapi"
)

// storageAPI is what the HTTP API's storage and console routes call: the
// data path, plus the console's facts about this binary and machine.
type storageAPI struct {
	*datapath.Path
	build BuildInfo
}

var _ httpapi.Console = storageAPI{}

// ChaosReportsDir is where the chaos harness (scripts/jepsen.sh) writes its
// runs by default: $TMPDIR/osprey-jepsen. The console lists the reports
// found there, so runs on this machine can be opened from a browser.
func (storageAPI) ChaosReportsDir() string {
	return filepath.Join(os.TempDir(), "osprey-jepsen")
}

// Version describes this binary: the main module's version and, when the
// build recorded it, the VCS revision.
func (s storageAPI) Version() string {
	if s.build.Version != "" {
		return strings.TrimSpace(s.build.Version + " " + s.build.Commit)
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v
}
