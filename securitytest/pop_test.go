package securitytest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.yaml.in/yaml/v3"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/cluster"
	"github.com/musiccdn/cdn/internal/wait"
	"github.com/musiccdn/cdn/origin/api"
	"github.com/musiccdn/cdn/origin/licence"
	"github.com/musiccdn/cdn/player/offline"
	"github.com/musiccdn/cdn/pop"
)

// countryHeader is what the POP's load balancer would set. The suite's
// POP runs with it configured, as a deployment does, so row 5 is tried
// against the fail-closed check.
const countryHeader = "X-Client-Country"

// env is a running POP and what the cases need to attack it.
type env struct {
	p      *pop.POP
	a      pop.Addrs
	se     pop.User // a user in SE
	tracks []string // tracks SE may play
	client *http.Client
}

// TestTrustBoundaries runs every row of issue 10's table against a real
// POP. Each case names its row.
//
// Mutations tried against the code with this suite (each made the named
// case fail, then was undone): the stage parsing events without the
// ticket keyring (row 3); the origin's /v1/rights without the tier
// credential (row 1; it survived while the case asked about a track the
// rights deny anyway, so the case now uses an allowed one); Peek instead
// of PeekAll for the country header (row 5); plays ingest without the
// concurrent-body bound (row 7); no token_max_ttl check (row 9); /metrics
// routed on the edge's public listener (row 10); negative_ttl 0 (row 11).
// The packages' own tests catch the rest at a finer grain (tier's
// security_test and trust_test, origin's listeners_test, plays' http_test).
func TestTrustBoundaries(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole POP")
	}
	cfg := pop.DefaultConfig()
	cfg.Catalog, cfg.Seed = "synthetic:1000", 7
	cfg.GossipProfile = cluster.ProfileFast
	cfg.EdgeCache, cfg.ShieldCache, cfg.ShieldDisk = 128<<20, 128<<20, 0
	cfg.CountryHeader = countryHeader
	p, err := pop.Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	e := &env{p: p, a: p.Addrs(), client: &http.Client{Timeout: 30 * time.Second}}
	var ok bool
	if e.se, ok = e.a.UserIn("SE"); !ok {
		t.Fatal("addr file has no SE user")
	}
	for i := 0; len(e.tracks) < 10; i++ {
		if id := "t" + strconv.Itoa(i); p.Origin().Rights().Allowed(id, "SE", time.Now()) {
			e.tracks = append(e.tracks, id)
		}
	}
	for _, tc := range []struct {
		name string
		run  func(*testing.T, *env)
	}{
		{"row 1: media without a token, at origin and shield", row1},
		{"row 2: X-Next-Tracks with 1,300 ids", row2},
		{"row 3: forged plays", row3},
		{"row 4: licences for anyone", row4},
		{"row 5: country rights fail closed", row5},
		{"row 6: 16 requests of 16 large ranges", row6},
		{"row 7: slow bodies and headers at the origin", row7},
		{"row 8: offline licence re-signed with another key", row8},
		{"row 9: token for another object or too far ahead", row9},
		{"row 10: internal data on public listeners", row10},
		{"row 11: missing seek table asked 20 times", row11},
		{"row 12: the deployable example's listeners", row12},
		{"row 13: purges and takedowns without the admin token", row13},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, e) })
	}
}

func row1(t *testing.T, e *env) {
	originServed := e.originServed(t)
	shieldFills := e.shieldRequests(t)
	for _, tc := range []struct {
		url  string
		want int
	}{
		{e.a.Origin + "/media/t5/320.ogg", 404},                                     // not on the public listener at all
		{e.a.Internal.Origin + "/media/t5/320.ogg", 403},                            // internal, but no tier credential
		{e.a.Shields[0] + "/media/t5/320.ogg", 403},                                 // a shield's fill listener, no credential
		{e.a.Shields[1] + "/media/t5/320.ogg?t=anything", 403},                      // a player-looking token opens nothing
		{e.a.Internal.Edges[0] + "/peer/media/t5/320.ogg", 403},                     // the peer door
		{e.a.Edges[0] + "/a/t5/320.ogg", 403},                                       // an edge without a token
		{e.a.Origin + "/v1/manifest/t5", 401},                                       // a manifest without a session
		{e.a.Origin + "/v1/manifest/t5?country=SE", 401},                            // the query names no one
		{e.a.Internal.Origin + "/v1/rights/" + e.tracks[0] + "?country=SE", 403},    // the prefetcher's rights check
		{e.a.Internal.Origin + "/v1/recs/next/" + e.tracks[0] + "?country=SE", 403}, // and its next tracks
		{e.a.Internal.Shields[0] + "/media/t5/320.ogg", 404},                        // ops listener: no media
		{e.a.Internal.Edges[0] + "/a/t5/320.ogg?t=x", 404},                          // internal listener: no player path
	} {
		if got := e.status(t, "GET", tc.url, nil, countryHeader, "SE"); got != tc.want {
			t.Errorf("GET %s = %d, want %d", tc.url, got, tc.want)
		}
	}
	// A track the user's country may not play: the manifest is refused.
	denied := ""
	for i := range 1000 {
		id := "t" + strconv.Itoa(i)
		if !e.p.Origin().Rights().Allowed(id, "SE", time.Now()) {
			denied = id
			break
		}
	}
	if denied == "" {
		t.Fatal("no track denied in SE in the synthetic rights")
	}
	if got := e.status(t, "GET", e.a.Origin+"/v1/manifest/"+denied, nil, "Authorization", "Bearer "+e.se.Token); got != 403 {
		t.Errorf("manifest of %s, denied in SE = %d, want 403", denied, got)
	}
	if d := e.originServed(t) - originServed; d != 0 {
		t.Errorf("the origin served %v media requests for refused ones", d)
	}
	if d := e.shieldRequests(t) - shieldFills; d > 2 { // the two refused at the shields themselves
		t.Errorf("shields saw %v requests, want only the 2 refused ones", d)
	}
}

func row2(t *testing.T, e *env) {
	before := e.originAPI(t, "rights") + e.originAPI(t, "recs_next")
	jobs := e.metric(t, e.a.Internal.Edges[0], "edge_prefetch_jobs_total", "")
	ids := make([]string, 1300)
	for i := range ids {
		ids[i] = "x" + strconv.Itoa(i)
	}
	m := e.manifest(t, e.se, e.tracks[0])
	code := e.status(t, "GET", e.a.Edges[0]+m.Tiers[0].URL, nil, countryHeader, "SE",
		"Range", "bytes=0-1023", catalog.HeaderNextTracks, strings.Join(ids, ","))
	if code != 206 {
		t.Fatalf("track start = %d", code)
	}
	wait.For(t, 30*time.Second, "the prefetch job of the track start", func() bool {
		return e.metric(t, e.a.Internal.Edges[0], "edge_prefetch_jobs_total", "") > jobs
	})
	if d := e.originAPI(t, "rights") + e.originAPI(t, "recs_next") - before; d > 3 {
		t.Errorf("one request with 1,300 hinted ids cost %v look-ups at the origin, want at most prefetch.tracks (3)", d)
	}
	// A real hint still works: its rights look-ups carry the tier
	// credential to the origin's internal listener, and the tracks are
	// warmed.
	issued := e.metric(t, e.a.Internal.Edges[0], "edge_prefetch_issued_total", "")
	m = e.manifest(t, e.se, e.tracks[6])
	if code := e.status(t, "GET", e.a.Edges[0]+m.Tiers[0].URL, nil, countryHeader, "SE",
		"Range", "bytes=0-1023", catalog.HeaderNextTracks, strings.Join(e.tracks[7:10], ",")); code != 206 {
		t.Fatalf("track start = %d", code)
	}
	wait.For(t, 30*time.Second, "prefetch of the hinted tracks", func() bool {
		return e.metric(t, e.a.Internal.Edges[0], "edge_prefetch_issued_total", "") >= issued+3
	})
}

func row3(t *testing.T, e *env) {
	track := e.tracks[1]
	accepted := e.metric(t, e.a.Internal.Origin, "origin_plays_events_accepted_total", "")
	counted := e.metric(t, e.a.Internal.Origin, "origin_plays_ledger_counted_total", "")
	// 1,000 made-up events: another user, a track that does not exist, a
	// date tomorrow, no ticket or a forged one.
	var evs []api.PlayEvent
	for i := range 1000 {
		ev := api.PlayEvent{PlayID: fmt.Sprintf("p%05d", i), UserID: e.se.UserID, TrackID: track, Country: "SE",
			TierKbps: 96, MSPlayed: 60_000, TS: time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)}
		switch i % 4 {
		case 0:
			ev.UserID = "someone-else"
		case 1:
			ev.TrackID = "no-such-track"
		case 2:
			ev.Ticket = "k.AAAA.BBBB"
		}
		evs = append(evs, ev)
	}
	body, _ := json.Marshal(evs)
	if got := e.status(t, "POST", e.a.Origin+"/v1/plays", body, "Content-Type", "application/json"); got != 401 {
		t.Errorf("plays without a session = %d, want 401", got)
	}
	code, resp := e.do(t, "POST", e.a.Origin+"/v1/plays", body, "Content-Type", "application/json", "Authorization", "Bearer "+e.se.Token)
	var r struct {
		Accepted int               `json:"accepted"`
		Rejected []json.RawMessage `json:"rejected"`
	}
	json.Unmarshal(resp, &r)
	if code != 400 || r.Accepted != 0 || len(r.Rejected) != 1000 {
		t.Errorf("1,000 forged plays: %d, accepted %d, rejected %d; want 400, 0, 1000", code, r.Accepted, len(r.Rejected))
	}
	// A real play's ticket used for another track is refused too.
	m := e.manifest(t, e.se, track)
	ev := api.PlayEvent{PlayID: m.PlayID, Ticket: m.PlayTicket, UserID: e.se.UserID, TrackID: e.tracks[2], Country: "SE",
		TierKbps: 96, MSPlayed: 1000, TS: time.Now().UTC().Format(time.RFC3339)}
	body, _ = json.Marshal([]api.PlayEvent{ev})
	if code, resp := e.do(t, "POST", e.a.Origin+"/v1/plays", body, "Content-Type", "application/json", "Authorization", "Bearer "+e.se.Token); code != 400 || !bytes.Contains(resp, []byte("ticket_other_track")) {
		t.Errorf("a ticket used for another track: %d %s", code, resp)
	}
	if d := e.metric(t, e.a.Internal.Origin, "origin_plays_events_accepted_total", "") - accepted; d != 0 {
		t.Errorf("%v forged events accepted", d)
	}
	// Straight to the plays topic, past the API: the stage checks the
	// ticket and does not count it.
	stageRejected := e.metric(t, e.a.Internal.Origin, "origin_plays_events_rejected_total", `reason="stage_ticket`)
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.a.Kafka))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	raw, _ := json.Marshal(api.PlayEvent{PlayID: "01J0000000000000000000FAKE", UserID: e.se.UserID, TrackID: track, Country: "SE",
		TierKbps: 96, MSPlayed: 60_000, TS: time.Now().UTC().Format(time.RFC3339Nano)})
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "plays", Key: []byte("fake"), Value: raw}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 30*time.Second, "the stage to reject the ticketless record", func() bool {
		return e.metric(t, e.a.Internal.Origin, "origin_plays_events_rejected_total", `reason="stage_ticket`) > stageRejected
	})
	if d := e.metric(t, e.a.Internal.Origin, "origin_plays_ledger_counted_total", "") - counted; d != 0 {
		t.Errorf("the ledger counted %v forged plays", d)
	}
}

func row4(t *testing.T, e *env) {
	body := []byte(`{"track_id":"` + e.tracks[1] + `","device_id":"d1"}`)
	// The body may not name the user: the session does.
	if got := e.status(t, "POST", e.a.Origin+"/v1/licences", []byte(`{"track_id":"`+e.tracks[1]+`","device_id":"d1","user_id":"demo-US"}`),
		"Content-Type", "application/json", "Authorization", "Bearer "+e.se.Token); got != 400 {
		t.Errorf("licence body naming another user = %d, want 400", got)
	}
	if got := e.status(t, "POST", e.a.Origin+"/v1/licences", body, "Content-Type", "application/json"); got != 401 {
		t.Errorf("licence without a session = %d, want 401", got)
	}
	if got := e.status(t, "POST", e.a.Origin+"/v1/licences", []byte(`{"track_id":"no-such-track","device_id":"d1"}`),
		"Content-Type", "application/json", "Authorization", "Bearer "+e.se.Token); got != 404 {
		t.Errorf("licence for a track that does not exist = %d, want 404", got)
	}
	pub := e.licenceKey(t)
	var keys [][]byte
	for range 2 {
		l := e.licence(t, pub, body)
		if l.UserID != e.se.UserID {
			t.Errorf("licence for %q, want the session's user %q ", l.UserID, e.se.UserID)
		}
		keys = append(keys, l.WrapKey)
	}
	if bytes.Equal(keys[0], keys[1]) {
		t.Error("two licences for the same (user, device, track) carry the same key: it is derivable")
	}
}

func row5(t *testing.T, e *env) {
	m := e.manifest(t, e.se, e.tracks[2])
	u := e.a.Edges[1] + m.Tiers[1].URL
	fills := e.shieldRequests(t)
	for _, tc := range []struct {
		name string
		hdr  []string
		want int
	}{
		{"no country header", nil, 403},
		{"two country headers", []string{countryHeader, "SE", countryHeader, "SE"}, 403},
		{"not a country", []string{countryHeader, "XX"}, 403},
		{"another country", []string{countryHeader, "US"}, 403},
		{"the token's country", []string{countryHeader, "SE"}, 206},
	} {
		// Not from offset 0: a player's first chunk starts the
		// next-track prefetch, whose warms reach the shields too.
		hdr := append([]string{"Range", "bytes=100-199"}, tc.hdr...)
		if got := e.status(t, "GET", u, nil, hdr...); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	if d := e.shieldRequests(t) - fills; d > 2 { // the one allowed request: metadata and chunk 0 at most
		t.Errorf("refused requests reached the shields: %v requests", d)
	}
	// The manifest's country is the session's, not the query's.
	if got := e.status(t, "GET", e.a.Origin+"/v1/manifest/"+e.tracks[2]+"?country=US", nil, "Authorization", "Bearer "+e.se.Token); got != 400 {
		t.Errorf("SE session asking for a US manifest = %d, want 400", got)
	}
	if m.Country != "SE" {
		t.Errorf("manifest country %q, want the token's SE", m.Country)
	}
}

func row6(t *testing.T, e *env) {
	m := e.manifest(t, e.se, e.tracks[3])
	tr := m.Tiers[len(m.Tiers)-1]
	u := e.a.Edges[2] + tr.URL
	// Warm the object, so the cache's own growth is not counted.
	if got := e.status(t, "GET", u, nil, countryHeader, "SE"); got != 200 {
		t.Fatalf("warm = %d", got)
	}
	var ranges []string
	step := tr.Bytes / 16
	for i := range int64(16) {
		ranges = append(ranges, fmt.Sprintf("%d-%d", i*step, i*step+step/2))
	}
	before := heapInuse()
	conns := stalledRequests(t, 16, u, "Range: bytes="+strings.Join(ranges, ",")+"\r\n"+countryHeader+": SE\r\n")
	grown := int64(heapInuse()) - int64(before)
	for _, c := range conns {
		c.Close()
	}
	// 16 responses of 16 ranges of tr.Bytes/32 each: built in memory they
	// would hold 16 * tr.Bytes / 2.
	limit := int64(16 << 20)
	t.Logf("heap grew %d KiB holding 16 multipart responses of %d KiB each", grown>>10, tr.Bytes/2>>10)
	if grown > limit {
		t.Errorf("heap grew %d MiB with 16 stalled multipart responses, want under %d MiB", grown>>20, limit>>20)
	}
}

func row7(t *testing.T, e *env) {
	host := strings.TrimPrefix(e.a.Origin, "http://")
	// 100 plays POSTs announcing 1 MiB bodies, each sending one byte and
	// then nothing: at most plays.max_concurrent_bodies (64) get a slot,
	// the rest are told 503 at once, and the slow ones hold no buffers.
	before := heapInuse()
	var (
		mu    sync.Mutex
		codes = map[int]int{}
		wg    sync.WaitGroup
		conns []net.Conn
	)
	got503 := make(chan struct{}, 100)
	for range 100 {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "POST /v1/plays HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n[", host, e.se.Token)
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				return
			}
			resp.Body.Close()
			mu.Lock()
			codes[resp.StatusCode]++
			mu.Unlock()
			if resp.StatusCode == 503 {
				if resp.Header.Get("Retry-After") == "" {
					t.Error("503 without Retry-After")
				}
				got503 <- struct{}{}
			}
		}()
	}
	for range 100 - 64 {
		select {
		case <-got503:
		case <-time.After(30 * time.Second):
			t.Fatalf("fewer than 36 of 100 slow bodies were refused: %v", codes)
		}
	}
	grown := int64(heapInuse()) - int64(before)
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()
	t.Logf("100 slow 1 MiB plays bodies: %v; heap grew %d KiB", codes, grown>>10)
	if grown > 32<<20 {
		t.Errorf("heap grew %d MiB with 100 slow bodies", grown>>20)
	}
	// A slow header: the origin closes the connection once
	// http.read_header_timeout (5 s) has passed, whatever the client does.
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s\r\n", host)
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Errorf("a header never finished: the connection stayed open (%v)", err)
	}
}

func row8(t *testing.T, e *env) {
	pub := e.licenceKey(t)
	l := e.licence(t, pub, []byte(`{"track_id":"`+e.tracks[1]+`","device_id":"d8"}`))
	// The attacker's own key, a licence that lasts until 2100.
	_, mine, _ := ed25519.GenerateKey(rand.Reader)
	l.Expires = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	forged := licence.Sign(mine, l)
	st, err := offline.NewStore(t.TempDir(), pub, nil) // the key pinned from configuration
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(e.tracks[1], offline.Info{Kbps: 96}, forged, strings.NewReader("x"), 1, nil); err == nil {
		t.Error("the player stored a licence signed by another key")
	}
}

func row9(t *testing.T, e *env) {
	tr, other := e.tracks[4], e.tracks[5]
	m := e.manifest(t, e.se, tr)
	low := m.Tiers[0] // 24 kbps
	tok := tokenOf(t, low.URL)
	fills := e.shieldRequests(t)
	kr := e.p.Origin().Keyring()
	for _, tc := range []struct {
		name, path string
	}{
		{"24 kbps token for 320 kbps", "/a/" + tr + "/320.ogg?t=" + tok},
		{"audio token for the seek table", "/a/" + tr + "/24.seek?t=" + tok},
		{"another track", "/a/" + other + "/24.ogg?t=" + tok},
		{"expiry in the year 33658", "/a/" + tr + "/24.ogg?t=" + kr.Sign(tr+"/24.ogg", "SE", time.Unix(1_000_000_000_000, 0))},
		{"expiry past token_max_ttl", "/a/" + tr + "/24.ogg?t=" + kr.Sign(tr+"/24.ogg", "SE", time.Now().Add(48*time.Hour))},
	} {
		if got := e.status(t, "GET", e.a.Edges[0]+tc.path, nil, countryHeader, "SE", "Range", "bytes=0-99"); got != 403 {
			t.Errorf("%s: %d, want 403", tc.name, got)
		}
	}
	if d := e.shieldRequests(t) - fills; d != 0 {
		t.Errorf("refused tokens cost %v shield requests", d)
	}
	if got := e.status(t, "GET", e.a.Edges[0]+low.URL, nil, countryHeader, "SE", "Range", "bytes=0-99"); got != 206 {
		t.Errorf("the token for its own object: %d, want 206", got)
	}
}

func row10(t *testing.T, e *env) {
	urls := []string{e.a.Origin + "/metrics", e.a.Origin + "/v1/royalties/tracks/t5", e.a.Origin + "/debug/pprof/"}
	for i := range e.a.Edges {
		urls = append(urls, e.a.Edges[i]+"/metrics", e.a.Edges[i]+"/debug/pprof/", e.a.Edges[i]+"/peer/media/t5/96.ogg")
	}
	for i := range e.a.Shields {
		urls = append(urls, e.a.Shields[i]+"/metrics", e.a.Shields[i]+"/debug/pprof/")
	}
	for _, u := range urls {
		if got := e.status(t, "GET", u, nil, countryHeader, "SE"); got != 404 {
			t.Errorf("GET %s = %d, want 404 (internal only)", u, got)
		}
	}
	// A user's recommendations come from their plays: only their session.
	if got := e.status(t, "GET", e.a.Origin+"/v1/recs/user/demo-US", nil); got != 401 {
		t.Errorf("another user's recommendations without a session = %d, want 401", got)
	}
	if got := e.status(t, "GET", e.a.Origin+"/v1/recs/user/demo-US", nil, "Authorization", "Bearer "+e.se.Token); got != 403 {
		t.Errorf("another user's recommendations = %d, want 403", got)
	}
	if got := e.status(t, "GET", e.a.Origin+"/v1/recs/user/"+e.se.UserID, nil, "Authorization", "Bearer "+e.se.Token); got == 401 || got == 403 {
		t.Errorf("one's own recommendations = %d", got)
	}
	if got := e.status(t, "GET", e.a.Internal.Origin+"/v1/royalties/tracks/t5", nil); got != 200 {
		t.Errorf("royalties on the internal listener = %d, want 200", got)
	}
}

// row13: the admin API (origin/admin) and the nodes' /admin/ endpoints.
// The origin's purge is on its internal listener only (404 on the public
// one), needs the admin token (401 without, 403 with another, the tier
// credential of a node included), and the nodes' /admin/ need the tier
// credential and are on internal listeners only. Nothing refused is
// purged: the track stays served from the edge's cache without a new
// fill. Mutations caught: /v1/admin/ mounted on the public mux (a 401
// instead of 404), the admin check skipped (200), /admin/ served on a
// public listener or without the credential (200).
func row13(t *testing.T, e *env) {
	body := []byte(`{"tracks":["` + e.tracks[0] + `"],"takedown":true}`)
	ct := "application/json"
	for _, tc := range []struct {
		url  string
		hdr  []string
		want int
	}{
		{e.a.Origin + "/v1/admin/purge", []string{"Content-Type", ct, "Authorization", "Bearer " + e.a.AdminToken}, 404},
		{e.a.Internal.Origin + "/v1/admin/purge", []string{"Content-Type", ct}, 401},
		{e.a.Internal.Origin + "/v1/admin/purge", []string{"Content-Type", ct, "Authorization", "Bearer " + e.se.Token}, 403},
		{e.a.Internal.Origin + "/v1/admin/reload", []string{"Authorization", "Bearer not-the-token"}, 403},
		{e.a.Edges[0] + "/admin/purge?tracks=" + e.tracks[0], nil, 404},
		{e.a.Shields[0] + "/admin/purge?tracks=" + e.tracks[0], nil, 404},
		{e.a.Internal.Edges[0] + "/admin/purge?tracks=" + e.tracks[0] + "&takedown=9999999999", nil, 403},
		{e.a.Internal.Shields[0] + "/admin/reload", nil, 403},
		{e.a.Internal.Edges[0] + "/admin/restore?tracks=" + e.tracks[0], []string{"Authorization", "Bearer " + e.a.AdminToken}, 403},
	} {
		b := body
		if !strings.Contains(tc.url, "/v1/admin/") {
			b = nil // the nodes' /admin/ take no body (413)
		}
		if got := e.status(t, "POST", tc.url, b, tc.hdr...); got != tc.want {
			t.Errorf("POST %s %v = %d, want %d", tc.url, tc.hdr[:min(len(tc.hdr), 2)], got, tc.want)
		}
	}
	if n := e.p.Origin().Admin.TakenDown(e.tracks[0]); n {
		t.Errorf("%s was taken down by a refused call", e.tracks[0])
	}
	for _, ed := range e.p.Edges() {
		if ed.Revoked() != 0 {
			t.Errorf("an edge revoked tokens on a refused call: %d tracks", ed.Revoked())
		}
	}
}

func row11(t *testing.T, e *env) {
	kr := e.p.Origin().Keyring()
	path := "/a/nosuch/96.seek?t=" + url.QueryEscape(kr.Sign("nosuch/96.seek", "SE", time.Now().Add(time.Hour)))
	before := e.metric(t, e.a.Internal.Origin, "origin_media_requests_total", `code="404"`)
	for i := range 20 {
		if got := e.status(t, "GET", e.a.Edges[i%len(e.a.Edges)]+path, nil, countryHeader, "SE"); got != 404 {
			t.Fatalf("missing seek table = %d, want 404", got)
		}
	}
	// At most one look-up per shield within negative_ttl: every edge
	// fills from one of the 2 shields, which remember the 404.
	if d := e.metric(t, e.a.Internal.Origin, "origin_media_requests_total", `code="404"`) - before; d > float64(len(e.a.Shields)) {
		t.Errorf("20 requests for a missing seek table cost %v origin requests, want at most %d", d, len(e.a.Shields))
	}
}

func row12(t *testing.T, _ *env) {
	// The files carry placeholder secrets (configs_test loads them whole
	// with stand-ins); here only the listeners matter.
	for _, f := range []string{"edge-a.yaml", "edge-b.yaml", "edge-c.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "configs", "deploy", f))
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			Listen        string `yaml:"listen"`
			InternalAddr  string `yaml:"internal_addr"`
			CountryHeader string `yaml:"country_header"`
			Cluster       struct {
				HTTPAddr string `yaml:"http_addr"`
			} `yaml:"cluster"`
		}
		if err := yaml.Unmarshal(b, &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.Cluster.HTTPAddr != cfg.InternalAddr {
			t.Errorf("%s: peers fill from http_addr %q, not the internal listener %q", f, cfg.Cluster.HTTPAddr, cfg.InternalAddr)
		}
		if h, _, _ := net.SplitHostPort(cfg.InternalAddr); h == "0.0.0.0" || h == "" || cfg.InternalAddr == cfg.Listen {
			t.Errorf("%s: internal listener %q is not bound to the private network apart from %q", f, cfg.InternalAddr, cfg.Listen)
		}
		if cfg.CountryHeader == "" {
			t.Errorf("%s: a deployed edge must check the load balancer's country header", f)
		}
	}
}

// do sends a request with headers given as name, value pairs.
func (e *env) do(t *testing.T, method, u string, body []byte, hdr ...string) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (e *env) status(t *testing.T, method, u string, body []byte, hdr ...string) int {
	t.Helper()
	code, _ := e.do(t, method, u, body, hdr...)
	return code
}

func (e *env) manifest(t *testing.T, u pop.User, track string) api.Manifest {
	t.Helper()
	code, b := e.do(t, "GET", e.a.Origin+"/v1/manifest/"+track, nil, "Authorization", "Bearer "+u.Token)
	var m api.Manifest
	if code != 200 || json.Unmarshal(b, &m) != nil || len(m.Tiers) != 5 {
		t.Fatalf("manifest of %s: %d %s", track, code, b)
	}
	return m
}

// licence asks the origin for an offline licence (body is the request)
// with the SE user's session, and verifies it with pub.
func (e *env) licence(t *testing.T, pub ed25519.PublicKey, body []byte) licence.Licence {
	t.Helper()
	code, resp := e.do(t, "POST", e.a.Origin+"/v1/licences", body, "Content-Type", "application/json", "Authorization", "Bearer "+e.se.Token)
	var r licence.Response
	if code != 200 || json.Unmarshal(resp, &r) != nil {
		t.Fatalf("licence with a session = %d %s", code, resp)
	}
	l, err := licence.Verify(pub, r.Licence, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (e *env) licenceKey(t *testing.T) ed25519.PublicKey {
	t.Helper()
	var pub []byte
	if err := json.Unmarshal([]byte(`"`+e.a.LicenceKey+`"`), &pub); err != nil || len(pub) != ed25519.PublicKeySize {
		t.Fatalf("addr file licence_key %q: %v", e.a.LicenceKey, err)
	}
	return pub
}

// metric sums the samples of the family name whose labels contain
// labels, scraped from base's /metrics.
func (e *env) metric(t *testing.T, base, name, labels string) float64 {
	t.Helper()
	_, b := e.do(t, "GET", base+"/metrics", nil)
	sum := 0.0
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '{') || !strings.Contains(rest, labels) {
			continue
		}
		f := strings.Fields(rest)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// originServed counts the media requests the origin answered with
// anything but a 403 (its own refusals).
func (e *env) originServed(t *testing.T) float64 {
	return e.metric(t, e.a.Internal.Origin, "origin_media_requests_total", "") -
		e.metric(t, e.a.Internal.Origin, "origin_media_requests_total", `code="403"`)
}

func (e *env) shieldRequests(t *testing.T) float64 {
	n := 0.0
	for _, s := range e.a.Internal.Shields {
		n += e.metric(t, s, "shield_requests_total", "")
	}
	return n
}

func (e *env) originAPI(t *testing.T, handler string) float64 {
	return e.metric(t, e.a.Internal.Origin, "origin_api_requests_total", `handler="`+handler+`"`)
}

// stalledRequests sends n GETs of u with the extra header lines, reads
// each response's head and then stops reading, so the server holds
// whatever it holds for a slow reader.
func stalledRequests(t *testing.T, n int, u, extra string) []net.Conn {
	t.Helper()
	pu, _ := url.Parse(u)
	var conns []net.Conn
	for range n {
		c, err := net.Dial("tcp", pu.Host)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", pu.RequestURI(), pu.Host, extra)
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		br := bufio.NewReaderSize(c, 4096)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("reading the response head: %v", err)
			}
			if strings.HasPrefix(line, "HTTP/1.1 ") && !strings.HasPrefix(line, "HTTP/1.1 206") {
				t.Fatalf("multipart request: %s", line)
			}
			if line == "\r\n" {
				break
			}
		}
	}
	return conns
}

func tokenOf(t *testing.T, path string) string {
	u, err := url.Parse(path)
	if err != nil || u.Query().Get("t") == "" {
		t.Fatalf("no token in %q", path)
	}
	return u.Query().Get("t")
}

func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}
