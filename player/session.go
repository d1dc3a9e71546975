package player

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/player/mix"
	"github.com/musiccdn/cdn/player/plays"
)

// TrackStats describes one queue entry after it stopped.
type TrackStats struct {
	ID   string
	Kbps int
	// FirstAudio is the wall time from asking for the track (its
	// preparation, which prefetch may have done early) to its first
	// decoded frame.
	FirstAudio time.Duration
	// Wait is the wall time Render waited for this track's first frame
	// once it was due: time to first audio for the first track, the
	// handover cost for the others (0 when it was ready in time).
	Wait time.Duration
	// Fetched is the bytes fetched for the track (seek table and audio),
	// Played the bytes of audio up to the last page rendered, and Wasted
	// the difference (never played: skipped or prefetched and dropped).
	Fetched, Played, Wasted int64
	Rendered                int64 // frames rendered
	Seeks                   int
	Skipped                 bool
	Err                     error
}

// Session plays one queue. Its methods must not be called concurrently
// (a device callback and a UI share it through their own lock); cancel
// the context given to Start to stop a Render from elsewhere.
type Session struct {
	p      *Player
	ctx    context.Context
	cancel context.CancelFunc
	queue  []string
	mixer  *mix.Mixer
	notify chan struct{}

	tracks   map[int]*Track
	due      map[int]time.Time // when a track became due and had no frame
	waits    map[int]time.Duration
	started  map[int]bool // rendered at least one frame
	rendered map[int]int64
	counters map[int]*plays.Counter
	skipped  map[int]bool
	retired  map[int]bool
	stats    []TrackStats
	errs     []error
	cur      int // queue index of the current track

	mu       sync.Mutex
	prepping map[int]*prepJob

	flushing sync.WaitGroup
	closed   bool
}

type prepJob struct {
	done chan struct{}
	p    *prepared
	err  error
}

// Start begins playing queue. Nothing is fetched until the first Render.
func (p *Player) Start(ctx context.Context, queue []string) *Session {
	ctx, cancel := context.WithCancel(ctx)
	s := &Session{
		p: p, ctx: ctx, cancel: cancel, queue: queue, notify: make(chan struct{}, 1),
		tracks: map[int]*Track{}, due: map[int]time.Time{}, waits: map[int]time.Duration{}, started: map[int]bool{},
		rendered: map[int]int64{}, counters: map[int]*plays.Counter{}, skipped: map[int]bool{}, retired: map[int]bool{}, prepping: map[int]*prepJob{},
		cur: -1,
	}
	mc := mix.Config{
		Channels:  2,
		Crossfade: int(p.cfg.Crossfade.Seconds() * float64(p.cfg.OutputRate)),
		SkipFade:  max(1, int(p.cfg.SkipFade.Seconds()*float64(p.cfg.OutputRate))),
		OnRender:  s.onRender,
	}
	s.mixer, _ = mix.New(mc)
	if len(queue) > 0 {
		s.mixer.SetNext(s.load(0), 0)
	}
	return s
}

// Render fills out (interleaved stereo frames) and returns the frames
// written. It returns io.EOF once the whole queue has been played. Unless
// the player is RealTime, it waits for data on an underrun; a RealTime
// session fills the rest of out with silence instead.
func (s *Session) Render(out []float32) (int, error) {
	total := len(out) / 2
	done := 0
	for done < total {
		if err := s.ctx.Err(); err != nil {
			return done, err
		}
		n, st := s.mixer.Render(out[2*done : 2*total])
		done += n
		s.housekeep()
		switch st {
		case mix.Idle:
			if s.cur+1 >= len(s.queue) {
				s.finishAll()
				return done, io.EOF
			}
			// the next track was not set yet: housekeep set it
			continue
		case mix.Underrun:
			if s.p.cfg.RealTime {
				clear(out[2*done : 2*total])
				return total, nil
			}
			s.markDue()
			select {
			case <-s.notify:
			case <-s.ctx.Done():
				return done, s.ctx.Err()
			}
		}
	}
	return done, nil
}

// markDue notes the wall time at which the current track was wanted but had
// no frame, to measure the handover cost.
func (s *Session) markDue() {
	i, ok := s.mixer.Current().(int)
	if !ok || s.started[i] {
		return
	}
	if _, seen := s.due[i]; !seen {
		s.due[i] = time.Now()
	}
}

func (s *Session) onRender(tag any, frames int) {
	i := tag.(int)
	if !s.started[i] {
		s.started[i] = true
		if t, ok := s.due[i]; ok {
			s.waits[i] = time.Since(t)
		}
	}
	s.rendered[i] += int64(frames)
	c := s.counters[i]
	if c == nil {
		c = plays.NewCounter(s.p.cfg.OutputRate, s.p.cfg.PlayThreshold)
		s.counters[i] = c
	}
	if c.Add(int64(frames)) {
		s.report(i)
	}
}

// Skip fades the current track out over the skip fade and starts the next
// one; a skip on the last track ends the queue.
func (s *Session) Skip() {
	cur, _ := s.mixer.Current().(int)
	if s.mixer.Current() == nil {
		return
	}
	s.skipped[cur] = true
	i := cur + 1
	if i < len(s.queue) {
		if s.tracks[i] == nil {
			s.mixer.SetNext(s.load(i), i)
		} else if !s.mixer.HasNext() {
			s.mixer.SetNext(s.tracks[i], i)
		}
		s.cur = i
	}
	s.mixer.Skip()
}

// Seek moves the current track to d: one range request from the page the
// seek table names, then decoding to the exact sample.
func (s *Session) Seek(d time.Duration) error {
	i, ok := s.mixer.Current().(int)
	if !ok {
		return errors.New("player: nothing playing")
	}
	if err := s.tracks[i].seek(s.ctx, d); err != nil {
		return err
	}
	s.mixer.Discard()
	return nil
}

// WaitNext blocks until the track after the current one has decoded its
// first frames (or failed), or ctx ends. A real-time player never needs
// it: the next track is prepared PrestartLead ahead. A caller rendering
// faster than real time (to a file, or a test measuring the handover) uses
// it to stand for the time that playing in real time would take.
func (s *Session) WaitNext(ctx context.Context) error {
	for {
		cur, ok := s.mixer.Current().(int)
		if !ok || cur+1 >= len(s.queue) {
			return nil
		}
		if t := s.tracks[cur+1]; t != nil && t.ready() {
			return nil
		}
		if s.tracks[cur+1] == nil {
			s.mixer.SetNext(s.load(cur+1), cur+1)
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.ctx.Done():
			return s.ctx.Err()
		}
	}
}

// Current returns the queue index of the current track, or -1.
func (s *Session) Current() int {
	if i, ok := s.mixer.Current().(int); ok {
		return i
	}
	return -1
}

// Track returns the track at queue index i if it has been loaded.
func (s *Session) Track(i int) *Track { return s.tracks[i] }

// Stats returns the statistics of the tracks that have stopped, in the
// order they stopped.
func (s *Session) Stats() []TrackStats { return s.stats }

// Close stops every loader, makes a last attempt to send queued plays,
// and returns the first error a track met.
func (s *Session) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.cancel()
	for _, t := range s.tracks {
		t.stop()
	}
	s.flushing.Wait()
	if r := s.p.cfg.Reporter; r != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		r.Flush(ctx)
		cancel()
	}
	return errors.Join(s.errs...)
}

// housekeep runs after every mixer step: it follows track changes, starts
// the next track's decoding and the prefetch of the ones after it, and
// retires tracks that stopped.
func (s *Session) housekeep() {
	for _, tag := range s.mixer.TakeEnded() {
		s.retire(tag.(int))
	}
	cur, ok := s.mixer.Current().(int)
	if !ok {
		if s.cur+1 < len(s.queue) && !s.mixer.HasNext() && s.tracks[s.cur+1] == nil {
			// the current track ended before its successor was set
			s.mixer.SetNext(s.load(s.cur+1), s.cur+1)
		}
		return
	}
	s.cur = cur
	t := s.tracks[cur]
	rem := t.Remaining()
	if rem < 0 {
		return
	}
	left := time.Duration(float64(rem) / float64(s.p.cfg.OutputRate) * float64(time.Second))
	if left <= s.p.cfg.PrefetchLead && s.p.cfg.Offline == nil {
		for k := 1; k <= s.p.cfg.PrefetchCount && cur+k < len(s.queue); k++ {
			s.prefetch(cur+k, left)
		}
	}
	if next := cur + 1; next < len(s.queue) && left <= s.p.cfg.PrestartLead && s.tracks[next] == nil {
		s.mixer.SetNext(s.load(next), next)
	}
}

// load creates the track at queue index i and starts preparing and
// decoding it in the background.
func (s *Session) load(i int) *Track {
	ahead := int64(s.p.cfg.BufferAhead.Seconds() * float64(s.p.cfg.OutputRate))
	t := newTrack(s.queue[i], s.p.cfg.OutputRate, ahead, s.notify)
	s.tracks[i] = t
	left := time.Duration(0)
	if cur, ok := s.mixer.Current().(int); ok && s.tracks[cur] != nil {
		if r := s.tracks[cur].Remaining(); r > 0 {
			left = time.Duration(float64(r) / float64(s.p.cfg.OutputRate) * float64(time.Second))
		}
	}
	job := s.prefetch(i, left)
	go func() {
		select {
		case <-job.done:
		case <-s.ctx.Done():
			return
		}
		if job.err != nil {
			t.fail(job.err)
			return
		}
		t.begin(s.ctx, job.p)
	}()
	return t
}

// prefetch prepares queue index i once (manifest, tier, seek table, first
// bytes) in the background.
func (s *Session) prefetch(i int, buffer time.Duration) *prepJob {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j, ok := s.prepping[i]; ok {
		return j
	}
	j := &prepJob{done: make(chan struct{})}
	s.prepping[i] = j
	id := s.queue[i]
	next := catalog.FormatNextTracks(s.queue[i+1 : min(len(s.queue), i+1+3)])
	go func() {
		defer close(j.done)
		if st := s.p.cfg.Offline; st != nil {
			tr, err := st.Open(id)
			if err != nil {
				j.err = err
				return
			}
			j.p, j.err = prepareOffline(tr)
			return
		}
		j.p, j.err = prepareOnline(s.ctx, s.p.c, id, s.p.cfg.MaxKbps, buffer, s.p.cfg.HeadTime, next)
	}()
	return j
}

// retire records the stats of a track that stopped sounding.
func (s *Session) retire(i int) {
	t := s.tracks[i]
	if t == nil || s.retired[i] {
		return
	}
	s.retired[i] = true
	s.cur = max(s.cur, i)
	t.stop()
	ts := TrackStats{ID: t.ID, Wait: s.waits[i], Rendered: s.rendered[i], Skipped: s.skipped[i], Err: t.Err()}
	t.mu.Lock()
	p, pos, first, seeks := t.prep, t.pos, t.firstPCM, t.seeks
	t.mu.Unlock()
	ts.Seeks = seeks
	if p != nil {
		ts.Kbps = p.kbps
		ts.Fetched = p.fetched.Load()
		if !first.IsZero() {
			ts.FirstAudio = first.Sub(p.since)
		}
		ts.Played = playedBytes(p, pos, t.outRate)
		ts.Wasted = max(ts.Fetched-ts.Played, 0)
	}
	if ts.Err != nil {
		s.errs = append(s.errs, fmt.Errorf("%s: %w", t.ID, ts.Err))
	}
	s.stats = append(s.stats, ts)
}

// playedBytes is the seek table plus the audio bytes up to the end of the
// page holding output frame pos.
func playedBytes(p *prepared, pos int64, outRate int) int64 {
	tb := p.table
	in := pos * int64(tb.SampleRate) / int64(outRate)
	end := tb.FileSize
	if in < tb.Samples {
		for _, e := range tb.Entries {
			if e.Time > in {
				end = e.Offset
				break
			}
		}
	}
	if pos == 0 {
		end = 0
	}
	return end + p.seekLen
}

// finishAll retires tracks that were prepared or loaded but never played,
// so their bytes count as wasted.
func (s *Session) finishAll() {
	s.mu.Lock()
	jobs := make(map[int]*prepJob, len(s.prepping))
	for i, j := range s.prepping {
		jobs[i] = j
	}
	s.mu.Unlock()
	for i, j := range jobs {
		if s.retired[i] {
			continue
		}
		<-j.done
		ts := TrackStats{ID: s.queue[i], Err: j.err}
		if j.p != nil {
			ts.Kbps, ts.Fetched, ts.Wasted = j.p.kbps, j.p.fetched.Load(), j.p.fetched.Load()
		}
		s.stats = append(s.stats, ts)
	}
}

func (s *Session) report(i int) {
	r := s.p.cfg.Reporter
	if r == nil {
		return
	}
	t := s.tracks[i]
	var prep prepared
	t.mu.Lock()
	if t.prep != nil {
		prep.kbps, prep.playID, prep.ticket, prep.country, prep.authorized = t.prep.kbps, t.prep.playID, t.prep.ticket, t.prep.country, t.prep.authorized
	}
	t.mu.Unlock()
	ev := plays.Event{
		PlayID:   prep.playID,
		Ticket:   prep.ticket,
		UserID:   s.p.cfg.UserID,
		TrackID:  t.ID,
		Country:  cmp.Or(prep.country, s.p.cfg.Country),
		TierKbps: prep.kbps,
		MSPlayed: s.p.cfg.PlayThreshold.Milliseconds(),
		TS:       s.p.cfg.Now().UTC().Format(time.RFC3339Nano),
	}
	if !prep.authorized.IsZero() {
		// Rendering can run ahead of the wall clock (to a file); the
		// origin refuses a play longer than the time since its manifest,
		// so claim no more than that.
		ev.MSPlayed = min(ev.MSPlayed, time.Since(prep.authorized).Milliseconds())
	}
	if st := s.p.cfg.Offline; st != nil {
		// Offline: one of the licence's pre-issued plays, bound to the
		// licence's user and country.
		op, err := st.TakePlay(t.ID)
		if err != nil {
			s.p.log.Info("offline play not reportable", "track", t.ID, "err", err)
			return
		}
		ev.PlayID, ev.Ticket, ev.UserID, ev.Country = op.PlayID, op.Ticket, op.UserID, op.Country
	}
	if ev.PlayID == "" {
		// An origin that issues no play ids (a stand-in in tests).
		ev.PlayID = plays.NewPlayID()
	}
	if err := r.Enqueue(ev); err != nil {
		s.p.log.Warn("queueing a play event", "track", t.ID, "err", err)
		return
	}
	if s.p.cfg.Offline != nil {
		return // sent when next online
	}
	s.flushing.Go(func() {
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		defer cancel()
		if _, err := r.Flush(ctx); err != nil {
			s.p.log.Info("play events not sent yet", "err", err)
		}
	})
}
