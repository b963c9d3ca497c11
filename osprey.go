// Package osprey holds the few types shared by three or more of the
// project's packages: identifiers and the bucket classification of SPEC §5.
package osprey

import (
	"fmt"
	"path"
	"strconv"
	"strings"
)

// NodeID identifies a node in the cluster. It is chosen once (flag or
// generated) and persisted in the node's data directory.
type NodeID string

// UID is a file's 64-bit snowflake identifier. It travels as a decimal
// string in JSON and query strings (SPEC §1).
type UID uint64

// String returns the decimal form of u.
func (u UID) String() string { return strconv.FormatUint(uint64(u), 10) }

// ParseUID parses the decimal form of a uid. Zero is never a valid uid.
func ParseUID(s string) (UID, error) {
	v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("osprey: invalid uid %q", s)
	}
	return UID(v), nil
}

// MarshalText encodes u as a decimal string so JSON carries uids as strings.
func (u UID) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

// UnmarshalText decodes a decimal uid.
func (u *UID) UnmarshalText(b []byte) error {
	v, err := ParseUID(string(b))
	if err != nil {
		return err
	}
	*u = v
	return nil
}

// Buckets lists osproxy's six buckets in a fixed order.
var Buckets = []string{"image", "video", "audio", "doc", "archive", "unknown"}

var bucketByExt = map[string]string{
	"jpg": "image", "jpeg": "image", "png": "image", "gif": "image", "bmp": "image", "webp": "image",
	"mp4": "video", "avi": "video", "wmv": "video", "mpeg": "video", "mov": "video", "mkv": "video",
	"mp3": "audio", "wav": "audio", "flac": "audio",
	"pdf": "doc", "doc": "doc", "docx": "doc", "ppt": "doc", "pptx": "doc", "xls": "doc", "xlsx": "doc",
	"zip": "archive", "rar": "archive", "tar": "archive", "gz": "archive", "7z": "archive",
}

// ErrNoExtension is returned by BucketFor when a path has no extension.
var ErrNoExtension = fmt.Errorf("osprey: path has no extension")

// BucketFor classifies a file path by its extension (case-insensitive) into
// one of Buckets. A path without an extension is an error: the extension is
// what picks the bucket (SPEC §3).
func BucketFor(p string) (string, error) {
	ext := strings.TrimPrefix(path.Ext(path.Base(strings.ReplaceAll(p, "\\", "/"))), ".")
	if ext == "" {
		return "", fmt.Errorf("%w: %q", ErrNoExtension, p)
	}
	if b, ok := bucketByExt[strings.ToLower(ext)]; ok {
		return b, nil
	}
	return "unknown", nil
}
