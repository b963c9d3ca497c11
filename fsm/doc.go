// Package fsm is osprey's deterministic Raft state machine: the command
// types and their versioned codec, Apply, Snapshot and Restore.
//
// Every replica applies the same committed log and must end in the same
// state, so Apply never reads the clock, random numbers, the network or the
// disk: the leader puts timestamps and identifiers into each command. An
// entry that cannot be decoded, or carries an unknown type or version,
// panics, because skipping it would make replicas diverge. Failures that
// belong to the domain (unknown uid, merge with missing chunks, ...) are
// returned as a response value and are therefore identical on every node.
//
// The state includes the S3 namespace (s3.go): buckets, bucket/key bindings
// onto uids and multipart uploads, all as on-disk indexes read by range.
//
// fsm never imports raftstore, httpapi or net. See DESIGN.md.
package fsm
