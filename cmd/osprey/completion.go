package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
)

// flagLine matches a flag in a command's usage ("  -chunk-size value").
var flagLine = regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)

// commandFlags returns a command's flags, read from its own --help output,
// so completion never drifts from the flags the commands really take.
func commandFlags(ctx context.Context, name string) []string {
	var buf bytes.Buffer
	_ = run(ctx, []string{name, "--help"}, &buf, &buf)
	var out []string
	for _, m := range flagLine.FindAllStringSubmatch(buf.String(), -1) {
		out = append(out, "--"+m[1])
	}
	sort.Strings(out)
	return out
}

// runCompletion prints a shell completion script for bash, zsh or fish.
func runCompletion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("completion", "bash|zsh|fish", stderr)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr(fs, "completion needs one shell: bash, zsh or fish")
	}
	var names []string
	flags := map[string][]string{}
	for _, c := range commands() {
		names = append(names, c.name)
		if c.name != "completion" {
			flags[c.name] = commandFlags(ctx, c.name)
		}
	}
	switch pos[0] {
	case "bash", "zsh":
		var b strings.Builder
		if pos[0] == "zsh" {
			b.WriteString("#compdef osprey\nautoload -U +X bashcompinit && bashcompinit\n")
		}
		b.WriteString("# osprey shell completion. Load with: source <(osprey completion " + pos[0] + ")\n")
		b.WriteString("_osprey() {\n  local cur=\"${COMP_WORDS[COMP_CWORD]}\" cmd=\"${COMP_WORDS[1]}\"\n")
		fmt.Fprintf(&b, "  if [[ ${COMP_CWORD} -eq 1 ]]; then\n    COMPREPLY=($(compgen -W %q -- \"${cur}\"))\n    return\n  fi\n", strings.Join(names, " "))
		b.WriteString("  case \"${cmd}\" in\n")
		for _, n := range names {
			if len(flags[n]) == 0 {
				continue
			}
			fmt.Fprintf(&b, "    %s) [[ ${cur} == -* ]] && COMPREPLY=($(compgen -W %q -- \"${cur}\")) || COMPREPLY=($(compgen -f -- \"${cur}\")) ;;\n",
				n, strings.Join(flags[n], " "))
		}
		b.WriteString("    completion) COMPREPLY=($(compgen -W \"bash zsh fish\" -- \"${cur}\")) ;;\n")
		b.WriteString("    cluster) [[ ${COMP_CWORD} -eq 2 ]] && COMPREPLY=($(compgen -W \"status nodes join remove leader-transfer\" -- \"${cur}\")) ;;\n")
		b.WriteString("  esac\n}\ncomplete -o default -F _osprey osprey\n")
		_, err := io.WriteString(stdout, b.String())
		return err
	case "fish":
		var b strings.Builder
		b.WriteString("# osprey shell completion. Load with: osprey completion fish | source\n")
		b.WriteString("complete -c osprey -f\n")
		for _, c := range commands() {
			fmt.Fprintf(&b, "complete -c osprey -n __fish_use_subcommand -a %s -d %q\n", c.name, c.usage)
		}
		for _, n := range names {
			for _, f := range flags[n] {
				fmt.Fprintf(&b, "complete -c osprey -n '__fish_seen_subcommand_from %s' -l %s\n", n, strings.TrimPrefix(f, "--"))
			}
		}
		b.WriteString("complete -c osprey -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'\n")
		b.WriteString("complete -c osprey -n '__fish_seen_subcommand_from cluster' -a 'status nodes join remove leader-transfer'\n")
		b.WriteString("complete -c osprey -n '__fish_seen_subcommand_from put get' -F\n")
		_, err := io.WriteString(stdout, b.String())
		return err
	}
	return usageErr(fs, "unknown shell %q: want bash, zsh or fish", pos[0])
}
