// Package client is a typed Go client for the osprey HTTP API (SPEC §3 and
// §4), plus the behaviour of the client subcommands of the osprey binary
// (put, get, link, stat, rm, ls, cluster, tasks) and the benchmark
// (bench). cmd/osprey only parses flags and calls CLI or RunBench.
//
// # Client
//
// New(Config) returns a *Client with one method per route: Ping, Health,
// Resume, LinkUpload, LinkDownload, Upload, UploadChunk, Merge, Checkpoint,
// Download, Object, DeleteObject, Objects, Proxy, ClusterStatus,
// ClusterNodes, ClusterJoin, ClusterRemove, LeaderTransfer, Tasks,
// RetryTask, Ready and Metric. Config.Addr may list several nodes; requests
// are spread over them round-robin and a retry goes to the next node, which
// is safe because any node accepts any request.
//
// Errors: a non-2xx reply is an *APIError (status, envelope code, message,
// request id) that also matches a sentinel with errors.Is (ErrNotFound,
// ErrConflict, ErrUnavailable, ...).
//
// Retries follow the server's contract: a 503 means the request was
// certainly not applied, so every call is retried on 503 (waiting at least
// Retry-After) and on connection failures that never reached a server.
// Idempotent calls (reads, chunk uploads, merges, deletes, link signing)
// are also retried after broken connections and 502/504, whose outcome is
// unknown. Creating links and /resume mint uids and are not. Bodies are
// replayed only if they are io.Seekers; a streamed body is sent once.
// Every wait selects on the context.
//
// # Transfers
//
// PutFile implements `osprey put`: md5 of the file, dedup through /resume,
// a single PUT for files up to the chunk size, otherwise parallel chunk
// uploads (each chunk is hashed in a first pass over its section of the
// file, then streamed from it; memory is a few buffers whatever the file
// size) followed by a merge. Before the first chunk it saves resume state
// (uid, links, chunk size, file size, mtime and md5) in DefaultStateDir, so
// a later run asks /checkpoint and sends only the missing chunks; a merge
// that reports missing chunks is repaired the same way.
//
// GetFile implements `osprey get`: it signs a download link, writes to
// FILE.part, resumes an existing .part with Range and If-Range (and again
// after a broken connection), verifies the md5 and renames the .part into
// place. An md5 mismatch returns ErrChecksum and keeps the .part.
//
// # Benchmark
//
// RunBench measures the physical limits of the machine (fsync'd sequential
// disk write, cold sequential read, loopback TCP, fsync'd 4 KiB writes) and
// then the cluster (4 KiB uploads, chunked upload and download of a large
// file, link and resume call rates, peak RSS per node from /metrics), and
// reports each figure with its ratio to the matching limit.
package client
