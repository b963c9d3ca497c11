package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/osprey-storage/osprey"
)

// errorTable lists every error kind with the reply it must produce.
var errorTable = []struct {
	name       string
	err        error
	wantStatus int
	wantCode   int
}{
	{"invalid", osprey.ErrInvalid, 400, CodeInvalid},
	{"unauthorized", osprey.ErrUnauthorized, 401, CodeUnauthorized},
	{"forbidden", osprey.ErrForbidden, 403, CodeForbidden},
	{"not found", osprey.ErrNotFound, 404, CodeNotFound},
	{"conflict", osprey.ErrConflict, 409, CodeConflict},
	{"too large", osprey.ErrTooLarge, 413, CodeTooLarge},
	{"range", osprey.ErrRange, 416, CodeRange},
	{"unavailable", osprey.ErrUnavailable, 503, CodeUnavailable},
	{"not leader", osprey.ErrNotLeader, 503, CodeUnavailable},
	{"indeterminate", osprey.ErrIndeterminate, 504, CodeIndeterminate},
	{"backend", osprey.ErrBackend, 502, CodeBackend},
	{"unknown", errors.New("pebble: corruption in /var/lib/osprey/secret-path"), 500, CodeInternal},
	{"deadline", context.DeadlineExceeded, 500, CodeInternal},
}

// TestErrorMapping sends each error kind, wrapped with context as lower
// layers do, through the storage mock and checks the reply.
func TestErrorMapping(t *testing.T) {
	for _, tt := range errorTable {
		t.Run(tt.name, func(t *testing.T) {
			f := mustFixture(t)
			err := fmt.Errorf("node: stat uid 7 at 10.1.2.3:9000: %w", tt.err)
			f.storage.StatFn = func(context.Context, osprey.UID) (FileInfo, error) { return FileInfo{}, err }
			rec, env := f.check(t, apiCase{method: http.MethodGet, path: Prefix + "/object?uid=7", wantCode: tt.wantStatus})
			if env.Code != tt.wantCode {
				t.Errorf("code %d, want %d", env.Code, tt.wantCode)
			}
			if (tt.wantStatus == 503) != (rec.Header().Get("Retry-After") != "") {
				t.Errorf("status %d with Retry-After %q", tt.wantStatus, rec.Header().Get("Retry-After"))
			}
			if tt.wantStatus == 500 {
				if env.Message != "internal error" {
					t.Errorf("message %q, want \"internal error\"", env.Message)
				}
				for _, leak := range []string{"pebble", "secret-path", "10.1.2.3", "deadline"} {
					if strings.Contains(rec.Body.String(), leak) {
						t.Errorf("500 body leaks %q: %s", leak, rec.Body.String())
					}
				}
				if !strings.Contains(f.logs.String(), "node: stat uid 7") {
					t.Errorf("500 details not logged")
				}
				return
			}
			if env.Message != err.Error() {
				t.Errorf("message %q, want %q", env.Message, err.Error())
			}
		})
	}
}

func TestErrorMappingJoinedAndNested(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"double wrap", fmt.Errorf("a: %w", fmt.Errorf("b: %w", osprey.ErrNotFound)), 404},
		{"joined", errors.Join(errors.New("x"), osprey.ErrConflict), 409},
		{"two kinds: table order wins", fmt.Errorf("%w: %w", osprey.ErrInvalid, osprey.ErrBackend), 400},
		{"method not allowed", fmt.Errorf("x: %w", errMethodNotAllowed), 405},
		{"nil-less unknown", errors.New("boom"), 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := statusOf(tt.err); got != tt.want {
				t.Errorf("statusOf = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestErrorMappingEveryRoute returns a few error kinds from each storage
// method a route calls: each route maps them through the one table.
func TestErrorMappingEveryRoute(t *testing.T) {
	up := uploadLink(testUID, "md5", md5hex(nil), "chunkNum", "1", "num", "1", "size", "0").Encode()
	dl := downloadLink(testUID, "a.jpg", "1", "image", "1.jpg", time.Now(), time.Hour).Encode()
	node := map[string]string{HeaderNodeAuth: testNodeToken}
	routes := []struct {
		name   string
		method string
		path   string
		body   string
		header map[string]string
		set    func(s *mockStorage, err error)
	}{
		{"resume", http.MethodPost, Prefix + "/resume", `{"data":[{"md5":"0123456789abcdef0123456789abcdef","path":"a.jpg"}]}`, nil,
			func(s *mockStorage, err error) {
				s.ResumeFn = func(context.Context, []ResumeItem) ([]osprey.UID, error) { return nil, err }
			}},
		{"checkpoint", http.MethodGet, Prefix + "/checkpoint?uid=7", "", nil,
			func(s *mockStorage, err error) {
				s.CheckpointFn = func(context.Context, osprey.UID) ([]uint32, error) { return nil, err }
			}},
		{"link upload create", http.MethodPost, Prefix + "/link/upload", `{"filePath":["a.jpg"]}`, nil,
			func(s *mockStorage, err error) {
				s.CreateFilesFn = func(context.Context, []NewFile) ([]osprey.UID, error) { return nil, err }
			}},
		{"link upload secret", http.MethodPost, Prefix + "/link/upload", `{"filePath":["a.jpg"]}`, nil,
			func(s *mockStorage, err error) { s.LinkSecretFn = func() ([]byte, error) { return nil, err } }},
		{"link download secret", http.MethodPost, Prefix + "/link/download", `{"uid":["7"]}`, nil,
			func(s *mockStorage, err error) { s.LinkSecretFn = func() ([]byte, error) { return nil, err } }},
		{"proxy", http.MethodGet, Prefix + "/proxy?uid=7", "", nil,
			func(s *mockStorage, err error) {
				s.LocateFn = func(context.Context, osprey.UID) ([]string, error) { return nil, err }
			}},
		{"object", http.MethodGet, Prefix + "/object?uid=7", "", nil,
			func(s *mockStorage, err error) {
				s.StatFn = func(context.Context, osprey.UID) (FileInfo, error) { return FileInfo{}, err }
			}},
		{"delete", http.MethodDelete, Prefix + "/object?uid=7", "", nil,
			func(s *mockStorage, err error) { s.DeleteFn = func(context.Context, osprey.UID) error { return err } }},
		{"objects", http.MethodGet, Prefix + "/objects", "", nil,
			func(s *mockStorage, err error) {
				s.ListFn = func(context.Context, osprey.UID, int) ([]FileInfo, osprey.UID, error) { return nil, 0, err }
			}},
		{"upload", http.MethodPut, Prefix + "/upload?" + up, "", nil,
			func(s *mockStorage, err error) {
				s.UploadFn = func(context.Context, osprey.UID, io.Reader, string) (FileInfo, error) { return FileInfo{}, err }
			}},
		{"upload secret", http.MethodPut, Prefix + "/upload?" + up, "", nil,
			func(s *mockStorage, err error) { s.LinkSecretFn = func() ([]byte, error) { return nil, err } }},
		{"multi", http.MethodPut, Prefix + "/upload/multi?" + up, "", nil,
			func(s *mockStorage, err error) {
				s.UploadChunkFn = func(context.Context, osprey.UID, uint32, io.Reader, int64, string) error { return err }
			}},
		{"merge", http.MethodPut, Prefix + "/upload/merge?" + up, "", nil,
			func(s *mockStorage, err error) {
				s.MergeFn = func(context.Context, osprey.UID, uint32, int64, string) (FileInfo, error) { return FileInfo{}, err }
			}},
		{"download open", http.MethodGet, Prefix + "/download?" + dl, "", nil,
			func(s *mockStorage, err error) {
				s.OpenFn = func(context.Context, osprey.UID) (*Object, error) { return nil, err }
			}},
		{"download secret", http.MethodGet, Prefix + "/download?" + dl, "", nil,
			func(s *mockStorage, err error) { s.LinkSecretFn = func() ([]byte, error) { return nil, err } }},
		{"download reader", http.MethodGet, Prefix + "/download?" + dl, "", nil,
			func(s *mockStorage, err error) {
				s.OpenFn = func(context.Context, osprey.UID) (*Object, error) {
					return &Object{FileInfo: FileInfo{UID: testUID, Size: 3, MD5: md5hex([]byte("abc"))},
						Reader: func(context.Context, int64, int64) (io.ReadCloser, error) { return nil, err }}, nil
				}
			}},
		{"chunk put", http.MethodPut, "/internal/v1/chunks/1/2/0", "abc", node,
			func(s *mockStorage, err error) {
				s.PutLocalChunkFn = func(context.Context, ChunkRef, io.Reader, int64, CopyOrigin) (uint64, error) { return 0, err }
			}},
		{"chunk get", http.MethodGet, "/internal/v1/chunks/1/2/0", "", node,
			func(s *mockStorage, err error) {
				s.GetLocalChunkFn = func(context.Context, ChunkRef, int64, int64) (io.ReadCloser, int64, error) { return nil, 0, err }
			}},
		{"chunk delete", http.MethodDelete, "/internal/v1/chunks/1/2/0", "", node,
			func(s *mockStorage, err error) {
				s.DeleteLocalChunkFn = func(context.Context, ChunkRef, CopyOrigin, uint64) error { return err }
			}},
	}
	kinds := []struct {
		err    error
		status int
	}{
		{osprey.ErrNotFound, 404},
		{osprey.ErrConflict, 409},
		{osprey.ErrUnavailable, 503},
		{osprey.ErrIndeterminate, 504},
		{osprey.ErrBackend, 502},
		{errors.New("leaky internal detail"), 500},
	}
	for _, rt := range routes {
		for _, k := range kinds {
			t.Run(fmt.Sprintf("%s/%d", rt.name, k.status), func(t *testing.T) {
				f := mustFixture(t)
				rt.set(f.storage, fmt.Errorf("wrapped: %w", k.err))
				rec, env := f.check(t, apiCase{method: rt.method, path: rt.path, body: rt.body, header: rt.header, wantCode: k.status})
				if k.status == 500 && (env.Message != "internal error" || strings.Contains(rec.Body.String(), "leaky")) {
					t.Errorf("500 leaks: %s", rec.Body.String())
				}
				if rec.Header().Get("Content-Range") != "" || rec.Header().Get("Content-Length") != "" && rec.Header().Get("Content-Length") != fmt.Sprint(rec.Body.Len()) {
					t.Errorf("error reply with stale download headers: %v", rec.Header())
				}
			})
		}
	}
}

func TestWriteErrorClientGone(t *testing.T) {
	f := mustFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	f.storage.StatFn = func(context.Context, osprey.UID) (FileInfo, error) {
		cancel() // the client hangs up while the call runs
		return FileInfo{}, fmt.Errorf("stat: %w", context.Canceled)
	}
	r := newRequest(http.MethodGet, Prefix+"/object?uid=7", nil, nil).WithContext(ctx)
	rec := f.serve(r)
	if rec.Body.Len() != 0 {
		t.Errorf("wrote %q to a client that went away", rec.Body.String())
	}
	if strings.Contains(f.logs.String(), "level=ERROR") {
		t.Errorf("client going away logged as an error: %s", f.logs.String())
	}
}

func TestWriteErrorCanceledWhileClientStays(t *testing.T) {
	// context.Canceled from below while the client is still there is a bug
	// somewhere: 500, not silence.
	f := mustFixture(t)
	f.storage.StatFn = func(context.Context, osprey.UID) (FileInfo, error) { return FileInfo{}, context.Canceled }
	f.check(t, apiCase{method: http.MethodGet, path: Prefix + "/object?uid=7", wantCode: 500, wantBody: "internal error"})
}

func TestErrorFromStatus(t *testing.T) {
	for _, m := range errorMapping {
		t.Run(http.StatusText(m.status), func(t *testing.T) {
			err := ErrorFromStatus(m.status, "remote says no")
			st, code := statusOf(err)
			if st != m.status || code != m.code {
				t.Errorf("ErrorFromStatus(%d) maps back to (%d, %d), want (%d, %d)", m.status, st, code, m.status, m.code)
			}
			if !strings.Contains(err.Error(), "remote says no") {
				t.Errorf("message lost: %v", err)
			}
		})
	}
	t.Run("503 is unavailable", func(t *testing.T) {
		if err := ErrorFromStatus(503, "x"); !errors.Is(err, osprey.ErrUnavailable) {
			t.Errorf("ErrorFromStatus(503) = %v, want ErrUnavailable", err)
		}
	})
	t.Run("unmapped", func(t *testing.T) {
		err := ErrorFromStatus(418, "teapot")
		for _, m := range errorMapping {
			if errors.Is(err, m.kind) {
				t.Errorf("418 maps to %v", m.kind)
			}
		}
		if st, _ := statusOf(err); st != 500 || !strings.Contains(err.Error(), "418") {
			t.Errorf("ErrorFromStatus(418) = %v (status %d)", err, st)
		}
	})
}

func TestDecodeJSON(t *testing.T) {
	type v struct {
		A int `json:"a"`
	}
	tests := []struct {
		name   string
		body   string
		limit  int64
		want   error
		wantIn string
	}{
		{"ok", `{"a":1}`, 100, nil, ""},
		{"ok with whitespace", " {\"a\":1}\n\n", 100, nil, ""},
		{"empty", ``, 100, osprey.ErrInvalid, "malformed JSON"},
		{"truncated", `{"a":`, 100, osprey.ErrInvalid, "malformed JSON"},
		{"wrong type", `{"a":"x"}`, 100, osprey.ErrInvalid, "malformed JSON"},
		{"trailing object", `{"a":1}{"a":2}`, 100, osprey.ErrInvalid, "trailing data"},
		{"too large", `{"a":1111111111}`, 5, osprey.ErrTooLarge, "larger than 5 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", bytes.NewBufferString(tt.body))
			var got v
			err := decodeJSON(r, tt.limit, &got)
			if tt.want == nil {
				if err != nil || got.A != 1 {
					t.Fatalf("decodeJSON = %v, %+v", err, got)
				}
				return
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.wantIn) {
				t.Fatalf("decodeJSON = %v, want %v containing %q", err, tt.want, tt.wantIn)
			}
		})
	}
}

// TestWriteErrorHangUpMidBody: an error that follows from the client going
// away (its request context is done: a hang-up mid-body shows as an
// unexpected EOF or a reset, not as context.Canceled) is not a server
// fault and is not logged at error level.
func TestWriteErrorHangUpMidBody(t *testing.T) {
	for _, err := range []error{io.ErrUnexpectedEOF, fmt.Errorf("read: %w", errors.New("connection reset by peer")), context.Canceled} {
		var logs bytes.Buffer
		s := &Server{log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // the client went away
		r := httptest.NewRequest(http.MethodPut, Prefix+"/upload", nil).WithContext(ctx)
		s.writeError(httptest.NewRecorder(), r, fmt.Errorf("upload: %w", err))
		if strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "client gone") {
			t.Errorf("%v after the client left: logged %q, want only a debug line", err, logs.String())
		}
	}
	// The same error while the client is still there is a 500, logged.
	var logs bytes.Buffer
	s := &Server{log: slog.New(slog.NewTextHandler(&logs, nil))}
	rec := httptest.NewRecorder()
	s.writeError(rec, httptest.NewRequest(http.MethodPut, Prefix+"/upload", nil), io.ErrUnexpectedEOF)
	if rec.Code != http.StatusInternalServerError || !strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("client present: status %d, logs %q; want 500 logged at error level", rec.Code, logs.String())
	}
}
