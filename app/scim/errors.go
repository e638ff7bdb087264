// Package scim owns the SCIM 2.0 semantics of idbridge's provisioning
// server, free of database and HTTP framework: the User, EnterpriseUser and
// Group schemas, filter parsing and in-memory matching, PATCH paths and the
// PATCH engine, attribute projection, and the normalisation of incoming
// resources. It accepts the request shapes Okta and Microsoft Entra ID
// really send (shared/SCIM.md), not only the RFC 7643/7644 ones.
package scim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"idbridge/models"
)

// The scimType values of RFC 7644 section 3.12, table 9.
const (
	ScimTypeInvalidFilter = "invalidFilter"
	ScimTypeTooMany       = "tooMany"
	ScimTypeUniqueness    = "uniqueness"
	ScimTypeMutability    = "mutability"
	ScimTypeInvalidSyntax = "invalidSyntax"
	ScimTypeInvalidPath   = "invalidPath"
	ScimTypeNoTarget      = "noTarget"
	ScimTypeInvalidValue  = "invalidValue"
	ScimTypeInvalidVers   = "invalidVers"
	ScimTypeSensitive     = "sensitive"
)

// Error is a SCIM protocol error: the HTTP status, the RFC 7644 scimType
// (empty when the RFC names none for the case) and a detail that is safe to
// show to the identity provider. It unwraps to a models.Error with the
// matching code, so code that only knows models.Error still classifies it.
type Error struct {
	Status   int
	ScimType string
	Detail   string
}

func (e *Error) Error() string {
	if e.ScimType != "" {
		return fmt.Sprintf("scim %d %s: %s", e.Status, e.ScimType, e.Detail)
	}
	return fmt.Sprintf("scim %d: %s", e.Status, e.Detail)
}

// Unwrap returns the models.Error equivalent. 501 has no code of its own in
// models and maps to invalid: the request asks for something this server
// does not do, which is the client's to change.
func (e *Error) Unwrap() error {
	return &models.Error{Code: codeForStatus(e.Status), Message: e.Detail}
}

func codeForStatus(status int) models.Code {
	switch status {
	case http.StatusUnauthorized:
		return models.CodeUnauthorized
	case http.StatusForbidden:
		return models.CodeForbidden
	case http.StatusNotFound:
		return models.CodeNotFound
	case http.StatusConflict:
		return models.CodeConflict
	case http.StatusPreconditionFailed:
		return models.CodePrecondition
	case http.StatusServiceUnavailable:
		return models.CodeUnavailable
	case http.StatusTooManyRequests:
		return models.CodeTooMany
	}
	if status >= 500 && status != http.StatusNotImplemented {
		return models.CodeInternal
	}
	return models.CodeInvalid
}

// Document returns the RFC 7644 section 3.12 error body: status as a JSON
// string, scimType and detail only when non-empty (never an empty string or
// null in a response).
func (e *Error) Document() map[string]any {
	doc := map[string]any{
		"schemas": []string{ErrorSchema},
		"status":  strconv.Itoa(e.Status),
	}
	if e.ScimType != "" {
		doc["scimType"] = e.ScimType
	}
	if e.Detail != "" {
		doc["detail"] = e.Detail
	}
	return doc
}

// MarshalJSON renders the error as its RFC 7644 body (see Document).
func (e *Error) MarshalJSON() ([]byte, error) { return json.Marshal(e.Document()) }

func newError(status int, scimType, format string, args []any) *Error {
	detail := format
	if len(args) > 0 {
		detail = fmt.Sprintf(format, args...)
	}
	return &Error{Status: status, ScimType: scimType, Detail: detail}
}

// Uniqueness is 409 uniqueness: a userName or group displayName is taken.
func Uniqueness(format string, args ...any) *Error {
	return newError(http.StatusConflict, ScimTypeUniqueness, format, args)
}

// InvalidFilter is 400 invalidFilter: a filter that does not parse, names an
// unknown attribute or applies an operator the attribute's type has not.
func InvalidFilter(format string, args ...any) *Error {
	return newError(http.StatusBadRequest, ScimTypeInvalidFilter, format, args)
}

// InvalidValue is 400 invalidValue: a missing required attribute, a value of
// the wrong type, an empty PATCH Operations list.
func InvalidValue(format string, args ...any) *Error {
	return newError(http.StatusBadRequest, ScimTypeInvalidValue, format, args)
}

// InvalidPath is 400 invalidPath: a PATCH path that does not parse or names
// an unknown attribute.
func InvalidPath(format string, args ...any) *Error {
	return newError(http.StatusBadRequest, ScimTypeInvalidPath, format, args)
}

// NoTarget is 400 noTarget: a PATCH operation without a target, such as a
// remove without a path.
func NoTarget(format string, args ...any) *Error {
	return newError(http.StatusBadRequest, ScimTypeNoTarget, format, args)
}

// Mutability is 400 mutability: an explicit change to a read-only or
// immutable attribute (id, meta).
func Mutability(format string, args ...any) *Error {
	return newError(http.StatusBadRequest, ScimTypeMutability, format, args)
}

// InvalidSyntax is 400 invalidSyntax: a body that is not the JSON the
// request needs.
func InvalidSyntax(format string, args ...any) *Error {
	return newError(http.StatusBadRequest, ScimTypeInvalidSyntax, format, args)
}

// TooMany is 400 tooMany: the request would answer more resources than the
// server is willing to process.
func TooMany(format string, args ...any) *Error {
	return newError(http.StatusBadRequest, ScimTypeTooMany, format, args)
}

// InvalidVersion is 400 invalidVers: a malformed version in If-Match.
func InvalidVersion(format string, args ...any) *Error {
	return newError(http.StatusBadRequest, ScimTypeInvalidVers, format, args)
}

// NotFound is 404 without scimType: no such resource or route.
func NotFound(format string, args ...any) *Error {
	return newError(http.StatusNotFound, "", format, args)
}

// PreconditionFailed is 412 without scimType: If-Match does not match the
// resource's version.
func PreconditionFailed(format string, args ...any) *Error {
	return newError(http.StatusPreconditionFailed, "", format, args)
}

// NotImplemented is 501 without scimType: /Me, /Bulk and other optional
// parts of RFC 7644 this server does not offer.
func NotImplemented(format string, args ...any) *Error {
	return newError(http.StatusNotImplemented, "", format, args)
}

// Unauthorized is 401 without scimType: no, an unknown or a revoked token.
func Unauthorized(format string, args ...any) *Error {
	return newError(http.StatusUnauthorized, "", format, args)
}

// Forbidden is 403 without scimType: an operation not allowed here, such as
// a filter on /Schemas.
func Forbidden(format string, args ...any) *Error {
	return newError(http.StatusForbidden, "", format, args)
}

// AsError returns err as a SCIM error for rendering: the *Error in its chain
// if there is one, else one built from the models.Error code, else a 500
// whose detail says nothing about the cause (internal errors may carry
// details that must not reach a client).
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var se *Error
	if errors.As(err, &se) {
		return se
	}
	var me *models.Error
	if !errors.As(err, &me) {
		return &Error{Status: http.StatusInternalServerError, Detail: "internal error"}
	}
	msg := me.Message
	switch me.Code {
	case models.CodeInvalid:
		return &Error{Status: http.StatusBadRequest, ScimType: ScimTypeInvalidValue, Detail: msg}
	case models.CodeUnauthorized:
		return &Error{Status: http.StatusUnauthorized, Detail: msg}
	case models.CodeForbidden:
		return &Error{Status: http.StatusForbidden, Detail: msg}
	case models.CodeNotFound:
		return &Error{Status: http.StatusNotFound, Detail: msg}
	case models.CodeConflict:
		return &Error{Status: http.StatusConflict, ScimType: ScimTypeUniqueness, Detail: msg}
	case models.CodePrecondition:
		return &Error{Status: http.StatusPreconditionFailed, Detail: msg}
	case models.CodeUnavailable:
		return &Error{Status: http.StatusServiceUnavailable, Detail: msg}
	case models.CodeTooMany:
		return &Error{Status: http.StatusTooManyRequests, Detail: msg}
	}
	return &Error{Status: http.StatusInternalServerError, Detail: "internal error"}
}
