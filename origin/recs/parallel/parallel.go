// Package parallel runs the recommender's data-parallel loops (training
// half-sweeps, neighbour search, k-means assignment): workers goroutines
// claim blocks of an index range from a shared counter, so fast and slow
// blocks balance themselves, and each worker keeps its own scratch space.
package parallel

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
)

// For runs over the indices [0, n) in blocks of size on workers goroutines
// (GOMAXPROCS when workers <= 0). Each goroutine calls newWorker once,
// before its first block, for its scratch space (a goroutine that finds no
// block left makes none), then the function it returns for every block
// [lo, hi) it claims. Blocks are claimed in increasing order, each once. Once ctx is
// done no further block is started; For returns when every goroutine has
// stopped, with ctx.Err().
func For(ctx context.Context, n, size, workers int, newWorker func() func(lo, hi int)) error {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var block func(lo, hi int)
			for {
				lo := int(next.Add(int64(size))) - size
				if lo >= n || ctx.Err() != nil {
					return
				}
				if block == nil {
					block = newWorker()
				}
				block(lo, min(lo+size, n))
			}
		}()
	}
	wg.Wait()
	return ctx.Err()
}
