package s3api

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// Credentials looks up the secret key for an access key. Implementations
// must be safe for concurrent use.
type Credentials interface {
	// Secret returns the secret for accessKey and whether it is known.
	Secret(accessKey string) (string, bool)
}

// staticCredentials is an immutable map of access key → secret.
type staticCredentials map[string]string

// Secret implements Credentials.
func (s staticCredentials) Secret(accessKey string) (string, bool) {
	v, ok := s[accessKey]
	return v, ok
}

// StaticCredentials returns Credentials backed by a copy of pairs
// (access key → secret), typically the root pair merged with the result of
// LoadCredentialsFile.
func StaticCredentials(pairs map[string]string) Credentials {
	m := make(staticCredentials, len(pairs))
	for k, v := range pairs {
		m[k] = v
	}
	return m
}

// LoadCredentialsFile reads a credentials file: one "ACCESS SECRET" pair per
// line, separated by whitespace; blank lines and lines starting with # are
// ignored. Errors name the line number but never contain a secret.
func LoadCredentialsFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("s3api: open credentials file: %w", err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Fields(text)
		if len(fields) != 2 {
			return nil, fmt.Errorf("s3api: credentials file %s line %d: want \"ACCESS SECRET\", got %d fields", path, line, len(fields))
		}
		ak, sk := fields[0], fields[1]
		if len(ak) < 3 || strings.ContainsAny(ak, "/=,") {
			return nil, fmt.Errorf("s3api: credentials file %s line %d: invalid access key %q", path, line, ak)
		}
		if len(sk) < 8 {
			return nil, fmt.Errorf("s3api: credentials file %s line %d: secret for %q shorter than 8 characters", path, line, ak)
		}
		if _, dup := out[ak]; dup {
			return nil, fmt.Errorf("s3api: credentials file %s line %d: duplicate access key %q", path, line, ak)
		}
		out[ak] = sk
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("s3api: read credentials file %s: %w", path, err)
	}
	return out, nil
}
