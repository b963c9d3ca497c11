package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Scoped API keys (tenants): created, listed and revoked by an admin
// (a static --api-keys key) through /cluster/keys.

// KeyRequest is the scope of a key to create.
type KeyRequest struct {
	// Tenant isolates the key's files; "" means the key's own id.
	Tenant      string   `json:"tenant,omitempty"`
	ReadOnly    bool     `json:"read_only,omitempty"`
	Prefixes    []string `json:"prefixes,omitempty"`
	Description string   `json:"description,omitempty"`
}

// Key is a scoped key as the cluster lists it (never its secret).
type Key struct {
	ID          string     `json:"id"`
	Tenant      string     `json:"tenant"`
	ReadOnly    bool       `json:"read_only"`
	Prefixes    []string   `json:"prefixes"`
	Description string     `json:"description,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
}

// CreatedKey is a new key with its bearer token, which the cluster shows
// only once.
type CreatedKey struct {
	Key
	Token string `json:"key"`
}

// CreateKey creates a scoped API key (POST /cluster/keys). It is not
// retried after an ambiguous failure: a retry would create a second key.
func (c *Client) CreateKey(ctx context.Context, req KeyRequest) (*CreatedKey, error) {
	body, n, err := jsonBody(req)
	if err != nil {
		return nil, err
	}
	var out CreatedKey
	if err := c.doJSON(ctx, &request{method: http.MethodPost, target: "/cluster/keys", body: body, contentLength: n,
		contentType: contentTypeJSON, auth: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Keys lists the scoped API keys, revoked ones included (GET /cluster/keys).
func (c *Client) Keys(ctx context.Context) ([]Key, error) {
	var out []Key
	err := c.doJSON(ctx, &request{method: http.MethodGet, target: "/cluster/keys", auth: true, idempotent: true}, &out)
	return out, err
}

// RevokeKey revokes a scoped API key (DELETE /cluster/keys/{id}); every
// node refuses it once it has applied the revocation. Revoking twice is
// harmless, so it is retried.
func (c *Client) RevokeKey(ctx context.Context, id string) (*Key, error) {
	var out Key
	if err := c.doJSON(ctx, &request{method: http.MethodDelete, target: "/cluster/keys/" + url.PathEscape(id),
		auth: true, idempotent: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// KeysCreate creates a key and prints its id, scope and token; the token
// is printed once and cannot be read back.
func (c *CLI) KeysCreate(ctx context.Context, req KeyRequest) error {
	k, err := c.Client.CreateKey(ctx, req)
	if err != nil {
		return err
	}
	if c.JSON {
		return c.printJSON(k)
	}
	tw := c.table()
	fmt.Fprintf(tw, "id\t%s\n", k.ID)
	fmt.Fprintf(tw, "tenant\t%s\n", k.Tenant)
	fmt.Fprintf(tw, "access\t%s\n", access(k.Key))
	fmt.Fprintf(tw, "prefixes\t%s\n", prefixes(k.Key))
	if k.Description != "" {
		fmt.Fprintf(tw, "description\t%s\n", k.Description)
	}
	fmt.Fprintf(tw, "key\t%s\n", k.Token)
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.Stderr, "osprey: store the key now; it is not shown again (the cluster keeps only its hash)")
	return err
}

// KeysList prints the keys as a table.
func (c *CLI) KeysList(ctx context.Context) error {
	keys, err := c.Client.Keys(ctx)
	if err != nil {
		return err
	}
	if c.JSON {
		if keys == nil {
			keys = []Key{}
		}
		return c.printJSON(keys)
	}
	tw := c.table()
	fmt.Fprintln(tw, "ID\tTENANT\tACCESS\tPREFIXES\tCREATED\tREVOKED\tDESCRIPTION")
	for _, k := range keys {
		revoked := "-"
		if k.RevokedAt != nil {
			revoked = k.RevokedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Tenant, access(k), prefixes(k),
			k.CreatedAt.Format(time.RFC3339), revoked, pick(k.Description == "", "-", oneLine(k.Description, 40)))
	}
	return tw.Flush()
}

// KeysRevoke revokes a key.
func (c *CLI) KeysRevoke(ctx context.Context, id string) error {
	k, err := c.Client.RevokeKey(ctx, id)
	if err != nil {
		return err
	}
	if c.JSON {
		return c.printJSON(k)
	}
	_, err = fmt.Fprintf(c.Stdout, "revoked\t%s\n", k.ID)
	return err
}

func access(k Key) string { return pick(k.ReadOnly, "read-only", "read-write") }

func prefixes(k Key) string {
	if len(k.Prefixes) == 0 {
		return "*"
	}
	return strings.Join(k.Prefixes, ",")
}
