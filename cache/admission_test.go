package cache

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestRateAdmission(t *testing.T) {
	var now atomic.Int64
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	a := NewRateAdmission(3, time.Second, clock)
	for i, want := range []bool{false, false, true, true} {
		a.Record(42)
		if got := a.Admit(42); got != want {
			t.Errorf("after %d reads Admit = %v, want %v", i+1, got, want)
		}
	}
	if a.Admit(43) {
		t.Error("an unread key is admitted")
	}
	// Two windows later the count of 4 has decayed to 1 at the next read.
	now.Add(int64(1100 * time.Millisecond))
	a.Record(7)
	now.Add(int64(1100 * time.Millisecond))
	a.Record(7)
	if got := a.Estimate(42); got != 1 {
		t.Errorf("decayed estimate %d, want 1", got)
	}
	if a.Admit(42) {
		t.Error("a key gone cold is still admitted")
	}
}

// TestStoreAdmission: a store with admission hands a cold chunk to its
// reader without keeping it, and keeps it once it is hot.
func TestStoreAdmission(t *testing.T) {
	f := newMemFetcher()
	f.put("t1/96.ogg", make([]byte, 50_000), `"a"`)
	s, err := New(Config{ChunkSize: 4096, MemoryBytes: 1 << 20}, f, nil, WithAdmission(NewRateAdmission(2, time.Hour, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := ref("t1/96.ogg")
	m, _, _ := s.Meta(context.Background(), r)
	before := f.fetches.Load()
	for i := 0; i < 4; i++ {
		if _, _, err := s.Chunk(context.Background(), r, m, 3); err != nil {
			t.Fatal(err)
		}
	}
	// Read 1: cold, fetched, not kept. Read 2: fetched, now hot, kept.
	// Reads 3 and 4: hits.
	if got := f.fetches.Load() - before; got != 2 {
		t.Errorf("%d fetches for 4 reads, want 2", got)
	}
}
