package s3api

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // SigV2 is HMAC-SHA1 by definition; HMAC-SHA1 is still a sound MAC
	"encoding/base64"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Signature Version 2 presigned URLs (query string authentication), for
// GET and HEAD only: what `aws s3 presign` produces unless told to use
// SigV4, and what older SDKs and tools hand out as download links. Every
// other request must be SigV4.
//
//	StringToSign = Method \n Content-MD5 \n Content-Type \n Expires \n
//	               CanonicalizedAmzHeaders CanonicalizedResource
//	Signature    = base64(HMAC-SHA1(secret, StringToSign))

// sigV2Subresources are the query parameters a V2 CanonicalizedResource
// includes, in the order S3 sorts them (lexically).
var sigV2Subresources = map[string]bool{
	"acl": true, "cors": true, "delete": true, "lifecycle": true, "location": true, "logging": true,
	"notification": true, "partNumber": true, "policy": true, "requestPayment": true, "tagging": true,
	"torrent": true, "uploadId": true, "uploads": true, "versionId": true, "versioning": true,
	"versions": true, "website": true,
	"response-cache-control": true, "response-content-disposition": true, "response-content-encoding": true,
	"response-content-language": true, "response-content-type": true, "response-expires": true,
}

// verifyPresignedV2 checks a SigV2 presigned GET or HEAD.
func (h *handler) verifyPresignedV2(r *http.Request, q url.Values) (*authInfo, error) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return nil, s3Err("InvalidRequest", "Signature Version 2 is accepted only for presigned GET and HEAD; use AWS4-HMAC-SHA256.")
	}
	access, sig, exp := q.Get("AWSAccessKeyId"), q.Get("Signature"), q.Get("Expires")
	expires, err := strconv.ParseInt(exp, 10, 64)
	if access == "" || sig == "" || err != nil {
		return nil, s3Err("AccessDenied", "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters.")
	}
	secret, ok := h.cfg.Credentials.Secret(access)
	if !ok {
		return nil, s3Err("InvalidAccessKeyId")
	}
	now := h.cfg.Now().Unix()
	if now > expires {
		return nil, s3Err("AccessDenied", "Request has expired.")
	}
	if expires-now > maxPresignExpires {
		return nil, s3Err("AuthorizationQueryParametersError", "Expires must be at most 7 days ahead.")
	}
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte(stringToSignV2(r, q, exp, h.virtualHostBucket(r))))
	want := base64.StdEncoding.EncodeToString(m.Sum(nil))
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return nil, s3Err("SignatureDoesNotMatch")
	}
	return &authInfo{accessKey: access, payload: unsignedPayload}, nil
}

// stringToSignV2 builds what a V2 signature covers; vbucket is the bucket
// a virtual-host-style request names in its Host ("" for path style).
func stringToSignV2(r *http.Request, q url.Values, expires, vbucket string) string {
	var b strings.Builder
	b.WriteString(r.Method + "\n")
	b.WriteString(r.Header.Get("Content-MD5") + "\n")
	b.WriteString(r.Header.Get("Content-Type") + "\n")
	b.WriteString(expires + "\n")
	var amz []string
	for k := range r.Header {
		if lk := strings.ToLower(k); strings.HasPrefix(lk, "x-amz-") {
			amz = append(amz, lk)
		}
	}
	sort.Strings(amz)
	for _, k := range amz {
		b.WriteString(k + ":" + strings.Join(r.Header.Values(k), ",") + "\n")
	}
	// The resource: /bucket/key as sent (virtual-host requests name the
	// bucket in the Host, so it is put back), then the sub-resources.
	path := r.URL.EscapedPath()
	if vbucket != "" {
		path = "/" + vbucket + path
	}
	b.WriteString(path)
	var subs []string
	for k := range q {
		if sigV2Subresources[k] {
			subs = append(subs, k)
		}
	}
	sort.Strings(subs)
	for i, k := range subs {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		if v := q.Get(k); v != "" {
			b.WriteString(sep + k + "=" + v)
		} else {
			b.WriteString(sep + k)
		}
	}
	return b.String()
}
