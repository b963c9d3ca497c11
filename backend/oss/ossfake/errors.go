package ossfake

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"
)

// ossError is an error answer in the service's format.
type ossError struct {
	status  int
	code    string
	message string
	// Optional extra elements the real service adds for some codes.
	accessKeyID       string
	signatureProvided string
	stringToSign      string
	bucket            string
	key               string
	uploadID          string
}

func (e *ossError) Error() string { return e.code + ": " + e.message }

type errorXML struct {
	XMLName           xml.Name `xml:"Error"`
	Code              string   `xml:"Code"`
	Message           string   `xml:"Message"`
	RequestID         string   `xml:"RequestId"`
	HostID            string   `xml:"HostId"`
	BucketName        string   `xml:"BucketName,omitempty"`
	Key               string   `xml:"Key,omitempty"`
	UploadID          string   `xml:"UploadId,omitempty"`
	OSSAccessKeyID    string   `xml:"OSSAccessKeyId,omitempty"`
	SignatureProvided string   `xml:"SignatureProvided,omitempty"`
	StringToSign      string   `xml:"StringToSign,omitempty"`
	StringToSignBytes string   `xml:"StringToSignBytes,omitempty"`
}

// writeError sends e as OSS does: an XML body, or, for HEAD (which has no
// body), the same XML base64-encoded in the x-oss-err header.
func writeError(w http.ResponseWriter, r *http.Request, requestID string, e *ossError) {
	body := errorXML{
		Code:              e.code,
		Message:           e.message,
		RequestID:         requestID,
		HostID:            r.Host,
		BucketName:        e.bucket,
		Key:               e.key,
		UploadID:          e.uploadID,
		OSSAccessKeyID:    e.accessKeyID,
		SignatureProvided: e.signatureProvided,
		StringToSign:      e.stringToSign,
	}
	if e.stringToSign != "" {
		body.StringToSignBytes = spacedHex([]byte(e.stringToSign))
	}
	out, err := xml.MarshalIndent(body, "", "  ")
	if err != nil {
		out = nil
	}
	out = append([]byte(xml.Header), out...)
	h := w.Header()
	h.Set("Content-Type", "application/xml")
	if r.Method == http.MethodHead {
		h.Set("x-oss-err", base64.StdEncoding.EncodeToString(out))
		w.WriteHeader(e.status)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(e.status)
	_, _ = w.Write(out)
}

func spacedHex(b []byte) string {
	s := strings.ToUpper(hex.EncodeToString(b))
	var sb strings.Builder
	for i := 0; i < len(s); i += 2 {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(s[i : i+2])
	}
	return sb.String()
}

func errAccessDenied(msg string) *ossError {
	return &ossError{status: http.StatusForbidden, code: "AccessDenied", message: msg}
}

func errInvalidArgument(msg string) *ossError {
	return &ossError{status: http.StatusBadRequest, code: "InvalidArgument", message: msg}
}

func errNoSuchBucket(name string) *ossError {
	return &ossError{status: http.StatusNotFound, code: "NoSuchBucket",
		message: "The specified bucket does not exist.", bucket: name}
}

func errNoSuchKey(key string) *ossError {
	return &ossError{status: http.StatusNotFound, code: "NoSuchKey",
		message: "The specified key does not exist.", key: key}
}

func errNoSuchUpload(id string) *ossError {
	return &ossError{status: http.StatusNotFound, code: "NoSuchUpload",
		message:  "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
		uploadID: id}
}

func errMalformedXML() *ossError {
	return &ossError{status: http.StatusBadRequest, code: "MalformedXML",
		message: "The XML you provided was not well-formed or did not validate against our published schema."}
}

func errNotImplemented() *ossError {
	return &ossError{status: http.StatusNotImplemented, code: "NotImplemented",
		message: "A header or query you provided implies functionality that is not implemented by this fake."}
}
