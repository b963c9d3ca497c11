package node_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/httpapi"
)

type dedupChallenge struct {
	ID     string `json:"challenge"`
	Nonce  string `json:"nonce"`
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// answer computes the proof a client holding data sends.
func answer(t *testing.T, ch dedupChallenge, data []byte) string {
	t.Helper()
	nonce, err := hex.DecodeString(ch.Nonce)
	if err != nil || ch.Offset < 0 || ch.Offset+ch.Length > int64(len(data)) {
		t.Fatalf("challenge %+v for %d bytes", ch, len(data))
	}
	m := hmac.New(sha256.New, nonce)
	m.Write(data[ch.Offset : ch.Offset+ch.Length])
	return hex.EncodeToString(m.Sum(nil))
}

// TestDedupProofOfPossession: on a real two-node cluster, a client that
// proves it holds the bytes gets a uid whose download is those bytes, on
// whichever node it sends the proof to; a wrong proof, an absent content,
// a reused or expired challenge get 403 and create nothing; another
// tenant's content is never matched.
func TestDedupProofOfPossession(t *testing.T) {
	c := newCluster(t, 2)
	n0, n1 := c.nodes[0], c.nodes[1]
	a0, a1 := apiOf(t, n0), apiOf(t, n1)
	data := content(31, 700<<10+13) // larger than the proof range: a random offset
	orig := uploadSingle(t, n0, "orig.bin", data)

	claim := func(d []byte, path string) map[string]any {
		return map[string]any{"md5": md5hex(d), "size": len(d), "sha256": sha256hex(d), "path": path}
	}
	challenge := func(a api, body map[string]any) dedupChallenge {
		t.Helper()
		var ch dedupChallenge
		a.ok("POST", "/api/storage/v0/dedup/challenge", body, &ch)
		return ch
	}
	prove := func(a api, ch dedupChallenge, proof string) (int, string, string) {
		t.Helper()
		b, _ := json.Marshal(map[string]string{"challenge": ch.ID, "proof": proof})
		code, env, _ := a.do("POST", "/api/storage/v0/dedup/prove", bytes.NewReader(b), nil)
		var out struct {
			MD5 string `json:"md5"`
			UID string `json:"uid"`
		}
		if code == 200 {
			if err := json.Unmarshal(env.Data, &out); err != nil {
				t.Fatalf("prove reply %s: %v", env.Data, err)
			}
		}
		return code, out.UID, env.Message
	}
	files := func() int { return len(n0.FSM().Files(0, 1000)) }

	// Right proof, sent to the other node: a new uid sharing the content.
	ch := challenge(a0, claim(data, "copy.bin"))
	if ch.Length != 256<<10 {
		t.Fatalf("challenge range %+v", ch)
	}
	code, uid, msg := prove(a1, ch, answer(t, ch, data))
	if code != 200 || uid == "" || uid == orig {
		t.Fatalf("prove: %d %q %s", code, uid, msg)
	}
	checkDownload(t, n0, uid, data)
	waitFor(t, 10*time.Second, "the proven file on n1", func() bool { _, ok := n1.FSM().File(mustUID(t, uid)); return ok })
	f, _ := n1.FSM().File(mustUID(t, uid))
	o, _ := n1.FSM().File(mustUID(t, orig))
	if f.Content != o.Content || f.Name != "copy.bin" {
		t.Fatalf("proven file %+v does not share %+v", f, o)
	}

	// Reused: 403 on the node that checked it.
	before := files()
	if code, _, msg := prove(a1, ch, answer(t, ch, data)); code != 403 {
		t.Fatalf("reused challenge: %d %s", code, msg)
	}
	// Wrong proof: 403, nothing created.
	ch = challenge(a0, claim(data, "x.bin"))
	wrong := append([]byte(nil), data...)
	wrong[ch.Offset] ^= 1
	if code, _, msg := prove(a0, ch, answer(t, ch, wrong)); code != 403 {
		t.Fatalf("wrong proof: %d %s", code, msg)
	}
	// Absent content: a challenge all the same, and the same 403.
	other := content(32, 5000)
	ch = challenge(a1, claim(other, "y.bin"))
	if code, _, msg := prove(a1, ch, answer(t, ch, other)); code != 403 {
		t.Fatalf("absent content: %d %s", code, msg)
	}
	// Same md5 claimed with another sha256 (what a collision looks like to
	// the server): no match.
	forged := claim(data, "z.bin")
	forged["sha256"] = sha256hex(other)
	ch = challenge(a0, forged)
	if code, _, msg := prove(a0, ch, answer(t, ch, data)); code != 403 {
		t.Fatalf("md5 match with another sha256: %d %s", code, msg)
	}
	// Expired.
	n0.Storage().SetChallengeTTL(-time.Second)
	ch = challenge(a0, claim(data, "late.bin"))
	n0.Storage().SetChallengeTTL(0)
	if code, _, msg := prove(a0, ch, answer(t, ch, data)); code != 403 {
		t.Fatalf("expired challenge: %d %s", code, msg)
	}
	// Tampered: the range moved.
	ch = challenge(a0, claim(data, "t.bin"))
	ch.ID = ch.ID[:len(ch.ID)-2] + "AA"
	if code, _, _ := prove(a0, ch, answer(t, ch, data)); code != 403 && code != 400 {
		t.Fatalf("tampered challenge: %d", code)
	}
	if got := files(); got != before {
		t.Fatalf("failed proofs created files: %d, want %d", got, before)
	}

	// Another tenant: no match for the admin's content, by proof or by md5.
	ctx := osprey.WithPrincipal(context.Background(), osprey.Principal{KeyID: "k1", Tenant: "acme"})
	dp := n1.Storage()
	hc := httpapi.DedupClaim{MD5: md5hex(data), Size: int64(len(data)), SHA256: sha256hex(data), Name: "steal.bin", Bucket: "unknown"}
	tch, err := dp.DedupChallenge(ctx, hc)
	if err != nil {
		t.Fatal(err)
	}
	proof := answer(t, dedupChallenge{Nonce: tch.Nonce, Offset: tch.Offset, Length: tch.Length}, data)
	if _, _, err := dp.DedupProve(ctx, tch.ID, proof); !errors.Is(err, osprey.ErrForbidden) {
		t.Fatalf("other tenant proved onto the admin's content: %v", err)
	}
	uids, err := dp.Resume(ctx, []httpapi.ResumeItem{{MD5: md5hex(data), Name: "steal.bin", Bucket: "unknown"}})
	if err != nil || uids[0] != 0 {
		t.Fatalf("other tenant resumed by md5: %v %v", uids, err)
	}
	// A challenge issued to the admin is no good for the tenant.
	ch = challenge(a1, claim(data, "c.bin"))
	if _, _, err := dp.DedupProve(ctx, ch.ID, answer(t, ch, data)); !errors.Is(err, osprey.ErrForbidden) {
		t.Fatalf("admin's challenge accepted for another tenant: %v", err)
	}
	// The tenant's own upload of the same bytes is its own content, which
	// its proofs then match.
	tu, err := dp.CreateFiles(ctx, []httpapi.NewFile{{Name: "mine.bin", Bucket: "unknown"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dp.Upload(ctx, tu[0], bytes.NewReader(data), int64(len(data)), md5hex(data)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the tenant's upload on n1", func() bool { x, ok := n1.FSM().File(tu[0]); return ok && x.Content != 0 })
	mine, _ := n1.FSM().File(tu[0])
	if mine.Tenant != "acme" || mine.Content == o.Content {
		t.Fatalf("tenant upload %+v shares the admin's content %d", mine, o.Content)
	}
	tch, err = dp.DedupChallenge(ctx, hc)
	if err != nil {
		t.Fatal(err)
	}
	_, got, err := dp.DedupProve(ctx, tch.ID, answer(t, dedupChallenge{Nonce: tch.Nonce, Offset: tch.Offset, Length: tch.Length}, data))
	if err != nil || got == 0 {
		t.Fatalf("tenant proof of its own content: %v %v", got, err)
	}
	waitFor(t, 10*time.Second, "the proven file on n1", func() bool { _, ok := n1.FSM().File(got); return ok })
	if x, _ := n1.FSM().File(got); x.Content != mine.Content || x.Tenant != "acme" {
		t.Fatalf("tenant's proven file %+v", x)
	}
}

// dedupFixtureContent regenerates the files of datadir-8bf4aae.tgz.
func dedupFixtureContent(name string) []byte {
	if name == "big.bin" {
		var b bytes.Buffer
		for i := 1; i <= 300000; i++ {
			fmt.Fprintf(&b, "%d\n", i)
		}
		return b.Bytes()
	}
	return []byte("old file number " + strings.TrimSuffix(strings.TrimPrefix(name, "f"), ".txt") + "\n")
}

// TestUpgradeDedupIndex starts this build on the data dir of a node of the
// build before the tenant/sha256 dedup index (commit 8bf4aae: Pebble
// metadata with the md5-only 'h' index; testdata/upgrade/README.md). Its
// contents stay findable by md5 (/resume) but, having no SHA-256, are no
// proof-of-possession target; a new upload of the same bytes stores a
// content that is.
func TestUpgradeDedupIndex(t *testing.T) {
	dir := t.TempDir()
	untar(t, filepath.Join("testdata", "upgrade", "datadir-8bf4aae.tgz"), dir)
	mf, err := os.ReadFile(filepath.Join("testdata", "upgrade", "manifest-8bf4aae.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{} // name -> uid
	for _, line := range strings.Split(strings.TrimSpace(string(mf)), "\n") {
		uid, name, _ := strings.Cut(line, "\t")
		files[name] = uid
	}
	cfg := testConfig(t, filepath.Join(dir, "data"))
	cfg.NodeID, cfg.JoinToken = "u1", "fixture-token-1"
	n := mustStart(t, cfg)
	a := apiOf(t, n)
	waitFor(t, 10*time.Second, "leader", func() bool { return n.IsLeader() })
	waitFor(t, 10*time.Second, "worker id", func() bool { _, err := n.Cluster().NextUID(); return err == nil })
	for name, uid := range files {
		checkDownload(t, n, uid, dedupFixtureContent(name))
	}
	f1 := dedupFixtureContent("f1.txt")
	old, _ := n.FSM().File(mustUID(t, files["f1.txt"]))
	// md5-only /resume finds the migrated entry.
	var res []struct {
		MD5 string `json:"md5"`
		UID string `json:"uid"`
	}
	a.ok("POST", "/api/storage/v0/resume", map[string]any{"data": []map[string]string{{"md5": md5hex(f1), "path": "again.txt"}}}, &res)
	if len(res) != 1 || res[0].UID == "" {
		t.Fatalf("resume of a migrated content: %+v", res)
	}
	if x, _ := n.FSM().File(mustUID(t, res[0].UID)); x.Content != old.Content {
		t.Fatalf("resumed onto %d, want %d", x.Content, old.Content)
	}
	// No SHA-256 recorded: no proof matches it.
	var ch dedupChallenge
	claim := map[string]any{"md5": md5hex(f1), "size": len(f1), "sha256": sha256hex(f1), "path": "p.txt"}
	a.ok("POST", "/api/storage/v0/dedup/challenge", claim, &ch)
	b, _ := json.Marshal(map[string]string{"challenge": ch.ID, "proof": answer(t, ch, f1)})
	if code, env, _ := a.do("POST", "/api/storage/v0/dedup/prove", bytes.NewReader(b), nil); code != 403 {
		t.Fatalf("proof onto a content without sha256: %d %s", code, env.Message)
	}
	// An upload of the same bytes stores the strong target.
	uid := uploadSingle(t, n, "f1-new.txt", f1)
	nf, _ := n.FSM().File(mustUID(t, uid))
	if nf.Content == old.Content {
		t.Fatal("a strong upload deduplicated onto a content without sha256")
	}
	a.ok("POST", "/api/storage/v0/dedup/challenge", claim, &ch)
	b, _ = json.Marshal(map[string]string{"challenge": ch.ID, "proof": answer(t, ch, f1)})
	code, env, _ := a.do("POST", "/api/storage/v0/dedup/prove", bytes.NewReader(b), nil)
	var out struct {
		UID string `json:"uid"`
	}
	_ = json.Unmarshal(env.Data, &out)
	if code != 200 || out.UID == "" {
		t.Fatalf("proof onto the new upload: %d %s", code, env.Message)
	}
	if x, _ := n.FSM().File(mustUID(t, out.UID)); x.Content != nf.Content {
		t.Fatalf("proven file shares %d, want %d", x.Content, nf.Content)
	}
	checkDownload(t, n, out.UID, f1)
}
