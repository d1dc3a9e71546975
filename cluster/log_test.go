package cluster

import (
	"context"
	"log/slog"
	"sync"
	"testing"
)

// recorder is a slog.Handler that keeps what it is given.
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

func TestLogWriter(t *testing.T) {
	for _, tc := range []struct {
		line  string
		level slog.Level
		msg   string
	}{
		{"[DEBUG] memberlist: Stream connection from=1\n", slog.LevelDebug, "memberlist: Stream connection from=1"},
		{"[INFO] memberlist: Marking x as failed\n", slog.LevelInfo, "memberlist: Marking x as failed"},
		{"[WARN] memberlist: Refuting a suspect message\n", slog.LevelWarn, "memberlist: Refuting a suspect message"},
		{"[ERR] memberlist: Failed to decrypt\n", slog.LevelError, "memberlist: Failed to decrypt"},
		{"no prefix", slog.LevelInfo, "no prefix"},
	} {
		rec := &recorder{}
		w := logWriter{slog.New(rec)}
		if n, err := w.Write([]byte(tc.line)); n != len(tc.line) || err != nil {
			t.Errorf("Write(%q) = %d, %v", tc.line, n, err)
		}
		if len(rec.recs) != 1 || rec.recs[0].Level != tc.level || rec.recs[0].Message != tc.msg {
			t.Errorf("Write(%q) logged %+v, want level %v msg %q", tc.line, rec.recs, tc.level, tc.msg)
		}
	}
}
