// Package objio holds the small pieces every backend implementation shares:
// validation of logical bucket names, object keys and md5 strings, and
// VerifyingReader, which streams exactly size bytes of a Put body while
// hashing it and refuses to hand over the final bytes when the md5 does not
// match. Withholding the tail is what lets a backend that streams straight to
// a remote store (S3 PutObject, multipart CompleteMultipartUpload) abort the
// request before the object becomes visible, instead of deleting a bad
// object after the fact.
//
// It is internal to backend/...: the rules here are the contract the
// conformance suite in backend/backendtest checks, so every backend applies
// the same ones.
package objio
