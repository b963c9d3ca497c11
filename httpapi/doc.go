// Package httpapi serves osprey's HTTP API: the osproxy-compatible storage
// routes under /api/storage/v0, the cluster admin routes, health and
// metrics, and the authenticated node-to-node routes under /internal/v1.
//
// Handlers are plain http.Handlers registered on a julienschmidt/httprouter
// router. Every error goes through one writeError, which maps the project's
// error kinds (package osprey) to statuses through a single table. The
// package consumes narrow interfaces (Cluster, Storage, Internal) that node
// implements; it never reaches into storage internals.
package httpapi
