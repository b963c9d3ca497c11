package node_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/osprey-storage/osprey/node"
)

// TestDataDirInUse: a second node on a data dir in use is refused with a
// message that says so and names the holder's pid; once the first closes,
// the dir can be used again.
func TestDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	first := mustStart(t, testConfig(t, dir))
	_, err := node.New(testConfig(t, dir))
	if !errors.Is(err, node.ErrDataDirInUse) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second node on the same data dir: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second, err := node.New(testConfig(t, dir))
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	second.Close()
}
