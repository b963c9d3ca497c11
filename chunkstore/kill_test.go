package chunkstore

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// killChildEnv makes the test binary act as the writer TestKillDuringPuts
// kills.
const killChildEnv = "OSPREY_CHUNKSTORE_KILL_CHILD"

// TestKillDuringPuts runs a child process that Puts values of mixed sizes
// (WAL and blob-file paths) on the real filesystem and prints each key once
// Put has returned, kills it with SIGKILL mid-stream, reopens the store and
// checks that every acknowledged value reads back whole and verified, and
// that nothing of the unacknowledged ones is visible or left behind in a
// torn state.
func TestKillDuringPuts(t *testing.T) {
	if dir := os.Getenv(killChildEnv); dir != "" {
		killChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("spawns a writer process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillDuringPuts$")
	cmd.Env = append(os.Environ(), killChildEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []int
	sc := bufio.NewScanner(out)
	deadline := time.Now().Add(20 * time.Second)
	for sc.Scan() && len(acked) < 12 && time.Now().Before(deadline) {
		i, err := strconv.Atoi(sc.Text())
		if err != nil {
			t.Fatalf("child said %q", sc.Text())
		}
		acked = append(acked, i)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	for sc.Scan() { // acknowledged just before the kill
		if i, err := strconv.Atoi(sc.Text()); err == nil {
			acked = append(acked, i)
		}
	}
	if len(acked) == 0 {
		t.Fatal("child acknowledged nothing")
	}
	s, err := Open(dir, &Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, i := range acked {
		k := Key{UID: uint64(i)}
		if _, err := s.Verify(context.Background(), k); err != nil {
			t.Fatalf("acknowledged value %d: %v", i, err)
		}
		got, _ := mustGet(t, s, k, 0, -1)
		if !bytes.Equal(got, killValue(i)) {
			t.Fatalf("acknowledged value %d differs", i)
		}
	}
	// Whatever else is visible (a Put that committed but was not yet
	// printed) must be whole too; files of uncommitted Puts are gone.
	n := 0
	err = s.Scan(context.Background(), func(k Key, info Info) error {
		n++
		if _, err := s.Verify(context.Background(), k); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	names, err := s.fs.List(s.blobsDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		k, gen, ok := parseBlobName(name)
		m, found, _ := s.readManifest(k)
		if !ok || !found || m.gen != gen {
			t.Fatalf("blob file %s left without its manifest", name)
		}
	}
	t.Logf("%d acknowledged, %d visible after kill -9", len(acked), n)
}

// killValue is value i of the kill test: sizes cycle through the WAL path
// and blob files of one and several blocks.
func killValue(i int) []byte {
	sizes := []int{5 << 10, 3 << 20, 1 << 20, 8<<20 + 17}
	return value(uint64(i), sizes[i%len(sizes)])
}

func killChild(dir string) {
	s, err := Open(dir, &Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i := 1; ; i++ {
		v := killValue(i)
		if _, err := s.Put(context.Background(), Key{UID: uint64(i)}, bytes.NewReader(v), int64(len(v))); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println(i)
	}
}
