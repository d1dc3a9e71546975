package cache

// Blobs are whole values (an http route's stored response bodies, see
// package httpcache) kept in the same memory and disk tiers as chunks, so
// that one budget, one eviction policy and one set of metrics cover both.
// A blob's key is chosen by its owner (random per stored response); it is
// salted so that it cannot meet a chunk's key. Blob reads and writes are
// counted in Stats.Hits and Stats.Misses like chunk reads.

const blobSalt = 0x626c6f62_626c6f62

// Blob returns the value stored under key, from memory or disk.
func (s *Store) Blob(key uint64) ([]byte, bool) {
	k := mix(key ^ blobSalt)
	if b, ok := s.chunks.Get(k); ok {
		s.Stats.Hits.Add(1)
		return b, true
	}
	if s.disk != nil {
		if b, ok := s.disk.Get(k); ok {
			s.chunks.Set(k, b)
			s.Stats.Hits.Add(1)
			return b, true
		}
	}
	s.Stats.Misses.Add(1)
	return nil, false
}

// SetBlob stores data under key, in memory and (at a shield) on disk;
// the memory's admission may still refuse it, as for a chunk. data must
// not be modified afterwards.
func (s *Store) SetBlob(key uint64, data []byte) {
	k := mix(key ^ blobSalt)
	s.chunks.Set(k, data)
	if s.cfg.WindowPercent == 0 {
		s.chunks.Wait()
	}
	if s.disk != nil {
		s.disk.Set(k, data)
	}
}

// DelBlob removes key.
func (s *Store) DelBlob(key uint64) {
	k := mix(key ^ blobSalt)
	s.chunks.Del(k)
	if s.disk != nil {
		s.disk.Del(k)
	}
}
