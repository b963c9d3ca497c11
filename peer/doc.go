// Package peer is how one osprey node reaches another: the node-to-node
// HTTP calls of the internal API (chunk copies, object copies for the local
// backend, forwarded commands and read indexes, join and bootstrap
// discovery, liveness probes), authenticated with the cluster's node token
// and with failures mapped back to the project's error kinds.
//
// It knows nothing about placement or Raft: callers name a member by id
// and Client resolves its advertised address through a Directory, a
// one-method view of the replicated membership records. Everything that
// decides which peer to call lives with the caller (datapath, consensus,
// membership).
package peer
