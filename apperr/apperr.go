// Package apperr is the one error vocabulary every domain package returns and
// handlers map to HTTP in one place: invalid input (422, with the fields that
// are wrong), not found (404), and conflicts (409, with a machine-readable
// code such as "version_conflict" or "already_claimed").
//
// Packages keep their own sentinels (livecode.ErrNotFound) as *Error values,
// so errors.Is works against both the sentinel and the kind:
//
//	errors.Is(err, livecode.ErrNotFound) // this package's not-found
//	errors.Is(err, apperr.ErrNotFound)   // any not-found
package apperr

import (
	"errors"
	"sort"
	"strings"
)

// Kind is the class of an error, which decides its HTTP status.
type Kind int

const (
	KindInvalid  Kind = iota + 1 // 422
	KindNotFound                 // 404
	KindConflict                 // 409
)

// Error is a domain error a user can act on.
type Error struct {
	Kind Kind
	// Code is machine-readable: validation_failed, not_found, or a conflict's own code.
	Code string
	Msg  string
	// Fields names what is wrong, by JSON path ("staff[0].daily_cap").
	Fields map[string]string
}

func (e *Error) Error() string {
	if len(e.Fields) == 0 {
		return e.Msg
	}
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ": " + e.Fields[k]
	}
	return e.Msg + ": " + strings.Join(parts, "; ")
}

// Is matches the kind sentinels (ErrInvalid, ErrNotFound, ErrConflict) and,
// for conflicts, another conflict with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	if t == e {
		return true
	}
	if t.Code == "" { // a kind sentinel
		return t.Kind == e.Kind
	}
	return false
}

// Kind sentinels for errors.Is.
var (
	ErrInvalid  = &Error{Kind: KindInvalid}
	ErrNotFound = &Error{Kind: KindNotFound}
	ErrConflict = &Error{Kind: KindConflict}
)

// Invalid is a validation error over fields (nil when fields is empty, so
// `return apperr.Invalid(errs)` after collecting is safe).
func Invalid(fields map[string]string) error {
	if len(fields) == 0 {
		return nil
	}
	return &Error{Kind: KindInvalid, Code: "validation_failed", Msg: "invalid input", Fields: fields}
}

// Field is a validation error on one field.
func Field(field, msg string) error {
	return &Error{Kind: KindInvalid, Code: "validation_failed", Msg: "invalid input", Fields: map[string]string{field: msg}}
}

// NotFound is a not-found error; msg says what ("live code not found").
func NotFound(msg string) *Error { return &Error{Kind: KindNotFound, Code: "not_found", Msg: msg} }

// Conflict is a conflict with its own code ("version_conflict").
func Conflict(code, msg string) *Error { return &Error{Kind: KindConflict, Code: code, Msg: msg} }

// As returns the *Error in err's chain, if any.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// Fields collects field errors while validating; Err turns them into one error.
type Fields map[string]string

// Add records msg for field unless the field already has an error.
func (f Fields) Add(field, msg string) {
	if _, ok := f[field]; !ok {
		f[field] = msg
	}
}

// Err is the validation error for the collected fields, or nil.
func (f Fields) Err() error { return Invalid(f) }
