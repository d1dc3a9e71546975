package plays

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// faultEvents is 100 000 in CI (CI set), as the issue asks; 30 000
// elsewhere, so a -race run of the package on a busy 2-core machine stays
// near a minute. -short makes it 5 000.
var faultEvents = flag.Int("plays.fault-events", defaultFaultEvents(), "events sent by TestExactlyOnceUnderFaults")

func defaultFaultEvents() int {
	if os.Getenv("CI") != "" {
		return 100_000
	}
	return 30_000
}

// crashStage makes the running stage die in the middle of its next
// transaction (records produced and flushed, no End), waits for it, and
// starts a new one with the same transactional id, as a restarted process
// would.
func (s *Service) crashStage(t testing.TB) {
	s.mu.Lock()
	st := s.stage
	s.mu.Unlock()
	st.crash.Store(true)
	select {
	case <-st.done:
	case <-time.After(2 * time.Minute):
		t.Fatal("stage did not reach a transaction to crash in")
	}
	s.mu.Lock()
	s.stage = startStage(s.cfg, s.kopts, s.rights, s.m, s.log)
	s.mu.Unlock()
}

// crashSink makes the sink die right after its next database commit,
// before it polls again, and starts a new one.
func (s *Service) crashSink(t testing.TB) {
	s.mu.Lock()
	sk := s.sink
	s.mu.Unlock()
	sk.crash.Store(true)
	select {
	case <-sk.done:
	case <-time.After(2 * time.Minute):
		t.Fatal("sink did not commit a batch to crash after")
	}
	s.mu.Lock()
	s.sink = startSink(s.cfg, s.kopts, s.ledger, s.m, s.log)
	s.mu.Unlock()
}

// TestExactlyOnceUnderFaults sends -plays.fault-events events, 5 % of
// them twice, about 10 % under 30 s and some rights-denied, while it
// crashes the stage mid-transaction three times, crashes the ledger sink
// between its database commit and its next poll twice, and restarts the
// embedded broker from its data directory twice. At the end every track's
// ledger count must equal the distinct qualifying play ids sent.
func TestExactlyOnceUnderFaults(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.DataDir = t.TempDir()
		runFaultTest(t, cfg)
	})
	t.Run("postgres", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.DataDir = t.TempDir()
		cfg.PostgresDSN = pgTestDSN(t)
		runFaultTest(t, cfg)
	})
}

func runFaultTest(t *testing.T, cfg Config) {
	ctx := context.Background()
	log := testLogger(t)
	const partitions = 4
	cfg.Partitions = partitions
	cfg.StageBatch = 2000
	cfg.LedgerBatch = 2000
	brokerDir := filepath.Join(cfg.DataDir, "kafka")
	broker, err := StartBroker(ctx, brokerDir, partitions, log)
	if err != nil {
		t.Fatal(err)
	}
	var brokerMu sync.Mutex
	defer func() {
		brokerMu.Lock()
		broker.Close()
		brokerMu.Unlock()
	}()
	cfg.Brokers = []string{broker.Addr()}
	cfg.InstanceID = "0"
	rights := denyRights{"t5/DE": true, "t11/US": true}
	svc, err := New(ctx, cfg, rights, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	srv := httptest.NewServer(svc.Handler())
	defer srv.Close()

	// The events and what the ledger must end up with.
	n := *faultEvents
	if testing.Short() {
		n = min(n, 5_000)
	}
	countries := []string{"SE", "NO", "DE", "US", "GB", "FR", "BR"}
	ts := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	events := make([][]byte, n)
	want := make(map[string]int64)
	var wantTotal int64
	for i := range n {
		track := fmt.Sprintf("t%d", i%97)
		cc := countries[(i/97)%len(countries)]
		ms := int64(30_000 + (i*7919)%200_000)
		if i%10 == 3 {
			ms = int64(i % 30_000) // short play
		}
		events[i] = mustJSON(testEvent(fmt.Sprintf("p%07d", i), fmt.Sprintf("u%d", i%1000), track, cc, ms, ts))
		if ms >= QualifyingMS && rights.Allowed(track, cc, ts) {
			want[track]++
			wantTotal++
		}
	}
	// Batches of 250; every 20th event is sent again two batches later,
	// as a client that got no answer would retry it.
	const batchSize = 250
	var batches [][][]byte
	for start := 0; start < n; start += batchSize {
		b := append([][]byte(nil), events[start:min(start+batchSize, n)]...)
		if prev := start - 2*batchSize; prev >= 0 {
			for i := prev; i < prev+batchSize; i++ {
				if i%20 == 0 {
					b = append(b, events[i])
				}
			}
		}
		batches = append(batches, b)
	}

	var sent atomic.Int64
	work := make(chan [][]byte)
	var senders sync.WaitGroup
	for range 4 {
		senders.Add(1)
		go func() {
			defer senders.Done()
			client := &http.Client{Timeout: 30 * time.Second}
			for b := range work {
				body := []byte{'['}
				for i, e := range b {
					if i > 0 {
						body = append(body, ',')
					}
					body = append(body, e...)
				}
				body = append(body, ']')
				backoff := 20 * time.Millisecond
				for {
					code, resp := post(t, client, srv.URL, body)
					if code == http.StatusAccepted {
						if got := resp["accepted"]; got != float64(len(b)) {
							t.Errorf("accepted = %v, want %d", got, len(b))
						}
						break
					}
					waitCtx(ctx, backoff) // a retrying client's backoff, not synchronisation
					backoff = min(2*backoff, time.Second)
				}
				sent.Add(1)
			}
		}()
	}

	// Faults at fixed points of the send, in this order.
	faults := []struct {
		at   float64
		name string
		do   func()
	}{
		{0.10, "crash stage", func() { svc.crashStage(t) }},
		{0.20, "crash sink", func() { svc.crashSink(t) }},
		{0.30, "restart broker", func() {
			brokerMu.Lock()
			defer brokerMu.Unlock()
			addr := broker.Addr()
			broker.Close()
			broker, err = StartBroker(ctx, brokerDir, partitions, log)
			if err != nil {
				t.Errorf("restart broker: %v", err)
				return
			}
			if broker.Addr() != addr {
				t.Errorf("broker came back on %s, want %s", broker.Addr(), addr)
			}
		}},
		{0.45, "crash stage", func() { svc.crashStage(t) }},
		{0.55, "crash sink", func() { svc.crashSink(t) }},
		{0.65, "crash stage", func() { svc.crashStage(t) }},
		{0.75, "restart broker", nil}, // filled below
	}
	faults[6].do = faults[2].do
	start := time.Now()
	go func() {
		defer close(work)
		for i, b := range batches {
			for len(faults) > 0 && float64(i) >= faults[0].at*float64(len(batches)) {
				t.Logf("%v: %s at batch %d/%d", time.Since(start).Round(time.Millisecond), faults[0].name, i, len(batches))
				faults[0].do()
				faults = faults[1:]
			}
			work <- b
		}
	}()
	senders.Wait()
	t.Logf("%v: all %d batches (%d events + duplicates) accepted", time.Since(start).Round(time.Millisecond), len(batches), n)

	l := svc.Ledger()
	waitFor(t, 3*time.Minute, "ledger total", func() (bool, string) {
		got, err := l.TotalPlays(ctx)
		if err != nil {
			return false, err.Error()
		}
		var total int64
		for _, c := range got {
			total += c
		}
		return total >= wantTotal, fmt.Sprintf("%d of %d", total, wantTotal)
	})
	// Everything on the plays topic has been through the stage (its
	// group's committed offsets reached the end), so nothing more can
	// reach the ledger than what it now holds... once the sink has read
	// what the stage's last transaction wrote; wait for that too.
	t.Logf("%v: ledger total reached", time.Since(start).Round(time.Millisecond))
	adm := kadm.NewClient(svc.producer)
	waitFor(t, time.Minute, "stage to consume all plays", func() (bool, string) {
		lags, err := adm.Lag(ctx, cfg.stageGroup())
		if err != nil {
			return false, err.Error()
		}
		gl := lags[cfg.stageGroup()]
		if gl.Error() != nil {
			return false, gl.Error().Error()
		}
		total := gl.Lag.Total()
		return total == 0, fmt.Sprintf("lag %d", total)
	})
	waitRoyaltiesDrained(t, svc, adm)
	t.Logf("%v: stage and sink drained", time.Since(start).Round(time.Millisecond))

	// The stage alone is exactly once: every committed plays record
	// (client retries included) gave exactly one committed royalty
	// record, however often it was processed in aborted or abandoned
	// transactions.
	var qualifying, royalties int64
	readTopic(t, svc.brokers, PlaysTopic, func(v []byte) {
		e, err := ParseEvent(v, time.Now(), cfg.Retention)
		if err == nil && e.Qualifies() && rights.Allowed(e.TrackID, e.Country, e.TS) {
			qualifying++
		}
	})
	readTopic(t, svc.brokers, RoyaltiesTopic, func([]byte) { royalties++ })
	// The crashed transactions did write records, which read_committed
	// consumers never saw.
	var all int64
	readTopicIsolation(t, svc.brokers, RoyaltiesTopic, kgo.ReadUncommitted(), func([]byte) { all++ })
	t.Logf("royalty records: %d committed, %d in abandoned transactions; qualifying plays records %d", royalties, all-royalties, qualifying)
	if royalties != qualifying {
		t.Errorf("committed royalty records = %d, want %d (one per qualifying plays record)", royalties, qualifying)
	}
	if all <= royalties {
		t.Errorf("royalty records including uncommitted = %d, want more than the %d committed: the stage crashes left no open transaction", all, royalties)
	}

	got, err := l.TotalPlays(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var missing, extra int64
	for track, w := range want {
		if got[track] != w {
			t.Errorf("ledger plays of %s = %d, want %d", track, got[track], w)
			if got[track] < w {
				missing += w - got[track]
			} else {
				extra += got[track] - w
			}
		}
	}
	for track, g := range got {
		if _, ok := want[track]; !ok {
			t.Errorf("ledger plays of %s = %d, want none", track, g)
			extra += g
		}
	}
	ids, err := l.playIDCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ids != wantTotal {
		t.Errorf("play ids in ledger = %d, want %d", ids, wantTotal)
	}
	t.Logf("%v: ledger exact: %d qualifying plays over %d tracks (missing %d, extra %d); duplicates dropped %v, txn committed %v aborted %v",
		time.Since(start).Round(time.Millisecond), wantTotal, len(want), missing, extra,
		counterValue(svc.m.duplicates), counterValue(svc.m.committed), counterValue(svc.m.aborted))
}

// waitRoyaltiesDrained waits until the ledger's stored offsets cover every
// committed royalty record: for each partition the sink has read up to
// the last stable offset, less the transaction markers after its last
// record, which no consumer ever sees. It checks this by reading the
// partition's tail itself with read_committed.
func waitRoyaltiesDrained(t *testing.T, svc *Service, adm *kadm.Client) {
	ctx := context.Background()
	waitFor(t, time.Minute, "sink to read all royalties", func() (bool, string) {
		ends, err := adm.ListEndOffsets(ctx, RoyaltiesTopic)
		if err != nil {
			return false, err.Error()
		}
		stored, err := svc.ledger.Offsets(ctx, RoyaltiesTopic)
		if err != nil {
			return false, err.Error()
		}
		behind := 0
		ends.Each(func(o kadm.ListedOffset) {
			if o.Err != nil || stored[o.Partition] < o.Offset && lastDataOffset(t, svc.brokers, o.Partition, stored[o.Partition]) >= 0 {
				behind++
			}
		})
		return behind == 0, fmt.Sprintf("%d partitions behind", behind)
	})
}

// lastDataOffset returns the offset of a committed data record at or
// after from in the royalties partition, or -1 if there is none.
func lastDataOffset(t *testing.T, brokers []string, part int32, from int64) int64 {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{RoyaltiesTopic: {part: kgo.NewOffset().At(from)}}),
		kgo.FetchMaxWait(100*time.Millisecond),
	)
	if err != nil {
		return 0
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	fs := cl.PollFetches(ctx)
	found := int64(-1)
	fs.EachRecord(func(r *kgo.Record) { found = r.Offset })
	return found
}

func counterValue(c prometheus.Counter) float64 {
	var m = make(chan prometheus.Metric, 1)
	c.Collect(m)
	pb := new(dto.Metric)
	(<-m).Write(pb)
	return pb.GetCounter().GetValue()
}

// readTopic reads every committed record of topic, up to its end offsets
// at the time of the call.
func readTopic(t *testing.T, brokers []string, topic string, fn func(value []byte)) {
	readTopicIsolation(t, brokers, topic, kgo.ReadCommitted(), fn)
}

func readTopicIsolation(t *testing.T, brokers []string, topic string, iso kgo.IsolationLevel, fn func(value []byte)) {
	ctx := context.Background()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.FetchIsolationLevel(iso),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	left := make(map[int32]int64)
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	deadline := time.Now().Add(time.Minute)
	for len(left) > 0 {
		// Once every data record is read only transaction markers may
		// remain, which are never delivered: a poll that finds nothing
		// for a while on these static topics means the end.
		pollCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fs := cl.PollFetches(pollCtx)
		cancel()
		if fs.NumRecords() == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("reading %s: timed out with %v left", topic, left)
		}
		fs.EachRecord(func(r *kgo.Record) {
			fn(r.Value)
			if end, ok := left[r.Partition]; ok && r.Offset+1 >= end {
				delete(left, r.Partition)
			}
		})
	}
}
