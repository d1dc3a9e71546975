package origin

import (
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/tierauth"
)

// Reload puts cfg in force without a restart: the token signing keys
// (keys), the tier keys (tier_keys) and, for Services, the POPs a purge
// reaches (admin.pops). cfg is validated first; a cfg that is invalid or
// changes any other field (those need a restart) is refused with the field
// named, and the running configuration stays.
func (s *Server) Reload(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	cur := s.cfg
	next := cfg
	// Compare everything but the reloadable fields.
	next.Keys, next.TierKeys, next.Admin.POPs = cur.Keys, cur.TierKeys, cur.Admin.POPs
	if !reflect.DeepEqual(cur, next) {
		var errs []error
		cv, nv := reflect.ValueOf(cur), reflect.ValueOf(next)
		for i := range cv.NumField() {
			if !reflect.DeepEqual(cv.Field(i).Interface(), nv.Field(i).Interface()) {
				errs = append(errs, config.Errorf(yamlName(cv.Type().Field(i)), "changed: needs a restart (a reload changes only keys, tier_keys and admin.pops)"))
			}
		}
		return errors.Join(errs...)
	}
	kr, err := keyring(cfg.Keys)
	if err != nil {
		return config.Prefix("keys", err)
	}
	tk, err := tierauth.New(cfg.TierKeys)
	if err != nil {
		return config.Prefix("tier_keys", err)
	}
	s.keyring.Store(kr)
	s.tier.Store(tk)
	s.cfg.Keys, s.cfg.TierKeys, s.cfg.Admin.POPs = slices.Clone(cfg.Keys), slices.Clone(cfg.TierKeys), slices.Clone(cfg.Admin.POPs)
	s.log.Info("configuration reloaded")
	return nil
}

// Config is the configuration in force.
func (s *Server) Config() Config {
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	return s.cfg
}

// Reload is Server.Reload, and the admin API also takes the new POP list
// and signs its calls with the new tier keys.
func (s *Services) Reload(cfg Config) error {
	if err := s.Server.Reload(cfg); err != nil {
		return err
	}
	if s.Admin != nil {
		s.Admin.SetPOPs(cfg.Admin.POPs)
		s.Admin.SetTierKeys(s.tier.Load())
	}
	return nil
}

func yamlName(f reflect.StructField) string {
	if n := f.Tag.Get("yaml"); n != "" {
		return n
	}
	return fmt.Sprint(f.Name)
}
