package fsm

import (
	"bytes"
	"testing"

	"github.com/hashicorp/raft"
)

// TestPayloadsCoverEveryCommand: Check knows the payload type of every
// command a replica applies.
func TestPayloadsCoverEveryCommand(t *testing.T) {
	for typ := range typeNames {
		if _, ok := payloads[typ]; !ok && typ != CmdNoop {
			t.Errorf("%s has no payload type: Check would pass any payload for it", typ)
		}
	}
}

// FuzzCheckedCommandApplies: whatever bytes a leader is handed, either
// Check refuses them or every replica applies them without panicking (a
// command may fail; a failed command changes nothing).
func FuzzCheckedCommandApplies(f *testing.F) {
	for _, g := range goldenCommands() {
		b, err := Encode(g.typ, g.payload)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{CommandVersion, 0, byte(CmdFilesCreate), '{', '"', 'f'})
	f.Add([]byte{CommandVersion, 0, byte(CmdChunkPut), 'n', 'u', 'l', 'l'})
	f.Fuzz(func(t *testing.T, b []byte) {
		if Check(b) != nil {
			return
		}
		fsm := New()
		defer fsm.Close()
		before, _ := fsm.Hash()
		res, _ := fsm.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: b}).(*Result)
		if res != nil && res.Err != nil {
			if after, _ := fsm.Hash(); after != before {
				t.Fatalf("a failed command changed the state hash")
			}
		}
	})
}

// FuzzSnapshotDecode: a corrupt or truncated snapshot or backup is refused
// with an error, never a panic.
func FuzzSnapshotDecode(f *testing.F) {
	src := New()
	defer src.Close()
	var buf bytes.Buffer
	if err := src.Backup(&buf, nil); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(`{"version":2,"files":{}}`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = VerifySnapshot(bytes.NewReader(b))
		dst := New()
		defer dst.Close()
		_ = dst.Restore(nopCloser{bytes.NewReader(b)})
	})
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }
