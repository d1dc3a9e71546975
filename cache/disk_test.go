package cache

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/internal/wait"
)

func chunkOf(i int, n int) []byte { return bytes.Repeat([]byte{byte(i)}, n) }

// TestDiskRoundTrip: written chunks read back; the budget evicts the least
// recently used; a corrupted file is dropped, not served.
func TestDiskRoundTrip(t *testing.T) {
	dir := t.TempDir()
	d, err := OpenDisk(dir, 10*(1000+diskHeader))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for i := range 10 {
		d.Set(uint64(i), chunkOf(i, 1000))
	}
	d.Flush()
	for i := range 10 {
		if b, ok := d.Get(uint64(i)); !ok || !bytes.Equal(b, chunkOf(i, 1000)) {
			t.Fatalf("chunk %d: %v", i, ok)
		}
	}
	d.Get(0) // 0 is now the most recent; 1 the least
	d.Set(10, chunkOf(10, 1000))
	d.Flush()
	if d.Has(1) || !d.Has(0) || !d.Has(10) {
		t.Errorf("LRU eviction: has 1 %v, 0 %v, 10 %v", d.Has(1), d.Has(0), d.Has(10))
	}
	if _, err := os.Stat(d.path(1)); !os.IsNotExist(err) {
		t.Errorf("evicted chunk's file still there: %v", err)
	}
	// Corrupt chunk 5's bytes on disk.
	b, _ := os.ReadFile(d.path(5))
	b[len(b)-1] ^= 0xff
	os.WriteFile(d.path(5), b, 0o644)
	if _, ok := d.Get(5); ok {
		t.Fatal("a corrupted chunk was served")
	}
	if d.Corrupt.Load() != 1 || d.Has(5) {
		t.Errorf("corrupt count %d, still indexed %v", d.Corrupt.Load(), d.Has(5))
	}
}

// TestDiskReopen: a restarted tier finds its chunks, oldest first in LRU
// order, and removes torn temporary files.
func TestDiskReopen(t *testing.T) {
	dir := t.TempDir()
	d, _ := OpenDisk(dir, 1<<20)
	for i := range 5 {
		d.Set(uint64(100+i), chunkOf(i, 500))
	}
	d.Flush()
	d.Close()
	os.WriteFile(d.path(999)+".tmp", []byte("torn"), 0o644)
	d2, err := OpenDisk(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	for i := range 5 {
		if b, ok := d2.Get(uint64(100 + i)); !ok || !bytes.Equal(b, chunkOf(i, 500)) {
			t.Fatalf("chunk %d lost across a restart", 100+i)
		}
	}
	if _, err := os.Stat(d.path(999) + ".tmp"); !os.IsNotExist(err) {
		t.Error("torn temporary file left behind")
	}
}

// TestStoreDiskTier: a store restarted on the same disk directory serves
// chunks from disk; only metadata goes upstream again.
func TestStoreDiskTier(t *testing.T) {
	f := newMemFetcher()
	obj := make([]byte, 40_000)
	for i := range obj {
		obj[i] = byte(i * 7)
	}
	f.put("t1/96.ogg", obj, `"a"`)
	s, cfg := openDiskStore(t, time.Minute, f)
	if got := read(t, s, "t1/96.ogg", 0, 39_999); !bytes.Equal(got, obj) {
		t.Fatal("first read")
	}
	s.Disk().Flush()
	s.Close()
	before := f.fetches.Load()
	s2 := openStore(t, cfg, f)
	defer s2.Close()
	if got := read(t, s2, "t1/96.ogg", 0, 39_999); !bytes.Equal(got, obj) {
		t.Fatal("read after restart")
	}
	// Warm restart: the metadata is on disk beside the chunks.
	// Mutations caught: not writing metadata in replaceMeta, not
	// reading it in Meta (1 fetch each).
	if got := f.fetches.Load() - before; got != 0 {
		t.Errorf("%d upstream fetches after restart, want 0", got)
	}
	if s2.Disk().Hits.Load() != 11 {
		t.Errorf("disk hits %d, want 11 (metadata and chunks 0-9)", s2.Disk().Hits.Load())
	}
	if s2.Stats.WarmMetas.Load() != 1 {
		t.Errorf("WarmMetas %d, want 1", s2.Stats.WarmMetas.Load())
	}
}

// TestStoreDiskTornMeta: a metadata record cut short or flipped on disk is
// discarded, never served; the object is fetched again. Mutation caught:
// decodeMeta without the length checks (a short record decodes, or
// panics), Disk.Get without the checksum.
func TestStoreDiskTornMeta(t *testing.T) {
	for _, damage := range []struct {
		name string
		f    func([]byte) []byte
	}{
		{"torn", func(b []byte) []byte { return b[:len(b)-3] }},
		{"flipped", func(b []byte) []byte { b[len(b)-1] ^= 0xff; return b }},
		{"header only", func(b []byte) []byte { return b[:diskHeader] }},
	} {
		t.Run(damage.name, func(t *testing.T) {
			f := newMemFetcher()
			obj := bytes.Repeat([]byte("ogg!"), 3000)
			f.put("t1/96.ogg", obj, `"a"`)
			s, cfg := openDiskStore(t, time.Minute, f)
			read(t, s, "t1/96.ogg", 0, int64(len(obj)-1))
			s.Disk().Flush()
			s.Close()
			p := s.Disk().path(diskMetaKey(ObjectKey([]byte("t1/96.ogg"))))
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(p, damage.f(b), 0o644)
			f.put("t1/96.ogg", bytes.Repeat([]byte("new!"), 3000), `"b"`)
			s2 := openStore(t, cfg, f)
			defer s2.Close()
			got := read(t, s2, "t1/96.ogg", 0, int64(len(obj)-1))
			if !bytes.Equal(got, bytes.Repeat([]byte("new!"), 3000)) {
				t.Fatalf("a damaged metadata record was served: %q...", got[:8])
			}
			if s2.Stats.WarmMetas.Load() != 0 {
				t.Error("damaged metadata was loaded")
			}
		})
	}
}

// TestStorePurge: after Purge, metadata, chunks in memory and on disk and
// the metadata on disk are gone, even across a restart; the next read
// gets the new version. Mutations caught: Purge not deleting the disk
// metadata (the restarted store serves version a), not dropping chunks
// (old bytes stitched under an unchanged ETag).
func TestStorePurge(t *testing.T) {
	f := newMemFetcher()
	a := bytes.Repeat([]byte("aaaa"), 3000)
	f.put("t1/96.ogg", a, `"same"`)
	s, cfg := openDiskStore(t, time.Hour, f)
	read(t, s, "t1/96.ogg", 0, int64(len(a)-1))
	// A bad encode re-delivered under the same ETag: only a purge
	// makes the cache let go of it.
	b := bytes.Repeat([]byte("bbbb"), 3000)
	f.put("t1/96.ogg", b, `"same"`)
	s.Purge([]byte("t1/96.ogg"))
	if got := read(t, s, "t1/96.ogg", 0, int64(len(b)-1)); !bytes.Equal(got, b) {
		t.Fatalf("after purge: old bytes %q", got[:8])
	}
	s.Disk().Flush()
	s.Close()
	s2 := openStore(t, cfg, f)
	defer s2.Close()
	if got := read(t, s2, "t1/96.ogg", 0, int64(len(b)-1)); !bytes.Equal(got, b) {
		t.Fatalf("after purge and restart: old bytes %q", got[:8])
	}
}

// TestStorePurgeRacingFill: a fill in flight when Purge runs keeps
// nothing and hands its waiters ErrChanged, not the old bytes; the
// retry gets the new version. Mutations caught: not checking the purge
// mark in fill (the waiter gets "aaaa" and the chunk is cached), checking
// only the global counter without the per-object mark (a purge of
// another object discards the fill: TestStorePurgeOtherObject).
func TestStorePurgeRacingFill(t *testing.T) {
	f := newMemFetcher()
	a := bytes.Repeat([]byte("aaaa"), 3000)
	f.put("t1/96.ogg", a, `"same"`)
	s := newStore(t, f, nil)
	r := ref("t1/96.ogg")
	m := meta(t, s, r)
	gate := f.hold()
	type res struct {
		data []byte
		err  error
	}
	done := make(chan res, 1)
	go func() {
		d, _, err := s.Chunk(context.Background(), r, m, 1)
		done <- res{d, err}
	}()
	wait.For(t, 10*time.Second, "the second fetch", func() bool { return f.fetches.Load() == 2 })
	f.put("t1/96.ogg", bytes.Repeat([]byte("bbbb"), 3000), `"same"`)
	s.Purge([]byte("t1/96.ogg"))
	close(gate) // the old fill returns old bytes... too late
	got := <-done
	if !errors.Is(got.err, ErrChanged) {
		t.Fatalf("waiter of a fill that raced a purge: err %v, data %q", got.err, got.data[:min(8, len(got.data))])
	}
	f.mu.Lock()
	f.gate = nil
	f.mu.Unlock()
	if out := read(t, s, "t1/96.ogg", 0, int64(len(a)-1)); !bytes.Equal(out[:4], []byte("bbbb")) || !bytes.Equal(out[4096:4100], []byte("bbbb")) {
		t.Fatalf("after the racing purge: %q / %q", out[:4], out[4096:4100])
	}
}

// TestStorePurgeOtherObject: a purge of another object does not discard
// a fill in flight.
func TestStorePurgeOtherObject(t *testing.T) {
	f := newMemFetcher()
	f.put("t1/96.ogg", bytes.Repeat([]byte("aaaa"), 3000), `"a"`)
	s := newStore(t, f, nil)
	r := ref("t1/96.ogg")
	m := meta(t, s, r)
	gate := f.hold()
	done := make(chan error, 1)
	go func() {
		_, _, err := s.Chunk(context.Background(), r, m, 1)
		done <- err
	}()
	wait.For(t, 10*time.Second, "the second fetch", func() bool { return f.fetches.Load() == 2 })
	s.Purge([]byte("t2/96.ogg"))
	close(gate)
	if err := <-done; err != nil {
		t.Fatalf("a purge of t2 failed a fill of t1: %v", err)
	}
}

// FuzzDecodeMeta: a metadata record read from disk (possibly damaged)
// decodes to valid metadata or an error, never a panic, and what decodes
// encodes back to the same record.
func FuzzDecodeMeta(f *testing.F) {
	m := NewMeta(1234, `"e"`, time.Unix(1700000000, 0), "audio/ogg")
	m.checked = time.Unix(1700000001, 5)
	f.Add(encodeMeta(&m))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		if m.Size < 0 || len(m.ETag) < 2 {
			t.Fatalf("decoded invalid metadata %+v", m)
		}
		if again := encodeMeta(m); !bytes.Equal(again, b) {
			t.Fatalf("round trip: %x != %x", again, b)
		}
	})
}

// openDiskStore opens the small store of the disk tests over f, with its
// disk tier in a fresh directory and metadata fresh for ttl, and returns
// it with its Config, to restart it on the same directory with openStore.
// The test closes it.
func openDiskStore(t testing.TB, ttl time.Duration, f Fetcher) (*Store, Config) {
	t.Helper()
	cfg := Config{ChunkSize: 4096, MemoryBytes: 1 << 20, MetaTTL: config.Duration(ttl), DiskDir: t.TempDir(), DiskBytes: 1 << 20}
	return openStore(t, cfg, f), cfg
}

// openStore is New(cfg, f, nil), or the test fails. The test closes it
// (the disk tests close and reopen stores to restart them).
func openStore(t testing.TB, cfg Config, f Fetcher) *Store {
	t.Helper()
	s, err := New(cfg, f, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
