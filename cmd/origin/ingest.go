package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/musiccdn/cdn/origin/ingest"
)

// runIngest is the command line `origin ingest --catalog DIR [--id ID]
// FILE...`: it ingests each file, naming the track after the file without
// its extension unless --id is given (only with one file), with embed
// (the recommendations service's) computing each track's embedding, and
// prints each id when done.
func runIngest(ctx context.Context, args []string, stdout io.Writer, embed ingest.EmbedFunc) error {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	fs.SetOutput(stdout)
	catalog := fs.String("catalog", "", "catalog root directory (required)")
	id := fs.String("id", "", "track id (default: the file name without extension; one file only)")
	oggenc := fs.String("oggenc", "oggenc", "oggenc binary")
	if err := fs.Parse(args); err != nil {
		return err
	}
	files := fs.Args()
	if *catalog == "" || len(files) == 0 {
		return errors.New("usage: ingest --catalog DIR [--id ID] FILE...")
	}
	if *id != "" && len(files) > 1 {
		return errors.New("ingest: --id with more than one file")
	}
	cfg := ingest.DefaultConfig(*catalog)
	cfg.OggEnc = *oggenc
	cfg.Embed = embed
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	in, err := ingest.New(cfg)
	if err != nil {
		return err
	}
	for _, f := range files {
		tid := *id
		if tid == "" {
			tid = strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))
		}
		m, err := in.Ingest(ctx, tid, f)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\t%d ms\n", tid, m.DurationMS)
	}
	return nil
}
