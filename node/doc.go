// Package node is the composition root of one osprey node: New locks the
// data dir and opens the infrastructure (node identity, the metadata
// store, HTTP listener, chunk store, backend, raft store over the FSM), builds every component from the Config and
// wires them to each other through the small interfaces each declares;
// Start runs their loops under the node's context; Close stops them in a
// documented order (HTTP, proposer, raft with leadership transfer, the
// loops, the data path's cleanup, chunk store, metadata store, backend,
// and last the data-dir lock). cmd/osprey and
// the in-process cluster tests both build nodes through this package.
//
// *Node holds lifecycle and wiring only. What changes together lives in
// its own package, none of which imports node:
//
//	peer        node-to-node HTTP calls: chunk and object copies, forwarded
//	            commands and read indexes, join, bootstrap discovery, probes
//	consensus   propose a command (locally or via the leader, retrying while
//	            certainly not applied), ReadIndex, ReadBarrier
//	placement   the member ring, replica/EC policy, repair candidates
//	datapath    uploads, downloads, storing copies on ring owners, the staged
//	            and tiered readers, the buffer budget, the copy endpoints
//	            (httpapi.Storage, httpapi.Replicas), the console's file views
//	tasks       the task queue loop, leases, outcomes, the task API
//	            (httpapi.Tasks) and the tier, gc, delete, webhook handlers
//	repair      the repair task handler (replicas, EC shards, local objects),
//	            the scrubber, and the rebalancer (plans moves to new ring
//	            owners on the leader, runs them and releases old copies)
//	s3gw        the S3 gateway (s3api.Backend) over the fsm's bucket/key
//	            index and the data path; s3api, the protocol layer in front
//	            of it, knows storage only through that interface
//	membership  form/join/bootstrap-expect, registration and worker ids,
//	            leader housekeeping, liveness and degraded members, Join/Remove,
//	            cluster status (httpapi.Cluster, the membership half of
//	            httpapi.Internal)
//
// Each component takes a Config with its dependencies as interfaces
// declared in the component (consumer side), listing only the methods it
// calls; node passes the concrete *fsm.FSM, *raftstore.Store,
// *chunkstore.Store, backend and the other components. A change to one
// FSM read method therefore touches the one interface that lists it and
// the code behind it. The few values httpapi wants from two components at
// once are joined by the adapters in wiring.go, which hold no logic
// (keys.go is the same for httpapi.Keys: scoped API keys proposed through
// the proposer and read from the FSM).
//
// tlsconf (the node's certificate, key and cluster CA, reloaded on
// change) is infrastructure like the stores: New loads it and hands its
// configs to the listeners, raftstore, peer and httpapi.
//
// What stays here besides wiring: Config and its validation, the data
// dir's lock, node id and join token files, building the configured
// backend and its periodic health check, metrics registration, metadata
// backup/restore/snapshot (backup.go: raft user restore plus reconciling
// the restored members) and the console's facts about the binary.
package node
