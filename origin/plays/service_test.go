package plays

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/musiccdn/cdn/internal/wait"
)

func TestServiceEndToEnd(t *testing.T) {
	cfg := testConfig(t, 2)
	svc, trust, iss, srv := startHTTP(t, cfg, denyRights{"t3/DE": true})

	now := time.Now()
	var batch []any
	for i := range 40 {
		ms := int64(45_000)
		if i%4 == 0 {
			ms = 29_999 // short
		}
		batch = append(batch, ticketed(t, trust.Tickets, testEvent(fmt.Sprintf("p%d", i), "u1", fmt.Sprintf("t%d", i%5), "DE", ms, now), now.Add(-10*time.Minute)))
	}
	code, body := post(t, authClient(t, iss, "u1", srv.Client()), srv.URL, mustJSON(batch))
	if code != http.StatusAccepted {
		t.Fatalf("POST = %d %v, want 202", code, body)
	}
	// Retry of the same batch: counted once.
	if code, _ := post(t, authClient(t, iss, "u1", srv.Client()), srv.URL, mustJSON(batch)); code != http.StatusAccepted {
		t.Fatalf("retry POST = %d, want 202", code)
	}
	// i%4 != 0 qualifies; t3 in DE is denied. Tracks t0..t4 by i%5.
	want := map[string]int64{}
	for i := range 40 {
		if i%4 != 0 && i%5 != 3 {
			want[fmt.Sprintf("t%d", i%5)]++
		}
	}
	wait.ForState(t, 60*time.Second, "ledger counts", func() (bool, string) {
		got, err := svc.Ledger().TotalPlays(t.Context())
		if err != nil {
			return false, err.Error()
		}
		return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprint(got)
	})

	resp, err := srv.Client().Get(srv.URL + "/v1/royalties/tracks/t1?by=day,country")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rr royaltiesResponse
	if err := json.NewDecoder(resp.Body).Decode(&rr); err != nil {
		t.Fatal(err)
	}
	if rr.TrackID != "t1" || rr.Plays != want["t1"] || len(rr.ByDayCountry) != 1 || rr.ByDayCountry[0].Country != "DE" {
		t.Errorf("royalties t1 = %+v, want %d plays in DE", rr, want["t1"])
	}
	var users int
	svc.Ledger().UserTrackCounts(t.Context(), func(u, tr string, n int64) error { users++; return nil })
	if users != 4 {
		t.Errorf("UserTrackCounts rows = %d, want 4 (u1 x t0,t1,t2,t4)", users)
	}
	if err := svc.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if err := svc.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}
