// Package s3apitest is a conformance suite for s3api.Backend
// implementations. Every backend (s3mem, the osprey storage adapter) runs
// the same tests, so the S3 front door can rely on one documented contract:
//
//	func TestConformance(t *testing.T) {
//		s3apitest.RunBackendTests(t, func(t *testing.T) s3api.Backend { return newAdapter(t) })
//	}
package s3apitest
