package country

import "testing"

func TestValid(t *testing.T) {
	for _, tt := range []struct {
		cc   string
		want bool
	}{
		{"SE", true}, {"US", true}, {"GB", true}, {"AD", true}, {"ZW", true},
		{"SS", true}, {"BQ", true}, {"CW", true}, {"SX", true}, {"AX", true},
		{"se", false}, {"Se", false}, {"", false}, {"S", false}, {"SWE", false},
		{"UK", false}, {"EU", false}, {"XK", false}, {"AN", false}, {"YU", false},
		{"CS", false}, {"ZZ", false}, {"AA", false}, {"00", false}, {"S\x00", false},
	} {
		if got := Valid(tt.cc); got != tt.want {
			t.Errorf("Valid(%q) = %v, want %v", tt.cc, got, tt.want)
		}
	}
}

func TestTableSortedAndComplete(t *testing.T) {
	if Count != 249 {
		t.Fatalf("Count = %d, want 249", Count)
	}
	for i := 1; i < Count; i++ {
		if At(i-1) >= At(i) {
			t.Fatalf("codes not sorted at %d: %q >= %q", i, At(i-1), At(i))
		}
	}
	// Valid must agree with a linear scan for every two-letter string.
	n := 0
	for a := 'A'; a <= 'Z'; a++ {
		for b := 'A'; b <= 'Z'; b++ {
			cc := string([]rune{a, b})
			want := false
			for i := 0; i < Count; i++ {
				if At(i) == cc {
					want = true
				}
			}
			if got := Valid(cc); got != want {
				t.Errorf("Valid(%q) = %v, want %v", cc, got, want)
			}
			if want {
				n++
			}
		}
	}
	if n != Count {
		t.Errorf("found %d valid codes, want %d", n, Count)
	}
}

func FuzzValid(f *testing.F) {
	f.Add("SE")
	f.Add("zz")
	f.Fuzz(func(t *testing.T, cc string) {
		if Valid(cc) && (len(cc) != 2 || cc[0] < 'A' || cc[0] > 'Z') {
			t.Fatalf("Valid(%q) = true for a non-code", cc)
		}
	})
}
