package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/go-cmp/cmp"

	"idbridge/models"
)

// One value per error: the status from the code, the client-safe message,
// the scimType (its own or the one the code implies), Retry-After.
func TestFailureOf(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want failure
	}{
		{"invalid", models.FieldError("name", "bad"), failure{status: 400, message: "bad", field: "name", scimType: "invalidValue"}},
		{"invalid with its own scimType", &models.Error{Code: models.CodeInvalid, SCIMType: "invalidFilter", Message: "f"}, failure{status: 400, message: "f", scimType: "invalidFilter"}},
		{"conflict", models.Errorf(models.CodeConflict, "taken"), failure{status: 409, message: "taken", scimType: "uniqueness"}},
		{"wrapped not found", fmt.Errorf("find: %w", models.Errorf(models.CodeNotFound, "user not found")), failure{status: 404, message: "user not found"}},
		{"unauthorized with a reason", &models.Error{Code: models.CodeUnauthorized, Reason: "bad_qsh", Message: "token"}, failure{status: 401, message: "token"}},
		{"forbidden", models.Errorf(models.CodeForbidden, "no"), failure{status: 403, message: "no"}},
		{"method", models.Errorf(models.CodeMethodNotAllowed, "GET only"), failure{status: 405, message: "GET only"}},
		{"precondition", models.Errorf(models.CodePrecondition, "version"), failure{status: 412, message: "version"}},
		{"too large", models.Errorf(models.CodeTooLarge, "big"), failure{status: 413, message: "big"}},
		{"too many", models.Errorf(models.CodeTooMany, "busy"), failure{status: 429, message: "busy", retryAfter: "2"}},
		{"too many with its own wait", &models.Error{Code: models.CodeTooMany, Message: "cooldown", RetryAfter: 1500 * time.Millisecond}, failure{status: 429, message: "cooldown", retryAfter: "2"}},
		{"cooldown of a minute", &models.Error{Code: models.CodeTooMany, Message: "cooldown", RetryAfter: time.Minute}, failure{status: 429, message: "cooldown", retryAfter: "60"}},
		{"not implemented", models.Errorf(models.CodeNotImplemented, "no /Me"), failure{status: 501, message: "no /Me"}},
		{"unavailable", models.Errorf(models.CodeUnavailable, "db down"), failure{status: 503, message: "db down", retryAfter: "2"}},
		{"internal says nothing", models.Errorf(models.CodeInternal, "db password=hunter2"), failure{status: 500, message: "internal error"}},
		{"unknown code says nothing", &models.Error{Code: "weird", Message: "secret"}, failure{status: 500, message: "internal error"}},
		{"plain error says nothing", errors.New("connection refused to 10.0.0.1"), failure{status: 500, message: "internal error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := cmp.Diff(tt.want, failureOf(tt.err), cmp.AllowUnexported(failure{})); d != "" {
				t.Errorf("failureOf(%v) (-want +got):\n%s", tt.err, d)
			}
		})
	}
}

// The SCIM body of an error (RFC 7644 3.12): status as a JSON string,
// scimType and detail only when there is one (never an empty string or a
// null), WWW-Authenticate on a 401.
func TestSCIMFailureBody(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		want   map[string]any
		header map[string]string
	}{
		{"invalidFilter", &models.Error{Code: models.CodeInvalid, SCIMType: "invalidFilter", Message: `unknown attribute "foo"`},
			map[string]any{"schemas": []any{scimErrorSchema}, "status": "400", "scimType": "invalidFilter", "detail": `unknown attribute "foo"`}, nil},
		{"not found has no scimType", models.Errorf(models.CodeNotFound, "no such user"),
			map[string]any{"schemas": []any{scimErrorSchema}, "status": "404", "detail": "no such user"}, nil},
		{"unauthorized", models.Errorf(models.CodeUnauthorized, "token"),
			map[string]any{"schemas": []any{scimErrorSchema}, "status": "401", "detail": "token"},
			map[string]string{"WWW-Authenticate": `Bearer realm="idbridge SCIM"`}},
		{"unavailable", models.Errorf(models.CodeUnavailable, "db down"),
			map[string]any{"schemas": []any{scimErrorSchema}, "status": "503", "detail": "db down"},
			map[string]string{"Retry-After": "2"}},
		{"internal", errors.New("password=hunter2"),
			map[string]any{"schemas": []any{scimErrorSchema}, "status": "500", "detail": "internal error"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			c, _ := gin.CreateTestContext(w)
			c.Request = httptest.NewRequest("GET", "/scim/v2/s_x/Users", nil)
			refuse(c, failureOf(tt.err))
			var got map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatalf("%v: %s", err, w.Body)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("body (-want +got):\n%s", d)
			}
			if ct := w.Header().Get("Content-Type"); ct != scimContentType {
				t.Errorf("Content-Type %q", ct)
			}
			for k, v := range tt.header {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}
