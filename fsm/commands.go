package fsm

import (
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/osprey-storage/osprey"
)

// InitCluster is proposed once, by the bootstrapping node. A second
// InitCluster is a no-op that returns the existing cluster id.
type InitCluster struct {
	ClusterID     string `json:"cluster_id"`
	Secret        []byte `json:"secret"`          // link-signing secret, 32 random bytes
	JoinTokenHash string `json:"join_token_hash"` // hex sha256 of the join token
	Time          int64  `json:"time"`
}

// InitClusterResult is the result of InitCluster.
type InitClusterResult struct {
	ClusterID string `json:"cluster_id"`
}

// NodeUpsert adds a member or updates its addresses.
type NodeUpsert struct {
	ID       osprey.NodeID `json:"id"`
	RaftAddr string        `json:"raft_addr"`
	HTTPAddr string        `json:"http_addr"`
	Time     int64         `json:"time"`
	// Level is the FeatureLevel of the member's build (0 from builds
	// before levels existed).
	Level uint32 `json:"level,omitempty"`
}

// NodeRemove marks a member removed.
type NodeRemove struct {
	ID   osprey.NodeID `json:"id"`
	Time int64         `json:"time"`
}

// NewFile is one file to create in FilesCreate.
type NewFile struct {
	UID    osprey.UID `json:"uid"`
	Name   string     `json:"name"`
	Bucket string     `json:"bucket"`
	// Tenant owns the file (osprey.Principal.Tenant); "" is the shared
	// namespace of admin credentials.
	Tenant string `json:"tenant,omitempty"`
}

// FilesCreate creates uploading files (POST /link/upload).
type FilesCreate struct {
	Files []NewFile `json:"files"`
	Time  int64     `json:"time"`
}

// ChunkPut records a chunk whose bytes the owners have durably stored.
type ChunkPut struct {
	UID   osprey.UID `json:"uid"`
	Chunk Chunk      `json:"chunk"`
	Time  int64      `json:"time"`
}

// ChunkPutResult tells the proposer what became of the previous copy.
type ChunkPutResult struct {
	// Replaced is the previous record for this chunk number whose bytes may
	// now be garbage on owners that are not owners of the new record.
	Replaced *Chunk `json:"replaced,omitempty"`
	// Duplicate is true when an identical chunk was already recorded.
	Duplicate bool `json:"duplicate,omitempty"`
}

// FileComplete finishes a single-request upload, stored as the given
// chunks (a large body is cut into pieces).
type FileComplete struct {
	UID    osprey.UID `json:"uid"`
	Chunks []Chunk    `json:"chunks"`
	Size   int64      `json:"size"`
	MD5    string     `json:"md5"`
	// SHA256 is the hex SHA-256 of the bytes, hashed as they arrived; part
	// of the dedup key. "" from earlier builds.
	SHA256 string `json:"sha256,omitempty"`
	Time   int64  `json:"time"`
}

// Merge declares a chunked upload complete.
type Merge struct {
	UID  osprey.UID `json:"uid"`
	Num  uint32     `json:"num"`
	Size int64      `json:"size"`
	MD5  string     `json:"md5"`
	Time int64      `json:"time"`
}

// CompleteResult is the result of FileComplete and Merge.
type CompleteResult struct {
	File File `json:"file"`
	// Garbage lists staged chunks no file references any more (the upload
	// deduplicated onto existing content, or chunks beyond num). The
	// proposer deletes them from their owners.
	Garbage []Chunk `json:"garbage,omitempty"`
	// Already is true when the file was complete with the same content.
	Already bool `json:"already,omitempty"`
	// Content is the file's content as the completion left it (not set
	// when Already, nor by earlier builds), so the caller can answer
	// without reading the record back.
	Content *ContentInfo `json:"content_info,omitempty"`
}

// ContentInfo is what a completion's caller shows of the file's content.
type ContentInfo struct {
	Chunks   int          `json:"chunks"`
	State    ContentState `json:"state"`
	Inline   bool         `json:"inline,omitempty"`
	Location *Location    `json:"location,omitempty"`
}

func contentInfo(ct *Content) *ContentInfo {
	ci := &ContentInfo{Chunks: len(ct.Chunks), State: ct.State, Inline: ct.Inline}
	if ct.Location != nil {
		loc := *ct.Location
		loc.Nodes = append([]osprey.NodeID(nil), loc.Nodes...)
		ci.Location = &loc
	}
	return ci
}

// ResumeItem asks for a new uid sharing content with the given md5.
type ResumeItem struct {
	UID    osprey.UID `json:"uid"` // minted by the proposer; unused if no content
	Name   string     `json:"name"`
	Bucket string     `json:"bucket"`
	MD5    string     `json:"md5"`
	// Tenant owns the new file; dedup matches only this tenant's content.
	Tenant string `json:"tenant,omitempty"`
}

// Resume creates files for every item whose content exists (dedup).
type Resume struct {
	Items []ResumeItem `json:"items"`
	Time  int64        `json:"time"`
}

// ResumeResult lists, per item in order, the created uid or 0.
type ResumeResult struct {
	UIDs []osprey.UID `json:"uids"`
}

// FileDelete removes a file.
type FileDelete struct {
	UID  osprey.UID `json:"uid"`
	Time int64      `json:"time"`
}

// DeleteResult tells the proposer which stored bytes became unreferenced.
type DeleteResult struct {
	Garbage []Chunk  `json:"garbage,omitempty"`
	Content *Content `json:"content,omitempty"` // content whose last reference went
}

func (t *tx) applyInit(c *InitCluster) (any, error) {
	if t.meta.ClusterID != "" {
		return InitClusterResult{ClusterID: t.meta.ClusterID}, nil
	}
	if c.ClusterID == "" || len(c.Secret) < 16 {
		return nil, errorf(ErrInvalid, "init cluster: missing id or short secret")
	}
	t.meta.ClusterID, t.meta.Secret, t.meta.JoinTokenHash, t.meta.CreatedAt = c.ClusterID, c.Secret, c.JoinTokenHash, c.Time
	t.setMeta()
	return InitClusterResult{ClusterID: t.meta.ClusterID}, nil
}

func (t *tx) applyNodeUpsert(c *NodeUpsert) (any, error) {
	if c.ID == "" || c.RaftAddr == "" {
		return nil, errorf(ErrInvalid, "node upsert: missing id or raft address")
	}
	n, ok := t.node(c.ID)
	if ok && !n.Removed {
		n.RaftAddr, n.HTTPAddr, n.Level = c.RaftAddr, c.HTTPAddr, c.Level
		t.putNode(n)
		return *n, nil
	}
	// A new member, or one coming back after removal, gets a fresh worker
	// id: its old data dir (and uid high-water mark) may be gone, so reusing
	// the old id could repeat uids.
	n = &Node{ID: c.ID, RaftAddr: c.RaftAddr, HTTPAddr: c.HTTPAddr, WorkerID: t.meta.NextWorkerID, JoinedAt: c.Time, Level: c.Level}
	t.meta.NextWorkerID++
	t.setMeta()
	t.putNode(n)
	return *n, nil
}

func (t *tx) applyNodeRemove(c *NodeRemove) (any, error) {
	n, ok := t.node(c.ID)
	if !ok {
		return nil, errorf(ErrNotFound, "node %s not found", c.ID)
	}
	if !n.Removed {
		n.Removed = true
		t.putNode(n)
		// Rebuild every copy it held elsewhere, and stop counting its
		// copies at once: it may come back under the same id with an empty
		// disk, and must not look like a holder of what it lost.
		t.enqueueRepairs(c.ID, c.Time)
		t.stripOwner(c.ID)
	}
	return *n, nil
}

func (t *tx) applyFilesCreate(c *FilesCreate) (any, error) {
	for _, f := range c.Files {
		if f.UID == 0 || f.Name == "" {
			return nil, errorf(ErrInvalid, "files create: missing uid or name")
		}
		if _, ok := t.file(f.UID); ok {
			return nil, errorf(ErrConflict, "uid %s already exists", f.UID)
		}
	}
	for _, f := range c.Files {
		t.createFile(f.UID, f.Name, f.Bucket, f.Tenant, c.Time)
	}
	return nil, nil
}

// createFile writes a new uploading file (FilesCreate, MultipartCreate).
func (t *tx) createFile(uid osprey.UID, name, bucket, tenant string, now int64) {
	t.putFile(&File{UID: uid, Name: name, Bucket: bucket, Tenant: tenant, State: StateUploading, CreatedAt: now, UpdatedAt: now})
}

// notMultipart refuses a native completion of a multipart upload's file:
// only MultipartComplete completes it, with its index entry and binding.
func (t *tx) notMultipart(uid osprey.UID) error {
	if ref, ok := t.s3Ref(uid); ok && ref.kind == refMultipart {
		return errorf(ErrConflict, "uid %s is a multipart upload of %s/%s", uid, ref.bucket, ref.key)
	}
	return nil
}

func (t *tx) uploadingFile(uid osprey.UID) (*File, error) {
	f, ok := t.file(uid)
	if !ok {
		return nil, errorf(ErrNotFound, "uid %s not found", uid)
	}
	return f, nil
}

func (t *tx) applyChunkPut(c *ChunkPut) (any, error) {
	f, err := t.uploadingFile(c.UID)
	if err != nil {
		return nil, err
	}
	if c.Chunk.Num == 0 {
		return nil, errorf(ErrInvalid, "chunk number must be ≥ 1")
	}
	if f.State != StateUploading {
		// Merge moved the chunks into the file's content: a retried upload
		// of a chunk that is part of it is a duplicate, its new copy
		// garbage. (Once tiered, the content keeps no chunk records.)
		if ct, ok := t.content(f.Content); ok {
			for _, ch := range ct.Chunks {
				if ch.Num == c.Chunk.Num && ch.MD5 == c.Chunk.MD5 && ch.Size == c.Chunk.Size {
					if ch.Blob != c.Chunk.Blob {
						t.enqueueGC(stripWorkers([]Chunk{c.Chunk}), c.Time, c.Time)
					}
					return ChunkPutResult{Duplicate: true}, nil
				}
			}
		}
		return nil, errorf(ErrConflict, "uid %s is already merged", c.UID)
	}
	old, hadOld := t.upChunk(c.UID, c.Chunk.Num)
	same := hadOld && old.MD5 == c.Chunk.MD5 && old.Size == c.Chunk.Size
	ch := c.Chunk
	ch.Workers = nil
	t.putUpChunk(c.UID, &ch)
	f.UpdatedAt = c.Time
	t.putFile(f)
	t.repairGoneOwners(f.UID, 0, []Chunk{c.Chunk}, c.Time)
	if hadOld {
		o := *old
		if o.Blob != ch.Blob {
			t.enqueueGC([]Chunk{o}, c.Time, c.Time)
		}
		return ChunkPutResult{Replaced: &o, Duplicate: same}, nil
	}
	return ChunkPutResult{}, nil
}

// complete turns an uploading file into a complete one over the given
// ordered chunks. Verified bytes (their md5, and sha256 when given, were
// computed from the bytes) deduplicate onto the content of the file's
// tenant with the same md5, size and sha256 (the index holds only
// verified contents). Unverified ones (a merge: the md5 is only declared)
// never deduplicate: deduplicating on a declared md5 would hand the
// uploader someone else's bytes without proof it holds them, or swallow
// its own.
func (t *tx) complete(f *File, chunks []Chunk, size int64, md5, sha string, verified bool, now int64) CompleteResult {
	res := CompleteResult{}
	var inline *Content
	written := chunks // Workers (if any) tell which owners are gone
	chunks = stripWorkers(chunks)
	upChunks := t.upChunks(f.UID)
	if upChunks == nil {
		upChunks = map[uint32]*Chunk{} // read: deleteUpChunks need not scan again
	}
	f.State, f.Size, f.MD5, f.UpdatedAt = StateComplete, size, md5, now
	if id, ok := t.dedupGet(f.Tenant, md5, size, sha); ok && verified {
		ct, _ := t.content(id)
		ct.Refs++
		t.putContent(ct)
		f.Content = id
		res.Garbage = chunks
		res.Content = contentInfo(ct)
	} else {
		ct := &Content{ID: f.UID, MD5: md5, Size: size, State: ContentStaged,
			Chunks: chunks, Verified: verified, Refs: 1, Bucket: f.Bucket, Key: objectKey(f), Tenant: f.Tenant}
		if verified {
			ct.SHA256 = sha
		}
		// Small and checked against its md5 as it arrived: the staged
		// chunks are its final copy (no tier copy, tier entries or gc).
		ct.Inline = verified && t.meta.Settings.InlineMax > 0 && size <= t.meta.Settings.InlineMax
		t.putContent(ct)
		// Only content whose bytes were checked against its md5 is a
		// dedup target: a merge declares an md5 nothing has checked yet,
		// and until tiering verifies it (applyTierDone) no /resume or
		// later upload may resolve to it.
		if verified {
			t.indexContent(ct)
		}
		res.Content = contentInfo(ct)
		f.Content = f.UID
		t.repairGoneOwners(0, f.UID, written, now)
		if ct.Inline {
			inline = ct
		} else {
			// Tiering starts now; the file is already complete and served
			// from the staged chunks meanwhile.
			t.enqueue(TaskTier, f.UID.String(), nil, now, now)
		}
	}
	// Recorded chunks the content does not use (beyond num, or from an
	// earlier chunked attempt before a single upload) are garbage.
	used := make(map[uint64]bool, len(chunks))
	for _, ch := range chunks {
		used[ch.Blob] = true
	}
	for _, n := range sortedChunkNums(upChunks) {
		if ch := upChunks[n]; !used[ch.Blob] {
			res.Garbage = append(res.Garbage, *ch)
		}
	}
	t.enqueueGC(res.Garbage, now, now)
	t.deleteUpChunks(f.UID, upChunks)
	f.Chunks = nil
	t.putFile(f)
	t.webhook("complete", f, nil, now, "")
	if inline != nil {
		t.webhook("tiered", f, inline, now, "") // in its final place already
	}
	res.File = f.clone()
	return res
}

// objectKey is the backend key of the content a file uploads: its uid plus
// the lower-cased extension of its name.
func objectKey(f *File) string {
	ext := strings.ToLower(path.Ext(f.Name))
	if strings.ContainsAny(ext, "/\\") || len(ext) > 16 {
		ext = ""
	}
	return f.UID.String() + ext
}

func (t *tx) applyFileComplete(c *FileComplete) (any, error) {
	f, err := t.uploadingFile(c.UID)
	if err != nil {
		return nil, err
	}
	if err := t.notMultipart(c.UID); err != nil {
		return nil, err
	}
	if f.State != StateUploading {
		if f.MD5 == c.MD5 && f.Size == c.Size {
			garbage := stripWorkers(c.Chunks)
			t.enqueueGC(garbage, c.Time, c.Time)
			return CompleteResult{File: f.clone(), Already: true, Garbage: garbage}, nil
		}
		return nil, errorf(ErrConflict, "uid %s is already complete with other content", c.UID)
	}
	var total int64
	for i, ch := range c.Chunks {
		if ch.Num != uint32(i+1) {
			return nil, errorf(ErrInvalid, "file complete: chunk %d numbered %d", i+1, ch.Num)
		}
		total += ch.Size
	}
	if total != c.Size {
		return nil, errorf(ErrInvalid, "file complete: chunks hold %d bytes, size says %d", total, c.Size)
	}
	// Pieces of a single upload were uploaded now; chunks of an earlier
	// chunked attempt on the same uid are garbage.
	res := t.complete(f, c.Chunks, c.Size, c.MD5, c.SHA256, true, c.Time)
	return res, nil
}

func (t *tx) applyMerge(c *Merge) (any, error) {
	f, err := t.uploadingFile(c.UID)
	if err != nil {
		return nil, err
	}
	if err := t.notMultipart(c.UID); err != nil {
		return nil, err
	}
	if f.State != StateUploading {
		if f.MD5 == c.MD5 && f.Size == c.Size {
			return CompleteResult{File: f.clone(), Already: true}, nil
		}
		return nil, errorf(ErrConflict, "uid %s is already complete with other content", c.UID)
	}
	if c.Num == 0 {
		return nil, errorf(ErrInvalid, "num must be ≥ 1")
	}
	var missing []uint32
	chunks := make([]Chunk, 0, min(c.Num, 1<<16))
	var total int64
	for n := uint32(1); n <= c.Num; n++ {
		ch, ok := t.upChunk(c.UID, n)
		if !ok {
			missing = append(missing, n)
			if len(missing) > 1<<16 {
				break
			}
			continue
		}
		total += ch.Size
		chunks = append(chunks, *ch)
	}
	if len(missing) > 0 {
		return nil, errorf(ErrConflict, "missing chunks %s of %d", formatNums(missing), c.Num)
	}
	if total != c.Size {
		return nil, errorf(ErrConflict, "chunks 1..%d hold %d bytes, merge says size %d", c.Num, total, c.Size)
	}
	return t.complete(f, chunks, c.Size, c.MD5, "", false, c.Time), nil
}

func (t *tx) applyResume(c *Resume) (any, error) {
	res := ResumeResult{UIDs: make([]osprey.UID, len(c.Items))}
	// Check every item before changing anything: a failed command leaves
	// the state as it was.
	seen := make(map[osprey.UID]bool, len(c.Items))
	for _, it := range c.Items {
		if _, ok := t.dedupFirst(it.Tenant, it.MD5); !ok {
			continue
		}
		if _, dup := t.file(it.UID); dup || seen[it.UID] || it.UID == 0 {
			return nil, errorf(ErrConflict, "uid %s already exists", it.UID)
		}
		seen[it.UID] = true
	}
	for i, it := range c.Items {
		id, ok := t.dedupFirst(it.Tenant, it.MD5)
		if !ok {
			continue
		}
		t.shareContent(id, it.UID, it.Name, it.Bucket, it.Tenant, c.Time)
		res.UIDs[i] = it.UID
	}
	return res, nil
}

func (t *tx) applyFileDelete(c *FileDelete) (any, error) {
	if _, ok := t.file(c.UID); !ok {
		return nil, errorf(ErrNotFound, "uid %s not found", c.UID)
	}
	return t.removeFile(c.UID, c.Time), nil
}

// removeFile deletes an existing file (and its S3 binding or multipart
// upload): an upload's chunks become garbage, a complete file drops its
// content reference, and the last reference deletes the content (FileDelete,
// ObjectUnbind, an overwriting bind, MultipartAbort).
func (t *tx) removeFile(uid osprey.UID, now int64) DeleteResult {
	f, _ := t.fileWithChunks(uid)
	t.deleteFile(uid)
	res := DeleteResult{}
	if f.State == StateUploading {
		for _, n := range sortedChunkNums(f.Chunks) {
			res.Garbage = append(res.Garbage, *f.Chunks[n])
		}
		t.enqueueGC(res.Garbage, now, now)
		return res
	}
	ct, ok := t.content(f.Content)
	if !ok {
		return res
	}
	ct.Refs--
	if ct.Refs > 0 {
		t.putContent(ct)
		return res
	}
	t.unindexContent(ct)
	t.deleteContent(ct.ID)
	gone := ct.clone()
	res.Content = &gone
	res.Garbage = gone.Chunks
	t.enqueue(TaskDelete, gone.ID.String(), DeletePayload{Content: gone}, now, now)
	return res
}

func sortedChunkNums(m map[uint32]*Chunk) []uint32 {
	out := make([]uint32, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// formatNums renders chunk numbers compactly, e.g. "3, 5-7".
func formatNums(ns []uint32) string {
	out := ""
	for i := 0; i < len(ns); {
		j := i
		for j+1 < len(ns) && ns[j+1] == ns[j]+1 {
			j++
		}
		if out != "" {
			out += ", "
		}
		if j > i {
			out += itoa(ns[i]) + "-" + itoa(ns[j])
		} else {
			out += itoa(ns[i])
		}
		if len(out) > 200 {
			return out + ", ..."
		}
		i = j + 1
	}
	return out
}

func itoa(n uint32) string {
	return osprey.UID(n).String()
}

func (f *File) clone() File {
	c := *f
	if f.Chunks != nil {
		c.Chunks = make(map[uint32]*Chunk, len(f.Chunks))
		for k, v := range f.Chunks {
			ch := cloneChunk(*v)
			c.Chunks[k] = &ch
		}
	}
	return c
}

func (c *Content) clone() Content {
	out := *c
	out.Chunks = make([]Chunk, len(c.Chunks))
	for i, ch := range c.Chunks {
		out.Chunks[i] = cloneChunk(ch)
	}
	out.Sums = slices.Clone(c.Sums)
	if c.Location != nil {
		l := *c.Location
		l.Nodes = append([]osprey.NodeID(nil), c.Location.Nodes...)
		out.Location = &l
	}
	return out
}
