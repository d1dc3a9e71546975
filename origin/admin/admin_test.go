package admin

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/musiccdn/cdn/tierauth"
)

const secret = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// node is a fake tier node recording the admin calls it verified.
type node struct {
	name string
	kr   *tierauth.Keyring
	log  *calls
	fail bool
}

type calls struct {
	mu  sync.Mutex
	seq []string
}

func (n *node) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := n.kr.Verify([]byte(r.Header.Get(tierauth.Header)), []byte(r.Method), []byte(r.RequestURI), time.Now()); err != nil {
		http.Error(w, "forbidden", 403)
		return
	}
	n.log.mu.Lock()
	n.log.seq = append(n.log.seq, n.name+" "+r.URL.Path+"?"+r.URL.RawQuery)
	n.log.mu.Unlock()
	if n.fail {
		http.Error(w, "down", 503)
	}
}

// TestFanOutOrder: every shield is purged before any edge, edges twice,
// each call signed with the tier credential; a node that fails is named
// and makes the purge an error. Mutations caught: edges and shields in
// one round (an edge before a shield), one edge round only, a failure
// not reported.
func TestFanOutOrder(t *testing.T) {
	kr, _ := tierauth.New([]tierauth.KeyConfig{{ID: "k", Secret: secret}})
	log := &calls{}
	var shields, edges []string
	var failing *node
	for _, name := range []string{"s1", "s2", "e1", "e2", "e3"} {
		n := &node{name: name, kr: kr, log: log}
		if name == "e3" {
			failing, n.fail = n, true
		}
		srv := httptest.NewServer(n)
		t.Cleanup(srv.Close)
		if name[0] == 's' {
			shields = append(shields, srv.URL)
		} else {
			edges = append(edges, srv.URL)
		}
	}
	cfg := DefaultConfig()
	cfg.Token = strings.Repeat("x", 32)
	cfg.POPs = []POPConfig{{Name: "p", Shields: shields, Edges: edges}}
	a, err := New(cfg, kr, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.Purge(context.Background(), []string{"t1", "t2"}, true)
	if err == nil || len(res.Failed) != 1 || res.Failed[0] != edges[2] || res.Nodes != 2+2*2 {
		t.Fatalf("purge with a failing edge: %+v, %v", res, err)
	}
	seq := log.seq
	if len(seq) != 2+3*2 {
		t.Fatalf("calls %v", seq)
	}
	for i, c := range seq {
		if (i < 2) != strings.HasPrefix(c, "s") {
			t.Fatalf("call %d is %q: shields must all come first: %v", i, c, seq)
		}
		if !strings.Contains(c, "/admin/purge?tracks=t1,t2&takedown=") {
			t.Errorf("call %q", c)
		}
	}
	if !a.TakenDown("t1") || a.TakenDown("t3") {
		t.Error("takedown set")
	}
	failing.fail = false
	if _, err := a.Restore(context.Background(), []string{"t1"}); err != nil || a.TakenDown("t1") {
		t.Errorf("restore: %v", err)
	}
}

// FuzzDecode: a purge body (from a token holder, but parsed before any
// work) is refused with 400 or accepted with 1 to MaxTracks valid ids.
func FuzzDecode(f *testing.F) {
	f.Add(`{"tracks":["t5"]}`)
	f.Add(`{"tracks":["t5","../x"],"takedown":true}`)
	f.Add(`{"tracks":[],"x":1}`)
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("POST", "/v1/admin/purge", strings.NewReader(body))
		req, err := decode(httptest.NewRecorder(), r)
		if err != nil {
			return
		}
		if len(req.Tracks) == 0 || len(req.Tracks) > MaxTracks {
			t.Fatalf("accepted %d tracks", len(req.Tracks))
		}
	})
}
