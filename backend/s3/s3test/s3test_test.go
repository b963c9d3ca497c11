package s3test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindBinary(t *testing.T) {
	t.Run("OSPREY_MINIO missing file", func(t *testing.T) {
		t.Setenv("OSPREY_MINIO", filepath.Join(t.TempDir(), "nope"))
		if _, err := FindBinary(); !errors.Is(err, ErrNoBinary) {
			t.Fatalf("FindBinary = %v, want ErrNoBinary", err)
		}
	})
	t.Run("OSPREY_MINIO set", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "minio")
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		t.Setenv("OSPREY_MINIO", p)
		if got, err := FindBinary(); err != nil || got != p {
			t.Fatalf("FindBinary = %q, %v; want %q", got, err, p)
		}
	})
	t.Run("nothing anywhere names the install command", func(t *testing.T) {
		t.Setenv("OSPREY_MINIO", "")
		t.Setenv("PATH", t.TempDir())
		t.Setenv("OSPREY_BIN_DIR", t.TempDir())
		_, err := FindBinary()
		if !errors.Is(err, ErrNoBinary) || !strings.Contains(err.Error(), "go install github.com/minio/minio@"+MinIOVersion) {
			t.Fatalf("FindBinary = %v", err)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr bool
	}{
		{"ok", func(*Config) {}, false},
		{"no dir", func(c *Config) { c.Dir = "" }, true},
		{"bad addr", func(c *Config) { c.Addr = "nope" }, true},
		{"short secret", func(c *Config) { c.SecretKey = "short" }, true},
		{"no timeout", func(c *Config) { c.ReadyTimeout = 0 }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Dir = t.TempDir()
			tt.mutate(&cfg)
			if err := cfg.Validate(); (err != nil) != tt.wantErr {
				t.Fatalf("Validate = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

func TestStartStopRestart(t *testing.T) {
	s := StartServer(t)
	if !s.Running() {
		t.Fatal("not running after start")
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if s.Running() {
		t.Fatal("running after Stop")
	}
	if err := s.Stop(); err != nil { // idempotent
		t.Fatal(err)
	}
	if err := s.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !s.Running() {
		t.Fatal("not running after Restart")
	}
}

func TestStartFailsWithBadBinary(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.Binary = filepath.Join(t.TempDir(), "false.sh")
	if err := os.WriteFile(cfg.Binary, []byte("#!/bin/sh\necho broken >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := StartConfig(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("StartConfig with a failing binary = %v, want an error quoting its log", err)
	}
}
