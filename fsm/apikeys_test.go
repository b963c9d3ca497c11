package fsm

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func keyCreate(id string, mod func(*KeyCreate)) KeyCreate {
	c := KeyCreate{ID: id, Hash: sha256hex("secret of " + id), Time: t0}
	if mod != nil {
		mod(&c)
	}
	return c
}

// TestKeyCreate: a key is stored with its scope and the hash of its
// secret; the tenant defaults to the id; ids are never reused.
func TestKeyCreate(t *testing.T) {
	a := mustExample(t)
	k := a.mustOK(CmdKeyCreate, keyCreate("ro1", func(c *KeyCreate) {
		c.ReadOnly, c.Prefixes, c.Description = true, []string{"photos/", "docs/"}, "reports"
	})).(APIKey)
	want := APIKey{ID: "ro1", Hash: sha256hex("secret of ro1"), Tenant: "ro1", ReadOnly: true,
		Prefixes: []string{"photos/", "docs/"}, Description: "reports", Created: t0}
	if !reflect.DeepEqual(k, want) {
		t.Fatalf("result %+v, want %+v", k, want)
	}
	if got, ok := a.f.APIKey("ro1"); !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("read back %+v %v", got, ok)
	}
	a.mustOK(CmdKeyCreate, keyCreate("acme-1", func(c *KeyCreate) { c.Tenant = "acme" }))
	if got, _ := a.f.APIKey("acme-1"); got.Tenant != "acme" || got.ReadOnly {
		t.Fatalf("acme-1: %+v", got)
	}
	wantErr(t, a.apply(CmdKeyCreate, keyCreate("ro1", nil)), ErrConflict, "exists")
	keys := a.f.APIKeys()
	if len(keys) != 2 || keys[0].ID != "acme-1" || keys[1].ID != "ro1" {
		t.Fatalf("keys %+v", keys)
	}
	if _, ok := a.f.APIKey("nope"); ok {
		t.Fatal("unknown key found")
	}
	if _, ok := a.f.APIKey("bad id!"); ok {
		t.Fatal("invalid id found")
	}
}

// TestKeyCreateInvalid: the FSM refuses what CheckKeyCreate refuses, and
// a refused command changes nothing but the applied index.
func TestKeyCreateInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*KeyCreate)
		sub  string
	}{
		{"empty id", func(c *KeyCreate) { c.ID = "" }, "key id"},
		{"id with underscore", func(c *KeyCreate) { c.ID = "a_b" }, "only letters"},
		{"long id", func(c *KeyCreate) { c.ID = strings.Repeat("a", MaxKeyIDLen+1) }, "key id"},
		{"short hash", func(c *KeyCreate) { c.Hash = "abcd" }, "hash"},
		{"hash not hex", func(c *KeyCreate) { c.Hash = strings.Repeat("z", 64) }, "hash"},
		{"control in tenant", func(c *KeyCreate) { c.Tenant = "a\nb" }, "tenant"},
		{"long tenant", func(c *KeyCreate) { c.Tenant = strings.Repeat("t", MaxTenantLen+1) }, "tenant"},
		{"empty prefix", func(c *KeyCreate) { c.Prefixes = []string{"a/", ""} }, "prefix 1"},
		{"too many prefixes", func(c *KeyCreate) { c.Prefixes = make([]string, MaxKeyPrefixes+1) }, "prefixes"},
		{"long description", func(c *KeyCreate) { c.Description = strings.Repeat("d", MaxKeyDescription+1) }, "description"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := mustExample(t)
			before, _ := a.f.Hash()
			c := keyCreate("k1", tc.mod)
			if err := CheckKeyCreate(&c); err == nil {
				t.Fatal("CheckKeyCreate accepted it")
			}
			wantErr(t, a.apply(CmdKeyCreate, c), ErrInvalid, tc.sub)
			if after, _ := a.f.Hash(); after != before || len(a.f.APIKeys()) != 0 {
				t.Fatal("a refused key changed the state")
			}
		})
	}
}

// TestKeyRevoke: revoking keeps the record with the time from the
// command; a second revoke keeps the first time; an unknown id is
// ErrNotFound.
func TestKeyRevoke(t *testing.T) {
	a := mustExample(t)
	a.mustOK(CmdKeyCreate, keyCreate("k1", nil))
	k := a.mustOK(CmdKeyRevoke, KeyRevoke{ID: "k1", Time: t0 + 5}).(APIKey)
	if k.Revoked != t0+5 {
		t.Fatalf("revoked at %d", k.Revoked)
	}
	h1, _ := a.f.Hash()
	if k := a.mustOK(CmdKeyRevoke, KeyRevoke{ID: "k1", Time: t0 + 9}).(APIKey); k.Revoked != t0+5 {
		t.Fatalf("second revoke moved the time to %d", k.Revoked)
	}
	if h2, _ := a.f.Hash(); h2 != h1 {
		t.Fatal("a second revoke changed the state")
	}
	if got, _ := a.f.APIKey("k1"); got.Revoked != t0+5 {
		t.Fatalf("read back %+v", got)
	}
	wantErr(t, a.apply(CmdKeyRevoke, KeyRevoke{ID: "k2", Time: t0}), ErrNotFound, "k2")
	// The id stays taken.
	wantErr(t, a.apply(CmdKeyCreate, keyCreate("k1", nil)), ErrConflict, "exists")
}

// TestKeysDeterministicAndSnapshotted: the same key log gives the same
// state hash on every replica (time comes from the command), keys are part
// of the hash, and they survive a snapshot and restore (and so a backup).
func TestKeysDeterministicAndSnapshotted(t *testing.T) {
	log := []entry{
		{CmdKeyCreate, keyCreate("k1", func(c *KeyCreate) { c.Prefixes = []string{"a/"} })},
		{CmdKeyCreate, keyCreate("k2", func(c *KeyCreate) { c.Tenant, c.ReadOnly = "shared", true })},
		{CmdKeyRevoke, KeyRevoke{ID: "k1", Time: t0 + 100}},
	}
	x, y := mustExample(t), mustExample(t)
	before, _ := x.f.Hash()
	x.applyLog(log)
	y.applyLog(log)
	hx, _ := x.f.Hash()
	if hy, _ := y.f.Hash(); hx != hy {
		t.Fatalf("hashes differ: %s %s", hx, hy)
	}
	if hx == before {
		t.Fatal("keys are not part of the state hash")
	}
	r := mustRestore(t, mustSnapshot(t, x.f))
	mustSameView(t, x.f, r)
	if k, ok := r.APIKey("k1"); !ok || k.Revoked != t0+100 || k.Prefixes[0] != "a/" {
		t.Fatalf("restored k1 %+v %v", k, ok)
	}
}

// TestFilesRecordTenant: FilesCreate and Resume record the tenant the
// proposer names; it survives completion; no tenant means the shared
// namespace (and the record encodes as before).
func TestFilesRecordTenant(t *testing.T) {
	a := mustExample(t)
	a.mustOK(CmdFilesCreate, FilesCreate{Time: t0, Files: []NewFile{
		{UID: 9001, Name: "photos/a.jpg", Bucket: "image", Tenant: "acme"},
		{UID: 9002, Name: "b.jpg", Bucket: "image"},
	}})
	if f, _ := a.f.File(9001); f.Tenant != "acme" {
		t.Fatalf("9001 tenant %q", f.Tenant)
	}
	if f, _ := a.f.File(9002); f.Tenant != "" {
		t.Fatalf("9002 tenant %q", f.Tenant)
	}
	data := "tenant bytes"
	a.mustOK(CmdFileComplete, FileComplete{UID: 9001, Chunks: []Chunk{chunk(9901, 1, data, "n1", "n2")},
		Size: int64(len(data)), MD5: md5hex(data), Time: t0 + 1})
	if f, _ := a.f.File(9001); f.Tenant != "acme" || f.State != StateComplete {
		t.Fatalf("after completion: %+v", f)
	}
}

// BenchmarkAPIKeyLookup is what authenticating a scoped key costs a node
// on top of hashing the secret: one point read of the store, among 10,000
// keys.
func BenchmarkAPIKeyLookup(b *testing.B) {
	a := newApplier(b)
	a.mustOK(CmdInitCluster, InitCluster{ClusterID: "c", Secret: exampleSecret(), Time: t0})
	ids := make([]string, 10_000)
	for i := range ids {
		ids[i] = fmt.Sprintf("k%05d", i)
		a.mustOK(CmdKeyCreate, keyCreate(ids[i], nil))
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, ok := a.f.APIKey(ids[i%len(ids)]); !ok {
			b.Fatal("missing key")
		}
	}
}
