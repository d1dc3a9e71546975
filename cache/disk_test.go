package cache

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/musiccdn/cdn/config"
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
	dir := t.TempDir()
	f := newMemFetcher()
	obj := make([]byte, 40_000)
	for i := range obj {
		obj[i] = byte(i * 7)
	}
	f.put("t1/96.ogg", obj, `"a"`)
	cfg := Config{ChunkSize: 4096, MemoryBytes: 1 << 20, MetaTTL: config.Duration(time.Minute), DiskDir: dir, DiskBytes: 1 << 20}
	s, err := New(cfg, f, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := read(t, s, "t1/96.ogg", 0, 39_999); !bytes.Equal(got, obj) {
		t.Fatal("first read")
	}
	s.Disk().Flush()
	s.Close()
	before := f.fetches.Load()
	s2, err := New(cfg, f, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got := read(t, s2, "t1/96.ogg", 0, 39_999); !bytes.Equal(got, obj) {
		t.Fatal("read after restart")
	}
	if got := f.fetches.Load() - before; got != 1 {
		t.Errorf("%d upstream fetches after restart, want 1 (metadata with chunk 0)", got)
	}
	if s2.Disk().Hits.Load() != 9 {
		t.Errorf("disk hits %d, want 9 (chunks 1-9)", s2.Disk().Hits.Load())
	}
}
