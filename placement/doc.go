// Package placement decides where staged copies live: the consistent-hash
// ring over the active members (neither removed nor down, read from the
// replicated member records so every node computes the same ring), the
// redundancy policy (whole replicas, or K+M erasure-coded shards when the
// cluster is large enough), and the candidates for a copy being rebuilt.
//
// It does no I/O: the data path, the tier handler and repair ask it where
// to write and then write through their own interfaces. Its one dependency
// is Members, the FSM's member list.
package placement
