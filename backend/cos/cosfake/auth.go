package cosfake

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/osprey-storage/osprey/backend/internal/fakestore"
)

// authFields are the parts of a COS signature, from the Authorization
// header or, for presigned URLs, from the query string.
type authFields struct {
	algorithm, ak, signTime, keyTime, headerList, paramList, signature string
}

func parseAuth(s string) (authFields, bool) {
	var f authFields
	for _, kv := range strings.Split(s, "&") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return f, false
		}
		switch k {
		case "q-sign-algorithm":
			f.algorithm = v
		case "q-ak":
			f.ak = v
		case "q-sign-time":
			f.signTime = v
		case "q-key-time":
			f.keyTime = v
		case "q-header-list":
			f.headerList = v
		case "q-url-param-list":
			f.paramList = v
		case "q-signature":
			f.signature = v
		}
	}
	return f, f.algorithm != "" && f.ak != "" && f.signTime != "" && f.keyTime != "" && f.signature != ""
}

// parseWindow parses "<start>;<end>" in Unix seconds.
func parseWindow(s string) (start, end time.Time, ok bool) {
	a, b, found := strings.Cut(s, ";")
	if !found {
		return start, end, false
	}
	x, err1 := strconv.ParseInt(a, 10, 64)
	y, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || y < x {
		return start, end, false
	}
	return time.Unix(x, 0), time.Unix(y, 0), true
}

// authenticate verifies a COS (XML API) request signature:
//
//	SignKey      = hex(HMAC-SHA1(SecretKey, q-key-time))
//	HttpString   = lower(method) + "\n" + path + "\n" + HttpParameters + "\n" + HttpHeaders + "\n"
//	StringToSign = "sha1\n" + q-sign-time + "\n" + hex(SHA1(HttpString)) + "\n"
//	Signature    = hex(HMAC-SHA1(SignKey, StringToSign))
//
// HttpParameters and HttpHeaders are "key=value" pairs joined by "&",
// sorted, with keys lower-cased and keys and values percent-encoded
// (everything but A-Z a-z 0-9 - _ . ~), covering exactly the names listed
// in q-url-param-list and q-header-list, with the values the request
// carries. The path is the decoded request path.
func (s *Server) authenticate(r *http.Request, _ *fakestore.Request) (string, *fakestore.Error) {
	raw := r.Header.Get("Authorization")
	q := r.URL.Query()
	if raw == "" && q.Has("q-sign-algorithm") {
		// Presigned URL: the same fields, as query parameters.
		parts := make([]string, 0, 7)
		for _, k := range []string{"q-sign-algorithm", "q-ak", "q-sign-time", "q-key-time", "q-header-list", "q-url-param-list", "q-signature"} {
			parts = append(parts, k+"="+q.Get(k))
		}
		raw = strings.Join(parts, "&")
	}
	if raw == "" {
		return "", errAccessDenied("Access Denied.")
	}
	f, ok := parseAuth(raw)
	if !ok {
		return "", &fakestore.Error{Status: http.StatusForbidden, Code: "AccessDenied",
			Message: "The Authorization header is malformed."}
	}
	if f.algorithm != "sha1" {
		return "", &fakestore.Error{Status: http.StatusBadRequest, Code: "InvalidArgument",
			Message: "q-sign-algorithm must be sha1."}
	}
	secret, known := s.cfg.Credentials[f.ak]
	if !known {
		return "", &fakestore.Error{Status: http.StatusForbidden, Code: "InvalidAccessKeyId",
			Message: "The access key Id format you provided is invalid."}
	}
	start, end, ok := parseWindow(f.signTime)
	if _, _, ok2 := parseWindow(f.keyTime); !ok || !ok2 {
		return "", &fakestore.Error{Status: http.StatusForbidden, Code: "AccessDenied",
			Message: "q-sign-time or q-key-time is malformed."}
	}
	now := s.Now()
	if now.After(end) {
		return "", errAccessDenied("Request has expired")
	}
	if start.After(now.Add(s.cfg.MaxClockSkew)) {
		return "", &fakestore.Error{Status: http.StatusForbidden, Code: "RequestTimeTooSkewed",
			Message: "The difference between the request time and the server's time is too large."}
	}

	httpString := strings.ToLower(r.Method) + "\n" + r.URL.Path + "\n" +
		signedParams(q, f.paramList) + "\n" + signedHeaders(r, f.headerList) + "\n"
	sum := sha1.Sum([]byte(httpString))
	stringToSign := "sha1\n" + f.signTime + "\n" + hex.EncodeToString(sum[:]) + "\n"
	keyMAC := hmac.New(sha1.New, []byte(secret))
	keyMAC.Write([]byte(f.keyTime))
	signKey := hex.EncodeToString(keyMAC.Sum(nil))
	mac := hmac.New(sha1.New, []byte(signKey))
	mac.Write([]byte(stringToSign))
	want := hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(want), []byte(strings.ToLower(f.signature))) {
		return "", &fakestore.Error{Status: http.StatusForbidden, Code: "SignatureDoesNotMatch",
			Message: "The Signature you specified is invalid."}
	}
	return f.ak, nil
}

// signedParams renders HttpParameters for the listed parameters.
func signedParams(q url.Values, list string) string {
	if list == "" {
		return ""
	}
	want := make(map[string]bool)
	for _, k := range strings.Split(list, ";") {
		want[k] = true
	}
	kv := make(map[string][]string)
	for k, vals := range q {
		if lk := strings.ToLower(encode(k)); want[lk] {
			kv[lk] = append(kv[lk], vals...)
		}
	}
	return joinSorted(kv)
}

// signedHeaders renders HttpHeaders for the listed headers, with the
// values as the request carries them. The Go server moves Host and
// Transfer-Encoding out of the header map; they are read back from the
// request.
func signedHeaders(r *http.Request, list string) string {
	if list == "" {
		return ""
	}
	kv := make(map[string][]string)
	for _, name := range strings.Split(list, ";") {
		var vals []string
		switch name {
		case "host":
			vals = []string{r.Host}
		case "transfer-encoding":
			vals = []string{strings.Join(r.TransferEncoding, ",")}
		case "content-length":
			vals = r.Header.Values("Content-Length")
			if len(vals) == 0 && r.ContentLength >= 0 {
				vals = []string{strconv.FormatInt(r.ContentLength, 10)}
			}
		default:
			vals = r.Header.Values(name)
		}
		if len(vals) == 0 {
			vals = []string{""}
		}
		kv[name] = vals
	}
	return joinSorted(kv)
}

// joinSorted renders "key=value" pairs, sorted by key and then by raw
// value (not by the joined string: "a-b=" sorts before "a=" that way),
// with values percent-encoded.
func joinSorted(kv map[string][]string) string {
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var pairs []string
	for _, k := range keys {
		vals := append([]string(nil), kv[k]...)
		sort.Strings(vals)
		for _, v := range vals {
			pairs = append(pairs, k+"="+encode(v))
		}
	}
	return strings.Join(pairs, "&")
}

// encode percent-encodes every byte but the RFC 3986 unreserved ones.
func encode(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}
