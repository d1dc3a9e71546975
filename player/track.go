package player

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/musiccdn/cdn/player/offline"
	"github.com/musiccdn/cdn/seektable"
	"github.com/musiccdn/cdn/vorbis"
)

// prepared is what is needed to start decoding a track: the tier, its seek
// table and the first bytes of the file (at least the headers). Prefetch
// makes it ahead of time; loading a track starts from it.
type prepared struct {
	id    string
	kbps  int
	size  int64
	table *seektable.Table
	hdr   *vorbis.Headers
	head  []byte
	// open returns the file from off to its end: the head from memory,
	// the rest with one range request.
	open    func(ctx context.Context, off int64) (io.ReadCloser, error)
	fetched atomic.Int64 // bytes fetched over the network for this track
	seekLen int64        // bytes of the seek table
	since   time.Time    // when preparing began
	// The manifest's play id and ticket, the country the origin applied
	// and when the manifest arrived (online only): the play's report
	// carries them, and may not claim more play than time since then.
	playID, ticket, country string
	authorized              time.Time
	// samples is the track's exact length in frames at sampleRate, from
	// the manifest (or the offline store); 0 when unknown, and then the
	// tier's own count is used, which a resampled tier may round up.
	samples    int64
	sampleRate int
}

// frames is the track's length in output frames at outRate: the exact
// count of the source when known, so gapless output is exact at every
// tier (the 24 kbps tier is encoded at 22050 Hz, and its encoder rounds
// an odd source length up by a frame).
func (p *prepared) frames(outRate int) int64 {
	if p.samples > 0 && p.sampleRate > 0 {
		return p.samples * int64(outRate) / int64(p.sampleRate)
	}
	return p.table.Samples * int64(outRate) / int64(p.table.SampleRate)
}

func prepareOnline(ctx context.Context, c *client, id string, maxKbps int, buffer time.Duration, head time.Duration, next string) (*prepared, error) {
	p := &prepared{id: id, since: time.Now()}
	m, err := c.manifest(ctx, id)
	if err != nil {
		return nil, err
	}
	p.playID, p.ticket, p.country, p.authorized = m.PlayID, m.PlayTicket, m.Country, time.Now()
	p.samples, p.sampleRate = m.Samples, m.SampleRate
	kbps := c.choose(buffer)
	if maxKbps > 0 {
		kbps = min(kbps, maxKbps)
	}
	tier := pickTier(m.Tiers, kbps)
	if tier.SeekURL == "" {
		return nil, fmt.Errorf("player: %s: no seek table for %d kbps", id, tier.Kbps)
	}
	p.kbps, p.size = tier.Kbps, tier.Bytes
	sb, err := c.getAll(ctx, id, tier.SeekURL, next, &p.fetched)
	if err != nil {
		return nil, err
	}
	p.seekLen = int64(len(sb))
	if p.table, err = seektable.Decode(sb); err != nil {
		return nil, fmt.Errorf("player: %s: %w", id, err)
	}
	if p.size <= 0 {
		p.size = p.table.FileSize
	}
	n := min(p.table.AudioStart+int64(head.Seconds()*float64(p.kbps)*1000/8), p.size)
	rc, err := c.get(ctx, id, tier.URL, 0, n, next, &p.fetched)
	if err != nil {
		return nil, err
	}
	p.head, err = io.ReadAll(io.LimitReader(rc, n))
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("player: %s: %w", id, err)
	}
	if p.hdr, err = vorbis.ReadHeaders(bytes.NewReader(p.head)); err != nil {
		return nil, fmt.Errorf("player: %s: %w", id, err)
	}
	var mu sync.Mutex
	url := tier.URL
	// get fetches from off; on a 403 (the signed URL expired during a
	// long session) it asks for a fresh manifest and retries once with
	// the same tier's new URL.
	get := func(ctx context.Context, off int64) (io.ReadCloser, error) {
		mu.Lock()
		u := url
		mu.Unlock()
		rc, err := c.get(ctx, id, u, off, -1, next, &p.fetched)
		if !errors.Is(err, errForbidden) {
			return rc, err
		}
		m, merr := c.manifest(ctx, id)
		if merr != nil {
			return nil, err
		}
		for _, t := range m.Tiers {
			if t.Kbps == p.kbps && t.Bytes == p.size {
				mu.Lock()
				url = t.URL
				mu.Unlock()
				return c.get(ctx, id, t.URL, off, -1, next, &p.fetched)
			}
		}
		return nil, err
	}
	p.open = func(ctx context.Context, off int64) (io.ReadCloser, error) {
		if off >= int64(len(p.head)) {
			return get(ctx, off)
		}
		rest := &lazyRange{open: func() (io.ReadCloser, error) {
			if int64(len(p.head)) >= p.size {
				return io.NopCloser(bytes.NewReader(nil)), nil
			}
			return get(ctx, int64(len(p.head)))
		}}
		return struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(p.head[off:]), rest), rest}, nil
	}
	return p, nil
}

// pickTier returns the highest tier not above kbps, or the lowest.
func pickTier(tiers []ManifestTier, kbps int) ManifestTier {
	best := tiers[0]
	for _, t := range tiers {
		if t.Kbps < best.Kbps {
			best = t
		}
	}
	for _, t := range tiers {
		if t.Kbps <= kbps && t.Kbps > best.Kbps {
			best = t
		}
	}
	return best
}

func prepareOffline(tr *offline.Track) (*prepared, error) {
	p := &prepared{id: tr.ID, kbps: tr.Kbps, size: tr.Size(), table: tr.Table, since: time.Now(), samples: tr.Samples, sampleRate: tr.SampleRate}
	p.head = make([]byte, tr.Table.AudioStart)
	if _, err := tr.ReadAt(p.head, 0); err != nil {
		return nil, err
	}
	var err error
	if p.hdr, err = vorbis.ReadHeaders(bytes.NewReader(p.head)); err != nil {
		return nil, fmt.Errorf("player: %s: %w", tr.ID, err)
	}
	p.open = func(_ context.Context, off int64) (io.ReadCloser, error) {
		return io.NopCloser(io.NewSectionReader(tr, off, p.size-off)), nil
	}
	return p, nil
}

// lazyRange issues its request on the first Read, so a track played from
// prefetched bytes only asks for the rest when the decoder gets there.
type lazyRange struct {
	open func() (io.ReadCloser, error)
	rc   io.ReadCloser
	err  error
}

func (l *lazyRange) Read(p []byte) (int, error) {
	if l.rc == nil && l.err == nil {
		l.rc, l.err = l.open()
	}
	if l.err != nil {
		return 0, l.err
	}
	return l.rc.Read(p)
}

func (l *lazyRange) Close() error {
	if l.rc != nil {
		return l.rc.Close()
	}
	return nil
}

// Track is one queue entry being played: a loader goroutine fetches and
// decodes into a bounded buffer of output frames, which the mixer reads
// without blocking (it implements mix.Source).
type Track struct {
	ID      string
	outRate int
	ahead   int64         // most frames buffered ahead of the mixer
	notify  chan struct{} // the session's progress signal
	space   chan struct{} // the mixer made room

	mu       sync.Mutex
	prep     *prepared
	total    int64 // output frames; -1 until prepared
	buf      []float32
	pos      int64 // output frame the mixer reads next
	eof      bool
	err      error
	gen      int
	cancel   context.CancelFunc
	firstPCM time.Time
	seeks    int
}

func newTrack(id string, outRate int, ahead int64, notify chan struct{}) *Track {
	return &Track{ID: id, outRate: outRate, ahead: ahead, notify: notify, space: make(chan struct{}, 1), total: -1}
}

// begin attaches the prepared file and starts decoding from frame 0.
func (t *Track) begin(ctx context.Context, p *prepared) {
	t.mu.Lock()
	t.prep = p
	t.total = p.frames(t.outRate)
	t.mu.Unlock()
	t.startAt(ctx, 0)
}

// fail ends the track with an error (it then reads as finished).
func (t *Track) fail(err error) {
	t.mu.Lock()
	t.err, t.eof = err, true
	t.mu.Unlock()
	poke(t.notify)
}

// startAt (re)starts the loader at output frame at.
func (t *Track) startAt(ctx context.Context, at int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cancel != nil {
		t.cancel()
	}
	t.gen++
	t.buf, t.pos, t.eof, t.err = nil, at, false, nil
	lctx, cancel := context.WithCancel(ctx)
	t.cancel = cancel
	go t.load(lctx, t.gen, t.prep, at, t.total)
}

// Seek moves playback to d from the start of the track with one range
// request from the seek table's page, decoding to the exact sample.
func (t *Track) seek(ctx context.Context, d time.Duration) error {
	t.mu.Lock()
	if t.prep == nil {
		t.mu.Unlock()
		return errors.New("player: seek before the track is loaded")
	}
	at := min(max(int64(d.Seconds()*float64(t.outRate)+0.5), 0), t.total)
	t.seeks++
	t.mu.Unlock()
	t.startAt(ctx, at)
	return nil
}

func (t *Track) load(ctx context.Context, gen int, p *prepared, at, total int64) {
	err := t.decode(ctx, gen, p, at, total)
	t.mu.Lock()
	if gen == t.gen {
		t.eof = true
		if err != nil && ctx.Err() == nil {
			t.err = err
		}
	}
	t.mu.Unlock()
	poke(t.notify)
}

func (t *Track) decode(ctx context.Context, gen int, p *prepared, at, total int64) error {
	tb := p.table
	rs := newResampler(tb.SampleRate, t.outRate, tb.Channels, at)
	in := rs.inputStart()
	off := tb.AudioStart
	if in > 0 {
		e, _ := tb.Lookup(in)
		off = e.Offset
	}
	rc, err := p.open(ctx, off)
	if err != nil {
		return err
	}
	defer rc.Close()
	st, err := vorbis.NewStream(p.hdr, rc, off)
	if err != nil {
		return err
	}
	if err := st.Skip(in + tb.Origin); err != nil && err != io.EOF {
		return err
	}
	pcm := make([]float32, 4096*tb.Channels)
	var out []float32
	for {
		n, err := st.Read(pcm)
		out = rs.push(out[:0], pcm[:n])
		if err == io.EOF {
			out = rs.finish(out, total)
		}
		if !t.push(ctx, gen, out, total) {
			return ctx.Err()
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// push appends frames, waiting while the buffer is full. It reports false
// when the loader is stale or cancelled.
func (t *Track) push(ctx context.Context, gen int, frames []float32, total int64) bool {
	for len(frames) > 0 {
		t.mu.Lock()
		if gen != t.gen {
			t.mu.Unlock()
			return false
		}
		end := t.pos + int64(len(t.buf)/2)
		room := t.ahead - int64(len(t.buf)/2)
		if room <= 0 {
			t.mu.Unlock()
			select {
			case <-t.space:
				continue
			case <-ctx.Done():
				return false
			}
		}
		k := min(int64(len(frames)/2), room, max(total-end, 0))
		if k == 0 {
			t.mu.Unlock()
			return true // past the track's length: drop
		}
		if len(t.buf) == 0 {
			t.buf = t.buf[:0:0]
		}
		t.buf = append(t.buf, frames[:2*k]...)
		if t.firstPCM.IsZero() {
			t.firstPCM = time.Now()
		}
		t.mu.Unlock()
		poke(t.notify)
		frames = frames[2*k:]
	}
	return ctx.Err() == nil
}

// Read implements mix.Source.
func (t *Track) Read(p []float32) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.buf) == 0 {
		if t.eof {
			return 0, io.EOF
		}
		return 0, nil
	}
	n := copy(p[:len(p)/2*2], t.buf)
	t.buf = t.buf[n:]
	t.pos += int64(n / 2)
	poke(t.space)
	return n / 2, nil
}

// ready reports whether the track has frames buffered or has ended.
func (t *Track) ready() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.buf) > 0 || t.eof
}

// Remaining implements mix.Source.
func (t *Track) Remaining() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.total < 0 {
		return -1
	}
	return max(t.total-t.pos, 0)
}

// Err returns the error that ended the track early, if any.
func (t *Track) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

func (t *Track) stop() {
	t.mu.Lock()
	if t.cancel != nil {
		t.cancel()
	}
	t.gen++
	t.mu.Unlock()
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
