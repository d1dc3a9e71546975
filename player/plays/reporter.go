package plays

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/musiccdn/cdn/atomicfile"
	"github.com/musiccdn/cdn/origin/api"
)

// Event is one play, as POST /v1/plays takes it (a JSON array of these);
// TS is when the 30-second threshold was reached.
type Event = api.PlayEvent

// NewPlayID returns a fresh random play id (32 hex digits).
func NewPlayID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ReporterConfig configures a Reporter.
type ReporterConfig struct {
	// Origin is the base URL of the origin API, e.g. http://127.0.0.1:8080.
	// Empty means offline: events are only queued.
	Origin string
	// Dir holds the queue: one file per unacknowledged event. Required.
	Dir string
	// Client is the HTTP client; default http.DefaultClient.
	Client *http.Client
	// Token is the user's bearer token, sent with every POST.
	Token string
	// MaxBatch is the most events sent in one request. Default 500.
	MaxBatch int
}

// Reporter queues play events on disk and sends them. It is safe for
// concurrent use; use one per queue directory.
type Reporter struct {
	cfg ReporterConfig
	mu  sync.Mutex // one Flush at a time
}

// NewReporter returns a reporter, creating the queue directory.
func NewReporter(cfg ReporterConfig) (*Reporter, error) {
	if cfg.Dir == "" {
		return nil, errors.New("plays: no queue directory")
	}
	if cfg.Client == nil {
		cfg.Client = http.DefaultClient
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 500
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("plays: %w", err)
	}
	return &Reporter{cfg: cfg}, nil
}

// Dir is the queue directory.
func (r *Reporter) Dir() string { return r.cfg.Dir }

// Enqueue stores the event durably; it is sent by the next Flush.
func (r *Reporter) Enqueue(ev Event) error {
	if len(ev.PlayID) == 0 || strings.ContainsAny(ev.PlayID, `/\.`) {
		return fmt.Errorf("plays: bad play id %q", ev.PlayID)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("plays: %w", err)
	}
	if err := atomicfile.WriteBytes(filepath.Join(r.cfg.Dir, ev.PlayID+".json"), b); err != nil {
		return fmt.Errorf("plays: %w", err)
	}
	return nil
}

// Pending returns the queued events, oldest file name first.
func (r *Reporter) Pending() ([]Event, error) {
	names, err := r.names()
	if err != nil {
		return nil, err
	}
	var evs []Event
	for _, n := range names {
		ev, err := r.read(n)
		if err != nil {
			continue
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

// Flush sends queued events in batches until the queue is empty or a
// request fails; acknowledged events (HTTP 202) are removed. It returns the
// number sent. Unacknowledged events stay queued and are sent again, with
// the same play ids, by a later Flush.
func (r *Reporter) Flush(ctx context.Context) (int, error) {
	if r.cfg.Origin == "" {
		return 0, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	names, err := r.names()
	if err != nil {
		return 0, err
	}
	sent := 0
	for len(names) > 0 {
		batch := names[:min(len(names), r.cfg.MaxBatch)]
		names = names[len(batch):]
		var evs []Event
		var files []string
		for _, n := range batch {
			ev, err := r.read(n)
			if err != nil {
				// a corrupt entry can never be sent; drop it
				os.Remove(filepath.Join(r.cfg.Dir, n))
				continue
			}
			evs = append(evs, ev)
			files = append(files, n)
		}
		if len(evs) == 0 {
			continue
		}
		err := r.post(ctx, evs)
		if errors.Is(err, errRefused) {
			// The origin refused every event of the batch (each with its
			// reason): sending them again cannot succeed, so they are
			// dropped rather than block the queue for ever.
			for _, n := range files {
				os.Remove(filepath.Join(r.cfg.Dir, n))
			}
			continue
		}
		if err != nil {
			return sent, err
		}
		for _, n := range files {
			os.Remove(filepath.Join(r.cfg.Dir, n))
		}
		sent += len(evs)
	}
	return sent, nil
}

func (r *Reporter) post(ctx context.Context, evs []Event) error {
	body, err := json.Marshal(evs)
	if err != nil {
		return fmt.Errorf("plays: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(r.cfg.Origin, "/")+"/v1/plays", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("plays: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if r.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.cfg.Token)
	}
	resp, err := r.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("plays: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusAccepted:
		return nil
	case resp.StatusCode == http.StatusBadRequest:
		return fmt.Errorf("%w: %s", errRefused, resp.Status)
	}
	return fmt.Errorf("plays: POST /v1/plays: %s", resp.Status)
}

// errRefused is a 400: the origin judged every event of the batch invalid.
var errRefused = errors.New("plays: events refused")

func (r *Reporter) names() ([]string, error) {
	ents, err := os.ReadDir(r.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("plays: %w", err)
	}
	var names []string
	for _, e := range ents {
		if n := e.Name(); strings.HasSuffix(n, ".json") && !strings.HasPrefix(n, ".") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

func (r *Reporter) read(name string) (Event, error) {
	b, err := os.ReadFile(filepath.Join(r.cfg.Dir, name))
	if err != nil {
		return Event{}, err
	}
	var ev Event
	if err := json.Unmarshal(b, &ev); err != nil || ev.PlayID+".json" != name {
		return Event{}, errors.New("plays: corrupt queue entry")
	}
	return ev, nil
}
