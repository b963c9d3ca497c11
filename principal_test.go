package osprey

import (
	"context"
	"testing"
)

func TestPrincipalScope(t *testing.T) {
	admin := PrincipalFrom(context.Background())
	if admin.Scoped() || !admin.AllowsName("any/name") || !admin.Sees("") || !admin.Sees("acme") {
		t.Fatalf("the zero principal is not an admin: %+v", admin)
	}
	p := Principal{KeyID: "k1", Tenant: "acme", Prefixes: []string{"photos/", "docs/"}}
	ctx := WithPrincipal(context.Background(), p)
	got := PrincipalFrom(ctx)
	if !got.Scoped() || got.Tenant != "acme" {
		t.Fatalf("from context: %+v", got)
	}
	for name, want := range map[string]bool{"photos/cat.jpg": true, "docs/": true, "photo.jpg": false, "": false, "x/photos/a": false} {
		if got.AllowsName(name) != want {
			t.Errorf("AllowsName(%q) = %v, want %v", name, !want, want)
		}
	}
	if got.Sees("") || got.Sees("other") || !got.Sees("acme") {
		t.Error("a scoped key sees another tenant")
	}
	if !(Principal{KeyID: "k2", Tenant: "k2"}).AllowsName("anything") {
		t.Error("a key without prefixes is limited")
	}
}
