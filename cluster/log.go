package cluster

import (
	"bytes"
	"context"
	"log/slog"
)

// logWriter carries memberlist's log lines ("[WARN] memberlist: ...") to
// slog, at the level their prefix names.
type logWriter struct{ log *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	line := bytes.TrimRight(p, "\n")
	level := slog.LevelInfo
	for _, l := range []struct {
		prefix string
		level  slog.Level
	}{
		{"[DEBUG] ", slog.LevelDebug},
		{"[INFO] ", slog.LevelInfo},
		{"[WARN] ", slog.LevelWarn},
		{"[ERR] ", slog.LevelError},
		{"[ERROR] ", slog.LevelError},
	} {
		if rest, ok := bytes.CutPrefix(line, []byte(l.prefix)); ok {
			line, level = rest, l.level
			break
		}
	}
	ctx := context.Background()
	if w.log.Enabled(ctx, level) {
		w.log.Log(ctx, level, string(line))
	}
	return len(p), nil
}
