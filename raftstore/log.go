package raftstore

import (
	"context"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// hclogLevels maps hclog's line prefixes to slog levels.
var hclogLevels = []struct {
	prefix string
	level  slog.Level
}{
	{"[ERROR]", slog.LevelError},
	{"[WARN]", slog.LevelWarn},
	{"[INFO]", slog.LevelInfo},
	{"[DEBUG]", slog.LevelDebug},
	{"[TRACE]", slog.LevelDebug},
}

// hclogWriter receives hclog's formatted lines ("[WARN]  raft: heartbeat
// timeout reached, starting election: last-leader-addr=...") and logs each
// at its own level, so raft's errors and warnings are slog errors and
// warnings rather than all INFO.
type hclogWriter struct{ log *slog.Logger }

func (w hclogWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		level := slog.LevelInfo
		for _, l := range hclogLevels {
			if rest, ok := strings.CutPrefix(line, l.prefix); ok {
				level, line = l.level, rest
				break
			}
		}
		line = strings.TrimSpace(line)
		line = strings.TrimPrefix(line, "raft: ")
		w.log.Log(context.Background(), level, line, "source", "raft")
	}
	return len(p), nil
}

// newHCLogger returns the logger raft and its transport log through.
func newHCLogger(lg *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Info, Output: hclogWriter{lg},
		DisableTime: true})
}
