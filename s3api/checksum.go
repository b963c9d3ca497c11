package s3api

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"hash/crc32"
	"net/http"
	"strings"

	"github.com/minio/crc64nvme"
)

// checksumAlgorithms are the S3 additional checksums, by header/trailer
// name. Values travel as base64 of the big-endian digest.
var checksumAlgorithms = map[string]func() hash.Hash{
	"x-amz-checksum-crc32":     func() hash.Hash { return crc32.NewIEEE() },
	"x-amz-checksum-crc32c":    func() hash.Hash { return crc32.New(crc32.MakeTable(crc32.Castagnoli)) },
	"x-amz-checksum-crc64nvme": func() hash.Hash { return crc64nvme.New() },
	"x-amz-checksum-sha1":      sha1.New,
	"x-amz-checksum-sha256":    sha256.New,
}

// checksum is one additional checksum being computed over a body.
type checksum struct {
	name string    // e.g. "x-amz-checksum-crc32"
	h    hash.Hash // running digest
	want string    // expected base64 value; for trailers filled in late
}

func (c *checksum) matches() bool {
	return base64.StdEncoding.EncodeToString(c.h.Sum(nil)) == strings.TrimSpace(c.want)
}

// headerChecksum returns the checksum declared in a request header, if any.
func headerChecksum(hd http.Header) *checksum {
	for name, mk := range checksumAlgorithms {
		if v := hd.Get(name); v != "" {
			return &checksum{name: name, h: mk(), want: v}
		}
	}
	return nil
}

// trailerChecksum returns the checksum announced by x-amz-trailer, if any;
// its expected value arrives in the aws-chunked trailer.
func trailerChecksum(hd http.Header) (*checksum, error) {
	for _, v := range hd.Values("X-Amz-Trailer") {
		for _, name := range strings.Split(v, ",") {
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "" {
				continue
			}
			mk, ok := checksumAlgorithms[name]
			if !ok {
				return nil, s3Err("InvalidRequest", "Unsupported trailer "+name+".")
			}
			return &checksum{name: name, h: mk()}, nil
		}
	}
	return nil, nil
}
