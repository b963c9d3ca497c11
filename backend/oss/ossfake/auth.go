package ossfake

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/osprey-storage/osprey/backend/internal/fakestore"
)

// subResources are the query parameters that take part in the V1
// CanonicalizedResource. Every other parameter is ignored when signing, as
// on the real service.
var subResources = map[string]bool{
	"acl": true, "uploads": true, "location": true, "cors": true,
	"logging": true, "website": true, "referer": true, "lifecycle": true,
	"delete": true, "append": true, "tagging": true, "objectMeta": true,
	"uploadId": true, "partNumber": true, "security-token": true,
	"position": true, "img": true, "style": true, "styleName": true,
	"replication": true, "replicationProgress": true,
	"replicationLocation": true, "cname": true, "bucketInfo": true,
	"comp": true, "qos": true, "live": true, "status": true, "vod": true,
	"startTime": true, "endTime": true, "symlink": true,
	"x-oss-process": true, "response-content-type": true,
	"x-oss-traffic-limit": true, "response-content-language": true,
	"response-expires": true, "response-cache-control": true,
	"response-content-disposition": true, "response-content-encoding": true,
	"udf": true, "udfName": true, "udfImage": true, "udfId": true,
	"udfImageDesc": true, "udfApplication": true, "udfApplicationLog": true,
	"restore": true, "callback": true, "callback-var": true, "qosInfo": true,
	"policy": true, "stat": true, "encryption": true, "versions": true,
	"versioning": true, "versionId": true, "requestPayment": true,
	"x-oss-request-payer": true, "sequential": true, "inventory": true,
	"inventoryId": true, "continuation-token": true, "asyncFetch": true,
	"worm": true, "wormId": true, "wormExtend": true,
	"withHashContext": true, "x-oss-enable-md5": true,
	"x-oss-enable-sha1": true, "x-oss-enable-sha256": true,
	"x-oss-hash-ctx": true, "x-oss-md5-ctx": true,
	"transferAcceleration": true, "regionList": true, "cloudboxes": true,
	"metaQuery": true, "resourceGroup": true, "rtc": true,
	"x-oss-async-process": true, "responseHeader": true,
}

// authenticate verifies an OSS signature version 1 request: either the
// "Authorization: OSS <AccessKeyId>:<Signature>" header or a presigned URL
// (OSSAccessKeyId, Expires, Signature query parameters).
//
//	Signature = base64(HMAC-SHA1(AccessKeySecret,
//	    VERB + "\n" + Content-MD5 + "\n" + Content-Type + "\n" + Date + "\n" +
//	    CanonicalizedOSSHeaders + CanonicalizedResource))
//
// CanonicalizedOSSHeaders is every x-oss-* header, lower-cased, sorted,
// "name:value\n". CanonicalizedResource is "/", "/<bucket>/" or
// "/<bucket>/<key>" followed by the sorted sub-resources ("?uploadId=..&
// partNumber=.." in byte order, "name" alone when the value is empty).
func (s *Server) authenticate(r *http.Request, req *fakestore.Request) (string, *fakestore.Error) {
	q := r.URL.Query()
	auth := r.Header.Get("Authorization")
	var id, sig, date string
	switch {
	case auth != "":
		rest, ok := strings.CutPrefix(auth, "OSS ")
		if !ok {
			if strings.HasPrefix(auth, "OSS2 ") || strings.HasPrefix(auth, "OSS4-HMAC-SHA256 ") {
				return "", fakestore.InvalidArgument("The fake only implements OSS signature version 1.")
			}
			return "", errAccessDenied("Authorization header is invalid.")
		}
		var found bool
		id, sig, found = strings.Cut(rest, ":")
		if !found || id == "" || sig == "" {
			return "", errAccessDenied("Authorization header is invalid.")
		}
		date = r.Header.Get("Date")
		if date == "" {
			return "", errAccessDenied("OSS authentication requires a valid Date.")
		}
		t, err := http.ParseTime(date)
		if err != nil {
			return "", errAccessDenied("OSS authentication requires a valid Date.")
		}
		if d := s.Now().Sub(t); d > s.cfg.MaxClockSkew || d < -s.cfg.MaxClockSkew {
			return "", &fakestore.Error{Status: http.StatusForbidden, Code: "RequestTimeTooSkewed",
				Message: "The difference between the request time and the current time is too large."}
		}
	case q.Has("OSSAccessKeyId"):
		id, sig, date = q.Get("OSSAccessKeyId"), q.Get("Signature"), q.Get("Expires")
		exp, err := strconv.ParseInt(date, 10, 64)
		if err != nil || sig == "" {
			return "", errAccessDenied("Invalid presigned URL.")
		}
		if s.Now().After(time.Unix(exp, 0)) {
			return "", errAccessDenied("Request has expired.")
		}
	default:
		return "", errAccessDenied("You have no right to access this object because of bucket acl.")
	}

	secret, ok := s.cfg.Credentials[id]
	if !ok {
		return "", &fakestore.Error{Status: http.StatusForbidden, Code: "InvalidAccessKeyId",
			Message: "The OSS Access Key Id you provided does not exist in our records.",
			Extra:   sigDetail{accessKeyID: id}}
	}
	toSign := stringToSign(r, q, date, req.BucketName, req.Key)
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(toSign))
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return "", &fakestore.Error{Status: http.StatusForbidden, Code: "SignatureDoesNotMatch",
			Message: "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
			Extra:   sigDetail{accessKeyID: id, signatureProvided: sig, stringToSign: toSign}}
	}
	return id, nil
}

// stringToSign builds the V1 string to sign from the request as received.
func stringToSign(r *http.Request, q url.Values, date, bucketName, key string) string {
	// Sorted by header name (not by "name:value": "x-oss-copy-source"
	// sorts before "x-oss-copy-source-if-match").
	ossValues := make(map[string]string)
	var ossNames []string
	for name, vals := range r.Header {
		lower := strings.ToLower(name)
		if strings.HasPrefix(lower, "x-oss-") && len(vals) > 0 {
			if _, dup := ossValues[lower]; !dup {
				ossNames = append(ossNames, lower)
			}
			// Repeated headers are joined with commas (RFC 2616 4.2);
			// values are trimmed.
			trimmed := make([]string, len(vals))
			for i, v := range vals {
				trimmed[i] = strings.TrimSpace(v)
			}
			if prev, ok := ossValues[lower]; ok {
				trimmed = append([]string{prev}, trimmed...)
			}
			ossValues[lower] = strings.Join(trimmed, ",")
		}
	}
	sort.Strings(ossNames)

	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteString("\n")
	b.WriteString(r.Header.Get("Content-MD5"))
	b.WriteString("\n")
	b.WriteString(r.Header.Get("Content-Type"))
	b.WriteString("\n")
	b.WriteString(date)
	b.WriteString("\n")
	for _, name := range ossNames {
		b.WriteString(name)
		b.WriteString(":")
		b.WriteString(ossValues[name])
		b.WriteString("\n")
	}
	b.WriteString(canonicalResource(q, bucketName, key))
	return b.String()
}

func canonicalResource(q url.Values, bucketName, key string) string {
	res := "/"
	if bucketName != "" {
		res = "/" + bucketName + "/" + key
	}
	var keys []string
	for k := range q {
		if subResources[k] {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return res
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		if v := q.Get(k); v != "" {
			parts = append(parts, k+"="+v)
		} else {
			parts = append(parts, k)
		}
	}
	return res + "?" + strings.Join(parts, "&")
}
