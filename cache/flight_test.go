package cache

import (
	"context"
	"sync/atomic"
	"testing"
)

// TestMetaAndChunkOneFlight: the chunk fetched with an object's metadata
// is cached before the metadata is published, so a request that sees the
// metadata the moment it appears finds the chunk and does not fetch it
// again; and MetaAt fetches the metadata with the chunk the request wants
// (one upstream fetch for a cold seek, chunk 0 never asked for).
//
// Mutations caught: installing the metadata before caching the chunk in
// fillMeta (the hook's read then misses: 2 fetches); MetaAt ignoring its
// offset (chunk 0 fetched, then chunk 2: 2 fetches).
func TestMetaAndChunkOneFlight(t *testing.T) {
	for _, tc := range []struct {
		name string
		off  int64
		idx  int64
	}{{"chunk 0", 0, 0}, {"cold seek", 2*4096 + 5, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newMemFetcher()
			data := make([]byte, 10000)
			for i := range data {
				data[i] = byte(i * 7)
			}
			f.put("a", data, `"v1"`)
			s := newStore(t, f, nil)
			r := ref("a")
			var hooked atomic.Int64
			s.publishHook = func(_ uint64, m *Meta) {
				// A request arriving as the metadata appears.
				if hooked.Add(1) == 1 {
					if _, hit, err := s.Chunk(context.Background(), r, m, tc.idx); err != nil || !hit {
						t.Errorf("chunk %d read as the metadata appeared: hit %v, %v; want a hit", tc.idx, hit, err)
					}
				}
			}
			m, _, err := s.MetaAt(context.Background(), r, tc.off)
			if err != nil {
				t.Fatal(err)
			}
			if hooked.Load() == 0 {
				t.Fatal("publishHook never ran")
			}
			got, hit, err := s.Chunk(context.Background(), r, m, tc.idx)
			if err != nil || !hit || got[0] != data[tc.idx*4096] {
				t.Errorf("Chunk(%d) after MetaAt: hit %v, %v", tc.idx, hit, err)
			}
			if n := f.fetches.Load(); n != 1 {
				t.Errorf("%d upstream fetches, want 1", n)
			}
		})
	}
}
