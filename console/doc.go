// Package console is osprey's web console: plain HTML, CSS and JavaScript
// embedded in the binary and served at /ui/ on every node. It talks only to
// the node's own HTTP API (same origin, no external requests), so it works
// air-gapped. httpapi registers Handler; the data it shows comes from the
// public routes (/cluster/*, /tasks, /api/storage/v0/*) and the console's
// read-only helpers in httpapi/console.go.
//
// Security: every response carries a strict Content-Security-Policy
// (scripts, styles, workers and fetches from this origin only; no inline
// script or style; no framing). The API key, when the cluster has keys,
// is kept in the tab's sessionStorage and sent only in the Authorization
// header, never in a URL.
//
// static/vendor/spark-md5.js is SparkMD5 3.0.2 by André Cruz (WTFPL or
// MIT, see static/vendor/LICENSE-spark-md5.txt), used unmodified by the
// upload worker to compute md5s incrementally in the browser.
package console
