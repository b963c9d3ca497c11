package fsm

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/osprey-storage/osprey"
)

// The dedup index ('H') maps tenant | md5 | size | sha256 to the id of a
// verified content. Only contents whose bytes were checked against their
// md5 are in it (single uploads and S3 PUTs on arrival, merged uploads
// once tiering verified them), each under exactly one key: the one its
// record names (dedupKey of its Tenant, MD5, Size, SHA256), so removing it
// is one delete.
//
// A content verified before its SHA-256 was known (written by an earlier
// build, or an S3 multipart upload before tiering) is indexed with sha256
// "": md5-only lookups (/resume, an upload whose command carries no
// sha256) find it, strong lookups (proof of possession, uploads that
// carry a sha256) never do. Tiering computes the SHA-256 and moves the
// entry to its strong key (applyTierDone).
//
// Lookups never cross tenants: the key starts with the tenant.

// maxDedupTenant bounds a tenant name that can be indexed (length u16).
const maxDedupTenant = 0xFFFF

func dedupIndexable(tenant, md5 string) bool {
	return len(tenant) <= maxDedupTenant && len(md5) <= 0xFF && md5 != ""
}

// dedupPrefix is the start of the entries of (tenant, md5).
func dedupPrefix(tenant, md5 string) []byte {
	k := tableKey(tDedup, 2+len(tenant)+1+len(md5)+8+64)
	k = binary.BigEndian.AppendUint16(k, uint16(len(tenant)))
	k = append(k, tenant...)
	k = append(k, byte(len(md5)))
	return append(k, md5...)
}

func dedupKey(tenant, md5 string, size int64, sha string) []byte {
	k := binary.BigEndian.AppendUint64(dedupPrefix(tenant, md5), uint64(size))
	return append(k, sha...)
}

// dedupEntry is a decoded dedup key.
type dedupEntry struct {
	Tenant, MD5 string
	Size        int64
	SHA256      string
}

func decodeDedupKey(k []byte) (dedupEntry, bool) {
	if len(k) < 4 || k[1] != tDedup {
		return dedupEntry{}, false
	}
	rest := k[2:]
	n := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if len(rest) < n+1 {
		return dedupEntry{}, false
	}
	e := dedupEntry{Tenant: string(rest[:n])}
	rest = rest[n:]
	m := int(rest[0])
	rest = rest[1:]
	if len(rest) < m+8 {
		return dedupEntry{}, false
	}
	e.MD5 = string(rest[:m])
	e.Size = int64(binary.BigEndian.Uint64(rest[m:]))
	e.SHA256 = string(rest[m+8:])
	return e, true
}

// contentDedupKey is the one key ct is indexed under, if any.
func contentDedupKey(ct *Content) []byte {
	return dedupKey(ct.Tenant, ct.MD5, ct.Size, ct.SHA256)
}

// dedupGet returns the content indexed under exactly this key.
func (t *tx) dedupGet(tenant, md5 string, size int64, sha string) (osprey.UID, bool) {
	if !dedupIndexable(tenant, md5) {
		return 0, false
	}
	b := t.get(dedupKey(tenant, md5, size, sha))
	if b == nil {
		return 0, false
	}
	return osprey.UID(binary.BigEndian.Uint64(b)), true
}

// dedupFirst returns the first content indexed for (tenant, md5) in key
// order (smallest size, then sha256, a content without one first): the
// md5-only lookup of /resume.
func (t *tx) dedupFirst(tenant, md5 string) (osprey.UID, bool) {
	if !dedupIndexable(tenant, md5) {
		return 0, false
	}
	var id osprey.UID
	found := false
	lo, hi := prefixBounds(dedupPrefix(tenant, md5))
	t.scan(lo, hi, func(_, v []byte) bool {
		id, found = osprey.UID(binary.BigEndian.Uint64(v)), true
		return false
	})
	return id, found
}

// indexContent makes ct a dedup target unless another content holds its
// key already.
func (t *tx) indexContent(ct *Content) {
	if !dedupIndexable(ct.Tenant, ct.MD5) {
		return
	}
	if _, taken := t.dedupGet(ct.Tenant, ct.MD5, ct.Size, ct.SHA256); taken {
		return
	}
	t.set(contentDedupKey(ct), binary.BigEndian.AppendUint64(nil, uint64(ct.ID)))
}

// unindexContent removes ct's entry, if it is the one indexed.
func (t *tx) unindexContent(ct *Content) {
	if id, ok := t.dedupGet(ct.Tenant, ct.MD5, ct.Size, ct.SHA256); ok && id == ct.ID {
		t.del(contentDedupKey(ct))
	}
}

// DedupShare creates a file sharing a content the caller proved it holds
// (proof of possession, POST /dedup/prove). It succeeds only while the
// content is still the dedup target of exactly Tenant | MD5 | Size |
// SHA256; otherwise the result's UID is 0 and nothing changes.
type DedupShare struct {
	UID     osprey.UID `json:"uid"`
	Name    string     `json:"name"`
	Bucket  string     `json:"bucket"`
	Tenant  string     `json:"tenant,omitempty"`
	Content osprey.UID `json:"content"`
	MD5     string     `json:"md5"`
	Size    int64      `json:"size"`
	SHA256  string     `json:"sha256"`
	Time    int64      `json:"time"`
}

// DedupShareResult names the created file, or 0.
type DedupShareResult struct {
	UID osprey.UID `json:"uid"`
}

func (t *tx) applyDedupShare(c *DedupShare) (any, error) {
	if c.UID == 0 || c.Name == "" || c.SHA256 == "" {
		return nil, errorf(ErrInvalid, "dedup share: missing uid, name or sha256")
	}
	id, ok := t.dedupGet(c.Tenant, c.MD5, c.Size, c.SHA256)
	if !ok || id != c.Content {
		return DedupShareResult{}, nil
	}
	if _, dup := t.file(c.UID); dup {
		return nil, errorf(ErrConflict, "uid %s already exists", c.UID)
	}
	t.shareContent(id, c.UID, c.Name, c.Bucket, c.Tenant, c.Time)
	return DedupShareResult{UID: c.UID}, nil
}

// shareContent adds a complete file referencing content id.
func (t *tx) shareContent(id, uid osprey.UID, name, bucket, tenant string, now int64) {
	ct, _ := t.content(id)
	ct.Refs++
	t.putContent(ct)
	t.putFile(&File{UID: uid, Name: name, Bucket: bucket, Tenant: tenant, State: StateComplete, Size: ct.Size,
		MD5: ct.MD5, Content: id, CreatedAt: now, UpdatedAt: now})
}

// DedupTarget returns the verified content of tenant with exactly this
// md5, size and SHA-256 (sha256 must not be ""), or false.
func (f *FSM) DedupTarget(tenant, md5 string, size int64, sha string) (c Content, ok bool) {
	if sha == "" {
		return Content{}, false
	}
	f.read(func(t *tx) {
		id, found := t.dedupGet(tenant, md5, size, sha)
		if !found {
			return
		}
		var p *Content
		if p, ok = t.content(id); ok {
			c = *p
		}
	})
	return c, ok
}

// migrateDedupIndex moves the md5-only index of earlier builds ('h': md5
// -> content id) into 'H'. Every such content was stored before tenants
// existed, so it lands under tenant "" with its own size and sha256 ""
// (nothing is read or hashed): md5-only /resume keeps finding it, strong
// lookups (proof of possession, uploads carrying a sha256) never do. A
// content still staged gets its SHA-256 when tiering runs; an already
// tiered one keeps the weak entry, and the first strong upload of the same
// bytes stores a new content that becomes the strong target. It runs on
// open and after a restore, in one batch that also maintains the state
// hash; a store without 'h' entries costs one empty scan.
func (f *FSM) migrateDedupIndex() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &tx{meta: f.meta, cnt: f.cnt.clone(), hash: f.hash, minRunnable: maxTimeID, minUpload: maxTimeID}
	t.b = f.h.db.NewIndexedBatch()
	t.r = t.b
	t.cache = map[string][]byte{}
	type old struct {
		k  []byte
		id osprey.UID
	}
	var olds []old
	lo, hi := tableBounds(tMD5)
	t.scan(lo, hi, func(k, v []byte) bool {
		if len(v) == 8 {
			olds = append(olds, old{append([]byte(nil), k...), osprey.UID(binary.BigEndian.Uint64(v))})
		} else {
			olds = append(olds, old{append([]byte(nil), k...), 0})
		}
		return true
	})
	if len(olds) == 0 {
		_ = t.b.Close()
		return nil
	}
	moved := 0
	for _, o := range olds {
		md5 := string(o.k[2:])
		if ct, ok := t.content(o.id); ok && ct.MD5 == md5 && ct.State != ContentFailed && ct.State != ContentLost {
			t.indexContent(ct)
			moved++
		}
		t.del(o.k)
	}
	t.seal(f.applied)
	if err := t.b.Commit(pebble.Sync); err != nil {
		_ = t.b.Close()
		return fmt.Errorf("fsm: migrate dedup index: %w", err)
	}
	_ = t.b.Close()
	f.cnt, f.hash = t.cnt, t.hash
	f.log.Info("migrated the md5 dedup index", "entries", len(olds), "indexed", moved)
	return nil
}
