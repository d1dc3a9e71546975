package recs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"
	"gonum.org/v1/gonum/blas/gonum"

	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/origin/recs/content"
	"github.com/musiccdn/cdn/origin/recs/eval"
	"github.com/musiccdn/cdn/origin/recs/synth"
)

// split is the evaluation's held-out split: one track in ten is new.
var split = synth.Split{ColdEvery: 10}

// Fakes at the edges: a ledger, a catalog, embeddings and rights in memory.

type pair struct {
	user, track string
	plays       int64
}

type fakeCounts struct {
	mu    sync.Mutex
	pairs []pair
	err   error
}

func (f *fakeCounts) UserTrackCounts(ctx context.Context, fn func(string, string, int64) error) error {
	f.mu.Lock()
	pairs, ferr := f.pairs, f.err
	f.mu.Unlock()
	if ferr != nil {
		return ferr
	}
	for _, p := range pairs {
		if err := fn(p.user, p.track, p.plays); err != nil {
			return err
		}
	}
	return nil
}

// fakeRights denies the listed (track, country) pairs.
type fakeRights map[[2]string]bool

func (r fakeRights) Allowed(track, country string, at time.Time) bool {
	return !r[[2]string{track, country}]
}

// fixture is a planted-cluster data set split into training and held-out
// plays. One track in ten is cold: all its plays are held out.
type fixture struct {
	data      *synth.Data
	train     []pair
	heldWarm  map[string]map[string]bool // user → held-out warm tracks
	heldCold  map[string]map[string]bool // user → held-out cold tracks
	catalog   synth.Catalog
	emb       synth.Embeddings
	cold      map[string]bool
	warmIDs   []string
	coldIDs   []string
	trainPops map[string]int // users per track in training
}

func trackID(i int) string { return "t" + strconv.Itoa(i) }

func newFixture(t testing.TB, users, tracks, clusters int) *fixture {
	t.Helper()
	d, err := synth.New(synth.Config{Users: users, Tracks: tracks, Clusters: clusters,
		PairsPerUser: 20, Noise: 0.1, ZipfS: 1.1, Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{data: d, heldWarm: map[string]map[string]bool{}, heldCold: map[string]map[string]bool{},
		emb: synth.Embeddings{}, cold: map[string]bool{}, trainPops: map[string]int{}}
	for i := 0; i < tracks; i++ {
		id := trackID(i)
		f.catalog = append(f.catalog, id)
		f.emb[id] = content.Embed(d.Audio(i, 4000, 1), 4000)
		if split.Cold(i) {
			f.cold[id] = true
			f.coldIDs = append(f.coldIDs, id)
		} else {
			f.warmIDs = append(f.warmIDs, id)
		}
	}
	slices.Sort(f.catalog)
	err = d.Plays(func(u, i int, plays int64) error {
		user, track := "u"+strconv.Itoa(u), trackID(i)
		held := f.heldWarm
		switch {
		case f.cold[track]:
			held = f.heldCold
		case split.HeldWarm(u, i): // 20% of warm pairs
		default:
			f.train = append(f.train, pair{user, track, plays})
			f.trainPops[track]++
			return nil
		}
		if held[user] == nil {
			held[user] = map[string]bool{}
		}
		held[user][track] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Factors = 16
	cfg.Iterations = 10
	cfg.Regularization = 0.1
	cfg.NeighboursK = 20
	cfg.MinWarmTracks = 100
	cfg.CacheBytes = 1 << 20
	return cfg
}

func newService(t testing.TB, f *fixture, rights Rights) *Service {
	t.Helper()
	return newServiceConfig(t, f, rights, testConfig())
}

// trainedService is newService, trained once.
func trainedService(t testing.TB, f *fixture, rights Rights) *Service {
	t.Helper()
	s := newService(t, f, rights)
	if err := s.Train(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func newServiceConfig(t testing.TB, f *fixture, rights Rights, cfg Config) *Service {
	t.Helper()
	if rights == nil {
		rights = fakeRights{}
	}
	s, err := New(cfg, &fakeCounts{pairs: f.train}, f.catalog, f.emb, rights, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var (
	fixtureOnce sync.Once
	sharedFix   *fixture
)

// sharedFixture is built once: the embeddings cost a second or two.
func sharedFixture(t testing.TB) *fixture {
	fixtureOnce.Do(func() { sharedFix = newFixture(t, 1500, 600, 8) })
	return sharedFix
}

func indexes(m *model, ids []string) []int32 {
	out := make([]int32, len(ids))
	for j, id := range ids {
		out[j] = m.trackIdx[id]
	}
	return out
}

// TestRecoversPlantedClusters is the ranking-quality test: ALS must at
// least double the precision@10 of ranking by popularity on held-out
// plays, and tracks with no plays at all must be found from their audio
// clearly more often than at random.
func TestRecoversPlantedClusters(t *testing.T) {
	f := sharedFixture(t)
	s := trainedService(t, f, nil)
	m := s.model.Load()
	const k = 10
	warm := indexes(m, f.warmIDs)
	popular := slices.Clone(f.warmIDs)
	slices.SortStableFunc(popular, func(a, b string) int { return cmp.Compare(f.trainPops[b], f.trainPops[a]) })

	als, pop := eval.Mean{K: k}, eval.Mean{K: k}
	for user, rel := range f.heldWarm {
		u, ok := m.userIdx[user]
		if !ok {
			continue
		}
		als.Add(m.rankUser(u, k, warm, nil), rel)
		played, _ := m.userPlayed.Row(int(u))
		var top []string
		for _, id := range popular {
			if _, hit := slices.BinarySearch(played, m.trackIdx[id]); !hit {
				top = append(top, id)
				if len(top) == k {
					break
				}
			}
		}
		pop.Add(top, rel)
	}
	ap, amap, andcg, _ := als.Result()
	pp, pmap, pndcg, _ := pop.Result()
	t.Logf("ALS:        precision@10 %.4f MAP@10 %.4f NDCG@10 %.4f (%d users)", ap, amap, andcg, als.N)
	t.Logf("popularity: precision@10 %.4f MAP@10 %.4f NDCG@10 %.4f", pp, pmap, pndcg)
	if ap < 2*pp {
		t.Errorf("ALS precision@10 %.4f, want >= 2x popularity %.4f", ap, pp)
	}

	// Cold start: rank only the cold tracks for each user who played some.
	cold := indexes(m, f.coldIDs)
	coldEval := eval.Mean{K: k}
	var randomPrecision float64
	for user, rel := range f.heldCold {
		u, ok := m.userIdx[user]
		if !ok {
			continue
		}
		coldEval.Add(m.rankUser(u, k, cold, nil), rel)
		// A random ranking of the cold tracks has expected precision
		// |relevant| / |cold|.
		randomPrecision += float64(len(rel)) / float64(len(cold))
	}
	cp, cmap, cndcg, chit := coldEval.Result()
	randomPrecision /= float64(coldEval.N)
	t.Logf("cold start: precision@10 %.4f MAP@10 %.4f NDCG@10 %.4f hit rate %.3f; random precision@10 %.4f (%d users, %d cold tracks)",
		cp, cmap, cndcg, chit, randomPrecision, coldEval.N, len(cold))
	if m.coldCount != len(f.coldIDs) {
		t.Errorf("placed %d cold tracks, want %d", m.coldCount, len(f.coldIDs))
	}
	if cp < 2.5*randomPrecision {
		t.Errorf("cold-start precision@10 %.4f, want >= 2.5x random %.4f", cp, randomPrecision)
	}

	// Next for a cold track lands mostly in its own cluster.
	same, total := 0, 0
	for _, id := range f.coldIDs {
		got, err := s.Next(context.Background(), id, "SE", 5)
		if err != nil {
			t.Fatal(err)
		}
		i, _ := strconv.Atoi(id[1:])
		for _, g := range got {
			j, _ := strconv.Atoi(g[1:])
			total++
			if f.data.TrackCluster(i) == f.data.TrackCluster(j) {
				same++
			}
		}
	}
	purity := float64(same) / float64(total)
	t.Logf("cold next: %.2f of neighbours share the cluster (random %.2f)", purity, 1/float64(f.data.Clusters))
	if purity < 3/float64(f.data.Clusters) {
		t.Errorf("cold next purity %.2f, want >= %.2f", purity, 3/float64(f.data.Clusters))
	}
}

func TestNextExcludesSelfAndDenied(t *testing.T) {
	f := sharedFixture(t)
	// Deny, in SE only, the first 8 neighbours every track had in an
	// unrestricted model, so the filtered path and the full-scan fallback
	// both run.
	open := newService(t, f, nil)
	if err := open.Train(context.Background()); err != nil {
		t.Fatal(err)
	}
	rights := fakeRights{}
	for _, id := range f.catalog[:50] {
		got, err := open.Next(context.Background(), id, "SE", 8)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range got {
			rights[[2]string{g, "SE"}] = true
		}
	}
	rights[[2]string{"t5", "SE"}] = true
	s := trainedService(t, f, rights)
	for _, id := range f.catalog {
		for _, n := range []int{1, 3, 30} {
			got, err := s.Next(context.Background(), id, "SE", n)
			if err != nil {
				t.Fatalf("Next(%q) error %v", id, err)
			}
			if len(got) != n {
				t.Errorf("Next(%q, SE, %d) returned %d tracks, want %d", id, n, len(got), n)
			}
			seen := map[string]bool{}
			for _, g := range got {
				if g == id {
					t.Errorf("Next(%q, SE, %d) = %q, contains the track itself", id, n, got)
				}
				if rights[[2]string{g, "SE"}] {
					t.Errorf("Next(%q, SE, %d) = %q, contains %q denied in SE", id, n, got, g)
				}
				if seen[g] {
					t.Errorf("Next(%q, SE, %d) = %q, repeats %q", id, n, got, g)
				}
				seen[g] = true
			}
		}
	}
	// Without a country nothing is filtered, but the track itself still
	// never comes back.
	denied := 0
	for _, id := range f.catalog[:50] {
		got, err := s.Next(context.Background(), id, "", 8)
		if err != nil || len(got) != 8 || slices.Contains(got, id) {
			t.Errorf("Next(%q, \"\", 8) = %q, %v", id, got, err)
		}
		for _, g := range got {
			if rights[[2]string{g, "SE"}] {
				denied++
			}
		}
	}
	if denied == 0 {
		t.Error("Next without country filtered by SE rights")
	}
	if _, err := s.Next(context.Background(), "nope", "SE", 3); !errors.Is(err, ErrNotFound) {
		t.Errorf("Next(unknown) error = %v, want ErrNotFound", err)
	}
	if _, err := s.User(context.Background(), "nobody", "", 3); !errors.Is(err, ErrNotFound) {
		t.Errorf("User(unknown) error = %v, want ErrNotFound", err)
	}
}

// TestSwapWhileServing trains repeatedly while readers call Next; with
// -race it checks that the swap is atomic and that answers never stop.
func TestSwapWhileServing(t *testing.T) {
	f := newFixture(t, 200, 100, 4)
	s := newService(t, f, nil)
	ctx := context.Background()
	if _, err := s.Next(ctx, "t1", "SE", 3); !errors.Is(err, ErrNotReady) {
		t.Fatalf("Next before training: error %v, want ErrNotReady", err)
	}
	if err := s.Train(ctx); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				got, err := s.Next(ctx, trackID(i%100), "SE", 3)
				if err != nil || len(got) != 3 {
					errs <- fmt.Errorf("Next during training = %q, %v", got, err)
					return
				}
			}
		}()
	}
	for i := 0; i < 3; i++ {
		if err := s.Train(ctx); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if g := s.Generation(); g != 4 {
		t.Errorf("Generation() = %d, want 4", g)
	}
}

func TestTrainErrorKeepsModel(t *testing.T) {
	f := newFixture(t, 200, 100, 4)
	counts := &fakeCounts{pairs: f.train}
	s, err := New(testConfig(), counts, f.catalog, f.emb, fakeRights{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Train(context.Background()); err != nil {
		t.Fatal(err)
	}
	counts.mu.Lock()
	counts.err = errors.New("ledger down")
	counts.mu.Unlock()
	if err := s.Train(context.Background()); err == nil {
		t.Fatal("Train with failing ledger: nil error")
	}
	if g := s.Generation(); g != 1 {
		t.Errorf("Generation() = %d after failed training, want 1", g)
	}
	if got, err := s.Next(context.Background(), "t1", "SE", 3); err != nil || len(got) != 3 {
		t.Errorf("Next after failed training = %q, %v", got, err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		field string
		mod   func(*Config)
	}{
		{"factors", func(c *Config) { c.Factors = 0 }},
		{"alpha", func(c *Config) { c.Alpha = -1 }},
		{"iterations", func(c *Config) { c.Iterations = 0 }},
		{"retrain_every", func(c *Config) { c.RetrainEvery = 0 }},
		{"neighbours_k", func(c *Config) { c.NeighboursK = 0 }},
		{"cache_ttl", func(c *Config) { c.CacheTTL = 0 }},
		{"max_n", func(c *Config) { c.MaxN = 0 }},
	}
	for _, tt := range tests {
		c := DefaultConfig()
		tt.mod(&c)
		var fe *config.FieldError
		if err := c.Validate(); !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("Validate() with bad %s = %v, want FieldError on %q", tt.field, err, tt.field)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig().Validate() = %v", err)
	}
}

// onlyTracks allows, in country ZZ, only the listed tracks.
type onlyTracks map[string]bool

func (o onlyTracks) Allowed(track, country string, at time.Time) bool {
	return country != "ZZ" || o[track]
}

func TestUserHonoursRights(t *testing.T) {
	f := sharedFixture(t)
	s := newService(t, f, onlyTracks(f.cold))
	if err := s.Train(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"u1", "u2", "u3"} {
		got, err := s.User(context.Background(), user, "ZZ", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 10 {
			t.Errorf("User(%q, ZZ, 10) returned %d tracks, want 10", user, len(got))
		}
		for _, g := range got {
			if !f.cold[g] {
				t.Errorf("User(%q, ZZ, 10) = %q: %q is not allowed in ZZ", user, got, g)
			}
		}
		all, err := s.User(context.Background(), user, "", 10)
		if err != nil || len(all) != 10 {
			t.Errorf("User(%q, \"\", 10) = %q, %v", user, all, err)
		}
		for _, p := range f.train {
			if p.user == user && (slices.Contains(all, p.track) || slices.Contains(got, p.track)) {
				t.Errorf("User(%q) recommends %q, which the user already played", user, p.track)
			}
		}
	}
}

// BenchmarkQuery is the cost of one Next (3 tracks like the one given)
// and one User (10 for the user) on the trained fixture.
func BenchmarkQuery(b *testing.B) {
	f := sharedFixture(b)
	s := trainedService(b, f, nil)
	ctx := context.Background()
	for _, bb := range []struct {
		name  string
		query func(i int) ([]string, error)
	}{
		{"Next", func(i int) ([]string, error) { return s.Next(ctx, f.catalog[i%len(f.catalog)], "SE", 3) }},
		{"User", func(i int) ([]string, error) { return s.User(ctx, "u"+strconv.Itoa(i%1000), "", 10) }},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := bb.query(i); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestConfigYAML(t *testing.T) {
	cfg := DefaultConfig()
	src := "factors: 32\nalpha: 15\nretrain_every: 30m\ncache_ttl: 10s\nneighbours_k: 80\n"
	if err := yaml.Unmarshal([]byte(src), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Factors != 32 || cfg.Alpha != 15 || cfg.RetrainEvery != 30*time.Minute || cfg.CacheTTL != 10*time.Second || cfg.NeighboursK != 80 {
		t.Errorf("yaml %q decoded to %+v", src, cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
}

// TestNextWithIndex serves next from the approximate index: lists stay
// full, free of the track itself, and within its cluster.
func TestNextWithIndex(t *testing.T) {
	f := sharedFixture(t)
	cfg := testConfig()
	cfg.ExactNeighboursMax = 0
	cfg.NeighbourProbes = 2
	s := newServiceConfig(t, f, fakeRights{{"t3", "SE"}: true}, cfg)
	if err := s.Train(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.model.Load().exactNeighbours {
		t.Fatal("model used exact neighbours, want the index")
	}
	same, total := 0, 0
	for _, id := range f.catalog {
		got, err := s.Next(context.Background(), id, "SE", 30)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 30 || slices.Contains(got, id) || slices.Contains(got, "t3") {
			t.Fatalf("Next(%q, SE, 30) = %q: want 30 tracks without itself and t3", id, got)
		}
		i, _ := strconv.Atoi(id[1:])
		for _, g := range got[:5] {
			j, _ := strconv.Atoi(g[1:])
			total++
			if f.data.TrackCluster(i) == f.data.TrackCluster(j) {
				same++
			}
		}
	}
	if purity := float64(same) / float64(total); purity < 0.8 {
		t.Errorf("top-5 cluster purity with the index %.2f, want >= 0.8", purity)
	}
}

// TestBestAllowedRanksLikeAFullSort: the rights fallback's top-n scan
// returns exactly what ranking every placed track and filtering would
// (best first, ties by index), for filters keeping all, some and almost no
// tracks. Catches the heap's entry test flipped (it then evicts the best
// instead of the worst). Exact score ties do not occur in this fixture, so
// the tie order is not exercised here.
func TestBestAllowedRanksLikeAFullSort(t *testing.T) {
	s := trainedService(t, sharedFixture(t), nil)
	m := s.model.Load()
	reference := func(i int32, n int, allow func(string) bool) []string {
		k := m.k
		var all []entry
		for c := range m.tracks {
			if c != int(i) && m.placed[c] {
				var impl gonum.Implementation
				dot := impl.Sdot(k, m.itemN[int(i)*k:(int(i)+1)*k], 1, m.itemN[c*k:(c+1)*k], 1)
				all = append(all, entry{int32(c), dot})
			}
		}
		slices.SortFunc(all, func(a, b entry) int {
			if c := cmp.Compare(b.s, a.s); c != 0 {
				return c
			}
			return cmp.Compare(a.id, b.id)
		})
		var out []string
		for _, e := range all {
			if allow(m.tracks[e.id]) && len(out) < n {
				out = append(out, m.tracks[e.id])
			}
		}
		return out
	}
	filters := map[string]func(string) bool{
		"all":       func(string) bool { return true },
		"half":      func(id string) bool { return len(id)%2 == 0 },
		"one in 97": func(id string) bool { return xxhash.Sum64String(id)%97 == 0 },
	}
	for name, allow := range filters {
		for _, i := range []int32{0, 7, 123} {
			if !m.placed[i] {
				continue
			}
			for _, n := range []int{1, 5, 40} {
				got := m.bestAllowed(i, n, allow, nil)
				want := reference(i, n, allow)
				if !slices.Equal(got, want) {
					t.Errorf("%s, track %d, n %d: got %v, want %v", name, i, n, got, want)
				}
			}
		}
	}
}
