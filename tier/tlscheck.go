package tier

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/musiccdn/cdn/config"
)

// CheckFills makes a TLS handshake with every configured https upstream,
// verified as fills verify it (fill_ca, or the system's roots), so that a
// CA that does not match the upstreams' certificates stops start-up
// instead of making every fill fail later. An upstream that does not
// answer yet (not started) is not an error: only a certificate that does
// not verify is. Plain http upstreams are not dialled.
func (s *Server) CheckFills(ctx context.Context) error {
	var errs []error
	for i, u := range s.cfg.Upstreams {
		p, err := url.Parse(u)
		if err != nil || p.Scheme != "https" {
			continue
		}
		err = checkTLS(ctx, p.Host, s.fillTLS)
		var uerr x509.UnknownAuthorityError
		var herr x509.HostnameError
		var cerr x509.CertificateInvalidError
		var verr *tls.CertificateVerificationError
		switch {
		case err == nil:
		case errors.As(err, &uerr), errors.As(err, &herr), errors.As(err, &cerr), errors.As(err, &verr):
			field := "fill_ca"
			if s.cfg.FillCA == "" {
				field = "fill_ca (empty: the system's roots)"
			}
			errs = append(errs, config.Errorf(field, "does not verify upstreams[%d] %s: %v", i, u, err))
		default:
			s.log.Warn("upstream not reachable at start-up: its certificate is checked on the first fill", "upstream", u, "err", err)
		}
	}
	return errors.Join(errs...)
}

func checkTLS(ctx context.Context, host string, tc *tls.Config) error {
	if tc == nil {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tc = tc.Clone()
	if h, _, err := net.SplitHostPort(host); err == nil {
		tc.ServerName = h
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	d := tls.Dialer{Config: tc}
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return fmt.Errorf("tls to %s: %w", host, err)
	}
	return c.Close()
}
