package parallel

import (
	"context"
	"sync/atomic"
	"testing"
)

// TestFor: every index is visited exactly once, in blocks of the size
// asked (the last one short), whatever the worker count. Mutations caught:
// an off-by-one in the claim (an index skipped or twice), a last block
// running past n, workers <= 0 starting no goroutine.
func TestFor(t *testing.T) {
	for _, tc := range []struct{ n, size, workers int }{
		{0, 4, 2}, {1, 4, 2}, {10, 3, 1}, {10, 3, 4}, {1000, 7, 3}, {1000, 128, 0}, {5, 100, 8},
	} {
		seen := make([]atomic.Int32, tc.n)
		var workers atomic.Int32
		err := For(context.Background(), tc.n, tc.size, tc.workers, func() func(lo, hi int) {
			workers.Add(1)
			return func(lo, hi int) {
				if lo%tc.size != 0 || hi-lo > tc.size || hi > tc.n || hi <= lo {
					t.Errorf("n=%d size=%d: block [%d, %d)", tc.n, tc.size, lo, hi)
				}
				for i := lo; i < hi; i++ {
					seen[i].Add(1)
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		for i := range seen {
			if got := seen[i].Load(); got != 1 {
				t.Errorf("n=%d size=%d workers=%d: index %d visited %d times", tc.n, tc.size, tc.workers, i, got)
			}
		}
		if tc.workers > 0 && int(workers.Load()) > tc.workers {
			t.Errorf("n=%d: %d workers made, want at most %d", tc.n, workers.Load(), tc.workers)
		}
	}
}

// TestForCancel: a done context starts no block and is returned; a
// cancel in the middle stops the claiming. Mutation caught: not checking
// ctx between blocks.
func TestForCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var blocks atomic.Int32
	count := func() func(lo, hi int) { return func(lo, hi int) { blocks.Add(1) } }
	if err := For(ctx, 100, 1, 2, count); err != context.Canceled || blocks.Load() != 0 {
		t.Errorf("For(done ctx) = %v after %d blocks, want context.Canceled after none", err, blocks.Load())
	}
	ctx, cancel = context.WithCancel(context.Background())
	err := For(ctx, 1000, 1, 1, func() func(lo, hi int) {
		return func(lo, hi int) {
			if lo == 10 {
				cancel()
			}
			blocks.Add(1)
		}
	})
	if err != context.Canceled || blocks.Load() != 11 {
		t.Errorf("For cancelled at block 10 = %v after %d blocks, want context.Canceled after 11", err, blocks.Load())
	}
}
