package main

import (
	"context"
	"io"
)

// command is one osprey subcommand. run receives the arguments after the
// subcommand name and writes to the given streams; it never calls os.Exit.
type command struct {
	name  string // subcommand name, e.g. "put"
	usage string // one-line description for `osprey help`
	run   func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}
