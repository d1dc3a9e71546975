package main

import "testing"

func TestParseCatalog(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		fail bool
	}{
		{"synthetic:100000", 100000, false},
		{"synthetic:1", 1, false},
		{"synthetic:0", 0, true},
		{"synthetic:x", 0, true},
		{"/srv/catalog", 0, true},
	}
	for _, tt := range tests {
		n, err := parseCatalog(tt.in)
		if n != tt.n || (err != nil) != tt.fail {
			t.Errorf("parseCatalog(%q) = %d, %v, want %d, error %v", tt.in, n, err, tt.n, tt.fail)
		}
	}
}

func TestFloats(t *testing.T) {
	got, err := floats("0.8, 1.0,1.2")
	if err != nil || len(got) != 3 || got[0] != 0.8 || got[2] != 1.2 {
		t.Errorf("floats(%q) = %v, %v, want [0.8 1 1.2]", "0.8, 1.0,1.2", got, err)
	}
	if _, err := floats("1,x"); err == nil {
		t.Errorf("floats(%q) accepted", "1,x")
	}
}
