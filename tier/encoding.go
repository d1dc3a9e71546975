package tier

import (
	"bytes"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// chooseEncoding picks "zstd" or "gzip" from an Accept-Encoding value
// (RFC 9110 §12.5.3), preferring zstd, or "" for identity. A coding with
// q=0 is refused.
func chooseEncoding(accept []byte) string {
	if len(accept) == 0 {
		return ""
	}
	zq, gq := -1.0, -1.0
	for _, part := range strings.Split(string(accept), ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "zstd":
			zq = q
		case "gzip", "x-gzip":
			gq = q
		case "*":
			if zq < 0 {
				zq = q
			}
		}
	}
	switch {
	case zq > 0 && zq >= gq:
		return "zstd"
	case gq > 0:
		return "gzip"
	}
	return ""
}

// compressor compresses whole small objects; one per server.
type compressor struct {
	zstdOnce sync.Once
	zstd     *zstd.Encoder
	gz       sync.Pool // of *gzip.Writer
}

func (c *compressor) compress(enc string, b []byte) ([]byte, error) {
	if enc == "zstd" {
		c.zstdOnce.Do(func() { c.zstd, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1)) })
		return c.zstd.EncodeAll(b, make([]byte, 0, len(b)/2)), nil
	}
	var buf bytes.Buffer
	w, _ := c.gz.Get().(*gzip.Writer)
	if w == nil {
		w = gzip.NewWriter(nil)
	}
	defer c.gz.Put(w)
	w.Reset(&buf)
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
