package plays

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/musiccdn/cdn/identity"
	"github.com/musiccdn/cdn/internal/wait"
	"github.com/musiccdn/cdn/playticket"
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

// testKeyring is the ticket keyring of tests.
func testKeyring(t testing.TB) *playticket.Keyring {
	t.Helper()
	kr, err := playticket.NewKeyring(testTicketKey)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// testTicketKey is the tests' ticket key; the fault test's stage
// processes build their keyring from it too.
var testTicketKey = playticket.Key{ID: "k1", Secret: bytes.Repeat([]byte("k"), 32)}

// testTrust is a Trust with the test keyring and a verifier of iss's
// tokens.
func testTrust(t testing.TB) (Trust, *identity.Issuer) {
	t.Helper()
	iss, err := identity.NewIssuer()
	if err != nil {
		t.Fatal(err)
	}
	v, err := identity.NewVerifier(identity.Config{PublicKeys: []string{iss.PublicKey()}})
	if err != nil {
		t.Fatal(err)
	}
	return Trust{Tickets: testKeyring(t), Sessions: v}, iss
}

// testConfig is the pipeline's defaults with its state in a fresh
// directory and the given number of partitions.
func testConfig(t testing.TB, partitions int) Config {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Partitions = partitions
	return cfg
}

// startBroker starts the embedded broker with n partitions, closed when
// the test ends.
func startBroker(t testing.TB, n int) *Broker {
	t.Helper()
	b, err := StartBroker(context.Background(), t.TempDir(), n, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// startService starts the real pipeline (embedded broker, stage, SQLite
// ledger) on cfg with rights, a fresh trust (testTrust) and a fresh
// registry, closed when the test ends (a test may Close it first).
func startService(t testing.TB, cfg Config, rights Rights) (*Service, Trust, *identity.Issuer) {
	t.Helper()
	trust, iss := testTrust(t)
	svc, err := New(context.Background(), cfg, rights, trust, testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc, trust, iss
}

// startHTTP is startService, with the service's handler served on
// loopback until the test ends.
func startHTTP(t testing.TB, cfg Config, rights Rights) (*Service, Trust, *identity.Issuer, *httptest.Server) {
	t.Helper()
	svc, trust, iss := startService(t, cfg, rights)
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	return svc, trust, iss, srv
}

// waitCounted waits until svc's ledger counts n plays of track t1 and n
// play ids in all: each accepted play counted once, and nothing else.
func waitCounted(t testing.TB, svc *Service, n int64) {
	t.Helper()
	wait.ForState(t, time.Minute, fmt.Sprintf("%d plays of t1 in the ledger", n), func() (bool, string) {
		got, _, err := svc.Ledger().TrackPlays(t.Context(), "t1")
		ids, _ := svc.Ledger().playIDCount(t.Context())
		return err == nil && got == n && ids == n, fmt.Sprintf("t1=%d ids=%d err=%v", got, ids, err)
	})
}

// ticketed adds a ticket for ev (a testEvent) to ev, issued at issued
// with a track of 10 minutes.
func ticketed(t testing.TB, kr *playticket.Keyring, ev map[string]any, issued time.Time) map[string]any {
	t.Helper()
	tk, err := kr.Mint(playticket.Claims{PlayID: ev["play_id"].(string), UserID: ev["user_id"].(string), TrackID: ev["track_id"].(string),
		Country: ev["country"].(string), IssuedMS: issued.UnixMilli(), DurationMS: 600_000})
	if err != nil {
		t.Fatal(err)
	}
	ev["ticket"] = tk
	return ev
}

// bearer returns the Authorization header value for user.
func bearer(t testing.TB, iss *identity.Issuer, user string) string {
	t.Helper()
	tok, err := iss.Issue(identity.User{ID: user, Country: "SE"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + tok
}

// authClient is an HTTP client that sends every request with the bearer
// token of user.
func authClient(t testing.TB, iss *identity.Issuer, user string, base *http.Client) *http.Client {
	c := *base
	rt := c.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	c.Transport = authTransport{auth: bearer(t, iss, user), rt: rt}
	return &c
}

type authTransport struct {
	auth string
	rt   http.RoundTripper
}

func (a authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", a.auth)
	return a.rt.RoundTrip(r)
}

// appendPlayID appends a ULID play id issued at t with the given 80 random
// bits (hi: 16 bits, lo: 64) to b: the layout of playticket.NewID with
// chosen bits, for tests that need ids known in advance.
func appendPlayID(b []byte, t time.Time, hi uint16, lo uint64) []byte {
	var r [26]byte
	ms := uint64(t.UnixMilli())
	for i := 9; i >= 0; i-- { // 48 bits of time, 10 characters
		r[i] = crockford[ms&31]
		ms >>= 5
	}
	x, y := lo, uint64(hi)
	for i := 25; i >= 10; i-- { // 80 random bits, 16 characters
		r[i] = crockford[x&31]
		x = x>>5 | (y&31)<<59
		y >>= 5
	}
	return append(b, r[:]...)
}
