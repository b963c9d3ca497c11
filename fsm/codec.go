package fsm

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
)

// CommandType identifies a command in the Raft log. Numbers are
// append-only: a number is never reused or given a new meaning, and 0 means
// unknown.
type CommandType uint16

// Command types. Append new ones at the end; never renumber.
const (
	CmdUnknown        CommandType = 0
	CmdNoop           CommandType = 1 // barrier; carries nothing
	CmdInitCluster    CommandType = 2 // cluster id, link secret, join-token hash
	CmdNodeUpsert     CommandType = 3 // add or update a member, assigns its worker id
	CmdNodeRemove     CommandType = 4 // mark a member removed (worker id never reused)
	CmdFilesCreate    CommandType = 5 // create uids for /link/upload
	CmdChunkPut       CommandType = 6 // record a stored chunk of an upload
	CmdFileComplete   CommandType = 7 // single upload finished
	CmdMerge          CommandType = 8 // chunked upload declared complete
	CmdResume         CommandType = 9 // new uid sharing stored content (dedup)
	CmdFileDelete     CommandType = 10
	CmdTaskLease      CommandType = 11 // lease (or renew) background tasks
	CmdTaskFail       CommandType = 12 // a failed attempt: backoff or dead
	CmdTaskDone       CommandType = 13 // a finished task
	CmdTierDone       CommandType = 14 // content verified in the backend
	CmdTierFailed     CommandType = 15 // content bytes do not match its md5
	CmdTaskRetry      CommandType = 16 // dead task back to pending
	CmdExpire         CommandType = 17 // drop abandoned uploads
	CmdSetSettings    CommandType = 18 // cluster-wide settings
	CmdChunkMoved     CommandType = 19 // a rebuilt chunk copy replaces a lost one
	CmdObjectMoved    CommandType = 20 // a rebuilt local object copy replaces a lost one
	CmdChunkConverted CommandType = 21 // coded chunk replaced by replicas (too few members)
	CmdNodeDown       CommandType = 22 // member unreachable past the grace period: repair its copies
	CmdNodeUp         CommandType = 23 // member reachable again
	CmdRestored       CommandType = 24 // reconcile a state restored from a backup with the current members
	// The S3 namespace (s3.go).
	CmdBucketCreate      CommandType = 25 // create an S3 bucket
	CmdBucketDelete      CommandType = 26 // delete an empty S3 bucket
	CmdObjectBind        CommandType = 27 // bind bucket/key to a complete uid, deleting the uid it replaces
	CmdObjectUnbind      CommandType = 28 // remove bucket/key and delete its uid
	CmdMultipartCreate   CommandType = 29 // start a multipart upload (an uploading uid whose chunks are parts)
	CmdMultipartComplete CommandType = 30 // complete from the listed parts and bind the key
	CmdMultipartAbort    CommandType = 31 // drop a multipart upload and its parts
	CmdObjectPut         CommandType = 32 // an S3 PUT in one entry: create, complete and bind
	// Scoped API keys (apikeys.go).
	CmdKeyCreate CommandType = 33 // record a scoped API key (the hash of its secret)
	CmdKeyRevoke CommandType = 34 // revoke a scoped API key
	// Dedup (dedup.go).
	CmdDedupShare CommandType = 35 // new uid sharing a content whose possession was proven
	// Rebalancing (rebalance.go).
	CmdRebalancePlan CommandType = 50 // queue moves to new ring owners, in tasks of many moves
	CmdRebalanceDone CommandType = 51 // record a rebalance task's moves and release the old copies
	CmdBatch         CommandType = 40 // group commit: several commands in one entry (batch.go)
)

// FeatureLevel is what this build's FSM understands beyond the first
// release's behaviour; members announce it (NodeUpsert.Level) and the
// leader turns a feature on only once every member is at its level
// (ClusterLevel), so no replica applies an entry it reads differently.
//
//	1: Settings.InlineMax (contents completed inline, never tiered)
//	2: Chunk.Workers in ChunkPut, FileComplete and ObjectPut (an owner
//	   that is a later incarnation of the member written to is repaired)
//	3: TierDone.KeepSums (a tiered content keeps its chunks' sizes and
//	   xxhash64 sums, Content.Sums, for verified parallel downloads)
//	4: TierDone.KeepOneSum (a tiered content of one chunk keeps its sum
//	   too: its holders check reads by it instead of by the md5)
const FeatureLevel uint32 = FeatureLevelOneSum

// Feature levels.
const (
	FeatureLevelInline  uint32 = 1
	FeatureLevelWorkers uint32 = 2
	FeatureLevelSums    uint32 = 3
	FeatureLevelOneSum  uint32 = 4
)

// CommandVersion is the only envelope version this build understands.
const CommandVersion uint8 = 1

var typeNames = map[CommandType]string{
	CmdNoop: "noop", CmdInitCluster: "init_cluster", CmdNodeUpsert: "node_upsert",
	CmdNodeRemove: "node_remove", CmdFilesCreate: "files_create", CmdChunkPut: "chunk_put",
	CmdFileComplete: "file_complete", CmdMerge: "merge", CmdResume: "resume",
	CmdFileDelete: "file_delete", CmdTaskLease: "task_lease", CmdTaskFail: "task_fail",
	CmdTaskDone: "task_done", CmdTierDone: "tier_done", CmdTierFailed: "tier_failed",
	CmdTaskRetry: "task_retry", CmdExpire: "expire", CmdSetSettings: "set_settings",
	CmdChunkMoved: "chunk_moved", CmdObjectMoved: "object_moved", CmdChunkConverted: "chunk_converted",
	CmdNodeDown: "node_down", CmdNodeUp: "node_up", CmdRestored: "restored",
	CmdBucketCreate: "bucket_create", CmdBucketDelete: "bucket_delete", CmdObjectBind: "object_bind",
	CmdObjectUnbind: "object_unbind", CmdMultipartCreate: "multipart_create",
	CmdMultipartComplete: "multipart_complete", CmdMultipartAbort: "multipart_abort",
	CmdObjectPut: "object_put", CmdKeyCreate: "key_create", CmdKeyRevoke: "key_revoke",
	CmdDedupShare: "dedup_share", CmdRebalancePlan: "rebalance_plan", CmdRebalanceDone: "rebalance_done",
	CmdBatch: "batch",
}

// String returns the command's name for logs and metrics.
func (t CommandType) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type_%d", uint16(t))
}

// headerLen is version (1 byte) + type (2 bytes, big endian).
const headerLen = 3

// ErrDecode is returned by Decode for an entry that is not a valid envelope.
var ErrDecode = errors.New("fsm: cannot decode command")

// Encode builds the log entry for a command: a 3-byte header (version,
// type) followed by the JSON payload. Payload structs carry explicit json
// tags, so field renames in Go never change the encoding. It returns an
// error for CmdUnknown and for a payload that does not decode back into its
// own type (Apply would panic on every replica).
func Encode(t CommandType, payload any) ([]byte, error) {
	if t == CmdUnknown {
		return nil, fmt.Errorf("fsm: encode: unknown command type")
	}
	var body []byte
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			return nil, fmt.Errorf("fsm: encode %s: %w", t, err)
		}
		// Every replica panics on a committed entry it cannot decode, so
		// refuse to build one here (a zero uid encodes as "0", which
		// osprey.UID does not decode).
		if err := json.Unmarshal(b, reflect.New(reflect.TypeOf(payload)).Interface()); err != nil {
			return nil, fmt.Errorf("fsm: encode %s: payload does not decode: %w", t, err)
		}
		body = b
	}
	return frame(t, body), nil
}

// frame puts the envelope header before body.
func frame(t CommandType, body []byte) []byte {
	out := make([]byte, headerLen, headerLen+len(body))
	out[0] = CommandVersion
	binary.BigEndian.PutUint16(out[1:3], uint16(t))
	return append(out, body...)
}

// EncodeBatch builds a CmdBatch entry of commands that Encode built (or
// Check accepted): each was proven to decode already, and a batch of them
// decodes as long as they do, so it skips Encode's decoding round trip
// (5% of a node's CPU under small uploads went to decoding what it had
// just encoded, once per command and again per batch).
func EncodeBatch(cmds [][]byte) ([]byte, error) {
	b, err := json.Marshal(Batch{Cmds: cmds})
	if err != nil {
		return nil, fmt.Errorf("fsm: encode %s: %w", CmdBatch, err)
	}
	return frame(CmdBatch, b), nil
}

// Decode splits an entry into its type and payload. It returns ErrDecode
// for a short entry, an unknown version or an unknown type.
func Decode(b []byte) (CommandType, []byte, error) {
	if len(b) < headerLen {
		return 0, nil, fmt.Errorf("%w: %d bytes", ErrDecode, len(b))
	}
	if b[0] != CommandVersion {
		return 0, nil, fmt.Errorf("%w: version %d", ErrDecode, b[0])
	}
	t := CommandType(binary.BigEndian.Uint16(b[1:3]))
	if _, ok := typeNames[t]; !ok {
		return 0, nil, fmt.Errorf("%w: type %d", ErrDecode, uint16(t))
	}
	return t, b[headerLen:], nil
}

// payloads gives a new value of each command's payload type (CmdNoop has
// none).
var payloads = map[CommandType]func() any{
	CmdInitCluster:       func() any { return new(InitCluster) },
	CmdNodeUpsert:        func() any { return new(NodeUpsert) },
	CmdNodeRemove:        func() any { return new(NodeRemove) },
	CmdFilesCreate:       func() any { return new(FilesCreate) },
	CmdChunkPut:          func() any { return new(ChunkPut) },
	CmdFileComplete:      func() any { return new(FileComplete) },
	CmdMerge:             func() any { return new(Merge) },
	CmdResume:            func() any { return new(Resume) },
	CmdFileDelete:        func() any { return new(FileDelete) },
	CmdTaskLease:         func() any { return new(TaskLease) },
	CmdTaskFail:          func() any { return new(TaskFail) },
	CmdTaskDone:          func() any { return new(TaskDone) },
	CmdTierDone:          func() any { return new(TierDone) },
	CmdTierFailed:        func() any { return new(TierFailed) },
	CmdTaskRetry:         func() any { return new(TaskRetry) },
	CmdExpire:            func() any { return new(Expire) },
	CmdSetSettings:       func() any { return new(SetSettings) },
	CmdChunkMoved:        func() any { return new(ChunkMoved) },
	CmdObjectMoved:       func() any { return new(ObjectMoved) },
	CmdChunkConverted:    func() any { return new(ChunkConverted) },
	CmdNodeDown:          func() any { return new(NodeDown) },
	CmdNodeUp:            func() any { return new(NodeUp) },
	CmdRestored:          func() any { return new(Restored) },
	CmdBucketCreate:      func() any { return new(BucketCreate) },
	CmdBucketDelete:      func() any { return new(BucketDelete) },
	CmdObjectBind:        func() any { return new(ObjectBind) },
	CmdObjectUnbind:      func() any { return new(ObjectUnbind) },
	CmdMultipartCreate:   func() any { return new(MultipartCreate) },
	CmdMultipartComplete: func() any { return new(MultipartComplete) },
	CmdMultipartAbort:    func() any { return new(MultipartAbort) },
	CmdObjectPut:         func() any { return new(ObjectPut) },
	CmdKeyCreate:         func() any { return new(KeyCreate) },
	CmdKeyRevoke:         func() any { return new(KeyRevoke) },
	CmdDedupShare:        func() any { return new(DedupShare) },
	CmdRebalancePlan:     func() any { return new(RebalancePlan) },
	CmdRebalanceDone:     func() any { return new(RebalanceDone) },
	CmdBatch:             func() any { return new(Batch) },
}

// Check reports whether b is an entry every replica can apply: a known
// version and type, and a payload that decodes into its type. A leader
// runs it on every command it is handed before proposing it: a committed
// entry that does not decode makes every replica panic.
func Check(b []byte) error {
	t, payload, err := Decode(b)
	if err != nil {
		return err
	}
	if t == CmdBatch {
		return checkBatch(payload)
	}
	newPayload, ok := payloads[t]
	if !ok || len(payload) == 0 {
		return nil
	}
	if err := json.Unmarshal(payload, newPayload()); err != nil {
		return fmt.Errorf("%w: %s payload: %v", ErrDecode, t, err)
	}
	return nil
}
