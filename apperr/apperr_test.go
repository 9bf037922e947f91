package apperr

import (
	"errors"
	"fmt"
	"testing"
)

// What handlers rely on: a package's sentinel and its kind both match
// through wrapping; conflicts match by code, not by kind alone when the
// target names one; field errors read in a stable order; an empty
// collection is no error; the first message for a field stays.
func TestErrors_KindsCodesAndFields(t *testing.T) {
	notFound := NotFound("live code not found")
	wrapped := fmt.Errorf("reading: %w", notFound)
	if !errors.Is(wrapped, notFound) || !errors.Is(wrapped, ErrNotFound) || errors.Is(wrapped, ErrConflict) {
		t.Fatal("a wrapped not-found does not match its sentinel and kind only")
	}
	claimed, changed := Conflict("already_claimed", "claimed"), Conflict("version_conflict", "changed")
	if !errors.Is(claimed, ErrConflict) || errors.Is(claimed, changed) {
		t.Fatal("conflicts must match their kind, and another code must not match")
	}
	if ae, ok := As(wrapped); !ok || ae.Kind != KindNotFound || ae.Code != "not_found" {
		t.Fatalf("As: %+v %v", ae, ok)
	}
	if _, ok := As(errors.New("plain")); ok {
		t.Fatal("a plain error is not an *Error")
	}
	f := Fields{}
	if f.Err() != nil {
		t.Fatal("no field errors is no error")
	}
	f.Add("name", "is required")
	f.Add("name", "is too long")
	f.Add("mobile", "is not a phone number")
	err := f.Err()
	if err.Error() != "invalid input: mobile: is not a phone number; name: is required" || !errors.Is(err, ErrInvalid) {
		t.Fatalf("fields: %q", err)
	}
	if ae, _ := As(Field("code", "must be a number")); ae.Fields["code"] != "must be a number" || ae.Code != "validation_failed" {
		t.Fatalf("Field: %+v", ae)
	}
}
