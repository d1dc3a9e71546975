package plays

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/musiccdn/cdn/internal/wait"
	"github.com/musiccdn/cdn/playticket"
)

// TestIngestTrust runs every trust rule of POST /v1/plays through a real
// HTTP server and the real pipeline (embedded broker, stage, SQLite
// ledger): the session (401), the content type (415), the per-user rate
// (429), each ticket rejection with its reason, and that only the one
// genuine play is counted, once, although it was sent twice.
//
// Mutations caught: not comparing user_id with the session's sub (the
// "other session user" row is accepted and the ledger counts 2); the
// stage not checking tickets (TestIngestMalformed's forged direct record
// is counted: the stage_ticket_forged metric stays 0 there); skipping
// the Content-Type check (415 row); no rate limit (429 row).
func TestIngestTrust(t *testing.T) {
	cfg := testConfig(t, 1)
	cfg.UserRate, cfg.UserBurst = 0.001, 40
	svc, trust, iss, srv := startHTTP(t, cfg, denyRights{})

	now := time.Now()
	issued := now.Add(-5 * time.Minute)
	mint := func(play, user, track, cc string, dur int64) string {
		tk, err := trust.Tickets.Mint(playticket.Claims{PlayID: play, UserID: user, TrackID: track, Country: cc, IssuedMS: issued.UnixMilli(), DurationMS: dur})
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	event := func(play, user, track, cc string, ms int64, ts time.Time, ticket string) string {
		b, _ := json.Marshal(map[string]any{"play_id": play, "user_id": user, "track_id": track, "country": cc,
			"tier_kbps": 160, "ms_played": ms, "ts": ts.UTC().Format(time.RFC3339Nano), "ticket": ticket})
		return string(b)
	}
	good := event("P1", "alice", "t1", "SE", 60_000, now.Add(-time.Second), mint("P1", "alice", "t1", "SE", 200_000))
	do := func(auth, ctype, body string) (int, string, http.Header) {
		req, _ := http.NewRequest("POST", srv.URL+"/v1/plays", strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b)), resp.Header
	}
	alice := bearer(t, iss, "alice")

	// The request as a whole.
	for _, tt := range []struct {
		name, auth, ctype string
		code              int
	}{
		{"no token", "", "application/json", 401},
		{"bad token", "Bearer x.y.z", "application/json", 401},
		{"basic auth", "Basic YWxpY2U6eA==", "application/json", 401},
		{"text/plain", alice, "text/plain", 415},
		{"no content type", alice, "", 415},
		{"json with charset", alice, "application/json; charset=utf-8", 202},
	} {
		code, body, h := do(tt.auth, tt.ctype, "["+good+"]")
		if code != tt.code {
			t.Errorf("%s: %d %s, want %d", tt.name, code, body, tt.code)
		}
		if code == 401 && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: 401 without WWW-Authenticate: Bearer", tt.name)
		}
	}

	// Each event on its own, all from alice's session.
	for _, tt := range []struct {
		name, ev, want string
	}{
		{"retry of the genuine play", good, ""},
		{"no ticket", event("P2", "alice", "t1", "SE", 60_000, now, ""), ReasonTicketMissing},
		{"forged ticket", event("P3", "alice", "t1", "SE", 60_000, now, strings.Replace(mint("P3", "alice", "t1", "SE", 200_000), ".alice.", ".alicf.", 1)), ReasonTicketForged},
		{"ticket of another play", event("P4", "alice", "t1", "SE", 60_000, now, mint("P1", "alice", "t1", "SE", 200_000)), ReasonTicketPlay},
		{"ticket of another user", event("P5", "alice", "t1", "SE", 60_000, now, mint("P5", "bob", "t1", "SE", 200_000)), ReasonTicketUser},
		{"ticket of another track", event("P6", "alice", "t1", "SE", 60_000, now, mint("P6", "alice", "t2", "SE", 200_000)), ReasonTicketTrack},
		{"ticket of another country", event("P7", "alice", "t1", "SE", 60_000, now, mint("P7", "alice", "t1", "US", 200_000)), ReasonTicketCountry},
		{"other session user", event("P8", "bob", "t1", "SE", 60_000, now, mint("P8", "bob", "t1", "SE", 200_000)), ReasonSessionUser},
		{"longer than since the ticket", event("P9", "alice", "t1", "SE", 6*60_000, now, mint("P9", "alice", "t1", "SE", 3_600_000)), ReasonPlayedTooLong},
		{"longer than the track", event("P10", "alice", "t1", "SE", 100_000, now, mint("P10", "alice", "t1", "SE", 90_000)), ReasonPastDuration},
		{"ts in the future", event("P11", "alice", "t1", "SE", 60_000, now.Add(time.Hour), mint("P11", "alice", "t1", "SE", 200_000)), ReasonFutureTS},
		{"ts before the ticket", event("P12", "alice", "t1", "SE", 0, issued.Add(-time.Hour), mint("P12", "alice", "t1", "SE", 200_000)), ReasonBeforeTicket},
	} {
		code, body, _ := do(alice, "application/json", "["+tt.ev+"]")
		if tt.want == "" {
			if code != 202 || !strings.Contains(body, `"accepted":1`) {
				t.Errorf("%s: %d %s, want 202 accepted", tt.name, code, body)
			}
			continue
		}
		want := fmt.Sprintf(`{"accepted":0,"rejected":[{"index":0,"reason":%q}]}`, tt.want)
		if code != 400 || body != want {
			t.Errorf("%s: %d %s, want 400 %s", tt.name, code, body, want)
		}
	}

	// Only P1 is counted, once.
	waitCounted(t, svc, 1)
	if n, _, _ := svc.Ledger().TrackPlays(t.Context(), "t2"); n != 0 {
		t.Errorf("t2 counted %d", n)
	}

	// The rate limit: alice's burst of 40 is spent by now (19 requests
	// above plus these); bob's is his own.
	var code int
	var h http.Header
	for range 40 {
		if code, _, h = do(alice, "application/json", "["+good+"]"); code == 429 {
			break
		}
	}
	if code != 429 || h.Get("Retry-After") == "" {
		t.Errorf("alice past her burst: %d Retry-After %q, want 429 with Retry-After", code, h.Get("Retry-After"))
	}
	bob := event("B1", "bob", "t1", "SE", 60_000, now, mint("B1", "bob", "t1", "SE", 200_000))
	if code, body, _ := do(bearer(t, iss, "bob"), "application/json", "["+bob+"]"); code != 202 {
		t.Errorf("bob while alice is limited: %d %s", code, body)
	}
}

// TestIngestBounds: a body slot held by a slow client makes the next
// request 503 with Retry-After (not a queue), a stalled body is cut off by
// the read deadline, and an over-long batch is refused while streaming.
// Mutations caught: no concurrency limit (the 503 never comes and the
// wait times out), no read deadline (the stalled POST never answers: the
// client timeout fails the test).
func TestIngestBounds(t *testing.T) {
	cfg := testConfig(t, 1)
	cfg.MaxConcurrentBodies = 1
	cfg.BodyReadTimeout = 300 * time.Millisecond
	cfg.MaxBatchEvents = 3
	cfg.UserRate = 0
	svc, trust, iss, srv := startHTTP(t, cfg, denyRights{})
	client := authClient(t, iss, "alice", &http.Client{Timeout: 30 * time.Second})

	// A body that stalls after "[": it holds the one slot until the read
	// deadline cuts it off.
	pr, pw := io.Pipe()
	defer pw.Close()
	stalled := make(chan int, 1)
	go func() {
		resp, err := client.Post(srv.URL+"/v1/plays", "application/json", pr)
		if err != nil {
			stalled <- -1
			return
		}
		resp.Body.Close()
		stalled <- resp.StatusCode
	}()
	pw.Write([]byte("["))
	var busy bool
	wait.ForState(t, 10*time.Second, "a 503 while the slot is held", func() (bool, string) {
		select {
		case code := <-stalled:
			stalled <- code
			return true, ""
		default:
		}
		resp, err := client.Post(srv.URL+"/v1/plays", "application/json", strings.NewReader("[]"))
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		if resp.StatusCode == 503 && resp.Header.Get("Retry-After") != "" {
			busy = true
			return true, ""
		}
		return false, resp.Status
	})
	if !busy {
		t.Error("the slot was released before a second request saw 503: is the read deadline shorter than a request?")
	}
	select {
	case code := <-stalled:
		if code != 400 && code != -1 {
			t.Errorf("stalled body answered %d, want 400 or a closed connection", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a stalled body was not cut off by the read deadline")
	}

	// Over-long batch: refused at element 4, the rest never read.
	ev := mustJSON(ticketed(t, trust.Tickets, testEvent("P1", "alice", "t1", "SE", 0, time.Now()), time.Now().Add(-time.Minute)))
	body := "[" + strings.Repeat(string(ev)+",", 3) + `{"never":"read"`
	pr2, pw2 := io.Pipe()
	go func() { pw2.Write([]byte(body)) }() // then stalls: only a streaming decoder answers before the deadline... or at it
	resp, err := client.Post(srv.URL+"/v1/plays", "application/json", pr2)
	pw2.Close()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 413 || !strings.Contains(string(b), "batch_too_large") {
		t.Errorf("over-long batch: %d %s, want 413 batch_too_large", resp.StatusCode, b)
	}
	if got := testutil.ToFloat64(svc.m.rejected.WithLabelValues("batch_too_large")); got != 1 {
		t.Errorf("batch_too_large count %v", got)
	}
}
