package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/musiccdn/cdn/player/playertest"
	"github.com/musiccdn/cdn/player/wav"
)

func TestPlayDownloadOffline(t *testing.T) {
	playertest.RequireOggenc(t)
	dir := t.TempDir()
	cat := filepath.Join(dir, "catalog")
	lengths := []int{44100 + 500, 30000}
	if err := playertest.Catalog(context.Background(), cat, []string{"a", "b"}, lengths); err != nil {
		t.Fatal(err)
	}
	srv := playertest.NewServer(t, cat)
	defer srv.Close()
	addr := filepath.Join(dir, "addr.json")
	b, _ := json.Marshal(map[string]any{"origin": srv.URL, "edges": []string{srv.URL}, "shields": []string{},
		"users":       []map[string]string{{"user_id": srv.UserID, "country": "SE", "token": srv.Token}},
		"licence_key": base64.StdEncoding.EncodeToString(srv.Licence.PublicKey())})
	os.WriteFile(addr, b, 0o644)
	state := filepath.Join(dir, "state")

	out := filepath.Join(dir, "out.wav")
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"play", "--addr-file", addr, "--state", state, "--max-kbps", "160", "--out", out, "a", "b"}, &stdout, &stderr); err != nil {
		t.Fatalf("play: %v\n%s", err, stderr.String())
	}
	f, _ := os.Open(out)
	pcm, rate, ch, err := wav.Read(f)
	f.Close()
	if err != nil || rate != 44100 || ch != 2 || len(pcm)/2 != lengths[0]+lengths[1] {
		t.Fatalf("out.wav: %d frames at %d Hz x %d (%v), want %d", len(pcm)/2, rate, ch, err, lengths[0]+lengths[1])
	}
	for _, want := range []string{"time to first audio", "a\t", "kbps", "fetched"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("play output lacks %q:\n%s", want, stderr.String())
		}
	}

	stdout.Reset()
	if err := run(context.Background(), []string{"ttfa", "--addr-file", addr, "--n", "5", "a", "b"}, &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), "p95") {
		t.Fatalf("ttfa: %v: %s", err, stdout.String())
	}

	// raw PCM on stdout
	stdout.Reset()
	if err := run(context.Background(), []string{"play", "--addr-file", addr, "--state", state, "--out", "-", "b"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if stdout.Len() != lengths[1]*4 {
		t.Errorf("raw output %d bytes, want %d", stdout.Len(), lengths[1]*4)
	}

	// download, then play offline with the server gone
	stdout.Reset()
	if err := run(context.Background(), []string{"download", "--addr-file", addr, "--state", state, "--max-kbps", "96", "a"}, &stdout, &stderr); err != nil {
		t.Fatalf("download: %v\n%s", err, stderr.String())
	}
	srv.Close()
	off := filepath.Join(dir, "off.wav")
	// Offline, licences are checked against the pinned key: another key
	// (as an attacker would put in place, with licences signed by it)
	// refuses the download's licence.
	otherKey, _, _ := ed25519.GenerateKey(nil)
	if err := run(context.Background(), []string{"play", "--offline", "--state", state, "--licence-key", base64.StdEncoding.EncodeToString(otherKey), "--out", off, "a"}, &stdout, &stderr); err == nil {
		t.Fatal("offline play with another pinned key succeeded")
	}
	if err := run(context.Background(), []string{"play", "--offline", "--state", state, "--out", off, "a"}, &stdout, &stderr); err == nil {
		t.Fatal("offline play with no pinned key succeeded")
	}
	if err := run(context.Background(), []string{"play", "--offline", "--addr-file", addr, "--state", state, "--out", off, "a"}, &stdout, &stderr); err != nil {
		t.Fatalf("offline play: %v\n%s", err, stderr.String())
	}
	f, _ = os.Open(off)
	pcm, _, _, err = wav.Read(f)
	f.Close()
	if err != nil || len(pcm)/2 != lengths[0] {
		t.Fatalf("offline out: %d frames (%v), want %d", len(pcm)/2, err, lengths[0])
	}
	if err := run(context.Background(), []string{"play", "--offline", "--addr-file", addr, "--state", state, "--out", off, "b"}, &stdout, &stderr); err == nil {
		t.Error("offline play of a track not downloaded succeeded")
	}
}
