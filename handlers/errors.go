package handlers

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"idbridge/models"
)

// statusOf is the one place where error codes become HTTP statuses; a code
// it does not know is a 500.
func statusOf(code models.Code) int {
	switch code {
	case models.CodeInvalid:
		return http.StatusBadRequest
	case models.CodeUnauthorized:
		return http.StatusUnauthorized
	case models.CodeForbidden:
		return http.StatusForbidden
	case models.CodeNotFound:
		return http.StatusNotFound
	case models.CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case models.CodeConflict:
		return http.StatusConflict
	case models.CodePrecondition:
		return http.StatusPreconditionFailed
	case models.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case models.CodeTooMany:
		return http.StatusTooManyRequests
	case models.CodeNotImplemented:
		return http.StatusNotImplemented
	case models.CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// failure is an error as every answer renders it: the JSON, SCIM and HTML
// error bodies and their headers are all made from this one value.
type failure struct {
	status   int
	message  string // safe to show: internal errors say nothing of their cause
	field    string
	scimType string
	// retryAfter is the Retry-After header in seconds, "" for none.
	retryAfter string
}

// retryAfterSeconds is the Retry-After of a 503 (the database restarting,
// a statement past its deadline) and of a 429 (a site over its share of
// concurrent requests) that name no wait of their own: long enough for a
// restart or a burst to pass, short enough that identity providers do not
// fall behind.
const retryAfterSeconds = "2"

// failureOf classifies err. An error without a models.Error in its chain,
// or one whose code is internal or unknown, is a 500 whose message says
// nothing about the cause (internal errors may carry details that must not
// reach a client).
func failureOf(err error) failure {
	e, ok := models.AsError(err)
	if !ok {
		return failure{status: http.StatusInternalServerError, message: "internal error"}
	}
	f := failure{status: statusOf(e.Code), message: e.Message, field: e.Field, scimType: scimTypeOf(e)}
	if f.status == http.StatusInternalServerError {
		return failure{status: f.status, message: "internal error"}
	}
	switch {
	case e.RetryAfter > 0:
		f.retryAfter = strconv.FormatInt(int64((e.RetryAfter+time.Second-1)/time.Second), 10)
	case f.status == http.StatusServiceUnavailable || f.status == http.StatusTooManyRequests:
		f.retryAfter = retryAfterSeconds
	}
	return f
}

// scimTypeOf is the scimType a SCIM answer gives e: its own, else the one
// its code implies (uniqueness for a conflict, invalidValue for other
// invalid input), else none (RFC 7644 3.12 names none for the case).
func scimTypeOf(e *models.Error) string {
	if e.SCIMType != "" {
		return e.SCIMType
	}
	switch e.Code {
	case models.CodeConflict:
		return "uniqueness"
	case models.CodeInvalid:
		return "invalidValue"
	}
	return ""
}

// errorBody is the JSON error shape of every non-SCIM route.
type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// fail answers err and stops the chain: a SCIM error message under /scim,
// JSON elsewhere (the portal's pages answer in HTML: portalFail). Internal
// errors are logged with the request ID.
func (s *server) fail(c *gin.Context, err error) {
	f := failureOf(err)
	s.logFailure(c, f.status, err)
	refuse(c, f)
}

// refuse answers f without logging it: the router's and the middleware's
// own answers (404, 405, 413, a recovered panic) go through here too.
func refuse(c *gin.Context, f failure) {
	if f.retryAfter != "" {
		c.Header("Retry-After", f.retryAfter)
	}
	c.Header("Cache-Control", "no-store")
	if isSCIMPath(c.Request.URL.Path) {
		// Under /scim even the router's and the middleware's answers are
		// SCIM messages.
		writeSCIMFailure(c, f)
		return
	}
	c.AbortWithStatusJSON(f.status, errorBody{Error: f.message, Field: f.field})
}

// refuseWith answers a failure the HTTP layer finds itself.
func refuseWith(c *gin.Context, code models.Code, message string) {
	refuse(c, failureOf(&models.Error{Code: code, Message: message}))
}

// logFailure logs internal errors (500) with their detail, and 503s (a
// database outage: the operator wants to know) as warnings; the rest are
// the client's and only counted in the access log.
func (s *server) logFailure(c *gin.Context, status int, err error) {
	switch status {
	case http.StatusInternalServerError:
		s.Log.ErrorContext(c, "internal error", "request_id", requestID(c), "route", c.FullPath(), "error", err.Error())
	case http.StatusServiceUnavailable:
		s.Log.WarnContext(c, "unavailable", "request_id", requestID(c), "route", c.FullPath(), "error", err.Error())
	}
}
