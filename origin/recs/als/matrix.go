package als

import (
	"errors"
	"fmt"
	"slices"
)

// Matrix is a sparse matrix in compressed sparse row form: the entries of
// row r are Indices[Indptr[r]:Indptr[r+1]] (column numbers, ascending) and
// the Values at the same positions. For ALS the rows are users, the columns
// items and the values play counts.
type Matrix struct {
	Rows, Cols int
	Indptr     []int64 // len Rows+1
	Indices    []int32
	Values     []float32
}

// NNZ is the number of stored entries.
func (m *Matrix) NNZ() int { return len(m.Indices) }

// Row returns the column numbers and values of row r. The slices alias m.
func (m *Matrix) Row(r int) ([]int32, []float32) {
	lo, hi := m.Indptr[r], m.Indptr[r+1]
	return m.Indices[lo:hi], m.Values[lo:hi]
}

// Transpose returns mᵀ, in O(NNZ) time; columns stay sorted because the
// rows of m are visited in order.
func (m *Matrix) Transpose() *Matrix {
	t := &Matrix{
		Rows:    m.Cols,
		Cols:    m.Rows,
		Indptr:  make([]int64, m.Cols+1),
		Indices: make([]int32, len(m.Indices)),
		Values:  make([]float32, len(m.Values)),
	}
	for _, c := range m.Indices {
		t.Indptr[c+1]++
	}
	for c := 0; c < m.Cols; c++ {
		t.Indptr[c+1] += t.Indptr[c]
	}
	next := slices.Clone(t.Indptr[:m.Cols])
	for r := 0; r < m.Rows; r++ {
		cols, vals := m.Row(r)
		for j, c := range cols {
			p := next[c]
			next[c]++
			t.Indices[p] = int32(r)
			t.Values[p] = vals[j]
		}
	}
	return t
}

// Validate checks the structural invariants a Matrix must hold before
// training: index bounds, ascending columns without duplicates, and
// non-negative values.
func (m *Matrix) Validate() error {
	if m.Rows < 0 || m.Cols < 0 {
		return errors.New("als: negative dimension")
	}
	if len(m.Indptr) != m.Rows+1 || m.Indptr[0] != 0 || m.Indptr[m.Rows] != int64(len(m.Indices)) || len(m.Values) != len(m.Indices) {
		return errors.New("als: inconsistent row pointers")
	}
	for r := 0; r < m.Rows; r++ {
		if m.Indptr[r] > m.Indptr[r+1] {
			return fmt.Errorf("als: row %d: decreasing row pointer", r)
		}
		cols, vals := m.Row(r)
		for j, c := range cols {
			if c < 0 || int(c) >= m.Cols {
				return fmt.Errorf("als: row %d: column %d out of range", r, c)
			}
			if j > 0 && cols[j-1] >= c {
				return fmt.Errorf("als: row %d: columns not strictly ascending", r)
			}
			if !(vals[j] >= 0) {
				return fmt.Errorf("als: row %d column %d: bad value %v", r, c, vals[j])
			}
		}
	}
	return nil
}

// Builder collects (row, column, value) triplets in any order and builds a
// Matrix, summing duplicates. The zero value is ready to use.
type Builder struct {
	rows, cols []int32
	vals       []float32
	maxR, maxC int32
}

// Add appends one entry; r and c must be non-negative.
func (b *Builder) Add(r, c int32, v float32) {
	b.rows = append(b.rows, r)
	b.cols = append(b.cols, c)
	b.vals = append(b.vals, v)
	b.maxR = max(b.maxR, r+1)
	b.maxC = max(b.maxC, c+1)
}

// Len is the number of triplets added so far.
func (b *Builder) Len() int { return len(b.rows) }

// Build returns the matrix with at least rows×cols dimensions (larger if
// an added entry needs it). The Builder may be reused after Reset.
func (b *Builder) Build(rows, cols int) *Matrix {
	rows = max(rows, int(b.maxR))
	cols = max(cols, int(b.maxC))
	m := &Matrix{Rows: rows, Cols: cols, Indptr: make([]int64, rows+1)}
	for _, r := range b.rows {
		m.Indptr[r+1]++
	}
	for r := 0; r < rows; r++ {
		m.Indptr[r+1] += m.Indptr[r]
	}
	idx := make([]int32, len(b.rows))
	val := make([]float32, len(b.rows))
	next := slices.Clone(m.Indptr[:rows])
	for k, r := range b.rows {
		p := next[r]
		next[r]++
		idx[p] = b.cols[k]
		val[p] = b.vals[k]
	}
	// Sort each row by column and merge duplicates in place.
	type ent struct {
		c int32
		v float32
	}
	var buf []ent
	out := int64(0)
	for r := 0; r < rows; r++ {
		lo, hi := m.Indptr[r], m.Indptr[r+1]
		buf = buf[:0]
		for p := lo; p < hi; p++ {
			buf = append(buf, ent{idx[p], val[p]})
		}
		slices.SortFunc(buf, func(a, b ent) int { return int(a.c) - int(b.c) })
		m.Indptr[r] = out
		for j, e := range buf {
			if j > 0 && buf[j-1].c == e.c {
				val[out-1] += e.v
				continue
			}
			idx[out] = e.c
			val[out] = e.v
			out++
		}
	}
	m.Indptr[rows] = out
	m.Indices = idx[:out:out]
	m.Values = val[:out:out]
	return m
}

// Reset drops the collected triplets.
func (b *Builder) Reset() { *b = Builder{} }
