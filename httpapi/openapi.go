package httpapi

import (
	_ "embed" // for the OpenAPI document
	"net/http"
	"strconv"
)

// OpenAPI is the OpenAPI 3.1 document of every route the Server registers,
// served at GET /openapi.json. It is kept by hand in httpapi/openapi.json;
// TestOpenAPIRoutes fails when it and the router disagree, and
// TestOpenAPIResponses validates real replies against its schemas. Callers
// must not modify it.
//
//go:embed openapi.json
var OpenAPI []byte

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(OpenAPI)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(OpenAPI)
	}
}
