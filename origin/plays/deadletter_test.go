package plays

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestDeadLetters writes what any Kafka client could to the plays topic
// (garbage, a missing field, a 1 MB value, an absurd duration, a date far
// in the future, a well-formed play without a ticket, with a forged one,
// with another user's) next to one valid play, and checks that each invalid
// record appears on plays.rejected with its reason, source partition and
// offset in headers, that the 1 MB one is cut, and that the valid play is
// counted. Mutations tried and caught: a wrong source_offset header
// (offset+1); the stage calling ParseEvent without its keyring (the three
// ticket records are counted, not dead letters).
func TestDeadLetters(t *testing.T) {
	cfg := testConfig(t, 2)
	svc, trust, _ := startService(t, cfg, denyRights{})

	cl, err := kgo.NewClient(kgo.SeedBrokers(svc.BrokerAddr()), kgo.ProducerBatchMaxBytes(4<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	now := time.Now().UTC()
	issued := now.Add(-10 * time.Minute)
	forged := ticketed(t, trust.Tickets, testEvent("x5", "u", "t1", "SE", 40_000, now), issued)
	forged["ticket"] = forged["ticket"].(string)[:len(forged["ticket"].(string))-4] + "AAAA"
	otherUser := ticketed(t, trust.Tickets, testEvent("x6", "u2", "t1", "SE", 40_000, now), issued)
	otherUser["user_id"] = "u"
	bad := map[string]string{ // value -> reason
		`not json at all`: "stage_bad_json",
		string(mustJSON(map[string]any{"play_id": "x1", "user_id": "u", "track_id": "t1", "country": "SE", "tier_kbps": 160, "ts": now.Format(time.RFC3339)})): "stage_missing_ms_played",
		string(mustJSON(testEvent("x2", "u", "t1", "SE", MaxPlayMS+1, now))):                                                                                   "stage_bad_duration",
		string(mustJSON(testEvent("x3", "u", "t1", "SE", 40_000, now.Add(30*24*time.Hour)))):                                                                   "stage_ts_in_future",
		`{"play_id":"` + string(bytes.Repeat([]byte("a"), 1<<20)) + `"}`:                                                                                       "stage_event_too_large",
		string(mustJSON(testEvent("x4", "u", "t1", "SE", 40_000, now))):                                                                                        "stage_" + ReasonTicketMissing,
		string(mustJSON(forged)):    "stage_" + ReasonTicketForged,
		string(mustJSON(otherUser)): "stage_" + ReasonTicketUser,
	}
	where := map[string]string{} // "partition/offset" -> reason
	for v, reason := range bad {
		r, err := cl.ProduceSync(t.Context(), &kgo.Record{Topic: PlaysTopic, Value: []byte(v)}).First()
		if err != nil {
			t.Fatalf("produce %q...: %v", v[:min(len(v), 20)], err)
		}
		where[fmt.Sprintf("%d/%d", r.Partition, r.Offset)] = reason
	}
	good := mustJSON(ticketed(t, trust.Tickets, testEvent("ok1", "u", "t1", "SE", 40_000, now), issued))
	if err := cl.ProduceSync(t.Context(), &kgo.Record{Topic: PlaysTopic, Value: good}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	rd, err := kgo.NewClient(kgo.SeedBrokers(svc.BrokerAddr()), kgo.ConsumeTopics(RejectedTopic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	got := map[string]string{}
	deadline := time.Now().Add(time.Minute)
	for len(got) < len(bad) && time.Now().Before(deadline) {
		pctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		fs := rd.PollFetches(pctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			h := map[string]string{}
			for _, kv := range r.Headers {
				h[kv.Key] = string(kv.Value)
			}
			if h["source_topic"] != PlaysTopic {
				t.Errorf("dead letter source_topic = %q", h["source_topic"])
			}
			key := h["source_partition"] + "/" + h["source_offset"]
			got[key] = h["reason"]
			if h["reason"] == "stage_event_too_large" {
				if n, _ := strconv.Atoi(h["truncated_from"]); n <= 1<<20 || len(r.Value) != maxDeadLetterBytes {
					t.Errorf("1 MB dead letter: %d bytes, truncated_from %q", len(r.Value), h["truncated_from"])
				}
			}
		})
	}
	if fmt.Sprint(got) != fmt.Sprint(where) {
		t.Errorf("dead letters by partition/offset = %v, want %v", got, where)
	}
	waitCounted(t, svc, 1)
	if v := counterValue(svc.m.deadLetters); v != float64(len(bad)) {
		t.Errorf("dead_letters_total = %v, want %d", v, len(bad))
	}
}
