package fsm

import (
	"encoding/json"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/batchrepr"
)

// CmdBatch carries several commands in one log entry: the leader's group
// commit (consensus) coalesces concurrent proposals into it, so they share
// one Raft round-trip and one fsync on every voter.

// MaxBatchCommands bounds the sub-commands of one Batch.
const MaxBatchCommands = 256

// Batch is the payload of CmdBatch: encoded commands (each a complete
// envelope as Encode builds it), applied in order in one store
// transaction. A sub-command that fails changes nothing and does not
// affect the others: each gets its own Result, exactly as if it had been
// an entry of its own. A Batch never contains a Batch.
type Batch struct {
	Cmds [][]byte `json:"cmds"`
}

// BatchResult is the Result.Data of a CmdBatch entry: one Result per
// sub-command, in order.
type BatchResult struct {
	Results []*Result `json:"results"`
}

// checkBatch validates every sub-command of a CmdBatch payload.
func checkBatch(payload []byte) error {
	var b Batch
	if err := json.Unmarshal(payload, &b); err != nil {
		return fmt.Errorf("%w: %s payload: %v", ErrDecode, CmdBatch, err)
	}
	if len(b.Cmds) == 0 || len(b.Cmds) > MaxBatchCommands {
		return fmt.Errorf("%w: %s of %d commands (1..%d)", ErrDecode, CmdBatch, len(b.Cmds), MaxBatchCommands)
	}
	for i, c := range b.Cmds {
		typ, _, err := Decode(c)
		if err != nil {
			return fmt.Errorf("%s command %d: %w", CmdBatch, i, err)
		}
		if typ == CmdBatch {
			return fmt.Errorf("%w: %s command %d is a batch", ErrDecode, CmdBatch, i)
		}
		if err := Check(c); err != nil {
			return fmt.Errorf("%s command %d: %w", CmdBatch, i, err)
		}
	}
	return nil
}

// txMark is what a failed sub-command of a batch rolls back to.
type txMark struct {
	meta                   clusterMeta
	cnt                    counters
	hash                   stateHash
	minRunnable, minUpload timeID
	reprLen                int
	count                  uint32
}

func (t *tx) mark() txMark {
	m := txMark{meta: t.meta, cnt: t.cnt.clone(), hash: t.hash, minRunnable: t.minRunnable, minUpload: t.minUpload,
		reprLen: len(t.b.Repr()), count: t.b.Count()}
	m.meta.Secret = append([]byte(nil), t.meta.Secret...)
	return m
}

// rollback discards everything written since m: the batch is rebuilt from
// the prefix of its representation that m recorded (pebble batches have no
// savepoints), and the record cache, which may hold the failed command's
// writes, starts afresh.
func (t *tx) rollback(db *pebble.DB, m txMark) {
	var nb *pebble.Batch
	if m.count == 0 {
		nb = db.NewIndexedBatch()
	} else {
		repr := append([]byte(nil), t.b.Repr()[:m.reprLen]...)
		batchrepr.SetCount(repr, m.count)
		tmp := db.NewBatch()
		if err := tmp.SetRepr(repr); err != nil {
			panic(fmt.Sprintf("fsm: batch rollback: %v", err))
		}
		nb = db.NewIndexedBatch()
		if err := nb.Apply(tmp, nil); err != nil {
			panic(fmt.Sprintf("fsm: batch rollback: %v", err))
		}
		_ = tmp.Close()
	}
	_ = t.b.Close()
	t.b, t.r = nb, nb
	t.cache = map[string][]byte{}
	t.meta, t.cnt, t.hash, t.minRunnable, t.minUpload = m.meta, m.cnt, m.hash, m.minRunnable, m.minUpload
}

// applyBatch applies every sub-command of c in order, each with its own
// result; a failed one is rolled back alone.
func (t *tx) applyBatch(db *pebble.DB, index uint64, c *Batch) *BatchResult {
	out := &BatchResult{Results: make([]*Result, len(c.Cmds))}
	for i, cmd := range c.Cmds {
		typ, payload, err := Decode(cmd)
		if err == nil && typ == CmdBatch {
			err = fmt.Errorf("%w: nested batch", ErrDecode)
		}
		if err != nil {
			// Check refuses such an entry before it is proposed.
			panic(fmt.Sprintf("fsm: entry %d command %d: %v", index, i, err))
		}
		// What the commands before this one put into the upload-age
		// index is where Expire's scan must start, as it would be after
		// their own entries' commits.
		t.uploadFrom = t.uploadFrom.min(t.minUpload)
		m := t.mark()
		data, derr := t.apply(typ, payload)
		if derr != nil {
			t.rollback(db, m)
		}
		out.Results[i] = &Result{Data: data, Err: derr}
	}
	return out
}
