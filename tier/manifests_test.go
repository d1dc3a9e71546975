package tier

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/identity"
	"github.com/musiccdn/cdn/origin"
	"github.com/musiccdn/cdn/origin/api"
	"github.com/musiccdn/cdn/origin/origintest"
	"github.com/musiccdn/cdn/origin/rights"
	"github.com/musiccdn/cdn/playticket"
	"github.com/musiccdn/cdn/tierauth"
)

// TestManifestsSurviveTheOrigin: an edge with manifest.enabled mints the
// origin's manifests from its snapshot, the URLs play at the edge, and it
// keeps minting after the origin is gone, until the snapshot is older
// than max_age. Catches: minting that asks the origin (fails once it is
// closed), a failed pull that drops the snapshot, max_age not enforced,
// a snapshot pull without the tier credential (403 at the origin).
func TestManifestsSurviveTheOrigin(t *testing.T) {
	// The origin reads the POP's clock once the POP exists (the edge
	// pulls as soon as it starts).
	var pp atomic.Pointer[testPOP]
	clock := func() time.Time {
		if p := pp.Load(); p != nil {
			return p.clock()
		}
		return time.Now()
	}
	o := origintest.Start(t, origintest.Config{
		TierKeys: []tierauth.KeyConfig{testTierKey},
		Rights:   rights.Synthetic{Seed: 42}, // some tracks denied, as in production
		Clock:    clock,
		Tweak: func(c *origin.Config) {
			c.Keys = []origin.KeyConfig{{ID: testKey.ID, Secret: testKey.Secret}}
		},
	})
	idp := o.Issuer
	popKey := Key{ID: "pop-test", Secret: strings.Repeat("7e", 32)}
	p := newTestPOP(t, func(e, s *Config) {
		e.Manifest.Enabled = true
		e.Manifest.OriginURL = o.URL
		e.Manifest.Identity.PublicKeys = []string{idp.PublicKey()}
		e.Manifest.TicketKeys = []Key{popKey}
		e.Manifest.Refresh = config.Duration(time.Hour) // the test pulls by hand
		e.Manifest.MaxAge = config.Duration(2 * time.Hour)
	})
	pp.Store(p)
	mf := p.edge.manifests
	if err := mf.pull(context.Background()); err != nil {
		t.Fatalf("pull: %v", err)
	}
	first := mf.snap.Load()
	if err := mf.pull(context.Background()); err != nil || mf.snap.Load() != first {
		t.Fatalf("second pull of an unchanged snapshot: %v, decoded again %v (want a 304)", err, mf.snap.Load() != first)
	}
	var id, cc string
	var want origin.Manifest
	for i := 0; id == ""; i++ {
		for _, c := range []string{"SE", "US", "DE"} {
			if m, err := o.Server.Manifest(context.Background(), fmt.Sprintf("t%d", i), c, p.clock()); err == nil {
				id, cc, want = fmt.Sprintf("t%d", i), c, m
				break
			}
		}
	}
	tok, err := idp.Issue(identity.User{ID: "u1", Country: cc}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := p.get(t, p.edge.URL()+"/v1/manifest/"+id); resp.StatusCode != 401 {
		t.Fatalf("manifest without a session: %d, want 401", resp.StatusCode)
	}
	other := "SE"
	if cc == "SE" {
		other = "US"
	}
	if resp, _ := p.get(t, p.edge.URL()+"/v1/manifest/"+id+"?country="+other, "Authorization", "Bearer "+tok); resp.StatusCode != 400 {
		t.Fatalf("manifest for another country than the session's: %d, want 400", resp.StatusCode)
	}
	get := func() (int, api.Manifest) {
		resp, body := p.get(t, p.edge.URL()+"/v1/manifest/"+id, "Authorization", "Bearer "+tok)
		var m api.Manifest
		if resp.StatusCode == 200 {
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, m
	}
	code, m := get()
	// The play ticket is the POP's, for this play, user and track.
	kr, _ := playticket.NewKeyring(playticket.Key{ID: "origin", Secret: bytes.Repeat([]byte{1}, 32)}, playticket.Key{ID: popKey.ID, Secret: bytes.Repeat([]byte{0x7e}, 32)})
	claims, err := kr.Verify(m.PlayTicket)
	if err != nil || claims.PlayID != m.PlayID || claims.UserID != "u1" || claims.TrackID != id || claims.Country != cc || !strings.HasPrefix(m.PlayTicket, "p1."+popKey.ID+".") {
		t.Fatalf("play ticket %q: %+v, %v", m.PlayTicket, claims, err)
	}
	m.PlayID, m.PlayTicket = "", ""
	wj, _ := json.Marshal(want)
	mj, _ := json.Marshal(m)
	if code != 200 || !bytes.Equal(wj, mj) {
		t.Fatalf("edge manifest: %d\n got  %s\n want %s", code, mj, wj)
	}
	var i int
	fmt.Sscanf(id, "t%d", &i)
	resp, body := p.get(t, p.edge.URL()+m.Tiers[0].URL, "Range", "bytes=0-99")
	if resp.StatusCode != 206 || !bytes.Equal(body, p.expect(i, m.Tiers[0].Kbps, 0, 99)) {
		t.Fatalf("minted URL: status %d", resp.StatusCode)
	}

	o.Close() // every origin instance gone
	if err := mf.pull(context.Background()); err == nil {
		t.Fatal("pull from a closed origin succeeded")
	}
	p.advance(time.Hour)
	if code, _ := get(); code != 200 {
		t.Fatalf("origin down for an hour: manifest %d, want 200 from the snapshot", code)
	}
	p.advance(2 * time.Hour)
	if code, _ := get(); code != 503 {
		t.Fatalf("snapshot past max_age: manifest %d, want 503", code)
	}
}
