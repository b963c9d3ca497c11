package datapath

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
)

// Proof of possession for instant upload (POST /dedup/challenge and
// /dedup/prove). A client that claims md5 + size + sha256 gets a
// challenge: a random range of the content and a nonce. It answers with
// HMAC-SHA256(nonce, bytes[offset:offset+length]) computed over its own
// copy; the node reads that range of the stored content, and only if the
// answers match does the client get a uid sharing it.
//
// Challenges are stateless: the challenge id is the claim, the range, the
// nonce, the caller's tenant and an expiry, signed with a key derived from
// the cluster secret, so any node can check a prove call (no affinity).
// A challenge is issued whether or not such content exists and without
// looking: it reveals nothing. Only a matching proof reveals that the
// content exists, and producing one needs the bytes. A prove that fails,
// for a content that does not exist or a wrong answer, is the same 403.
// Each challenge is single-use on the node that checks it (a bounded
// replay set until its expiry); replaying it on another node within the
// expiry can only give the same caller, who proved possession, one more
// uid.

// ChallengeTTL is how long a challenge can be answered, unless
// SetChallengeTTL changed it.
const ChallengeTTL = 60 * time.Second

// SetChallengeTTL sets how long the challenges this node issues can be
// answered (tests; ChallengeTTL by default).
func (p *Path) SetChallengeTTL(d time.Duration) { p.challengeTTL.Store(int64(d)) }

func (p *Path) ttl() time.Duration {
	if d := p.challengeTTL.Load(); d != 0 {
		return time.Duration(d)
	}
	return ChallengeTTL
}

// maxProofRange bounds the range a challenge asks for: the server reads
// it per prove call.
const maxProofRange = 256 << 10

// maxUsedChallenges bounds the replay set; past it (that many proves
// within one TTL on this node) prove calls are refused with 503 until old
// entries expire.
const maxUsedChallenges = 1 << 16

// challenge is the signed body of a challenge id.
type challenge struct {
	Tenant string `json:"t,omitempty"`
	MD5    string `json:"m"`
	Size   int64  `json:"s"`
	SHA256 string `json:"h"`
	Name   string `json:"p"`
	Bucket string `json:"b"`
	Off    int64  `json:"o"`
	Len    int64  `json:"l"`
	Nonce  string `json:"n"`
	Expiry int64  `json:"e"` // unix milliseconds
}

// usedChallenges is the replay set: nonce -> expiry.
type usedChallenges struct {
	mu   sync.Mutex
	used map[string]int64
}

func (u *usedChallenges) claim(nonce string, expiry, now int64) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.used == nil {
		u.used = map[string]int64{}
	}
	if _, seen := u.used[nonce]; seen {
		return fmt.Errorf("%w: challenge already used", osprey.ErrForbidden)
	}
	if len(u.used) >= maxUsedChallenges {
		for n, e := range u.used {
			if e < now {
				delete(u.used, n)
			}
		}
		if len(u.used) >= maxUsedChallenges {
			return fmt.Errorf("%w: too many dedup proofs in flight on this node", osprey.ErrUnavailable)
		}
	}
	u.used[nonce] = expiry
	return nil
}

// challengeKey derives the challenge-signing key from the cluster secret.
func (p *Path) challengeKey() ([]byte, error) {
	secret, err := p.LinkSecret()
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("osprey dedup challenge v1"))
	return m.Sum(nil), nil
}

// proofRange picks a uniformly random range of at most maxProofRange
// bytes of a size-byte content.
func proofRange(size int64, r [8]byte) (off, n int64) {
	n = min(size, maxProofRange)
	if span := size - n; span > 0 {
		off = int64(binary.BigEndian.Uint64(r[:]) % uint64(span+1))
	}
	return off, n
}

// DedupChallenge issues a challenge for a claimed content. It does not
// look the content up.
func (p *Path) DedupChallenge(ctx context.Context, c httpapi.DedupClaim) (httpapi.DedupChallenge, error) {
	key, err := p.challengeKey()
	if err != nil {
		return httpapi.DedupChallenge{}, err
	}
	var rnd [24]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return httpapi.DedupChallenge{}, fmt.Errorf("dedup challenge: %w", err)
	}
	off, n := proofRange(c.Size, [8]byte(rnd[16:]))
	exp := time.Now().Add(p.ttl())
	ch := challenge{Tenant: osprey.PrincipalFrom(ctx).Tenant, MD5: c.MD5, Size: c.Size, SHA256: c.SHA256,
		Name: c.Name, Bucket: c.Bucket, Off: off, Len: n, Nonce: hex.EncodeToString(rnd[:16]), Expiry: exp.UnixMilli()}
	body, err := json.Marshal(ch)
	if err != nil {
		return httpapi.DedupChallenge{}, err
	}
	m := hmac.New(sha256.New, key)
	m.Write(body)
	id := base64.RawURLEncoding.EncodeToString(body) + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	return httpapi.DedupChallenge{ID: id, Nonce: ch.Nonce, Offset: off, Length: n, ExpiresAt: exp.UTC()}, nil
}

// errNoProof is the one answer to every failed proof: a wrong answer and
// a content that does not exist look the same.
var errNoProof = fmt.Errorf("%w: proof of possession failed (no such content, or the proof does not match its bytes)", osprey.ErrForbidden)

// openChallenge checks a challenge id's signature, expiry and tenant.
func (p *Path) openChallenge(ctx context.Context, id string) (challenge, error) {
	key, err := p.challengeKey()
	if err != nil {
		return challenge{}, err
	}
	b64, sig64, ok := strings.Cut(id, ".")
	body, err1 := base64.RawURLEncoding.DecodeString(b64)
	sig, err2 := base64.RawURLEncoding.DecodeString(sig64)
	if !ok || err1 != nil || err2 != nil {
		return challenge{}, fmt.Errorf("%w: malformed challenge id", osprey.ErrInvalid)
	}
	m := hmac.New(sha256.New, key)
	m.Write(body)
	if !hmac.Equal(sig, m.Sum(nil)) {
		return challenge{}, fmt.Errorf("%w: challenge signature does not match", osprey.ErrForbidden)
	}
	var ch challenge
	if err := json.Unmarshal(body, &ch); err != nil {
		return challenge{}, fmt.Errorf("%w: challenge body: %w", osprey.ErrInvalid, err)
	}
	if time.Now().UnixMilli() > ch.Expiry {
		return challenge{}, fmt.Errorf("%w: challenge expired", osprey.ErrForbidden)
	}
	if ch.Tenant != osprey.PrincipalFrom(ctx).Tenant {
		return challenge{}, fmt.Errorf("%w: challenge issued to another tenant", osprey.ErrForbidden)
	}
	return ch, nil
}

// DedupProve checks a proof and, when it matches the stored content's
// bytes, creates a uid sharing that content. It returns the claimed md5
// and the uid (0 if the content went away meanwhile: upload instead).
func (p *Path) DedupProve(ctx context.Context, id, proof string) (string, osprey.UID, error) {
	ch, err := p.openChallenge(ctx, id)
	if err != nil {
		return "", 0, err
	}
	want, err := hex.DecodeString(proof)
	if err != nil || len(want) != sha256.Size {
		return "", 0, fmt.Errorf("%w: proof must be 64 hex digits", osprey.ErrInvalid)
	}
	if err := p.used.claim(ch.Nonce, ch.Expiry, time.Now().UnixMilli()); err != nil {
		return "", 0, err
	}
	if err := p.cfg.Proposer.ReadBarrier(ctx); err != nil {
		return "", 0, err
	}
	ct, ok := p.cfg.State.DedupTarget(ch.Tenant, ch.MD5, ch.Size, ch.SHA256)
	if !ok || ct.Size != ch.Size || ch.Off+ch.Len > ct.Size {
		return "", 0, errNoProof
	}
	nonce, _ := hex.DecodeString(ch.Nonce)
	rc, err := p.openContent(ctx, ct, ch.Off, ch.Len)
	if err != nil {
		return "", 0, fmt.Errorf("dedup prove: read content %s: %w", ct.ID, err)
	}
	m := hmac.New(sha256.New, nonce)
	n, err := io.Copy(m, rc)
	rc.Close()
	if err == nil && n != ch.Len {
		err = fmt.Errorf("%w: content %s: read %d of %d bytes", osprey.ErrUnavailable, ct.ID, n, ch.Len)
	}
	if err != nil {
		return "", 0, fmt.Errorf("dedup prove: read content %s: %w", ct.ID, err)
	}
	if !hmac.Equal(m.Sum(nil), want) {
		return "", 0, errNoProof
	}
	uid, err := p.cfg.UIDs.NextUID()
	if err != nil {
		return "", 0, err
	}
	var res fsm.DedupShareResult
	cmd := fsm.DedupShare{UID: uid, Name: ch.Name, Bucket: ch.Bucket, Tenant: ch.Tenant, Content: ct.ID,
		MD5: ch.MD5, Size: ch.Size, SHA256: ch.SHA256, Time: nowMillis()}
	if err := p.cfg.Proposer.Apply(ctx, fsm.CmdDedupShare, cmd, &res); err != nil {
		return "", 0, err
	}
	return ch.MD5, res.UID, nil
}

var _ httpapi.Dedup = (*Path)(nil)
