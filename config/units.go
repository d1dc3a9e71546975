package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written in configuration files and flags the
// way time.ParseDuration reads it: "250ms", "10s", "1m30s", "6h". A bare
// number other than 0 is an error (it has no unit), and so is a negative
// duration: no setting of this project means anything by one, so a minus
// sign is taken for a typo rather than passed on to Validate.
//
// Convert with time.Duration(d). *Duration is a flag.Value, so a flag can be
// bound straight to a config field with fs.Var.
type Duration time.Duration

// ParseDuration parses s as a Duration (see the type's doc).
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	d, err := time.ParseDuration(s)
	if err != nil {
		if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
			return 0, fmt.Errorf("invalid duration %q: missing unit (like \"10s\" or \"250ms\")", s)
		}
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("invalid duration %q: negative", s)
	}
	return Duration(d), nil
}

// String formats d like time.Duration.String without the zero tails that
// make "6h" read as "6h0m0s".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if t, ok := strings.CutSuffix(s, "m0s"); ok {
		s = t + "m" // "10m0s" -> "10m", "6h0m0s" -> "6h0m"
	}
	if t, ok := strings.CutSuffix(s, "h0m"); ok {
		s = t + "h" // "6h0m" -> "6h"
	}
	return s
}

// Set parses s into d (flag.Value).
func (d *Duration) Set(s string) error {
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// UnmarshalYAML reads a scalar such as "10s". Its errors are yaml.TypeErrors
// carrying the line, so decoding goes on and every bad field is reported.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return lineError(n, "a duration must be a string like \"10s\"")
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return lineError(n, err.Error())
	}
	*d = v
	return nil
}

// MarshalYAML writes d as its String.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Size is a number of bytes written in configuration files and flags as a
// non-negative integer with an optional unit: "4096", "4096B", "256KiB",
// "1MiB", "2GiB", "1TiB" (powers of 1024) or "64KB", "10MB", "1GB", "1TB"
// (powers of 1000, so "64KB" is 64000). Units are case-sensitive, a space
// may separate number and unit, and fractions, negatives and values past
// math.MaxInt64 are errors.
//
// *Size is a flag.Value, so a flag can be bound straight to a config field.
type Size int64

// Units, exported so configs and tests can write 4*config.MiB.
const (
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
	TiB Size = 1 << 40
)

// sizeUnits are the units ParseSize knows. It tries the names as suffixes
// in this order, which works because "B" comes last.
var sizeUnits = []struct {
	name string
	mult int64
}{
	{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3},
	{"B", 1},
}

// ParseSize parses s as a Size (see the type's doc).
func ParseSize(s string) (Size, error) {
	in := s
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if num, ok := strings.CutSuffix(s, u.name); ok {
			s, mult = strings.TrimRight(num, " "), u.mult
			break
		}
	}
	if s == "" {
		return 0, fmt.Errorf("invalid size %q", in)
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("invalid size %q: want a whole number of bytes, like 4096, 256KiB or 1MiB", in)
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid size %q: too large", in)
	}
	return Size(n * mult), nil
}

// String formats s with the largest unit that divides it exactly: 1048576
// is "1MiB", 64000 is "64KB", 2000000000000 is "2TB", 4097 is "4097".
// ParseSize reads it back to the same value.
func (s Size) String() string {
	best := sizeUnits[len(sizeUnits)-1] // "B", written as a bare number
	for _, u := range sizeUnits {
		if s != 0 && int64(s)%u.mult == 0 && u.mult > best.mult {
			best = u
		}
	}
	if best.mult == 1 {
		return strconv.FormatInt(int64(s), 10)
	}
	return strconv.FormatInt(int64(s)/best.mult, 10) + best.name
}

// Set parses v into s (flag.Value).
func (s *Size) Set(v string) error {
	n, err := ParseSize(v)
	if err != nil {
		return err
	}
	*s = n
	return nil
}

// UnmarshalYAML reads a scalar such as "256KiB" or 4096; see Duration's.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return lineError(n, "a size must be a number of bytes like 4096 or \"256KiB\"")
	}
	v, err := ParseSize(n.Value)
	if err != nil {
		return lineError(n, err.Error())
	}
	*s = v
	return nil
}

// MarshalYAML writes s as its String.
func (s Size) MarshalYAML() (any, error) { return s.String(), nil }

// lineError returns an error the yaml decoder records and goes on, in the
// "line N: msg" form of its own type errors plus the column, which Parse
// turns into a file:line: field: message.
func lineError(n *yaml.Node, msg string) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: column %d: %s", n.Line, n.Column, msg)}}
}
