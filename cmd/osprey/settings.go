package main

import (
	"errors"
	"flag"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/osprey-storage/osprey/client"
)

// bytesValue is a size setting: a number of bytes or a number with a unit
// (64MiB, 256MiB, 5GiB, 1G = 1 GiB, 500MB = 500,000,000).
type bytesValue struct{ v *int64 }

func (b bytesValue) String() string {
	if b.v == nil {
		return ""
	}
	return strings.ReplaceAll(client.HumanBytes(*b.v), " ", "")
}

func (b bytesValue) Set(s string) error {
	n, err := client.ParseSize(s)
	if err != nil {
		return errors.New("want a size such as 64MiB, 5GiB, 1G or a number of bytes")
	}
	*b.v = n
	return nil
}

// durationValue is a duration setting with an error that says what is
// accepted (the flag package's own says only "parse error").
type durationValue struct{ v *time.Duration }

func (d durationValue) String() string {
	if d.v == nil {
		return ""
	}
	return d.v.String()
}

func (d durationValue) Set(s string) error {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return errors.New("want a duration such as 30s, 10m or 24h")
	}
	*d.v = v
	return nil
}

// settingNames names a server setting the three ways it can be given.
func settingNames(flagName string) string {
	return fmt.Sprintf("--%s (env %s, YAML %s)", flagName, envName(flagName), yamlName(flagName))
}

func envName(flagName string) string {
	return "OSPREY_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func yamlName(flagName string) string { return strings.ReplaceAll(flagName, "-", "_") }

// settingError is a bad setting: which one, where it was given, the value,
// and what is accepted.
type settingError struct {
	name   string // flag name
	source string // "--x", "env OSPREY_X" or "<file>: x"
	value  string
	want   string
}

func (e *settingError) Error() string {
	src := e.source
	if src == "" {
		src = settingNames(e.name)
	}
	return fmt.Sprintf("%s = %q: %s", src, e.value, e.want)
}

// printedError is an error whose message (and the command's usage) was
// already written to the user: main exits with status 2 without printing it
// again.
type printedError struct{ err error }

func (e printedError) Error() string { return e.err.Error() }
func (e printedError) Unwrap() error { return e.err }

// parseFlags parses args into fs. A parse error was already printed by the
// flag package (its message, then the usage).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		return printedError{err}
	}
	return nil
}

// pkgPrefix matches a Go package prefix at the start of a message or of a
// wrapped part ("node: backend: node: ...").
var pkgPrefix = regexp.MustCompile(`(^|: )(client|node|server|httpapi|raftstore|fsm|chunkstore|backend|local|s3|oss|cos|erasure|snowflake|ring|tlsconf): `)

// userMessage is err's message without the Go package prefixes that help
// in logs but not on a terminal.
func userMessage(err error) string {
	msg := err.Error()
	for {
		next := pkgPrefix.ReplaceAllString(msg, "$1")
		if next == msg {
			return msg
		}
		msg = next
	}
}
