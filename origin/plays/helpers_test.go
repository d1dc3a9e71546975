package plays

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// denyRights denies listed "track/country" pairs and allows the rest.
type denyRights map[string]bool

func (d denyRights) Allowed(track, country string, _ time.Time) bool {
	return !d[track+"/"+country]
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("PLAYS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// testEvent is a valid event; qualifying unless ms < 30000.
func testEvent(play, user, track, cc string, ms int64, ts time.Time) map[string]any {
	return map[string]any{
		"play_id": play, "user_id": user, "track_id": track, "country": cc,
		"tier_kbps": 160, "ms_played": ms, "ts": ts.UTC().Format(time.RFC3339),
	}
}

// post sends a batch and returns the status and decoded body.
func post(t testing.TB, client *http.Client, url string, body []byte) (int, map[string]any) {
	t.Helper()
	resp, err := client.Post(url+"/v1/plays", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// waitFor polls cond until it holds or the deadline passes; it waits on a
// condition, never a fixed sleep, and backs off so as not to burn the CPU
// the pipeline needs.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	d := 5 * time.Millisecond
	var last string
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last state: %s", timeout, what, last)
		}
		waitCtx(context.Background(), d)
		d = min(2*d, 200*time.Millisecond)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprint(err))
	}
	return b
}

func kgoRecord(topic, value string) *kgo.Record {
	return &kgo.Record{Topic: topic, Value: []byte(value)}
}

func asFieldError(err error, fe **FieldError) bool { return errors.As(err, fe) }
