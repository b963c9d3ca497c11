// Package s3 is the backend.Backend for S3-compatible object stores (MinIO,
// AWS S3, Ceph RGW, ...), built on minio-go v7.
//
// Each logical bucket maps to the physical bucket Config.BucketPrefix +
// name; New checks that every resulting name is a legal S3 bucket name.
//
// # Streaming and memory
//
// Put streams the body with a known size. Objects up to Config.PartSize go
// out as one PUT and are streamed without buffering; larger ones use a
// multipart upload in which minio-go fills one PartSize buffer at a time and
// uploads parts sequentially (the body is deliberately not an io.ReaderAt,
// so the SDK's parallel uploader is never used). The body is read ahead by
// 2 × 1 MiB on another goroutine so hashing overlaps sending. Memory per
// concurrent Put is therefore at most one PartSize buffer (16 MiB by
// default) plus 2 MiB plus small per-request state. Get streams the HTTP
// response body.
//
// # md5 verification and atomicity
//
// The body passes through objio.VerifyingReader, which hashes it on the way
// to the SDK. When the last byte has been read the md5 is compared with
// PutOptions.MD5 *before* those final bytes are handed over; on a mismatch
// the reader returns an error instead. A single PUT is then cut off mid-body
// (the server never receives a complete request and stores nothing), and a
// multipart upload fails while reading its last part, so minio-go aborts it
// and CompleteMultipartUpload is never sent. A body that ends early, fails,
// or whose context is cancelled is cut off the same way. Since S3 makes an
// object visible only when a PUT or CompleteMultipartUpload succeeds, and
// that replacement is atomic, readers see the old object or the complete,
// verified new one — never a partial or unverified one — without the
// temporary key and server-side copy (a second full write) that verifying
// after the upload would need.
//
// The expected md5 is stored as user metadata (x-amz-meta-osprey-md5), so
// Stat returns it. S3 metadata is sent before the body, so an md5 that was
// not given to Put cannot be stored; Put still returns the md5 it computed,
// but Stat then reports MD5 "" (the ETag of a multipart object is not an
// md5, so it is not used).
//
// When a multipart upload fails for any of these reasons (or the caller's
// context is cancelled), minio-go aborts it on a context detached from the
// caller's (bounded to one minute), so no orphaned parts are left on the
// server; TestMultipart checks this against MinIO.
//
// # Errors
//
// Provider errors are translated at this edge: NoSuchKey/NoSuchBucket →
// backend.ErrNotFound; AccessDenied, InvalidAccessKeyId,
// SignatureDoesNotMatch and other credential errors → backend.ErrAuth;
// InvalidRange and other rejected arguments → backend.ErrInvalid; BadDigest
// and friends → backend.ErrChecksum; network errors and 5xx →
// backend.ErrUnavailable. Context errors keep wrapping context.Canceled or
// context.DeadlineExceeded. No minio-go type is wrapped in returned errors.
// Credentials are never logged.
package s3
