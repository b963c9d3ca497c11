package objio

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/osprey-storage/osprey/backend"
)

// MaxKeyLen is the longest object key accepted, in bytes. It is S3's limit.
const MaxKeyLen = 1024

// MaxBucketLen is the longest logical bucket name accepted. It leaves room
// for a provider-side prefix within S3's 63-character limit.
const MaxBucketLen = 40

// EmptyMD5 is the lowercase hex md5 of zero bytes.
var EmptyMD5 = hex.EncodeToString(md5.New().Sum(nil))

// ValidateBucket reports whether name is an acceptable logical bucket name:
// 1 to MaxBucketLen characters of [a-z0-9-], starting and ending with a
// letter or digit. It returns an error wrapping backend.ErrInvalid if not.
func ValidateBucket(name string) error {
	if name == "" || len(name) > MaxBucketLen {
		return fmt.Errorf("%w: bucket name %q must be 1-%d characters", backend.ErrInvalid, name, MaxBucketLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '-' || i == 0 || i == len(name)-1) {
			return fmt.Errorf("%w: bucket name %q must be lowercase letters, digits and inner '-'", backend.ErrInvalid, name)
		}
	}
	return nil
}

// ValidateKey reports whether key is an acceptable object key. Keys are
// '/'-separated paths of valid UTF-8, at most MaxKeyLen bytes, with no
// control characters or backslashes, no leading or trailing '/', no empty
// segment and no "." or ".." segment. The rules are the intersection of
// what every backend can store under the same name (a key is a file path on
// the local backend), so a key accepted by one backend is accepted by all.
// It returns an error wrapping backend.ErrInvalid if not.
func ValidateKey(key string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: key %q: %s", backend.ErrInvalid, key, why)
	}
	switch {
	case key == "":
		return bad("empty")
	case len(key) > MaxKeyLen:
		return bad(fmt.Sprintf("longer than %d bytes", MaxKeyLen))
	case !utf8.ValidString(key):
		return bad("not valid UTF-8")
	case strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/"):
		return bad("leading or trailing '/'")
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return bad("control character or backslash")
		}
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch seg {
		case "":
			return bad("empty path segment")
		case ".", "..":
			return bad("'.' or '..' path segment")
		}
	}
	return nil
}

// ParseMD5 normalises an expected md5 given as hex (either case) to
// lowercase. The empty string means "not given" and is returned as is.
// Anything else that is not 32 hex digits is an error wrapping
// backend.ErrInvalid.
func ParseMD5(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	s = strings.ToLower(s)
	if len(s) != 2*md5.Size {
		return "", fmt.Errorf("%w: md5 %q is not 32 hex digits", backend.ErrInvalid, s)
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", fmt.Errorf("%w: md5 %q is not 32 hex digits", backend.ErrInvalid, s)
	}
	return s, nil
}

// ValidateRange checks Get's offset and length against the object size:
// offset must be in [0, size]; offset == size yields an empty read. A
// negative length means "to the end". It returns the number of bytes the
// read will produce (clamped to the end of the object), or an error wrapping
// backend.ErrInvalid.
func ValidateRange(offset, length, size int64) (int64, error) {
	if offset < 0 || offset > size {
		return 0, fmt.Errorf("%w: offset %d outside object of %d bytes", backend.ErrInvalid, offset, size)
	}
	n := size - offset
	if length >= 0 && length < n {
		n = length
	}
	return n, nil
}
