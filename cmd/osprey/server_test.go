package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestServerSettingsPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "osprey.yaml")
	yaml := `
node_id: from-file
data_dir: /tmp/file-data
http_addr: 127.0.0.1:1111
join: [a:1, b:2]
redundancy: ec:2+1
backend: s3
s3: {endpoint: 10.0.0.9:9000, access_key: ak, bucket_prefix: "p-"}
link_max_expiry: 48h
`
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := parseServerFlags([]string{"--config", cfgPath, "--http-addr", "127.0.0.1:3333"}, io.Discard,
		env(map[string]string{"OSPREY_HTTP_ADDR": "127.0.0.1:2222", "OSPREY_DATA_DIR": "/tmp/env-data", "OSPREY_S3_SECRET_KEY": "sk", "OSPREY_JOIN_TOKEN": "tok"}))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := f.nodeConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"flag beats env and file", cfg.HTTPAddr, "127.0.0.1:3333"},
		{"env beats file", cfg.DataDir, "/tmp/env-data"},
		{"file when nothing else", cfg.NodeID, "from-file"},
		{"list from file", strings.Join(cfg.Join, ","), "a:1,b:2"},
		{"nested key", cfg.Backend.S3.Endpoint, "10.0.0.9:9000"},
		{"secret from env", cfg.Backend.S3.SecretKey, "sk"},
		{"join token from env", cfg.JoinToken, "tok"},
		{"ec policy", cfg.EC.String(), "ec:2+1"},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
	if cfg.Limits.MaxExpiry != 48*time.Hour {
		t.Errorf("link max expiry %s", cfg.Limits.MaxExpiry)
	}
}

func TestServerSettingsErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(bad, []byte("http_adr: x\n"), 0o600)
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown yaml key", []string{"--config", bad}, `unknown setting "http_adr"`},
		{"bad redundancy", []string{"--redundancy", "mirror:3"}, "want replicas:N or ec:K+M"},
		{"join without token", []string{"--join", "a:1"}, "--join needs --join-token"},
		{"both bootstrap modes", []string{"--bootstrap", "--bootstrap-expect", "3", "--join", "a:1", "--join-token", "t"}, "exclusive"},
		{"stray argument", []string{"extra"}, "unexpected arguments"},
		{"tls without key", []string{"--tls-cert", "n1.crt", "--tls-ca", "ca.crt"}, "--tls-key (env OSPREY_TLS_KEY, YAML tls_key) is not set: TLS needs all three"},
		{"tls cert only", []string{"--tls-cert", "n1.crt"}, "--tls-ca (env OSPREY_TLS_CA, YAML tls_ca) is not set"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseServerFlags(tt.args, io.Discard, env(nil))
			if err == nil {
				_, err = f.nodeConfig(nil)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestDefaultsAreSingleNodeOnLoopback(t *testing.T) {
	f, err := parseServerFlags(nil, io.Discard, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := f.nodeConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != "127.0.0.1:8080" || cfg.DataDir != "data" || cfg.Backend.Type != "local" || len(cfg.Join) != 0 || cfg.Replicas != 2 {
		t.Fatalf("defaults: %+v", cfg)
	}
}

// TestServerTLSSettings: the three TLS files come from flags, the
// environment or the YAML file like every setting.
func TestServerTLSSettings(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "osprey.yaml")
	_ = os.WriteFile(cfgFile, []byte("tls_ca: /etc/osprey/ca.crt\ntls_key: /from/yaml.key\n"), 0o600)
	f, err := parseServerFlags([]string{"--config", cfgFile, "--tls-key", "/etc/osprey/n1.key"}, io.Discard,
		env(map[string]string{"OSPREY_TLS_CERT": "/etc/osprey/n1.crt"}))
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.nodeConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.TLS.Cert != "/etc/osprey/n1.crt" || c.TLS.Key != "/etc/osprey/n1.key" || c.TLS.CA != "/etc/osprey/ca.crt" {
		t.Fatalf("TLS files %+v", c.TLS)
	}
}
