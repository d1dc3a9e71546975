package plays

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/musiccdn/cdn/internal/wait"
)

// openTxns reports the royalties partitions whose last stable offset is
// below the high watermark: a transaction holds them.
func openTxns(ctx context.Context, adm *kadm.Client) (int, error) {
	hwm, err := adm.ListEndOffsets(ctx, RoyaltiesTopic)
	if err != nil {
		return 0, err
	}
	lso, err := adm.ListCommittedOffsets(ctx, RoyaltiesTopic)
	if err != nil {
		return 0, err
	}
	open := 0
	lso.Each(func(o kadm.ListedOffset) {
		if h, ok := hwm.Lookup(o.Topic, o.Partition); ok && h.Offset > o.Offset {
			open++
		}
	})
	return open, nil
}

// TestStageFencesAtStart leaves a transaction open on the royalties topic
// under the stage's transactional id (a stage that died mid-transaction,
// with a transaction timeout of a minute) and starts a stage with that id
// and no plays to process: the stage must abort the dead transaction at
// once by fencing at session start, not at its first produce.
// Mutation caught: removing the fence (s.fence) from run: the partition
// stays held for the minute and the wait below times out.
func TestStageFencesAtStart(t *testing.T) {
	ctx := context.Background()
	b := startBroker(t, 2)
	cfg := testConfig(t, 2)
	cfg = cfg.withDefaults()

	dead, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.TransactionalID(cfg.transactionalID()),
		kgo.TransactionTimeout(time.Minute), kgo.DefaultProduceTopic(RoyaltiesTopic))
	if err != nil {
		t.Fatal(err)
	}
	if err := dead.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := dead.ProduceSync(ctx, &kgo.Record{Key: []byte("k"), Value: []byte("left open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// The dead stage's client is abandoned without ending anything.
	adm := kadm.NewClient(dead)
	if n, err := openTxns(ctx, adm); err != nil || n != 1 {
		t.Fatalf("open transactions before the stage = %d, %v; want 1", n, err)
	}

	m, _ := newMetrics(nil)
	kopts, _ := cfg.kafkaOpts([]string{b.Addr()})
	st := startStage(cfg, kopts, denyRights{}, testKeyring(t), m, testLogger(t))
	defer st.close()
	wait.ForState(t, 30*time.Second, "the dead transaction to be aborted", func() (bool, string) {
		n, err := openTxns(ctx, adm)
		return err == nil && n == 0, fmt.Sprint(n, err)
	})
}

// TestStageCloseEndsTransaction closes a stage while it holds a
// transaction open (its records flushed, End not yet called): Close must
// end it, leaving no partition held.
// Mutation caught: ending the transaction on the closing context (End
// with a cancelled context returns without aborting).
func TestStageCloseEndsTransaction(t *testing.T) {
	ctx := context.Background()
	b := startBroker(t, 2)
	cfg := testConfig(t, 2)
	cfg.TransactionTimeout = time.Minute
	cfg = cfg.withDefaults()
	m, _ := newMetrics(nil)
	kopts, _ := cfg.kafkaOpts([]string{b.Addr()})
	st := &stage{cfg: cfg, kopts: kopts, rights: denyRights{}, tickets: testKeyring(t), m: m, log: testLogger(t), now: time.Now, done: make(chan struct{})}
	holding := make(chan struct{})
	var sctx context.Context
	sctx, st.cancel = context.WithCancel(ctx)
	st.inTxn = func() {
		select {
		case holding <- struct{}{}:
		default:
		}
		<-sctx.Done() // hold until Close
	}
	go st.run(sctx)

	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.DefaultProduceTopic(PlaysTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ev := mustJSON(ticketed(t, testKeyring(t), testEvent("p1", "u1", "t1", "SE", 40_000, time.Now()), time.Now().Add(-10*time.Minute)))
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: ev}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-holding:
	case <-time.After(time.Minute):
		t.Fatal("stage did not reach its transaction")
	}
	adm := kadm.NewClient(cl)
	if n, err := openTxns(ctx, adm); err != nil || n != 1 {
		t.Fatalf("open transactions while holding = %d, %v; want 1", n, err)
	}
	st.close()
	if n, err := openTxns(ctx, adm); err != nil || n != 0 {
		t.Errorf("open transactions after Close = %d, %v; want 0", n, err)
	}
}

// TestMonitorStallAndLag leaves a transaction open on a royalties
// partition and samples the monitor with an injected clock: the stalled
// gauge grows for that partition only while the transaction is open and
// returns to 0 once it ends; the ledger lag gauge counts the records the
// ledger has not applied.
// Mutations caught: resetting "since" on every sample (gauge stays 0),
// not requiring records above the LSO (an idle partition alarms).
func TestMonitorStallAndLag(t *testing.T) {
	ctx := context.Background()
	b := startBroker(t, 1)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.TransactionalID("stray"), kgo.DefaultProduceTopic(RoyaltiesTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	l, err := OpenSQLite(ctx, t.TempDir()+"/l.db")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	reg := prometheus.NewRegistry()
	m, _ := newMetrics(reg)
	now := time.Unix(1_800_000_000, 0)
	mo := &monitor{adm: kadm.NewClient(cl), ledger: l, m: m, log: testLogger(t), every: time.Second,
		now: func() time.Time { return now }, last: make(map[tp]lsoSample)}
	stalled := func() float64 { return gaugeValue(t, m.lsoStalled.WithLabelValues(RoyaltiesTopic, "0")) }

	mo.sample(ctx)
	now = now.Add(30 * time.Second)
	mo.sample(ctx)
	if s := stalled(); s != 0 {
		t.Errorf("idle partition: stalled %v s, want 0", s)
	}
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	mo.sample(ctx)
	now = now.Add(25 * time.Second)
	mo.sample(ctx)
	if s := stalled(); s != 25 {
		t.Errorf("open transaction: stalled %v s, want 25", s)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	now = now.Add(5 * time.Second)
	mo.sample(ctx)
	if s := stalled(); s != 0 {
		t.Errorf("after commit: stalled %v s, want 0", s)
	}
	// One committed record and its marker, none applied by the ledger.
	if lag := gaugeValue(t, m.ledgerLag.WithLabelValues("0")); lag != 2 {
		t.Errorf("ledger lag = %v records, want 2", lag)
	}
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	pb := new(dto.Metric)
	if err := g.Write(pb); err != nil {
		t.Fatal(err)
	}
	return pb.GetGauge().GetValue()
}

// TestDuplicateInstanceDetected starts two stages with the same instance
// id, as two origins configured alike would, and sends plays: the one
// fenced while alive must count it in origin_plays_stage_fenced_total (and
// log why), and every play must still be counted once.
// Mutation caught: treating the fence as an ordinary session failure (no
// count, no explanation).
func TestDuplicateInstanceDetected(t *testing.T) {
	ctx := context.Background()
	b := startBroker(t, 2)
	cfg := testConfig(t, 2)
	cfg = cfg.withDefaults()
	kopts, _ := cfg.kafkaOpts([]string{b.Addr()})
	m, _ := newMetrics(nil)
	s1 := startStage(cfg, kopts, denyRights{}, testKeyring(t), m, testLogger(t))
	defer s1.close()

	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.DefaultProduceTopic(PlaysTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	i := 0
	send := func(k int) {
		for range k {
			ev := mustJSON(ticketed(t, testKeyring(t), testEvent(fmt.Sprintf("p%d", i), "u1", "t1", "SE", 40_000, time.Now()), time.Now().Add(-10*time.Minute)))
			i++
			if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: ev}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(20)
	wait.ForState(t, time.Minute, "first stage to commit", func() (bool, string) {
		return counterValue(m.committed) > 0, ""
	})
	s2 := startStage(cfg, kopts, denyRights{}, testKeyring(t), m, testLogger(t))
	defer s2.close()
	wait.ForState(t, 2*time.Minute, "a live stage to be fenced and say so", func() (bool, string) {
		send(5)
		return counterValue(m.fenced) > 0, fmt.Sprint(counterValue(m.fenced))
	})
}
