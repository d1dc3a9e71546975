package config

import (
	"errors"
	"fmt"
)

// Errors collects what a Validate method finds, so that it reports every
// invalid field at once:
//
//	var errs config.Errors
//	if c.Edges < 1 {
//		errs.Add("edges", "must be positive, got %d", c.Edges)
//	}
//	errs.Prefix("cache", c.Cache.Validate())
//	return errs.Err()
//
// The zero value is empty and ready to use.
type Errors struct {
	errs []error
}

// Add records a *FieldError for field with a message formatted as by
// fmt.Sprintf (see Errorf).
func (e *Errors) Add(field, format string, args ...any) {
	e.errs = append(e.errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
}

// Prefix records err, the result of a nested Config's Validate, under
// field (see the function Prefix). A nil err records nothing.
func (e *Errors) Prefix(field string, err error) {
	if err != nil {
		e.errs = append(e.errs, Prefix(field, err))
	}
}

// Err returns what was recorded, joined (errors.Join), or nil when
// nothing was.
func (e *Errors) Err() error { return errors.Join(e.errs...) }
