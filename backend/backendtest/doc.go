// Package backendtest is the conformance suite every backend.Backend
// implementation passes. A backend's own test calls Run with a constructor
// that returns a fresh, isolated instance (its own directory, or its own
// bucket prefix on a shared server):
//
//	func TestConformance(t *testing.T) {
//		backendtest.Run(t, func(t *testing.T) backend.Backend {
//			return mustNew(t)
//		})
//	}
//
// The suite pins down the behaviour callers rely on and that the interface
// comments leave to the implementation:
//
//   - Get with offset == size returns an empty reader (so an empty object
//     reads back with Get(0, -1)); offset > size or offset < 0 is
//     ErrInvalid; a length reaching past the end is clamped to the end.
//   - A body shorter than size, or whose md5 differs from PutOptions.MD5,
//     fails with ErrChecksum; a failing body reader fails Put with an error
//     wrapping the reader's error; a cancelled context fails with an error
//     wrapping context.Canceled. In every case nothing new becomes visible
//     and an object previously stored under the key is intact.
//   - Put reads exactly size bytes and ignores what follows.
//   - Missing objects and missing buckets are ErrNotFound for Get and Stat
//     (and Put into a missing bucket); Delete of either is not an error.
//   - Invalid bucket names, keys (see the rules in Run's KeyRules subtest),
//     md5 strings and ranges are ErrInvalid.
//   - A key that is a proper prefix of another stored key at a '/'
//     boundary ("a/b" while "a/b/c" exists) is not required to work: the
//     local backend stores keys as file paths and refuses it with
//     ErrInvalid. Once the longer key is deleted, the shorter one works.
//   - ObjectInfo.MD5, when not empty, is the correct md5; after a Put with
//     PutOptions.MD5 set, Stat reports it.
//
// Objects of LargeSize bytes exercise multipart uploads: backends with a
// part size should be configured with parts smaller than LargeSize (the s3
// test uses 5 MiB parts).
package backendtest
