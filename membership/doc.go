// Package membership brings a node into a cluster and keeps its place
// there: forming a single-node cluster, --bootstrap-expect discovery,
// joining through any listed peer (a refused token is fatal), the leader's
// Join and Remove, registering this node's record and taking the
// snowflake worker id the FSM assigned (NextUID), the leader's
// housekeeping (cluster init, settings, expiring abandoned uploads), the
// leader's liveness checks that mark members down past the repair grace
// period and up again, and the cluster status API.
//
// Membership implements httpapi.Cluster and the membership half of
// httpapi.Internal. It reaches raft, the FSM, the proposer and other nodes
// only through the small interfaces in config.go; its tests use fakes of
// them (a fake raft, an in-memory state the fake proposer applies to,
// peers with function fields).
package membership
