package scim

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"idbridge/models"
)

// "status a JSON string and scimType where RFC 7644 table 9 names one
// (uniqueness → 409, invalidFilter, … tooMany → 400)".
func TestErrorConstructors(t *testing.T) {
	tests := []struct {
		err      *Error
		status   int
		scimType string
		code     models.Code
	}{
		{Uniqueness("x"), 409, "uniqueness", models.CodeConflict},
		{InvalidFilter("x"), 400, "invalidFilter", models.CodeInvalid},
		{InvalidValue("x"), 400, "invalidValue", models.CodeInvalid},
		{InvalidPath("x"), 400, "invalidPath", models.CodeInvalid},
		{NoTarget("x"), 400, "noTarget", models.CodeInvalid},
		{Mutability("x"), 400, "mutability", models.CodeInvalid},
		{InvalidSyntax("x"), 400, "invalidSyntax", models.CodeInvalid},
		{TooMany("x"), 400, "tooMany", models.CodeInvalid},
		{InvalidVersion("x"), 400, "invalidVers", models.CodeInvalid},
		{NotFound("x"), 404, "", models.CodeNotFound},
		{PreconditionFailed("x"), 412, "", models.CodePrecondition},
		{NotImplemented("x"), 501, "", models.CodeInvalid},
		{Unauthorized("x"), 401, "", models.CodeUnauthorized},
		{Forbidden("x"), 403, "", models.CodeForbidden},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d %s", tt.status, tt.scimType), func(t *testing.T) {
			if tt.err.Status != tt.status || tt.err.ScimType != tt.scimType {
				t.Errorf("got %d %q, want %d %q", tt.err.Status, tt.err.ScimType, tt.status, tt.scimType)
			}
			var wrapped error = fmt.Errorf("handler: %w", tt.err)
			if got := models.ErrorCode(wrapped); got != tt.code {
				t.Errorf("models.ErrorCode = %q, want %q", got, tt.code)
			}
			if got := models.ErrorMessage(wrapped); got != "x" {
				t.Errorf("models.ErrorMessage = %q, want x", got)
			}
			if AsError(wrapped) != tt.err {
				t.Error("AsError did not return the *Error in the chain")
			}
		})
	}
}

func TestErrorDocument(t *testing.T) {
	b, err := json.Marshal(InvalidFilter("unknown attribute %q", "foo"))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"schemas":  []any{ErrorSchema},
		"status":   "400",
		"scimType": "invalidFilter",
		"detail":   `unknown attribute "foo"`,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("error body (-want +got):\n%s", d)
	}
	// "Never an empty documentationUri or a null value": no scimType key
	// when there is none.
	doc := NotFound("no such user").Document()
	if _, ok := doc["scimType"]; ok {
		t.Errorf("404 body has a scimType: %v", doc)
	}
	if doc["status"] != "404" {
		t.Errorf("status = %v, want the string 404", doc["status"])
	}
}

func TestAsError(t *testing.T) {
	tests := []struct {
		err    error
		status int
		detail string
	}{
		{models.Errorf(models.CodeNotFound, "user not found"), 404, "user not found"},
		{models.Errorf(models.CodeConflict, "taken"), 409, "taken"},
		{models.Errorf(models.CodePrecondition, "version"), 412, "version"},
		{models.Errorf(models.CodeUnauthorized, "token"), 401, "token"},
		{models.Errorf(models.CodeInternal, "db password=hunter2"), 500, "internal error"},
		{errors.New("connection refused to 10.0.0.1"), 500, "internal error"},
	}
	for _, tt := range tests {
		got := AsError(tt.err)
		if got.Status != tt.status || got.Detail != tt.detail {
			t.Errorf("AsError(%v) = %d %q, want %d %q", tt.err, got.Status, got.Detail, tt.status, tt.detail)
		}
	}
	if AsError(nil) != nil {
		t.Error("AsError(nil) != nil")
	}
	if e := AsError(models.Errorf(models.CodeConflict, "taken")); e.ScimType != "uniqueness" {
		t.Errorf("conflict scimType = %q, want uniqueness", e.ScimType)
	}
}
