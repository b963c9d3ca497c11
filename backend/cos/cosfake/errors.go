package cosfake

import (
	"encoding/xml"
	"net/http"
	"strconv"

	"github.com/osprey-storage/osprey/backend/internal/fakestore"
)

// messages are COS's texts for the codes whose wording is its own.
var messages = map[string]string{
	"AccessDenied":      "Access Denied.",
	"InvalidBucketName": "The specified bucket name is invalid.",
	"InvalidDigest":     "The Content-MD5 you specified is not valid.",
	"BadDigest":         "The Content-MD5 you specified did not match what we received.",
	"InvalidPartOrder":  "The list of parts was not in ascending order. The parts list must be specified in order by part number.",
	"EntityTooSmall":    "Your proposed upload is smaller than the minimum allowed object size.",
	"InvalidRange":      "The requested range is not satisfiable.",
}

type errorXML struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	Resource  string   `xml:"Resource"`
	RequestID string   `xml:"RequestId"`
	TraceID   string   `xml:"TraceId"`
}

// writeError sends e as COS does: an XML body with x-cos-request-id and
// x-cos-trace-id headers; HEAD answers carry only the status and headers.
func writeError(w http.ResponseWriter, r *http.Request, requestID string, e *fakestore.Error) {
	out, err := xml.MarshalIndent(errorXML{
		Code:      e.Code,
		Message:   e.Message,
		Resource:  r.Host + r.URL.Path,
		RequestID: requestID,
		TraceID:   "OGVmYzZiMmQzYjA2OWNhODk0NTRkMTBiOWVmMDAxODc0OWRkZjk0ZDM1NmI1M2E2MTRlY2MzZDhmNmI5MWI1OWE4OGMxZjNjY2JiNTBmMTVmMWY1MzAzYzkyZGQ2Nj" + requestID,
	}, "", "\t")
	if err != nil {
		out = nil
	}
	out = append([]byte("<?xml version='1.0' encoding='utf-8' ?>\n"), out...)
	h := w.Header()
	h.Set("Content-Type", "application/xml")
	h.Set("x-cos-trace-id", "OGVmYzZiMmQz"+requestID)
	if r.Method == http.MethodHead {
		w.WriteHeader(e.Status)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(e.Status)
	_, _ = w.Write(out)
}

func errAccessDenied(msg string) *fakestore.Error {
	return &fakestore.Error{Status: http.StatusForbidden, Code: "AccessDenied", Message: msg}
}

func errNoSuchBucket() *fakestore.Error {
	return &fakestore.Error{Status: http.StatusNotFound, Code: "NoSuchBucket", Message: "The specified bucket does not exist."}
}
