package s3api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The vectors below are the worked examples of the AWS documentation
// "Signature Calculations for the Authorization Header" (S3 API reference,
// sigv4-header-based-auth), "Query String Authentication" and "Transferring
// Payload in Multiple Chunks".
const (
	docAccessKey = "AKIAIOSFODNN7EXAMPLE"
	docSecret    = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	docCredScope = docAccessKey + "/20130524/us-east-1/s3/aws4_request"
)

var docTime = time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC)

func mustDocHandler(t *testing.T, now time.Time, secret string) *handler {
	t.Helper()
	return NewHandler(nil, Config{
		Region:      "us-east-1",
		Credentials: StaticCredentials(map[string]string{docAccessKey: secret}),
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:         func() time.Time { return now },
	}).(*handler)
}

func authHeader(signedHeaders, sig string) string {
	return "AWS4-HMAC-SHA256 Credential=" + docCredScope + ",SignedHeaders=" + signedHeaders + ",Signature=" + sig
}

func docGetObject() *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://examplebucket.s3.amazonaws.com/test.txt", nil)
	r.Header.Set("Range", "bytes=0-9")
	r.Header.Set("X-Amz-Content-Sha256", emptySHA256)
	r.Header.Set("X-Amz-Date", "20130524T000000Z")
	r.Header.Set("Authorization", authHeader("host;range;x-amz-content-sha256;x-amz-date", "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"))
	return r
}

func docPutObject() *http.Request {
	r := httptest.NewRequest(http.MethodPut, "http://examplebucket.s3.amazonaws.com/test$file.text", strings.NewReader("Welcome to Amazon S3."))
	r.Header.Set("Date", "Fri, 24 May 2013 00:00:00 GMT")
	r.Header.Set("X-Amz-Date", "20130524T000000Z")
	r.Header.Set("X-Amz-Storage-Class", "REDUCED_REDUNDANCY")
	r.Header.Set("X-Amz-Content-Sha256", "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
	r.Header.Set("Authorization", authHeader("date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class", "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"))
	return r
}

func docGetLifecycle() *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://examplebucket.s3.amazonaws.com/?lifecycle", nil)
	r.Header.Set("X-Amz-Date", "20130524T000000Z")
	r.Header.Set("X-Amz-Content-Sha256", emptySHA256)
	r.Header.Set("Authorization", authHeader("host;x-amz-content-sha256;x-amz-date", "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"))
	return r
}

func docListObjects() *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J", nil)
	r.Header.Set("X-Amz-Date", "20130524T000000Z")
	r.Header.Set("X-Amz-Content-Sha256", emptySHA256)
	r.Header.Set("Authorization", authHeader("host;x-amz-content-sha256;x-amz-date", "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"))
	return r
}

const docPresignedURL = "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"

func docPresigned(url string) func() *http.Request {
	return func() *http.Request { return httptest.NewRequest(http.MethodGet, url, nil) }
}

// errCode returns the S3 code err maps to.
func errCode(err error) string {
	if err == nil {
		return ""
	}
	return toAPIError(err).Code
}

func TestSigV4DocumentationVectors(t *testing.T) {
	tests := []struct {
		name    string
		req     func() *http.Request
		now     time.Time
		secret  string
		payload string
		want    string // S3 error code, "" = success
	}{
		{"get object", docGetObject, docTime, docSecret, emptySHA256, ""},
		{"put object", docPutObject, docTime, docSecret, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072", ""},
		{"get bucket lifecycle", docGetLifecycle, docTime, docSecret, emptySHA256, ""},
		{"list objects", docListObjects, docTime, docSecret, emptySHA256, ""},
		{"presigned get", docPresigned(docPresignedURL), docTime.Add(time.Hour), docSecret, unsignedPayload, ""},
		{"wrong secret", docGetObject, docTime, "not-the-secret", "", "SignatureDoesNotMatch"},
		{"clock skewed past 15 minutes", docGetObject, docTime.Add(16 * time.Minute), docSecret, "", "RequestTimeTooSkewed"},
		{"clock skewed within 15 minutes", docGetObject, docTime.Add(-14 * time.Minute), docSecret, emptySHA256, ""},
		{"presigned expired", docPresigned(docPresignedURL), docTime.Add(86401 * time.Second), docSecret, "", "AccessDenied"},
		{"presigned tampered expiry", docPresigned(strings.Replace(docPresignedURL, "X-Amz-Expires=86400", "X-Amz-Expires=86401", 1)), docTime, docSecret, "", "SignatureDoesNotMatch"},
		{"presigned tampered path", docPresigned(strings.Replace(docPresignedURL, "test.txt", "test.txu", 1)), docTime, docSecret, "", "SignatureDoesNotMatch"},
		{"presigned extra query", docPresigned(docPresignedURL + "&x-id=GetObject"), docTime, docSecret, "", "SignatureDoesNotMatch"},
		{"presigned expires above 7 days", docPresigned(strings.Replace(docPresignedURL, "X-Amz-Expires=86400", "X-Amz-Expires=604801", 1)), docTime, docSecret, "", "AuthorizationQueryParametersError"},
		{"tampered header", func() *http.Request { r := docGetObject(); r.Header.Set("Range", "bytes=0-10"); return r }, docTime, docSecret, "", "SignatureDoesNotMatch"},
		{"anonymous", func() *http.Request {
			return httptest.NewRequest(http.MethodGet, "http://examplebucket.s3.amazonaws.com/test.txt", nil)
		}, docTime, docSecret, "", "AccessDenied"},
		{"missing content sha", func() *http.Request { r := docGetObject(); r.Header.Del("X-Amz-Content-Sha256"); return r }, docTime, docSecret, "", "InvalidRequest"},
		{"wrong region", func() *http.Request {
			r := docGetObject()
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "us-east-1", "eu-west-1", 1))
			return r
		}, docTime, docSecret, "", "AuthorizationHeaderMalformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := mustDocHandler(t, tt.now, tt.secret)
			a, err := h.authenticate(tt.req())
			if got := errCode(err); got != tt.want {
				t.Fatalf("authenticate: code %q (err %v), want %q", got, err, tt.want)
			}
			if err == nil && a.payload != tt.payload {
				t.Fatalf("payload %q, want %q", a.payload, tt.payload)
			}
		})
	}
}

func TestSigV4UnknownAccessKey(t *testing.T) {
	h := NewHandler(nil, Config{Credentials: StaticCredentials(map[string]string{"OTHER": docSecret}), Now: func() time.Time { return docTime }}).(*handler)
	_, err := h.authenticate(docGetObject())
	if got := errCode(err); got != "InvalidAccessKeyId" {
		t.Fatalf("code %q (%v), want InvalidAccessKeyId", got, err)
	}
}

// docChunkedBody builds the aws-chunked body of the documentation example
// (65536 + 1024 bytes of 'a'), optionally corrupting one chunk signature.
func docChunkedBody(corrupt int) []byte {
	sigs := []string{
		"ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
		"0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
		"b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
	}
	if corrupt >= 0 {
		s := []byte(sigs[corrupt])
		s[10] ^= 1
		sigs[corrupt] = string(s)
	}
	var b bytes.Buffer
	b.WriteString("10000;chunk-signature=" + sigs[0] + "\r\n")
	b.Write(bytes.Repeat([]byte("a"), 65536))
	b.WriteString("\r\n400;chunk-signature=" + sigs[1] + "\r\n")
	b.Write(bytes.Repeat([]byte("a"), 1024))
	b.WriteString("\r\n0;chunk-signature=" + sigs[2] + "\r\n\r\n")
	return b.Bytes()
}

func docStreamingPut(body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPut, "http://s3.amazonaws.com/examplebucket/chunkObject.txt", bytes.NewReader(body))
	r.Header.Set("X-Amz-Date", "20130524T000000Z")
	r.Header.Set("X-Amz-Storage-Class", "REDUCED_REDUNDANCY")
	r.Header.Set("Content-Encoding", "aws-chunked")
	r.Header.Set("X-Amz-Decoded-Content-Length", "66560")
	r.Header.Set("Content-Length", "66824")
	r.Header.Set("X-Amz-Content-Sha256", streamingPayload)
	r.Header.Set("Authorization", authHeader("content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class",
		"4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"))
	return r
}

func TestStreamingDocumentationVector(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt int
		wantErr error
	}{
		{"valid", -1, nil},
		{"first chunk signature corrupted", 0, ErrSignatureMismatch},
		{"second chunk signature corrupted", 1, ErrSignatureMismatch},
		{"final chunk signature corrupted", 2, ErrSignatureMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := docChunkedBody(tc.corrupt)
			if len(body) != 66824 {
				t.Fatalf("body length %d, want 66824", len(body))
			}
			h := mustDocHandler(t, docTime, docSecret)
			r := docStreamingPut(body)
			a, err := h.authenticate(r)
			if err != nil {
				t.Fatalf("authenticate: %v", err)
			}
			rd, n, err := objectBody(r, a)
			if err != nil {
				t.Fatalf("objectBody: %v", err)
			}
			if n != 66560 {
				t.Fatalf("decoded size %d", n)
			}
			got := make([]byte, n)
			_, err = io.ReadFull(rd, got)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("read: %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if !bytes.Equal(got, bytes.Repeat([]byte("a"), 66560)) {
				t.Fatal("decoded data differs")
			}
			if _, err := rd.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("read after end: %v, want EOF", err)
			}
		})
	}
}

func TestStreamingDecodedLengthMismatch(t *testing.T) {
	h := mustDocHandler(t, docTime, docSecret)
	r := docStreamingPut(docChunkedBody(-1))
	a, err := h.authenticate(r)
	if err != nil {
		t.Fatal(err)
	}
	rd := newChunkedReader(r.Body, a, 66000, nil)
	_, err = io.Copy(io.Discard, rd)
	if !errors.Is(err, ErrIncompleteBody) {
		t.Fatalf("err %v, want ErrIncompleteBody", err)
	}
}

func TestVerifyingReader(t *testing.T) {
	data := "Welcome to Amazon S3."
	good := mustHex("44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
	bad := mustHex(emptySHA256)
	tests := []struct {
		name string
		size int64
		sha  []byte
		want error
	}{
		{"match", int64(len(data)), good, nil},
		{"mismatch", int64(len(data)), bad, ErrContentSHA256Mismatch},
		{"short body", int64(len(data)) + 5, good, ErrIncompleteBody},
	}
	tests = append(tests, struct {
		name string
		size int64
		sha  []byte
		want error
	}{"empty body, wrong hash", 0, good, ErrContentSHA256Mismatch}, struct {
		name string
		size int64
		sha  []byte
		want error
	}{"empty body, right hash", 0, bad, nil})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := data
			if tt.size == 0 {
				src = ""
			}
			v := newVerifyingReader(strings.NewReader(src), tt.size, tt.sha, nil, nil)
			_, err := io.Copy(io.Discard, v)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
		})
	}
}

func TestAWSURIEncode(t *testing.T) {
	for in, want := range map[string]string{
		"/test$file.text": "/test%24file.text",
		"a b+c~d":         "a%20b%2Bc~d",
		"ü/x":             "%C3%BC/x",
	} {
		if got := awsURIEncode(in, false); got != want {
			t.Errorf("awsURIEncode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValidBucketName(t *testing.T) {
	for name, ok := range map[string]bool{
		"my-bucket": true, "a.b.c": true, "abc": true, "ab": false, "Abc": false, "-abc": false,
		"abc-": false, "a..b": false, "192.168.1.1": false, "xn--abc": false, "abc-s3alias": false,
		"a_b": false, strings.Repeat("a", 63): true, strings.Repeat("a", 64): false, "a.-b": false,
	} {
		if got := validBucketName(name) == nil; got != ok {
			t.Errorf("validBucketName(%q) ok=%v, want %v", name, got, ok)
		}
	}
}

func TestParseRange(t *testing.T) {
	tests := []struct {
		in          string
		size        int64
		off, length int64
		ok          bool
		err         bool
	}{
		{"bytes=0-9", 100, 0, 10, true, false},
		{"bytes=90-", 100, 90, 10, true, false},
		{"bytes=-10", 100, 90, 10, true, false},
		{"bytes=-200", 100, 0, 100, true, false},
		{"bytes=50-500", 100, 50, 50, true, false},
		{"bytes=100-", 100, 0, 0, false, true},
		{"bytes=-0", 100, 0, 0, false, true},
		{"bytes=5-1", 100, 0, 0, false, false},
		{"bytes=0-1,3-4", 100, 0, 0, false, false},
		{"items=0-1", 100, 0, 0, false, false},
	}
	for _, tt := range tests {
		off, length, ok, err := parseRange(tt.in, tt.size)
		if (err != nil) != tt.err || ok != tt.ok || ok && (off != tt.off || length != tt.length) {
			t.Errorf("parseRange(%q,%d) = %d,%d,%v,%v", tt.in, tt.size, off, length, ok, err)
		}
	}
}

// TestSigningKeyCache: a cached signing key is the one derived from the
// same secret, day, region and service; any of them changed derives anew,
// and the cache stays bounded.
func TestSigningKeyCache(t *testing.T) {
	derive := func(secret, date, region, service string) []byte {
		k := hmacSHA256([]byte("AWS4"+secret), date)
		k = hmacSHA256(k, region)
		k = hmacSHA256(k, service)
		return hmacSHA256(k, "aws4_request")
	}
	cases := [][4]string{
		{"secret-a", "20261206", "us-east-1", "s3"},
		{"secret-b", "20261206", "us-east-1", "s3"},
		{"secret-a", "20261207", "us-east-1", "s3"},
		{"secret-a", "20261206", "eu-west-1", "s3"},
		{"secret-a", "20261206", "us-east-1", "sts"},
	}
	for round := 0; round < 2; round++ { // the second round is served from the cache
		for _, c := range cases {
			if got, want := signingKey(c[0], c[1], c[2], c[3]), derive(c[0], c[1], c[2], c[3]); !bytes.Equal(got, want) {
				t.Fatalf("round %d, %v: key %x, want %x", round, c, got, want)
			}
		}
	}
	for i := 0; i < 3*maxSigningKeys; i++ {
		signingKey("s", fmt.Sprintf("2026%04d", i), "r", "s3")
	}
	signingKeys.mu.Lock()
	n := len(signingKeys.keys)
	signingKeys.mu.Unlock()
	if n > maxSigningKeys {
		t.Fatalf("%d signing keys cached, at most %d", n, maxSigningKeys)
	}
}

func TestChunkedBufSize(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want int
	}{{-1, 64 << 10}, {0, 4 << 10}, {4096, 8 << 10}, {60<<10 - 1, 64<<10 - 1}, {60 << 10, 64 << 10}, {1 << 30, 64 << 10}} {
		if got := chunkedBufSize(c.n); got != c.want {
			t.Errorf("chunkedBufSize(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}
