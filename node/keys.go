package node

import (
	"context"
	"time"

	"github.com/osprey-storage/osprey/consensus"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
)

// keysAPI is httpapi.Keys: scoped API keys proposed through raft and read
// from the FSM. Like the adapters in wiring.go it holds no policy: the FSM
// validates keys, httpapi mints secrets and authenticates.
type keysAPI struct {
	fsm  *fsm.FSM
	prop *consensus.Proposer
}

var _ httpapi.Keys = keysAPI{}

func (k keysAPI) CreateKey(ctx context.Context, nk httpapi.NewKey) (httpapi.KeyInfo, error) {
	cmd := fsm.KeyCreate{ID: nk.ID, Hash: nk.Hash, Tenant: nk.Tenant, ReadOnly: nk.ReadOnly,
		Prefixes: nk.Prefixes, Description: nk.Description, Time: time.Now().UnixMilli()}
	if err := fsm.CheckKeyCreate(&cmd); err != nil {
		return httpapi.KeyInfo{}, err
	}
	var res fsm.APIKey
	if err := k.prop.Apply(ctx, fsm.CmdKeyCreate, cmd, &res); err != nil {
		return httpapi.KeyInfo{}, err
	}
	return keyInfo(res), nil
}

func (k keysAPI) ListKeys(ctx context.Context) ([]httpapi.KeyInfo, error) {
	if err := k.prop.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	keys := k.fsm.APIKeys()
	out := make([]httpapi.KeyInfo, len(keys))
	for i, r := range keys {
		out[i] = keyInfo(r)
	}
	return out, nil
}

func (k keysAPI) RevokeKey(ctx context.Context, id string) (httpapi.KeyInfo, error) {
	var res fsm.APIKey
	if err := k.prop.Apply(ctx, fsm.CmdKeyRevoke, fsm.KeyRevoke{ID: id, Time: time.Now().UnixMilli()}, &res); err != nil {
		return httpapi.KeyInfo{}, err
	}
	return keyInfo(res), nil
}

func (k keysAPI) LookupKey(id string) (httpapi.KeyInfo, string, bool) {
	r, ok := k.fsm.APIKey(id)
	if !ok {
		return httpapi.KeyInfo{}, "", false
	}
	return keyInfo(r), r.Hash, true
}

func keyInfo(r fsm.APIKey) httpapi.KeyInfo {
	info := httpapi.KeyInfo{ID: r.ID, Tenant: r.Tenant, ReadOnly: r.ReadOnly, Prefixes: append([]string{}, r.Prefixes...),
		Description: r.Description, CreatedAt: time.UnixMilli(r.Created).UTC()}
	if r.Revoked != 0 {
		at := time.UnixMilli(r.Revoked).UTC()
		info.RevokedAt = &at
	}
	return info
}
