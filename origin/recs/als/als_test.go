package als

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

func randomMatrix(rows, cols int, density float64, seed uint64) *Matrix {
	r := rand.New(rand.NewPCG(seed, 1))
	var b Builder
	for u := 0; u < rows; u++ {
		for i := 0; i < cols; i++ {
			if r.Float64() < density {
				b.Add(int32(u), int32(i), float32(1+r.IntN(5)))
			}
		}
	}
	return b.Build(rows, cols)
}

func TestBuilderSumsDuplicatesAndSorts(t *testing.T) {
	var b Builder
	b.Add(1, 3, 2)
	b.Add(0, 2, 1)
	b.Add(1, 0, 1)
	b.Add(1, 3, 5)
	m := b.Build(3, 4)
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	want := map[[2]int]float32{{0, 2}: 1, {1, 0}: 1, {1, 3}: 7}
	if m.NNZ() != len(want) || m.Rows != 3 || m.Cols != 4 {
		t.Fatalf("Build: nnz %d dims %dx%d, want %d 3x4", m.NNZ(), m.Rows, m.Cols, len(want))
	}
	for r := 0; r < m.Rows; r++ {
		cols, vals := m.Row(r)
		for j, c := range cols {
			if want[[2]int{r, int(c)}] != vals[j] {
				t.Errorf("m[%d][%d] = %v, want %v", r, c, vals[j], want[[2]int{r, int(c)}])
			}
		}
	}
}

func TestTransposeMatchesDense(t *testing.T) {
	m := randomMatrix(17, 23, 0.2, 7)
	tr := m.Transpose()
	if err := tr.Validate(); err != nil {
		t.Fatal(err)
	}
	dense := func(m *Matrix) [][]float32 {
		d := make([][]float32, m.Rows)
		for r := range d {
			d[r] = make([]float32, m.Cols)
			cols, vals := m.Row(r)
			for j, c := range cols {
				d[r][c] = vals[j]
			}
		}
		return d
	}
	a, b := dense(m), dense(tr)
	for r := range a {
		for c := range a[r] {
			if a[r][c] != b[c][r] {
				t.Fatalf("transpose[%d][%d] = %v, want %v", c, r, b[c][r], a[r][c])
			}
		}
	}
}

// TestCGMatchesDirectSolve checks the solver against the normal equations
// built densely, with no YᵀY trick, and solved by Cholesky.
func TestCGMatchesDirectSolve(t *testing.T) {
	const users, items, k = 5, 40, 6
	const lambda, alpha = 0.1, 2.0
	m := randomMatrix(users, items, 0.3, 3)
	r := rand.New(rand.NewPCG(5, 5))
	y := make([]float32, items*k)
	for i := range y {
		y[i] = float32(r.NormFloat64())
	}
	g := gram(y, items, k, lambda, 1)
	s := newSolver(k, g, alpha, 50) // enough steps to converge (k=6)
	for u := 0; u < users; u++ {
		cols, vals := m.Row(u)
		x := make([]float32, k)
		s.solve(x, y, cols, vals)

		conf := make([]float64, items)
		pref := make([]float64, items)
		for i := range conf {
			conf[i] = 1
		}
		for j, c := range cols {
			conf[c] = 1 + alpha*float64(vals[j])
			pref[c] = 1
		}
		a := mat.NewSymDense(k, nil)
		b := mat.NewVecDense(k, nil)
		for i := 0; i < items; i++ {
			yi := y[i*k : (i+1)*k]
			for p := 0; p < k; p++ {
				b.SetVec(p, b.AtVec(p)+conf[i]*pref[i]*float64(yi[p]))
				for q := p; q < k; q++ {
					a.SetSym(p, q, a.At(p, q)+conf[i]*float64(yi[p])*float64(yi[q]))
				}
			}
		}
		for p := 0; p < k; p++ {
			a.SetSym(p, p, a.At(p, p)+lambda)
		}
		var ch mat.Cholesky
		if !ch.Factorize(a) {
			t.Fatal("normal equations not positive definite")
		}
		var want mat.VecDense
		if err := ch.SolveVecTo(&want, b); err != nil {
			t.Fatal(err)
		}
		for p := 0; p < k; p++ {
			if d := math.Abs(float64(x[p]) - want.AtVec(p)); d > 1e-3*(1+math.Abs(want.AtVec(p))) {
				t.Errorf("user %d: x[%d] = %v, want %v", u, p, x[p], want.AtVec(p))
			}
		}
	}
}

func TestLossDecreases(t *testing.T) {
	m := randomMatrix(200, 150, 0.05, 11)
	cfg := DefaultConfig()
	cfg.Factors = 8
	cfg.Workers = 2
	tr, err := NewTrainer(cfg, m)
	if err != nil {
		t.Fatal(err)
	}
	prev := tr.Loss()
	first := prev
	for it := 0; it < 6; it++ {
		if err := tr.Iterate(context.Background()); err != nil {
			t.Fatal(err)
		}
		l := tr.Loss()
		// CG solves are inexact, so allow a hair of slack per sweep.
		if l > prev*1.001 {
			t.Errorf("iteration %d: loss %v, was %v", it, l, prev)
		}
		prev = l
	}
	if prev > first*0.5 {
		t.Errorf("loss fell from %v to %v only", first, prev)
	}
}

func TestTrainHonoursCancel(t *testing.T) {
	m := randomMatrix(300, 100, 0.05, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cfg := DefaultConfig()
	cfg.Factors = 4
	if _, err := Train(ctx, cfg, m); err == nil {
		t.Fatal("Train with cancelled context: nil error")
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []func(*Config){
		func(c *Config) { c.Factors = 0 },
		func(c *Config) { c.Regularization = -1 },
		func(c *Config) { c.Alpha = 0 },
		func(c *Config) { c.Alpha = math.NaN() },
		func(c *Config) { c.CGSteps = 0 },
		func(c *Config) { c.Iterations = -1 },
	}
	for i, f := range bad {
		c := DefaultConfig()
		f(&c)
		if c.Validate() == nil {
			t.Errorf("case %d: Validate(%+v) = nil, want error", i, c)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig().Validate() = %v", err)
	}
}

func BenchmarkIterate(b *testing.B) {
	for _, size := range []struct {
		name         string
		users, items int
	}{{"5Kx2K", 5000, 2000}} {
		b.Run(size.name, func(b *testing.B) {
			m := randomMatrix(size.users, size.items, 0.01, 1)
			cfg := DefaultConfig()
			tr, err := NewTrainer(cfg, m)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := tr.Iterate(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
