package plays

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// monitor samples, every MonitorInterval, each partition's last stable
// offset (LSO) and high watermark on the plays and royalties topics and the
// ledger's stored offsets, and sets the lag and stall gauges:
//
//   - origin_plays_ledger_lag_records{partition}: royalties LSO minus the
//     ledger's next offset;
//   - origin_plays_lso_stalled_seconds{topic,partition}: how long the LSO
//     has stayed put while the high watermark is above it, which is what a
//     transaction left open by a dead or hung producer looks like (it
//     clears when the transaction ends or times out).
type monitor struct {
	adm    *kadm.Client
	ledger *Ledger
	m      *metrics
	log    *slog.Logger
	every  time.Duration
	now    func() time.Time

	last map[tp]lsoSample
}

type tp struct {
	topic string
	part  int32
}

type lsoSample struct {
	lso   int64
	since time.Time // when lso last moved or the partition last had nothing above it
}

func (mo *monitor) run(ctx context.Context) {
	mo.last = make(map[tp]lsoSample)
	t := time.NewTicker(mo.every)
	defer t.Stop()
	for {
		mo.sample(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (mo *monitor) sample(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, mo.every)
	defer cancel()
	hwm, err := mo.adm.ListEndOffsets(ctx, PlaysTopic, RoyaltiesTopic)
	if err != nil {
		mo.log.Debug("plays monitor: end offsets", "err", err)
		return
	}
	lso, err := mo.adm.ListCommittedOffsets(ctx, PlaysTopic, RoyaltiesTopic)
	if err != nil {
		mo.log.Debug("plays monitor: stable offsets", "err", err)
		return
	}
	now := mo.now()
	lso.Each(func(o kadm.ListedOffset) {
		if o.Err != nil || o.Partition < 0 {
			return
		}
		k := tp{o.Topic, o.Partition}
		h, ok := hwm.Lookup(o.Topic, o.Partition)
		prev, seen := mo.last[k]
		cur := lsoSample{lso: o.Offset, since: now}
		if seen && prev.lso == o.Offset && ok && h.Offset > o.Offset {
			cur.since = prev.since // stuck with records above it
		}
		mo.last[k] = cur
		mo.m.lsoStalled.WithLabelValues(o.Topic, strconv.Itoa(int(o.Partition))).Set(now.Sub(cur.since).Seconds())
	})
	stored, err := mo.ledger.Offsets(ctx, RoyaltiesTopic)
	if err != nil {
		mo.log.Debug("plays monitor: ledger offsets", "err", err)
		return
	}
	lso.Each(func(o kadm.ListedOffset) {
		if o.Err != nil || o.Topic != RoyaltiesTopic || o.Partition < 0 {
			return
		}
		mo.m.ledgerLag.WithLabelValues(strconv.Itoa(int(o.Partition))).Set(float64(max(o.Offset-stored[o.Partition], 0)))
	})
}
