package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		addr    string
		wantErr bool
		want    []string
	}{
		{"default", "", false, []string{DefaultAddr}},
		{"no scheme", "127.0.0.1:9000", false, []string{"http://127.0.0.1:9000"}},
		{"list", "http://a:1/, https://b:2 ,", false, []string{"http://a:1", "https://b:2"}},
		{"bad scheme", "ftp://a:1", true, nil},
		{"no host", "http://", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(Config{Addr: tt.addr})
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Errorf("err %v does not match ErrInvalidConfig", err)
				}
				return
			}
			if got := c.Addrs(); strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("Addrs = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestErrorDecoding(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		header    map[string]string
		body      string
		sentinel  error
		code      int
		codeText  string
		message   string
		requestID string
	}{
		{name: "envelope", status: 404, body: `{"code":1004,"message":"uid: not found","request_id":"r1"}`,
			sentinel: ErrNotFound, code: 1004, codeText: "1004", message: "uid: not found", requestID: "r1"},
		{name: "request id from header", status: 409, header: map[string]string{"X-Request-Id": "h1"},
			body: `{"code":1005,"message":"missing chunks: 2"}`, sentinel: ErrConflict, code: 1005, codeText: "1005",
			message: "missing chunks: 2", requestID: "h1"},
		{name: "body id wins", status: 400, header: map[string]string{"X-Request-Id": "h1"},
			body: `{"code":1000,"message":"md5: bad","request_id":"b1"}`, sentinel: ErrInvalid, code: 1000, codeText: "1000",
			message: "md5: bad", requestID: "b1"},
		{name: "string code", status: 503, body: `{"code":"unavailable","message":"no leader"}`,
			sentinel: ErrUnavailable, codeText: "unavailable", message: "no leader"},
		{name: "numeric string code", status: 422, body: `{"code":"1000","message":"filePath"}`,
			sentinel: ErrInvalid, code: 1000, codeText: "1000", message: "filePath"},
		{name: "plain text", status: 502, body: "bad gateway\nmore", sentinel: ErrServer, message: "bad gateway"},
		{name: "empty body", status: 401, sentinel: ErrUnauthorized, message: "unauthorized"},
		{name: "forbidden", status: 403, body: `{"code":1003,"message":"signature"}`, sentinel: ErrUnauthorized, code: 1003,
			codeText: "1003", message: "signature"},
		{name: "range", status: 416, body: `{"code":1006,"message":"range"}`, sentinel: ErrRangeNotSatisfiable, code: 1006,
			codeText: "1006", message: "range"},
		{name: "too large", status: 413, sentinel: ErrTooLarge, message: "request entity too large"},
		{name: "indeterminate", status: 504, body: `{"code":1008,"message":"outcome unknown"}`, sentinel: ErrIndeterminate,
			code: 1008, codeText: "1008", message: "outcome unknown"},
		{name: "internal", status: 500, body: `{"code":1009,"message":"internal error"}`, sentinel: ErrServer, code: 1009,
			codeText: "1009", message: "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			c, err := New(Config{Addr: srv.URL, MaxRetries: -1, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Object(ctxT(t), "1")
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v (%T), want *APIError", err, err)
			}
			if !errors.Is(err, tt.sentinel) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.sentinel)
			}
			if ae.Status != tt.status || ae.Code != tt.code || ae.CodeText != tt.codeText || ae.Message != tt.message ||
				ae.RequestID != tt.requestID {
				t.Errorf("got %+v", *ae)
			}
			if ae.Path != APIPrefix+"/object" || ae.Method != http.MethodGet {
				t.Errorf("method/path = %s %s", ae.Method, ae.Path)
			}
			if strings.Contains(ae.Error(), "uid=") {
				t.Errorf("error leaks the query: %s", ae.Error())
			}
		})
	}
}

func TestRetryAfterParse(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name string
		v    string
		min  time.Duration
		max  time.Duration
	}{
		{"empty", "", 0, 0},
		{"seconds", "2", 2 * time.Second, 2 * time.Second},
		{"capped", "3600", 30 * time.Second, 30 * time.Second},
		{"negative", "-5", 0, 0},
		{"garbage", "soon", 0, 0},
		{"date", now.Add(10 * time.Second).UTC().Format(http.TimeFormat), 8 * time.Second, 10 * time.Second},
		{"past date", now.Add(-time.Hour).UTC().Format(http.TimeFormat), 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := retryAfter(tt.v, 30*time.Second)
			if got < tt.min || got > tt.max {
				t.Errorf("retryAfter(%q) = %v, want [%v, %v]", tt.v, got, tt.min, tt.max)
			}
		})
	}
}

// scriptedServer answers the i-th request with statuses[i] (200 after the
// script runs out) and counts requests.
func scriptedServer(t *testing.T, statuses []int, retryAfter string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		st := 200
		if i < len(statuses) {
			st = statuses[i]
		}
		if st == -1 { // drop the connection
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			conn.Close()
			return
		}
		if st == http.StatusServiceUnavailable && retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(st)
		if st == 200 && r.Method == http.MethodGet {
			_, _ = w.Write([]byte(`{"code":0,"message":"ok","data":[1,2]}`))
		} else if st == 200 {
			_, _ = w.Write([]byte(`{"code":0,"message":"ok","data":[{"md5":"x","uid":""}]}`))
		} else {
			_, _ = w.Write([]byte(`{"code":1,"message":"nope"}`))
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name       string
		statuses   []int
		retryAfter string
		call       string // "get" (idempotent) or "post" (not)
		wantCalls  int32
		wantErr    error
		wantSleeps []time.Duration // minimum of each recorded delay
	}{
		{name: "503 honours Retry-After", statuses: []int{503, 503}, retryAfter: "2", call: "get",
			wantCalls: 3, wantSleeps: []time.Duration{2 * time.Second, 2 * time.Second}},
		{name: "503 retried for POST too", statuses: []int{503}, retryAfter: "1", call: "post",
			wantCalls: 2, wantSleeps: []time.Duration{time.Second}},
		{name: "504 retried for GET", statuses: []int{504}, call: "get", wantCalls: 2, wantSleeps: []time.Duration{0}},
		{name: "504 not retried for POST", statuses: []int{504}, call: "post", wantCalls: 1, wantErr: ErrIndeterminate},
		{name: "dropped connection retried for GET", statuses: []int{-1}, call: "get", wantCalls: 2, wantSleeps: []time.Duration{0}},
		{name: "dropped connection not retried for POST", statuses: []int{-1}, call: "post", wantCalls: 1},
		{name: "404 never retried", statuses: []int{404}, call: "get", wantCalls: 1, wantErr: ErrNotFound},
		{name: "409 never retried", statuses: []int{409}, call: "post", wantCalls: 1, wantErr: ErrConflict},
		{name: "gives up", statuses: []int{503, 503, 503, 503}, call: "get", wantCalls: 4, wantErr: ErrUnavailable,
			wantSleeps: []time.Duration{0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, n := scriptedServer(t, tt.statuses, tt.retryAfter)
			c, err := New(Config{Addr: srv.URL, MaxRetries: 3, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
				Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var sleeps []time.Duration
			c.sleep = func(ctx context.Context, d time.Duration) error {
				mu.Lock()
				sleeps = append(sleeps, d)
				mu.Unlock()
				return nil
			}
			if tt.call == "get" {
				_, err = c.Checkpoint(ctxT(t), "1")
			} else {
				_, err = c.Resume(ctxT(t), []ResumeItem{{MD5: "x", Path: "a.bin"}})
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && tt.statuses[len(tt.statuses)-1] != -1 && int(tt.wantCalls) > len(tt.statuses) && err != nil {
				t.Errorf("err = %v, want success", err)
			}
			if got := n.Load(); got != tt.wantCalls {
				t.Errorf("calls = %d, want %d", got, tt.wantCalls)
			}
			if len(sleeps) != len(tt.wantSleeps) {
				t.Fatalf("sleeps = %v, want %d", sleeps, len(tt.wantSleeps))
			}
			for i, d := range sleeps {
				if d < tt.wantSleeps[i] {
					t.Errorf("sleep %d = %v, want >= %v", i, d, tt.wantSleeps[i])
				}
			}
		})
	}
}

func TestRetryStopsOnContextCancel(t *testing.T) {
	srv, n := scriptedServer(t, []int{503, 503, 503, 503, 503, 503, 503, 503}, "1")
	c := mustClient(t, srv.URL, "")
	ctx, cancel := context.WithCancel(ctxT(t))
	c.sleep = func(ctx context.Context, d time.Duration) error {
		cancel()
		return sleepCtx(ctx, d)
	}
	_, err := c.Checkpoint(ctx, "1")
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrUnavailable) {
		t.Errorf("err = %v, want context.Canceled wrapping the last 503", err)
	}
	if n.Load() != 1 {
		t.Errorf("calls = %d, want 1", n.Load())
	}
}

func TestConnectionRefusedRetriedForPOST(t *testing.T) {
	// A listener that is closed at once gives a port that refuses.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	f := newFakeServer(t)
	srv, _ := f.start(t)
	// Round-robin: the dead node first, then the live one.
	c := mustClient(t, "http://"+addr+","+srv.URL, f.apiKey)
	links, err := c.LinkUpload(ctxT(t), []string{"a.bin"}, 0)
	if err != nil {
		t.Fatalf("LinkUpload: %v", err)
	}
	if len(links) != 1 || links[0].UID == "" {
		t.Fatalf("links = %+v", links)
	}
}

// TestDeadAddressSkipped: an address that refused is skipped by later
// calls for downFor (each used to pay a failed attempt and a backoff
// before its retry reached a live node), then tried again.
func TestDeadAddressSkipped(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	f := newFakeServer(t)
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		f.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c := mustClient(t, dead+","+srv.URL, f.apiKey)
	now := time.Now()
	c.now = func() time.Time { return now }
	var retries atomic.Int32
	c.sleep = func(ctx context.Context, d time.Duration) error { retries.Add(1); return nil }
	for range 6 {
		if err := c.Ping(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	if retries.Load() != 1 || hits.Load() != 6 {
		t.Fatalf("%d retries, %d hits on the live node; want 1 and 6", retries.Load(), hits.Load())
	}
	now = now.Add(downFor + time.Second)
	for range 2 {
		if err := c.Ping(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	if retries.Load() != 2 {
		t.Fatalf("after downFor: %d retries, want the dead address tried once more", retries.Load())
	}
}

func TestRoundRobin(t *testing.T) {
	f := newFakeServer(t)
	var hits [2]atomic.Int32
	srvs := make([]*httptest.Server, 2)
	for i := range srvs {
		srvs[i] = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits[i].Add(1)
			f.ServeHTTP(w, r)
		}))
		t.Cleanup(srvs[i].Close)
	}
	c := mustClient(t, srvs[0].URL+","+srvs[1].URL, f.apiKey)
	for range 10 {
		if err := c.Ping(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	if hits[0].Load() != 5 || hits[1].Load() != 5 {
		t.Errorf("hits = %d/%d, want 5/5", hits[0].Load(), hits[1].Load())
	}
}

// TestEveryKindSpreads: a put's requests alternate link and upload; with
// two nodes each kind of request still reaches both (one shared counter
// sent every link to one node and every upload to the other).
func TestEveryKindSpreads(t *testing.T) {
	f := newFakeServer(t)
	var links, uploads [2]atomic.Int32
	srvs := make([]*httptest.Server, 2)
	for i := range srvs {
		srvs[i] = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case strings.HasSuffix(r.URL.Path, "/link/upload"):
				links[i].Add(1)
			case strings.HasSuffix(r.URL.Path, "/upload"):
				uploads[i].Add(1)
			}
			f.ServeHTTP(w, r)
		}))
		t.Cleanup(srvs[i].Close)
	}
	c := mustClient(t, srvs[0].URL+","+srvs[1].URL, f.apiKey)
	body := []byte("hello")
	for i := range 10 {
		l, err := c.LinkUpload(ctxT(t), []string{fmt.Sprintf("f%d.txt", i)}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Upload(ctxT(t), l[0].URL.Single, md5hex(body), bytes.NewReader(body), 5, UploadOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		if links[i].Load() != 5 || uploads[i].Load() != 5 {
			t.Errorf("node %d: %d links, %d uploads; want 5 and 5", i, links[i].Load(), uploads[i].Load())
		}
	}
}

func TestAPIKeyOnlyOnBusinessEndpoints(t *testing.T) {
	f := newFakeServer(t) // fails the test if a data endpoint sees a key
	_, c := f.start(t)
	ctx := ctxT(t)
	links, err := c.LinkUpload(ctx, []string{"a.txt"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("hello")
	if err := c.Upload(ctx, links[0].URL.Single, md5hex(body), strings.NewReader(string(body)), 5, UploadOptions{}); err != nil {
		t.Fatal(err)
	}
	bad := mustClient(t, c.Addrs()[0], "wrong")
	if _, err := bad.LinkUpload(ctx, []string{"a.txt"}, 0); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("wrong key: err = %v, want ErrUnauthorized", err)
	}
}

func TestBatchLimits(t *testing.T) {
	c := mustClient(t, "http://127.0.0.1:1", "")
	ctx := ctxT(t)
	if _, err := c.Resume(ctx, make([]ResumeItem, 51)); !errors.Is(err, ErrInvalid) {
		t.Errorf("Resume(51): %v", err)
	}
	if _, err := c.LinkUpload(ctx, nil, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("LinkUpload(0): %v", err)
	}
	if _, err := c.LinkDownload(ctx, make([]string, 201), 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("LinkDownload(201): %v", err)
	}
	if err := c.UploadChunk(ctx, "/x", 0, "", nil, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("UploadChunk(0): %v", err)
	}
}

func TestScanMetric(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		want    float64
		wantErr error
	}{
		{"plain", "# HELP x\nprocess_resident_memory_bytes 1.5e+07\n", 1.5e7, nil},
		{"braces", "process_resident_memory_bytes{} 42\n", 42, nil},
		{"longer name first", "process_resident_memory_bytes_max 9\nprocess_resident_memory_bytes 7 1700000000\n", 7, nil},
		{"missing", "go_goroutines 3\n", 0, ErrNotFound},
		{"bare name", "process_resident_memory_bytes\n", 0, ErrNotFound},
		{"bad value", "process_resident_memory_bytes abc\n", 0, ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := scanMetric(strings.NewReader(tt.text), "process_resident_memory_bytes")
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestWaitIdle: WaitIdle returns once the node reports no pending or
// leased tasks (dead ones do not count), and on its context's end says how
// many were left.
func TestWaitIdle(t *testing.T) {
	var polls atomic.Int64
	var busyFor atomic.Int64 // polls that still report work
	busyFor.Store(3)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		n := polls.Add(1)
		pending, leased := 0, 0
		if n <= 2*busyFor.Load() { // two metric reads per poll
			pending, leased = 5, 2
		}
		fmt.Fprintf(w, "osprey_tasks{state=\"dead\"} 4\nosprey_tasks{state=\"leased\"} %d\nosprey_tasks{state=\"pending\"} %d\n", leased, pending)
	}))
	defer srv.Close()
	c := mustClient(t, srv.URL, "")
	if _, err := c.WaitIdle(ctxT(t), srv.URL, time.Millisecond); err != nil {
		t.Fatalf("WaitIdle: %v", err)
	}
	if got := polls.Load(); got != 2*(3+1) {
		t.Errorf("%d metric reads, want %d (returned before or long after the work finished)", got, 2*(3+1))
	}

	busyFor.Store(1 << 40) // never idle
	ctx, cancel := context.WithTimeout(ctxT(t), 200*time.Millisecond)
	defer cancel()
	_, err := c.WaitIdle(ctx, srv.URL, time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "7 tasks left") {
		t.Errorf("WaitIdle on a busy node: %v, want a deadline error saying 7 tasks are left", err)
	}
}

// TestMetricSendsKey: metric reads (bench's RSS samples, WaitIdle behind
// bench-s3 --settle) carry the API key, so they work against a node started
// with --metrics-require-key.
func TestMetricSendsKey(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer metrics-key" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "process_resident_memory_bytes 1234\n")
	}))
	defer srv.Close()
	v, err := mustClient(t, srv.URL, "metrics-key").Metric(ctxT(t), srv.URL, "process_resident_memory_bytes")
	if err != nil || v != 1234 {
		t.Fatalf("Metric with the key = %v, %v; want 1234", v, err)
	}
	if _, err := mustClient(t, srv.URL, "").Metric(ctxT(t), srv.URL, "process_resident_memory_bytes"); err == nil {
		t.Fatal("Metric without a key read a protected /metrics")
	}
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		v                 string
		start, end, total int64
		ok                bool
	}{
		{"bytes 0-0/1", 0, 0, 1, true},
		{"bytes 10-19/20", 10, 19, 20, true},
		{"bytes 10-19/*", 10, 19, -1, true},
		{"bytes 10-19/19", 0, 0, 0, false},
		{"bytes 5-4/10", 0, 0, 0, false},
		{"items 0-1/2", 0, 0, 0, false},
		{"bytes */10", 0, 0, 0, false},
		{"", 0, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.v, func(t *testing.T) {
			s, e, tot, err := ParseContentRange(tt.v)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, ok %v", err, tt.ok)
			}
			if tt.ok && (s != tt.start || e != tt.end || tot != tt.total) {
				t.Errorf("got %d-%d/%d", s, e, tot)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"4096", 4096, true}, {"8MiB", 8 << 20, true}, {"8m", 8 << 20, true}, {"1 GiB", 1 << 30, true},
		{"2KB", 2000, true}, {"1g", 1 << 30, true}, {"1.5MiB", 0, false}, {"-1", 0, false}, {"MiB", 0, false}, {"3x", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
