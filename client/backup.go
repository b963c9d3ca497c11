package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
)

// RestoreResult is the cluster's answer to a metadata restore.
type RestoreResult struct {
	Index   uint64   `json:"index"`
	Files   int      `json:"files"`
	Removed []string `json:"removed,omitempty"`
	Lost    int      `json:"lost"`
}

// Backup streams a point-in-time copy of the cluster's metadata (from the
// leader) to w and returns the Raft index it reflects. The copy is
// checksummed; a stream cut short is detected by Restore.
func (c *Client) Backup(ctx context.Context, w io.Writer) (uint64, error) {
	resp, err := c.do(ctx, &request{method: http.MethodGet, target: "/cluster/backup", auth: true, idempotent: true})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	index, err := strconv.ParseUint(resp.Header.Get("X-Osprey-Backup-Index"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("client: backup: reply without an index: %w", err)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return 0, fmt.Errorf("client: backup: %w", err)
	}
	return index, nil
}

// Restore loads a metadata backup into the cluster (through its leader),
// keeping the cluster's members. size is the backup's length.
func (c *Client) Restore(ctx context.Context, r io.ReadSeeker, size int64) (RestoreResult, error) {
	var res RestoreResult
	err := c.doJSON(ctx, &request{method: http.MethodPost, target: "/cluster/restore", auth: true,
		body: readerBody(r), contentLength: size, contentType: "application/octet-stream"}, &res)
	return res, err
}

// Backup writes the cluster's metadata to the file out, atomically: a
// temporary file beside it is renamed into place only once the whole
// backup was received and synced.
func (c *CLI) Backup(ctx context.Context, out string) error {
	if out == "" {
		return fmt.Errorf("%w: backup needs -o FILE", ErrUsage)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	index, err := c.Client.Backup(ctx, tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return err
	}
	st, err := os.Stat(out)
	if err != nil {
		return err
	}
	if c.JSON {
		return c.printJSON(map[string]any{"file": out, "index": index, "bytes": st.Size()})
	}
	fmt.Fprintf(c.Stdout, "backup of raft index %d written to %s (%d bytes)\n", index, out, st.Size())
	return nil
}

// Restore loads the backup file in into the cluster.
func (c *CLI) Restore(ctx context.Context, in string) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	res, err := c.Client.Restore(ctx, f, st.Size())
	if err != nil {
		return err
	}
	if c.JSON {
		return c.printJSON(res)
	}
	fmt.Fprintf(c.Stdout, "restored metadata of raft index %d: %d files", res.Index, res.Files)
	if len(res.Removed) > 0 {
		fmt.Fprintf(c.Stdout, "; members of the backup not in this cluster, removed: %v", res.Removed)
	}
	if res.Lost > 0 {
		fmt.Fprintf(c.Stdout, "; %d contents were only staged on those members and are lost (their files answer 410)", res.Lost)
	}
	fmt.Fprintln(c.Stdout)
	return nil
}
