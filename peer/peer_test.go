package peer_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/backend"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
	"github.com/osprey-storage/osprey/peer"
)

// fakeDirectory is an in-memory Directory.
type fakeDirectory struct {
	nodes  map[osprey.NodeID]fsm.Node
	secret []byte
}

func (d fakeDirectory) Node(id osprey.NodeID) (fsm.Node, bool) { n, ok := d.nodes[id]; return n, ok }
func (d fakeDirectory) Secret() []byte                         { return d.secret }

func reply(w http.ResponseWriter, status int, msg string, data any) {
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": status, "message": msg, "data": data})
}

// mustPeer starts h as member "p1" and returns a client that knows it.
func mustPeer(t *testing.T, h http.HandlerFunc, opts ...func(*peer.Config)) (*peer.Client, fakeDirectory) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	dir := fakeDirectory{secret: []byte("s3cret"), nodes: map[osprey.NodeID]fsm.Node{
		"p1": {ID: "p1", HTTPAddr: strings.TrimPrefix(srv.URL, "http://")}}}
	cfg := peer.DefaultConfig()
	cfg.Directory = dir
	for _, o := range opts {
		o(&cfg)
	}
	c, err := peer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c, dir
}

func TestPutChunkSendsTokenAndChecksChecksum(t *testing.T) {
	var gotPath, gotToken string
	var gotBody []byte
	c, dir := mustPeer(t, func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotToken = r.URL.Path, r.Header.Get(httpapi.HeaderNodeAuth)
		gotBody, _ = io.ReadAll(r.Body)
		reply(w, 200, "ok", "1234")
	})
	ref := httpapi.ChunkRef{Blob: 5, Num: 2, Shard: 1}
	if err := c.PutChunk(context.Background(), "p1", ref, []byte("abc"), 1234); err != nil {
		t.Fatal(err)
	}
	if gotPath != "/internal/v1/chunks/5/2/1" || string(gotBody) != "abc" || gotToken != httpapi.NodeAuthToken(dir.secret) {
		t.Fatalf("path %q body %q token %q", gotPath, gotBody, gotToken)
	}
	if err := c.PutChunk(context.Background(), "p1", ref, []byte("abc"), 99); err == nil {
		t.Fatal("a checksum mismatch was accepted")
	}
}

func TestErrorsMapToKinds(t *testing.T) {
	c, _ := mustPeer(t, func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusNotFound, "no such chunk", nil)
	})
	if err := c.DeleteChunk(context.Background(), "p1", httpapi.ChunkRef{Blob: 1, Num: 1}, httpapi.CopyRecorded, 0); !errors.Is(err, osprey.ErrNotFound) {
		t.Fatalf("404: %v", err)
	}
	if err := c.DeleteChunk(context.Background(), "nobody", httpapi.ChunkRef{}, httpapi.CopyUpload, 0); !errors.Is(err, osprey.ErrUnavailable) {
		t.Fatalf("unknown member: %v", err)
	}
}

func TestDialFailureIsUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	cfg := peer.DefaultConfig()
	cfg.Directory = fakeDirectory{}
	c, err := peer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ForwardApply(context.Background(), addr, []byte{1}); !errors.Is(err, osprey.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable (certainly not applied)", err)
	}
}

func TestOpenChunkChecksLength(t *testing.T) {
	c, _ := mustPeer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("off") != "2" {
			t.Errorf("query %q", r.URL.RawQuery)
		}
		_, _ = io.WriteString(w, "cde")
	})
	rc, err := c.OpenChunk(context.Background(), "p1", httpapi.ChunkRef{Blob: 1, Num: 1}, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "cde" {
		t.Fatalf("read %q", b)
	}
	if _, err := c.OpenChunk(context.Background(), "p1", httpapi.ChunkRef{Blob: 1, Num: 1}, 2, 4); err == nil {
		t.Fatal("a short range was accepted")
	}
}

func TestPutObjectChecksumMismatch(t *testing.T) {
	c, _ := mustPeer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		reply(w, http.StatusBadRequest, "invalid: "+backend.ErrChecksum.Error(), nil)
	})
	err := c.PutObject(context.Background(), "p1", "b", "k", strings.NewReader("xy"), 2, "00")
	if !errors.Is(err, backend.ErrChecksum) {
		t.Fatalf("err = %v, want backend.ErrChecksum", err)
	}
}

func TestReadIndexAndProbe(t *testing.T) {
	c, dir := mustPeer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/internal/v1/readindex":
			reply(w, 200, "ok", "77")
		case "/livez":
			w.WriteHeader(200)
		default:
			reply(w, 404, "no", nil)
		}
	})
	addr := dir.nodes["p1"].HTTPAddr
	idx, err := c.ReadIndex(context.Background(), addr)
	if err != nil || idx != 77 {
		t.Fatalf("idx %d err %v", idx, err)
	}
	ok, _, err := c.Probe(context.Background(), addr)
	if err != nil || !ok {
		t.Fatalf("probe ok %v err %v", ok, err)
	}
}

// TestCallsReuseConnections: replies whose body a call does not need (an
// object copy's 200, a probe's "ok") are read to the end before closing,
// so the next call reuses the connection. Closing them unread made every
// tiered copy cost a new connection and a socket in TIME_WAIT.
func TestCallsReuseConnections(t *testing.T) {
	var mu sync.Mutex
	conns := map[string]bool{}
	c, dir := mustPeer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns[r.RemoteAddr] = true
		mu.Unlock()
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/livez" {
			_, _ = io.WriteString(w, "ok\n")
			return
		}
		reply(w, 200, "ok", map[string]string{"stored": "yes"})
	})
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if err := c.PutObject(ctx, "p1", "b", "k", strings.NewReader("xy"), 2, "00"); err != nil {
			t.Fatal(err)
		}
		if ok, _, err := c.Probe(ctx, dir.nodes["p1"].HTTPAddr); err != nil || !ok {
			t.Fatalf("probe ok %v err %v", ok, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(conns) != 1 {
		t.Errorf("10 sequential calls used %d connections, want 1", len(conns))
	}
}

// onlyReader hides a reader's type, as a body still arriving does.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// TestPutChunkStreamSendsLength: a streamed chunk copy goes out with its
// Content-Length (the owner requires one), an empty one too (a non-nil
// body of length 0 would otherwise go out chunked), and the owner's
// checksum comes back.
func TestPutChunkStreamSendsLength(t *testing.T) {
	var gotLen int64
	var gotTE []string
	var gotBody []byte
	var gotQuery string
	c, _ := mustPeer(t, func(w http.ResponseWriter, r *http.Request) {
		gotLen, gotTE, gotQuery = r.ContentLength, r.TransferEncoding, r.URL.RawQuery
		gotBody, _ = io.ReadAll(r.Body)
		reply(w, 200, "ok", "42")
	})
	ref := httpapi.ChunkRef{Blob: 5, Num: 1}
	for _, body := range []string{"hello", ""} {
		sum, err := c.PutChunkStream(context.Background(), "p1", ref, onlyReader{strings.NewReader(body)}, int64(len(body)), httpapi.CopyUpload)
		if err != nil || sum != 42 {
			t.Fatalf("%q: sum %d, %v", body, sum, err)
		}
		if gotLen != int64(len(body)) || len(gotTE) != 0 || string(gotBody) != body {
			t.Fatalf("%q: Content-Length %d, Transfer-Encoding %v, body %q", body, gotLen, gotTE, gotBody)
		}
		if gotQuery != "origin=upload" {
			t.Fatalf("%q: query %q, want the upload's origin", body, gotQuery)
		}
	}
}

// TestChunkOriginOnTheWire: an upload's cleanup names its origin; a
// recorded copy or delete sends none, as builds before origins did.
func TestChunkOriginOnTheWire(t *testing.T) {
	var got []string
	c, _ := mustPeer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got = append(got, r.Method+" "+r.URL.RequestURI())
		reply(w, 200, "ok", "3")
	})
	ref := httpapi.ChunkRef{Blob: 5, Num: 1}
	ctx := context.Background()
	if err := c.DeleteChunk(ctx, "p1", ref, httpapi.CopyUpload, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteChunk(ctx, "p1", ref, httpapi.CopyRecorded, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutChunkStream(ctx, "p1", ref, strings.NewReader("x"), 1, httpapi.CopyRecorded); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteChunk(ctx, "p1", ref, httpapi.CopyRecorded, 77); err != nil {
		t.Fatal(err)
	}
	want := []string{"DELETE /internal/v1/chunks/5/1/0?origin=upload", "DELETE /internal/v1/chunks/5/1/0", "PUT /internal/v1/chunks/5/1/0",
		"DELETE /internal/v1/chunks/5/1/0?gen=77"}
	if !slices.Equal(got, want) {
		t.Fatalf("requests %q, want %q", got, want)
	}
}

// TestChunkGen reads a copy's generation from the HEAD reply's header and
// tells a missing copy, an earlier build (405) and a bad reply apart.
func TestChunkGen(t *testing.T) {
	var status int
	var header, gotMethod, gotToken string
	c, dir := mustPeer(t, func(w http.ResponseWriter, r *http.Request) {
		gotMethod, gotToken = r.Method, r.Header.Get(httpapi.HeaderNodeAuth)
		if header != "" {
			w.Header().Set(httpapi.HeaderChunkGen, header)
		}
		w.WriteHeader(status)
	})
	ctx := context.Background()
	ref := httpapi.ChunkRef{Blob: 5, Num: 1, Shard: 2}
	status, header = 200, "41"
	if gen, err := c.ChunkGen(ctx, "p1", ref); err != nil || gen != 41 {
		t.Fatalf("ChunkGen = %d, %v; want 41", gen, err)
	}
	if gotMethod != http.MethodHead || gotToken != httpapi.NodeAuthToken(dir.secret) {
		t.Fatalf("method %q token %q", gotMethod, gotToken)
	}
	for _, tc := range []struct {
		status int
		header string
		want   error
	}{
		{404, "", osprey.ErrNotFound},
		{405, "", errors.ErrUnsupported},
		{503, "", osprey.ErrUnavailable},
		{200, "", osprey.ErrIndeterminate},
		{200, "0", osprey.ErrIndeterminate},
		{200, "x", osprey.ErrIndeterminate},
	} {
		status, header = tc.status, tc.header
		if _, err := c.ChunkGen(ctx, "p1", ref); !errors.Is(err, tc.want) {
			t.Errorf("status %d header %q: %v, want %v", tc.status, tc.header, err, tc.want)
		}
	}
	if _, err := c.ChunkGen(ctx, "nobody", ref); !errors.Is(err, osprey.ErrUnavailable) {
		t.Fatalf("unknown member: %v", err)
	}
}

// TestObjectVersionOnTheWire: an object copy's version comes from the HEAD
// reply and goes back as ?version= on the delete; a plain delete sends none.
func TestObjectVersionOnTheWire(t *testing.T) {
	var got []string
	status := 200
	c, _ := mustPeer(t, func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.RequestURI())
		if r.Method == http.MethodHead {
			w.Header().Set(httpapi.HeaderObjectVersion, "12-345")
			w.WriteHeader(status)
			return
		}
		reply(w, 200, "ok", nil)
	})
	ctx := context.Background()
	v, err := c.ObjectVersion(ctx, "p1", "doc", "a b.pdf")
	if err != nil || v != "12-345" {
		t.Fatalf("ObjectVersion = %q, %v", v, err)
	}
	if err := c.DeleteObject(ctx, "p1", "doc", "a b.pdf", v); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteObject(ctx, "p1", "doc", "a b.pdf", ""); err != nil {
		t.Fatal(err)
	}
	want := []string{"HEAD /internal/v1/objects/doc/a%20b.pdf", "DELETE /internal/v1/objects/doc/a%20b.pdf?version=12-345", "DELETE /internal/v1/objects/doc/a%20b.pdf"}
	if !slices.Equal(got, want) {
		t.Fatalf("requests %q, want %q", got, want)
	}
	status = http.StatusMethodNotAllowed
	if _, err := c.ObjectVersion(ctx, "p1", "doc", "a b.pdf"); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("405: %v, want ErrUnsupported", err)
	}
	status = http.StatusNotFound
	if _, err := c.ObjectVersion(ctx, "p1", "doc", "a b.pdf"); !errors.Is(err, osprey.ErrNotFound) {
		t.Fatalf("404: %v, want ErrNotFound", err)
	}
}

// TestStreamFromAHungPeerFails: a member that takes a stream request and
// never answers (a paused process) fails the call after Timeout instead
// of holding it for as long as the caller's context allows.
func TestStreamFromAHungPeerFails(t *testing.T) {
	release := make(chan struct{})
	c, _ := mustPeer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}, func(cfg *peer.Config) { cfg.Timeout = 200 * time.Millisecond })
	t.Cleanup(func() { close(release) })
	start := time.Now()
	_, err := c.OpenChunk(context.Background(), "p1", httpapi.ChunkRef{Blob: 1, Num: 1}, 0, 3)
	if err == nil {
		t.Fatal("a hung peer answered")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("waited %s for a hung peer", d)
	}
}
