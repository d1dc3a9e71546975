package synth

// Split is how an evaluation divides generated plays into what the
// recommender trains on and what it is judged on: every ColdEvery-th
// track (by hash) is new, all its plays held out, so it can be placed by
// its audio alone; of the other (warm) pairs, one in five is held out. The
// split hashes ids, so that it cannot alias with the generator's cluster
// assignment (track i is in cluster i mod Clusters).
type Split struct{ ColdEvery uint64 }

// Cold reports whether track is a new track.
func (s Split) Cold(track int) bool { return mix(uint64(track))%s.ColdEvery == 0 }

// HeldWarm reports whether the pair of a warm track is held out.
func (s Split) HeldWarm(user, track int) bool { return mix(uint64(user)<<32|uint64(track))%5 == 0 }

// HeldOut reports whether the pair is held out: a cold track's, or a held
// warm pair.
func (s Split) HeldOut(user, track int) bool { return s.Cold(track) || s.HeldWarm(user, track) }

// mix is the splitmix64 finalizer.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}
