package node_test

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// untar extracts a .tgz into dir.
func untar(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.Clean(h.Name))
		if !strings.HasPrefix(p, dir) {
			t.Fatalf("archive entry %q escapes", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o700); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			out, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o700|0o600)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(out, tr); err != nil {
				t.Fatal(err)
			}
			out.Close()
		}
	}
}

// fixtureContent returns the bytes the fixture stored under a name (see
// testdata/upgrade/README.md).
func fixtureContent(name string) []byte {
	switch {
	case name == "big.bin":
		var b strings.Builder
		for i := 1; i <= 400000; i++ {
			b.WriteString(strconv.Itoa(i))
			b.WriteByte('\n')
		}
		return []byte(b.String())
	case name == "dup.txt":
		return []byte("small file number 1\n")
	default:
		n := strings.TrimSuffix(strings.TrimPrefix(name, "f"), ".txt")
		return []byte(fmt.Sprintf("small file number %s\n", n))
	}
}

// TestUpgradeFromJSONSnapshots: a data dir written by the release that
// kept the metadata in memory (JSON snapshots v2 plus log entries after the
// last one) starts on this build, which converts the snapshot into the
// Pebble store and replays the rest of the log: every file downloads byte
// for byte, the deleted one stays deleted, and new uploads work. A second
// restart starts from the store without restoring the snapshot.
func TestUpgradeFromJSONSnapshots(t *testing.T) {
	dir := t.TempDir()
	untar(t, filepath.Join("testdata", "upgrade", "datadir-4c7b54d.tgz"), dir)
	dataDir := filepath.Join(dir, "data")
	token, err := os.ReadFile(filepath.Join(dataDir, "join-token"))
	if err != nil {
		t.Fatal(err)
	}
	mf, err := os.Open(filepath.Join("testdata", "upgrade", "manifest.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	type entry struct{ uid, name string }
	var files []entry
	sc := bufio.NewScanner(mf)
	for sc.Scan() {
		uid, name, _ := strings.Cut(sc.Text(), "\t")
		files = append(files, entry{uid, name})
	}
	mf.Close()
	if len(files) != 42 {
		t.Fatalf("manifest lists %d entries", len(files))
	}

	check := func(round int) {
		cfg := testConfig(t, dataDir)
		cfg.NodeID = "u1"
		cfg.JoinToken = strings.TrimSpace(string(token))
		n := mustStart(t, cfg)
		a := apiOf(t, n)
		waitFor(t, 10*time.Second, "leader", func() bool { return n.IsLeader() })
		for _, f := range files {
			if f.name == "DELETED" {
				if x, ok := n.FSM().File(mustUID(t, f.uid)); ok {
					t.Fatalf("round %d: deleted uid %s is back: %+v", round, f.uid, x)
				}
				continue
			}
			code, body, _ := a.get(strings.TrimPrefix(a.downloadURL(f.uid), a.addr), nil)
			if code != 200 || string(body) != string(fixtureContent(f.name)) {
				t.Fatalf("round %d: %s (%s): status %d, %d bytes, want %d", round, f.uid, f.name, code, len(body), len(fixtureContent(f.name)))
			}
		}
		if got := n.FSM().Stats()["files"]; got != 40+round { // 41 stored, plus one link per earlier round
			t.Fatalf("round %d: %d files, want %d", round, got, 40+round)
		}
		// The state goes on: a new upload works (once the node has its
		// worker id back from the state).
		waitFor(t, 10*time.Second, "worker id", func() bool { _, err := n.Cluster().NextUID(); return err == nil })
		links := a.link(fmt.Sprintf("after-upgrade-%d.txt", round))
		if len(links) != 1 {
			t.Fatalf("round %d: link: %+v", round, links)
		}
		if err := n.Close(); err != nil {
			t.Fatalf("round %d: close: %v", round, err)
		}
	}
	check(1)
	current := func() string {
		b, err := os.ReadFile(filepath.Join(dataDir, "meta", "CURRENT"))
		if err != nil {
			t.Fatalf("no metadata store after the upgrade: %v", err)
		}
		return string(b)
	}
	// The JSON snapshot was converted by a restore into a new generation.
	gen := current()
	if gen == "db-000001\n" {
		t.Fatal("the upgrade did not restore the JSON snapshot")
	}
	check(2)
	// The second start found the store at or past the last snapshot and
	// did not restore it again.
	if got := current(); got != gen {
		t.Fatalf("second start restored the snapshot again (%q, was %q)", got, gen)
	}
}
