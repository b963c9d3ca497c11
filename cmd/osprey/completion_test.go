package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBashCompletion loads the generated script into a real bash and asks
// it to complete a subcommand and a flag.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not installed")
	}
	var script bytes.Buffer
	if err := run(context.Background(), []string{"completion", "bash"}, &script, &script); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "osprey.bash")
	if err := os.WriteFile(p, script.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		words string
		cword int
		want  string
	}{
		{"osprey ba", 1, "backup"},
		{"osprey put --chunk", 2, "--chunk-size"},
		{"osprey server --repair", 2, "--repair-grace"},
		{"osprey cluster st", 2, "status"},
	} {
		out, err := exec.Command(bash, "-c", `source "$1"; COMP_WORDS=($2); COMP_CWORD=$3; _osprey; echo "${COMPREPLY[@]}"`,
			"bash", p, tt.words, itoa(tt.cword)).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", tt.words, err, out)
		}
		if !strings.Contains(string(out), tt.want) {
			t.Errorf("completing %q gave %q, want %q", tt.words, out, tt.want)
		}
	}
}

func TestFishAndZshCompletion(t *testing.T) {
	for shell, want := range map[string]string{
		"fish": "complete -c osprey -n '__fish_seen_subcommand_from put' -l chunk-size",
		"zsh":  "#compdef osprey",
	} {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"completion", shell}, &out, &out); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), want) {
			t.Errorf("%s completion lacks %q", shell, want)
		}
	}
}

func itoa(n int) string { return string(rune('0' + n)) }
