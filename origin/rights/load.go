package rights

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// MaxLineLen bounds one line of a rights file.
const MaxLineLen = 4096

// Load reads rows in the rights file format into a new Table. The format
// is UTF-8 text, one row per line, four tab-separated fields:
//
//	track_id <TAB> country <TAB> from <TAB> until
//
// where from and until are RFC 3339 times or "-" (no bound), and the
// window is [from, until). Blank lines and lines starting with '#' are
// ignored; a trailing '\r' is dropped. A (track_id, country) pair may
// appear only once. Errors name the line: "rights: line 7: ...".
func Load(r io.Reader) (*Table, error) {
	t := NewTable()
	first := make(map[key]int) // key -> line it was defined on
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), MaxLineLen)
	line := 0
	for sc.Scan() {
		line++
		row, skip, err := parseLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("rights: line %d: %w", line, err)
		}
		if skip {
			continue
		}
		k := makeKey(row.TrackID, row.Country)
		if prev, dup := first[k]; dup {
			return nil, fmt.Errorf("rights: line %d: duplicate row for (%s, %s), first on line %d", line, row.TrackID, row.Country, prev)
		}
		first[k] = line
		t.rows[k] = row
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("rights: line %d: %w", line+1, err)
	}
	return t, nil
}

// LoadFile is Load of the named file; errors start with the file name.
func LoadFile(path string) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("rights: %w", err)
	}
	defer f.Close()
	t, err := Load(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// parseLine parses one line; skip is true for blank and comment lines.
func parseLine(s string) (row Row, skip bool, err error) {
	s = strings.TrimSuffix(s, "\r")
	if strings.TrimSpace(s) == "" || strings.HasPrefix(s, "#") {
		return Row{}, true, nil
	}
	f := strings.Split(s, "\t")
	if len(f) != 4 {
		return Row{}, false, fmt.Errorf("want 4 tab-separated fields (track_id, country, from, until), got %d", len(f))
	}
	row.TrackID, row.Country = f[0], f[1]
	if row.From, err = parseBound(f[2]); err != nil {
		return Row{}, false, fmt.Errorf("from: %w", err)
	}
	if row.Until, err = parseBound(f[3]); err != nil {
		return Row{}, false, fmt.Errorf("until: %w", err)
	}
	if err := row.Validate(); err != nil {
		// Drop the package prefix: the caller adds "rights: line N: ".
		return Row{}, false, fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "rights: "))
	}
	return row, false, nil
}

func parseBound(s string) (time.Time, error) {
	if s == "-" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time or -", s)
	}
	if t.IsZero() {
		// The zero time means "no bound"; write "-" for that.
		return time.Time{}, fmt.Errorf("%q is the zero time; use - for no bound", s)
	}
	return t, nil
}
