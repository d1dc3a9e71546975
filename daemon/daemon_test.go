package daemon

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"syscall"
	"testing"
	"time"
)

// service serves until Shutdown and counts reloads; its second reload
// fails.
type service struct {
	serving  chan struct{}
	stop     chan struct{}
	reloaded chan error
	n        int
}

func (s *service) Serve() error { close(s.serving); <-s.stop; return nil }

func (s *service) Shutdown(context.Context) error {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	return nil
}

func (s *service) ReloadConfig() error {
	s.n++
	var err error
	if s.n == 2 {
		err = errors.New("bad file")
	}
	s.reloaded <- err
	return err
}

// TestRunReloadsOnSIGHUP: SIGHUP reloads every Reloader and does not stop
// the service, also when a reload fails. Mutation caught: the SIGHUP case
// breaking out of the loop (Run returns after the first reload).
func TestRunReloadsOnSIGHUP(t *testing.T) {
	s := &service{serving: make(chan struct{}), stop: make(chan struct{}), reloaded: make(chan error, 2)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, slog.New(slog.DiscardHandler), time.Second, s) }()
	<-s.serving // Run has installed its signal handlers before serving
	for i := range 2 {
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-s.reloaded:
			if (err != nil) != (i == 1) {
				t.Fatalf("reload %d: %v", i, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("SIGHUP did not reload")
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned after SIGHUP: %v", err)
		default:
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
