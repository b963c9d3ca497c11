// Package oss is the Aliyun OSS backend, built on aliyun-oss-go-sdk.
//
// Each logical bucket ("image", "video", ...) maps to the OSS bucket
// BucketPrefix+name; OSS bucket names are global, so give every deployment
// its own prefix. Configuration, as it appears in the node's YAML file:
//
//	backend: oss
//	oss:
//	  endpoint: oss-cn-beijing.aliyuncs.com   # https:// is assumed
//	  access_key_id: LTAI5t...
//	  access_key_secret: ...                   # better: OSPREY_OSS_ACCESS_KEY_SECRET
//	  bucket_prefix: "acme-osprey-"
//	  part_size: 16777216                      # optional, 100 KiB .. 5 GiB
//	  connect_timeout: 10s                     # optional
//	  response_header_timeout: 60s             # optional
//	  io_timeout: 60s                          # optional, stalled transfers fail
//
// # Writes
//
// Put streams its body with memory bounded by PartSize:
//
//   - Up to PartSize bytes: the body is read into one buffer, its md5 is
//     computed and compared with PutOptions.MD5, and only then is a single
//     PutObject sent, with Content-MD5 (OSS verifies the bytes) and
//     x-oss-meta-md5.
//   - Larger: InitiateMultipartUpload (with x-oss-meta-md5 when the md5 is
//     given), then one UploadPart per PartSize buffer, each with
//     Content-MD5, then the md5 of the whole body is checked and
//     CompleteMultipartUpload makes the object visible atomically. Any
//     failure before that — short body, reader error, md5 mismatch,
//     cancelled context, service error — sends AbortMultipartUpload (with
//     a fresh 30-second context), so nothing becomes visible and a previous
//     object under the key is untouched. When the md5 was not given, it is
//     recorded after completion by copying the object onto itself with
//     replaced metadata, conditional on the completed ETag (objects up to
//     1 GiB, the CopyObject limit; larger ones report no md5 in Stat).
//
// # Reads
//
// Get of a whole object sends no Range header and checks the body against
// the x-oss-hash-crc64ecma OSS reports (backend.ErrChecksum on mismatch).
// Ranged reads send "x-oss-range-behavior: standard", without which OSS
// answers an unsatisfiable range with the whole object. offset == size is
// an empty read; beyond it is backend.ErrInvalid. A body cut short fails
// with backend.ErrUnavailable. Stat reads x-oss-meta-md5, or the ETag when
// it is a plain md5.
//
// # Errors
//
// SDK errors never leave the package: OSS error codes and HTTP statuses
// map to the backend sentinels (NoSuchKey, NoSuchBucket → ErrNotFound;
// AccessDenied, InvalidAccessKeyId, SignatureDoesNotMatch,
// RequestTimeTooSkewed → ErrAuth; InvalidRange, InvalidArgument, ... →
// ErrInvalid; 5xx, refused or dropped connections, timeouts →
// ErrUnavailable), keeping the code, message and request ID as text. A
// cancelled context is reported as context.Canceled.
//
// EnsureBucket creates the bucket; when OSS answers BucketAlreadyExists it
// reads the bucket's info, so a bucket we own is accepted and a name owned
// by another account fails with ErrAuth. Check lists at most one bucket
// (it needs oss:ListBuckets).
//
// The access key secret is never logged (Config implements slog.LogValuer).
// Tests run against ossfake, an in-memory OSS that verifies signatures.
package oss
