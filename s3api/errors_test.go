package s3api

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

	"github.com/osprey-storage/osprey"
)

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		err    error
		code   string
		status int
	}{
		{ErrNoSuchBucket, "NoSuchBucket", 404},
		{fmt.Errorf("adapter: %w", ErrNoSuchBucket), "NoSuchBucket", 404},
		{ErrBucketExists, "BucketAlreadyOwnedByYou", 409},
		{ErrBucketNotEmpty, "BucketNotEmpty", 409},
		{ErrNoSuchKey, "NoSuchKey", 404},
		{ErrNoSuchUpload, "NoSuchUpload", 404},
		{ErrInvalidPart, "InvalidPart", 400},
		{ErrInvalidPartOrder, "InvalidPartOrder", 400},
		{ErrEntityTooSmall, "EntityTooSmall", 400},
		{ErrInvalidRange, "InvalidRange", 416},
		{ErrIncompleteBody, "IncompleteBody", 400},
		{fmt.Errorf("s3mem: read body: %w", ErrContentSHA256Mismatch), "XAmzContentSHA256Mismatch", 400},
		{ErrBadDigest, "BadDigest", 400},
		{ErrChecksumMismatch, "BadDigest", 400},
		{fmt.Errorf("chunk: %w", ErrSignatureMismatch), "SignatureDoesNotMatch", 403},
		{s3Err("KeyTooLongError"), "KeyTooLongError", 400},
		{s3Err("NotImplemented", "custom"), "NotImplemented", 501},
		{fmt.Errorf("wrapped: %w", s3Err("PreconditionFailed")), "PreconditionFailed", 412},
		{s3Err("NoSuchCode"), "InternalError", 500},
		{osprey.ErrNotFound, "NoSuchKey", 404},
		{osprey.ErrRange, "InvalidRange", 416},
		{errors.New("disk on fire"), "InternalError", 500},
		{context.DeadlineExceeded, "InternalError", 500},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			ae := toAPIError(tt.err)
			if ae.Code != tt.code || ae.Status != tt.status {
				t.Fatalf("got %s/%d, want %s/%d", ae.Code, ae.Status, tt.code, tt.status)
			}
		})
	}
	// Sentinels match the shared osprey kinds.
	for _, p := range []struct{ err, kind error }{
		{ErrNoSuchBucket, osprey.ErrNotFound}, {ErrNoSuchKey, osprey.ErrNotFound},
		{ErrBucketExists, osprey.ErrConflict}, {ErrSignatureMismatch, osprey.ErrForbidden},
	} {
		if !errors.Is(p.err, p.kind) {
			t.Errorf("%v does not wrap %v", p.err, p.kind)
		}
	}
}

func TestMultipartETag(t *testing.T) {
	// Two parts with md5s of "a" and "b".
	parts := []CompletePart{{1, "0cc175b9c0f1b6a831c399e269772661"}, {2, `"92eb5ffee6ae2fec3ad71c777531578f"`}}
	got, err := MultipartETag(parts)
	// md5(md5("a") || md5("b")) + "-2", computed independently.
	if err != nil || got != "96e024ba2074fe77e8e965ba43a704be-2" {
		t.Fatalf("got %q %v", got, err)
	}
	if _, err := MultipartETag([]CompletePart{{1, "zz"}}); !errors.Is(err, ErrInvalidPart) {
		t.Fatalf("bad etag: %v", err)
	}
}

// TestWriteErrorClientGone: what fails because the client left (a body
// cut short reads as an unexpected EOF) is logged at debug level, not as
// a 500; the same error with the client still there is one.
func TestWriteErrorClientGone(t *testing.T) {
	var logs bytes.Buffer
	h := &handler{log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := httptest.NewRequest(http.MethodPut, "/b/k", nil).WithContext(ctx)
	h.writeError(httptest.NewRecorder(), r, fmt.Errorf("put object: %w", io.ErrUnexpectedEOF))
	if strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "client gone") {
		t.Errorf("client gone: logged %q, want one debug line", logs.String())
	}
	logs.Reset()
	rec := httptest.NewRecorder()
	h.writeError(rec, httptest.NewRequest(http.MethodPut, "/b/k", nil), io.ErrUnexpectedEOF)
	if rec.Code != http.StatusInternalServerError || !strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("client present: %d, logged %q; want a 500 logged at error level", rec.Code, logs.String())
	}
}
