package datapath

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/osprey-storage/osprey"
	"github.com/osprey-storage/osprey/fsm"
	"github.com/osprey-storage/osprey/httpapi"
)

// The web console's read-only views of files (part of httpapi.Console):
// a file's chunks and their holders, search by name prefix.

// searchScan bounds how many file records one SearchFiles call examines,
// so a rare prefix costs a bounded amount of work per request; the caller
// continues from the returned cursor.
const searchScan = 5000

// FileDetail returns uid's metadata with its chunks, their holders and its
// tier location, read linearizably. ErrNotFound for an unknown uid.
func (p *Path) FileDetail(ctx context.Context, uid osprey.UID) (httpapi.FileDetail, error) {
	f, err := p.file(ctx, uid, true)
	if err != nil {
		return httpapi.FileDetail{}, err
	}
	d := httpapi.FileDetail{FileInfo: p.fileInfo(f), Parts: []httpapi.ChunkDetail{}}
	var chunks []fsm.Chunk
	if f.State == fsm.StateUploading {
		for _, c := range f.Chunks {
			chunks = append(chunks, *c)
		}
		sort.Slice(chunks, func(i, j int) bool { return chunks[i].Num < chunks[j].Num })
	} else if ct, ok := p.cfg.State.Content(f.Content); ok {
		d.Content, d.Refs, d.Verified = ct.ID.String(), ct.Refs, ct.Verified
		chunks = ct.Chunks
		if loc := ct.Location; loc != nil {
			d.Tier = &httpapi.TierInfo{Bucket: loc.Bucket, Key: loc.Key}
			for _, id := range loc.Nodes {
				d.Tier.Holders = append(d.Tier.Holders, p.holder(id, 0))
			}
		}
	}
	for _, c := range chunks {
		cd := httpapi.ChunkDetail{Num: c.Num, Size: c.Size, MD5: c.MD5, Layout: "replicas", Holders: []httpapi.Holder{}}
		if c.EC != nil {
			cd.Layout = fmt.Sprintf("ec:%d+%d", c.EC.K, c.EC.M)
			for _, s := range c.EC.Shards {
				cd.Holders = append(cd.Holders, p.holder(s.Owner, s.Index+1))
			}
		} else {
			for _, o := range c.Owners {
				cd.Holders = append(cd.Holders, p.holder(o, 0))
			}
		}
		d.Parts = append(d.Parts, cd)
	}
	return d, nil
}

func (p *Path) holder(id osprey.NodeID, shard int) httpapi.Holder {
	h := httpapi.Holder{ID: string(id), Shard: shard}
	if rec, ok := p.cfg.State.Node(id); ok {
		h.HTTPAddr, h.Down, h.Removed = rec.HTTPAddr, rec.Down, rec.Removed
	} else {
		h.Removed = true
	}
	return h
}

// SearchFiles returns up to limit files whose name starts with prefix, in
// uid order after cursor, examining at most searchScan records; the
// returned cursor is where to continue (0 once every file was examined).
func (p *Path) SearchFiles(ctx context.Context, prefix string, cursor osprey.UID, limit int) ([]httpapi.FileInfo, osprey.UID, error) {
	if err := p.cfg.Proposer.ReadBarrier(ctx); err != nil {
		return nil, 0, err
	}
	files := p.cfg.State.Files(cursor, searchScan)
	out := []httpapi.FileInfo{}
	for i, f := range files {
		if !strings.HasPrefix(f.Name, prefix) {
			continue
		}
		out = append(out, p.fileInfo(f))
		if len(out) == limit {
			if i == len(files)-1 && len(files) < searchScan {
				return out, 0, nil
			}
			return out, f.UID, nil
		}
	}
	if len(files) == searchScan {
		return out, files[len(files)-1].UID, nil
	}
	return out, 0, nil
}
