package cluster

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestDuplicateNameRefused: a second node with a live member's name
// cannot join. Catches: no conflict delegate (Join succeeds), the
// conflict check dropped from Join.
func TestDuplicateNameRefused(t *testing.T) {
	key := newKey(t)
	a := startNode(t, "edge-dup", RoleEdge, ProfileFast, key)
	b := startNode(t, "edge-dup", RoleEdge, ProfileFast, key)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := b.Join(ctx, []string{a.Addr()})
	if !errors.Is(err, ErrDuplicateName) {
		t.Fatalf("Join of a second edge-dup = %v, want ErrDuplicateName", err)
	}
}
