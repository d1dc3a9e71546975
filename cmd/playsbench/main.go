// Command playsbench measures the play-counting pipeline of origin/plays
// on this machine, from POST /v1/plays to the ledger, with the embedded
// broker and SQLite and, given a DSN, PostgreSQL. For each backend, back to
// back in one run (the machine is shared, so ratios matter more than
// absolute figures):
//
//   - baseline: the same events produced straight to a fresh embedded
//     broker, idempotent, acks=all, zstd, no HTTP, no transactions, no
//     ledger: what the broker and client alone take;
//   - burst: every event POSTed as fast as the server takes them, timed
//     until the ledger has counted the last one;
//   - sustained: events POSTed at a fixed offered rate (-rate) for
//     -duration, with the ledger lag (event accepted by the broker to
//     counted) quantiles over that phase.
//
// Every event carries a real play ticket (package playticket; its play id
// a ULID from playticket.NewID, so the ledger files it under its issue
// day) and every POST a real bearer token (package identity) of the one
// user whose plays the batch holds, so the figures include the session
// check at ingest and the ticket checks at ingest and in the stage. 5 % of
// the batches are POSTed twice (a client retrying a whole batch); after
// each phase the ledger must hold exactly the distinct qualifying plays
// ("exact").
//
//	go run ./cmd/playsbench                       # sqlite, and postgres if PLAYS_TEST_PG_DSN is set
//	go run ./cmd/playsbench -backend postgres -pg-dsn postgres://...
//	go run ./cmd/playsbench -json                 # one JSON object per backend per line
//	go run ./cmd/playsbench -cpuprofile /tmp/plays.pprof && go tool pprof -top /tmp/plays.pprof
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/musiccdn/cdn/identity"
	"github.com/musiccdn/cdn/origin/plays"
	"github.com/musiccdn/cdn/playticket"
)

type allowAll struct{}

func (allowAll) Allowed(string, string, time.Time) bool { return true }

type options struct {
	events, batch, clients, partitions, stageBatch, ledgerBatch int
	rate                                                        float64
	duration                                                    time.Duration
	batchWait                                                   time.Duration
	cpuprofile, pgDSN                                           string
	skipBase, asJSON                                            bool
}

// result is one backend's figures; -json prints it as is.
type result struct {
	Backend      string  `json:"backend"`
	Events       int     `json:"events"`
	BurstEPS     float64 `json:"burst_eps"`
	SustainedEPS float64 `json:"sustained_eps"`
	OfferedEPS   float64 `json:"offered_eps"`
	LagP50MS     float64 `json:"lag_p50_ms"`
	LagP99MS     float64 `json:"lag_p99_ms"`
	BaselineEPS  float64 `json:"baseline_eps"`
	Exact        bool    `json:"exact"`
}

func main() {
	var o options
	backend := flag.String("backend", "all", "sqlite, postgres, or all (postgres only when a DSN is given)")
	flag.IntVar(&o.events, "events", 300_000, "distinct events in the burst phase (5% more are resent)")
	flag.IntVar(&o.batch, "batch", 500, "events per POST")
	flag.IntVar(&o.clients, "clients", 8, "concurrent HTTP clients")
	flag.IntVar(&o.partitions, "partitions", 8, "topic partitions")
	flag.IntVar(&o.stageBatch, "stage-batch", 5000, "records per stage transaction")
	flag.IntVar(&o.ledgerBatch, "ledger-batch", 10000, "records per ledger transaction")
	flag.Float64Var(&o.rate, "rate", 100_000, "offered events/s in the sustained phase; 0 skips it")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "length of the sustained phase")
	flag.DurationVar(&o.batchWait, "batch-wait", plays.DefaultConfig().BatchWait, "Config.BatchWait (0 disables fetch batching)")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write CPU profiles of the burst phase here and of the sustained phase at this path + \".sustained\" (with both backends, the last one's)")
	flag.StringVar(&o.pgDSN, "pg-dsn", os.Getenv("PLAYS_TEST_PG_DSN"), "PostgreSQL DSN (default $PLAYS_TEST_PG_DSN); the ledger's tables are created in it")
	flag.BoolVar(&o.skipBase, "skip-baseline", false, "skip the no-transaction baseline")
	flag.BoolVar(&o.asJSON, "json", false, "print one JSON object per backend per line, and the human report on stderr")
	flag.Parse()

	var backends []string
	switch *backend {
	case "all":
		backends = []string{"sqlite"}
		if o.pgDSN != "" {
			backends = append(backends, "postgres")
		}
	case "sqlite", "postgres":
		backends = []string{*backend}
	default:
		fmt.Fprintln(os.Stderr, "playsbench: -backend must be sqlite, postgres or all")
		os.Exit(2)
	}
	if *backend == "postgres" && o.pgDSN == "" {
		fmt.Fprintln(os.Stderr, "playsbench: -backend postgres needs -pg-dsn or PLAYS_TEST_PG_DSN (scripts/pg-test.sh start)")
		os.Exit(2)
	}
	out := io.Writer(os.Stdout)
	if o.asJSON {
		out = os.Stderr
	}
	fmt.Fprintf(out, "playsbench: %d events (+5%% resent), batches of %d, %d clients, %d partitions, sustained %v/s for %v, GOMAXPROCS=%d\n",
		o.events, o.batch, o.clients, o.partitions, o.rate, o.duration, runtime.GOMAXPROCS(0))
	if *backend == "all" && o.pgDSN == "" {
		fmt.Fprintln(out, "note: no PostgreSQL DSN (-pg-dsn or PLAYS_TEST_PG_DSN): postgres skipped")
	}
	for _, b := range backends {
		r, err := runBackend(b, o, out)
		if err != nil {
			fmt.Fprintf(os.Stderr, "playsbench: %s: %v\n", b, err)
			os.Exit(1)
		}
		if o.asJSON {
			line, _ := json.Marshal(r)
			fmt.Println(string(line))
		}
	}
}

// run is one pipeline under test: a fresh data directory, a fresh
// embedded broker, the plays service and its HTTP server.
type run struct {
	svc  *plays.Service
	reg  *prometheus.Registry
	url  string
	stop func()
}

// freshSchema creates an empty schema for one run and returns dsn with
// its search_path set to it.
func freshSchema(ctx context.Context, dsn string, seq int) (string, error) {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", fmt.Errorf("postgres: %w", err)
	}
	defer c.Close(ctx)
	schema := fmt.Sprintf("playsbench_%d_%d", os.Getpid(), seq)
	if _, err := c.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE; CREATE SCHEMA "+schema); err != nil {
		return "", fmt.Errorf("postgres: %w", err)
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "search_path=" + schema, nil
}

func dropSchema(dsn string, seq int) {
	ctx := context.Background()
	if c, err := pgx.Connect(ctx, dsn); err == nil {
		c.Exec(ctx, fmt.Sprintf("DROP SCHEMA IF EXISTS playsbench_%d_%d CASCADE", os.Getpid(), seq))
		c.Close(ctx)
	}
}

func start(backend string, o options, trust plays.Trust, seq int) (*run, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "playsbench")
	if err != nil {
		return nil, err
	}
	cfg := plays.DefaultConfig()
	cfg.DataDir = dir
	cfg.Partitions = o.partitions
	cfg.StageBatch = o.stageBatch
	cfg.LedgerBatch = o.ledgerBatch
	cfg.BatchWait = o.batchWait
	cfg.MaxBatchEvents = max(o.batch, cfg.MaxBatchEvents)
	cfg.UserRate = 0 // 50,000 users post in turn; the bench measures the pipeline, not the limiter
	if backend == "postgres" {
		dsn, err := freshSchema(ctx, o.pgDSN, seq)
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		cfg.PostgresDSN = dsn
	}
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	svc, err := plays.New(ctx, cfg, allowAll{}, trust, logger, reg)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		svc.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	srv := &http.Server{Handler: svc.Handler()}
	go srv.Serve(ln)
	return &run{svc: svc, reg: reg, url: "http://" + ln.Addr().String() + "/v1/plays", stop: func() {
		srv.Close()
		svc.Close()
		os.RemoveAll(dir)
		if backend == "postgres" {
			dropSchema(o.pgDSN, seq)
		}
	}}, nil
}

func runBackend(backend string, o options, out io.Writer) (result, error) {
	res := result{Backend: backend, Events: o.events, OfferedEPS: o.rate, Exact: true}
	tr, err := newBenchTrust()
	if err != nil {
		return res, err
	}
	evs, bodies, want, err := makeEvents(o.events, o.batch, time.Now(), tr)
	if err != nil {
		return res, err
	}
	fmt.Fprintf(out, "\n[%s]\n", backend)

	if !o.skipBase {
		r, err := baseline(context.Background(), evs, o.partitions)
		if err != nil {
			return res, fmt.Errorf("baseline: %w", err)
		}
		res.BaselineEPS = r
		fmt.Fprintf(out, "baseline (idempotent produce, acks=all, zstd; no HTTP, txn or ledger): %.0f events/s\n", r)
	}

	// Burst.
	rn, err := start(backend, o, tr.trust, 1)
	if err != nil {
		return res, err
	}
	var stopProf func()
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			rn.stop()
			return res, err
		}
		pprof.StartCPUProfile(f)
		stopProf = func() { pprof.StopCPUProfile(); f.Close() }
	}
	t0 := time.Now()
	ingest, retried, refused := post(rn.url, bodies, o.clients, 0, o.batch)
	if refused != nil {
		rn.stop()
		return res, refused
	}
	if err := waitCounted(rn.reg, want, 0); err != nil {
		rn.stop()
		return res, err
	}
	total := time.Since(t0)
	if stopProf != nil {
		stopProf()
	}
	res.BurstEPS = float64(len(evs)) / total.Seconds()
	exact, err := checkExact(rn.svc, want)
	if err != nil {
		rn.stop()
		return res, err
	}
	res.Exact = res.Exact && exact
	fmt.Fprintf(out, "burst: %d events (%d distinct, %d qualifying) POSTed in %v, in the ledger after %v: %.0f events/s end to end (goal 139000: %.0f%%)%s\n",
		len(evs), o.events, want, ingest.Round(time.Millisecond), total.Round(time.Millisecond), res.BurstEPS, 100*res.BurstEPS/139000, retriedNote(retried))
	if res.BaselineEPS > 0 {
		fmt.Fprintf(out, "ratio burst / baseline: %.3f\n", res.BurstEPS/res.BaselineEPS)
	}
	fmt.Fprintf(out, "exact after burst: %v\n", exact)
	rn.stop()

	// Sustained, on a fresh pipeline.
	if o.rate > 0 {
		n := int(o.rate * o.duration.Seconds())
		sevs, sbodies, swant, err := makeEvents(n, o.batch, time.Now(), tr)
		if err != nil {
			return res, err
		}
		rn, err := start(backend, o, tr.trust, 2)
		if err != nil {
			return res, err
		}
		defer rn.stop()
		before, _ := histogram(rn.reg, "origin_plays_ledger_lag_seconds")
		stopProf := func() {}
		if o.cpuprofile != "" {
			f, err := os.Create(o.cpuprofile + ".sustained")
			if err != nil {
				return res, err
			}
			pprof.StartCPUProfile(f)
			stopProf = func() { pprof.StopCPUProfile(); f.Close() }
		}
		t0 := time.Now()
		ingest, retried, refused := post(rn.url, sbodies, o.clients, o.rate, o.batch)
		if refused != nil {
			return res, refused
		}
		if err := waitCounted(rn.reg, swant, 0); err != nil {
			return res, err
		}
		total := time.Since(t0)
		stopProf()
		res.SustainedEPS = float64(len(sevs)) / total.Seconds()
		lag, err := histogram(rn.reg, "origin_plays_ledger_lag_seconds")
		if err != nil {
			return res, err
		}
		lag = subtract(lag, before)
		res.LagP50MS = 1000 * quantile(lag, 0.50)
		res.LagP99MS = 1000 * quantile(lag, 0.99)
		exact, err := checkExact(rn.svc, swant)
		if err != nil {
			return res, err
		}
		res.Exact = res.Exact && exact
		fmt.Fprintf(out, "sustained: %d events offered at %.0f/s, POSTed in %v, in the ledger after %v: %.0f events/s; ledger lag p50 %.0f ms p99 %.0f ms (%d observations, bucket-interpolated)%s\n",
			len(sevs), o.rate, ingest.Round(time.Millisecond), total.Round(time.Millisecond), res.SustainedEPS, res.LagP50MS, res.LagP99MS, lag.GetSampleCount(), retriedNote(retried))
		fmt.Fprintf(out, "exact after sustained: %v\n", exact)
	}
	return res, nil
}

func retriedNote(err error) string {
	if err == nil {
		return ""
	}
	return fmt.Sprintf(" (some POSTs retried; last error %v)", err)
}

// benchTrust is the bench's ticket keyring and identity provider: what
// the origin's manifests and its identity service would be.
type benchTrust struct {
	trust plays.Trust
	iss   *identity.Issuer
}

func newBenchTrust() (*benchTrust, error) {
	secret := make([]byte, 32)
	rand.Read(secret)
	kr, err := playticket.NewKeyring(playticket.Key{ID: "bench", Secret: secret})
	if err != nil {
		return nil, err
	}
	iss, err := identity.NewIssuer()
	if err != nil {
		return nil, err
	}
	v, err := identity.NewVerifier(identity.Config{PublicKeys: []string{iss.PublicKey()}})
	if err != nil {
		return nil, err
	}
	return &benchTrust{trust: plays.Trust{Tickets: kr, Sessions: v}, iss: iss}, nil
}

// body is one POST: a batch of one user's plays and that user's bearer
// token.
type body struct {
	b    []byte
	auth string
}

// makeEvents makes n distinct play events, about 10 % of them under 30 s,
// in batches of batch events of one user each (POST /v1/plays takes only
// the session user's own plays; 50,000 users in turn), and POSTs 5 % of
// the batches twice (each 20th, again 2 batches later, as a client retries
// a whole batch). It returns the events in sending order, the bodies, and
// the number of distinct qualifying plays. Each event carries a ticket as
// the origin's manifest mints it: its play id a playticket.NewID ULID of
// the ticket's issue time, two hours before now, its ts an hour before
// now. This is the one place events are made.
func makeEvents(n, batch int, now time.Time, tr *benchTrust) ([][]byte, []body, int64, error) {
	countries := []string{"SE", "NO", "DE", "US", "GB", "FR", "BR", "JP"}
	ts := now.UTC().Add(-time.Hour)
	tsText := ts.Format(time.RFC3339)
	issued := now.Add(-2 * time.Hour)
	var out, distinct [][]byte
	var bodies, once []body // in sending order; each batch once
	var want int64
	for start, k := 0, 0; start < n; start, k = start+batch, k+1 {
		user := fmt.Sprintf("u%d", k%50_000)
		tok, err := tr.iss.Issue(identity.User{ID: user, Country: "SE"}, 24*time.Hour)
		if err != nil {
			return nil, nil, 0, err
		}
		var b bytes.Buffer
		b.WriteByte('[')
		var evs [][]byte
		for i := start; i < min(start+batch, n); i++ {
			ms := 30_000 + (i*7919)%200_000
			if i%10 == 3 {
				ms = i % 30_000
			} else {
				want++
			}
			at := issued.Add(time.Duration(i) * time.Microsecond)
			play, track, cc := playticket.NewID(at), fmt.Sprintf("t%d", i%10_000), countries[i%len(countries)]
			tk, err := tr.trust.Tickets.Mint(playticket.Claims{PlayID: play, UserID: user, TrackID: track, Country: cc,
				IssuedMS: at.UnixMilli(), DurationMS: 300_000})
			if err != nil {
				return nil, nil, 0, err
			}
			e := fmt.Appendf(nil, `{"play_id":"%s","user_id":"%s","track_id":"%s","country":"%s","tier_kbps":160,"ms_played":%d,"ts":"%s","ticket":"%s"}`,
				play, user, track, cc, ms, tsText, tk)
			if i > start {
				b.WriteByte(',')
			}
			b.Write(e)
			evs = append(evs, e)
		}
		b.WriteByte(']')
		once = append(once, body{b: b.Bytes(), auth: "Bearer " + tok})
		bodies = append(bodies, once[k])
		distinct = append(distinct, evs...)
		out = append(out, evs...)
		if j := k - 2; j >= 0 && j%20 == 0 {
			bodies = append(bodies, once[j]) // batch j again, after batch j+2
			out = append(out, distinct[j*batch:min((j+1)*batch, n)]...)
		}
	}
	return out, bodies, want, nil
}

// post sends bodies with clients concurrent clients, paced open-loop at
// rate events/s when rate > 0, each retried until 202; it returns the time
// taken, the last error seen before a retry, and the first refusal: an
// event refused in a 202, or a 4xx other than 429 (not retried), which
// means the bench's events, tickets or tokens are wrong.
func post(url string, bodies []body, clients int, rate float64, batch int) (time.Duration, error, error) {
	start := time.Now()
	work := make(chan body)
	var wg sync.WaitGroup
	var failMu sync.Mutex
	var fail, refused error
	refuse := func(err error) {
		failMu.Lock()
		if refused == nil {
			refused = err
		}
		failMu.Unlock()
	}
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			for body := range work {
				for {
					req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body.b))
					if err != nil {
						panic(err) // url is the bench's own
					}
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", body.auth)
					resp, err := hc.Do(req)
					if err == nil {
						msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
						resp.Body.Close()
						var ir struct {
							Rejected []json.RawMessage `json:"rejected"`
						}
						if resp.StatusCode == http.StatusAccepted && (json.Unmarshal(msg, &ir) != nil || len(ir.Rejected) > 0) {
							refuse(fmt.Errorf("202 with events refused: %.300s", msg))
						}
						if resp.StatusCode == http.StatusAccepted {
							break
						}
						if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
							// The bench's events or tokens are wrong:
							// retrying would never end.
							refuse(fmt.Errorf("status %d: %.300s", resp.StatusCode, msg))
							break
						}
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
					failMu.Lock()
					fail = err
					failMu.Unlock()
					time.Sleep(50 * time.Millisecond) // a client's backoff
				}
			}
		}()
	}
	for i, b := range bodies {
		if rate > 0 {
			due := start.Add(time.Duration(float64(i*batch) / rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		work <- b
	}
	close(work)
	wg.Wait()
	return time.Since(start), fail, refused
}

// waitCounted waits until the sink's counter reaches want (plus base).
func waitCounted(reg *prometheus.Registry, want int64, base float64) error {
	deadline := time.Now().Add(10 * time.Minute)
	d := time.Millisecond
	for {
		// The sink's counter, not a SUM over the ledger: polling the
		// database would compete with the sink for it.
		counted, err := counter(reg, "origin_plays_ledger_counted_total")
		if err != nil {
			return err
		}
		if int64(counted-base) >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ledger has %.0f of %d plays after 10 minutes", counted-base, want)
		}
		time.Sleep(d) // polling a counter; the pipeline is what is measured
		d = min(2*d, 20*time.Millisecond)
	}
}

// checkExact reports whether the ledger holds exactly want plays in its
// counts and want play ids.
func checkExact(svc *plays.Service, want int64) (bool, error) {
	ctx := context.Background()
	totals, err := svc.Ledger().TotalPlays(ctx)
	if err != nil {
		return false, err
	}
	var sum int64
	for _, n := range totals {
		sum += n
	}
	ids, err := svc.Ledger().PlayIDs(ctx)
	if err != nil {
		return false, err
	}
	return sum == want && ids == want, nil
}

// baseline produces the same event values to a fresh embedded broker with
// the ingest producer's settings but no HTTP, no transactions, no stage
// and no ledger: what the broker and client alone can take.
func baseline(ctx context.Context, evs [][]byte, partitions int) (float64, error) {
	dir, err := os.MkdirTemp("", "playsbench-base")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	b, err := plays.StartBroker(ctx, filepath.Join(dir, "kafka"), partitions, nil)
	if err != nil {
		return 0, err
	}
	defer b.Close()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(b.Addr()),
		kgo.DefaultProduceTopic(plays.PlaysTopic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(plays.ProducerCompression()),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.MaxBufferedRecords(100_000),
	)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	start := time.Now()
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var perr error
	wg.Add(len(evs))
	for i, v := range evs {
		cl.Produce(ctx, &kgo.Record{Key: []byte(fmt.Sprintf("p%09d", i)), Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				errMu.Lock()
				perr = err
				errMu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	el := time.Since(start)
	if perr != nil {
		return 0, perr
	}
	return float64(len(evs)) / el.Seconds(), nil
}

func counter(reg *prometheus.Registry, name string) (float64, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue(), nil
		}
	}
	return 0, fmt.Errorf("no counter %s", name)
}

func histogram(reg *prometheus.Registry, name string) (*dto.Histogram, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return nil, err
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetHistogram(), nil
		}
	}
	return nil, fmt.Errorf("no histogram %s", name)
}

// quantile interpolates q linearly inside the bucket that holds it.
func quantile(h *dto.Histogram, q float64) float64 {
	total := float64(h.GetSampleCount())
	if total == 0 {
		return math.NaN()
	}
	bs := h.GetBucket()
	sort.Slice(bs, func(i, j int) bool { return bs[i].GetUpperBound() < bs[j].GetUpperBound() })
	rank := q * total
	prevUpper, prevCount := 0.0, 0.0
	for _, b := range bs {
		c := float64(b.GetCumulativeCount())
		if c >= rank {
			if c == prevCount {
				return b.GetUpperBound()
			}
			return prevUpper + (b.GetUpperBound()-prevUpper)*(rank-prevCount)/(c-prevCount)
		}
		prevUpper, prevCount = b.GetUpperBound(), c
	}
	return math.Inf(1)
}

func fmtSec(s float64) string {
	if math.IsInf(s, 1) || math.IsNaN(s) {
		return fmt.Sprint(s)
	}
	return time.Duration(s * float64(time.Second)).Round(100 * time.Microsecond).String()
}

// subtract returns h minus an earlier snapshot of the same histogram.
func subtract(h, before *dto.Histogram) *dto.Histogram {
	if before == nil {
		return h
	}
	prev := make(map[float64]uint64)
	for _, b := range before.GetBucket() {
		prev[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	out := &dto.Histogram{}
	n := h.GetSampleCount() - before.GetSampleCount()
	out.SampleCount = &n
	for _, b := range h.GetBucket() {
		c := b.GetCumulativeCount() - prev[b.GetUpperBound()]
		ub := b.GetUpperBound()
		out.Bucket = append(out.Bucket, &dto.Bucket{UpperBound: &ub, CumulativeCount: &c})
	}
	return out
}
