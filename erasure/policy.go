package erasure

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxShards is the largest K+M a Policy may have: Reed–Solomon over GF(2^8)
// has at most 256 distinct evaluation points.
const MaxShards = 256

var (
	// ErrNotEC is returned (wrapped) by ParsePolicy for a "replicas:N"
	// policy, so configuration parsing can branch to plain replication.
	ErrNotEC = errors.New("erasure: not an erasure-coding policy")
	// ErrInvalidPolicy is returned (wrapped) by ParsePolicy, Policy.Validate
	// and every function taking a Policy when the policy is malformed or does
	// not fit the cluster. The message names the offending numbers.
	ErrInvalidPolicy = errors.New("erasure: invalid policy")
	// ErrTooFewShards is returned (wrapped) by a reader and by Reconstruct
	// when fewer than K shards of a stripe are healthy. The message names the
	// failed shards, and the error also wraps each shard's own error.
	ErrTooFewShards = errors.New("erasure: too few healthy shards")
	// ErrCorrupt is returned (wrapped) by VerifyShard, and passed to
	// ReaderOptions.OnCorrupt, when shard bytes do not match their recorded
	// size or checksums.
	ErrCorrupt = errors.New("erasure: shard corrupt")
	// ErrInvalidShards is returned (wrapped) when the shards or ShardInfos
	// handed in do not match the policy and chunk size (wrong count, index,
	// size or number of stripe checksums). It means a caller bug or a record
	// from another chunk, never a damaged shard.
	ErrInvalidShards = errors.New("erasure: invalid shards")
	// ErrInvalidRange is returned (wrapped) by NewReader when the requested
	// range is negative or extends past the end of the chunk.
	ErrInvalidRange = errors.New("erasure: invalid range")
	// ErrClosed is returned by Read after Close.
	ErrClosed = errors.New("erasure: reader closed")
)

// Policy is an erasure-coding policy: each chunk is stored as K data shards
// and M parity shards, on K+M distinct nodes, and any K of them rebuild it.
// The zero Policy is invalid.
type Policy struct {
	// K is the number of data shards (at least 1).
	K int
	// M is the number of parity shards (at least 1): the number of shards,
	// hence nodes, that can be lost without losing the chunk.
	M int
}

// ParsePolicy parses the canonical form "ec:K+M" (for example "ec:2+1" or
// "ec:4+2") produced by Policy.String. A "replicas:N" string returns
// ErrNotEC (wrapped) so that a configuration parser can try replication
// next; anything else, or a policy outside the limits checked by Validate
// (other than the cluster size), returns ErrInvalidPolicy (wrapped).
func ParsePolicy(s string) (Policy, error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "replicas:") {
		return Policy{}, fmt.Errorf("erasure: policy %q: %w", s, ErrNotEC)
	}
	rest, ok := strings.CutPrefix(t, "ec:")
	if !ok {
		return Policy{}, fmt.Errorf("erasure: policy %q: want ec:K+M: %w", s, ErrInvalidPolicy)
	}
	ks, ms, ok := strings.Cut(rest, "+")
	if !ok {
		return Policy{}, fmt.Errorf("erasure: policy %q: want ec:K+M: %w", s, ErrInvalidPolicy)
	}
	k, kok := parseCount(ks)
	m, mok := parseCount(ms)
	if !kok || !mok {
		return Policy{}, fmt.Errorf("erasure: policy %q: K and M must be decimal numbers: %w", s, ErrInvalidPolicy)
	}
	p := Policy{K: k, M: m}
	if err := p.check(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// parseCount parses a small unsigned decimal number (no sign, no spaces).
func parseCount(s string) (int, bool) {
	if s == "" || len(s) > 4 {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// Validate reports whether p can be used on a cluster of members nodes:
// K ≥ 1, M ≥ 1, K+M ≤ MaxShards, and K+M ≤ members, because every shard of a
// chunk must live on a different node for the loss of M nodes to be
// survivable. It returns ErrInvalidPolicy (wrapped) with the numbers.
func (p Policy) Validate(members int) error {
	if err := p.check(); err != nil {
		return err
	}
	if n := p.Shards(); n > members {
		return fmt.Errorf("erasure: policy %v needs %d nodes (one per shard), the cluster has %d: %w",
			p, n, members, ErrInvalidPolicy)
	}
	return nil
}

// check validates the limits that do not depend on the cluster.
func (p Policy) check() error {
	switch {
	case p.K < 1:
		return fmt.Errorf("erasure: policy %v: K=%d, need at least 1 data shard: %w", p, p.K, ErrInvalidPolicy)
	case p.M < 1:
		return fmt.Errorf("erasure: policy %v: M=%d, need at least 1 parity shard: %w", p, p.M, ErrInvalidPolicy)
	case p.K > MaxShards || p.M > MaxShards || p.K+p.M > MaxShards:
		return fmt.Errorf("erasure: policy %v: K+M=%d, at most %d shards: %w", p, p.K+p.M, MaxShards, ErrInvalidPolicy)
	}
	return nil
}

// Shards returns K+M, the number of shards (and nodes) per chunk.
func (p Policy) Shards() int { return p.K + p.M }

// String returns the canonical form "ec:K+M", which ParsePolicy accepts.
func (p Policy) String() string { return fmt.Sprintf("ec:%d+%d", p.K, p.M) }
