package plays

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/internal/wait"
	"github.com/musiccdn/cdn/playticket"
)

// faultFull runs TestFaults with the 100,000 events; CI runs the
// short form (12,000), which has the same faults.
var faultFull = flag.Bool("plays.fault-full", false, "TestFaults: 100,000 events (5% resent) instead of 12,000")

// roleEnv makes the test binary, re-executed by TestFaults, run one part
// of the pipeline (broker, stage or sink) as its own process, which the
// test then kills for real.
const roleEnv = "PLAYS_FAULT_ROLE"

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		runRole(role, os.Getenv("PLAYS_FAULT_CFG"))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// roleCfg is what a child process is told, as JSON in PLAYS_FAULT_CFG.
type roleCfg struct {
	Dir        string        // broker: data directory
	Partitions int           //
	Brokers    []string      // stage, sink
	Instance   string        // stage: instance id
	TxnTimeout time.Duration //
	SessTime   time.Duration //
	Ledger     string        // sink: SQLite path or PostgreSQL DSN
	HoldFile   string        // stage, sink: when this file exists, hold (see below)
	Log        string        // slog level debug when set
}

func (rc roleCfg) config() Config {
	c := DefaultConfig()
	c.Brokers, c.InstanceID, c.Partitions = rc.Brokers, rc.Instance, rc.Partitions
	c.DataDir = filepath.Dir(rc.HoldFile)
	c.TransactionTimeout, c.SessionTimeout = rc.TxnTimeout, rc.SessTime
	c.StageBatch, c.LedgerBatch = 1000, 2000
	return c
}

// faultRights is the rights of the fault test's stages.
var faultRights = denyRights{"t5/DE": true, "t11/US": true}

// runRole runs one part until the process is killed, or its stdin closes
// (the test died). It prints "ready" when running and "holding" when it
// holds at its hook: a stage after flushing a transaction's records and
// before ending it, a sink after a database commit and before its next
// poll; it holds when its hold file exists (and removes it).
func runRole(role, cfgJSON string) {
	var rc roleCfg
	if err := json.Unmarshal([]byte(cfgJSON), &rc); err != nil {
		fmt.Fprintln(os.Stderr, "bad", roleEnv, "config:", err)
		os.Exit(2)
	}
	go func() { io.Copy(io.Discard, os.Stdin); os.Exit(3) }()
	level := slog.LevelWarn
	if rc.Log != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("role", role, "pid", os.Getpid())
	fail := func(err error) {
		log.Error("fault role failed", "err", err)
		os.Exit(2)
	}
	hold := func() {
		if err := os.Remove(rc.HoldFile); err == nil {
			fmt.Println("holding")
			select {}
		}
	}
	ctx := context.Background()
	switch role {
	case "broker":
		b, err := StartBroker(ctx, rc.Dir, rc.Partitions, log)
		if err != nil {
			fail(err)
		}
		fmt.Println("ready", b.Addr())
	case "stage":
		cfg := rc.config()
		kopts, err := cfg.kafkaOpts(cfg.Brokers)
		if err != nil {
			fail(err)
		}
		tickets, err := playticket.NewKeyring(testTicketKey)
		if err != nil {
			fail(err)
		}
		m, _ := newMetrics(nil)
		st := &stage{cfg: cfg, kopts: kopts, rights: faultRights, tickets: tickets, m: m, log: log, now: time.Now, inTxn: hold, done: make(chan struct{})}
		var cctx context.Context
		cctx, st.cancel = context.WithCancel(ctx)
		go st.run(cctx)
		fmt.Println("ready")
	case "sink":
		cfg := rc.config()
		kopts, err := cfg.kafkaOpts(cfg.Brokers)
		if err != nil {
			fail(err)
		}
		var l *Ledger
		if strings.HasPrefix(rc.Ledger, "postgres") {
			l, err = OpenPostgres(ctx, rc.Ledger)
		} else {
			l, err = OpenSQLite(ctx, rc.Ledger)
		}
		if err != nil {
			fail(err)
		}
		m, _ := newMetrics(nil)
		sk := &sink{cfg: cfg, kopts: kopts, ledger: l, m: m, log: log, now: time.Now, afterCommit: hold, done: make(chan struct{})}
		var cctx context.Context
		cctx, sk.cancel = context.WithCancel(ctx)
		go sk.run(cctx)
		fmt.Println("ready")
	default:
		fail(fmt.Errorf("unknown role %q", role))
	}
	select {}
}

// proc is a child process running one role.
type proc struct {
	t     *testing.T
	name  string
	role  string
	rc    roleCfg
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string

	readyLine string // set by restart
}

func startProc(t *testing.T, name, role string, rc roleCfg) *proc {
	t.Helper()
	b, _ := json.Marshal(rc)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"="+role, "PLAYS_FAULT_CFG="+string(b))
	logf, err := os.OpenFile(filepath.Join(t.TempDir(), name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("PLAYS_TEST_LOG") != "" {
		cmd.Stderr = os.Stderr
	} else {
		cmd.Stderr = logf
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: name, role: role, rc: rc, cmd: cmd, stdin: stdin, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		logf.Close()
	}()
	t.Cleanup(func() { p.kill() })
	return p
}

// waitLine waits for an output line starting with prefix and returns it.
func (p *proc) waitLine(prefix string, timeout time.Duration) string {
	p.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("%s exited before printing %q", p.name, prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-deadline.C:
			p.t.Fatalf("%s printed no %q within %v", p.name, prefix, timeout)
		}
	}
}

// kill SIGKILLs the process and reaps it; safe to call twice.
func (p *proc) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
}

func (p *proc) restart() *proc {
	p.kill()
	q := startProc(p.t, p.name, p.role, p.rc)
	q.readyLine = q.waitLine("ready", time.Minute)
	return q
}

// TestFaults runs the pipeline as separate processes (the embedded broker,
// two stage instances, the sink; the test binary re-executed in a role)
// and kills them for real while events flow: 12,000 events (100,000 with
// -plays.fault-full), 5 % resent, about 10 % under 30 s, some denied by
// rights. The faults, in order, each during one slice of the sending:
//
//  1. SIGKILL of a stage in the middle of a transaction (its records are
//     on the broker, End not called), restarted with its instance id: the
//     ledger must be current again within TransactionTimeout + 2 s of
//     the kill, by this test's clock (a generous bound: fencing at session
//     start makes it about one session timeout);
//  2. SIGKILL of the sink between its database commit and its next poll;
//  3. a third stage joins while two are live (a rebalance among live
//     members), then is SIGKILLed for good (its partitions move after the
//     session timeout; its open transaction, if any, times out);
//  4. SIGSTOP of a stage until the group evicts it, then SIGCONT;
//  5. SIGKILL of the broker, restarted from its data directory;
//  6. PostgreSQL only, with PLAYS_TEST_PG_DATA and PLAYS_TEST_PG_STATE
//     from scripts/pg-test.sh: SIGKILL of the database server while the
//     sink writes, restarted by scripts/pg-test.sh restart.
//
// Every event carries a real play ticket; 1 % more are replays of a
// ticket under another play id, which the stages must refuse.
//
// Then: every track's ledger count equals the distinct qualifying plays
// sent (the replays not among them), the ledger holds exactly that many play ids, the committed royalty
// records equal the qualifying plays records (the stage is exactly once),
// uncommitted royalty records exist (a transaction really was cut), and
// the records the sink applied (plays_consumed) equal the committed
// royalty records: a record applied twice shows there.
//
// Mutations tried, each caught:
//   - the sink ignoring the offsets stored in its database (seekToLedger
//     returning the assignment unchanged): "records applied by the sink =
//     24619, want the 11316 committed royalty records";
//   - the sink reading read_uncommitted: it applies the records of the
//     killed stages' aborted transactions: "records applied by the sink =
//     18571, want the 11316".
//   - the stage processes built without the ticket keyring (tickets nil,
//     so ParseEvent skips the check): the replayed tickets are counted,
//     "ledger after no fault: 1850 play ids, more than the 1829
//     qualifying plays sent: a refused play was counted".
//
// The stage not fencing at session start, and ending its transaction on
// the closing context, are caught by TestStageFencesAtStart and
// TestStageCloseEndsTransaction.
func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("separate processes and real kills: not in -short")
	}
	t.Run("sqlite", func(t *testing.T) {
		runFaults(t, filepath.Join(t.TempDir(), "ledger.db"), false)
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := pgTestDSN(t)
		runFaults(t, dsn, os.Getenv("PLAYS_TEST_PG_DATA") != "" && os.Getenv("PLAYS_TEST_PG_STATE") != "")
	})
}

func runFaults(t *testing.T, ledgerAt string, killDB bool) {
	ctx := context.Background()
	dir := t.TempDir()
	const partitions = 4
	txnTimeout := 10 * time.Second
	base := roleCfg{Partitions: partitions, TxnTimeout: txnTimeout, SessTime: 6 * time.Second, Ledger: ledgerAt, Log: os.Getenv("PLAYS_TEST_LOG")}

	bc := base
	bc.Dir = filepath.Join(dir, "kafka")
	broker := startProc(t, "broker", "broker", bc)
	addr := strings.TrimPrefix(broker.waitLine("ready ", time.Minute), "ready ")
	base.Brokers = []string{addr}

	role := func(name, role, instance string) *proc {
		rc := base
		rc.Instance = instance
		rc.HoldFile = filepath.Join(dir, name+".hold")
		p := startProc(t, name, role, rc)
		p.waitLine("ready", time.Minute)
		return p
	}
	holdFile := func(p *proc) { os.WriteFile(p.rc.HoldFile, nil, 0o644) }
	stageA := role("stage-a", "stage", "a")
	stageB := role("stage-b", "stage", "b")
	sinkP := role("sink", "sink", "")

	var l *Ledger
	var err error
	if strings.HasPrefix(ledgerAt, "postgres") {
		l, err = OpenPostgres(ctx, ledgerAt)
	} else {
		l, err = OpenSQLite(ctx, ledgerAt)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	producer, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(PlaysTopic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(2*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	adm := kadm.NewClient(producer)

	// The events, in sending order, with 5 % resent 1000 events later.
	// Each carries a real play ticket, as the origin's manifest mints it
	// (play id a playticket.NewID ULID of the ticket's issue time, ten
	// minutes before the play), so the stages' ticket check is part of
	// the test; the events go straight to the plays topic, as the ingest
	// endpoint would produce them after its session check.
	tickets := testKeyring(t)
	n := 12_000
	if *faultFull {
		n = 100_000
	}
	countries := []string{"SE", "NO", "DE", "US", "GB", "FR", "BR"}
	ts := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	type ev struct {
		raw   []byte
		track string
		id    string
		count bool // a distinct qualifying, allowed play
	}
	var sends []ev
	var distinct []ev
	for i := range n {
		track := fmt.Sprintf("t%d", i%97)
		cc := countries[(i/97)%len(countries)]
		ms := int64(30_000 + (i*7919)%200_000)
		if i%10 == 3 {
			ms = int64(i % 30_000)
		}
		issued := ts.Add(-10 * time.Minute).Add(time.Duration(i) * time.Millisecond)
		id := playticket.NewID(issued)
		e := ev{raw: mustJSON(ticketed(t, tickets, testEvent(id, fmt.Sprintf("u%d", i%1000), track, cc, ms, ts), issued)), track: track, id: id,
			count: ms >= catalog.QualifyingMS && faultRights.Allowed(track, cc, ts)}
		distinct = append(distinct, e)
		sends = append(sends, e)
		if j := i - 1000; j >= 0 && j%20 == 0 {
			sends = append(sends, distinct[j])
		}
		if i%100 == 7 {
			// A replay under another play id with this play's ticket,
			// as a client with topic access could write: the stages
			// must refuse it (stage_ticket_other_play), never count it.
			var m map[string]any
			json.Unmarshal(e.raw, &m)
			m["play_id"] = playticket.NewID(issued)
			sends = append(sends, ev{raw: mustJSON(m), track: track, id: m["play_id"].(string)})
		}
	}

	// Sending, slice by slice; what the ledger must hold so far.
	var sentOK atomic.Int64
	wantIDs := make(map[string]bool)
	want := make(map[string]int64)
	sendSlice := func(evs []ev) {
		const chunk = 250
		for s := 0; s < len(evs); s += chunk {
			var rs []*kgo.Record
			for _, e := range evs[s:min(s+chunk, len(evs))] {
				rs = append(rs, &kgo.Record{Key: []byte(e.id), Value: e.raw})
			}
			for {
				// The idempotent producer retries through a broker
				// restart by itself; a batch that still fails is
				// sent again, as a client would.
				pctx, cancel := context.WithTimeout(ctx, time.Minute)
				err := producer.ProduceSync(pctx, rs...).FirstErr()
				cancel()
				if err == nil {
					break
				}
				t.Logf("produce: %v; sending again", err)
			}
			sentOK.Add(int64(len(rs)))
		}
	}
	account := func(evs []ev) {
		for _, e := range evs {
			if e.count && !wantIDs[e.id] {
				wantIDs[e.id] = true
				want[e.track]++
			}
		}
	}
	current := func(what string, timeout time.Duration) time.Duration {
		start := time.Now()
		wait.ForState(t, timeout, "ledger current after "+what, func() (bool, string) {
			c, err := l.PlayIDs(ctx)
			if err != nil {
				return false, err.Error()
			}
			if c > int64(len(wantIDs)) { // only this slice and earlier ones were sent
				t.Fatalf("ledger after %s: %d play ids, more than the %d qualifying plays sent: a refused play was counted", what, c, len(wantIDs))
			}
			return c == int64(len(wantIDs)), fmt.Sprintf("%d of %d play ids", c, len(wantIDs))
		})
		return time.Since(start)
	}

	type fault struct {
		name    string
		prepare func()                     // before the slice is sent
		do      func(done <-chan struct{}) // while it is; done closes when it is sent
	}
	// progressed waits until sending has moved on by a chunk, or ended.
	progressed := func(done <-chan struct{}) {
		from := sentOK.Load()
		wait.ForState(t, time.Minute, "sending to progress", func() (bool, string) {
			select {
			case <-done:
				return true, ""
			default:
			}
			return sentOK.Load() > from, fmt.Sprint(sentOK.Load())
		})
	}
	nop := func() {}
	var killedAt time.Time
	var stageC *proc
	faults := []fault{
		{"SIGKILL stage mid-transaction", func() { holdFile(stageA) }, func(<-chan struct{}) {
			stageA.waitLine("holding", time.Minute)
			killedAt = time.Now()
			stageA = stageA.restart()
		}},
		{"SIGKILL sink between commit and poll", func() { holdFile(sinkP) }, func(<-chan struct{}) {
			sinkP.waitLine("holding", time.Minute)
			sinkP = sinkP.restart()
		}},
		{"third stage joins two live ones, then SIGKILLed mid-transaction for good", func() {
			stageC = role("stage-c", "stage", "c")
			wait.ForState(t, time.Minute, "stage c to own partitions", func() (bool, string) {
				return groupAssigned(ctx, adm, "origin-plays-stage", "origin-plays-stage-c"), ""
			})
			holdFile(stageC)
		}, func(<-chan struct{}) {
			stageC.waitLine("holding", time.Minute)
			stageC.kill()
		}},
		{"SIGSTOP stage until evicted", nop, func(<-chan struct{}) {
			stageB.cmd.Process.Signal(syscall.SIGSTOP)
			wait.ForState(t, time.Minute, "group to evict the stopped stage", func() (bool, string) {
				return !groupHasClient(ctx, adm, "origin-plays-stage", "origin-plays-stage-b"), ""
			})
			stageB.cmd.Process.Signal(syscall.SIGCONT)
		}},
		{"SIGKILL broker, restart from its data dir", nop, func(done <-chan struct{}) {
			progressed(done)
			broker = broker.restart()
			if a := strings.TrimPrefix(broker.readyLine, "ready "); a != addr {
				t.Errorf("broker came back on %s, want %s", a, addr)
			}
		}},
	}
	if killDB {
		faults = append(faults, fault{"SIGKILL PostgreSQL mid-batch", nop, func(done <-chan struct{}) {
			progressed(done)
			killPostgres(t)
		}})
	}

	slices := len(faults) + 1
	per := (len(sends) + slices - 1) / slices
	start := time.Now()
	for i := range slices {
		evs := sends[i*per : min((i+1)*per, len(sends))]
		account(evs)
		name := "no fault"
		if i > 0 {
			name = faults[i-1].name
			faults[i-1].prepare()
		}
		done := make(chan struct{})
		go func() { defer close(done); sendSlice(evs) }()
		if i > 0 {
			t.Logf("%v: %s", time.Since(start).Round(time.Millisecond), name)
			faults[i-1].do(done)
		}
		<-done
		took := current(name, 3*time.Minute)
		if name == "SIGKILL stage mid-transaction" {
			since := time.Since(killedAt)
			t.Logf("ledger current %v after the stage's SIGKILL (bound: transaction timeout %v + 2s)", since.Round(time.Millisecond), txnTimeout)
			if since > txnTimeout+2*time.Second {
				t.Errorf("ledger current %v after the stage's SIGKILL, want within %v", since, txnTimeout+2*time.Second)
			}
		}
		t.Logf("%v: slice %d (%d events) sent and counted; %v waiting for the ledger", time.Since(start).Round(time.Millisecond), i, len(evs), took.Round(time.Millisecond))
	}

	// The stage has consumed everything, and the sink everything the
	// stage committed.
	wait.ForState(t, 2*time.Minute, "stage to consume all plays", func() (bool, string) {
		lags, err := adm.Lag(ctx, "origin-plays-stage")
		if err != nil {
			return false, err.Error()
		}
		gl := lags["origin-plays-stage"]
		if gl.Error() != nil {
			return false, gl.Error().Error()
		}
		return gl.Lag.Total() == 0, fmt.Sprintf("lag %d", gl.Lag.Total())
	})
	var qualifying, royalties, all int64
	readTopic(t, base.Brokers, PlaysTopic, func(v []byte) {
		e, err := ParseEvent(v, time.Now(), DefaultConfig().Retention, tickets)
		if err == nil && e.Qualifies() && faultRights.Allowed(e.TrackID, e.Country, e.TS) {
			qualifying++
		}
	})
	readTopic(t, base.Brokers, RoyaltiesTopic, func([]byte) { royalties++ })
	readTopicIsolation(t, base.Brokers, RoyaltiesTopic, kgo.ReadUncommitted(), func([]byte) { all++ })
	wait.ForState(t, 2*time.Minute, "sink to apply every committed royalty record", func() (bool, string) {
		c, err := l.consumed(ctx, RoyaltiesTopic)
		if err != nil {
			return false, err.Error()
		}
		return c >= royalties, fmt.Sprintf("%d of %d", c, royalties)
	})
	consumed, err := l.consumed(ctx, RoyaltiesTopic)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("royalty records: %d committed, %d in aborted transactions; qualifying plays records %d; records applied by the sink %d",
		royalties, all-royalties, qualifying, consumed)
	if royalties != qualifying {
		t.Errorf("committed royalty records = %d, want %d (one per qualifying plays record)", royalties, qualifying)
	}
	if all <= royalties {
		t.Errorf("royalty records including uncommitted = %d, want more than the %d committed: no transaction was cut", all, royalties)
	}
	if consumed != royalties {
		t.Errorf("records applied by the sink = %d, want the %d committed royalty records: some were applied twice or aborted ones read", consumed, royalties)
	}

	got, err := l.TotalPlays(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var wantTotal int64
	for track, w := range want {
		wantTotal += w
		if got[track] != w {
			t.Errorf("ledger plays of %s = %d, want %d", track, got[track], w)
		}
	}
	for track, g := range got {
		if _, ok := want[track]; !ok {
			t.Errorf("ledger plays of %s = %d, want none", track, g)
		}
	}
	if ids, err := l.PlayIDs(ctx); err != nil || ids != wantTotal {
		t.Errorf("play ids in ledger = %d, %v; want %d", ids, err, wantTotal)
	}
	t.Logf("%v: ledger exact: %d qualifying plays of %d events (%d sent with resends) over %d tracks",
		time.Since(start).Round(time.Millisecond), wantTotal, n, len(sends), len(want))
}

// groupHasClient reports whether group has a member with clientID.
func groupHasClient(ctx context.Context, adm *kadm.Client, group, clientID string) bool {
	gs, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return false
	}
	for _, m := range gs[group].Members {
		if m.ClientID == clientID {
			return true
		}
	}
	return false
}

// groupAssigned reports whether group is stable with partitions assigned
// to its member with clientID.
func groupAssigned(ctx context.Context, adm *kadm.Client, group, clientID string) bool {
	gs, err := adm.DescribeGroups(ctx, group)
	if err != nil || gs[group].State != "Stable" {
		return false
	}
	for _, m := range gs[group].Members {
		if c, ok := m.Assigned.AsConsumer(); ok && m.ClientID == clientID {
			for _, tp := range c.Topics {
				if len(tp.Partitions) > 0 {
					return true
				}
			}
		}
	}
	return false
}

// killPostgres SIGKILLs the PostgreSQL server of scripts/pg-test.sh and
// starts it again on the same data directory.
func killPostgres(t *testing.T) {
	pidFile := filepath.Join(os.Getenv("PLAYS_TEST_PG_DATA"), "postmaster.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("postgres pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		t.Fatalf("postgres pid in %s: %v", pidFile, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill postgres %d: %v", pid, err)
	}
	wait.ForState(t, time.Minute, "the killed postgres to be gone", func() (bool, string) {
		return syscall.Kill(pid, 0) == syscall.ESRCH, ""
	})
	cmd := exec.Command("bash", "../../scripts/pg-test.sh", "restart")
	cmd.Env = append(os.Environ(), "PG_TEST_STATE="+os.Getenv("PLAYS_TEST_PG_STATE"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("restart postgres: %v\n%s", err, out)
	}
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
	// Control records (transaction markers) are kept so that the reader
	// reaches each partition's end offset even when the log ends in one:
	// the end is known by offset, not guessed from a quiet poll, which a
	// busy machine can make long (a 2 s quiet poll once cut a read short).
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.FetchIsolationLevel(iso),
		kgo.KeepControlRecords(),
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
		if time.Now().After(deadline) {
			t.Fatalf("reading %s: timed out with %v left", topic, left)
		}
		pollCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		fs := cl.PollFetches(pollCtx)
		cancel()
		if fs.NumRecords() == 0 && iso == kgo.ReadCommitted() {
			// Nothing stable past the last record: the rest of the log
			// is an open transaction's, never delivered read_committed.
			// Wait for the next poll only while the deadline allows.
			continue
		}
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				fn(r.Value)
			}
			if end, ok := left[r.Partition]; ok && r.Offset+1 >= end {
				delete(left, r.Partition)
			}
		})
	}
}
