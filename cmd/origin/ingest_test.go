package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/musiccdn/cdn/player/playertest"
	"github.com/musiccdn/cdn/player/wav"
)

func TestRunIngest(t *testing.T) {
	playertest.RequireOggenc(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "short-one.wav")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := wav.NewWriter(f, 44100, 2)
	if err := w.Write(make([]float32, 2*22050)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	f.Close()
	var out bytes.Buffer
	if err := runIngest(context.Background(), []string{"--catalog", dir, src}, &out, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "short-one\t") {
		t.Errorf("runIngest printed %q, want the track id", out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "short-one", "320.seek")); err != nil {
		t.Error(err)
	}
	if err := runIngest(context.Background(), []string{src}, &out, nil); err == nil {
		t.Error("runIngest without --catalog succeeded")
	}
}
