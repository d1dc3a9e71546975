package plays

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

func TestReporterRetriesWithSamePlayID(t *testing.T) {
	var mu sync.Mutex
	var got [][]Event
	fail := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var evs []Event
		if r.URL.Path != "/v1/plays" || json.NewDecoder(r.Body).Decode(&evs) != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		got = append(got, evs)
		if fail {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()

	dir := t.TempDir()
	// made offline: queued only
	off, err := NewReporter(ReporterConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	id := NewPlayID()
	if err := off.Enqueue(Event{PlayID: id, TrackID: "t1", MSPlayed: 30000}); err != nil {
		t.Fatal(err)
	}
	if n, err := off.Flush(context.Background()); n != 0 || err != nil {
		t.Fatalf("offline Flush = %d, %v", n, err)
	}

	r, _ := NewReporter(ReporterConfig{Dir: dir, Origin: srv.URL})
	if _, err := r.Flush(context.Background()); err == nil {
		t.Fatal("Flush against a failing origin succeeded")
	}
	if p, _ := r.Pending(); len(p) != 1 {
		t.Fatalf("after a failure %d pending, want 1", len(p))
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	if n, err := r.Flush(context.Background()); n != 1 || err != nil {
		t.Fatalf("Flush = %d, %v, want 1, nil", n, err)
	}
	if p, _ := r.Pending(); len(p) != 0 {
		t.Fatalf("after ack %d pending, want 0", len(p))
	}
	if len(got) != 2 || got[0][0].PlayID != id || got[1][0].PlayID != id {
		t.Fatalf("requests %v, want the same play id twice", got)
	}
	if n, _ := r.Flush(context.Background()); n != 0 {
		t.Fatalf("second Flush sent %d", n)
	}
}

// TestReporterTokenAndRefusal: every POST carries the bearer token; a
// batch the origin refuses outright (400: every event invalid, e.g. a
// ticket the origin does not accept) is dropped, not retried for ever,
// while a 503 keeps it. Mutations caught: no Authorization header (the
// header check), treating 400 like 503 (the queue is not empty).
func TestReporterTokenAndRefusal(t *testing.T) {
	var mu sync.Mutex
	code, auths := http.StatusServiceUnavailable, []string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		auths = append(auths, r.Header.Get("Authorization"))
		w.WriteHeader(code)
	}))
	defer srv.Close()
	r, _ := NewReporter(ReporterConfig{Dir: t.TempDir(), Origin: srv.URL, Token: "tok"})
	r.Enqueue(Event{PlayID: "p1", TrackID: "t1", Ticket: "x"})
	if _, err := r.Flush(context.Background()); err == nil {
		t.Fatal("503 flushed")
	}
	if p, _ := r.Pending(); len(p) != 1 {
		t.Fatalf("after 503: %d queued, want 1", len(p))
	}
	mu.Lock()
	code = http.StatusBadRequest
	mu.Unlock()
	if n, err := r.Flush(context.Background()); n != 0 || err != nil {
		t.Fatalf("400 Flush = %d, %v; want 0 sent, no error", n, err)
	}
	if p, _ := r.Pending(); len(p) != 0 {
		t.Fatalf("after 400: %d queued, want 0", len(p))
	}
	mu.Lock()
	defer mu.Unlock()
	for _, a := range auths {
		if a != "Bearer tok" {
			t.Errorf("Authorization %q", a)
		}
	}
}
