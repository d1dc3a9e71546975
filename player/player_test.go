package player

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/musiccdn/cdn/player/playertest"
	"github.com/musiccdn/cdn/player/plays"
	"github.com/musiccdn/cdn/vorbis"
)

var (
	catalogDir string // "" when oggenc is missing
	ids        = []string{"t0", "t1", "t2"}
	// split at points that are not packet-aligned
	lengths = []int{2*44100 + 123, 44100 + 31337, 2*44100 + 777}
)

func TestMain(m *testing.M) {
	code := func() int {
		if _, err := exec.LookPath("oggenc"); err == nil {
			dir, err := os.MkdirTemp("", "player-test-")
			if err != nil {
				panic(err)
			}
			defer os.RemoveAll(dir)
			if err := playertest.Catalog(context.Background(), dir, ids, lengths); err != nil {
				fmt.Fprintln(os.Stderr, "building the test catalog:", err)
				return 1
			}
			catalogDir = dir
		}
		return m.Run()
	}()
	os.Exit(code)
}

func need(t *testing.T) *playertest.Server {
	t.Helper()
	playertest.RequireOggenc(t) // TestMain built the catalog when it was there
	srv := playertest.NewServer(t, catalogDir)
	t.Cleanup(srv.Close)
	return srv
}

func config(srv *playertest.Server) Config {
	cfg := DefaultConfig(srv.URL, []string{srv.URL})
	cfg.Token, cfg.UserID = srv.Token, srv.UserID
	cfg.Logger = nil
	return cfg
}

// reference decodes a track's tier and converts it to 44.1 kHz stereo, as
// the player must.
func reference(t *testing.T, id string, kbps int) []float32 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(catalogDir, id, fmt.Sprintf("%d.ogg", kbps)))
	if err != nil {
		t.Fatal(err)
	}
	h, err := vorbis.ReadHeaders(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := vorbis.NewStream(h, bytes.NewReader(b[h.AudioStart:]), h.AudioStart)
	var pcm []float32
	buf := make([]float32, 8192)
	for {
		n, err := st.Read(buf)
		pcm = append(pcm, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	frames := int64(len(pcm) / h.Channels)
	rs := newResampler(h.SampleRate, 44100, h.Channels, 0)
	out := rs.push(nil, pcm)
	return rs.finish(out, frames*44100/int64(h.SampleRate))
}

// renderPaced is renderAll paced as real time would pace the handover:
// at each track change it waits until the next track is prepared, which
// real playback (seconds per track) always allows.
func renderPaced(t *testing.T, s *Session, rng *rand.Rand) []float32 {
	t.Helper()
	last := -1
	return renderAll(t, s, rng, func([]float32) {
		if c := s.Current(); c != last {
			last = c
			if err := s.WaitNext(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func renderAll(t *testing.T, s *Session, rng *rand.Rand, each func(out []float32)) []float32 {
	t.Helper()
	var out []float32
	for range 1_000_000 {
		buf := make([]float32, 2*(1+rng.IntN(4000)))
		n, err := s.Render(buf)
		out = append(out, buf[:2*n]...)
		if each != nil {
			each(out)
		}
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("queue never ended")
	return nil
}

func TestGaplessQueue(t *testing.T) {
	srv := need(t)
	p, err := New(config(srv))
	if err != nil {
		t.Fatal(err)
	}
	s := p.Start(context.Background(), ids)
	defer s.Close()
	// play at "real time" as far as the handover is concerned: each track
	// lasts seconds, far longer than preparing the next one takes
	got := renderPaced(t, s, rand.New(rand.NewPCG(1, 2)))
	st := s.Stats()
	if len(st) != 3 {
		t.Fatalf("stats for %d tracks, want 3: %+v", len(st), st)
	}
	var want []float32
	var joins []int
	for i, ts := range st {
		if ts.ID != ids[i] || ts.Err != nil {
			t.Fatalf("track %d stats %+v", i, ts)
		}
		want = append(want, reference(t, ts.ID, ts.Kbps)...)
		joins = append(joins, len(want)/2)
		if i > 0 && ts.Wait != 0 {
			t.Errorf("handover to %s cost %v of wall time, want 0", ts.ID, ts.Wait)
		}
		t.Logf("%s: %d kbps, first audio %v, waited %v, fetched %d bytes", ts.ID, ts.Kbps, ts.FirstAudio, ts.Wait, ts.Fetched)
	}
	if len(got) != len(want) {
		t.Fatalf("rendered %d frames, want %d", len(got)/2, len(want)/2)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("frame %d channel %d = %v, want %v", i/2, i%2, got[i], want[i])
		}
	}
	// continuity: no jump at a join larger than the signal's own
	maxStep := 0.0
	for i := 2; i < len(got); i++ {
		maxStep = max(maxStep, math.Abs(float64(got[i]-got[i-2])))
	}
	for _, j := range joins[:2] {
		for c := range 2 {
			if d := math.Abs(float64(got[2*j+c] - got[2*(j-1)+c])); d > maxStep {
				t.Errorf("jump of %v at the join at frame %d, signal's largest step %v", d, j, maxStep)
			}
		}
	}
	seen := strings.Join(srv.NextTracks(), " ")
	if !strings.Contains(seen, "t0>t1,t2") {
		t.Errorf("X-Next-Tracks seen %q, want t0>t1,t2", seen)
	}
}

func TestCrossfadeQueue(t *testing.T) {
	srv := need(t)
	cfg := config(srv)
	cfg.Crossfade = 500 * time.Millisecond
	p, _ := New(cfg)
	s := p.Start(context.Background(), ids)
	defer s.Close()
	// As in TestGaplessQueue, pace the handover as real time would: the
	// next track is ready long before a fade starts. (Rendering as fast as
	// the CPU goes would make the next track late, and a late next track
	// joins without a fade; that case has its own test.)
	got := renderPaced(t, s, rand.New(rand.NewPCG(3, 4)))
	want := 0
	for _, ts := range s.Stats() {
		want += len(reference(t, ts.ID, ts.Kbps)) / 2
	}
	want -= 2 * 22050
	if len(got)/2 != want {
		t.Errorf("rendered %d frames, want %d (two 0.5 s fades)", len(got)/2, want)
	}
	for i, v := range got {
		if v > 1 || v < -1 {
			t.Fatalf("sample %d = %v above full scale", i, v)
		}
	}
}

func TestSeekOneRange(t *testing.T) {
	srv := need(t)
	cfg := config(srv)
	cfg.HeadTime = 0 // only the headers come with the prefetch
	cfg.MaxKbps = 160
	p, _ := New(cfg)
	s := p.Start(context.Background(), []string{"t0"})
	defer s.Close()
	buf := make([]float32, 2*256)
	if n, err := s.Render(buf); n != 256 || err != nil {
		t.Fatalf("Render = %d, %v", n, err)
	}
	kbps := s.Track(0).prep.kbps
	ref := reference(t, "t0", kbps)
	rng := rand.New(rand.NewPCG(5, 6))
	dur := float64(lengths[0]) / 44100
	for range 50 {
		at := time.Duration(rng.Float64() * (dur - 0.1) * float64(time.Second))
		before := srv.Requests.Load()
		if err := s.Seek(at); err != nil {
			t.Fatal(err)
		}
		n, err := s.Render(buf)
		if n != 256 || err != nil {
			t.Fatalf("Render after seek to %v = %d, %v", at, n, err)
		}
		if d := srv.Requests.Load() - before; d != 1 {
			t.Errorf("seek to %v made %d requests, want 1", at, d)
		}
		target := int(at.Seconds()*44100 + 0.5)
		// the first frame must be within 1 ms (44 frames) of the target;
		// it is in fact exact
		found := -1
		for off := -44; off <= 44 && found < 0; off++ {
			k := target + off
			if k >= 0 && 2*(k+256) <= len(ref) && equal(buf, ref[2*k:2*(k+256)]) {
				found = off
			}
		}
		if found != 0 {
			t.Fatalf("seek to %v (frame %d): output found at offset %d frames, want 0", at, target, found)
		}
	}
}

func equal(a, b []float32) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPlayReports(t *testing.T) {
	srv := need(t)
	cfg := config(srv)
	cfg.PlayThreshold = time.Second // the 30.000 s rule itself: plays.TestCounter
	rep, err := plays.NewReporter(plays.ReporterConfig{Origin: srv.URL, Dir: t.TempDir(), Token: srv.Token})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Reporter = rep
	p, _ := New(cfg)
	s := p.Start(context.Background(), ids)
	// t0 (2.0 s): 0.5 s rendered, then a seek to 1.6 s: 0.9 s rendered in
	// all though playback reached the end, so no play
	buf := make([]float32, 2*22050)
	if n, err := s.Render(buf); n != 22050 || err != nil {
		t.Fatalf("Render = %d, %v", n, err)
	}
	if err := s.Seek(1600 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// t1 (1.7 s) plays out: one play; t2 is skipped after 0.9 s: none
	skipped := false
	renderAll(t, s, rand.New(rand.NewPCG(7, 8)), func([]float32) {
		if s.Current() == 2 && !skipped && s.rendered[2] >= 39690 {
			skipped = true
			s.Skip()
		}
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.rendered[0] >= 44100 || s.rendered[2] >= 44100 || s.rendered[1] < 44100 {
		t.Fatalf("rendered frames %v, want t0 and t2 under 1 s, t1 over", s.rendered)
	}
	evs := srv.Plays()
	if len(evs) != 1 || evs[0].TrackID != "t1" {
		t.Fatalf("plays = %+v, want one for t1", evs)
	}
	// The event carries its manifest's play id and ticket, and claims no
	// more play than the wall time since that manifest (rendering here
	// runs ahead of the clock).
	e := evs[0]
	if e.MSPlayed <= 0 || e.MSPlayed > 1000 || e.TierKbps == 0 || e.Country != "SE" || e.UserID != srv.UserID {
		t.Errorf("event %+v", e)
	}
	if c, err := srv.Tickets().Verify(e.Ticket); err != nil || c.PlayID != e.PlayID || c.UserID != e.UserID || c.TrackID != "t1" || c.Country != "SE" {
		t.Errorf("event %+v: ticket %+v, %v", e, c, err)
	}
	if p, _ := rep.Pending(); len(p) != 0 {
		t.Errorf("%d events still queued", len(p))
	}
}

func TestABRFollowsBandwidth(t *testing.T) {
	srv := need(t)
	cfg := config(srv)
	cfg.ABR.Tiers = []int{24, 64, 96, 160, 320}
	cfg.ABR.Safety = 0.7
	cfg.ABR.LowBuffer = time.Second / 10
	cfg.ABR.StartKbps = 96
	cfg.ABR.FastHalfLife, cfg.ABR.SlowHalfLife = 2, 5
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tiers := func() []int {
		s := p.Start(context.Background(), ids)
		defer s.Close()
		renderAll(t, s, rand.New(rand.NewPCG(9, 10)), nil)
		var k []int
		for _, ts := range s.Stats() {
			k = append(k, ts.Kbps)
		}
		return k
	}
	srv.BytesPerSecond.Store(16 << 10) // 131 kbit/s
	slow := tiers()
	srv.BytesPerSecond.Store(0)
	fast := tiers()
	t.Logf("tiers at 131 kbit/s %v, unlimited %v", slow, fast)
	if slow[0] != 96 || slow[1] > 64 || slow[2] > 64 {
		t.Errorf("at 131 kbit/s tiers = %v, want 96 then at most 64", slow)
	}
	// the first track of a session starts with an empty buffer, so low;
	// then the tiers climb to the top as transfers are measured
	if fast[1] < fast[0] || fast[2] != 320 {
		t.Errorf("unlimited tiers = %v, want rising to 320", fast)
	}
}

func TestRealTimeUnderrunIsSilence(t *testing.T) {
	srv := need(t)
	cfg := config(srv)
	cfg.RealTime = true
	p, _ := New(cfg)
	s := p.Start(context.Background(), []string{"t0"})
	defer s.Close()
	sink := &NullSink{Rate: 44100}
	buf := make([]float32, 2*441)
	// the first call cannot have audio yet: a device gets silence, at once
	n, err := s.Render(buf)
	if n != 441 || err != nil {
		t.Fatalf("Render = %d, %v, want a full buffer", n, err)
	}
	sink.Write(buf[:2*n])
	for {
		n, err := s.Render(buf)
		sink.Write(buf[:2*n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if sink.Now() < time.Duration(lengths[0])*time.Second/44100 {
		t.Errorf("virtual clock %v, want at least the track's length", sink.Now())
	}
}

func TestExpiredURLRefreshed(t *testing.T) {
	srv := need(t)
	cfg := config(srv)
	cfg.HeadTime = 0
	p, _ := New(cfg)
	s := p.Start(context.Background(), []string{"t0"})
	defer s.Close()
	buf := make([]float32, 2*256)
	if _, err := s.Render(buf); err != nil {
		t.Fatal(err)
	}
	srv.RotateToken()
	if err := s.Seek(time.Second); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Render(buf); n != 256 || err != nil {
		t.Fatalf("Render after the URL expired = %d, %v", n, err)
	}
	if err := s.Track(0).Err(); err != nil {
		t.Fatalf("track error %v", err)
	}
}

func TestUnknownTrackSkipped(t *testing.T) {
	srv := need(t)
	p, _ := New(config(srv))
	s := p.Start(context.Background(), []string{"nope", "t1"})
	got := renderAll(t, s, rand.New(rand.NewPCG(11, 12)), nil)
	err := s.Close()
	if err == nil || !strings.Contains(err.Error(), "unknown track") {
		t.Errorf("Close() = %v, want the unknown track's error", err)
	}
	if len(got)/2 != lengths[1] {
		t.Errorf("rendered %d frames, want t1's %d", len(got)/2, lengths[1])
	}
}

// TestGaplessExactAt24kbps plays the queue from the 24 kbps tier, which
// ingest encodes at 22050 Hz: each test track has an odd number of frames
// at 44.1 kHz, so the tier holds half a frame more than the source, which
// the encoder rounds up to a whole one. The player must stop at the
// manifest's exact sample count, so the queue is exactly the sum of the
// sources' lengths, frame for frame the tier's decoded audio.
//
// Mutations caught: taking the length from the tier's seek table
// (p.table.Samples * out / rate, as before) renders 3 frames too many;
// dropping samples/sample_rate from the manifest (origin, playertest) does
// the same.
func TestGaplessExactAt24kbps(t *testing.T) {
	srv := need(t)
	cfg := config(srv)
	cfg.MaxKbps = 24
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := p.Start(context.Background(), ids)
	defer s.Close()
	got := renderAll(t, s, rand.New(rand.NewPCG(3, 4)), nil)
	var want []float32
	odd := 0
	for i, ts := range s.Stats() {
		if ts.Kbps != 24 || ts.Err != nil {
			t.Fatalf("track %d stats %+v, want 24 kbps", i, ts)
		}
		ref := reference(t, ts.ID, ts.Kbps)
		if len(ref)/2 != lengths[i] {
			odd++ // the tier itself decodes to another length
		}
		want = append(want, ref[:2*min(lengths[i], len(ref)/2)]...)
	}
	if odd == 0 {
		t.Fatal("no track's 24 kbps tier differs in length from its source: the test proves nothing")
	}
	sum := 0
	for _, n := range lengths {
		sum += n
	}
	if len(got)/2 != sum {
		t.Fatalf("rendered %d frames, want exactly %d (the sources' lengths)", len(got)/2, sum)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("frame %d channel %d = %v, want %v", i/2, i%2, got[i], want[i])
		}
	}
}
