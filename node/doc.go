// Package node is the composition root of one osprey node: New builds and
// wires the raft store, the FSM, the chunk store, the HTTP API and the
// background workers from a Config; Start brings the node up and forms or
// joins a cluster; Close shuts it down in order. cmd/osprey and the
// in-process cluster tests both build nodes through this package.
package node
