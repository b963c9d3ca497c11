package osprey

import "context"

// Principal is who a request acts for, as established by the HTTP layer's
// authentication. The zero Principal is an administrator in the shared
// namespace: a static --api-keys key, a loopback client in protected mode,
// or a node.
type Principal struct {
	// KeyID names the scoped API key that authenticated the request; ""
	// for an admin credential.
	KeyID string
	// Tenant isolates content: dedup (instant upload, /resume, md5 lookups)
	// only ever matches content stored under the same tenant. "" is the
	// shared namespace of admin credentials.
	Tenant string
	// ReadOnly forbids every call that creates, changes or deletes data.
	ReadOnly bool
	// Prefixes, when not empty, limit the key to names (native API) or
	// "bucket/key" paths (S3) starting with one of them.
	Prefixes []string
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the Principal ctx carries, or the zero (admin)
// Principal.
func PrincipalFrom(ctx context.Context) Principal {
	p, _ := ctx.Value(principalKey{}).(Principal)
	return p
}

// Scoped reports whether p is a scoped API key rather than an admin.
func (p Principal) Scoped() bool { return p.KeyID != "" }

// AllowsName reports whether p may create, read or delete a file named
// name: always for an admin or a key without prefixes, else when name
// starts with one of p's prefixes.
func (p Principal) AllowsName(name string) bool {
	if len(p.Prefixes) == 0 {
		return true
	}
	for _, pre := range p.Prefixes {
		if len(name) >= len(pre) && name[:len(pre)] == pre {
			return true
		}
	}
	return false
}

// Sees reports whether p may address a file owned by tenant at all: an
// admin sees every tenant, a scoped key only its own.
func (p Principal) Sees(tenant string) bool { return !p.Scoped() || tenant == p.Tenant }
