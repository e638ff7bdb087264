package scim

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"idbridge/models"
)

// "status a JSON string and scimType where RFC 7644 table 9 names one
// (uniqueness → 409, invalidFilter, … tooMany → 400)": the code picks the
// status (handlers.statusOf, tested with the SCIM body in handlers), the
// error carries the scimType.
func TestErrorConstructors(t *testing.T) {
	tests := []struct {
		err      *models.Error
		code     models.Code
		scimType string
	}{
		{Uniqueness("x"), models.CodeConflict, "uniqueness"},
		{InvalidFilter("x"), models.CodeInvalid, "invalidFilter"},
		{InvalidValue("x"), models.CodeInvalid, "invalidValue"},
		{InvalidPath("x"), models.CodeInvalid, "invalidPath"},
		{NoTarget("x"), models.CodeInvalid, "noTarget"},
		{Mutability("x"), models.CodeInvalid, "mutability"},
		{InvalidSyntax("x"), models.CodeInvalid, "invalidSyntax"},
		{NotFound("x"), models.CodeNotFound, ""},
		{PreconditionFailed("x"), models.CodePrecondition, ""},
		{Unauthorized("x"), models.CodeUnauthorized, ""},
		{Forbidden("x"), models.CodeForbidden, ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %s", tt.code, tt.scimType), func(t *testing.T) {
			if diff := cmp.Diff(&models.Error{Code: tt.code, SCIMType: tt.scimType, Message: "x"}, tt.err); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			var wrapped error = fmt.Errorf("handler: %w", tt.err)
			if got := models.ErrorCode(wrapped); got != tt.code {
				t.Errorf("models.ErrorCode = %q, want %q", got, tt.code)
			}
			if got, _ := models.AsError(wrapped); got != tt.err {
				t.Error("models.AsError did not return the error in the chain")
			}
		})
	}
}

// An error of a PATCH operation names the operation; the code and scimType
// stay, and an error that is not a models.Error is left as it is.
func TestOperationError(t *testing.T) {
	err := OperationError(2, PatchOperation{Op: "Add"}, fmt.Errorf("apply: %w", InvalidPath("no such attribute")))
	e := testError(err)
	want := &models.Error{Code: models.CodeInvalid, SCIMType: SCIMTypeInvalidPath, Message: "operation 3 (add): no such attribute"}
	if diff := cmp.Diff(want, e); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
	plain := fmt.Errorf("disk on fire")
	if got := OperationError(0, PatchOperation{Op: "add"}, plain); got != plain {
		t.Errorf("an internal error was rewritten: %v", got)
	}
}
