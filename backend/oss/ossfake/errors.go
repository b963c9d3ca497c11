package ossfake

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"

	"github.com/osprey-storage/osprey/backend/internal/fakestore"
)

// messages are OSS's texts for the codes whose wording is its own.
var messages = map[string]string{
	"AccessDenied":      "You have no right to access this bucket.",
	"InvalidBucketName": "The specified bucket is not valid.",
	"InvalidDigest":     "The Content-MD5 you specified was invalid.",
	"InvalidPartOrder":  "The list of parts was not in ascending order. Parts list must specified in order by part number.",
	"EntityTooSmall":    "Your proposed upload smaller than the minimum allowed size.",
	"InvalidRange":      "The requested range cannot be satisfied",
}

// sigDetail is what a signature error body adds (fakestore.Error.Extra).
type sigDetail struct {
	accessKeyID       string
	signatureProvided string
	stringToSign      string
}

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
func writeError(w http.ResponseWriter, r *http.Request, requestID string, e *fakestore.Error) {
	body := errorXML{
		Code:       e.Code,
		Message:    e.Message,
		RequestID:  requestID,
		HostID:     r.Host,
		BucketName: e.Bucket,
		Key:        e.Key,
		UploadID:   e.UploadID,
	}
	if d, ok := e.Extra.(sigDetail); ok {
		body.OSSAccessKeyID = d.accessKeyID
		body.SignatureProvided = d.signatureProvided
		body.StringToSign = d.stringToSign
		if d.stringToSign != "" {
			body.StringToSignBytes = spacedHex([]byte(d.stringToSign))
		}
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
		w.WriteHeader(e.Status)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(e.Status)
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

func errAccessDenied(msg string) *fakestore.Error {
	return &fakestore.Error{Status: http.StatusForbidden, Code: "AccessDenied", Message: msg}
}
