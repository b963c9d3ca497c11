package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/osprey-storage/osprey/client"
)

func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("backup", "-o FILE [flags]", stderr)
	cf := addClientFlags(fs, true)
	out := fs.String("o", "", "write the backup to this file")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *out == "" {
		return usageErr(fs, "backup needs -o FILE and no arguments")
	}
	c, err := cf.cli(stdout, stderr)
	if err != nil {
		return err
	}
	return c.Backup(ctx, *out)
}

func runRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("restore", "FILE [flags]", stderr)
	cf := addClientFlags(fs, true)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr(fs, "restore needs exactly one FILE")
	}
	c, err := cf.cli(stdout, stderr)
	if err != nil {
		return err
	}
	return c.Restore(ctx, pos[0])
}

func runBenchMetadata(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench-metadata", "[--links N] [--uploads N] [flags]", stderr)
	cf := addClientFlags(fs, false)
	var o client.MetaBenchOptions
	fs.IntVar(&o.Links, "links", 1_000_000, "link-only records to load (50 per request)")
	fs.IntVar(&o.Uploads, "uploads", 150_000, "real 4 KiB uploads to load")
	fs.IntVar(&o.Sample, "sample", 3000, "4 KiB uploads timed before and after the load")
	fs.IntVar(&o.Concurrency, "concurrency", 16, "requests in flight")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageErr(fs, "bench-metadata takes no arguments")
	}
	c, err := cf.cli(stdout, stderr)
	if err != nil {
		return err
	}
	return c.BenchMetadata(ctx, o)
}

// runHealth exits 0 when the node answers /readyz with 200 (for container
// health checks and scripts; there is no shell or curl in the image).
func runHealth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("health", "[--addr URL]", stderr)
	cf := addClientFlags(fs, false)
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageErr(fs, "health takes no arguments")
	}
	c, err := cf.cli(stdout, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := c.Client.Ready(ctx, ""); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "ready")
	return nil
}
