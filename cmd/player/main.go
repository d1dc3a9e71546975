// Command player plays tracks from the CDN into a WAV file or raw PCM on
// stdout, and downloads tracks for encrypted offline play.
//
//	player play --addr-file FILE [--user ID | --token JWT] [--crossfade D] [--max-kbps K] --out FILE.wav|- TRACK...
//	player play --offline [--addr-file FILE | --licence-key KEY] [--state DIR] --out FILE.wav|- TRACK...
//	player download --addr-file FILE [--user ID | --token JWT] [--max-kbps K] [--state DIR] TRACK...
//	player ttfa --addr-file FILE [--user ID | --token JWT] [--n 100] TRACK...
//
// ttfa measures time to first audio: it starts a session on each track in
// turn (n starts in all) and prints the p50, p95 and max.
//
// The addr file is what cmd/pop writes: {"origin": URL, "edges": [URL...],
// "users": [{"user_id", "country", "token"}...], "licence_key": base64};
// the player uses only the public URLs, origin and edges.
// The player acts as --user (a user of the addr file, default the first)
// or with --token (a bearer token from the identity provider). Offline
// licences are checked against --licence-key, else the addr file's
// licence_key: the key is configuration, never a file in --state trusted
// on first use.
// With --out - the output is signed 16-bit little-endian stereo at 44.1
// kHz, so `player play ... --out - t1 | aplay -f cd` plays it. Per track it
// prints the tier, the time to first audio and the bytes fetched.
package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/musiccdn/cdn/addrfile"
	"github.com/musiccdn/cdn/identity"
	"github.com/musiccdn/cdn/player"
	"github.com/musiccdn/cdn/player/offline"
	"github.com/musiccdn/cdn/player/plays"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		msg := err.Error()
		if !strings.HasPrefix(msg, "player: ") {
			msg = "player: " + msg
		}
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(1)
	}
}

const usage = `usage:
  player play --addr-file FILE [--user ID | --token JWT] [--crossfade D] [--max-kbps K] --out FILE.wav|- TRACK...
  player play --offline [--addr-file FILE | --licence-key KEY] [--state DIR] --out FILE.wav|- TRACK...
  player download --addr-file FILE [--user ID | --token JWT] [--max-kbps K] [--state DIR] TRACK...
  player ttfa --addr-file FILE [--user ID | --token JWT] [--n 100] TRACK...`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("player "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addrFile := fs.String("addr-file", "", "JSON file with the origin and edge URLs (cmd/pop --addr-file)")
	token := fs.String("token", "", "bearer token from the identity provider (default: --user's from the addr file)")
	licenceKey := fs.String("licence-key", "", "base64 Ed25519 public key offline licences must be signed with (default: the addr file's licence_key)")
	crossfade := fs.Duration("crossfade", 0, "crossfade between tracks (0 to 12s; 0 is gapless)")
	maxKbps := fs.Int("max-kbps", 0, "highest tier to use (0: no limit)")
	out := fs.String("out", "", "output WAV file, or - for raw s16le stereo 44.1 kHz on stdout")
	off := fs.Bool("offline", false, "play from downloads only")
	user := fs.String("user", "", "user of the addr file to act as (default: the first)")
	device := fs.String("device", "cli", "device id for licences")
	state := fs.String("state", defaultState(), "directory for downloads and queued play events")
	starts := fs.Int("n", 100, "ttfa: number of starts")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tracks := fs.Args()
	if len(tracks) == 0 {
		return errors.New(usage)
	}
	var a addrfile.File // the player uses only the public URLs, users and licence key
	if *addrFile != "" {
		b, err := os.ReadFile(*addrFile)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &a); err != nil {
			return fmt.Errorf("%s: %w", *addrFile, err)
		}
	}
	cfg := player.DefaultConfig(a.Origin, a.Edges)
	cfg.Crossfade, cfg.MaxKbps, cfg.DeviceID = *crossfade, *maxKbps, *device
	if tok, err := pickToken(a, *user, *token); err != nil {
		return err
	} else if tok != "" {
		u, err := identity.Peek(tok)
		if err != nil {
			return fmt.Errorf("--token: %w", err)
		}
		cfg.Token, cfg.UserID, cfg.Country = tok, u.ID, u.Country
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	pub, err := pinnedKey(*licenceKey, a.LicenceKey)
	if err != nil {
		return err
	}
	rep, err := plays.NewReporter(plays.ReporterConfig{Origin: a.Origin, Dir: filepath.Join(*state, "plays"), Token: cfg.Token})
	if err != nil {
		return err
	}
	cfg.Reporter = rep

	switch cmd {
	case "download":
		if *addrFile == "" {
			return errors.New("download needs --addr-file")
		}
		p, err := player.New(cfg)
		if err != nil {
			return err
		}
		store, err := openStore(pub, *state)
		if err != nil {
			return err
		}
		for _, t := range tracks {
			kbps, n, err := p.Download(ctx, store, t)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s\t%d kbps\t%d bytes\tencrypted in %s\n", t, kbps, n, filepath.Join(*state, "offline"))
		}
		// events queued while offline go out now
		if _, err := rep.Flush(ctx); err != nil {
			fmt.Fprintln(stderr, "play events stay queued:", err)
		}
		return nil
	case "ttfa":
		if *addrFile == "" {
			return errors.New("ttfa needs --addr-file")
		}
		cfg.Reporter = nil
		p, err := player.New(cfg)
		if err != nil {
			return err
		}
		return ttfa(ctx, p, tracks, *starts, stdout)
	case "play":
	default:
		return errors.New(usage)
	}
	if *out == "" {
		return errors.New("play needs --out FILE.wav or --out -")
	}
	if *off {
		store, err := openStore(pub, *state)
		if err != nil {
			return err
		}
		cfg.Offline = store
		cfg.Origin, cfg.Edges = "", nil
	} else if *addrFile == "" {
		return errors.New("play needs --addr-file (or --offline)")
	} else if _, err := rep.Flush(ctx); err != nil {
		fmt.Fprintln(stderr, "play events stay queued:", err)
	}
	p, err := player.New(cfg)
	if err != nil {
		return err
	}
	var sink player.Sink
	if *out == "-" {
		sink = player.NewRawSink(stdout)
	} else {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer f.Close()
		if sink, err = player.NewWAVSink(f, cfg.OutputRate); err != nil {
			return err
		}
	}
	s := p.Start(ctx, tracks)
	first, perr := player.Play(s, sink, 4096)
	cerr := s.Close()
	fmt.Fprintf(stderr, "time to first audio %v\n", first.Round(time.Microsecond))
	var wasted int64
	for _, st := range s.Stats() {
		line := fmt.Sprintf("%s\t%d kbps\tfirst audio %v\twaited %v\tfetched %d bytes\tunplayed %d bytes", st.ID, st.Kbps,
			st.FirstAudio.Round(time.Microsecond), st.Wait.Round(time.Microsecond), st.Fetched, st.Wasted)
		if st.Err != nil {
			line += "\terror: " + st.Err.Error()
		}
		fmt.Fprintln(stderr, line)
		wasted += st.Wasted
	}
	fmt.Fprintf(stderr, "bytes fetched but never played: %d\n", wasted)
	return errors.Join(perr, cerr)
}

func defaultState() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "musiccdn-player")
	}
	return ".musiccdn-player"
}

// openStore opens the download store, checking licences with the pinned
// key.
func openStore(pub ed25519.PublicKey, state string) (*offline.Store, error) {
	if pub == nil {
		return nil, errors.New("no licence key: give --licence-key or an addr file with licence_key")
	}
	return offline.NewStore(filepath.Join(state, "offline"), pub, time.Now)
}

// pinnedKey decodes the licence public key from the flag, else from the
// addr file; nil when neither has one.
func pinnedKey(flagKey, fileKey string) (ed25519.PublicKey, error) {
	k := flagKey
	if k == "" {
		k = fileKey
	}
	if k == "" {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(k)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("licence key: want the base64 of a %d-byte Ed25519 public key", ed25519.PublicKeySize)
	}
	return b, nil
}

// pickToken returns token if set, else the token of the addr file's user
// named user (the first user when user is empty), else "".
func pickToken(a addrfile.File, user, token string) (string, error) {
	if token != "" {
		return token, nil
	}
	for _, u := range a.Users {
		if user == "" || u.UserID == user {
			return u.Token, nil
		}
	}
	if user != "" {
		return "", fmt.Errorf("--user %q: not in the addr file", user)
	}
	return "", nil
}

// ttfa starts n sessions, one track each, and prints the distribution of
// the wall time to the first rendered frame.
func ttfa(ctx context.Context, p *player.Player, tracks []string, n int, stdout io.Writer) error {
	if n <= 0 {
		return errors.New("ttfa: --n must be positive")
	}
	buf := make([]float32, 2*1024)
	all := make([]time.Duration, 0, n)
	for i := range n {
		start := time.Now()
		s := p.Start(ctx, []string{tracks[i%len(tracks)]})
		k, err := s.Render(buf)
		d := time.Since(start)
		cerr := s.Close()
		if k == 0 {
			return fmt.Errorf("ttfa: %s: no audio: %w", tracks[i%len(tracks)], errors.Join(err, cerr))
		}
		all = append(all, d)
	}
	slices.Sort(all)
	q := func(f float64) time.Duration { return all[int(f*float64(len(all)-1))].Round(time.Microsecond) }
	fmt.Fprintf(stdout, "time to first audio over %d starts: p50 %v p95 %v max %v\n", n, q(0.5), q(0.95), all[len(all)-1].Round(time.Microsecond))
	return nil
}
