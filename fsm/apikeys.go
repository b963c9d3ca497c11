package fsm

import (
	"encoding/hex"
	"fmt"
	"unicode/utf8"
)

// Scoped API keys (keys.go: table a). The FSM stores what authentication
// needs and nothing a reader of the store or of a backup could log in
// with: the SHA-256 of the secret, never the secret. Keys are created and
// revoked through the log, so every node authenticates against the same
// set once it has applied the entry; a revoked key stays listed, with the
// time it was revoked.

// Limits of a key's fields.
const (
	MaxKeyIDLen       = 64
	MaxTenantLen      = 128
	MaxKeyPrefixes    = 32
	MaxKeyPrefixLen   = 1024
	MaxKeyDescription = 256
)

// APIKey is a scoped API key as stored and read back.
type APIKey struct {
	ID string `json:"id"`
	// Hash is the hex SHA-256 of the key's secret.
	Hash string `json:"hash"`
	// Tenant isolates the files the key creates and sees
	// (osprey.Principal.Tenant).
	Tenant   string `json:"tenant"`
	ReadOnly bool   `json:"read_only,omitempty"`
	// Prefixes, when not empty, limit the names the key may create and
	// the files it may read or delete.
	Prefixes    []string `json:"prefixes,omitempty"`
	Description string   `json:"description,omitempty"`
	Created     int64    `json:"created"`
	// Revoked is when the key was revoked (unix ms); 0 while it is valid.
	Revoked int64 `json:"revoked,omitempty"`
}

// KeyCreate records a new key. Tenant defaults to the key id. A key id
// that exists (revoked or not) is ErrConflict: ids are never reused.
type KeyCreate struct {
	ID          string   `json:"id"`
	Hash        string   `json:"hash"`
	Tenant      string   `json:"tenant,omitempty"`
	ReadOnly    bool     `json:"read_only,omitempty"`
	Prefixes    []string `json:"prefixes,omitempty"`
	Description string   `json:"description,omitempty"`
	Time        int64    `json:"time"`
}

// KeyRevoke revokes a key: ErrNotFound for an unknown id; revoking a
// revoked key changes nothing and succeeds.
type KeyRevoke struct {
	ID   string `json:"id"`
	Time int64  `json:"time"`
}

// CheckKeyID reports whether id can name a key: 1-MaxKeyIDLen ASCII
// letters, digits and '-' (the id is part of the bearer token, between
// underscores).
func CheckKeyID(id string) error {
	if len(id) == 0 || len(id) > MaxKeyIDLen {
		return errorf(ErrInvalid, "key id of %d bytes, want 1-%d", len(id), MaxKeyIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return errorf(ErrInvalid, "key id %q: only letters, digits and '-' are allowed", id)
		}
	}
	return nil
}

// checkText refuses empty-or-long, invalid UTF-8 and control characters.
func checkText(what, s string, max int) error {
	if len(s) > max || !utf8.ValidString(s) {
		return errorf(ErrInvalid, "%s of %d bytes, want at most %d bytes of UTF-8", what, len(s), max)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return errorf(ErrInvalid, "%s has a control character (U+%04X)", what, r)
		}
	}
	return nil
}

// CheckKeyCreate validates a KeyCreate as the FSM will; proposers call it
// to answer 400 before proposing.
func CheckKeyCreate(c *KeyCreate) error {
	if err := CheckKeyID(c.ID); err != nil {
		return err
	}
	if b, err := hex.DecodeString(c.Hash); err != nil || len(b) != 32 {
		return errorf(ErrInvalid, "key %s: hash is not 64 hex digits", c.ID)
	}
	if err := checkText("tenant", c.Tenant, MaxTenantLen); err != nil {
		return err
	}
	if len(c.Prefixes) > MaxKeyPrefixes {
		return errorf(ErrInvalid, "%d prefixes, want at most %d", len(c.Prefixes), MaxKeyPrefixes)
	}
	for i, p := range c.Prefixes {
		if p == "" {
			return errorf(ErrInvalid, "prefix %d is empty", i)
		}
		if err := checkText(fmt.Sprintf("prefix %d", i), p, MaxKeyPrefixLen); err != nil {
			return err
		}
	}
	return checkText("description", c.Description, MaxKeyDescription)
}

func (t *tx) apiKey(id string) (*APIKey, bool) { return getJSON[APIKey](t, apiKeyKey(id)) }

func (t *tx) applyKeyCreate(c *KeyCreate) (any, error) {
	if err := CheckKeyCreate(c); err != nil {
		return nil, err
	}
	if _, ok := t.apiKey(c.ID); ok {
		return nil, errorf(ErrConflict, "key %s exists", c.ID)
	}
	k := APIKey{ID: c.ID, Hash: c.Hash, Tenant: c.Tenant, ReadOnly: c.ReadOnly,
		Prefixes: append([]string(nil), c.Prefixes...), Description: c.Description, Created: c.Time}
	if k.Tenant == "" {
		k.Tenant = c.ID
	}
	t.setJSON(apiKeyKey(k.ID), &k)
	return k, nil
}

func (t *tx) applyKeyRevoke(c *KeyRevoke) (any, error) {
	k, ok := t.apiKey(c.ID)
	if !ok {
		return nil, errorf(ErrNotFound, "key %q not found", c.ID)
	}
	if k.Revoked == 0 {
		k.Revoked = c.Time
		t.setJSON(apiKeyKey(k.ID), k)
	}
	return *k, nil
}

// APIKey returns a key, revoked or not, from this replica's applied state.
func (f *FSM) APIKey(id string) (k APIKey, ok bool) {
	if CheckKeyID(id) != nil {
		return k, false
	}
	f.read(func(t *tx) {
		var r *APIKey
		if r, ok = t.apiKey(id); ok {
			k = *r
		}
	})
	return k, ok
}

// APIKeys returns every key, revoked ones included, by id.
func (f *FSM) APIKeys() []APIKey {
	out := []APIKey{}
	f.read(func(t *tx) {
		lo, hi := tableBounds(tAPIKey)
		t.scan(lo, hi, func(_, v []byte) bool {
			out = append(out, *mustDecode[APIKey](v))
			return true
		})
	})
	return out
}
