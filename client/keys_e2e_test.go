package client_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osprey-storage/osprey/client"
)

// TestE2EKeys drives `osprey keys` (client.CLI) against a real node: an
// admin creates a prefix key and a read-only key, lists them as a table
// and as JSON, the prefix key stores a file under its prefix and not
// elsewhere, the read-only key reads it but cannot upload, and after
// `keys revoke` the key is refused.
func TestE2EKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real node")
	}
	nodes := mustNodes(t, 1)
	ctx := ctxFor(t)
	admin := e2eClient(t, nodes)
	var out, errOut bytes.Buffer
	cli := &client.CLI{Client: admin, Stdout: &out, Stderr: &errOut, JSON: true}

	if err := cli.KeysCreate(ctx, client.KeyRequest{Tenant: "team", Prefixes: []string{"team/"}, Description: "ci"}); err != nil {
		t.Fatal(err)
	}
	var rw client.CreatedKey
	if err := json.Unmarshal(out.Bytes(), &rw); err != nil || !strings.HasPrefix(rw.Token, "osk_"+rw.ID+"_") || rw.Tenant != "team" {
		t.Fatalf("created %v %+v", err, rw)
	}
	out.Reset()
	cli.JSON = false
	if err := cli.KeysCreate(ctx, client.KeyRequest{Tenant: "team", ReadOnly: true}); err != nil {
		t.Fatal(err)
	}
	var roToken string
	for _, line := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "key" {
			roToken = f[1]
		}
	}
	if roToken == "" || !strings.Contains(out.String(), "read-only") || !strings.Contains(errOut.String(), "not shown again") {
		t.Fatalf("create output:\n%s\nstderr %s", out.String(), errOut.String())
	}

	out.Reset()
	if err := cli.KeysList(ctx); err != nil {
		t.Fatal(err)
	}
	table := out.String()
	for _, want := range []string{"ID", "TENANT", "ACCESS", "PREFIXES", rw.ID, "team/", "read-write", "read-only", "ci"} {
		if !strings.Contains(table, want) {
			t.Errorf("list lacks %q:\n%s", want, table)
		}
	}
	if strings.Contains(table, "osk_") {
		t.Fatalf("the list shows a key:\n%s", table)
	}

	dir := t.TempDir()
	path, _ := randomFile(t, dir, "a.bin", 3000)
	user := e2eClient(t, nodes, func(c *client.Config) { c.APIKey = rw.Token })
	res, err := user.PutFile(ctx, path, client.PutOptions{Name: "team/a.bin", StateDir: "-"})
	if err != nil {
		t.Fatalf("put under the prefix: %v", err)
	}
	if _, err := user.PutFile(ctx, path, client.PutOptions{Name: "other/a.bin", StateDir: "-", NoDedup: true}); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("put outside the prefix: %v", err)
	}
	reader := e2eClient(t, nodes, func(c *client.Config) { c.APIKey = roToken })
	if _, err := reader.GetFile(ctx, res.UID, filepath.Join(dir, "back"), client.GetOptions{}); err != nil {
		t.Fatalf("read-only get: %v", err)
	}
	if _, err := reader.PutFile(ctx, path, client.PutOptions{Name: "team/b.bin", StateDir: "-", NoDedup: true}); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("read-only put: %v", err)
	}
	if _, err := user.Keys(ctx); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("a scoped key lists keys: %v", err)
	}

	out.Reset()
	if err := cli.KeysRevoke(ctx, rw.ID); err != nil || !strings.Contains(out.String(), "revoked\t"+rw.ID) {
		t.Fatalf("revoke: %v %q", err, out.String())
	}
	if _, err := user.Object(ctx, res.UID); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("revoked key: %v", err)
	}
	if _, err := admin.RevokeKey(ctx, "0123456789abcdef"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("revoke unknown: %v", err)
	}
}
