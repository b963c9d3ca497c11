// Package objio holds the small pieces every backend implementation shares:
// validation of logical bucket names, object keys and md5 strings, and
// VerifyingReader, which streams exactly size bytes of a Put body while
// hashing it and refuses to hand over the final bytes when the md5 does not
// match. Withholding the tail is what lets a backend that streams straight to
// a remote store (S3 PutObject, multipart CompleteMultipartUpload) abort the
// request before the object becomes visible, instead of deleting a bad
// object after the fact.
//
// For the provider backends that talk to an S3-like service through its
// SDK (oss, cos) it also holds what they would otherwise each have a copy
// of: Uploader, the Put sequence (single request or multipart upload,
// Content-MD5 on every request, md5 checked before completing, abort on
// failure, the md5 recorded as object metadata up front or afterwards),
// driven through the small PutTarget and MultipartUpload interfaces a
// provider implements with its SDK; GetArgs, EmptyRead and ObjectReader
// for Get; InfoFromHeaders for Stat; ErrorMapper, which maps SDK errors to
// the backend sentinels; and NewTransport.
//
// It is internal to backend/...: the rules here are the contract the
// conformance suite in backend/backendtest checks, so every backend applies
// the same ones.
package objio
