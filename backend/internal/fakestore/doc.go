// Package fakestore is the provider-neutral core of the protocol-faithful
// object-store fakes (backend/oss/ossfake, backend/cos/cosfake): the
// in-memory buckets, objects and multipart uploads, the request log and
// fault injection, the S3-style handlers every provider answers alike
// (PUT/HEAD/DELETE Bucket, PUT/DELETE Object, the multipart sequence) and
// the HTTP helpers the provider-specific handlers use (Content-MD5 checks,
// user metadata, ETags, ranges, truncated and stalled bodies).
//
// A provider's fake keeps only what differs: its addressing and operation
// names (Dialect.Classify), its request signing (Dialect.Authenticate), its
// error body (Dialect.WriteError), its header prefix, messages, naming
// rules and ETag spelling, and the operations whose wire form is its own
// (GetObject, CopyObject, bucket listings: Dialect.Serve). A third
// provider needs only those.
//
// It is internal to backend/...: only the fakes and the tests of the
// provider backends use it.
package fakestore
