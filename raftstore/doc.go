// Package raftstore owns the *raft.Raft of one node: the TCP transport, the
// log and stable store (PebbleLog, kept in a Pebble instance it is given),
// the file snapshot store, leader tracking, membership changes and the
// translation of raft's errors into the project's own sentinels. It knows
// nothing about files: it takes a raft.FSM through its Config.
package raftstore
