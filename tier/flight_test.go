package tier

import (
	"fmt"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

const testChunk = 256 << 10

func chunkRange(idx int64) string {
	return "bytes=" + strconv.FormatInt(idx*testChunk, 10) + "-" + strconv.FormatInt((idx+1)*testChunk-1, 10)
}

// TestColdSeekOneRoundTrip: the first request for the middle of an
// uncached file costs one request per tier, for the chunk it wants: the
// metadata (size from Content-Range, ETag) comes with it, at the edge and
// at the shield. A seek past the end costs one request too (the 416 gives
// the size).
//
// Mutations caught: fetching the metadata with chunk 0 (MetaAt ignoring
// its offset, or server.go calling Meta) makes the origin see chunk 0 and
// then chunk 5, and the edge make 2 requests.
func TestColdSeekOneRoundTrip(t *testing.T) {
	p := newTestPOP(t, nil)
	const track, kbps = 3, 160
	size := p.origin.cat.Size(track, kbps)
	start := int64(5*testChunk + 100)
	resp, body := p.get(t, p.url("t3", kbps, "SE"), "Range", fmt.Sprintf("bytes=%d-%d", start, start+999))
	if resp.StatusCode != 206 || string(body) != string(p.expect(track, kbps, start, start+999)) {
		t.Fatalf("cold seek: status %d, %d bytes", resp.StatusCode, len(body))
	}
	if got := p.edge.fetch.attempts.Load(); got != 1 {
		t.Errorf("edge made %d requests to the shield, want 1", got)
	}
	want := map[string]int{"GET " + chunkRange(5): 1}
	if got := p.origin.Ranges("/media/t3/160.ogg"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("origin got %v, want %v", got, want)
	}

	// Past the end of another cold file: 416, one request per tier.
	size4 := p.origin.cat.Size(4, kbps)
	resp, _ = p.get(t, p.url("t4", kbps, "SE"), "Range", fmt.Sprintf("bytes=%d-", size4+10))
	if resp.StatusCode != 416 {
		t.Fatalf("seek past the end: status %d, want 416", resp.StatusCode)
	}
	if got := p.edge.fetch.attempts.Load(); got != 2 {
		t.Errorf("edge made %d requests in all, want 2", got)
	}
	if got := p.origin.Ranges("/media/t4/160.ogg"); len(got) != 1 {
		t.Errorf("origin got %v for the seek past the end, want one request", got)
	}
	_ = size
}

// TestConcurrentColdFetchesOnce: many requests arriving together for cold
// files, some wanting chunk 0 (with which the first learns the
// metadata), some other chunks, some both: every chunk is fetched from
// the origin exactly once, and the edge asks the shield once per chunk.
// It runs at GOMAXPROCS 1 and 2 with a goroutine burning CPU, so that a
// window between publishing metadata and caching the chunk fetched with
// it is hit rather than hidden by timing.
//
// Mutations: it guards the end-to-end counts; fetching the metadata with
// chunk 0 is not caught here (every object's chunk 0 is wanted anyway:
// TestColdSeekOneRoundTrip catches it). Publishing the metadata before
// caching the chunk fetched with it (issue 12's failure: chunk 0 twice)
// opens a window of nanoseconds that this test did not hit in 8 runs with
// and without -race; cache's TestMetaAndChunkOneFlight pins that order
// deterministically with a hook.
func TestConcurrentColdFetchesOnce(t *testing.T) {
	for _, procs := range []int{1, 2} {
		t.Run(fmt.Sprintf("procs=%d", procs), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			stop := make(chan struct{})
			var burnt atomic.Int64
			go func() {
				for {
					select {
					case <-stop:
						return
					default:
						burnt.Add(1)
					}
				}
			}()
			defer close(stop)
			p := newTestPOP(t, nil)
			type req struct {
				track      int
				start, end int64
			}
			var reqs []req
			for track := 10; track < 14; track++ {
				reqs = append(reqs,
					req{track, 0, 999},                                   // chunk 0
					req{track, 100, 200},                                 // chunk 0 again
					req{track, testChunk - 10, testChunk + 10},           // 0 and 1
					req{track, 3*testChunk + 5, 3*testChunk + 6},         // 3
					req{track, 2 * testChunk, 4*testChunk - 1},           // 2 and 3
					req{track, 0, 2*testChunk - 1},                       // 0 and 1
					req{track, testChunk, testChunk},                     // 1
					req{track, 3*testChunk + 100, 3*testChunk + 100_000}, // 3
				)
			}
			want := map[string]map[string]int{}
			for _, r := range reqs {
				path := fmt.Sprintf("/media/t%d/96.ogg", r.track)
				if want[path] == nil {
					want[path] = map[string]int{}
				}
				for idx := r.start / testChunk; idx <= r.end/testChunk; idx++ {
					want[path]["GET "+chunkRange(idx)] = 1
				}
			}
			var wg sync.WaitGroup
			begin := make(chan struct{})
			for _, r := range reqs {
				url := p.url(fmt.Sprintf("t%d", r.track), 96, "SE")
				wg.Go(func() {
					<-begin
					req, _ := http.NewRequest("GET", url, nil)
					req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", r.start, r.end))
					resp, err := p.client.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					resp.Body.Close()
					if resp.StatusCode != 206 {
						t.Errorf("t%d %d-%d: status %d", r.track, r.start, r.end, resp.StatusCode)
					}
				})
			}
			close(begin)
			wg.Wait()
			total := 0
			paths := make([]string, 0, len(want))
			for path := range want {
				paths = append(paths, path)
			}
			sort.Strings(paths)
			for _, path := range paths {
				total += len(want[path])
				if got := p.origin.Ranges(path); fmt.Sprint(got) != fmt.Sprint(want[path]) {
					t.Errorf("origin got %v for %s, want each chunk once: %v", got, path, want[path])
				}
			}
			if got := p.edge.fetch.attempts.Load(); got != int64(total) {
				t.Errorf("edge made %d requests to the shield for %d chunks", got, total)
			}
			if burnt.Load() == 0 {
				t.Error("the CPU burner never ran")
			}
		})
	}
}
