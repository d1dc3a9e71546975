// Package synth generates listening data and audio with planted structure,
// for testing and benchmarking recommendations before real plays exist.
//
// Users and tracks belong to taste clusters. A user plays mostly tracks of
// their own cluster, with Zipf-distributed popularity inside the cluster,
// and a few random tracks from anywhere; a track's audio has a spectral
// signature (pitch range, brightness, pulse rate) drawn from its cluster.
// A recommender that recovers the clusters beats a popularity ranking by a
// wide margin, and a content model can place a track by its audio alone.
package synth

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// Config describes a generated data set.
type Config struct {
	Users    int // number of users
	Tracks   int // number of tracks
	Clusters int // number of taste clusters
	// PairsPerUser is the mean number of distinct tracks a user played;
	// each user draws uniformly from [PairsPerUser/2, 3·PairsPerUser/2].
	PairsPerUser int
	// Noise is the fraction of a user's tracks drawn from the whole
	// catalog instead of their cluster, in [0,1].
	Noise float64
	// ZipfS is the Zipf exponent (> 1) of popularity inside a cluster.
	ZipfS float64
	Seed  uint64
}

// Data is a generated data set. Track i belongs to cluster i % Clusters;
// user u belongs to UserCluster[u].
type Data struct {
	Config
	UserCluster []int
}

// TrackCluster is the cluster of track i.
func (d *Data) TrackCluster(i int) int { return i % d.Clusters }

// New validates cfg and draws the users' clusters.
func New(cfg Config) (*Data, error) {
	switch {
	case cfg.Users < 1 || cfg.Tracks < 1 || cfg.Clusters < 1 || cfg.Clusters > cfg.Tracks:
		return nil, errors.New("synth: need users, tracks >= 1 and 1 <= clusters <= tracks")
	case cfg.PairsPerUser < 1 || cfg.PairsPerUser > cfg.Tracks/2:
		return nil, errors.New("synth: pairs per user must be in [1, tracks/2]")
	case cfg.Noise < 0 || cfg.Noise > 1:
		return nil, errors.New("synth: noise must be in [0,1]")
	case !(cfg.ZipfS > 1):
		return nil, errors.New("synth: zipf exponent must be > 1")
	}
	d := &Data{Config: cfg, UserCluster: make([]int, cfg.Users)}
	r := rand.New(rand.NewPCG(cfg.Seed, 2))
	for u := range d.UserCluster {
		d.UserCluster[u] = r.IntN(cfg.Clusters)
	}
	return d, nil
}

// Plays calls fn once per (user, track) pair with its play count (>= 1),
// user by user, in a deterministic order. It stops at fn's first error.
func (d *Data) Plays(fn func(user, track int, plays int64) error) error {
	perCluster := (d.Tracks + d.Clusters - 1) / d.Clusters
	seen := make(map[int]struct{}, 2*d.PairsPerUser)
	for u := 0; u < d.Users; u++ {
		// A generator per user keeps users independent of each other, so
		// a benchmark can generate any prefix or slice of users.
		r := rand.New(rand.NewPCG(d.Seed, uint64(u)+1000))
		zipf := rand.NewZipf(r, d.ZipfS, 1, uint64(perCluster-1))
		c := d.UserCluster[u]
		n := d.PairsPerUser/2 + r.IntN(d.PairsPerUser+1)
		clear(seen)
		for tries := 0; len(seen) < n && tries < 20*n; tries++ {
			var t int
			if r.Float64() < d.Noise {
				t = r.IntN(d.Tracks)
			} else {
				t = int(zipf.Uint64())*d.Clusters + c
				if t >= d.Tracks {
					continue
				}
			}
			if _, ok := seen[t]; ok {
				continue
			}
			seen[t] = struct{}{}
			// Heavy-tailed counts: most pairs are played a few times.
			plays := 1 + int64(r.ExpFloat64()*3)
			if err := fn(u, t, plays); err != nil {
				return err
			}
		}
	}
	return nil
}

// Audio returns seconds of mono PCM at sampleRate for track i: a
// harmonic tone whose pitch range, brightness and pulse rate come from the
// track's cluster, plus per-track jitter and noise, so tracks of one
// cluster sound alike but not the same.
func (d *Data) Audio(i int, sampleRate int, seconds float64) []float32 {
	return ClusterAudio(d.TrackCluster(i), d.Clusters, uint64(i)^d.Seed<<20, sampleRate, seconds)
}

// ClusterAudio is Audio for an explicit cluster c of n and a track seed.
func ClusterAudio(c, n int, seed uint64, sampleRate int, seconds float64) []float32 {
	r := rand.New(rand.NewPCG(seed, 3))
	// Clusters are spread over ~5 octaves of fundamental (55 Hz upward),
	// alternate between dull and bright timbre, and pulse at different rates.
	frac := (float64(c) + 0.5) / float64(n)
	f0 := 55 * math.Pow(2, 5*frac+0.15*r.NormFloat64())
	bright := 0.35 + 0.5*float64(c%3)/2 + 0.05*r.NormFloat64()
	pulse := 1 + float64(c%4)*1.5 + 0.2*r.NormFloat64()
	gain := 0.1 + 0.4*r.Float64() // loudness should not matter
	ns := int(float64(sampleRate) * seconds)
	out := make([]float32, ns)
	nyq := float64(sampleRate) / 2
	for h := 1; h <= 12; h++ {
		f := f0 * float64(h)
		if f >= nyq {
			break
		}
		amp := math.Pow(bright, float64(h-1))
		ph := r.Float64() * 2 * math.Pi
		w := 2 * math.Pi * f / float64(sampleRate)
		for s := range out {
			out[s] += float32(amp * math.Sin(w*float64(s)+ph))
		}
	}
	for s := range out {
		t := float64(s) / float64(sampleRate)
		env := 0.6 + 0.4*math.Sin(2*math.Pi*pulse*t)
		out[s] = float32(gain * (env*float64(out[s])/3 + 0.02*r.NormFloat64()))
	}
	return out
}

// Catalog is an in-memory catalog of track ids, sorted; it lists them as
// media.Source does (the recommendations' Catalog).
type Catalog []string

// List returns up to limit ids after after ("" for the start).
func (c Catalog) List(_ context.Context, after string, limit int) ([]string, error) {
	i := sort.SearchStrings(c, after)
	if i < len(c) && c[i] == after {
		i++
	}
	return c[i:min(len(c), i+limit)], nil
}

// Embeddings are content embeddings by track id (the recommendations'
// EmbeddingSource).
type Embeddings map[string][]float32

// Embedding returns id's embedding, or an error when there is none.
func (e Embeddings) Embedding(_ context.Context, id string) ([]float32, error) {
	if v, ok := e[id]; ok {
		return v, nil
	}
	return nil, fmt.Errorf("synth: no embedding for %s", id)
}
