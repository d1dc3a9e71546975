package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/musiccdn/cdn/catalog"
)

// writeFile writes data to root/rel atomically, the way ingest does: a
// temporary file renamed over the old one.
func writeFile(t *testing.T, root, rel string, data []byte) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

func newDir(t *testing.T) (*Dir, string) {
	t.Helper()
	root := t.TempDir()
	d, err := OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	return d, root
}

// mustOpen is d.Open, or the test fails. The test closes the File.
func mustOpen(t *testing.T, d *Dir, id string, kbps int, kind catalog.Kind) (Object, File) {
	t.Helper()
	obj, f, err := d.Open(context.Background(), id, kbps, kind)
	if err != nil {
		t.Fatalf("Open(%q, %d, %v) = %v", id, kbps, kind, err)
	}
	return obj, f
}

func readAll(t *testing.T, f File, size int64) []byte {
	t.Helper()
	b := make([]byte, size)
	if n, err := f.ReadAt(b, 0); int64(n) != size || (err != nil && err != io.EOF) {
		t.Fatalf("ReadAt = %d, %v; want %d bytes", n, err, size)
	}
	return b
}

func TestOpenDirErrors(t *testing.T) {
	root := t.TempDir()
	if _, err := OpenDir(filepath.Join(root, "missing")); err == nil {
		t.Errorf("OpenDir(missing) = nil error")
	}
	f := filepath.Join(root, "file")
	os.WriteFile(f, nil, 0o644)
	if _, err := OpenDir(f); err == nil {
		t.Errorf("OpenDir(file) = nil error")
	}
}

func TestDirOpen(t *testing.T) {
	d, root := newDir(t)
	audio, seek := []byte("OggS audio bytes"), []byte("seek table")
	writeFile(t, root, "t1/24.ogg", audio)
	writeFile(t, root, "t1/24.seek", seek)
	mtime := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	os.Chtimes(filepath.Join(root, "t1/24.ogg"), mtime, mtime)

	obj, f := mustOpen(t, d, "t1", 24, catalog.Audio)
	defer f.Close()
	if obj.Size != int64(len(audio)) || !obj.ModTime.Equal(mtime) || obj.Kind != catalog.Audio || obj.Track != "t1" || obj.Kbps != 24 {
		t.Errorf("Open = %+v, want size %d, mtime %v", obj, len(audio), mtime)
	}
	if len(obj.ETag) < 3 || obj.ETag[0] != '"' || obj.ETag[len(obj.ETag)-1] != '"' || obj.ETag[1] == 'W' {
		t.Errorf("ETag = %s, want a strong quoted tag", obj.ETag)
	}
	if got := readAll(t, f, obj.Size); !bytes.Equal(got, audio) {
		t.Errorf("read %q, want %q", got, audio)
	}
	sobj, sf := mustOpen(t, d, "t1", 24, catalog.SeekTable)
	sf.Close()
	if sobj.Size != int64(len(seek)) || sobj.ETag == obj.ETag {
		t.Errorf("Open seek = %+v; want size %d and an ETag unlike the audio's", sobj, len(seek))
	}
}

func TestDirRejectsBeforeFilesystem(t *testing.T) {
	d, root := newDir(t)
	ctx := context.Background()
	writeFile(t, root, "t1/24.ogg", []byte("x"))
	// Files that a traversal would reach if ids or tiers were not checked.
	writeFile(t, root, "secret.ogg", []byte("secret"))
	writeFile(t, filepath.Dir(root), "24.ogg", []byte("outside"))
	tests := []struct {
		id   string
		kbps int
		kind catalog.Kind
	}{
		{"..", 24, catalog.Audio},
		{".", 24, catalog.Audio},
		{"../t1", 24, catalog.Audio},
		{"t1/..", 24, catalog.Audio},
		{"t1/../..", 24, catalog.Audio},
		{"/etc", 24, catalog.Audio},
		{"", 24, catalog.Audio},
		{"t1\x00", 24, catalog.Audio},
		{"t 1", 24, catalog.Audio},
		{string(bytes.Repeat([]byte("a"), 65)), 24, catalog.Audio},
		{"t1", 0, catalog.Audio},
		{"t1", 25, catalog.Audio},
		{"t1", -24, catalog.Audio},
		{"t1", 24, catalog.Kind(7)},
		{"t2", 24, catalog.Audio},     // valid but absent
		{"t1", 64, catalog.Audio},     // valid tier, absent file
		{"t1", 24, catalog.SeekTable}, // no seek table
	}
	for _, tt := range tests {
		_, f, err := d.Open(ctx, tt.id, tt.kbps, tt.kind)
		if !errors.Is(err, ErrNotFound) {
			if f != nil {
				f.Close()
			}
			t.Errorf("Open(%q, %d, %v) = %v, want ErrNotFound", tt.id, tt.kbps, tt.kind, err)
		}
		if _, err := d.Track(ctx, tt.id); tt.id != "t1" && !errors.Is(err, ErrNotFound) {
			t.Errorf("Track(%q) = %v, want ErrNotFound", tt.id, err)
		}
	}
	// A directory where a file should be is not a file.
	os.MkdirAll(filepath.Join(root, "t3", "96.ogg"), 0o755)
	if _, _, err := d.Open(ctx, "t3", 96, catalog.Audio); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open(directory) = %v, want ErrNotFound", err)
	}
}

func TestDirVersions(t *testing.T) {
	d, root := newDir(t)
	v1 := bytes.Repeat([]byte("1"), 1000)
	v2 := bytes.Repeat([]byte("2"), 1000) // same size
	writeFile(t, root, "t1/160.ogg", v1)

	obj1, f1 := mustOpen(t, d, "t1", 160, catalog.Audio)
	defer f1.Close()
	// Re-opening an unchanged file gives the same ETag (from the cache).
	obj1b, f := mustOpen(t, d, "t1", 160, catalog.Audio)
	f.Close()
	if obj1b.ETag != obj1.ETag {
		t.Errorf("ETag of unchanged file = %s then %s", obj1.ETag, obj1b.ETag)
	}

	// Replace with same-size content and force a different mtime (file
	// systems with coarse timestamps could otherwise give the same one).
	writeFile(t, root, "t1/160.ogg", v2)
	later := obj1.ModTime.Add(2 * time.Second)
	os.Chtimes(filepath.Join(root, "t1/160.ogg"), later, later)
	obj2, f2 := mustOpen(t, d, "t1", 160, catalog.Audio)
	defer f2.Close()
	if obj2.ETag == obj1.ETag {
		t.Errorf("ETag unchanged (%s) after the content changed", obj2.ETag)
	}
	if !obj2.ModTime.Equal(later) {
		t.Errorf("ModTime = %v, want %v", obj2.ModTime, later)
	}
	// The first File still reads the first version.
	if got := readAll(t, f1, obj1.Size); !bytes.Equal(got, v1) {
		t.Errorf("old File reads %q..., want version 1", got[:4])
	}
	if got := readAll(t, f2, obj2.Size); !bytes.Equal(got, v2) {
		t.Errorf("new File reads %q..., want version 2", got[:4])
	}

	// Same bytes again, new mtime: a new version with the first ETag, as
	// a strong validator should be (same bytes, same tag).
	writeFile(t, root, "t1/160.ogg", v1)
	obj3, f3 := mustOpen(t, d, "t1", 160, catalog.Audio)
	f3.Close()
	if obj3.ETag != obj1.ETag {
		t.Errorf("ETag of republished identical bytes = %s, want %s", obj3.ETag, obj1.ETag)
	}
}

func TestDirETagCancelled(t *testing.T) {
	d, root := newDir(t)
	writeFile(t, root, "t1/24.ogg", []byte("abc"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := d.Open(ctx, "t1", 24, catalog.Audio); !errors.Is(err, context.Canceled) {
		t.Errorf("Open(cancelled) = %v, want context.Canceled", err)
	}
	// The failed hash is not remembered: the next Open hashes again.
	obj, f, err := d.Open(context.Background(), "t1", 24, catalog.Audio)
	if err != nil || obj.ETag == "" {
		t.Fatalf("Open after a cancelled one = %+v, %v", obj, err)
	}
	f.Close()
	if d.Hashes() != 2 {
		t.Errorf("Hashes() = %d, want 2", d.Hashes())
	}
}

func TestDirTrack(t *testing.T) {
	d, root := newDir(t)
	ctx := context.Background()
	writeFile(t, root, "a/24.ogg", []byte("x"))
	writeFile(t, root, "a/96.ogg", []byte("x"))
	writeFile(t, root, "a/96.seek", []byte("x"))
	writeFile(t, root, "b/24.ogg", []byte("x"))
	writeFile(t, root, "b/64.ogg", []byte("x"))
	writeFile(t, root, "b/320.ogg", []byte("x"))
	writeFile(t, root, "b/track.json", []byte(`{"duration_ms":210000,"samples":9261000,"sample_rate":44100,"tiers":[320,24,128]}`))
	writeFile(t, root, "c/track.json", []byte(`{"duration_ms":1000}`))
	writeFile(t, root, "d/24.ogg", []byte("x"))
	writeFile(t, root, "d/track.json", []byte(`{"duration_ms":`))
	writeFile(t, root, "e/24.ogg", []byte("x"))
	writeFile(t, root, "e/track.json", []byte(`{"duration_ms":5000}`))

	tests := []struct {
		id      string
		want    Track
		wantErr bool
	}{
		{id: "a", want: Track{ID: "a", DurationMS: 0, Tiers: []int{24, 96}}},
		// track.json lists 128 (not a tier) and omits 64: neither is served.
		{id: "b", want: Track{ID: "b", DurationMS: 210000, Samples: 9261000, SampleRate: 44100, Tiers: []int{24, 320}}},
		{id: "c", wantErr: true}, // no audio
		{id: "d", wantErr: true}, // malformed track.json
		{id: "e", want: Track{ID: "e", DurationMS: 5000, Tiers: []int{24}}}, // no tiers key: files decide
		{id: "zz", wantErr: true},
	}
	for _, tt := range tests {
		got, err := d.Track(ctx, tt.id)
		if tt.wantErr {
			if err == nil {
				t.Errorf("Track(%q) = %+v, want an error", tt.id, got)
			}
			continue
		}
		if err != nil || got.ID != tt.want.ID || got.DurationMS != tt.want.DurationMS || got.Samples != tt.want.Samples || got.SampleRate != tt.want.SampleRate || !slices.Equal(got.Tiers, tt.want.Tiers) {
			t.Errorf("Track(%q) = %+v, %v; want %+v", tt.id, got, err, tt.want)
		}
	}
	if _, err := d.Track(ctx, "c"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Track(no audio) = %v, want ErrNotFound", err)
	}
	if _, err := d.Track(ctx, "d"); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("Track(bad json) = %v, want a decode error", err)
	}
}

func TestDirList(t *testing.T) {
	d, root := newDir(t)
	ctx := context.Background()
	for _, id := range []string{"t10", "t2", "T1", "t1", "_x", "a-b"} {
		writeFile(t, root, id+"/24.ogg", []byte("x"))
	}
	os.MkdirAll(filepath.Join(root, "empty"), 0o755) // no audio: not a track
	os.MkdirAll(filepath.Join(root, "bad.id"), 0o755)
	writeFile(t, root, "bad.id/24.ogg", []byte("x"))
	writeFile(t, root, "file", []byte("x"))

	all := []string{"T1", "_x", "a-b", "t1", "t10", "t2"}
	tests := []struct {
		after string
		limit int
		want  []string
	}{
		{"", 100, all},
		{"", 2, all[:2]},
		{"T1", 2, []string{"_x", "a-b"}},
		{"a-b", 100, []string{"t1", "t10", "t2"}},
		{"t15", 100, []string{"t2"}}, // after need not exist
		{"t2", 100, nil},
		{"", 0, nil},
	}
	for _, tt := range tests {
		got, err := d.List(ctx, tt.after, tt.limit)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("List(%q, %d) = %q, %v; want %q", tt.after, tt.limit, got, err, tt.want)
		}
	}
}

func TestDirConcurrentOpen(t *testing.T) {
	d, root := newDir(t)
	data := bytes.Repeat([]byte("0123456789"), 10_000)
	writeFile(t, root, "t1/320.ogg", data)
	ctx := context.Background()
	done := make(chan string)
	for range 8 {
		go func() {
			obj, f, err := d.Open(ctx, "t1", 320, catalog.Audio)
			if err != nil {
				done <- "error: " + err.Error()
				return
			}
			buf := make([]byte, 10)
			f.ReadAt(buf, 12345)
			f.Close()
			if !bytes.Equal(buf, data[12345:12355]) {
				done <- "bad bytes"
				return
			}
			done <- obj.ETag
		}()
	}
	first := <-done
	for range 7 {
		if got := <-done; got != first {
			t.Errorf("concurrent Open: %q vs %q", got, first)
		}
	}
	if d.Hashes() != 1 {
		t.Errorf("8 concurrent first opens hashed the file %d times, want 1", d.Hashes())
	}
}

// BenchmarkDirOpen measures Open of a 24 kbps and a 320 kbps file of a
// 3.5-minute track, with the ETag cached and with it hashed afresh.
func BenchmarkDirOpen(b *testing.B) {
	root := b.TempDir()
	d, err := OpenDir(root)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, kbps := range []int{24, 320} {
		size := 210 * kbps * 1000 / 8
		p := filepath.Join(root, "t1", fileName(kbps, catalog.Audio))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, bytes.Repeat([]byte{byte(kbps)}, size), 0o644); err != nil {
			b.Fatal(err)
		}
		for _, cold := range []bool{false, true} {
			name := fmt.Sprintf("kbps=%d/cached", kbps)
			if cold {
				name = fmt.Sprintf("kbps=%d/hash", kbps)
			}
			b.Run(name, func(b *testing.B) {
				if cold {
					b.SetBytes(int64(size))
				}
				b.ReportAllocs()
				for b.Loop() {
					if cold {
						d.mu.Lock()
						clear(d.etags)
						d.mu.Unlock()
					}
					_, f, err := d.Open(ctx, "t1", kbps, catalog.Audio)
					if err != nil {
						b.Fatal(err)
					}
					f.Close()
				}
			})
		}
	}
}
