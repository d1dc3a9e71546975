package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/internal/wait"
)

// memFetcher is a Fetcher over in-memory objects, counting fetches; a
// fake at the edge of these unit tests (the tier tests use real HTTP).
type memFetcher struct {
	mu      sync.Mutex
	objs    map[string][]byte
	etags   map[string]string
	fetches atomic.Int64
	bytes   atomic.Int64  // bytes returned by Fetch
	gate    chan struct{} // when non-nil, fetches wait for it
	fail    error
}

func newMemFetcher() *memFetcher {
	return &memFetcher{objs: map[string][]byte{}, etags: map[string]string{}}
}

func (f *memFetcher) put(name string, data []byte, etag string) {
	f.mu.Lock()
	f.objs[name], f.etags[name] = data, etag
	f.mu.Unlock()
}

func (f *memFetcher) Fetch(ctx context.Context, name string, off, n int64) (Meta, []byte, error) {
	f.fetches.Add(1)
	f.mu.Lock()
	gate, fail := f.gate, f.fail
	data, ok := f.objs[name]
	etag := f.etags[name]
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return Meta{}, nil, ctx.Err()
		}
	}
	if fail != nil {
		return Meta{}, nil, fail
	}
	if !ok {
		return Meta{}, nil, ErrNotFound
	}
	m := NewMeta(int64(len(data)), etag, time.Unix(0, 0), "audio/ogg")
	if off >= int64(len(data)) {
		return m, nil, nil
	}
	out := bytes.Clone(data[off:min(off+n, int64(len(data)))])
	f.bytes.Add(int64(len(out)))
	return m, out, nil
}

func (f *memFetcher) Revalidate(ctx context.Context, name, etag string) (Meta, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return Meta{}, false, f.fail
	}
	data, ok := f.objs[name]
	if !ok {
		return Meta{}, false, ErrNotFound
	}
	if f.etags[name] == etag {
		return Meta{}, true, nil
	}
	return NewMeta(int64(len(data)), f.etags[name], time.Unix(0, 0), "audio/ogg"), false, nil
}

func ref(name string) Ref { return Ref{Key: ObjectKey([]byte(name)), Name: []byte(name)} }

// read assembles bytes [start, end] of name through the store, as the
// tier does.
func read(t testing.TB, s *Store, name string, start, end int64) []byte {
	r := ref(name)
	m, _, err := s.Meta(context.Background(), r)
	if err != nil {
		t.Fatalf("Meta(%s): %v", name, err)
	}
	cs := s.ChunkSize()
	var out []byte
	for idx := start / cs; idx <= end/cs; idx++ {
		data, _, err := s.Chunk(context.Background(), r, m, idx)
		if err != nil {
			t.Fatalf("Chunk(%s, %d): %v", name, idx, err)
		}
		lo, hi := max(start-idx*cs, 0), min(end+1-idx*cs, int64(len(data)))
		out = append(out, data[lo:hi]...)
	}
	return out
}

// hold makes f's fetches wait until the returned channel is closed.
func (f *memFetcher) hold() chan struct{} {
	gate := make(chan struct{})
	f.mu.Lock()
	f.gate = gate
	f.mu.Unlock()
	return gate
}

// meta is s.Meta of r, or the test fails.
func meta(t testing.TB, s *Store, r Ref) *Meta {
	t.Helper()
	m, _, err := s.Meta(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newStore(t testing.TB, f Fetcher, now func() time.Time) *Store {
	s, err := New(Config{ChunkSize: 4096, MemoryBytes: 1 << 20, MetaTTL: config.Duration(time.Minute)}, f, now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// TestAgainstReference reads random ranges of random objects and compares
// them with the objects themselves (the reference), with a memory budget
// small enough to force evictions.
func TestAgainstReference(t *testing.T) {
	f := newMemFetcher()
	rng := rand.New(rand.NewPCG(3, 4))
	objs := map[string][]byte{}
	for i := range 40 {
		b := make([]byte, 1+rng.IntN(100_000))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		name := fmt.Sprintf("t%d/96.ogg", i)
		objs[name] = b
		f.put(name, b, fmt.Sprintf(`"v%d"`, i))
	}
	s := newStore(t, f, nil)
	for n := 0; n < 2000; n++ {
		name := fmt.Sprintf("t%d/96.ogg", rng.IntN(40))
		b := objs[name]
		start := rng.Int64N(int64(len(b)))
		end := min(int64(len(b))-1, start+rng.Int64N(20_000))
		if got := read(t, s, name, start, end); !bytes.Equal(got, b[start:end+1]) {
			t.Fatalf("read(%s, %d, %d) differs from the reference", name, start, end)
		}
	}
	if s.Stats.Hits.Load() == 0 || s.Stats.Misses.Load() == 0 {
		t.Errorf("hits %d misses %d: want both", s.Stats.Hits.Load(), s.Stats.Misses.Load())
	}
}

// TestCollapse: concurrent misses of one chunk make one fetch, and a
// failed fill wakes every waiter with the error.
func TestCollapse(t *testing.T) {
	for _, fail := range []error{nil, errors.New("upstream down")} {
		f := newMemFetcher()
		f.put("t1/96.ogg", make([]byte, 50_000), `"a"`)
		s := newStore(t, f, nil)
		r := ref("t1/96.ogg")
		m := meta(t, s, r)
		gate := make(chan struct{})
		f.mu.Lock()
		f.gate, f.fail = gate, fail
		f.mu.Unlock()
		before := f.fetches.Load()
		const n = 100
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				_, _, err := s.Chunk(context.Background(), r, m, 5)
				errs <- err
			})
		}
		wait.For(t, 10*time.Second, "every reader to join the fill", func() bool { return s.Stats.Collapsed.Load() >= n-1 })
		close(gate)
		wg.Wait()
		close(errs)
		for err := range errs {
			if !errors.Is(err, fail) && (fail != nil || err != nil) {
				t.Errorf("fail=%v: waiter got %v", fail, err)
			}
		}
		if got := f.fetches.Load() - before; got != 1 {
			t.Errorf("fail=%v: %d fetches, want 1", fail, got)
		}
	}
}

// TestWaiterCancel: a waiter that gives up does not cancel the fill for
// the others.
func TestWaiterCancel(t *testing.T) {
	f := newMemFetcher()
	f.put("t1/96.ogg", make([]byte, 50_000), `"a"`)
	s := newStore(t, f, nil)
	r := ref("t1/96.ogg")
	m := meta(t, s, r)
	gate := f.hold()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, _, err := s.Chunk(ctx, r, m, 3)
		done <- err
	}()
	wait.For(t, 10*time.Second, "the waiter's miss", func() bool { return s.Stats.Misses.Load() >= 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	close(gate)
	if _, _, err := s.Chunk(context.Background(), r, m, 3); err != nil {
		t.Fatalf("second reader: %v", err)
	}
}

// TestRevalidation: after the TTL a changed ETag drops the old chunks; an
// upstream failure serves stale and counts it; a withdrawn object is gone.
func TestRevalidation(t *testing.T) {
	var now atomic.Int64
	clock := func() time.Time { return time.Unix(now.Load(), 0) }
	f := newMemFetcher()
	v1 := bytes.Repeat([]byte{1}, 30_000)
	v2 := bytes.Repeat([]byte{2}, 20_000)
	f.put("t1/96.ogg", v1, `"1"`)
	s := newStore(t, f, clock)
	if got := read(t, s, "t1/96.ogg", 0, 29_999); !bytes.Equal(got, v1) {
		t.Fatal("v1")
	}
	f.put("t1/96.ogg", v2, `"2"`)
	if got := read(t, s, "t1/96.ogg", 0, 29_999); !bytes.Equal(got, v1) {
		t.Fatal("before the TTL the cached v1 is served")
	}
	now.Add(61)
	if got := read(t, s, "t1/96.ogg", 0, 19_999); !bytes.Equal(got, v2) {
		t.Fatal("after the TTL v2 is served")
	}
	if s.Stats.Invalidations.Load() != 1 || s.Stats.Revalidations.Load() != 1 {
		t.Errorf("invalidations %d revalidations %d, want 1 and 1", s.Stats.Invalidations.Load(), s.Stats.Revalidations.Load())
	}
	// Upstream down at revalidation: stale v2 is served and counted.
	f.fail = errors.New("down")
	now.Add(61)
	m, st, err := s.Meta(context.Background(), ref("t1/96.ogg"))
	if err != nil || st != Stale || m.ETag != `"2"` || s.Stats.StaleServed.Load() != 1 {
		t.Fatalf("stale: %v %v %v served=%d", m, st, err, s.Stats.StaleServed.Load())
	}
	// Within StaleRetry, no new upstream request.
	revals := s.Stats.Revalidations.Load()
	if _, st, _ := s.Meta(context.Background(), ref("t1/96.ogg")); st != Stale || s.Stats.Revalidations.Load() != revals {
		t.Fatal("stale retry not honoured")
	}
	// Withdrawn upstream: not found.
	f.fail = nil
	f.mu.Lock()
	delete(f.objs, "t1/96.ogg")
	f.mu.Unlock()
	now.Add(61)
	if _, _, err := s.Meta(context.Background(), ref("t1/96.ogg")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("withdrawn: %v", err)
	}
}

// TestChangedDuringFill: a fill that meets a new ETag returns ErrChanged
// and installs the new version.
func TestChangedDuringFill(t *testing.T) {
	f := newMemFetcher()
	f.put("t1/96.ogg", bytes.Repeat([]byte{1}, 30_000), `"1"`)
	s := newStore(t, f, nil)
	r := ref("t1/96.ogg")
	m, _, _ := s.Meta(context.Background(), r)
	f.put("t1/96.ogg", bytes.Repeat([]byte{2}, 30_000), `"2"`)
	if _, _, err := s.Chunk(context.Background(), r, m, 4); !errors.Is(err, ErrChanged) {
		t.Fatalf("Chunk = %v, want ErrChanged", err)
	}
	m2, _, _ := s.Meta(context.Background(), r)
	if m2.ETag != `"2"` {
		t.Fatalf("ETag after change %s", m2.ETag)
	}
	if got := read(t, s, "t1/96.ogg", 0, 29_999); !bytes.Equal(got, bytes.Repeat([]byte{2}, 30_000)) {
		t.Fatal("mixed versions")
	}
}

// BenchmarkChunkSize reads random 64 KiB ranges over a warm set of
// 3.5 MB files through the store at several chunk sizes, and reports the
// upstream fetches a cold start of 10 s at 160 kbps costs. It is how the
// default chunk size was chosen.
func BenchmarkChunkSize(b *testing.B) {
	const fileSize = 3_500_000
	f := newMemFetcher()
	for i := range 20 {
		f.put(fmt.Sprintf("t%d/160.ogg", i), make([]byte, fileSize), fmt.Sprintf(`"%d"`, i))
	}
	for _, cs := range []int64{16 << 10, 64 << 10, 256 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("chunk=%dKiB", cs>>10), func(b *testing.B) {
			s, err := New(Config{ChunkSize: config.Size(cs), MemoryBytes: 512 << 20}, f, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			// Cold start: the first 10 s at 160 kbps is 200 KB.
			before, beforeBytes := f.fetches.Load(), f.bytes.Load()
			read(b, s, "t0/160.ogg", 0, 200_000-1)
			cold := f.fetches.Load() - before
			coldBytes := f.bytes.Load() - beforeBytes
			for i := range 20 {
				read(b, s, fmt.Sprintf("t%d/160.ogg", i), 0, fileSize-1)
			}
			s.Wait()
			rng := rand.New(rand.NewPCG(1, 1))
			names := make([]Ref, 20)
			for i := range names {
				names[i] = ref(fmt.Sprintf("t%d/160.ogg", i))
			}
			buf := make([]byte, 64<<10)
			b.SetBytes(64 << 10)
			b.ReportAllocs()
			for b.Loop() {
				r := names[rng.IntN(20)]
				start := rng.Int64N(fileSize - 64<<10)
				m, _, _ := s.Meta(context.Background(), r)
				n := 0
				for idx := start / cs; idx <= (start+64<<10-1)/cs; idx++ {
					data, _, _ := s.Chunk(context.Background(), r, m, idx)
					lo := max(start-idx*cs, 0)
					hi := min(start+64<<10-idx*cs, int64(len(data)))
					n += copy(buf[n:], data[lo:hi])
				}
			}
			b.ReportMetric(float64(cold), "cold-fetches")
			b.ReportMetric(float64(coldBytes)/200_000, "cold-bytes/needed")
		})
	}
}

// TestNegative: a 404 is remembered for NegativeTTL (issue 10 row 11),
// concurrent misses of a missing object are collapsed, an upstream error
// is never remembered, and a withdrawn object is remembered as missing.
//
// Mutations caught: not installing the entry in fillMeta (20 fetches, not
// 1); ignoring its TTL (no refetch after it); caching any error, not only
// ErrNotFound (the failing upstream is asked once, not 20 times). Tried
// and equivalent: installing entries with NegativeTTL 0 (an entry younger
// than 0 s is never honoured, so nothing changes).
func TestNegative(t *testing.T) {
	var now atomic.Int64
	clock := func() time.Time { return time.Unix(now.Load(), 0) }
	newNeg := func(f Fetcher, ttl time.Duration) *Store {
		s, err := New(Config{ChunkSize: 4096, MemoryBytes: 1 << 20, MetaTTL: config.Duration(time.Minute), NegativeTTL: config.Duration(ttl)}, f, clock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	meta := func(s *Store, name string) error {
		_, _, err := s.Meta(context.Background(), ref(name))
		return err
	}
	f := newMemFetcher()
	s := newNeg(f, 10*time.Second)

	// 20 sequential requests for a missing seek table: one fetch.
	for range 20 {
		if err := meta(s, "t1/96.seek"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing: %v", err)
		}
	}
	if n := f.fetches.Load(); n != 1 {
		t.Errorf("20 requests for a missing object: %d fetches, want 1", n)
	}
	if n := s.Stats.NegativeHits.Load(); n != 19 {
		t.Errorf("negative hits %d, want 19", n)
	}
	// After the TTL it is asked again; once it exists it is served.
	now.Add(9)
	meta(s, "t1/96.seek")
	if n := f.fetches.Load(); n != 1 {
		t.Errorf("within the TTL: %d fetches, want 1", n)
	}
	f.put("t1/96.seek", []byte("table"), `"s"`)
	now.Add(1)
	if err := meta(s, "t1/96.seek"); err != nil {
		t.Fatalf("after the TTL, now present: %v", err)
	}
	if n := f.fetches.Load(); n != 2 {
		t.Errorf("after the TTL: %d fetches, want 2", n)
	}

	// Concurrent misses of a missing object are collapsed into one fetch.
	f.fetches.Store(0)
	f.mu.Lock()
	f.gate = make(chan struct{})
	f.mu.Unlock()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if err := meta(s, "t2/96.seek"); !errors.Is(err, ErrNotFound) {
				t.Errorf("concurrent missing: %v", err)
			}
		})
	}
	wait.For(t, 10*time.Second, "19 collapsed requests", func() bool { return s.Stats.Collapsed.Load() >= 19 })
	f.mu.Lock()
	close(f.gate)
	f.gate = nil
	f.mu.Unlock()
	wg.Wait()
	if n := f.fetches.Load(); n != 1 {
		t.Errorf("20 concurrent requests for a missing object: %d fetches, want 1", n)
	}

	// An upstream error (a 5xx) is never cached.
	f.fetches.Store(0)
	f.fail = errors.New("status 503")
	for range 20 {
		if err := meta(s, "t3/96.seek"); err == nil || errors.Is(err, ErrNotFound) {
			t.Fatalf("failing upstream: %v", err)
		}
	}
	if n := f.fetches.Load(); n != 20 {
		t.Errorf("failing upstream: %d fetches for 20 requests, want 20 (errors are not cached)", n)
	}
	f.fail = nil

	// A withdrawn object is remembered as missing after its revalidation.
	f.put("t4/96.ogg", []byte("audio"), `"a"`)
	if err := meta(s, "t4/96.ogg"); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	delete(f.objs, "t4/96.ogg")
	f.mu.Unlock()
	now.Add(61)
	revals := s.Stats.Revalidations.Load()
	for range 5 {
		if err := meta(s, "t4/96.ogg"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("withdrawn: %v", err)
		}
	}
	if got := s.Stats.Revalidations.Load() - revals; got != 1 {
		t.Errorf("withdrawn: %d revalidations, want 1", got)
	}

	// NegativeTTL 0: disabled.
	f0 := newMemFetcher()
	s0 := newNeg(f0, 0)
	for range 3 {
		meta(s0, "t1/96.seek")
	}
	if n := f0.fetches.Load(); n != 3 {
		t.Errorf("negative_ttl 0: %d fetches, want 3", n)
	}
}
