package synth

import "testing"

func TestPlaysDeterministicAndClustered(t *testing.T) {
	cfg := Config{Users: 300, Tracks: 500, Clusters: 5, PairsPerUser: 20, Noise: 0.1, ZipfS: 1.1, Seed: 3}
	collect := func() map[[2]int]int64 {
		d, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		out := map[[2]int]int64{}
		inCluster := 0
		if err := d.Plays(func(u, i int, plays int64) error {
			if _, dup := out[[2]int{u, i}]; dup {
				t.Errorf("pair (%d, %d) emitted twice", u, i)
			}
			if plays < 1 {
				t.Errorf("pair (%d, %d) has %d plays", u, i, plays)
			}
			out[[2]int{u, i}] = plays
			if d.TrackCluster(i) == d.UserCluster[u] {
				inCluster++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if frac := float64(inCluster) / float64(len(out)); frac < 0.85 {
			t.Errorf("in-cluster fraction %.2f, want >= 0.85 with noise 0.1", frac)
		}
		if mean := float64(len(out)) / float64(cfg.Users); mean < 15 || mean > 25 {
			t.Errorf("mean pairs per user %.1f, want about %d", mean, cfg.PairsPerUser)
		}
		return out
	}
	a, b := collect(), collect()
	if len(a) != len(b) {
		t.Fatalf("two runs gave %d and %d pairs", len(a), len(b))
	}
	for k, v := range a {
		if b[k] != v {
			t.Fatalf("pair %v: %d then %d plays", k, v, b[k])
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	good := Config{Users: 10, Tracks: 100, Clusters: 5, PairsPerUser: 5, Noise: 0.1, ZipfS: 1.1}
	for i, mod := range []func(*Config){
		func(c *Config) { c.Users = 0 },
		func(c *Config) { c.Clusters = 101 },
		func(c *Config) { c.PairsPerUser = 51 },
		func(c *Config) { c.Noise = 2 },
		func(c *Config) { c.ZipfS = 1 },
	} {
		c := good
		mod(&c)
		if _, err := New(c); err == nil {
			t.Errorf("case %d: New(%+v) = nil error", i, c)
		}
	}
}

// TestSplit: about one track in ColdEvery is cold and one warm pair in
// five is held, and a cold track's pairs are all held out. Catches the
// modulus dropped or applied to the wrong hash.
func TestSplit(t *testing.T) {
	s := Split{ColdEvery: 10}
	cold, held := 0, 0
	for i := range 10000 {
		if s.Cold(i) {
			cold++
			if !s.HeldOut(7, i) {
				t.Fatalf("cold track %d: pair not held out", i)
			}
		}
		if s.HeldWarm(i, 3) {
			held++
		}
	}
	if cold < 900 || cold > 1100 || held < 1800 || held > 2200 {
		t.Errorf("cold %d of 10000 (want ~1000), held warm %d (want ~2000)", cold, held)
	}
}
