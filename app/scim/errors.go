package scim

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"idbridge/models"
)

// The scimType values of RFC 7644 section 3.12, table 9.
const (
	SCIMTypeInvalidFilter = "invalidFilter"
	SCIMTypeTooMany       = "tooMany"
	SCIMTypeUniqueness    = "uniqueness"
	SCIMTypeMutability    = "mutability"
	SCIMTypeInvalidSyntax = "invalidSyntax"
	SCIMTypeInvalidPath   = "invalidPath"
	SCIMTypeNoTarget      = "noTarget"
	SCIMTypeInvalidValue  = "invalidValue"
	SCIMTypeInvalidVers   = "invalidVers"
	SCIMTypeSensitive     = "sensitive"
)

// SCIM protocol errors are models.Errors: the code picks the HTTP status
// (in handlers, like every other error), SCIMType carries the RFC 7644
// scimType, and Message is the detail, safe to show to the identity
// provider.
func newError(code models.Code, scimType, format string, args []any) *models.Error {
	detail := format
	if len(args) > 0 {
		detail = fmt.Sprintf(format, args...)
	}
	return &models.Error{Code: code, SCIMType: scimType, Message: detail}
}

// Uniqueness is 409 uniqueness: a userName or group displayName is taken.
func Uniqueness(format string, args ...any) *models.Error {
	return newError(models.CodeConflict, SCIMTypeUniqueness, format, args)
}

// InvalidFilter is 400 invalidFilter: a filter that does not parse, names an
// unknown attribute or applies an operator the attribute's type has not.
func InvalidFilter(format string, args ...any) *models.Error {
	return newError(models.CodeInvalid, SCIMTypeInvalidFilter, format, args)
}

// InvalidValue is 400 invalidValue: a missing required attribute, a value of
// the wrong type, an empty PATCH Operations list.
func InvalidValue(format string, args ...any) *models.Error {
	return newError(models.CodeInvalid, SCIMTypeInvalidValue, format, args)
}

// InvalidPath is 400 invalidPath: a PATCH path that does not parse or names
// an unknown attribute.
func InvalidPath(format string, args ...any) *models.Error {
	return newError(models.CodeInvalid, SCIMTypeInvalidPath, format, args)
}

// NoTarget is 400 noTarget: a PATCH operation without a target, such as a
// remove without a path.
func NoTarget(format string, args ...any) *models.Error {
	return newError(models.CodeInvalid, SCIMTypeNoTarget, format, args)
}

// Mutability is 400 mutability: an explicit change to a read-only or
// immutable attribute (id, meta).
func Mutability(format string, args ...any) *models.Error {
	return newError(models.CodeInvalid, SCIMTypeMutability, format, args)
}

// InvalidSyntax is 400 invalidSyntax: a body that is not the JSON the
// request needs.
func InvalidSyntax(format string, args ...any) *models.Error {
	return newError(models.CodeInvalid, SCIMTypeInvalidSyntax, format, args)
}

// NotFound is 404 without scimType: no such resource or route.
func NotFound(format string, args ...any) *models.Error {
	return newError(models.CodeNotFound, "", format, args)
}

// PreconditionFailed is 412 without scimType: If-Match does not match the
// resource's version.
func PreconditionFailed(format string, args ...any) *models.Error {
	return newError(models.CodePrecondition, "", format, args)
}

// Unauthorized is 401 without scimType: no, an unknown or a revoked token.
func Unauthorized(format string, args ...any) *models.Error {
	return newError(models.CodeUnauthorized, "", format, args)
}

// Forbidden is 403 without scimType: an operation not allowed here, such as
// a filter on /Schemas.
func Forbidden(format string, args ...any) *models.Error {
	return newError(models.CodeForbidden, "", format, args)
}

// withDetail returns err's SCIM error with its detail rewritten by edit;
// an error that is not a models.Error is returned as it is.
func withDetail(err error, edit func(detail string) string) error {
	e, ok := models.AsError(err)
	if !ok {
		return err
	}
	out := *e
	out.Message = edit(e.Message)
	return &out
}

var operationNumber = regexp.MustCompile(`^operation (\d+) `)

// Renumber rewrites "operation N" in an ApplyPatch error of a subset of the
// operations to the operation's number in the whole request.
func Renumber(err error, idx []int) error {
	return withDetail(err, func(detail string) string {
		m := operationNumber.FindStringSubmatch(detail)
		if m == nil {
			return detail
		}
		n, convErr := strconv.Atoi(m[1])
		if convErr != nil || n < 1 || n > len(idx) {
			return detail
		}
		return fmt.Sprintf("operation %d ", idx[n-1]+1) + detail[len(m[0]):]
	})
}

// OperationError names the operation (its 1-based number and op) in the
// detail of err.
func OperationError(i int, op PatchOperation, err error) error {
	return withDetail(err, func(detail string) string {
		return fmt.Sprintf("operation %d (%s): %s", i+1, strings.ToLower(op.Op), detail)
	})
}
