package node_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/osprey-storage/osprey/backend/s3/s3test"
	"github.com/osprey-storage/osprey/client"
	"github.com/osprey-storage/osprey/node"
)

// TestBackupRestoreDisasterRecovery: with an S3 backend (a real MinIO),
// back up the metadata, lose every node, start a fresh cluster on the same
// backend and restore the backup: every file tiered at backup time
// downloads byte for byte, a file that was only staged reports "lost" and
// answers 410 instead of serving anything, and a corrupt or truncated
// backup is refused without changing anything.
func TestBackupRestoreDisasterRecovery(t *testing.T) {
	srv := s3test.StartServer(t)
	s3 := func(_ int, cfg *node.Config) {
		cfg.Backend.Type = "s3"
		cfg.Backend.S3.Endpoint, cfg.Backend.S3.AccessKey, cfg.Backend.S3.SecretKey = srv.Endpoint(), srv.AccessKey(), srv.SecretKey()
		cfg.Backend.S3.MaxAttempts = 1
	}
	old := newClusterWith(t, 3, s3)
	tiered := map[string][]byte{}
	for i := 0; i < 4; i++ {
		data := content(300+i, 200_000+i*70_000)
		uid := uploadSingle(t, old.nodes[i%3], "t.bin", data)
		tiered[uid] = data
	}
	for uid := range tiered {
		waitState(t, old.nodes[0], uid, "tiered")
	}
	// The backend goes away: the next upload stays staged.
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	staged := content(399, 50_000)
	stagedUID := uploadSingle(t, old.nodes[1], "s.bin", staged)

	c, err := client.New(client.Config{Addr: "http://" + old.nodes[2].HTTPAddr()})
	if err != nil {
		t.Fatal(err)
	}
	var backup bytes.Buffer
	index, err := c.Backup(context.Background(), &backup)
	if err != nil {
		t.Fatalf("backup through a follower: %v", err)
	}
	if index == 0 || backup.Len() < 100 {
		t.Fatalf("backup of index %d, %d bytes", index, backup.Len())
	}
	// Every node is lost, data dirs included.
	for i, n := range old.nodes {
		n.Kill()
		old.nodes[i] = nil
	}
	if err := srv.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}

	fresh := newClusterWith(t, 1, s3)
	n := fresh.nodes[0]
	fc, err := client.New(client.Config{Addr: "http://" + n.HTTPAddr()})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := n.FSM().Hash()
	// A corrupt or truncated backup is refused and changes nothing.
	corrupt := append([]byte(nil), backup.Bytes()...)
	corrupt[len(corrupt)/2] ^= 0x40
	for name, b := range map[string][]byte{"corrupt": corrupt, "truncated": backup.Bytes()[:backup.Len()-9], "empty": nil} {
		_, err := fc.Restore(context.Background(), bytes.NewReader(b), int64(len(b)))
		var ae *client.APIError
		if !asAPIError(err, &ae) || ae.Status != http.StatusBadRequest {
			t.Fatalf("%s backup: %v, want 400", name, err)
		}
		if after, _ := n.FSM().Hash(); after != before {
			t.Fatalf("%s backup changed the state", name)
		}
	}

	res, err := fc.Restore(context.Background(), bytes.NewReader(backup.Bytes()), int64(backup.Len()))
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if res.Files != 5 || res.Lost != 1 || len(res.Removed) != 3 || res.Index != index {
		// The backup is another cluster's: all three of its members are
		// gone, n1 included although the fresh node is also called n1
		// (its empty disk holds none of the old n1's copies).
		t.Fatalf("restore result %+v", res)
	}
	for uid, data := range tiered {
		checkDownload(t, n, uid, data)
	}
	info, err := n.Storage().Stat(context.Background(), mustUID(t, stagedUID))
	if err != nil || info.State != "lost" {
		t.Fatalf("staged file after restore: %+v, %v", info, err)
	}
	a := apiOf(t, n)
	if code, _, _ := a.get(a.downloadURL(stagedUID), nil); code != http.StatusGone {
		t.Fatalf("download of a lost file: %d, want 410", code)
	}
	// The restored cluster takes new uploads.
	data := content(400, 10_000)
	uid := uploadSingle(t, n, "after.bin", data)
	waitState(t, n, uid, "tiered")
	checkDownload(t, n, uid, data)
}

func asAPIError(err error, target **client.APIError) bool { return errors.As(err, target) }
