package httpapi

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/osprey-storage/osprey"
)

// FuzzVerifyLink: only the values a link was signed for verify; mangled
// query strings are refused without a panic.
func FuzzVerifyLink(f *testing.F) {
	secret := []byte("fuzz-secret-0123456789")
	now := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	good := signDownload(secret, url.Values{"uid": {"1"}, "name": {"a.jpg"}, "online": {"1"}, "bucket": {"image"}, "object": {"1.jpg"}}, now, time.Hour)
	f.Add(good.Encode())
	f.Add("signature=&date=2026-12-04T00:00:00Z&expire=60")
	f.Add("%zz=1&&&date=yesterday")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		if verifyLink(secret, q, downloadFields(q), now, time.Minute) != nil {
			return
		}
		want, got := downloadFields(good), downloadFields(q)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("a link for other values verified: %q", raw)
			}
		}
	})
}

// FuzzScopedKey: a bearer token authenticates only as the key whose
// secret it carries; anything else is refused, and parsing never panics.
func FuzzScopedKey(f *testing.F) {
	keys := newMemKeys()
	const secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I"
	if _, err := keys.CreateKey(context.Background(), NewKey{ID: "0123456789abcdef", Hash: hashSecret(secret), Tenant: "t"}); err != nil {
		f.Fatal(err)
	}
	s := &Server{cfg: Config{Keys: keys}}
	good := ScopedKeyPrefix + "0123456789abcdef_" + secret
	f.Add(good)
	f.Add(ScopedKeyPrefix + "0123456789abcdef_")
	f.Add(ScopedKeyPrefix + "_" + secret)
	f.Add("osk__")
	f.Add("Bearer " + good)
	f.Fuzz(func(t *testing.T, token string) {
		p, err := s.scopedPrincipal(token)
		if err != nil {
			if !errors.Is(err, osprey.ErrUnauthorized) {
				t.Fatalf("token %q: %v, want unauthorized", token, err)
			}
			return
		}
		if token != good || p.KeyID != "0123456789abcdef" || p.Tenant != "t" {
			t.Fatalf("token %q authenticated as %+v", token, p)
		}
	})
}
