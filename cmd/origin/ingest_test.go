package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/musiccdn/cdn/player/playertest"
)

func TestRunIngest(t *testing.T) {
	playertest.RequireOggenc(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "short-one.wav")
	if err := playertest.WriteSignal(src, 0, 22050); err != nil {
		t.Fatal(err)
	}
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
