package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/osprey-storage/osprey"
)

// Keys stores scoped API keys (tenants). nil leaves /cluster/keys out, and
// only the static --api-keys authenticate.
type Keys interface {
	// CreateKey records a key through raft: the id, the hex SHA-256 of its
	// secret and its scope. ErrConflict for an existing id, ErrInvalid for
	// a field the store refuses.
	CreateKey(ctx context.Context, k NewKey) (KeyInfo, error)
	// ListKeys returns every key, revoked ones included (linearizable).
	ListKeys(ctx context.Context) ([]KeyInfo, error)
	// RevokeKey revokes a key through raft; ErrNotFound for an unknown id.
	RevokeKey(ctx context.Context, id string) (KeyInfo, error)
	// LookupKey returns a key and the hex SHA-256 of its secret from this
	// node's applied state (no raft round trip: authentication runs on
	// every request, and a revocation takes effect on each node as it
	// applies the entry).
	LookupKey(id string) (KeyInfo, string, bool)
}

// NewKey is a key to record.
type NewKey struct {
	ID          string
	Hash        string // hex SHA-256 of the secret
	Tenant      string // "" means the key id
	ReadOnly    bool
	Prefixes    []string
	Description string
}

// KeyInfo is a scoped key as the API shows it: never its secret or hash.
type KeyInfo struct {
	ID          string     `json:"id"`
	Tenant      string     `json:"tenant"`
	ReadOnly    bool       `json:"read_only"`
	Prefixes    []string   `json:"prefixes"`
	Description string     `json:"description,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
}

// ScopedKeyPrefix starts every scoped key: osk_<id>_<secret>, where id is
// 16 hex digits and secret 32 random bytes in unpadded base64url.
const ScopedKeyPrefix = "osk_"

// newScopedKey returns a fresh id, the bearer token and the hex SHA-256 of
// its secret.
func newScopedKey() (id, token, hash string, err error) {
	var idb [8]byte
	var sec [32]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return "", "", "", fmt.Errorf("key id: %w", err)
	}
	if _, err := rand.Read(sec[:]); err != nil {
		return "", "", "", fmt.Errorf("key secret: %w", err)
	}
	id = hex.EncodeToString(idb[:])
	secret := base64.RawURLEncoding.EncodeToString(sec[:])
	return id, ScopedKeyPrefix + id + "_" + secret, hashSecret(secret), nil
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// parseScopedKey splits osk_<id>_<secret>.
func parseScopedKey(token string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(token, ScopedKeyPrefix)
	if !ok {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, "_")
	return id, secret, ok && id != "" && secret != ""
}

// scopedPrincipal authenticates a scoped key against this node's state.
// Whatever is wrong (malformed, unknown id, wrong secret, revoked) is 401:
// the credential does not authenticate anyone.
func (s *Server) scopedPrincipal(token string) (osprey.Principal, error) {
	id, secret, ok := parseScopedKey(token)
	if !ok {
		return osprey.Principal{}, fmt.Errorf("%w: malformed scoped API key", osprey.ErrUnauthorized)
	}
	k, hash, found := s.cfg.Keys.LookupKey(id)
	// Compare even for an unknown id, so timing tells nothing about ids.
	want, _ := hex.DecodeString(hash)
	if len(want) != sha256.Size {
		want = make([]byte, sha256.Size)
	}
	got := sha256.Sum256([]byte(secret))
	match := subtle.ConstantTimeCompare(want, got[:]) == 1
	switch {
	case !found || !match:
		return osprey.Principal{}, fmt.Errorf("%w: unknown API key", osprey.ErrUnauthorized)
	case k.RevokedAt != nil:
		return osprey.Principal{}, fmt.Errorf("%w: API key %s was revoked", osprey.ErrUnauthorized, id)
	}
	return osprey.Principal{KeyID: k.ID, Tenant: k.Tenant, ReadOnly: k.ReadOnly,
		Prefixes: append([]string(nil), k.Prefixes...)}, nil
}

// --- /cluster/keys (admin) ---

func (s *Server) keyRoutes() {
	s.handle(http.MethodPost, "/cluster/keys", business, s.redirectable(s.handleKeyCreate))
	s.handle(http.MethodGet, "/cluster/keys", business, s.handleKeyList)
	s.handle(http.MethodDelete, "/cluster/keys/:id", business, s.redirectable(s.handleKeyRevoke))
}

// KeyCreateRequest is the body of POST /cluster/keys.
type KeyCreateRequest struct {
	Tenant      string   `json:"tenant,omitempty"`
	ReadOnly    bool     `json:"read_only,omitempty"`
	Prefixes    []string `json:"prefixes,omitempty"`
	Description string   `json:"description,omitempty"`
}

// KeyCreateReply is the reply of POST /cluster/keys: the key's record and,
// this once, its bearer token.
type KeyCreateReply struct {
	KeyInfo
	Key string `json:"key"`
}

func (s *Server) handleKeyCreate(w http.ResponseWriter, r *http.Request) {
	var req KeyCreateRequest
	if err := decodeJSON(r, maxJSONBody, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	id, token, hash, err := newScopedKey()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	info, err := s.cfg.Keys.CreateKey(r.Context(), NewKey{ID: id, Hash: hash, Tenant: req.Tenant,
		ReadOnly: req.ReadOnly, Prefixes: req.Prefixes, Description: req.Description})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.log.Info("scoped API key created", "key_id", info.ID, "tenant", info.Tenant, "read_only", info.ReadOnly,
		"prefixes", len(info.Prefixes), "request_id", RequestID(r.Context()))
	writeOK(w, r, KeyCreateReply{KeyInfo: info, Key: token})
}

func (s *Server) handleKeyList(w http.ResponseWriter, r *http.Request) {
	keys, err := s.cfg.Keys.ListKeys(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if keys == nil {
		keys = []KeyInfo{}
	}
	writeOK(w, r, keys)
}

func (s *Server) handleKeyRevoke(w http.ResponseWriter, r *http.Request) {
	id := httprouter.ParamsFromContext(r.Context()).ByName("id")
	info, err := s.cfg.Keys.RevokeKey(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.log.Info("scoped API key revoked", "key_id", info.ID, "request_id", RequestID(r.Context()))
	writeOK(w, r, info)
}
