package wait

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
)

// fakeT records a Fatalf instead of ending the test.
type fakeT struct {
	testing.TB
	failed string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
}

// TestFor: a condition that comes true later is waited for; one that
// never does fails with the message and the last state. Catches: For
// returning before cond holds (n below 3), a timeout never firing (the
// test hangs), the state or the name dropped from the message.
func TestFor(t *testing.T) {
	var n atomic.Int64
	For(t, 0x7fffffff, "three checks", func() bool { return n.Add(1) >= 3 })
	if n.Load() != 3 {
		t.Fatalf("returned after %d checks, want 3", n.Load())
	}
	f := &fakeT{TB: t}
	ForState(f, 0, "the impossible", func() (bool, string) { return false, "still false" })
	if !strings.Contains(f.failed, "the impossible") || !strings.Contains(f.failed, "still false") {
		t.Errorf("failure message %q", f.failed)
	}
	f = &fakeT{TB: t}
	For(f, 0, "nothing", func() bool { return false })
	if !strings.Contains(f.failed, "waiting for nothing") {
		t.Errorf("failure message %q", f.failed)
	}
}
