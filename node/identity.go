package node

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/osprey-storage/osprey/membership"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
)

func checkAdvertise(addr, what string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("node: %s address %q: %w", what, addr, err)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("node: listening on %s: set --advertise-%s to an address other nodes can reach", addr, what)
	}
	return nil
}

// resolveNodeID returns the persisted id, persisting the configured or a
// generated one on first start. A configured id that differs from the
// persisted one is an error: the data dir belongs to another node.
func resolveNodeID(dir, want string) (string, error) {
	path := filepath.Join(dir, "node-id")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		have := strings.TrimSpace(string(b))
		if want != "" && want != have {
			return "", fmt.Errorf("node: data dir %s belongs to node %q, not %q", dir, have, want)
		}
		return have, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("node: read node id: %w", err)
	}
	id := want
	if id == "" {
		var r [4]byte
		_, _ = rand.Read(r[:])
		id = "node-" + hex.EncodeToString(r[:])
	}
	if err := writeFileSync(path, []byte(id+"\n")); err != nil {
		return "", fmt.Errorf("node: persist node id: %w", err)
	}
	return id, nil
}

func loadOrCreateToken(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	var r [24]byte
	_, _ = rand.Read(r[:])
	tok := hex.EncodeToString(r[:])
	if err := writeFileSync(path, []byte(tok+"\n")); err != nil {
		return "", fmt.Errorf("node: write join token: %w", err)
	}
	return tok, nil
}

func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err = f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// transportKey is the key material raft connections prove (raftstore's
// handshake): the cluster's join-token hash. Until this node has seen the
// cluster's own value it uses the hash of the token it was given (joining)
// or generated (bootstrapping); once the replicated state holds the
// cluster's value, that value is pinned for good and kept in the data dir,
// so a restarted member needs no token flag and the key never changes
// under a running cluster (not even while a metadata restore installs a
// backup whose state carries another cluster's value).
type transportKey struct {
	path   string
	local  []byte
	state  interface{ JoinTokenHash() string }
	log    *slog.Logger
	pinned atomic.Pointer[[]byte]
}

func newTransportKey(path, joinToken string, state interface{ JoinTokenHash() string }, lg *slog.Logger) *transportKey {
	k := &transportKey{path: path, local: []byte(membership.TokenHash(joinToken)), state: state, log: lg}
	if b, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(b)) > 0 {
		v := bytes.TrimSpace(b)
		k.pinned.Store(&v)
	}
	return k
}

func (k *transportKey) get() []byte {
	if v := k.pinned.Load(); v != nil {
		return *v
	}
	h := k.state.JoinTokenHash()
	if h == "" {
		return k.local
	}
	v := []byte(h)
	if k.pinned.CompareAndSwap(nil, &v) {
		if err := writeFileSync(k.path, append(v, '\n')); err != nil {
			k.log.Warn("could not keep the raft transport key in the data dir; it is derived again on restart", "err", err)
		}
	}
	return *k.pinned.Load()
}
