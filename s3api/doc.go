// Package s3api is osprey's S3 protocol layer: an http.Handler that speaks
// the subset of the Amazon S3 REST API listed in the README of this package
// (buckets, objects, listings, multipart uploads) and authenticates every
// request with AWS Signature Version 4 (header auth, presigned URLs, signed,
// unsigned and aws-chunked streaming payloads).
//
// The handler knows nothing about osprey's storage. It consumes the narrow
// Backend interface declared here; s3api/s3mem is an in-memory reference
// implementation used by this package's tests.
//
// Errors: backends return the sentinels of this package (ErrNoSuchBucket,
// ErrNoSuchKey, ...), wrapped with %w if they like. Every error is turned into
// an S3 XML error body in exactly one place, errors.go (errorTable).
//
// Bodies are streamed: object data flows from the request to Backend.PutObject
// and from Backend.GetObject to the response through io.Reader/io.Copy. Only
// one aws-chunked chunk (bounded by maxChunkSize) is held in memory at a time,
// because its signature must be verified before its bytes are released.
package s3api
