// Package consensus is how a node proposes commands and reads
// linearizably, whether or not it leads: Proposer.Apply encodes a command
// and applies it on the local raft store when this node leads, or forwards
// it to the leader, retrying while the command is certainly not applied;
// ReadBarrier makes the next local FSM read see every write acknowledged
// before the call.
//
// It consumes three small interfaces, each declared here with only the
// methods it calls: Raft (the local raft store), State (the FSM's applied
// index and member records) and Forwarder (the node-to-node calls that
// reach the leader). The components above it (datapath, tasks, repair,
// membership) know it only through their own one- or two-method Proposer
// interfaces, so their tests use a fake proposer instead of a cluster.
package consensus
