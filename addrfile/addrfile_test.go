package addrfile

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestAddConcurrent: nodes starting at once each land in the file once,
// with their internal listeners in the same order; a restart on the same
// address does not duplicate it. Catches: no lock (entries lost), a
// restart appended twice.
func TestAddConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pop.json")
	users := `[{"user_id":"demo-SE","country":"SE","token":"x"}]`
	if err := os.WriteFile(path, []byte(`{"users":`+users+`}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if err := Add(path, Entry{Role: "edge", Public: fmt.Sprintf("http://e%d", i), Internal: fmt.Sprintf("http://i%d", i)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := Add(path, Entry{Role: "edge", Public: "http://e3", Internal: "http://i3"}); err != nil {
		t.Fatal(err)
	}
	if err := Add(path, Entry{Role: "origin", Public: "http://o", Internal: "http://oi", Kafka: "k:1"}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	f, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Edges) != 8 || len(f.Internal.Edges) != 8 || f.Origin != "http://o" || f.Internal.Origin != "http://oi" ||
		len(f.Users) != 1 || f.Users[0] != (User{UserID: "demo-SE", Country: "SE", Token: "x"}) {
		t.Fatalf("file %s", b)
	}
	for i, e := range f.Edges {
		if "http://i"+e[len("http://e"):] != f.Internal.Edges[i] {
			t.Errorf("edge %s paired with %s", e, f.Internal.Edges[i])
		}
	}
	if err := Add(path, Entry{Role: "cache"}); err == nil {
		t.Error("unknown role accepted")
	}
}
