// Command osprey is the osprey server and its command-line client.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"syscall"
)

// Set by the Makefile with -ldflags -X.
var (
	version = "dev"
	commit  = "unknown"
	date    = "" // build date, UTC
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// A second signal exits at once.
		<-ctx.Done()
		c := make(chan os.Signal, 1)
		signal.Notify(c, os.Interrupt, syscall.SIGTERM)
		<-c
		fmt.Fprintln(os.Stderr, "osprey: second signal, exiting now")
		os.Exit(130)
	}()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode prints err for the user (unless it was printed already) and
// returns the process status: 0 for success and for help, 2 for usage
// errors, 1 otherwise.
func exitCode(err error, stderr io.Writer) int {
	var printed printedError
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &printed):
		return 2
	}
	fmt.Fprintln(stderr, "osprey:", userMessage(err))
	return 1
}

// wantsHelp reports whether args ask for help (-h, -help or --help before
// any "--").
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

func commands() []command {
	cmds := []command{
		{name: "server", usage: "run a node (single-node cluster on 127.0.0.1:8080 with no flags)", run: runServer},
		{name: "version", usage: "print the version", run: runVersion},
		{name: "completion", usage: "bash|zsh|fish: print a shell completion script", run: runCompletion},
	}
	cmds = append(cmds, clientCommands()...)
	sort.SliceStable(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	return cmds
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	switch {
	case len(args) == 0:
		usage(stderr)
		return printedError{errors.New("no command given")}
	case args[0] == "help" || args[0] == "-h" || args[0] == "-help" || args[0] == "--help":
		if len(args) > 1 && args[1] != "-h" && args[1] != "--help" {
			// "osprey help put" is "osprey put --help".
			return run(ctx, []string{args[1], "--help"}, stdout, stderr)
		}
		usage(stdout)
		return nil
	case args[0] == "--version" || args[0] == "-version" || args[0] == "-v":
		return runVersion(ctx, nil, stdout, stderr)
	}
	for _, c := range commands() {
		if c.name == args[0] {
			if wantsHelp(args[1:]) {
				// Asked-for help goes to stdout, and is not an error.
				err := c.run(ctx, args[1:], stdout, stdout)
				if errors.Is(err, flag.ErrHelp) {
					return nil
				}
				return err
			}
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "osprey: unknown command %q\n\n", args[0])
	usage(stderr)
	return printedError{fmt.Errorf("unknown command %q", args[0])}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: osprey <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.usage)
	}
	fmt.Fprintln(w, "\nRun 'osprey <command> -h' for a command's flags, 'osprey --version' for the version.")
}

// versionString is the one-line version: the commit is shown only when
// the version does not already name it (git describe of an untagged tree
// is the commit itself).
func versionString() string {
	parts := []string{}
	if commit != "" && commit != "unknown" && !strings.Contains(version, commit) {
		parts = append(parts, "commit "+commit)
	}
	if date != "" {
		parts = append(parts, "built "+date)
	}
	parts = append(parts, runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH)
	return fmt.Sprintf("osprey %s (%s)", version, strings.Join(parts, ", "))
}

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "", stderr)
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(stdout, versionString())
	return nil
}
