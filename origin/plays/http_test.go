package plays

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/musiccdn/cdn/internal/wait"
)

// TestIngestMalformed posts batches mixing good and bad events and checks
// that each bad one is refused with its index and reason, and that every
// good one, and nothing else, reaches the ledger.
func TestIngestMalformed(t *testing.T) {
	cfg := testConfig(t, 2)
	cfg.MaxBatchEvents = 10
	cfg.MaxBodyBytes = 8 << 10
	cfg.UserRate = 0
	svc, trust, iss, srv := startHTTP(t, cfg, denyRights{})
	client := authClient(t, iss, "u", srv.Client())
	ts := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	ev := func(play, extra string) string {
		tk := ticketed(t, trust.Tickets, testEvent(play, "u", "t1", "SE", 0, time.Now()), time.Now().Add(-10*time.Minute))["ticket"].(string)
		return `{"play_id":"` + play + `","user_id":"u","track_id":"t1","country":"SE","tier_kbps":96,"ms_played":40000,"ts":"` + ts + `","ticket":"` + tk + `"` + extra + `}`
	}

	for _, tt := range []struct {
		name     string
		body     string
		code     int
		accepted int
		rejected string // fmt of the rejections
		errText  string
	}{
		{"mixed", "[" + strings.Join([]string{
			ev("g1", ""),
			`{"play_id":`,
			ev("g2", ""),
			`{"play_id":"m1","user_id":"u","country":"SE","tier_kbps":96,"ms_played":40000,"ts":"` + ts + `"}`,
			strings.Replace(ev("n1", ""), `"ms_played":40000`, `"ms_played":-40000`, 1),
			strings.Replace(ev("c1", ""), `"country":"SE"`, `"country":"QQ"`, 1),
			ev("g3", ""),
		}, ",") + "]", http.StatusBadRequest, 0, "", ReasonBadJSON}, // a syntax error breaks the array itself
		{"mixed-valid-json", "[" + strings.Join([]string{
			ev("g1", ""),
			`"not an object"`,
			ev("g2", ""),
			`{"play_id":"m1","user_id":"u","country":"SE","tier_kbps":96,"ms_played":40000,"ts":"` + ts + `"}`,
			strings.Replace(ev("n1", ""), `"ms_played":40000`, `"ms_played":-40000`, 1),
			strings.Replace(ev("c1", ""), `"country":"SE"`, `"country":"QQ"`, 1),
			ev("g3", ""),
		}, ",") + "]", http.StatusAccepted, 3,
			"[{1 bad_json} {3 missing_track_id} {4 negative_duration} {5 unknown_country}]", ""},
		{"all-bad", `[{"play_id":"x"}]`, http.StatusBadRequest, 0, "[{0 missing_user_id}]", ""},
		{"not-array", `{"play_id":"x"}`, http.StatusBadRequest, 0, "", ReasonBadJSON},
		{"oversized-batch", "[" + strings.Repeat(ev("o", "")+",", 10) + ev("o", "") + "]", http.StatusRequestEntityTooLarge, 0, "", "batch_too_large"},
		{"oversized-body", "[" + ev("big", `,"pad":"`+strings.Repeat("x", 9<<10)+`"`) + "]", http.StatusRequestEntityTooLarge, 0, "", "body_too_large"},
		{"oversized-event", "[" + ev("big2", `,"pad":"`+strings.Repeat("x", MaxEventBytes)+`"`) + "," + ev("g4", "") + "]", http.StatusAccepted, 1, "[{0 event_too_large}]", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := client.Post(srv.URL+"/v1/plays", "application/json", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.code {
				t.Fatalf("POST %s = %d %s, want %d", tt.name, resp.StatusCode, b, tt.code)
			}
			var out struct {
				Accepted int         `json:"accepted"`
				Rejected []Rejection `json:"rejected"`
				Error    string      `json:"error"`
			}
			if err := json.Unmarshal(b, &out); err != nil {
				t.Fatalf("body %q: %v", b, err)
			}
			if out.Accepted != tt.accepted || (tt.rejected != "" && fmt.Sprint(out.Rejected) != tt.rejected) || out.Error != tt.errText {
				t.Errorf("POST %s = %s, want accepted %d rejected %s error %q", tt.name, b, tt.accepted, tt.rejected, tt.errText)
			}
		})
	}
	// g1, g2, g3 and g4 were accepted, all qualifying plays of t1.
	waitCounted(t, svc, 4)

	// Someone producing garbage straight to the topic is dropped by the
	// stage, not counted, and does not stop the pipeline.
	// A well-formed event whose ticket is forged, or missing, written
	// straight to the topic, is not counted either.
	forged := strings.Replace(ev("forged", ""), `"ticket":"p1.k1.`, `"ticket":"p1.k1.X`, 1)
	noTicket := `{"play_id":"nt","user_id":"u","track_id":"t1","country":"SE","tier_kbps":96,"ms_played":40000,"ts":"` + ts + `"}`
	for _, v := range []string{`garbage`, `{"play_id":"z"}`, forged, noTicket, ev("direct", "")} {
		if err := svc.producer.ProduceSync(t.Context(), kgoRecord(PlaysTopic, v)).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	wait.ForState(t, time.Minute, "the directly produced play", func() (bool, string) {
		n, _, _ := svc.Ledger().TrackPlays(t.Context(), "t1")
		forged := testutil.ToFloat64(svc.m.rejected.WithLabelValues("stage_" + ReasonTicketForged))
		missing := testutil.ToFloat64(svc.m.rejected.WithLabelValues("stage_" + ReasonTicketMissing))
		return n == 5 && forged == 1 && missing == 1, fmt.Sprintf("t1=%d stage forged=%v missing=%v", n, forged, missing)
	})
}

func TestRoyaltiesQuery(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t, 1)
	svc, _, _ := startService(t, cfg, denyRights{})
	d1 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	d2 := d1.Add(24 * time.Hour)
	if _, err := svc.ledger.apply(ctx, RoyaltiesTopic, []royalty{
		roy("a", "u", "t9", "SE", d1), roy("b", "u", "t9", "NO", d1), roy("c", "u", "t9", "SE", d2),
	}, map[int32]int64{0: 3}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path string
		code int
		want string
	}{
		{"/v1/royalties/tracks/t9", 200, `{"track_id":"t9","plays":3}`},
		{"/v1/royalties/tracks/t9?by=day", 200, `{"track_id":"t9","plays":3,"by_day":[{"day":"2026-11-25","plays":2},{"day":"2026-11-26","plays":1}]}`},
		{"/v1/royalties/tracks/t9?by=country", 200, `{"track_id":"t9","plays":3,"by_country":[{"country":"NO","plays":1},{"country":"SE","plays":2}]}`},
		{"/v1/royalties/tracks/t9?by=day,country", 200, `{"track_id":"t9","plays":3,"by_day_country":[{"day":"2026-11-25","country":"NO","plays":1},{"day":"2026-11-25","country":"SE","plays":1},{"day":"2026-11-26","country":"SE","plays":1}]}`},
		{"/v1/royalties/tracks/nope", 200, `{"track_id":"nope","plays":0}`},
		{"/v1/royalties/tracks/t9?by=week", 400, `{"error":"bad_by"}`},
		{"/v1/royalties/tracks/", 400, `{"error":"bad_track_id"}`},
		{"/v1/royalties/tracks/a/b", 400, `{"error":"bad_track_id"}`},
	} {
		rec := httptest.NewRecorder()
		svc.Handler().ServeHTTP(rec, httptest.NewRequest("GET", tt.path, nil))
		if got := strings.TrimSpace(rec.Body.String()); rec.Code != tt.code || got != tt.want {
			t.Errorf("GET %s = %d %s, want %d %s", tt.path, rec.Code, got, tt.code, tt.want)
		}
	}
	rec := httptest.NewRecorder()
	svc.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/v1/plays", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/plays = %d, want 405", rec.Code)
	}
}
