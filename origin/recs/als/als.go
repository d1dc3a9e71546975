// Package als factorizes an implicit-feedback matrix (users × items, values
// play counts) by alternating least squares, as in Hu, Koren and Volinsky,
// "Collaborative Filtering for Implicit Feedback Datasets" (ICDM 2008).
//
// Every cell of the matrix counts: preference p = 1 where plays > 0 and 0
// elsewhere, with confidence c = 1 + Alpha·plays (1 for the empty cells).
// Each half-step fixes one side's factors Y and solves, per row u,
//
//	(YᵀY + λI + Yᵀ(Cᵤ − I)Y) xᵤ = Yᵀ Cᵤ pᵤ
//
// where YᵀY is computed once per half-step and the correction term only
// touches the row's non-zero cells, so a row costs O(k² + nnzᵤ·k) rather
// than O(items·k²). The system is solved approximately by a few steps of
// the conjugate gradient method started from the previous factors (Takács,
// Pilászy and Tikk, "Applications of the conjugate gradient method for
// implicit feedback collaborative filtering", RecSys 2011), which is the
// method the implicit library uses. Rows are solved in parallel.
//
// The package is pure computation: no I/O, no clock, no logging.
package als

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"

	"github.com/musiccdn/cdn/origin/recs/parallel"
)

// Config holds the hyperparameters of a factorization.
type Config struct {
	// Factors is the rank k of the factorization. Default 64.
	Factors int
	// Regularization is λ, the L2 penalty on every factor vector.
	// Default 0.01 (as implicit's default).
	Regularization float64
	// Alpha scales play counts into confidence: c = 1 + Alpha·plays.
	// Default 40, the value Hu et al. found best.
	Alpha float64
	// Iterations is the number of full sweeps (users then items). Default 15.
	Iterations int
	// CGSteps is the number of conjugate-gradient steps per row and
	// half-step. 3 is implicit's default; more steps buy exactness per
	// sweep at linear cost. Default 3.
	CGSteps int
	// Workers is the number of goroutines solving rows; 0 means
	// GOMAXPROCS.
	Workers int
	// Seed makes the random initialization reproducible.
	Seed uint64
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{Factors: 64, Regularization: 0.01, Alpha: 40, Iterations: 15, CGSteps: 3}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Factors < 1 || c.Factors > 1024:
		return fmt.Errorf("als: factors %d out of range [1,1024]", c.Factors)
	case !(c.Regularization >= 0) || math.IsInf(c.Regularization, 0):
		return fmt.Errorf("als: regularization %v must be a finite number >= 0", c.Regularization)
	case !(c.Alpha > 0) || math.IsInf(c.Alpha, 0):
		return fmt.Errorf("als: alpha %v must be a finite number > 0", c.Alpha)
	case c.Iterations < 0:
		return fmt.Errorf("als: iterations %d must be >= 0", c.Iterations)
	case c.CGSteps < 1:
		return fmt.Errorf("als: cg steps %d must be >= 1", c.CGSteps)
	case c.Workers < 0:
		return fmt.Errorf("als: workers %d must be >= 0", c.Workers)
	}
	return nil
}

// Model is a trained factorization: row u of UserFactors (length K, at
// u*K) and row i of ItemFactors score the pair (u, i) by their dot product.
type Model struct {
	K           int
	Users       int
	Items       int
	UserFactors []float32
	ItemFactors []float32
}

// User returns the factor vector of user u; it aliases the model.
func (m *Model) User(u int) []float32 { return m.UserFactors[u*m.K : (u+1)*m.K] }

// Item returns the factor vector of item i; it aliases the model.
func (m *Model) Item(i int) []float32 { return m.ItemFactors[i*m.K : (i+1)*m.K] }

// Train factorizes ui (rows users, columns items) with cfg.
func Train(ctx context.Context, cfg Config, ui *Matrix) (*Model, error) {
	t, err := NewTrainer(cfg, ui)
	if err != nil {
		return nil, err
	}
	for it := 0; it < cfg.Iterations; it++ {
		if err := t.Iterate(ctx); err != nil {
			return nil, fmt.Errorf("als: iteration %d: %w", it, err)
		}
	}
	return t.Model(), nil
}

// Trainer runs a factorization one sweep at a time, so callers can time
// sweeps or watch the loss. It is not safe for concurrent use.
type Trainer struct {
	cfg    Config
	ui, iu *Matrix
	x, y   []float32
}

// NewTrainer validates cfg and ui and initializes the factors with small
// random values.
func NewTrainer(cfg Config, ui *Matrix) (*Trainer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if ui == nil {
		return nil, errors.New("als: nil matrix")
	}
	if len(ui.Indptr) != ui.Rows+1 || len(ui.Values) != len(ui.Indices) {
		return nil, errors.New("als: malformed matrix")
	}
	k := cfg.Factors
	t := &Trainer{
		cfg: cfg,
		ui:  ui,
		iu:  ui.Transpose(),
		x:   make([]float32, ui.Rows*k),
		y:   make([]float32, ui.Cols*k),
	}
	// Small positive values, as implicit does: a zero start would make the
	// first CG residual depend on nothing but the targets, and large values
	// would dominate the early sweeps.
	r := rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15))
	scale := float32(0.1 / math.Sqrt(float64(k)))
	for i := range t.x {
		t.x[i] = r.Float32() * scale
	}
	for i := range t.y {
		t.y[i] = r.Float32() * scale
	}
	return t, nil
}

// Iterate runs one sweep: users given items, then items given users.
func (t *Trainer) Iterate(ctx context.Context) error {
	if err := t.half(ctx, t.ui, t.x, t.y); err != nil {
		return err
	}
	return t.half(ctx, t.iu, t.y, t.x)
}

// Model returns the current factors. The model shares no memory with the
// trainer, so further sweeps do not change it.
func (t *Trainer) Model() *Model {
	return &Model{
		K:           t.cfg.Factors,
		Users:       t.ui.Rows,
		Items:       t.ui.Cols,
		UserFactors: append([]float32(nil), t.x...),
		ItemFactors: append([]float32(nil), t.y...),
	}
}

// Loss returns the objective Σ c(p − xᵀy)² + λ(‖X‖² + ‖Y‖²) over all cells,
// computed with the same YᵀY trick as the solver.
func (t *Trainer) Loss() float64 {
	k := t.cfg.Factors
	alpha := t.cfg.Alpha
	g := gram(t.y, t.ui.Cols, k, 0, t.workers())
	var impl gonum.Implementation
	gx := make([]float32, k)
	var loss float64
	for u := 0; u < t.ui.Rows; u++ {
		x := t.x[u*k : (u+1)*k]
		impl.Sgemv(blas.NoTrans, k, k, 1, g, k, x, 1, 0, gx, 1)
		loss += float64(impl.Sdot(k, x, 1, gx, 1)) // Σ_i (xᵀy_i)² over all items
		cols, vals := t.ui.Row(u)
		for j, c := range cols {
			conf := 1 + alpha*float64(vals[j])
			d := float64(impl.Sdot(k, x, 1, t.y[int(c)*k:(int(c)+1)*k], 1))
			// Replace the cell's (xᵀy)² term, counted with confidence 1,
			// by conf·(1 − xᵀy)².
			loss += conf*(1-d)*(1-d) - d*d
		}
	}
	var nx, ny float64
	for _, v := range t.x {
		nx += float64(v) * float64(v)
	}
	for _, v := range t.y {
		ny += float64(v) * float64(v)
	}
	return loss + t.cfg.Regularization*(nx+ny)
}

func (t *Trainer) workers() int {
	if t.cfg.Workers > 0 {
		return t.cfg.Workers
	}
	return runtime.GOMAXPROCS(0)
}

// rowsPerTask balances scheduling overhead against tail imbalance: rows
// differ wildly in length (popular items have many plays).
const rowsPerTask = 128

// half solves every row of m for x, holding y fixed.
func (t *Trainer) half(ctx context.Context, m *Matrix, x, y []float32) error {
	k := t.cfg.Factors
	workers := t.workers()
	g := gram(y, m.Cols, k, float32(t.cfg.Regularization), workers)
	return parallel.For(ctx, m.Rows, rowsPerTask, workers, func() func(lo, hi int) {
		s := newSolver(k, g, float32(t.cfg.Alpha), t.cfg.CGSteps)
		return func(lo, hi int) {
			for r := lo; r < hi; r++ {
				cols, vals := m.Row(r)
				s.solve(x[r*k:(r+1)*k], y, cols, vals)
			}
		}
	})
}

// gram returns YᵀY + λI as a full (both triangles) k×k row-major matrix,
// summing per-worker partial products over row blocks of y.
func gram(y []float32, n, k int, lambda float32, workers int) []float32 {
	var impl gonum.Implementation
	workers = max(1, min(workers, n/1024))
	parts := make([][]float32, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := n*w/workers, n*(w+1)/workers
		parts[w] = make([]float32, k*k)
		wg.Add(1)
		go func(p []float32) {
			defer wg.Done()
			if hi > lo {
				impl.Ssyrk(blas.Upper, blas.Trans, k, hi-lo, 1, y[lo*k:hi*k], k, 0, p, k)
			}
		}(parts[w])
	}
	wg.Wait()
	g := parts[0]
	for _, p := range parts[1:] {
		for i := range g {
			g[i] += p[i]
		}
	}
	for i := 0; i < k; i++ {
		g[i*k+i] += lambda
		for j := 0; j < i; j++ {
			g[i*k+j] = g[j*k+i]
		}
	}
	return g
}

// solver holds one worker's scratch vectors.
type solver struct {
	impl     gonum.Implementation
	k        int
	g        []float32
	alpha    float32
	steps    int
	r, p, ap []float32
}

func newSolver(k int, g []float32, alpha float32, steps int) *solver {
	return &solver{k: k, g: g, alpha: alpha, steps: steps,
		r: make([]float32, k), p: make([]float32, k), ap: make([]float32, k)}
}

// solve improves x towards the solution of
// (G + Yᵀ(C−I)Y) x = YᵀCp for one row, by CG from the current x.
func (s *solver) solve(x, y []float32, cols []int32, vals []float32) {
	k, impl := s.k, s.impl
	if len(cols) == 0 {
		// With no positive cells the solution is exactly 0 (λ > 0) or
		// any vector in the null space (λ = 0); 0 is the natural pick.
		clear(x)
		return
	}
	r, p, ap := s.r, s.p, s.ap
	// r = b − A x = Σ c·y − G x − Σ (c−1)(yᵀx) y
	impl.Sgemv(blas.NoTrans, k, k, -1, s.g, k, x, 1, 0, r, 1)
	for j, c := range cols {
		yi := y[int(c)*k : (int(c)+1)*k]
		conf := 1 + s.alpha*vals[j]
		impl.Saxpy(k, conf-(conf-1)*impl.Sdot(k, yi, 1, x, 1), yi, 1, r, 1)
	}
	copy(p, r)
	rsold := impl.Sdot(k, r, 1, r, 1)
	for step := 0; step < s.steps && rsold > 1e-20; step++ {
		impl.Sgemv(blas.NoTrans, k, k, 1, s.g, k, p, 1, 0, ap, 1)
		for j, c := range cols {
			yi := y[int(c)*k : (int(c)+1)*k]
			impl.Saxpy(k, s.alpha*vals[j]*impl.Sdot(k, yi, 1, p, 1), yi, 1, ap, 1)
		}
		pap := impl.Sdot(k, p, 1, ap, 1)
		if !(pap > 0) {
			return // numerically singular direction; keep what we have
		}
		a := rsold / pap
		impl.Saxpy(k, a, p, 1, x, 1)
		impl.Saxpy(k, -a, ap, 1, r, 1)
		rsnew := impl.Sdot(k, r, 1, r, 1)
		// p = r + (rsnew/rsold) p
		impl.Sscal(k, rsnew/rsold, p, 1)
		impl.Saxpy(k, 1, r, 1, p, 1)
		rsold = rsnew
	}
}
