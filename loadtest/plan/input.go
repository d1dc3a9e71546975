package plan

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// ParseBitRate reads a throughput in bit/s: a number with an optional
// unit bps, kbps, Mbps, Gbps or Tbps (powers of 1000), e.g. "9.4Gbps".
func ParseBitRate(s string) (float64, error) {
	t := strings.TrimSpace(s)
	mult := 1.0
	for _, u := range []struct {
		suffix string
		m      float64
	}{{"Tbps", 1e12}, {"Gbps", 1e9}, {"Mbps", 1e6}, {"kbps", 1e3}, {"bps", 1}} {
		if v, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(v), u.m
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || !(v >= 0) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("bad bit rate %q: want a number with bps, kbps, Mbps, Gbps or Tbps", s)
	}
	return v * mult, nil
}

// ReadBenchFile reads the throughput of a wrk report (bench/out/wrk-edge.txt,
// written by bench/vs-nginx.sh): its "Transfer/sec: 1.23GB" line, in bit/s.
func ReadBenchFile(path string) (float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("plan: bench file: %w", err)
	}
	v, err := ParseWrk(b)
	if err != nil {
		return 0, fmt.Errorf("plan: bench file %s: %w", path, err)
	}
	return v, nil
}

// ParseWrk finds wrk's "Transfer/sec:" line and returns it in bit/s
// (wrk's units are powers of 1024 bytes).
func ParseWrk(b []byte) (float64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		rest, ok := strings.CutPrefix(line, "Transfer/sec:")
		if !ok {
			continue
		}
		rest = strings.TrimSpace(rest)
		mult := 1.0
		for _, u := range []struct {
			suffix string
			m      float64
		}{{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"B", 1}} {
			if v, ok := strings.CutSuffix(rest, u.suffix); ok {
				rest, mult = v, u.m
				break
			}
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil || !(v > 0) || math.IsInf(v, 0) {
			return 0, fmt.Errorf("bad Transfer/sec line %q", line)
		}
		return v * mult * 8, nil
	}
	return 0, errors.New("no Transfer/sec line (not a wrk report?)")
}

// ReadPopularityCSV reads play counts: one track per row, the count in
// the last column; a first row whose count is not a number is a header.
func ReadPopularityCSV(path string) ([]float64, error) {
	return readFile("popularity_csv", path, ParsePopularity)
}

// readFile parses the file at path with parse. Errors name what the file
// is for (a flag or a field) and, once it is open, its path.
func readFile[T any](what, path string, parse func(io.Reader) (T, error)) (T, error) {
	var zero T
	f, err := os.Open(path)
	if err != nil {
		return zero, fmt.Errorf("plan: %s: %w", what, err)
	}
	defer f.Close()
	v, err := parse(f)
	if err != nil {
		return zero, fmt.Errorf("plan: %s %s: %w", what, path, err)
	}
	return v, nil
}

// ParsePopularity parses a popularity CSV (see ReadPopularityCSV).
func ParsePopularity(r io.Reader) ([]float64, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	var out []float64
	for row := 1; ; row++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(rec) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rec[len(rec)-1]), 64)
		if err != nil || !(v >= 0) || math.IsInf(v, 0) {
			if row == 1 {
				continue // header
			}
			return nil, fmt.Errorf("row %d: count %q is not a non-negative number", row, rec[len(rec)-1])
		}
		out = append(out, v)
	}
	if len(out) < 2 {
		return nil, errors.New("fewer than two tracks")
	}
	return out, nil
}
