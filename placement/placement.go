package placement

import (
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/erasure"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/ring"
)

// Members is the part of the FSM placement reads.
type Members interface {
	Nodes() []fsm.Node
}

// Config configures a Placement.
type Config struct {
	// Members lists the cluster's member records.
	Members Members
	// Replicas is the number of nodes each staged chunk is stored on
	// (capped by the number of active members).
	Replicas int
	// EC, when K > 0, erasure-codes staged chunks into K data and M parity
	// shards on K+M distinct members instead of replicating them.
	EC erasure.Policy
}

// Validate reports a missing dependency or a bad policy.
func (c Config) Validate() error {
	switch {
	case c.Members == nil:
		return errors.New("placement: Members is required")
	case c.Replicas < 1:
		return errors.New("placement: replicas must be ≥ 1")
	}
	return nil
}

// Placement answers placement questions. Safe for concurrent use.
type Placement struct {
	cfg     Config
	mu      sync.Mutex
	cache   *ring.Ring
	workers map[osprey.NodeID]uint32 // of cache's members; nil below FeatureLevelWorkers
	key     string
}

// New returns a Placement.
func New(cfg Config) (*Placement, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Placement{cfg: cfg}, nil
}

// Ring returns the consistent-hash ring over the active members, rebuilt
// only when membership changes. ErrUnavailable when no member is active.
func (p *Placement) Ring() (*ring.Ring, error) {
	r, _, err := p.RingWorkers()
	return r, err
}

// RingWorkers returns Ring and, read from the same member records, the
// active members' worker ids (fsm.Chunk.Workers), or nil while a member
// runs a build below fsm.FeatureLevelWorkers (its FSM would ignore them).
// The map is shared: callers must not modify it.
func (p *Placement) RingWorkers() (*ring.Ring, map[osprey.NodeID]uint32, error) {
	var (
		ids []string
		key = make([]byte, 0, 64)
	)
	nodes := p.cfg.Members.Nodes()
	for _, rec := range nodes {
		if !rec.Removed && !rec.Down {
			ids = append(ids, string(rec.ID))
			key = append(key, rec.ID...)
			key = append(key, '/')
			key = strconv.AppendUint(key, uint64(rec.WorkerID), 10)
			key = append(key, ',')
		}
	}
	level := fsm.ClusterLevel(nodes)
	key = strconv.AppendUint(key, uint64(level), 10)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cache != nil && p.key == string(key) {
		return p.cache, p.workers, nil
	}
	if len(ids) == 0 {
		return nil, nil, fmt.Errorf("%w: no active members", osprey.ErrUnavailable)
	}
	r, err := ring.New(ring.DefaultConfig(), ids)
	if err != nil {
		return nil, nil, err
	}
	var workers map[osprey.NodeID]uint32
	if level >= fsm.FeatureLevelWorkers {
		workers = make(map[osprey.NodeID]uint32, len(ids))
		for _, rec := range nodes {
			if !rec.Removed && !rec.Down {
				workers[rec.ID] = rec.WorkerID
			}
		}
	}
	p.cache, p.workers, p.key = r, workers, string(key)
	return r, workers, nil
}

// EC returns the erasure-coding policy (K == 0: off).
func (p *Placement) EC() erasure.Policy { return p.cfg.EC }

// ECEnabled reports whether staged chunks are erasure-coded.
func (p *Placement) ECEnabled() bool { return p.cfg.EC.K > 0 }

// ECFits reports whether the active members can hold K+M distinct shards.
// With fewer, chunks are replicated M+1 times instead: the same number of
// losses is tolerated.
func (p *Placement) ECFits() bool {
	r, err := p.Ring()
	return err == nil && r.Len() >= p.cfg.EC.K+p.cfg.EC.M
}

// Replicas is the number of whole copies a chunk gets: the configured
// replicas, or M+1 when erasure coding does not fit the cluster.
func (p *Placement) Replicas() int {
	if p.ECEnabled() {
		return p.cfg.EC.M + 1
	}
	return p.cfg.Replicas
}

// WantCopies is how many whole copies a replicated chunk or local object
// should have on active members.
func (p *Placement) WantCopies() int {
	r, err := p.Ring()
	if err != nil {
		return p.Replicas()
	}
	return min(p.Replicas(), r.Len())
}

// NewOwners lists the active ring candidates for key not in have, in ring
// order; a repair tries them in turn. ErrUnavailable when none is left.
func (p *Placement) NewOwners(key []byte, have []osprey.NodeID) ([]string, error) {
	r, err := p.Ring()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range r.Owners(key, r.Len()) {
		if !hasNode(have, c) {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no member left to hold another copy", osprey.ErrUnavailable)
	}
	return out, nil
}

func hasNode(ids []osprey.NodeID, id string) bool {
	for _, x := range ids {
		if string(x) == id {
			return true
		}
	}
	return false
}

// Redundancy describes the staging policy ("replicas:2", "ec:4+2").
func (p *Placement) Redundancy() string {
	if p.ECEnabled() {
		return p.cfg.EC.String()
	}
	return fmt.Sprintf("replicas:%d", p.cfg.Replicas)
}
