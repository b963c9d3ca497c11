// Package ossfake is an in-memory, protocol-faithful Aliyun OSS endpoint
// for tests. It listens on a loopback httptest server and speaks the wire
// protocol the unmodified aliyun-oss-go-sdk uses, so a backend under test
// exercises its real SDK calls, signing and error parsing.
//
// # What the fake checks
//
// Authentication (every request):
//   - Signature version 1, "Authorization: OSS <AccessKeyId>:<Signature>",
//     recomputed from the request as received: HMAC-SHA1 over
//     VERB, Content-MD5, Content-Type, Date, the canonicalized x-oss-*
//     headers (lower-cased, sorted, first value) and the canonicalized
//     resource ("/", "/<bucket>/" or "/<bucket>/<key>" plus the sorted
//     signed sub-resources such as ?uploads, ?partNumber=&uploadId=,
//     ?bucketInfo, ?objectMeta). The list of sub-resources is the
//     service's; other query parameters are not signed.
//   - V1 presigned URLs (OSSAccessKeyId, Expires, Signature), including
//     expiry.
//   - Unknown AccessKeyId → 403 InvalidAccessKeyId; wrong signature → 403
//     SignatureDoesNotMatch with StringToSign, StringToSignBytes and
//     SignatureProvided in the body, as the service sends them; missing or
//     unparsable Date → 403 AccessDenied; Date more than MaxClockSkew (15
//     minutes) away → 403 RequestTimeTooSkewed; no credentials at all →
//     403 AccessDenied. Signature versions 2 and 4 are refused with 400
//     InvalidArgument (not implemented).
//
// Addressing: a Host of "<bucket>.<Domain>" is virtual-hosted; any other
// host (the listener's IP address, which is what the SDK produces for an
// IP endpoint) is path-style. DialContext lets a client use virtual-hosted
// names that resolve nowhere.
//
// Operations and their checks:
//   - ListBuckets (GET /): only the caller's buckets; prefix, marker,
//     max-keys.
//   - PutBucket: bucket naming rules (3-63 of [a-z0-9-], no leading or
//     trailing '-') → 400 InvalidBucketName; an existing bucket → 409
//     BucketAlreadyExists whoever owns it; optional
//     CreateBucketConfiguration body must be well-formed XML.
//   - GetBucketInfo (?bucketInfo), HeadBucket, DeleteBucket (409
//     BucketNotEmpty while objects or uploads remain).
//   - Buckets belong to the AccessKeyId that created them; any other
//     caller gets 403 AccessDenied. Missing bucket → 404 NoSuchBucket.
//   - PutObject: key rules (≤ 1023 bytes, UTF-8, no leading '/' or '\')
//     → 400 InvalidObjectName; Content-MD5, when sent, must match the body
//     (400 InvalidDigest); stores Content-Type and x-oss-meta-* headers;
//     answers ETag (upper-case hex md5 in quotes), Content-MD5 and
//     x-oss-hash-crc64ecma (which the SDK verifies). Replacement is atomic.
//   - GetObject / HeadObject / GetObjectMeta (?objectMeta): 404 NoSuchKey;
//     user metadata, ETag, Last-Modified, x-oss-object-type,
//     x-oss-hash-crc64ecma of the whole object. Range: one byte range
//     (a-b, a-, -n) → 206 with Content-Range; an unsatisfiable range is
//     ignored (200, whole object) unless "x-oss-range-behavior: standard"
//     is sent, then 416 InvalidRange, exactly as OSS behaves; malformed
//     and multi-range headers are ignored. If-Match → 412.
//   - DeleteObject: 204 whether or not the key exists.
//   - CopyObject (x-oss-copy-source): metadata directive COPY/REPLACE,
//     x-oss-copy-source-if-match (412 PreconditionFailed) and
//     -if-none-match; copying onto itself requires REPLACE.
//   - InitiateMultipartUpload (?uploads) records Content-Type and user
//     metadata; UploadPart (?partNumber=&uploadId=) checks the part number
//     (1..MaxPartNumber), the upload ID and its key (404 NoSuchUpload) and
//     Content-MD5; CompleteMultipartUpload (?uploadId=) requires a
//     well-formed, non-empty part list (400 MalformedXML), strictly
//     ascending part numbers (400 InvalidPartOrder), every listed part
//     uploaded with the listed ETag (400 InvalidPart), and every part but
//     the last at least MinPartSize (100 KiB, 400 EntityTooSmall); the
//     object appears atomically with ETag "<md5 of part md5s>-<n>" and
//     unlisted parts are discarded. AbortMultipartUpload (DELETE
//     ?uploadId=) → 204, or 404 NoSuchUpload.
//
// Errors use the service's XML body (Code, Message, RequestId, HostId and
// code-specific elements) with an x-oss-request-id header; for HEAD the
// body is empty and the XML is sent base64-encoded in x-oss-err, which is
// what the SDK decodes.
//
// Faults: SetFault installs a FaultFunc that can answer 503
// ServiceUnavailable or 500 InternalError, drop the connection without an
// answer, or send half of a GetObject body and then drop the connection
// or stall until the client gives up.
// Calls records every request (operation, bucket, key, part number, upload
// ID, status, error code) so tests can assert the multipart sequence.
//
// Not implemented (answered 501 NotImplemented): listing objects, ACLs,
// append, symlinks, versioning, UploadPartCopy, ListParts and every other
// sub-resource API; signature versions 2 and 4; STS security tokens.
// CopyObject has no size limit here (OSS limits it to 1 GB).
//
// # Layout
//
// The object store, the multipart bookkeeping, fault injection, the call
// log and the handlers both providers answer alike are the shared core in
// backend/internal/fakestore; this package gives it the OSS dialect: the
// signature check (auth.go), addressing and operation names, the error
// body and messages, naming rules, and the OSS wire form of GetObject,
// CopyObject and the bucket listing (handlers.go).
package ossfake
