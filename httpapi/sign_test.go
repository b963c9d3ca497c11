package httpapi

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/osprey-storage/osprey"
)

var signNow = time.Date(2026, 3, 14, 15, 9, 26, 0, time.FixedZone("CST", 8*3600))

func TestSignUploadRoundTrip(t *testing.T) {
	q := signUpload(testSecret, testUID, signNow, 2*time.Hour)
	if got := q.Get("uid"); got != "1234567890123456789" {
		t.Errorf("uid %q", got)
	}
	// SPEC §2 and §6: UTC RFC 3339, not local time with a literal Z.
	if got := q.Get("date"); got != "2026-03-14T07:09:26Z" {
		t.Errorf("date %q, want the UTC instant", got)
	}
	if got := q.Get("expire"); got != "7200" {
		t.Errorf("expire %q", got)
	}
	if len(q.Get("signature")) != 64 {
		t.Errorf("signature %q is not hex SHA-256", q.Get("signature"))
	}
	if strings.Contains(q.Encode(), string(testSecret)) {
		t.Errorf("the secret appears in the link")
	}
	fields := uploadFields(q.Get("uid"), q.Get("date"), q.Get("expire"))
	if err := verifyLink(testSecret, q, fields, signNow.Add(time.Hour), time.Minute); err != nil {
		t.Fatalf("verifyLink: %v", err)
	}
	// The link survives encoding into a URL and back.
	back, err := url.ParseQuery(q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyLink(testSecret, back, uploadFields(back.Get("uid"), back.Get("date"), back.Get("expire")), signNow, time.Minute); err != nil {
		t.Fatalf("verifyLink after encoding: %v", err)
	}
}

func TestSignUploadCoversEachField(t *testing.T) {
	base := signUpload(testSecret, testUID, signNow, time.Hour)
	tests := []struct {
		name  string
		key   string
		value string
	}{
		{"uid", "uid", "1234567890123456780"},
		{"date", "date", "2026-03-14T07:09:25Z"},
		{"expire", "expire", "3601"},
		{"signature", "signature", strings.Repeat("0", 64)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := withParam(base, tt.key, tt.value)
			err := verifyLink(testSecret, q, uploadFields(q.Get("uid"), q.Get("date"), q.Get("expire")), signNow, time.Minute)
			if !errors.Is(err, osprey.ErrForbidden) {
				t.Fatalf("tampered %s: verifyLink = %v, want ErrForbidden", tt.key, err)
			}
		})
	}
	t.Run("other secret", func(t *testing.T) {
		q := signUpload([]byte("another secret"), testUID, signNow, time.Hour)
		if err := verifyLink(testSecret, q, uploadFields(q.Get("uid"), q.Get("date"), q.Get("expire")), signNow, time.Minute); !errors.Is(err, osprey.ErrForbidden) {
			t.Fatalf("verifyLink = %v", err)
		}
	})
	t.Run("upload link is not a download link", func(t *testing.T) {
		q := signUpload(testSecret, testUID, signNow, time.Hour)
		if err := verifyLink(testSecret, q, downloadFields(q), signNow, time.Minute); !errors.Is(err, osprey.ErrForbidden) {
			t.Fatalf("verifyLink = %v", err)
		}
	})
}

func TestSignDownloadCoversEachField(t *testing.T) {
	mk := func() url.Values {
		return downloadLink(testUID, "报告 1&2#.pdf", "1", "doc", "1234567890123456789.pdf", signNow, time.Hour)
	}
	if err := verifyLink(testSecret, mk(), downloadFields(mk()), signNow, time.Minute); err != nil {
		t.Fatalf("untampered link: %v", err)
	}
	tests := []struct{ key, value string }{
		{"uid", "1234567890123456788"},
		{"name", "other.pdf"},
		{"name", "报告 1&2#.PDF"},
		{"online", "0"},
		{"online", ""},
		{"bucket", "image"},
		{"object", "1234567890123456788.pdf"},
		{"date", "2026-03-14T07:09:27Z"},
		{"expire", "3599"},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			q := withParam(mk(), tt.key, tt.value)
			if err := verifyLink(testSecret, q, downloadFields(q), signNow, time.Minute); !errors.Is(err, osprey.ErrForbidden) {
				t.Fatalf("tampered %s: verifyLink = %v, want ErrForbidden", tt.key, err)
			}
		})
	}
	t.Run("removed name", func(t *testing.T) {
		q := mk()
		q.Del("name")
		if err := verifyLink(testSecret, q, downloadFields(q), signNow, time.Minute); !errors.Is(err, osprey.ErrForbidden) {
			t.Fatalf("verifyLink = %v", err)
		}
	})
	t.Run("download link is not an upload link", func(t *testing.T) {
		q := mk()
		if err := verifyLink(testSecret, q, uploadFields(q.Get("uid"), q.Get("date"), q.Get("expire")), signNow, time.Minute); !errors.Is(err, osprey.ErrForbidden) {
			t.Fatalf("verifyLink = %v", err)
		}
	})
	t.Run("unsigned extra parameters are harmless", func(t *testing.T) {
		q := withParam(mk(), "md5", "x")
		if err := verifyLink(testSecret, q, downloadFields(q), signNow, time.Minute); err != nil {
			t.Fatalf("verifyLink = %v", err)
		}
	})
}

func TestVerifyLinkTimes(t *testing.T) {
	q := signUpload(testSecret, testUID, signNow, time.Hour)
	fields := uploadFields(q.Get("uid"), q.Get("date"), q.Get("expire"))
	tests := []struct {
		name   string
		now    time.Time
		wantOK bool
		inMsg  string
	}{
		{"at signing", signNow, true, ""},
		{"at expiry", signNow.Add(time.Hour), true, ""},
		{"just after expiry", signNow.Add(time.Hour + time.Second), false, "expired"},
		{"a day later", signNow.Add(24 * time.Hour), false, "expired"},
		{"date within skew", signNow.Add(-time.Minute), true, ""},
		{"date beyond skew", signNow.Add(-time.Minute - time.Second), false, "future"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := verifyLink(testSecret, q, fields, tt.now, time.Minute)
			if tt.wantOK {
				if err != nil {
					t.Fatalf("verifyLink = %v", err)
				}
				return
			}
			if !errors.Is(err, osprey.ErrForbidden) || !strings.Contains(err.Error(), tt.inMsg) {
				t.Fatalf("verifyLink = %v, want ErrForbidden mentioning %q", err, tt.inMsg)
			}
		})
	}
}

func TestVerifyLinkMalformed(t *testing.T) {
	good := signUpload(testSecret, testUID, signNow, time.Hour)
	tests := []struct {
		name  string
		mod   func(url.Values)
		inMsg string
	}{
		{"no signature", func(q url.Values) { q.Del("signature") }, "signature missing"},
		{"empty signature", func(q url.Values) { q.Set("signature", "") }, "signature missing"},
		{"short signature", func(q url.Values) { q.Set("signature", q.Get("signature")[:63]) }, "does not match"},
		{"no date", func(q url.Values) { q.Del("date") }, "RFC 3339"},
		{"unix date", func(q url.Values) { q.Set("date", "1700000000") }, "RFC 3339"},
		{"no expire", func(q url.Values) { q.Del("expire") }, "positive"},
		{"zero expire", func(q url.Values) { q.Set("expire", "0") }, "positive"},
		{"negative expire", func(q url.Values) { q.Set("expire", "-5") }, "positive"},
		{"text expire", func(q url.Values) { q.Set("expire", "1h") }, "positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := withParam(good, "x", "")
			tt.mod(q)
			err := verifyLink(testSecret, q, uploadFields(q.Get("uid"), q.Get("date"), q.Get("expire")), signNow, time.Minute)
			if !errors.Is(err, osprey.ErrForbidden) || !strings.Contains(err.Error(), tt.inMsg) {
				t.Fatalf("verifyLink = %v, want ErrForbidden mentioning %q", err, tt.inMsg)
			}
		})
	}
	t.Run("uppercase hex accepted", func(t *testing.T) {
		q := withParam(good, "signature", strings.ToUpper(good.Get("signature")))
		if err := verifyLink(testSecret, q, uploadFields(q.Get("uid"), q.Get("date"), q.Get("expire")), signNow, time.Minute); err != nil {
			t.Fatalf("verifyLink = %v", err)
		}
	})
}

// TestSignFieldsUnambiguous: no two field lists share a signature because
// fields are escaped before they are joined.
func TestSignFieldsUnambiguous(t *testing.T) {
	pairs := [][2][]string{
		{{"a\nb"}, {"a", "b"}},
		{{"a", ""}, {"a\n"}},
		{{"a", "b", "c"}, {"a", "b\nc"}},
		{{"a b"}, {"a+b"}},
		{{"a%20b"}, {"a b"}},
	}
	for _, p := range pairs {
		if signFields(testSecret, p[0]...) == signFields(testSecret, p[1]...) {
			t.Errorf("%q and %q sign the same", p[0], p[1])
		}
	}
	if signFields(testSecret, "x") != signFields(testSecret, "x") {
		t.Error("signFields is not deterministic")
	}
	if signFields(testSecret, "x") == signFields([]byte("other"), "x") {
		t.Error("signature does not depend on the secret")
	}
}

// TestConstantTimeCompare checks in the source that signatures and keys are
// compared with hmac.Equal / subtle.ConstantTimeCompare, never with ==.
func TestConstantTimeCompare(t *testing.T) {
	fset := token.NewFileSet()
	checks := []struct {
		file, fn, call string
		vars           []string // identifiers that must never meet == or !=
	}{
		{"sign.go", "verifyLink", "hmac.Equal", []string{"sig", "want"}},
		{"server.go", "isStaticKey", "subtle.ConstantTimeCompare", []string{"key", "k"}},
		{"keys.go", "scopedPrincipal", "subtle.ConstantTimeCompare", []string{"want", "got", "hash", "secret"}},
		{"server.go", "validNodeAuth", "subtle.ConstantTimeCompare", []string{"want", "got"}},
	}
	for _, c := range checks {
		t.Run(c.fn, func(t *testing.T) {
			file, err := parser.ParseFile(fset, c.file, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			var fn *ast.FuncDecl
			for _, d := range file.Decls {
				if fd, ok := d.(*ast.FuncDecl); ok && fd.Name.Name == c.fn {
					fn = fd
				}
			}
			if fn == nil {
				t.Fatalf("%s not found in %s", c.fn, c.file)
			}
			found := false
			ast.Inspect(fn, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.CallExpr:
					if sel, ok := n.Fun.(*ast.SelectorExpr); ok {
						if x, ok := sel.X.(*ast.Ident); ok && x.Name+"."+sel.Sel.Name == c.call {
							found = true
						}
					}
				case *ast.BinaryExpr:
					if n.Op != token.EQL && n.Op != token.NEQ {
						return true
					}
					// Comparing with a literal ("" checks) leaks nothing.
					_, lx := n.X.(*ast.BasicLit)
					_, ly := n.Y.(*ast.BasicLit)
					if lx || ly {
						return true
					}
					for _, side := range []ast.Expr{n.X, n.Y} {
						if id, ok := side.(*ast.Ident); ok {
							for _, v := range c.vars {
								if id.Name == v {
									t.Errorf("%s compares %s with %s at %s", c.fn, v, n.Op, fset.Position(n.Pos()))
								}
							}
						}
					}
				}
				return true
			})
			if !found {
				t.Errorf("%s does not call %s", c.fn, c.call)
			}
		})
	}
}
