// Package wait is how tests wait for something another goroutine does: a
// condition polled until it holds, failing the test with a message when a
// generous timeout passes. It never sleeps to synchronize; the short poll
// interval (1 ms, doubling to at most 50 ms) only spaces the checks.
//
//	wait.For(t, 10*time.Second, "the fill to reach the origin", func() bool {
//		return o.MediaRequests() > before
//	})
//
// Timeouts are bounds for a machine busy with other work, never figures a
// test asserts: a condition that holds returns at once.
package wait

import (
	"testing"
	"time"
)

// maxPoll bounds the interval between two checks.
const maxPoll = 50 * time.Millisecond

// For returns once cond holds; if it still does not after timeout, it
// fails t (Fatalf) naming what was awaited. Call it from the test's
// goroutine.
func For(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	ForState(t, timeout, what, func() (bool, string) { return cond(), "" })
}

// ForState is For with a condition that also describes the state it saw,
// which the failure message gives (the last one seen).
func ForState(t testing.TB, timeout time.Duration, what string, cond func() (ok bool, state string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	poll := time.Millisecond
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			if state == "" {
				t.Fatalf("timed out after %v waiting for %s", timeout, what)
			} else {
				t.Fatalf("timed out after %v waiting for %s; last state: %s", timeout, what, state)
			}
			return
		}
		time.Sleep(poll)
		poll = min(2*poll, maxPoll)
	}
}
