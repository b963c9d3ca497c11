package objio

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/osprey-storage/osprey/backend"
)

// recTarget is a PutTarget and MultipartUpload that records the calls it
// gets; failPart, if set, makes that part fail.
type recTarget struct {
	calls    []string
	stored   []byte
	failPart int
}

func (r *recTarget) PutSingle(_ context.Context, body []byte, raw [md5.Size]byte, sum string) error {
	if md5.Sum(body) != raw || md5hex(body) != sum {
		return errors.New("PutSingle: md5 does not describe the body")
	}
	r.calls = append(r.calls, "single")
	r.stored = append([]byte(nil), body...)
	return nil
}

func (r *recTarget) Initiate(_ context.Context, sum string) (MultipartUpload, error) {
	r.calls = append(r.calls, "initiate:"+sum)
	return r, nil
}

func (r *recTarget) UploadPart(_ context.Context, num int, p []byte, raw [md5.Size]byte) error {
	if md5.Sum(p) != raw {
		return errors.New("UploadPart: md5 does not describe the part")
	}
	r.calls = append(r.calls, fmt.Sprintf("part%d:%d", num, len(p)))
	if num == r.failPart {
		return backend.ErrUnavailable
	}
	r.stored = append(r.stored, p...)
	return nil
}

func (r *recTarget) Complete(context.Context) (string, error) {
	r.calls = append(r.calls, "complete")
	return `"etag-3"`, nil
}

func (r *recTarget) Abort(ctx context.Context) {
	if ctx.Err() != nil {
		r.calls = append(r.calls, "abort with a done context")
		return
	}
	r.calls = append(r.calls, "abort")
}

func (r *recTarget) RecordMD5(_ context.Context, sum, etag string, size int64) error {
	r.calls = append(r.calls, fmt.Sprintf("record:%s:%s:%d", sum, etag, size))
	return nil
}

func TestUploader(t *testing.T) {
	u := Uploader{Prefix: "prov", PartSize: 10, MaxParts: 100}
	data := []byte("twenty-five bytes of data")
	sum := md5hex(data)
	tests := []struct {
		name     string
		body     []byte
		size     int64
		want     string
		failPart int
		wantErr  error
		calls    string
	}{
		{"single", data[:10], 10, "", 0, nil, "single"},
		{"single md5 given", data[:10], 10, md5hex(data[:10]), 0, nil, "single"},
		{"single mismatch", data[:10], 10, sum, 0, backend.ErrChecksum, ""},
		{"single short", data[:9], 10, "", 0, backend.ErrChecksum, ""},
		{"multipart md5 given", data, 25, sum, 0, nil, "initiate:" + sum + ",part1:10,part2:10,part3:5,complete"},
		{"multipart md5 recorded", data, 25, "", 0, nil,
			"initiate:,part1:10,part2:10,part3:5,complete,record:" + sum + `:"etag-3":25`},
		{"multipart mismatch aborts", data, 25, md5hex([]byte("x")), 0, backend.ErrChecksum,
			"initiate:" + md5hex([]byte("x")) + ",part1:10,part2:10,part3:5,abort"},
		{"multipart short aborts", data[:24], 25, "", 0, backend.ErrChecksum, "initiate:,part1:10,part2:10,abort"},
		{"failed part aborts", data, 25, "", 2, backend.ErrUnavailable, "initiate:,part1:10,part2:10,abort"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := &recTarget{failPart: tt.failPart}
			got, err := u.Put(context.Background(), rt, bytes.NewReader(tt.body), tt.size, tt.want)
			if calls := strings.Join(rt.calls, ","); calls != tt.calls {
				t.Errorf("calls = %s, want %s", calls, tt.calls)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Put = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != md5hex(tt.body) || !bytes.Equal(rt.stored, tt.body) {
				t.Fatalf("Put = %q, %v; stored %q", got, err, rt.stored)
			}
		})
	}

	// A cancelled Put still aborts, with a context of its own.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rt := &recTarget{}
	if _, err := u.Put(ctx, rt, bytes.NewReader(data), 25, ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Put = %v", err)
	}
	if calls := strings.Join(rt.calls, ","); calls != "initiate:,abort" {
		t.Errorf("cancelled Put calls = %s", calls)
	}
}

func TestPartSizeFor(t *testing.T) {
	u := Uploader{PartSize: 8 << 20, MaxParts: 10000}
	for _, tt := range []struct{ size, want int64 }{
		{1, 8 << 20},
		{10000 * (8 << 20), 8 << 20},
		{10000*(8<<20) + 1, 9 << 20}, // the next whole MiB
		{5 << 40, 525 << 20},
	} {
		if got := u.PartSizeFor(tt.size); got != tt.want {
			t.Errorf("PartSizeFor(%d) = %d, want %d", tt.size, got, tt.want)
		}
	}
}

func TestGetArgs(t *testing.T) {
	tests := []struct {
		offset, length int64
		want           ReadRange
	}{
		{0, -1, ReadRange{Whole: true, ToEnd: true}},
		{0, math.MaxInt64, ReadRange{Last: math.MaxInt64 - 1}},
		{10, -1, ReadRange{ToEnd: true, Offset: 10}},
		{10, math.MaxInt64, ReadRange{ToEnd: true, Offset: 10}},
		{10, 5, ReadRange{Offset: 10, Last: 14}},
		{0, 1, ReadRange{Last: 0}},
		{7, 0, ReadRange{Empty: true}},
	}
	for _, tt := range tests {
		got, err := GetArgs("prov", "k", tt.offset, tt.length)
		if err != nil || got != tt.want {
			t.Errorf("GetArgs(%d, %d) = %+v, %v; want %+v", tt.offset, tt.length, got, err, tt.want)
		}
	}
	if _, err := GetArgs("prov", "k", -1, 5); !errors.Is(err, backend.ErrInvalid) {
		t.Errorf("negative offset: %v", err)
	}
	if _, err := GetArgs("prov", "", 0, 5); !errors.Is(err, backend.ErrInvalid) {
		t.Errorf("empty key: %v", err)
	}
	if _, err := PutArgs("prov", "k", "", -1); !errors.Is(err, backend.ErrInvalid) {
		t.Errorf("negative size: %v", err)
	}
}
