package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/osprey-storage/osprey"
)

// errNotMocked is returned by a mock method whose function field is nil. It
// is not an osprey error kind, so it surfaces as a 500 and fails any test
// that did not expect the call.
var errNotMocked = errors.New("mock: method not mocked")

// callCounter records how often each mock method ran. Handlers may run on
// httptest.Server goroutines, hence the mutex.
type callCounter struct {
	mu    sync.Mutex
	calls map[string]int
}

func (c *callCounter) called(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	c.calls[name]++
}

// Calls returns how often method name ran.
func (c *callCounter) Calls(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[name]
}

// Total returns the number of calls to any method except those in skip.
func (c *callCounter) Total(skip ...string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
outer:
	for name, v := range c.calls {
		for _, s := range skip {
			if s == name {
				continue outer
			}
		}
		n += v
	}
	return n
}

// mockCluster implements Cluster with function fields. A nil IsLeaderFn
// means "this node is the leader"; other nil fields return errNotMocked.
type mockCluster struct {
	callCounter
	StatusFn             func(ctx context.Context) (ClusterStatus, error)
	NodesFn              func(ctx context.Context) ([]NodeInfo, error)
	JoinFn               func(ctx context.Context, req JoinRequest) (JoinResult, error)
	RemoveFn             func(ctx context.Context, id string) error
	TransferLeadershipFn func(ctx context.Context, id string) error
	NotReadyFn           func(ctx context.Context) []string
	IsLeaderFn           func() bool
	LeaderHTTPFn         func() string
}

var _ Cluster = (*mockCluster)(nil)

func (m *mockCluster) Status(ctx context.Context) (ClusterStatus, error) {
	m.called("Status")
	if m.StatusFn == nil {
		return ClusterStatus{}, errNotMocked
	}
	return m.StatusFn(ctx)
}

func (m *mockCluster) Nodes(ctx context.Context) ([]NodeInfo, error) {
	m.called("Nodes")
	if m.NodesFn == nil {
		return nil, errNotMocked
	}
	return m.NodesFn(ctx)
}

func (m *mockCluster) Join(ctx context.Context, req JoinRequest) (JoinResult, error) {
	m.called("Join")
	if m.JoinFn == nil {
		return JoinResult{}, errNotMocked
	}
	return m.JoinFn(ctx, req)
}

func (m *mockCluster) Remove(ctx context.Context, id string) error {
	m.called("Remove")
	if m.RemoveFn == nil {
		return errNotMocked
	}
	return m.RemoveFn(ctx, id)
}

func (m *mockCluster) TransferLeadership(ctx context.Context, id string) error {
	m.called("TransferLeadership")
	if m.TransferLeadershipFn == nil {
		return errNotMocked
	}
	return m.TransferLeadershipFn(ctx, id)
}

func (m *mockCluster) NotReady(ctx context.Context) []string {
	m.called("NotReady")
	if m.NotReadyFn == nil {
		return nil
	}
	return m.NotReadyFn(ctx)
}

func (m *mockCluster) IsLeader() bool {
	m.called("IsLeader")
	if m.IsLeaderFn == nil {
		return true
	}
	return m.IsLeaderFn()
}

func (m *mockCluster) LeaderHTTP() string {
	m.called("LeaderHTTP")
	if m.LeaderHTTPFn == nil {
		return ""
	}
	return m.LeaderHTTPFn()
}

// mockInternal implements Internal with function fields. A nil
// NodeAuthTokenFn means no token yet (""); a nil CheckJoinTokenFn rejects.
type mockInternal struct {
	callCounter
	NodeAuthTokenFn  func() string
	ApplyEncodedFn   func(ctx context.Context, cmd []byte) ([]byte, error)
	ReadIndexFn      func(ctx context.Context) (uint64, error)
	BootstrapInfoFn  func() BootstrapInfo
	CheckJoinTokenFn func(token string) bool
}

var _ Internal = (*mockInternal)(nil)

func (m *mockInternal) NodeAuthToken() string {
	m.called("NodeAuthToken")
	if m.NodeAuthTokenFn == nil {
		return ""
	}
	return m.NodeAuthTokenFn()
}

func (m *mockInternal) ApplyEncoded(ctx context.Context, cmd []byte) ([]byte, error) {
	m.called("ApplyEncoded")
	if m.ApplyEncodedFn == nil {
		return nil, errNotMocked
	}
	return m.ApplyEncodedFn(ctx, cmd)
}

func (m *mockInternal) ReadIndex(ctx context.Context) (uint64, error) {
	m.called("ReadIndex")
	if m.ReadIndexFn == nil {
		return 0, errNotMocked
	}
	return m.ReadIndexFn(ctx)
}

func (m *mockInternal) BootstrapInfo() BootstrapInfo {
	m.called("BootstrapInfo")
	if m.BootstrapInfoFn == nil {
		return BootstrapInfo{}
	}
	return m.BootstrapInfoFn()
}

func (m *mockInternal) CheckJoinToken(token string) bool {
	m.called("CheckJoinToken")
	if m.CheckJoinTokenFn == nil {
		return false
	}
	return m.CheckJoinTokenFn(token)
}

// mockStorage implements Storage with function fields; nil fields return
// errNotMocked (LinkSecretFn too, so tests set it explicitly or use the
// fixture, which does).
type mockStorage struct {
	callCounter
	LinkSecretFn       func() ([]byte, error)
	CreateFilesFn      func(ctx context.Context, items []NewFile) ([]osprey.UID, error)
	ResumeFn           func(ctx context.Context, items []ResumeItem) ([]osprey.UID, error)
	StatFn             func(ctx context.Context, uid osprey.UID) (FileInfo, error)
	CheckpointFn       func(ctx context.Context, uid osprey.UID) ([]uint32, error)
	UploadFn           func(ctx context.Context, uid osprey.UID, body io.Reader, md5 string) (FileInfo, error)
	UploadChunkFn      func(ctx context.Context, uid osprey.UID, num uint32, body io.Reader, size int64, md5 string) error
	MergeFn            func(ctx context.Context, uid osprey.UID, num uint32, size int64, md5 string) (FileInfo, error)
	OpenFn             func(ctx context.Context, uid osprey.UID) (*Object, error)
	DeleteFn           func(ctx context.Context, uid osprey.UID) error
	ListFn             func(ctx context.Context, cursor osprey.UID, limit int) ([]FileInfo, osprey.UID, error)
	LocateFn           func(ctx context.Context, uid osprey.UID) ([]string, error)
	PutLocalChunkFn    func(ctx context.Context, key ChunkRef, body io.Reader, size int64, origin CopyOrigin) (uint64, error)
	GetLocalChunkFn    func(ctx context.Context, key ChunkRef, off, n int64) (io.ReadCloser, int64, error)
	DeleteLocalChunkFn func(ctx context.Context, key ChunkRef, origin CopyOrigin, gen uint64) error
	LocalChunkGenFn    func(ctx context.Context, key ChunkRef) (uint64, error)
}

var _ Storage = (*mockStorage)(nil)

func (m *mockStorage) LinkSecret() ([]byte, error) {
	m.called("LinkSecret")
	if m.LinkSecretFn == nil {
		return nil, errNotMocked
	}
	return m.LinkSecretFn()
}

func (m *mockStorage) CreateFiles(ctx context.Context, items []NewFile) ([]osprey.UID, error) {
	m.called("CreateFiles")
	if m.CreateFilesFn == nil {
		return nil, errNotMocked
	}
	return m.CreateFilesFn(ctx, items)
}

func (m *mockStorage) Resume(ctx context.Context, items []ResumeItem) ([]osprey.UID, error) {
	m.called("Resume")
	if m.ResumeFn == nil {
		return nil, errNotMocked
	}
	return m.ResumeFn(ctx, items)
}

func (m *mockStorage) Stat(ctx context.Context, uid osprey.UID) (FileInfo, error) {
	m.called("Stat")
	if m.StatFn == nil {
		return FileInfo{}, errNotMocked
	}
	return m.StatFn(ctx, uid)
}

func (m *mockStorage) Checkpoint(ctx context.Context, uid osprey.UID) ([]uint32, error) {
	m.called("Checkpoint")
	if m.CheckpointFn == nil {
		return nil, errNotMocked
	}
	return m.CheckpointFn(ctx, uid)
}

func (m *mockStorage) Upload(ctx context.Context, uid osprey.UID, body io.Reader, _ int64, md5 string) (FileInfo, error) {
	m.called("Upload")
	if m.UploadFn == nil {
		return FileInfo{}, errNotMocked
	}
	return m.UploadFn(ctx, uid, body, md5)
}

func (m *mockStorage) UploadChunk(ctx context.Context, uid osprey.UID, num uint32, body io.Reader, size int64, md5 string) error {
	m.called("UploadChunk")
	if m.UploadChunkFn == nil {
		return errNotMocked
	}
	return m.UploadChunkFn(ctx, uid, num, body, size, md5)
}

func (m *mockStorage) Merge(ctx context.Context, uid osprey.UID, num uint32, size int64, md5 string) (FileInfo, error) {
	m.called("Merge")
	if m.MergeFn == nil {
		return FileInfo{}, errNotMocked
	}
	return m.MergeFn(ctx, uid, num, size, md5)
}

func (m *mockStorage) Open(ctx context.Context, uid osprey.UID) (*Object, error) {
	m.called("Open")
	if m.OpenFn == nil {
		return nil, errNotMocked
	}
	return m.OpenFn(ctx, uid)
}

func (m *mockStorage) Delete(ctx context.Context, uid osprey.UID) error {
	m.called("Delete")
	if m.DeleteFn == nil {
		return errNotMocked
	}
	return m.DeleteFn(ctx, uid)
}

func (m *mockStorage) List(ctx context.Context, cursor osprey.UID, limit int) ([]FileInfo, osprey.UID, error) {
	m.called("List")
	if m.ListFn == nil {
		return nil, 0, errNotMocked
	}
	return m.ListFn(ctx, cursor, limit)
}

func (m *mockStorage) Locate(ctx context.Context, uid osprey.UID) ([]string, error) {
	m.called("Locate")
	if m.LocateFn == nil {
		return nil, errNotMocked
	}
	return m.LocateFn(ctx, uid)
}

func (m *mockStorage) PutLocalChunk(ctx context.Context, key ChunkRef, body io.Reader, size int64, origin CopyOrigin) (uint64, error) {
	m.called("PutLocalChunk")
	if m.PutLocalChunkFn == nil {
		return 0, errNotMocked
	}
	return m.PutLocalChunkFn(ctx, key, body, size, origin)
}

func (m *mockStorage) GetLocalChunk(ctx context.Context, key ChunkRef, off, n int64) (io.ReadCloser, int64, error) {
	m.called("GetLocalChunk")
	if m.GetLocalChunkFn == nil {
		return nil, 0, errNotMocked
	}
	return m.GetLocalChunkFn(ctx, key, off, n)
}

func (m *mockStorage) DeleteLocalChunk(ctx context.Context, key ChunkRef, origin CopyOrigin, gen uint64) error {
	m.called("DeleteLocalChunk")
	if m.DeleteLocalChunkFn == nil {
		return errNotMocked
	}
	return m.DeleteLocalChunkFn(ctx, key, origin, gen)
}

func (m *mockStorage) LocalChunkGen(ctx context.Context, key ChunkRef) (uint64, error) {
	m.called("LocalChunkGen")
	if m.LocalChunkGenFn == nil {
		return 0, errNotMocked
	}
	return m.LocalChunkGenFn(ctx, key)
}

// mockTasks implements Tasks with function fields.
type mockTasks struct {
	callCounter
	ListTasksFn func(ctx context.Context, state string) ([]TaskInfo, error)
	RetryTaskFn func(ctx context.Context, id uint64) (TaskInfo, error)
}

var _ Tasks = (*mockTasks)(nil)

func (m *mockTasks) ListTasks(ctx context.Context, state string) ([]TaskInfo, error) {
	m.called("ListTasks")
	if m.ListTasksFn == nil {
		return nil, errNotMocked
	}
	return m.ListTasksFn(ctx, state)
}

func (m *mockTasks) RetryTask(ctx context.Context, id uint64) (TaskInfo, error) {
	m.called("RetryTask")
	if m.RetryTaskFn == nil {
		return TaskInfo{}, errNotMocked
	}
	return m.RetryTaskFn(ctx, id)
}

// mockReplicas implements Replicas with function fields.
type mockReplicas struct {
	callCounter
	PutLocalObjectFn     func(ctx context.Context, bucket, key string, body io.Reader, size int64, md5 string) error
	GetLocalObjectFn     func(ctx context.Context, bucket, key string, off, n int64) (io.ReadCloser, error)
	GetCheckedObjectFn   func(ctx context.Context, bucket, key string, id osprey.UID, off, n int64) (io.ReadCloser, error)
	DeleteLocalObjectFn  func(ctx context.Context, bucket, key, version string) error
	LocalObjectVersionFn func(ctx context.Context, bucket, key string) (string, error)
}

var _ Replicas = (*mockReplicas)(nil)

func (m *mockReplicas) PutLocalObject(ctx context.Context, bucket, key string, body io.Reader, size int64, md5 string) error {
	m.called("PutLocalObject")
	if m.PutLocalObjectFn == nil {
		return errNotMocked
	}
	return m.PutLocalObjectFn(ctx, bucket, key, body, size, md5)
}

func (m *mockReplicas) GetLocalObject(ctx context.Context, bucket, key string, off, n int64) (io.ReadCloser, error) {
	m.called("GetLocalObject")
	if m.GetLocalObjectFn == nil {
		return nil, errNotMocked
	}
	return m.GetLocalObjectFn(ctx, bucket, key, off, n)
}

func (m *mockReplicas) GetCheckedObject(ctx context.Context, bucket, key string, id osprey.UID, off, n int64) (io.ReadCloser, error) {
	m.called("GetCheckedObject")
	if m.GetCheckedObjectFn == nil {
		return nil, errNotMocked
	}
	return m.GetCheckedObjectFn(ctx, bucket, key, id, off, n)
}

func (m *mockReplicas) DeleteLocalObject(ctx context.Context, bucket, key, version string) error {
	m.called("DeleteLocalObject")
	if m.DeleteLocalObjectFn == nil {
		return errNotMocked
	}
	return m.DeleteLocalObjectFn(ctx, bucket, key, version)
}

func (m *mockReplicas) LocalObjectVersion(ctx context.Context, bucket, key string) (string, error) {
	m.called("LocalObjectVersion")
	if m.LocalObjectVersionFn == nil {
		return "", errNotMocked
	}
	return m.LocalObjectVersionFn(ctx, bucket, key)
}

// readyCluster adds the optional ReadyDetails capability to mockCluster.
type readyCluster struct {
	*mockCluster
	ReadyDetailsFn func() map[string]string
}

func (c readyCluster) ReadyDetails() map[string]string { return c.ReadyDetailsFn() }

// mockDedup answers proof-of-possession calls.
type mockDedup struct {
	ChallengeFn func(ctx context.Context, c DedupClaim) (DedupChallenge, error)
	ProveFn     func(ctx context.Context, challenge, proof string) (string, osprey.UID, error)
}

func (m *mockDedup) DedupChallenge(ctx context.Context, c DedupClaim) (DedupChallenge, error) {
	if m.ChallengeFn == nil {
		return DedupChallenge{ID: "c.s", Nonce: "00112233445566778899aabbccddeeff", Offset: 0, Length: c.Size,
			ExpiresAt: time.Date(2026, 12, 4, 5, 1, 0, 0, time.UTC)}, nil
	}
	return m.ChallengeFn(ctx, c)
}

func (m *mockDedup) DedupProve(ctx context.Context, challenge, proof string) (string, osprey.UID, error) {
	if m.ProveFn == nil {
		return "", 0, fmt.Errorf("%w: proof of possession failed", osprey.ErrForbidden)
	}
	return m.ProveFn(ctx, challenge, proof)
}
