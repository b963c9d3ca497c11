package main

import (
	"context"
	"io"
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
