package config

import (
	"math"
	"testing"
	"time"
)

// parseCase is a row of a parser's table: in parses to want when ok,
// and is refused otherwise.
type parseCase[T any] struct {
	in   string
	want T
	ok   bool
}

// checkParse checks parse, called name in messages, against tests.
func checkParse[T comparable](t *testing.T, name string, parse func(string) (T, error), tests []parseCase[T]) {
	t.Helper()
	for _, tt := range tests {
		got, err := parse(tt.in)
		if tt.ok && (err != nil || got != tt.want) {
			t.Errorf("%s(%q) = %v, %v, want %v", name, tt.in, got, err, tt.want)
		}
		if !tt.ok && err == nil {
			t.Errorf("%s(%q) = %v, want an error", name, tt.in, got)
		}
	}
}

// stringCase is a row of a formatter's table: in formats as want.
type stringCase[T any] struct {
	in   T
	want string
}

// checkString checks that format gives each row's want, and that parse
// reads want back as in.
func checkString[T comparable](t *testing.T, format func(T) string, parse func(string) (T, error), tests []stringCase[T]) {
	t.Helper()
	for _, tt := range tests {
		if got := format(tt.in); got != tt.want {
			t.Errorf("%v formats as %q, want %q", tt.in, got, tt.want)
		}
		if back, err := parse(tt.want); err != nil || back != tt.in {
			t.Errorf("parsing %q = %v, %v, want %v", tt.want, back, err, tt.in)
		}
	}
}

func TestParseSize(t *testing.T) {
	checkParse(t, "ParseSize", ParseSize, []parseCase[Size]{
		{"0", 0, true},
		{"4096", 4096, true},
		{"4096B", 4096, true},
		{"256KiB", 256 << 10, true},
		{"1MiB", 1 << 20, true},
		{"2GiB", 2 << 30, true},
		{"1TiB", 1 << 40, true},
		{"64KB", 64000, true},
		{"10MB", 10e6, true},
		{"1GB", 1e9, true},
		{"3TB", 3e12, true},
		{" 256 KiB ", 256 << 10, true},
		{"9223372036854775807", math.MaxInt64, true},
		{"8388607TiB", 8388607 << 40, true},
		{"8388608TiB", 0, false}, // 2^63: one past MaxInt64
		{"9223372036854775808", 0, false},
		{"-1", 0, false},
		{"-1KiB", 0, false},
		{"+1", 0, false},
		{"1.5MiB", 0, false},
		{"1e3", 0, false},
		{"0x10", 0, false},
		{"1kib", 0, false},
		{"1 K", 0, false},
		{"KiB", 0, false},
		{"", 0, false},
		{"B", 0, false},
	})
}

func TestSizeString(t *testing.T) {
	checkString(t, Size.String, ParseSize, []stringCase[Size]{
		{0, "0"},
		{1, "1"},
		{4097, "4097"},
		{4096, "4KiB"},
		{1 << 20, "1MiB"},
		{3 << 30, "3GiB"},
		{1 << 40, "1TiB"},
		{1536, "1536"}, // 1.5KiB is not a whole number of KiB
		{64000, "64KB"},
		{1e6, "1MB"},
		{2e12, "2TB"},
	})
}

// parseDuration is ParseDuration giving a time.Duration, so that tables
// can be written in time's constants.
func parseDuration(s string) (time.Duration, error) {
	d, err := ParseDuration(s)
	return time.Duration(d), err
}

func TestParseDuration(t *testing.T) {
	checkParse(t, "ParseDuration", parseDuration, []parseCase[time.Duration]{
		{"0", 0, true},
		{"250ms", 250 * time.Millisecond, true},
		{"10s", 10 * time.Second, true},
		{"1m30s", 90 * time.Second, true},
		{"6h", 6 * time.Hour, true},
		{" 2s ", 2 * time.Second, true},
		{"10", 0, false},
		{"-1s", 0, false},
		{"1d", 0, false},
		{"", 0, false},
		{"soon", 0, false},
	})
}

func TestDurationString(t *testing.T) {
	format := func(d time.Duration) string { return Duration(d).String() }
	checkString(t, format, parseDuration, []stringCase[time.Duration]{
		{0, "0s"},
		{250 * time.Millisecond, "250ms"},
		{10 * time.Second, "10s"},
		{10 * time.Minute, "10m"},
		{90 * time.Second, "1m30s"},
		{6 * time.Hour, "6h"},
		{6*time.Hour + 30*time.Minute, "6h30m"},
		{time.Hour + 30*time.Second, "1h0m30s"},
		{1500 * time.Microsecond, "1.5ms"},
	})
}

// FuzzSize checks that ParseSize never panics, never returns a negative
// size, and that whatever it accepts formats and parses back the same.
func FuzzSize(f *testing.F) {
	for _, s := range []string{"0", "4096", "256KiB", "64KB", "-1", "8388608TiB", "1.5MiB", " 1 GiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d, want >= 0", s, int64(n))
		}
		back, err := ParseSize(n.String())
		if err != nil || back != n {
			t.Fatalf("ParseSize(%q) = %d, %v, want %d", n.String(), int64(back), err, int64(n))
		}
	})
}
