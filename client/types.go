package client

// This file holds every JSON shape the client exchanges with a node, so
// they can be aligned with the server in one place.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// envelope is the reply wrapper of SPEC §1. Error replies also carry
// request_id.
type envelope struct {
	Code      Flex            `json:"code"`
	Message   string          `json:"message"`
	Data      json.RawMessage `json:"data"`
	RequestID string          `json:"request_id"`
}

// Flex holds a JSON scalar (string, number, bool) as its text form. It is
// used for fields whose JSON type is not fixed by the contract (ids,
// timestamps, hashes), so a server sending 7 or "7" decodes the same way.
// null decodes to "".
type Flex string

// UnmarshalJSON implements json.Unmarshaler.
func (f *Flex) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*f = ""
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = Flex(s)
	default:
		*f = Flex(b)
	}
	return nil
}

// MarshalJSON implements json.Marshaler; the value is always a string.
func (f Flex) MarshalJSON() ([]byte, error) { return json.Marshal(string(f)) }

// String returns the text form.
func (f Flex) String() string { return string(f) }

// Int returns the value as an integer, or 0 if it is not one.
func (f Flex) Int() int64 {
	v, _ := strconv.ParseInt(string(f), 10, 64)
	return v
}

// FlexInt is an integer that may arrive as a JSON number or a decimal
// string (osproxy sends some sizes as strings). null and "" decode to 0.
type FlexInt int64

// UnmarshalJSON implements json.Unmarshaler.
func (n *FlexInt) UnmarshalJSON(b []byte) error {
	var f Flex
	if err := f.UnmarshalJSON(b); err != nil {
		return err
	}
	if f == "" {
		*n = 0
		return nil
	}
	v, err := strconv.ParseInt(string(f), 10, 64)
	if err != nil {
		return fmt.Errorf("client: not an integer: %s", b)
	}
	*n = FlexInt(v)
	return nil
}

// ResumeItem is one entry of a POST /resume request.
type ResumeItem struct {
	MD5  string `json:"md5"`  // lowercase hex md5 of the whole file
	Path string `json:"path"` // name the new uid gets on a hit
}

type resumeRequest struct {
	Data []ResumeItem `json:"data"`
}

// ResumeResult is one entry of a POST /resume reply. UID is "" when no
// complete file with that md5 exists.
type ResumeResult struct {
	MD5 string `json:"md5"`
	UID string `json:"uid"`
}

// DedupChallenge is the reply of POST /dedup/challenge: prove possession
// of the claimed content with HMAC-SHA256(hex-decoded Nonce,
// bytes[Offset:Offset+Length]) before ExpiresAt.
type DedupChallenge struct {
	ID        string    `json:"challenge"`
	Nonce     string    `json:"nonce"`
	Offset    int64     `json:"offset"`
	Length    int64     `json:"length"`
	ExpiresAt time.Time `json:"expires_at"`
}

type dedupChallengeRequest struct {
	MD5    string `json:"md5"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Path   string `json:"path"`
}

type dedupProveRequest struct {
	Challenge string `json:"challenge"`
	Proof     string `json:"proof"`
}

type linkUploadRequest struct {
	FilePath []string `json:"filePath"`
	Expire   int64    `json:"expire,omitempty"`
}

// UploadLink is one entry of a POST /link/upload reply. URLs are relative
// to the node that issued them.
type UploadLink struct {
	UID  string     `json:"uid"`
	Path string     `json:"path"`
	URL  UploadURLs `json:"url"`
}

// UploadURLs are the signed upload URLs of one uid.
type UploadURLs struct {
	Single string    `json:"single"`
	Multi  MultiURLs `json:"multi"`
}

// MultiURLs are the signed chunk-upload and merge URLs of one uid.
type MultiURLs struct {
	Upload string `json:"upload"`
	Merge  string `json:"merge"`
}

type linkDownloadRequest struct {
	UID    []string `json:"uid"`
	Expire int64    `json:"expire,omitempty"`
}

// DownloadLink is one entry of a POST /link/download reply. For an unknown
// or incomplete uid URL is "" and Error (when the server sends one) says why.
type DownloadLink struct {
	UID   string       `json:"uid"`
	URL   string       `json:"url"`
	Meta  DownloadMeta `json:"meta"`
	Error string       `json:"error,omitempty"`
	Code  Flex         `json:"code,omitempty"`
}

// DownloadMeta describes the file behind a download link.
type DownloadMeta struct {
	SrcName string  `json:"srcName"`
	DstName string  `json:"dstName"`
	Height  int     `json:"height"`
	Width   int     `json:"width"`
	MD5     string  `json:"md5"`
	Size    FlexInt `json:"size"` // a string on the wire, as in osproxy
}

// Object states reported by GET /object.
const (
	StateUploading = "uploading"
	StateComplete  = "complete"
	StateTiered    = "tiered"
	StateFailed    = "failed"
)

// Object is the metadata of one uid (GET /object).
type Object struct {
	UID         string          `json:"uid"`
	Name        string          `json:"name"`
	Size        int64           `json:"size"`
	MD5         string          `json:"md5"`
	ContentType string          `json:"content_type"`
	Bucket      string          `json:"bucket"`
	State       string          `json:"state"`
	Location    string          `json:"location"`
	CreatedAt   Flex            `json:"created_at"`
	UpdatedAt   Flex            `json:"updated_at,omitempty"`
	Chunks      json.RawMessage `json:"chunks,omitempty"`
}

// ObjectPage is one page of GET /objects. NextCursor is "" on the last page.
type ObjectPage struct {
	Items      []Object `json:"items"`
	NextCursor string   `json:"next_cursor"`
}

// ClusterStatus is the reply of GET /cluster/status.
type ClusterStatus struct {
	ID           string   `json:"id"`
	ClusterID    string   `json:"cluster_id,omitempty"`
	State        string   `json:"state"`
	Leader       Leader   `json:"leader"`
	Term         uint64   `json:"term"`
	CommitIndex  uint64   `json:"commit_index"`
	AppliedIndex uint64   `json:"applied_index"`
	FSMHash      Flex     `json:"fsm_hash"`
	FSMIndex     uint64   `json:"fsm_index,omitempty"`
	Members      []Member `json:"members"`
	Storage      *Storage `json:"storage,omitempty"`
	// Version describes the node's binary (version, commit, date, go).
	Version map[string]string `json:"version,omitempty"`
}

// Storage summarises staged-data protection and background work.
type Storage struct {
	Redundancy     string `json:"redundancy"`
	Backend        string `json:"backend"`
	Files          int    `json:"files"`
	StagedCopies   int    `json:"staged_copies"`
	UnderProtected int    `json:"under_protected"`
	// Protection is "full" or "degraded" (a member unreachable or down,
	// or copies under-protected); older servers leave it empty.
	Protection string           `json:"protection"`
	Degraded   []DegradedMember `json:"degraded,omitempty"`
	Tasks      map[string]int   `json:"tasks"`
	// Rebalance reports moves to new ring owners; older servers and
	// clusters that never rebalanced leave it out.
	Rebalance *Rebalance `json:"rebalance,omitempty"`
}

// Rebalance is the cluster-wide progress of moving copies to new ring
// owners after membership changes.
type Rebalance struct {
	PendingMoves int64      `json:"pending_moves"`
	PlannedMoves int64      `json:"planned_moves"`
	MovedCopies  int64      `json:"moved_copies"`
	MovedBytes   int64      `json:"moved_bytes"`
	Members      []string   `json:"members,omitempty"`
	StartedAt    *time.Time `json:"started_at,omitempty"`
}

// Leader identifies the current Raft leader; ID is "" when there is none.
type Leader struct {
	ID       string `json:"id"`
	HTTPAddr string `json:"http_addr"`
	RaftAddr string `json:"raft_addr"`
}

// Member is one Raft configuration entry in ClusterStatus.
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	Suffrage string `json:"suffrage"`
	WorkerID Flex   `json:"worker_id"`
}

// Node is one entry of GET /cluster/nodes, with live reachability.
type Node struct {
	ID        string  `json:"id"`
	RaftAddr  string  `json:"raft_addr"`
	HTTPAddr  string  `json:"http_addr"`
	Suffrage  string  `json:"suffrage"`
	WorkerID  Flex    `json:"worker_id"`
	Leader    bool    `json:"leader"`
	Reachable bool    `json:"reachable"`
	RTTMillis float64 `json:"rtt_ms"`
	Error     string  `json:"error,omitempty"` // why the node is unreachable
}

// JoinRequest is the body of POST /cluster/join.
type JoinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	Token    string `json:"token"`
}

type leaderTransferRequest struct {
	ID string `json:"id,omitempty"`
}

// Task is one durable background task (GET /tasks).
type Task struct {
	ID          Flex   `json:"id"`
	Type        string `json:"type"`
	Target      Flex   `json:"target"`
	State       string `json:"state"`
	Attempts    int    `json:"attempts"`
	LeaseHolder string `json:"lease_holder"`
	LeaseExpiry Flex   `json:"lease_expiry"`
	LastError   string `json:"last_error"`
	NextAttempt Flex   `json:"next_attempt"`
}

// DegradedMember is a member that costs protection now.
type DegradedMember struct {
	ID               string     `json:"id"`
	UnreachableSince *time.Time `json:"unreachable_since,omitempty"`
	Down             bool       `json:"down"`
	RepairAt         *time.Time `json:"repair_at,omitempty"`
}
