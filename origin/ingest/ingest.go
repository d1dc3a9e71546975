// Package ingest turns a source audio file (WAV or FLAC; anything else
// through ffmpeg when it is installed) into a track of the directory
// catalog: the five Ogg Vorbis tiers encoded with oggenc (Debian package
// vorbis-tools), a seek table per tier, and track.json.
//
// Layout of a track in the catalog root:
//
//	<root>/<id>/<kbps>.ogg    Ogg Vorbis, pages of at most Config.PageSpan
//	<root>/<id>/<kbps>.seek   seek table (package seektable)
//	<root>/<id>/track.json    {"duration_ms","samples","sample_rate","tiers",
//	                           "tier_rates", "embedding"?}
//
// Everything is built in a staging directory inside the root (its name
// starts with a dot, which is not a valid track id, so catalogs ignore it)
// and renamed into place, so a failed or interrupted ingest leaves nothing
// half-written under a track id. Re-ingesting an id replaces the track.
//
// libvorbis refuses the lowest bitrates at 44.1 kHz stereo; a tier whose
// encoding fails that way is re-encoded resampled to 22050 Hz mono, so
// players must resample tiers to their output rate (track.json records
// each tier's rate in "tier_rates").
package ingest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/vorbis"
)

// EmbedFunc computes a content embedding from mono PCM in [-1, 1].
type EmbedFunc func(pcm []float32, sampleRate int) []float32

// Config configures an Ingester.
type Config struct {
	// Catalog is the root directory of the directory catalog. Required.
	Catalog string
	// OggEnc is the oggenc binary. Default "oggenc".
	OggEnc string
	// FFmpeg converts formats oggenc cannot read. Default "ffmpeg"; when it
	// is not installed only WAV and FLAC are accepted.
	FFmpeg string
	// PageSpan bounds the audio span of an Ogg page, so the seek table has
	// an entry at least this often, plus one packet: a page is closed at
	// the first packet boundary past the span, so gaps reach PageSpan and
	// a packet's audio (296 ms was measured with the default). Default
	// 250ms; must be at most 1s.
	PageSpan time.Duration
	// Parallel is how many tiers are encoded at once. Default 2.
	Parallel int
	// Embed, when set, computes the track's embedding stored in track.json.
	Embed EmbedFunc
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the defaults for a catalog root.
func DefaultConfig(catalog string) Config {
	return Config{Catalog: catalog, OggEnc: "oggenc", FFmpeg: "ffmpeg", PageSpan: 250 * time.Millisecond, Parallel: 2}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Catalog == "" {
		return errors.New("ingest: no catalog directory")
	}
	if c.OggEnc == "" {
		return errors.New("ingest: no oggenc binary")
	}
	if c.PageSpan <= 0 || c.PageSpan > time.Second {
		return fmt.Errorf("ingest: page span %v: want (0, 1s]", c.PageSpan)
	}
	if c.Parallel <= 0 {
		return fmt.Errorf("ingest: parallel %d: want > 0", c.Parallel)
	}
	return nil
}

// Meta is the content of track.json: media's one schema, which the
// origin reads back.
type Meta = catalog.TrackInfo

// Ingester adds tracks to a directory catalog.
type Ingester struct {
	cfg Config
	log *slog.Logger
}

// New returns an ingester. It fails if oggenc is not installed.
func New(cfg Config) (*Ingester, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if _, err := exec.LookPath(cfg.OggEnc); err != nil {
		return nil, fmt.Errorf("ingest: encoder %q not found (install the Debian package vorbis-tools): %w", cfg.OggEnc, err)
	}
	// A new catalog starts empty: create its root.
	if err := os.MkdirAll(cfg.Catalog, 0o755); err != nil {
		return nil, fmt.Errorf("ingest: catalog %s: %w", cfg.Catalog, err)
	}
	if fi, err := os.Stat(cfg.Catalog); err != nil || !fi.IsDir() {
		if err == nil {
			err = errors.New("not a directory")
		}
		return nil, fmt.Errorf("ingest: catalog %s: %w", cfg.Catalog, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Ingester{cfg: cfg, log: log}, nil
}

// Ingest encodes the source file into the catalog as track id and returns
// its metadata.
func (in *Ingester) Ingest(ctx context.Context, id, src string) (Meta, error) {
	if !catalog.ValidID(id) {
		return Meta{}, fmt.Errorf("ingest: track id %q: want 1 to %d characters of [A-Za-z0-9_-]", id, catalog.MaxIDLen)
	}
	f, err := os.Open(src)
	if err != nil {
		return Meta{}, fmt.Errorf("ingest: %w", err)
	}
	var magic [12]byte
	n, _ := io.ReadFull(f, magic[:])
	f.Close()
	kind := sniff(magic[:n])
	if kind == "" {
		if _, err := exec.LookPath(in.cfg.FFmpeg); in.cfg.FFmpeg == "" || err != nil {
			return Meta{}, fmt.Errorf("ingest: %s: not a WAV or FLAC file, and ffmpeg is not installed to convert it", src)
		}
	}
	stage, err := os.MkdirTemp(in.cfg.Catalog, ".ingest-"+id+"-")
	if err != nil {
		return Meta{}, fmt.Errorf("ingest: %w", err)
	}
	defer os.RemoveAll(stage) // a no-op once renamed into place

	input := src
	if kind == "" {
		input = filepath.Join(stage, "source.wav")
		if err := in.run(ctx, in.cfg.FFmpeg, "-nostdin", "-loglevel", "error", "-i", src, "-f", "wav", input); err != nil {
			return Meta{}, fmt.Errorf("ingest: %s: ffmpeg: %w", src, err)
		}
	}

	tables := make(map[int]*paged)
	var mu sync.Mutex
	sem := make(chan struct{}, in.cfg.Parallel)
	errs := make(chan error, len(catalog.Tiers))
	var wg sync.WaitGroup
	for _, kbps := range catalog.Tiers {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			p, err := in.tier(ctx, stage, input, kbps)
			if err != nil {
				errs <- fmt.Errorf("ingest: %s: %d kbps: %w", src, kbps, err)
				return
			}
			mu.Lock()
			tables[kbps] = p
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	if err := errors.Join(slicesOf(errs)...); err != nil {
		return Meta{}, err
	}
	if input != src {
		os.Remove(input)
	}

	ref := tables[160].table
	m := Meta{
		DurationMS: ref.DurationMS(),
		Samples:    ref.Samples,
		SampleRate: ref.SampleRate,
		Tiers:      catalog.Tiers[:],
		TierRates:  make(map[string]int),
	}
	for kbps, p := range tables {
		m.TierRates[strconv.Itoa(kbps)] = p.table.SampleRate
	}
	if in.cfg.Embed != nil {
		pcm, rate, err := monoPCM(tables[160].ogg)
		if err != nil {
			return Meta{}, fmt.Errorf("ingest: %s: decoding for the embedding: %w", src, err)
		}
		m.Embedding = in.cfg.Embed(pcm, rate)
	}
	js, err := json.Marshal(m)
	if err != nil {
		return Meta{}, fmt.Errorf("ingest: %w", err)
	}
	if err := writeFile(filepath.Join(stage, catalog.TrackInfoFile), js); err != nil {
		return Meta{}, fmt.Errorf("ingest: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return Meta{}, fmt.Errorf("ingest: %w", err)
	}
	if err := in.publish(stage, id); err != nil {
		return Meta{}, fmt.Errorf("ingest: %s: %w", id, err)
	}
	in.log.Info("ingested", "track", id, "source", src, "duration_ms", m.DurationMS, "samples", m.Samples)
	return m, nil
}

// tier encodes one tier into the staging directory.
func (in *Ingester) tier(ctx context.Context, stage, input string, kbps int) (*paged, error) {
	raw := filepath.Join(stage, fmt.Sprintf("%d.raw.ogg", kbps))
	args := []string{"-Q", "-b", strconv.Itoa(kbps), "-o", raw, input}
	err := in.run(ctx, in.cfg.OggEnc, args...)
	rate := 0
	if err != nil && strings.Contains(err.Error(), "Mode initialisation failed") {
		// libvorbis has no mode for this bitrate at the source's rate and
		// channel count: halve both.
		args = append([]string{"--resample", "22050", "--downmix"}, args...)
		err = in.run(ctx, in.cfg.OggEnc, args...)
		rate = 22050
	}
	if err != nil {
		return nil, err
	}
	src, err := os.ReadFile(raw)
	if err != nil {
		return nil, err
	}
	os.Remove(raw)
	p, err := repaginate(src, in.cfg.PageSpan)
	if err != nil {
		return nil, fmt.Errorf("parsing oggenc output: %w", err)
	}
	if rate != 0 && p.table.SampleRate != rate {
		return nil, fmt.Errorf("oggenc wrote %d Hz, want %d", p.table.SampleRate, rate)
	}
	seek, err := p.table.MarshalBinary()
	if err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(stage, fmt.Sprintf("%d.ogg", kbps)), p.ogg); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(stage, fmt.Sprintf("%d.seek", kbps)), seek); err != nil {
		return nil, err
	}
	return p, nil
}

// publish renames the staging directory to <root>/<id>, moving an existing
// version aside first and deleting it after.
func (in *Ingester) publish(stage, id string) error {
	dst := filepath.Join(in.cfg.Catalog, id)
	var old string
	if _, err := os.Lstat(dst); err == nil {
		var b [6]byte
		rand.Read(b[:])
		old = filepath.Join(in.cfg.Catalog, ".replaced-"+id+"-"+hex.EncodeToString(b[:]))
		if err := os.Rename(dst, old); err != nil {
			return err
		}
	}
	if err := os.Rename(stage, dst); err != nil {
		if old != "" {
			os.Rename(old, dst)
		}
		return err
	}
	if d, err := os.Open(in.cfg.Catalog); err == nil {
		d.Sync()
		d.Close()
	}
	if old != "" {
		return os.RemoveAll(old)
	}
	return nil
}

func (in *Ingester) run(ctx context.Context, bin string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 400 {
			msg = msg[len(msg)-400:]
		}
		if msg != "" {
			return fmt.Errorf("%s: %w: %s", filepath.Base(bin), err, msg)
		}
		return fmt.Errorf("%s: %w", filepath.Base(bin), err)
	}
	return nil
}

// sniff names the container from its first bytes, or "" when oggenc
// cannot read it.
func sniff(b []byte) string {
	switch {
	case len(b) >= 12 && string(b[0:4]) == "RIFF" && string(b[8:12]) == "WAVE":
		return "wav"
	case len(b) >= 4 && string(b[0:4]) == "fLaC":
		return "flac"
	}
	return ""
}

func monoPCM(oggb []byte) ([]float32, int, error) {
	h, err := vorbis.ReadHeaders(bytes.NewReader(oggb))
	if err != nil {
		return nil, 0, err
	}
	s, err := vorbis.NewStream(h, bytes.NewReader(oggb[h.AudioStart:]), h.AudioStart)
	if err != nil {
		return nil, 0, err
	}
	ch := h.Channels
	buf := make([]float32, 4096*ch)
	var pcm []float32
	for {
		n, err := s.Read(buf)
		for i := 0; i+ch <= n; i += ch {
			var sum float32
			for c := range ch {
				sum += buf[i+c]
			}
			pcm = append(pcm, sum/float32(ch))
		}
		if err == io.EOF {
			return pcm, h.SampleRate, nil
		}
		if err != nil {
			return nil, 0, err
		}
	}
}

func writeFile(path string, b []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func slicesOf(ch <-chan error) []error {
	var errs []error
	for e := range ch {
		errs = append(errs, e)
	}
	return errs
}
