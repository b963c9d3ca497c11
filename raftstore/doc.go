// Package raftstore owns the *raft.Raft of one node: the TCP transport, the
// raft-boltdb/v2 log and stable store, the file snapshot store, leader
// tracking, membership changes and the translation of raft's errors into
// the project's own sentinels. It knows nothing about files: it takes a
// raft.FSM through its Config.
package raftstore
