package httpapi

import (
	"net/url"
	"testing"
	"time"
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
