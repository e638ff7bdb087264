// Package models is idbridge's domain vocabulary: the types every other
// package speaks, with no dependency beyond the standard library.
package models

import (
	"errors"
	"fmt"
	"time"
)

// Code classifies an Error; handlers map each code to one HTTP status.
type Code string

// The error codes. Only CodeInternal is logged by the HTTP layer.
const (
	CodeInvalid      Code = "invalid"
	CodeUnauthorized Code = "unauthorized"
	CodeForbidden    Code = "forbidden"
	CodeNotFound     Code = "not_found"
	CodeConflict     Code = "conflict"
	CodePrecondition Code = "precondition"
	CodeUnavailable  Code = "unavailable"
	CodeInternal     Code = "internal"
	// CodeTooMany is a caller that has more requests in flight than its
	// share allows; it may try again shortly (HTTP 429 with Retry-After).
	CodeTooMany Code = "too_many_requests"
	// CodeTooLarge is a request larger than the server takes (a body past
	// its limit).
	CodeTooLarge Code = "too_large"
	// CodeNotImplemented is a request for an optional part of a protocol
	// that idbridge does not offer (SCIM's /Me and /Bulk).
	CodeNotImplemented Code = "not_implemented"
	// CodeMethodNotAllowed is a method the route does not take.
	CodeMethodNotAllowed Code = "method_not_allowed"
)

// Error is the one error type that crosses package boundaries with a
// meaning for the caller: the HTTP layer picks the status from Code alone
// and renders JSON, SCIM and HTML answers from the same value. Message is
// safe to show to the client; Field names the offending input field when
// there is one.
type Error struct {
	Code    Code
	Message string
	Field   string
	// SCIMType is the RFC 7644 (3.12) scimType of a SCIM protocol error,
	// empty when the RFC names none for the case.
	SCIMType string
	// Reason is a short, stable, snake_case cause for metrics and tests,
	// such as the connect package's Reason constants; never shown as the
	// answer.
	Reason string
	// RetryAfter, when set, is how long the caller should wait before
	// trying again (a cooldown); the HTTP layer sends it as Retry-After.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	s := string(e.Code)
	if e.SCIMType != "" {
		s += " " + e.SCIMType
	}
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	s += ": " + e.Message
	if e.Field != "" {
		s += " (" + e.Field + ")"
	}
	return s
}

// AsError returns the first *Error in err's chain.
func AsError(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// Errorf builds an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldError builds an invalid-input error that names the field.
func FieldError(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalid, Message: fmt.Sprintf(format, args...), Field: field}
}

// ErrorCode returns the code of the first *Error in err's chain, or
// CodeInternal when there is none.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorMessage returns the client-safe message of the first *Error in err's
// chain, or a generic sentence for internal errors (whose text may hold
// details that must not reach a client).
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// IsNotFound reports whether err carries CodeNotFound.
func IsNotFound(err error) bool { return err != nil && ErrorCode(err) == CodeNotFound }
