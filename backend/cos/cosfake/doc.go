// Package cosfake is an in-memory, protocol-faithful Tencent COS region
// for tests. It listens on a loopback httptest server and speaks the XML
// API wire protocol the unmodified cos-go-sdk-v5 uses, so a backend under
// test exercises its real SDK calls, signing, CRC checks and error
// parsing.
//
// # What the fake checks
//
// Authentication (every request), the COS "q-sign" scheme, recomputed from
// the request as received:
//
//	SignKey      = hex(HMAC-SHA1(SecretKey, q-key-time))
//	HttpString   = lower(method) \n decoded path \n HttpParameters \n HttpHeaders \n
//	StringToSign = "sha1" \n q-sign-time \n hex(SHA1(HttpString)) \n
//	Signature    = hex(HMAC-SHA1(SignKey, StringToSign))
//
// HttpParameters and HttpHeaders cover exactly the names listed in
// q-url-param-list and q-header-list, lower-cased and percent-encoded
// (all but RFC 3986 unreserved characters), sorted by name and then
// value, with the values the request actually carries (Host from the
// request line's Host header, Content-Length as sent). Headers and
// parameters not listed are not covered, as on the real service: changing
// an unsigned header does not break a signature, changing a signed one
// does. The Authorization header and presigned URLs (the same fields in
// the query string) are accepted.
//
// Refusals: no credentials → 403 AccessDenied; malformed Authorization →
// 403 AccessDenied; q-sign-algorithm other than sha1 → 400
// InvalidArgument; unknown SecretId → 403 InvalidAccessKeyId; q-sign-time
// already ended → 403 AccessDenied "Request has expired"; starting more
// than MaxClockSkew in the future → 403 RequestTimeTooSkewed; wrong
// signature → 403 SignatureDoesNotMatch.
//
// Addressing: the bucket comes from the Host header
// "<name>-<appid>.cos.<region>.myqcloud.com" (or .tencentcos.cn), as COS
// routes it. Another region → 404 NoSuchBucket; a host that names no
// bucket → 400 InvalidURI; "service.cos.myqcloud.com" and
// "cos.<region>.myqcloud.com" serve GET Service. Point a client's base
// URL at URL() and set its Host, or use DialContext to keep real host
// names.
//
// Operations and their checks:
//   - GET Service: the caller's buckets.
//   - PUT Bucket: "<name>-<AppID>" with name of [a-z0-9-] not starting or
//     ending with '-', and the whole domain at most 60 characters → else
//     400 InvalidBucketName; an existing bucket → 409
//     BucketAlreadyOwnedByYou for its owner, BucketAlreadyExists for
//     anyone else. HEAD Bucket (200/403/404 without a body), DELETE Bucket
//     (409 BucketNotEmpty). Buckets belong to the SecretId that created
//     them; other callers get 403 AccessDenied.
//   - PUT Object: Content-MD5 when sent (400 InvalidDigest if malformed,
//     BadDigest if different); stores Content-Type and x-cos-meta-*;
//     answers ETag (lower-case hex md5 in quotes) and x-cos-hash-crc64ecma,
//     which the SDK requires and verifies. Replacement is atomic.
//   - GET/HEAD Object: 404 NoSuchKey (HEAD errors carry no body, as on
//     COS); user metadata, ETag, Last-Modified, x-cos-hash-crc64ecma of the
//     whole object. Range: one byte range (a-b, a-, -n) → 206 with
//     Content-Range; unsatisfiable → 416 InvalidRange; malformed or
//     multi-range headers are ignored. If-Match → 412.
//   - DELETE Object: 204 whether or not the key exists.
//   - PUT Object - Copy (x-cos-copy-source "<bucket host>/<key>"):
//     x-cos-metadata-directive Copy/Replaced, x-cos-copy-source-If-Match
//     and -If-None-Match (412 PreconditionFailed); copying onto itself
//     requires Replaced (400 InvalidRequest).
//   - Multipart: InitiateMultipartUpload (?uploads) records Content-Type
//     and user metadata; UploadPart (?partNumber=&uploadId=) checks the
//     part number (1..MaxPartNumber), the upload ID and its key (404
//     NoSuchUpload) and Content-MD5, and answers ETag and
//     x-cos-hash-crc64ecma; CompleteMultipartUpload (?uploadId=) requires a
//     well-formed, non-empty part list (400 MalformedXML), strictly
//     ascending part numbers (400 InvalidPartOrder), consecutive numbers
//     and every listed part uploaded with the listed ETag (400
//     InvalidPart, as the SDK documents the service), and every part but
//     the last at least MinPartSize (1 MiB, 400 EntityTooSmall); the
//     object appears atomically with ETag "<md5 of part md5s>-<n>".
//     AbortMultipartUpload (DELETE ?uploadId=) → 204, or 404 NoSuchUpload.
//
// Errors use the service's XML body (Code, Message, Resource, RequestId,
// TraceId) with x-cos-request-id and x-cos-trace-id headers.
//
// Faults: SetFault installs a FaultFunc that can answer 503
// ServiceUnavailable or 500 InternalError, drop the connection without an
// answer, or send half of a GetObject body and then drop the connection
// or stall until the client gives up.
// Calls records every request (operation, bucket, key, Host, part number,
// upload ID, status, error code) so tests can assert the multipart
// sequence.
//
// Not implemented (answered 501 NotImplemented): listing objects, ACLs,
// tagging, versioning, append, UploadPartCopy, ListParts and the other
// sub-resource APIs; STS session tokens; the JSON (CI) APIs. COS's
// "200 OK with an error body" answers to slow CompleteMultipartUpload and
// Copy requests are not simulated.
//
// # Layout
//
// The object store, the multipart bookkeeping, fault injection, the call
// log and the handlers both providers answer alike are the shared core in
// backend/internal/fakestore; this package gives it the COS dialect: the
// signature check (auth.go), addressing and operation names, the error
// body and messages, naming rules, and the COS wire form of GetObject,
// CopyObject and the bucket listing (handlers.go).
package cosfake
