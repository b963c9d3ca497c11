// Package cos is the Tencent Cloud COS backend, built on cos-go-sdk-v5.
//
// Each logical bucket ("image", "video", ...) maps to the COS bucket
// "<BucketPrefix><name>-<AppID>", addressed at its own host name
// "<bucket>-<appid>.cos.<region>.myqcloud.com". The SDK binds a client to
// one bucket URL, so the backend makes one client per bucket on first use
// (under a mutex, owned by the Backend; there is no global client), all
// sharing one HTTP transport. Configuration, as it appears in the node's
// YAML file:
//
//	backend: cos
//	cos:
//	  region: ap-nanjing
//	  app_id: "1250000000"
//	  secret_id: AKID...
//	  secret_key: ...                # better: OSPREY_COS_SECRET_KEY
//	  bucket_prefix: "osprey-"
//	  part_size: 16777216            # optional, 1 MiB .. 5 GiB
//	  max_attempts: 3                # optional, SDK retries on 5xx
//	  io_timeout: 60s                # optional, stalled transfers fail
//	  base_url: ""                   # optional, see Config.BaseURL
//
// COS limits a bucket's domain name to 60 characters; a logical bucket
// whose name would exceed it is refused with backend.ErrInvalid before any
// request is sent.
//
// # Writes
//
// Put streams its body with memory bounded by PartSize:
//
//   - Up to PartSize bytes: the body is read into one buffer, its md5 is
//     computed and compared with PutOptions.MD5, and only then is a single
//     PUT Object sent, with Content-MD5 (COS verifies the bytes) and
//     x-cos-meta-md5. The SDK also checks the x-cos-hash-crc64ecma COS
//     returns.
//   - Larger: InitiateMultipartUpload (with x-cos-meta-md5 when the md5 is
//     given), then one UploadPart per PartSize buffer, each with
//     Content-MD5, then the md5 of the whole body is checked and
//     CompleteMultipartUpload makes the object visible atomically. Any
//     failure before that — short body, reader error, md5 mismatch,
//     cancelled context, service error — sends AbortMultipartUpload (with
//     a fresh 30-second context), so nothing becomes visible and a previous
//     object under the key is untouched. When the md5 was not given, it is
//     recorded after completion by copying the object onto itself with
//     x-cos-metadata-directive: Replaced, conditional on the completed ETag
//     (objects up to 5 GiB, the copy limit, whose key has no '?', which
//     the SDK's copy misreads; the others report no md5).
//
// # Reads
//
// Get of a whole object checks the body against x-cos-hash-crc64ecma
// (backend.ErrChecksum on mismatch); ranged reads send a Range header, and
// COS answers an unsatisfiable one with 416. offset == size is an empty
// read; beyond it is backend.ErrInvalid. A body cut short fails with
// backend.ErrUnavailable. Stat reads x-cos-meta-md5, or the ETag when it
// is a plain md5.
//
// # Errors
//
// SDK errors never leave the package: *cos.ErrorResponse codes and HTTP
// statuses map to the backend sentinels (NoSuchKey, NoSuchBucket, 404 →
// ErrNotFound; AccessDenied, InvalidAccessKeyId, SignatureDoesNotMatch,
// 403 → ErrAuth; InvalidRange, InvalidArgument, ... → ErrInvalid; 5xx,
// transport errors → ErrUnavailable), keeping the code, message and
// request ID as text. A cancelled context is reported as context.Canceled.
//
// EnsureBucket creates the bucket; BucketAlreadyOwnedByYou is success, and
// on BucketAlreadyExists a HEAD Bucket decides between a bucket we can use
// and one owned by another account (ErrAuth). Check lists the account's
// buckets (GET Service).
//
// The secret key is never logged (Config implements slog.LogValuer).
// Tests run against cosfake, an in-memory COS that verifies signatures.
package cos
