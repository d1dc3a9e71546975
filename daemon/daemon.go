// Package daemon runs a node's servers until SIGINT or SIGTERM, then
// drains them (SIGHUP in between reloads the configuration of those that
// are Reloaders): each is asked to shut down gracefully within a deadline,
// so in-flight requests finish and load balancers see /readyz fail first.
package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Service is one server a daemon runs.
type Service interface {
	// Serve blocks until the service stops; it returns nil after a
	// Shutdown.
	Serve() error
	// Shutdown drains the service within ctx. It must be safe to call
	// twice.
	Shutdown(ctx context.Context) error
}

// Reloader is a service that can re-read its configuration without a
// restart. ReloadConfig must leave the running configuration in force
// when it returns an error.
type Reloader interface {
	ReloadConfig() error
}

// Run serves every service until one fails, ctx ends, or the process gets
// SIGINT or SIGTERM; then it shuts them all down, giving them drain to
// finish. It returns the first serve error, if any. On SIGHUP it calls
// ReloadConfig of every service that is a Reloader, and logs the outcome.
func Run(ctx context.Context, logger *slog.Logger, drain time.Duration, services ...Service) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	errc := make(chan error, len(services))
	for _, s := range services {
		go func() { errc <- s.Serve() }()
	}
	var first error
wait:
	for {
		select {
		case <-ctx.Done():
			logger.Info("draining", "deadline", drain)
			break wait
		case first = <-errc:
			logger.Error("server stopped", "err", first)
			break wait
		case <-hup:
			Reload(logger, services...)
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	var errs []error
	for _, s := range services {
		if err := s.Shutdown(sctx); err != nil {
			errs = append(errs, err)
		}
	}
	if first != nil {
		return first
	}
	return errors.Join(errs...)
}

// Reload calls ReloadConfig of every service that is a Reloader (what
// SIGHUP does) and returns the errors joined.
func Reload(logger *slog.Logger, services ...Service) error {
	var errs []error
	for _, s := range services {
		r, ok := s.(Reloader)
		if !ok {
			continue
		}
		if err := r.ReloadConfig(); err != nil {
			logger.Error("reload refused, running configuration kept", "err", err)
			errs = append(errs, err)
		} else {
			logger.Info("configuration reloaded")
		}
	}
	return errors.Join(errs...)
}

// HTTP adapts a net/http server on a listener to Service.
type HTTP struct {
	Server   *http.Server
	Listener net.Listener
}

// Serve implements Service.
func (h *HTTP) Serve() error {
	if err := h.Server.Serve(h.Listener); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown implements Service.
func (h *HTTP) Shutdown(ctx context.Context) error { return h.Server.Shutdown(ctx) }
