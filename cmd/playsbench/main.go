// Command playsbench measures the play-counting pipeline of origin/plays
// on this machine: end-to-end throughput from POST /v1/plays to the
// ledger with the embedded broker and SQLite, the baseline of producing
// the same events with no transactions and no ledger, their ratio, and
// the ledger lag (event accepted to counted) quantiles under that load.
//
//	go run ./cmd/playsbench -events 200000 -cpuprofile /tmp/plays.pprof
//	go tool pprof -top -nodecount=25 /tmp/plays.pprof
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/musiccdn/cdn/identity"
	"github.com/musiccdn/cdn/origin/plays"
	"github.com/musiccdn/cdn/playticket"
)

type allowAll struct{}

func (allowAll) Allowed(string, string, time.Time) bool { return true }

func main() {
	var (
		events     = flag.Int("events", 200_000, "events to send")
		batch      = flag.Int("batch", 500, "events per POST")
		clients    = flag.Int("clients", 8, "concurrent HTTP clients")
		partitions = flag.Int("partitions", 8, "topic partitions")
		stageBatch = flag.Int("stage-batch", 5000, "records per stage transaction")
		sinkBatch  = flag.Int("ledger-batch", 5000, "records per ledger transaction")
		cpuprofile = flag.String("cpuprofile", "", "write a CPU profile of the end-to-end run here")
		batchWait  = flag.Duration("batch-wait", plays.DefaultConfig().BatchWait, "Config.BatchWait (0 disables fetch batching)")
		skipBase   = flag.Bool("skip-baseline", false, "skip the no-transaction baseline")
		rate       = flag.Float64("rate", 0, "offered load in events/s, paced per batch; 0 sends as fast as the server takes them")
	)
	flag.Parse()
	if err := run(*events, *batch, *clients, *partitions, *stageBatch, *sinkBatch, *cpuprofile, *skipBase, *rate, *batchWait); err != nil {
		fmt.Fprintln(os.Stderr, "playsbench:", err)
		os.Exit(1)
	}
}

func run(n, batch, clients, partitions, stageBatch, sinkBatch int, cpuprofile string, skipBase bool, rate float64, batchWait time.Duration) error {
	ctx := context.Background()
	fmt.Printf("playsbench: %d events, batches of %d, %d clients, %d partitions, offered rate %v/s (0: unpaced), GOMAXPROCS=%d\n",
		n, batch, clients, partitions, rate, runtime.GOMAXPROCS(0))
	trust, iss, err := benchTrust()
	if err != nil {
		return err
	}
	evs := makeEvents(n, batch, trust.Tickets)

	var baseRate float64
	if !skipBase {
		r, err := baseline(ctx, evs, partitions)
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		baseRate = r
	}

	dir, err := os.MkdirTemp("", "playsbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := plays.DefaultConfig()
	cfg.DataDir = dir
	cfg.Partitions = partitions
	cfg.StageBatch = stageBatch
	cfg.LedgerBatch = sinkBatch
	cfg.BatchWait = batchWait
	cfg.MaxBatchEvents = max(batch, cfg.MaxBatchEvents)
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg.UserRate = 0 // one session per batch; the bench measures the pipeline, not the limiter
	svc, err := plays.New(ctx, cfg, allowAll{}, trust, logger, reg)
	if err != nil {
		return err
	}
	defer svc.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: svc.Handler()}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/v1/plays"

	var bodies []benchBody
	for start := 0; start < n; start += batch {
		var b bytes.Buffer
		b.WriteByte('[')
		for i, e := range evs[start:min(start+batch, n)] {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(e)
		}
		b.WriteByte(']')
		auth, err := iss.Issue(identity.User{ID: benchUser(start, batch), Country: "SE"}, 24*time.Hour)
		if err != nil {
			return err
		}
		bodies = append(bodies, benchBody{b.Bytes(), "Bearer " + auth})
	}

	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	work := make(chan benchBody)
	var wg sync.WaitGroup
	var failMu sync.Mutex
	var fail error
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			for body := range work {
				for {
					req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body.b))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", body.auth)
					resp, err := hc.Do(req)
					if err == nil {
						resp.Body.Close()
						if resp.StatusCode == http.StatusAccepted {
							break
						}
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
					failMu.Lock()
					fail = err
					failMu.Unlock()
				}
			}
		}()
	}
	for i, b := range bodies {
		if rate > 0 {
			// Open-loop pacing: batch i is due at i*batch/rate.
			due := start.Add(time.Duration(float64(i*batch) / rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		work <- b
	}
	close(work)
	wg.Wait()
	ingest := time.Since(start)
	if fail != nil {
		fmt.Printf("note: some POSTs were retried, last error: %v\n", fail)
	}

	// Wait until the ledger holds every qualifying play.
	var want int64
	for i := range n {
		if qualifies(i) {
			want++
		}
	}
	deadline := time.Now().Add(10 * time.Minute)
	// The ledger's exact content is checked by the fault test; here the
	// counted total is enough.
	d := time.Millisecond
	for {
		// The sink's counter, not a SUM over the ledger: polling the
		// database would compete with the sink for it.
		counted, err := counter(reg, "origin_plays_ledger_counted_total")
		if err != nil {
			return err
		}
		got := int64(counted)
		if got >= want {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ledger has %d of %d plays after 10 minutes", got, want)
		}
		time.Sleep(d) // polling the database; the pipeline is what is measured
		d = min(2*d, 20*time.Millisecond)
	}
	total := time.Since(start)
	if cpuprofile != "" {
		pprof.StopCPUProfile()
	}

	e2eRate := float64(n) / total.Seconds()
	fmt.Printf("ingest (POST until all 202): %v, %.0f events/s\n", ingest.Round(time.Millisecond), float64(n)/ingest.Seconds())
	fmt.Printf("end-to-end (POST to ledger): %v, %.0f events/s (%d qualifying plays counted)\n", total.Round(time.Millisecond), e2eRate, want)
	if baseRate > 0 {
		fmt.Printf("ratio end-to-end / baseline: %.3f (baseline %.0f events/s)\n", e2eRate/baseRate, baseRate)
	}
	if rate == 0 {
		fmt.Printf("goal 139000 events/s: reached %.1f%%\n", 100*e2eRate/139000)
	}
	lag, err := histogram(reg, "origin_plays_ledger_lag_seconds")
	if err != nil {
		return err
	}
	fmt.Printf("ledger lag: p50 %s p99 %s (from %d observations; bucket-interpolated)\n",
		fmtSec(quantile(lag, 0.50)), fmtSec(quantile(lag, 0.99)), lag.GetSampleCount())
	txns, _ := counter(reg, "origin_plays_txn_committed_total")
	roys, _ := counter(reg, "origin_plays_royalties_emitted_total")
	fmt.Printf("stage transactions: %.0f committed, %.0f royalties each on average\n", txns, roys/max(txns, 1))
	prod, _ := histogram(reg, "origin_plays_produce_seconds")
	if prod != nil {
		fmt.Printf("POST to broker ack: p50 %s p99 %s\n", fmtSec(quantile(prod, 0.50)), fmtSec(quantile(prod, 0.99)))
	}
	return nil
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
		kgo.ProducerBatchCompression(kgo.ZstdCompression()),
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
	rate := float64(len(evs)) / el.Seconds()
	fmt.Printf("baseline (idempotent produce, acks=all, zstd, no txn/HTTP/ledger): %v, %.0f events/s\n", el.Round(time.Millisecond), rate)
	return rate, nil
}

func qualifies(i int) bool { return i%10 != 3 }

func makeEvents(n, batch int, tickets *playticket.Keyring) [][]byte {
	countries := []string{"SE", "NO", "DE", "US", "GB", "FR", "BR", "JP"}
	now := time.Now().UTC()
	out := make([][]byte, n)
	for i := range n {
		ms := 30_000 + (i*7919)%200_000
		if !qualifies(i) {
			ms = i % 30_000
		}
		out[i] = ticketedEvent(tickets, i, benchUser(i, batch), countries[i%len(countries)], ms, now)
	}
	return out
}

// benchUser is the user of event i: one user per batch (POST /v1/plays
// takes only the session user's own plays), 50,000 users in turn.
func benchUser(i, batch int) string { return fmt.Sprintf("u%d", (i/batch)%50_000) }

// ticketedEvent is event i with a play ticket as the origin's manifest
// would have minted it, issued an hour before its ts, so the stage's
// ticket check is part of the figure.
func ticketedEvent(tickets *playticket.Keyring, i int, user, cc string, ms int, now time.Time) []byte {
	play, track := fmt.Sprintf("bench-%09d", i), fmt.Sprintf("t%d", i%10_000)
	ts := now.Add(-time.Hour)
	tk, err := tickets.Mint(playticket.Claims{PlayID: play, UserID: user, TrackID: track, Country: cc,
		IssuedMS: ts.Add(-time.Hour).UnixMilli(), DurationMS: 300_000})
	if err != nil {
		panic(err) // the ids above are valid
	}
	return fmt.Appendf(nil, `{"play_id":"%s","user_id":"%s","track_id":"%s","country":"%s","tier_kbps":160,"ms_played":%d,"ts":"%s","ticket":"%s"}`,
		play, user, track, cc, ms, ts.Format(time.RFC3339), tk)
}

type benchBody struct {
	b    []byte
	auth string
}

// benchTrust is a ticket keyring and an identity provider for the bench.
func benchTrust() (plays.Trust, *identity.Issuer, error) {
	secret := make([]byte, 32)
	rand.Read(secret)
	kr, err := playticket.NewKeyring(playticket.Key{ID: "bench", Secret: secret})
	if err != nil {
		return plays.Trust{}, nil, err
	}
	iss, err := identity.NewIssuer()
	if err != nil {
		return plays.Trust{}, nil, err
	}
	v, err := identity.NewVerifier(identity.Config{PublicKeys: []string{iss.PublicKey()}})
	if err != nil {
		return plays.Trust{}, nil, err
	}
	return plays.Trust{Tickets: kr, Sessions: v}, iss, nil
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
