package erasure

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Policy
		wantErr error
	}{
		{name: "2+1", in: "ec:2+1", want: Policy{K: 2, M: 1}},
		{name: "4+2", in: "ec:4+2", want: Policy{K: 4, M: 2}},
		{name: "spaces trimmed", in: " ec:3+2\n", want: Policy{K: 3, M: 2}},
		{name: "largest", in: "ec:200+56", want: Policy{K: 200, M: 56}},
		{name: "replicas", in: "replicas:3", wantErr: ErrNotEC},
		{name: "replicas without count", in: "replicas:", wantErr: ErrNotEC},
		{name: "empty", in: "", wantErr: ErrInvalidPolicy},
		{name: "no prefix", in: "2+1", wantErr: ErrInvalidPolicy},
		{name: "other scheme", in: "rs:2+1", wantErr: ErrInvalidPolicy},
		{name: "upper case", in: "EC:2+1", wantErr: ErrInvalidPolicy},
		{name: "no plus", in: "ec:21", wantErr: ErrInvalidPolicy},
		{name: "no M", in: "ec:2+", wantErr: ErrInvalidPolicy},
		{name: "no K", in: "ec:+1", wantErr: ErrInvalidPolicy},
		{name: "signed", in: "ec:+2+1", wantErr: ErrInvalidPolicy},
		{name: "negative", in: "ec:-2+1", wantErr: ErrInvalidPolicy},
		{name: "two plus", in: "ec:2+1+1", wantErr: ErrInvalidPolicy},
		{name: "inner space", in: "ec: 2+1", wantErr: ErrInvalidPolicy},
		{name: "huge", in: "ec:99999999999999999999+1", wantErr: ErrInvalidPolicy},
		{name: "K zero", in: "ec:0+1", wantErr: ErrInvalidPolicy},
		{name: "M zero", in: "ec:2+0", wantErr: ErrInvalidPolicy},
		{name: "too many shards", in: "ec:200+57", wantErr: ErrInvalidPolicy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePolicy(tt.in)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("ParsePolicy(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("ParsePolicy(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if err == nil {
				if back, err := ParsePolicy(got.String()); err != nil || back != got {
					t.Fatalf("ParsePolicy(%q) = %+v, %v; want a round trip", got.String(), back, err)
				}
			}
		})
	}
}

func TestPolicyString(t *testing.T) {
	if got := (Policy{K: 4, M: 2}).String(); got != "ec:4+2" {
		t.Fatalf("String() = %q, want ec:4+2", got)
	}
}

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		name     string
		p        Policy
		members  int
		wantErr  bool
		wantText []string // substrings the message must contain
	}{
		{name: "2+1 on 3", p: Policy{2, 1}, members: 3},
		{name: "2+1 on 5", p: Policy{2, 1}, members: 5},
		{name: "4+2 on 6", p: Policy{4, 2}, members: 6},
		{name: "4+2 on 3", p: Policy{4, 2}, members: 3, wantErr: true, wantText: []string{"ec:4+2", "6 nodes", "has 3"}},
		{name: "2+1 on 1", p: Policy{2, 1}, members: 1, wantErr: true, wantText: []string{"3 nodes", "has 1"}},
		{name: "K zero", p: Policy{0, 1}, members: 3, wantErr: true, wantText: []string{"K=0"}},
		{name: "M zero", p: Policy{2, 0}, members: 3, wantErr: true, wantText: []string{"M=0"}},
		{name: "negative", p: Policy{-1, 2}, members: 3, wantErr: true, wantText: []string{"K=-1"}},
		{name: "257 shards", p: Policy{250, 7}, members: 1000, wantErr: true, wantText: []string{"K+M=257", "256"}},
		{name: "256 shards", p: Policy{250, 6}, members: 256},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate(tt.members)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate(%d) = %v, want error %v", tt.members, err, tt.wantErr)
			}
			if err == nil {
				return
			}
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("Validate(%d) = %v, want ErrInvalidPolicy", tt.members, err)
			}
			for _, s := range tt.wantText {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Validate(%d) = %q, want it to mention %q", tt.members, err, s)
				}
			}
		})
	}
}

func TestShardSize(t *testing.T) {
	const B = BlockSize
	tests := []struct {
		name        string
		p           Policy
		n           int64
		wantSize    int64
		wantStripes int
	}{
		{"empty", Policy{2, 1}, 0, 0, 0},
		{"one byte", Policy{2, 1}, 1, 1, 1},
		{"one byte 4+2", Policy{4, 2}, 1, 1, 1},
		{"odd small", Policy{2, 1}, 7, 4, 1},
		{"stripe-1", Policy{2, 1}, 2*B - 1, B, 1},
		{"stripe", Policy{2, 1}, 2 * B, B, 1},
		{"stripe+1", Policy{2, 1}, 2*B + 1, B + 1, 2},
		{"3+2 several", Policy{3, 2}, 3*3*B + 10, 3*B + 4, 4},
		{"1+1 is a copy", Policy{1, 1}, 5*B + 3, 5*B + 3, 6},
		{"8 MiB 4+2", Policy{4, 2}, 8 << 20, 2 << 20, 32},
		{"doc.go example", Policy{2, 1}, 300000, 150000, 3},
		{"invalid policy", Policy{0, 1}, 100, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ShardSize(tt.p, tt.n); got != tt.wantSize {
				t.Errorf("ShardSize(%v, %d) = %d, want %d", tt.p, tt.n, got, tt.wantSize)
			}
			if got := Stripes(tt.p, tt.n); got != tt.wantStripes {
				t.Errorf("Stripes(%v, %d) = %d, want %d", tt.p, tt.n, got, tt.wantStripes)
			}
		})
	}
}
