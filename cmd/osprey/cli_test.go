package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func runCLI(args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	code = exitCode(err, &errb)
	return out.String(), errb.String(), code
}

// TestHelpAndBadFlags: help goes to stdout with status 0 on every command;
// a bad flag prints its error once, then the usage, with status 2.
func TestHelpAndBadFlags(t *testing.T) {
	for _, tt := range []struct {
		name     string
		args     []string
		code     int
		stdout   string // must contain
		stderr   string // must contain
		errCount string // must appear exactly once in stderr
	}{
		{"top-level --help", []string{"--help"}, 0, "usage: osprey <command>", "", ""},
		{"top-level -h", []string{"-h"}, 0, "usage: osprey <command>", "", ""},
		{"help command", []string{"help"}, 0, "usage: osprey <command>", "", ""},
		{"help put", []string{"help", "put"}, 0, "usage: osprey put", "", ""},
		{"put --help", []string{"put", "--help"}, 0, "usage: osprey put", "", ""},
		{"server -h", []string{"server", "-h"}, 0, "usage: osprey server", "", ""},
		{"cluster --help", []string{"cluster", "--help"}, 0, "usage: osprey cluster", "", ""},
		{"backup -h", []string{"backup", "-h"}, 0, "usage: osprey backup", "", ""},
		{"keys --help", []string{"keys", "--help"}, 0, "usage: osprey keys", "", ""},
		{"keys create --help", []string{"keys", "create", "--help"}, 0, "--read-only", "", ""},
		{"keys revoke without id", []string{"keys", "revoke"}, 2, "", "usage: osprey keys revoke", "keys revoke needs exactly one key ID"},
		{"keys unknown subcommand", []string{"keys", "rotate"}, 2, "", "usage: osprey keys", `unknown subcommand "rotate"`},
		{"bad flag", []string{"put", "--bogus", "x"}, 2, "", "usage: osprey put", "flag provided but not defined: -bogus"},
		{"bad server flag", []string{"server", "--nope"}, 2, "", "usage: osprey server", "flag provided but not defined: -nope"},
		{"missing argument", []string{"restore"}, 2, "", "usage: osprey restore", "restore needs exactly one FILE"},
		{"unknown command", []string{"frobnicate"}, 2, "", "usage: osprey <command>", `unknown command "frobnicate"`},
		{"--version", []string{"--version"}, 0, "osprey ", "", ""},
		{"version", []string{"version"}, 0, "osprey ", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runCLI(tt.args...)
			if code != tt.code {
				t.Errorf("status %d, want %d (stderr %q)", code, tt.code, errOut)
			}
			if !strings.Contains(out, tt.stdout) {
				t.Errorf("stdout %q does not contain %q", out, tt.stdout)
			}
			if !strings.Contains(errOut, tt.stderr) {
				t.Errorf("stderr %q does not contain %q", errOut, tt.stderr)
			}
			if tt.errCount != "" && strings.Count(errOut, tt.errCount) != 1 {
				t.Errorf("stderr has %q %d times, want once:\n%s", tt.errCount, strings.Count(errOut, tt.errCount), errOut)
			}
			if tt.code == 0 && errOut != "" {
				t.Errorf("help wrote to stderr: %q", errOut)
			}
			if strings.Contains(errOut, "client: ") || strings.Contains(errOut, "bad usage") {
				t.Errorf("stderr leaks a package prefix: %q", errOut)
			}
		})
	}
}

// TestSettingErrorsNameTheSetting: every bad setting names the flag, env
// variable or YAML key it came from, the value, and what is accepted.
func TestSettingErrorsNameTheSetting(t *testing.T) {
	dir := t.TempDir()
	yamlFile := func(body string) string {
		p := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		yaml string
		want []string
	}{
		{"negative size in YAML", nil, nil, "max_chunk_size: -1\n", []string{"max_chunk_size", `"-1"`, "want a size such as 64MiB"}},
		{"zero size flag", []string{"--buffer-budget", "0"}, nil, "", []string{"--buffer-budget", `"0"`, "more than 0 bytes"}},
		{"bad duration in env", nil, map[string]string{"OSPREY_GC_GRACE": "soon"}, "", []string{"env OSPREY_GC_GRACE", `"soon"`, "want a duration such as 30s"}},
		{"bad duration flag", []string{"--link-expiry", "1 day"}, nil, "", []string{"link-expiry", "want a duration"}},
		{"expiry above the maximum", []string{"--link-expiry", "200h"}, nil, "", []string{"--link-expiry", `"200h0m0s"`, "--link-max-expiry (168h0m0s)"}},
		{"orphan grace below the task lease", []string{"--orphan-grace", "45s"}, nil, "",
			[]string{"--orphan-grace", `"45s"`, "at least --gc-grace and twice --task-lease (1m0s)"}},
		{"orphan grace in YAML below the gc grace", nil, nil, "orphan_grace: 2m\ngc_grace: 5m\n",
			[]string{"orphan_grace", `"2m0s"`, "(5m0s)"}},
		{"bad redundancy", []string{"--redundancy", "replicas:0"}, nil, "", []string{"--redundancy", `"replicas:0"`, "1 to 16"}},
		{"bad log level", []string{"--log-level", "loud"}, nil, "", []string{"--log-level", `"loud"`, "debug, info, warn or error"}},
		{"unknown YAML key", nil, nil, "max_chunk: 1\n", []string{`unknown setting "max_chunk"`}},
		{"raft lease above the heartbeat timeout", []string{"--raft-heartbeat-timeout", "500ms", "--raft-leader-lease-timeout", "800ms"}, nil, "",
			[]string{"--raft-leader-lease-timeout", `"800ms"`, "--raft-heartbeat-timeout (500ms)"}},
		{"raft election below the heartbeat timeout", nil, map[string]string{"OSPREY_RAFT_ELECTION_TIMEOUT": "200ms"}, "",
			[]string{"OSPREY_RAFT_ELECTION_TIMEOUT", `"200ms"`, "at least --raft-heartbeat-timeout"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.yaml != "" {
				args = append([]string{"--config", yamlFile(tt.yaml)}, args...)
			}
			var stderr bytes.Buffer
			f, err := parseServerFlags(args, &stderr, env(tt.env))
			if err == nil {
				_, err = newLogger(f.logLevel, f.logFormat, &stderr)
			}
			if err == nil {
				_, err = f.nodeConfig(nil)
			}
			msg := stderr.String()
			if err != nil {
				msg += userMessage(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not contain %q", msg, w)
				}
			}
		})
	}
}

// TestSizesTakeUnits: sizes take units in flags, the environment and YAML.
func TestSizesTakeUnits(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte("max_upload_size: 5GiB\nscrub_rate: 16MiB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := parseServerFlags([]string{"--config", p, "--max-chunk-size", "64MiB", "--memory-limit", "300MiB"}, &bytes.Buffer{},
		env(map[string]string{"OSPREY_BUFFER_BUDGET": "1G"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want int64
	}{
		{"flag", f.maxChunkSize, 64 << 20},
		{"flag memory limit", f.memoryLimit, 300 << 20},
		{"env 1G = 1 GiB", f.bufferBudget, 1 << 30},
		{"yaml", f.maxUploadSize, 5 << 30},
		{"yaml rate", f.scrubRate, 16 << 20},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.name, c.got, c.want)
		}
	}
	if f.linkExpiry != 24*time.Hour {
		t.Errorf("default link expiry %s", f.linkExpiry)
	}
}

func TestVersionDoesNotRepeatTheCommit(t *testing.T) {
	defer func(v, c, d string) { version, commit, date = v, c, d }(version, commit, date)
	version, commit, date = "4c7b54d", "4c7b54d", "2026-12-04T00:00:00Z"
	if s := versionString(); strings.Count(s, "4c7b54d") != 1 || !strings.Contains(s, "built 2026-12-04") {
		t.Errorf("version %q", s)
	}
	version = "v0.2.0"
	if s := versionString(); !strings.Contains(s, "v0.2.0") || !strings.Contains(s, "commit 4c7b54d") {
		t.Errorf("version %q", s)
	}
}

func TestUserMessageDropsPackagePrefixes(t *testing.T) {
	err := errors.New("node: backend: node: s3: bucket missing: client: bad usage: x")
	if got, want := userMessage(err), "bucket missing: bad usage: x"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}

func TestAutoAdvertise(t *testing.T) {
	if got, err := autoAdvertise("127.0.0.1:8080"); err != nil || got != "" {
		t.Errorf("specific host: %q, %v", got, err)
	}
	got, err := autoAdvertise("0.0.0.0:8080")
	if err != nil {
		t.Skipf("no non-loopback address here: %v", err)
	}
	if !strings.HasSuffix(got, ":8080") || strings.HasPrefix(got, "0.0.0.0") || strings.HasPrefix(got, "127.") {
		t.Errorf("0.0.0.0:8080 advertised as %q", got)
	}
}
