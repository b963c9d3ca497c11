// Package datapath is the data path of one osprey node: creating files,
// single and chunked uploads (md5 checked while streaming, bytes cut into
// pieces under a node-wide buffer budget), storing each chunk on its ring
// owners (whole replicas, or K+M erasure-coded shards), recording it
// through Raft only once enough copies are durable (a chunk of declared
// size streams to its owners while it arrives: piece.go), downloads that stream
// staged chunks (falling back to other copies or shards, switching to the
// backend if the content is tiered mid-download) or tiered objects, and
// the node-to-node copy endpoints (local chunk store, local-disk backend).
//
// Path implements httpapi.Storage and httpapi.Replicas. Its exported
// primitives (ReadPiece, PutChunkOn, OpenCopies, OpenStaged, OpenECRange,
// OpenTiered, PutObjectOn, DeleteObjectOn, DeleteChunks) are what the
// background tasks and repair build on; they consume them through their
// own small interfaces.
//
// Everything Path needs is a small interface declared in path.go: State
// (the FSM reads), Proposer (apply a command, read barrier), UIDs,
// Placement, Peers (other members' copies), Chunks (this node's chunk
// store) and Objects (the backend). Its tests run on in-memory fakes of
// all of them.
//
// Invariant: a chunk is recorded in the FSM only after the wanted number
// of copies are durable; copies of a chunk whose record certainly failed
// are collected in the background (best effort), copies of one whose
// outcome is unknown are kept.
package datapath
