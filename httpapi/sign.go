package httpapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/osprey-storage/osprey"
)

// Link signatures (SPEC §2): HMAC-SHA256 with the cluster secret over the
// operation, the uid and every parameter that changes what is served, plus
// date and expiry. Fields are joined with newlines after escaping, so no
// two parameter sets produce the same string.

// signFields returns the hex signature of fields under secret.
func signFields(secret []byte, fields ...string) string {
	m := hmac.New(sha256.New, secret)
	for i, f := range fields {
		if i > 0 {
			m.Write([]byte{'\n'})
		}
		m.Write([]byte(url.QueryEscape(f)))
	}
	return hex.EncodeToString(m.Sum(nil))
}

// uploadFields and downloadFields list what each link's signature covers.
func uploadFields(uid, date, expire string) []string {
	return []string{"upload", uid, date, expire}
}

func downloadFields(q url.Values) []string {
	return []string{"download", q.Get("uid"), q.Get("name"), q.Get("online"), q.Get("bucket"), q.Get("object"), q.Get("date"), q.Get("expire")}
}

// signUpload builds the query of an upload link.
func signUpload(secret []byte, uid osprey.UID, now time.Time, expire time.Duration) url.Values {
	date := now.UTC().Format(time.RFC3339)
	exp := strconv.FormatInt(int64(expire/time.Second), 10)
	q := url.Values{}
	q.Set("uid", uid.String())
	q.Set("date", date)
	q.Set("expire", exp)
	q.Set("signature", signFields(secret, uploadFields(uid.String(), date, exp)...))
	return q
}

// signDownload adds date, expire and signature to q (which holds uid, name,
// online, bucket and object).
func signDownload(secret []byte, q url.Values, now time.Time, expire time.Duration) url.Values {
	q.Set("date", now.UTC().Format(time.RFC3339))
	q.Set("expire", strconv.FormatInt(int64(expire/time.Second), 10))
	q.Set("signature", signFields(secret, downloadFields(q)...))
	return q
}

// verifyLink checks a link's date, expiry and signature (constant time).
func verifyLink(secret []byte, q url.Values, fields []string, now time.Time, skew time.Duration) error {
	sig := q.Get("signature")
	if sig == "" {
		return fmt.Errorf("%w: signature missing", osprey.ErrForbidden)
	}
	date, err := time.Parse(time.RFC3339, q.Get("date"))
	if err != nil {
		return fmt.Errorf("%w: date %q is not RFC 3339", osprey.ErrForbidden, q.Get("date"))
	}
	exp, err := strconv.ParseInt(q.Get("expire"), 10, 64)
	if err != nil || exp <= 0 {
		return fmt.Errorf("%w: expire %q is not a positive number of seconds", osprey.ErrForbidden, q.Get("expire"))
	}
	want := signFields(secret, fields...)
	if !hmac.Equal([]byte(strings.ToLower(sig)), []byte(want)) {
		return fmt.Errorf("%w: signature does not match the link", osprey.ErrForbidden)
	}
	if date.After(now.Add(skew)) {
		return fmt.Errorf("%w: link date is in the future", osprey.ErrForbidden)
	}
	if now.After(date.Add(time.Duration(exp) * time.Second)) {
		return fmt.Errorf("%w: link expired at %s", osprey.ErrForbidden, date.Add(time.Duration(exp)*time.Second).UTC().Format(time.RFC3339))
	}
	return nil
}
