package workload

import (
	"reflect"
	"testing"
	"time"
)

func TestGeneratorDeterministic(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Tracks = 5000
	draw := func(seed uint64) []Session {
		c := cfg
		c.Seed = seed
		g, err := NewGenerator(c)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]Session, 300)
		for i := range out {
			out[i] = g.Next()
		}
		return out
	}
	a, b := draw(7), draw(7)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two generators with seed 7 produced different sessions")
	}
	if reflect.DeepEqual(a, draw(8)) {
		t.Fatal("seeds 7 and 8 produced the same sessions")
	}
}

// TestPlayPlans checks the properties every planned play must have, over
// many sessions.
func TestPlayPlans(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Tracks = 2000
	g, err := NewGenerator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cat := g.Catalog()
	seeks, skips, tiers := 0, 0, map[int]int{}
	for range 2000 {
		s := g.Next()
		tiers[s.Kbps]++
		at := time.Duration(0)
		for k, p := range s.Plays {
			if p.Start != at {
				t.Fatalf("session %d play %d starts at %v, want %v", s.ID, k, p.Start, at)
			}
			at += p.Played
			size := cat.Size(p.Track, s.Kbps)
			dur := time.Duration(cat.DurationMS(p.Track)) * time.Millisecond
			if p.Played > dur || p.Played <= 0 {
				t.Fatalf("session %d play %d: played %v of %v", s.ID, k, p.Played, dur)
			}
			if p.Played < dur {
				skips++
			}
			if len(p.Fetches) == 0 || p.Fetches[0].Off != 0 || p.Fetches[0].At != p.Start {
				t.Fatalf("session %d play %d: first fetch %+v, want offset 0 at %v", s.ID, k, p.Fetches, p.Start)
			}
			next := int64(0)
			for i, f := range p.Fetches {
				if f.Len <= 0 || f.Off < 0 || f.Off+f.Len > size {
					t.Fatalf("fetch %+v outside [0, %d)", f, size)
				}
				if i > 0 && f.At < p.Fetches[i-1].At {
					t.Fatalf("fetches out of order: %+v", p.Fetches)
				}
				if f.At >= p.Start+p.Played {
					t.Fatalf("fetch %+v due after the play stops at %v", f, p.Start+p.Played)
				}
				if f.Off != next {
					seeks++ // only a seek leaves a gap
					if f.Off < next {
						t.Fatalf("fetch %+v overlaps the previous one (ends %d)", f, next)
					}
				}
				next = f.Off + f.Len
			}
		}
	}
	if seeks == 0 || skips == 0 || len(tiers) != len(cfg.Classes) {
		t.Errorf("seeks %d, skips %d, tiers %v: want all kinds of behaviour", seeks, skips, tiers)
	}
}

// BenchmarkGeneratorNext is the cost of planning one session (about 60
// requests), a small part of what a run spends per request.
func BenchmarkGeneratorNext(b *testing.B) {
	g, err := NewGenerator(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		g.Next()
	}
}
