package cosfake

import (
	"encoding/xml"
	"net/http"
	"strconv"
)

// cosError is an error answer in the service's format.
type cosError struct {
	status  int
	code    string
	message string
}

func (e *cosError) Error() string { return e.code + ": " + e.message }

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
func writeError(w http.ResponseWriter, r *http.Request, requestID string, e *cosError) {
	out, err := xml.MarshalIndent(errorXML{
		Code:      e.code,
		Message:   e.message,
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
		w.WriteHeader(e.status)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(e.status)
	_, _ = w.Write(out)
}

func errAccessDenied(msg string) *cosError {
	return &cosError{status: http.StatusForbidden, code: "AccessDenied", message: msg}
}

func errInvalidArgument(msg string) *cosError {
	return &cosError{status: http.StatusBadRequest, code: "InvalidArgument", message: msg}
}

func errNoSuchBucket() *cosError {
	return &cosError{status: http.StatusNotFound, code: "NoSuchBucket", message: "The specified bucket does not exist."}
}

func errNoSuchKey() *cosError {
	return &cosError{status: http.StatusNotFound, code: "NoSuchKey", message: "The specified key does not exist."}
}

func errNoSuchUpload() *cosError {
	return &cosError{status: http.StatusNotFound, code: "NoSuchUpload",
		message: "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."}
}

func errMalformedXML() *cosError {
	return &cosError{status: http.StatusBadRequest, code: "MalformedXML",
		message: "The XML you provided was not well-formed or did not validate against our published schema."}
}

func errNotImplemented() *cosError {
	return &cosError{status: http.StatusNotImplemented, code: "NotImplemented",
		message: "A header or query you provided implies functionality that is not implemented by this fake."}
}
