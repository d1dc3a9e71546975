package config

import (
	"errors"
	"testing"
)

// TestErrors: every recorded error comes back, each a *FieldError naming
// its field, prefixed ones with the nested path; nothing recorded is nil.
// Mutations caught: Prefix recording a nil error (the empty case), Err
// keeping only the first error, Prefix not prefixing.
func TestErrors(t *testing.T) {
	var none Errors
	none.Prefix("cache", nil)
	if err := none.Err(); err != nil {
		t.Fatalf("no errors recorded: Err = %v, want nil", err)
	}
	var errs Errors
	errs.Add("edges", "must be from %d to %d", 1, 64)
	errs.Prefix("cache", errors.Join(Errorf("chunk_size", "too small"), Errorf("ttl", "negative")))
	errs.Prefix("keys", Errorf("[1].id", "bad"))
	errs.Prefix("identity", errors.New("plain"))
	err := errs.Err()
	want := []string{"edges: must be from 1 to 64", "cache.chunk_size: too small", "cache.ttl: negative", "keys[1].id: bad", "identity: plain"}
	var got []string
	for _, e := range leaves(err, nil) {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Errorf("%v is not a *FieldError", e)
		}
		got = append(got, e.Error())
	}
	if len(got) != len(want) {
		t.Fatalf("Err = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("error %d = %q, want %q", i, got[i], want[i])
		}
	}
}
