package s3api

import (
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

// TestStringToSignV2 checks the V2 string to sign and signature against a
// value computed independently (Python's hmac over the documented layout)
// for the AWS documentation's example request.
func TestStringToSignV2(t *testing.T) {
	r := httptest.NewRequest("GET", "http://johnsmith.s3.amazonaws.com/photos/puppy.jpg?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1141889120&Signature=x", nil)
	q := r.URL.Query()
	got := stringToSignV2(r, q, "1141889120", "johnsmith")
	if want := "GET\n\n\n1141889120\n/johnsmith/photos/puppy.jpg"; got != want {
		t.Fatalf("string to sign %q, want %q", got, want)
	}
	h := &handler{cfg: Config{Credentials: StaticCredentials(map[string]string{"AKIAIOSFODNN7EXAMPLE": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}),
		VirtualHostSuffixes: []string{"s3.amazonaws.com"}}}
	h.cfg = h.cfg.withDefaults()
	h.cfg.Now = func() time.Time { return time.Unix(1141889000, 0) }
	q.Set("Signature", "fScKGHCDI0NY5E7CYp9Vc8VKMbY=")
	r.URL.RawQuery = q.Encode()
	if _, err := h.verifyPresignedV2(r, q); err != nil {
		t.Fatalf("documented example: %v", err)
	}
	// Sub-resources and response overrides are signed, sorted.
	r2 := httptest.NewRequest("GET", "http://example.com/b/k?response-content-type=text%2Fplain&acl&AWSAccessKeyId=a&Expires=1&Signature=s", nil)
	if got := stringToSignV2(r2, r2.URL.Query(), "1", ""); got != "GET\n\n\n1\n/b/k?acl&response-content-type=text/plain" {
		t.Fatalf("with sub-resources: %q", got)
	}
	for name, mutate := range map[string]func(url.Values){
		"tampered signature": func(v url.Values) { v.Set("Signature", "AAAAHCDI0NY5E7CYp9Vc8VKMbY=") },
		"later expiry":       func(v url.Values) { v.Set("Expires", "1141889999") },
		"unknown key":        func(v url.Values) { v.Set("AWSAccessKeyId", "NOBODY") },
	} {
		v := url.Values{}
		for k, vs := range q {
			v[k] = vs
		}
		mutate(v)
		if _, err := h.verifyPresignedV2(r, v); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	h.cfg.Now = func() time.Time { return time.Unix(1141889121, 0) }
	if _, err := h.verifyPresignedV2(r, q); err == nil {
		t.Error("expired URL accepted")
	}
	put := httptest.NewRequest("PUT", r.URL.String(), nil)
	h.cfg.Now = func() time.Time { return time.Unix(1141889000, 0) }
	if _, err := h.verifyPresignedV2(put, q); err == nil {
		t.Error("a V2 presigned PUT was accepted")
	}
}
