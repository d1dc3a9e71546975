package cluster

import (
	"log/slog"
	"testing"
	"time"

	"github.com/musiccdn/cdn/cluster/rendezvous"
)

// bareMembership is a Membership with no gossip under it, to drive the
// members table and the Views with events directly.
func bareMembership(t *testing.T, self string) *Membership {
	t.Helper()
	cfg := validConfig()
	cfg.NodeName = self
	m := &Membership{
		cfg:     cfg,
		log:     testLoggerOrDiscard(t),
		kick:    make(chan struct{}, 1),
		members: make(map[string]*member),
		changed: make(chan struct{}),
		done:    make(chan struct{}),
	}
	for _, role := range []string{RoleEdge, RoleShield} {
		m.viewPtr(role).Store(&View{Role: role, Self: -1, Ring: rendezvous.New(nil)})
	}
	return m
}

func testLoggerOrDiscard(t *testing.T) *slog.Logger {
	if l := testLogger(t); l != nil {
		return l
	}
	return slog.New(slog.DiscardHandler)
}

func ev(kind eventKind, name string, md *meta) event {
	e := event{kind: kind, name: name, addr: "127.0.0.1:7946"}
	if md != nil {
		e.meta = encodeMeta(nil, *md)
	}
	return e
}

func TestApplyEvents(t *testing.T) {
	m := bareMembership(t, "e1")
	edge := func(w int) *meta { return &meta{Role: RoleEdge, HTTPAddr: "h", Weight: w} }
	shield := &meta{Role: RoleShield, HTTPAddr: "s", Weight: 1}
	steps := []struct {
		name         string
		events       []event
		edges        []string
		shields      []string
		edgeChanged  bool
		shieldChange bool
	}{
		{"self", []event{ev(evJoin, "e1", edge(1))}, []string{"e1"}, nil, true, true},
		{"two join", []event{ev(evJoin, "e2", edge(1)), ev(evJoin, "s1", shield)}, []string{"e1", "e2"}, []string{"s1"}, true, true},
		{"same again", []event{ev(evUpdate, "e2", edge(1))}, []string{"e1", "e2"}, []string{"s1"}, false, false},
		{"weight change", []event{ev(evUpdate, "e2", edge(3))}, []string{"e1", "e2"}, []string{"s1"}, true, false},
		{"bad meta", []event{ev(evJoin, "e3", nil)}, []string{"e1", "e2"}, []string{"s1"}, false, false},
		{"bad weight", []event{{kind: evJoin, name: "e4", meta: []byte{1, 4, 'e', 'd', 'g', 'e', 0, 0, 0}}}, []string{"e1", "e2"}, []string{"s1"}, false, false},
		{"leaving", []event{ev(evUpdate, "e2", &meta{Role: RoleEdge, HTTPAddr: "h", Weight: 3, Leaving: true})}, []string{"e1"}, []string{"s1"}, true, false},
		{"left", []event{ev(evLeave, "e2", nil)}, []string{"e1"}, []string{"s1"}, false, false},
		{"shield dies", []event{ev(evLeave, "s1", nil)}, []string{"e1"}, nil, false, true},
		{"unknown leaves", []event{ev(evLeave, "zz", nil)}, []string{"e1"}, nil, false, false},
		{"shield back", []event{ev(evJoin, "s1", shield)}, []string{"e1"}, []string{"s1"}, false, true},
	}
	for _, s := range steps {
		prevE, prevS := m.View(RoleEdge), m.View(RoleShield)
		ch := m.Changed()
		for _, e := range s.events {
			m.enqueue(e)
		}
		m.apply()
		select {
		case <-ch:
		default:
			t.Errorf("%s: Changed() not closed after apply", s.name)
		}
		e, sh := m.View(RoleEdge), m.View(RoleShield)
		if !viewIs(e, s.edges...) || !viewIs(sh, s.shields...) {
			t.Errorf("%s: views edge %v shield %v, want %v %v", s.name, names(e.Nodes), names(sh.Nodes), s.edges, s.shields)
		}
		if (e != prevE) != s.edgeChanged || (sh != prevS) != s.shieldChange {
			t.Errorf("%s: edge view replaced %v, shield view replaced %v; want %v, %v", s.name, e != prevE, sh != prevS, s.edgeChanged, s.shieldChange)
		}
		if e != prevE && e.Version <= prevE.Version || sh != prevS && sh.Version <= prevS.Version {
			t.Errorf("%s: Version did not increase", s.name)
		}
		if e.Self != 0 {
			t.Errorf("%s: edge Self = %d, want 0", s.name, e.Self)
		}
	}
	m.mu.Lock()
	e2, e3, s1 := *m.members["e2"], *m.members["e3"], *m.members["s1"]
	m.mu.Unlock()
	if e2.alive || !e2.left {
		t.Errorf("e2 after leaving then leave: %+v, want left", e2)
	}
	if !e3.alive || e3.node.Role != "" {
		t.Errorf("e3 with bad meta: %+v, want alive with no role", e3)
	}
	if !s1.alive || s1.left {
		t.Errorf("s1 after rejoin: %+v, want alive", s1)
	}
	// Gone members are forgotten after memberlist's own retention.
	m.mu.Lock()
	m.pruneLocked(time.Now().Add(time.Hour))
	_, kept := m.members["e2"]
	m.mu.Unlock()
	if kept {
		t.Errorf("e2 not pruned an hour after it left")
	}
}
