package rights

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	t1 = time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
)

func TestValidCountry(t *testing.T) {
	tests := []struct {
		cc   string
		want bool
	}{
		{"SE", true}, {"US", true}, {"AD", true}, {"ZW", true}, {"GB", true},
		{"AX", true}, {"SS", true}, {"BQ", true},
		{"se", false}, {"Se", false}, {"", false}, {"S", false}, {"SWE", false},
		{"UK", false}, {"EU", false}, {"XK", false}, {"ZZ", false}, {"AA", false},
		{"QZ", false}, {"A1", false}, {"@A", false}, {"[Z", false}, {"AN", false},
	}
	for _, tt := range tests {
		if got := ValidCountry(tt.cc); got != tt.want {
			t.Errorf("ValidCountry(%q) = %v, want %v", tt.cc, got, tt.want)
		}
	}
}

func TestCountries(t *testing.T) {
	cs := Countries()
	if len(cs) != 249 || NumCountries != 249 {
		t.Fatalf("len(Countries()) = %d, NumCountries = %d, want 249", len(cs), NumCountries)
	}
	if !slices.IsSorted(cs) {
		t.Errorf("Countries() not sorted")
	}
	for i, cc := range cs {
		if !ValidCountry(cc) {
			t.Errorf("ValidCountry(%q) = false for a listed code", cc)
		}
		if i > 0 && cs[i-1] == cc {
			t.Errorf("Countries() lists %q twice", cc)
		}
	}
	// Every other two-letter code is rejected.
	n := 0
	for a := 'A'; a <= 'Z'; a++ {
		for b := 'A'; b <= 'Z'; b++ {
			if ValidCountry(string([]rune{a, b})) {
				n++
			}
		}
	}
	if n != 249 {
		t.Errorf("ValidCountry accepts %d of AA..ZZ, want 249", n)
	}
}

func TestRowCovers(t *testing.T) {
	tests := []struct {
		name        string
		from, until time.Time
		at          time.Time
		want        bool
	}{
		{"unbounded", time.Time{}, time.Time{}, t0, true},
		{"at from", t0, t1, t0, true},
		{"just before from", t0, t1, t0.Add(-time.Nanosecond), false},
		{"inside", t0, t1, t0.Add(time.Hour), true},
		{"just before until", t0, t1, t1.Add(-time.Nanosecond), true},
		{"at until", t0, t1, t1, false},
		{"after until", t0, t1, t1.Add(time.Hour), false},
		{"open start before until", time.Time{}, t1, t0, true},
		{"open start at until", time.Time{}, t1, t1, false},
		{"open end at from", t0, time.Time{}, t0, true},
		{"open end before from", t0, time.Time{}, t0.Add(-time.Second), false},
		{"from in another zone", t0.In(time.FixedZone("X", 3600)), t1, t0, true},
	}
	for _, tt := range tests {
		r := Row{TrackID: "t1", Country: "SE", From: tt.from, Until: tt.until}
		if got := r.Covers(tt.at); got != tt.want {
			t.Errorf("%s: Covers(%v) = %v, want %v", tt.name, tt.at, got, tt.want)
		}
	}
}

// testRows are three rows, and testRowsFile the same rows in Load's
// format (with a comment, a blank line, a CRLF and a zone offset).
var (
	testRows = []Row{
		{TrackID: "t1", Country: "SE", From: t0, Until: t1},
		{TrackID: "t1", Country: "NO"},
		{TrackID: "t2", Country: "SE", Until: t0},
	}
	testRowsFile = "# rights\n" +
		"t1\tSE\t2026-03-01T00:00:00Z\t2026-09-01T00:00:00Z\n" +
		"\n" +
		"t1\tNO\t-\t-\r\n" +
		"t2\tSE\t-\t2026-03-01T01:00:00+01:00\n"
)

// checkTestRows checks that tb, holding testRows (Put or loaded), answers
// Check and Allowed as those rows say.
func checkTestRows(t *testing.T, tb *Table) {
	t.Helper()
	if tb.Len() != 3 {
		t.Errorf("Len = %d, want 3", tb.Len())
	}
	tests := []struct {
		track, cc string
		at        time.Time
		want      error
	}{
		{"t1", "SE", t0, nil},
		{"t1", "SE", t1, ErrDenied},
		{"t1", "SE", t0.Add(-time.Second), ErrDenied},
		{"t1", "NO", t1, nil},
		{"t1", "NO", t1.AddDate(10, 0, 0), nil},
		{"t1", "DK", t0, ErrNoRow},
		{"t2", "NO", t0, ErrNoRow},
		{"t3", "SE", t0, ErrNoRow},
		{"t2", "SE", t0.Add(-time.Second), nil},
		{"t2", "SE", t0.Add(-time.Nanosecond), nil},
		{"t2", "SE", t0, ErrDenied}, // in the file, 01:00+01:00 is t0
		{"t1", "", t0, ErrNoRow},
		{"t1", "S", t0, ErrNoRow},
		{"t1", "se", t0, ErrNoRow},
	}
	for _, tt := range tests {
		_, err := tb.Check(tt.track, tt.cc, tt.at)
		if !errors.Is(err, tt.want) && !(err == nil && tt.want == nil) {
			t.Errorf("Check(%q, %q, %v) = %v, want %v", tt.track, tt.cc, tt.at, err, tt.want)
		}
		if got := tb.Allowed(tt.track, tt.cc, tt.at); got != (tt.want == nil) {
			t.Errorf("Allowed(%q, %q, %v) = %v, want %v", tt.track, tt.cc, tt.at, got, tt.want == nil)
		}
	}
}

func TestTable(t *testing.T) {
	tb := NewTable()
	for _, r := range testRows {
		if err := tb.Put(r); err != nil {
			t.Fatalf("Put(%+v) = %v", r, err)
		}
	}
	checkTestRows(t, tb)
	if r, err := tb.Check("t1", "SE", t1); !errors.Is(err, ErrDenied) || !r.Until.Equal(t1) {
		t.Errorf("Check denied = %+v, %v; want the row and ErrDenied", r, err)
	}
	// Put replaces.
	if err := tb.Put(Row{TrackID: "t1", Country: "SE"}); err != nil {
		t.Fatal(err)
	}
	if !tb.Allowed("t1", "SE", t1) || tb.Len() != 3 {
		t.Errorf("after replacing: Allowed = %v, Len = %d; want true, 3", tb.Allowed("t1", "SE", t1), tb.Len())
	}
}

func TestTablePutInvalid(t *testing.T) {
	for _, r := range []Row{
		{TrackID: "", Country: "SE"},
		{TrackID: "a/b", Country: "SE"},
		{TrackID: "t1", Country: "se"},
		{TrackID: "t1", Country: "XK"},
		{TrackID: "t1", Country: "SE", From: t1, Until: t0},
		{TrackID: "t1", Country: "SE", From: t0, Until: t0},
	} {
		if err := NewTable().Put(r); err == nil {
			t.Errorf("Put(%+v) = nil, want an error", r)
		}
	}
}

func TestTableAllowedDoesNotAllocate(t *testing.T) {
	tb := NewTable()
	tb.Put(Row{TrackID: "t1", Country: "SE"})
	if n := testing.AllocsPerRun(100, func() { tb.Allowed("t1", "SE", t0) }); n != 0 {
		t.Errorf("Table.Allowed allocs = %v, want 0", n)
	}
	s := Synthetic{Seed: 1}
	if n := testing.AllocsPerRun(100, func() { s.Allowed("t1", "SE", t0) }); n != 0 {
		t.Errorf("Synthetic.Allowed allocs = %v, want 0", n)
	}
}

func TestLoad(t *testing.T) {
	tb, err := Load(strings.NewReader(testRowsFile))
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	checkTestRows(t, tb)
}

func TestLoadErrors(t *testing.T) {
	ok := "t1\tSE\t-\t-\n"
	tests := []struct {
		name, in, want string
	}{
		{"three fields", "t1\tSE\t-\n", "line 1: want 4"},
		{"five fields", ok + "t1\tNO\t-\t-\t-\n", "line 2: want 4"},
		{"spaces not tabs", "t1 SE - -\n", "line 1: want 4"},
		{"bad id", ok + "# c\nt/1\tSE\t-\t-\n", "line 3: invalid track id"},
		{"empty id", "\tSE\t-\t-\n", "line 1: invalid track id"},
		{"lower country", "t1\tse\t-\t-\n", `line 1: invalid country "se"`},
		{"unassigned country", ok + ok[:3] + "XK\t-\t-\n", `line 2: invalid country "XK"`},
		{"bad from", "t1\tSE\t2026-03-01\t-\n", "line 1: from:"},
		{"bad until", "t1\tSE\t-\tsoon\n", "line 1: until:"},
		{"empty window", "t1\tSE\t2026-09-01T00:00:00Z\t2026-03-01T00:00:00Z\n", "line 1: empty window"},
		{"equal bounds", "t1\tSE\t2026-09-01T00:00:00Z\t2026-09-01T00:00:00Z\n", "line 1: empty window"},
		{"duplicate", ok + "\n" + ok, "line 3: duplicate row for (t1, SE), first on line 1"},
		{"long line", ok + strings.Repeat("x", MaxLineLen+1) + "\n", "line 2:"},
	}
	for _, tt := range tests {
		_, err := Load(strings.NewReader(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "rights: line ") {
			t.Errorf("%s: Load(%q) = %v, want an error containing %q", tt.name, tt.in, err, tt.want)
		}
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "rights.tsv")
	if err := os.WriteFile(p, []byte("t1\tSE\t-\t-\nt1\tXX\t-\t-\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadFile(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+": rights: line 2:") {
		t.Errorf("LoadFile = %v, want an error starting with %q", err, p+": rights: line 2:")
	}
	if _, err := LoadFile(filepath.Join(dir, "missing.tsv")); err == nil {
		t.Errorf("LoadFile(missing) = nil, want an error")
	}
}

func TestSyntheticDeterministicAndRate(t *testing.T) {
	const tracks = 400
	a, b, other := Synthetic{Seed: 42}, Synthetic{Seed: 42}, Synthetic{Seed: 43}
	countries := Countries()
	denied, differ, total := 0, 0, 0
	for i := range tracks {
		id := "t" + strconv.Itoa(i)
		for _, cc := range countries {
			got := a.Allowed(id, cc, t0)
			if got != b.Allowed(id, cc, t1) {
				t.Fatalf("Allowed(%q, %q) differs between equal seeds or times", id, cc)
			}
			if got != other.Allowed(id, cc, t0) {
				differ++
			}
			if !got {
				denied++
			}
			total++
		}
	}
	rate := float64(denied) / float64(total)
	if rate < 0.09 || rate > 0.11 {
		t.Errorf("denial rate = %.4f over %d pairs, want 0.10 +- 0.01", rate, total)
	}
	if differ == 0 {
		t.Errorf("seeds 42 and 43 deny the same pairs")
	}
	t.Logf("denied %d of %d pairs (%.2f%%)", denied, total, 100*rate)
}

func TestSyntheticFind(t *testing.T) {
	s := Synthetic{Seed: 7}
	for i := range 50 {
		id := "t" + strconv.Itoa(i)
		d, a := s.FindDenied(id), s.FindAllowed(id)
		if d == "" || a == "" {
			t.Fatalf("FindDenied(%q) = %q, FindAllowed = %q; want both set", id, d, a)
		}
		if s.Allowed(id, d, t0) {
			t.Errorf("Allowed(%q, FindDenied = %q) = true, want false", id, d)
		}
		if !s.Allowed(id, a, t0) {
			t.Errorf("Allowed(%q, FindAllowed = %q) = false, want true", id, a)
		}
	}
	for _, tt := range []struct{ id, cc string }{{"t1", "se"}, {"t1", "XK"}, {"a/b", "SE"}, {"", "SE"}} {
		if s.Allowed(tt.id, tt.cc, t0) {
			t.Errorf("Synthetic.Allowed(%q, %q) = true, want false", tt.id, tt.cc)
		}
	}
	if got := s.FindAllowed("bad id"); got != "" {
		t.Errorf("FindAllowed(%q) = %q, want \"\"", "bad id", got)
	}
}

func TestWorldwide(t *testing.T) {
	tests := []struct {
		id, cc string
		want   bool
	}{
		{"t1", "SE", true}, {"any_Track-9", "ZW", true},
		{"t1", "se", false}, {"t1", "XK", false}, {"t/1", "SE", false}, {"", "SE", false},
	}
	for _, tt := range tests {
		if got := (Worldwide{}).Allowed(tt.id, tt.cc, t0); got != tt.want {
			t.Errorf("Worldwide.Allowed(%q, %q) = %v, want %v", tt.id, tt.cc, got, tt.want)
		}
	}
}

func FuzzLoad(f *testing.F) {
	f.Add("t1\tSE\t-\t-\n")
	f.Add("t1\tSE\t2026-03-01T00:00:00Z\t2026-09-01T00:00:00Z\n# x\n\n")
	f.Add("t1\tSE\t-\n")
	f.Fuzz(func(t *testing.T, in string) {
		tb, err := Load(strings.NewReader(in))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "rights: line ") {
				t.Fatalf("Load error %q does not name a line", err)
			}
			return
		}
		for k, r := range tb.rows {
			if r.Validate() != nil || makeKey(r.TrackID, r.Country) != k {
				t.Fatalf("Load accepted an invalid row %+v", r)
			}
		}
	})
}

func BenchmarkAllowed(b *testing.B) {
	tb := NewTable()
	for i := range 10_000 {
		tb.Put(Row{TrackID: "t" + strconv.Itoa(i), Country: "SE", From: t0, Until: t1})
	}
	policies := []struct {
		name string
		p    interface {
			Allowed(trackID, country string, at time.Time) bool
		}
	}{{"Table", tb}, {"Synthetic", Synthetic{Seed: 1}}, {"Worldwide", Worldwide{}}}
	for _, p := range policies {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.p.Allowed("t4242", "SE", t0)
			}
		})
	}
}
