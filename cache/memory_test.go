package cache

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestMemoryWindow: a new chunk is readable at once from the window; the
// window's oldest chunks move on to ristretto; Del removes from both.
func TestMemoryWindow(t *testing.T) {
	m, err := NewMemory(1<<20, 64<<10, 4096) // window of 16 chunks
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	chunk := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 4096) }
	for i := range 64 {
		m.Set(uint64(i), chunk(i))
		if b, ok := m.Get(uint64(i)); !ok || !bytes.Equal(b, chunk(i)) {
			t.Fatalf("chunk %d not readable right after Set", i)
		}
	}
	m.Wait()
	if m.used > m.budget || len(m.items) != 16 {
		t.Fatalf("window holds %d bytes in %d chunks, budget %d", m.used, len(m.items), m.budget)
	}
	// The most recent 16 are in the window; the others were offered to
	// ristretto, which had room and took them.
	for i := range 64 {
		if b, ok := m.Get(uint64(i)); !ok || !bytes.Equal(b, chunk(i)) {
			t.Errorf("chunk %d lost", i)
		}
	}
	m.Del(63)
	m.Del(0)
	m.Wait()
	for _, k := range []uint64{0, 63} {
		if _, ok := m.Get(k); ok {
			t.Errorf("chunk %d still there after Del", k)
		}
	}
}

// TestMemoryAgainstMap: whatever Memory returns is the bytes of that key
// (a cache may forget, never confuse); as with chunk keys, a key's bytes
// never change.
func TestMemoryAgainstMap(t *testing.T) {
	m, err := NewMemory(256<<10, 64<<10, 1024)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	hits := 0
	for n := 0; n < 20000; n++ {
		k := uint64(rng.IntN(1000))
		switch rng.IntN(10) {
		case 0:
			m.Del(k)
			m.Wait()
		case 1, 2:
			v := make([]byte, 1024)
			r := rand.New(rand.NewPCG(k, 99))
			for i := range v {
				v[i] = byte(r.Uint32())
			}
			m.Set(k, v)
		default:
			if got, ok := m.Get(k); ok {
				hits++
				want := make([]byte, 1024)
				r := rand.New(rand.NewPCG(k, 99))
				for i := range want {
					want[i] = byte(r.Uint32())
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("Get(%d) returned stale or foreign bytes", k)
				}
			}
		}
	}
	if hits == 0 {
		t.Error("no hits at all")
	}
}

func TestMemoryGetAllocs(t *testing.T) {
	m, _ := NewMemory(1<<20, 256<<10, 4096)
	defer m.Close()
	m.Set(1, make([]byte, 4096))
	if n := testing.AllocsPerRun(100, func() { m.Get(1) }); n != 0 {
		t.Errorf("Get allocates %v times", n)
	}
}
