package handlers

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"idbridge/models"
)

// errorBody is the JSON error shape of every non-SCIM route.
type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

var statusByCode = map[models.Code]int{
	models.CodeInvalid:      http.StatusBadRequest,
	models.CodeUnauthorized: http.StatusUnauthorized,
	models.CodeForbidden:    http.StatusForbidden,
	models.CodeNotFound:     http.StatusNotFound,
	models.CodeConflict:     http.StatusConflict,
	models.CodePrecondition: http.StatusPreconditionFailed,
	models.CodeUnavailable:  http.StatusServiceUnavailable,
	models.CodeInternal:     http.StatusInternalServerError,
	models.CodeTooMany:      http.StatusTooManyRequests,
}

// retryAfterSeconds is the Retry-After of a 503 (the database restarting,
// a statement past its deadline) and of a 429 (a site over its share of
// concurrent requests): long enough for a restart or a burst to pass, short
// enough that identity providers do not fall behind.
const retryAfterSeconds = "2"

// setRetryAfter adds Retry-After to answers that ask the caller to come
// back: 503 and 429.
func setRetryAfter(c *gin.Context, status int) {
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		c.Header("Retry-After", retryAfterSeconds)
	}
}

// statusOf is the one place where error codes become HTTP statuses.
func statusOf(err error) int {
	if st, ok := statusByCode[models.ErrorCode(err)]; ok {
		return st
	}
	return http.StatusInternalServerError
}

// fail renders err as JSON. Internal errors are logged (with the request ID)
// and answered with a generic sentence; all others carry their message.
func (s *server) fail(c *gin.Context, err error) {
	st := statusOf(err)
	s.logFailure(c, st, err)
	setRetryAfter(c, st)
	body := errorBody{Error: models.ErrorMessage(err)}
	var me *models.Error
	if errors.As(err, &me) {
		body.Field = me.Field
		if me.RetryAfter > 0 {
			c.Header("Retry-After", strconv.FormatInt(int64((me.RetryAfter+time.Second-1)/time.Second), 10))
		}
	}
	c.Header("Cache-Control", "no-store")
	c.AbortWithStatusJSON(st, body)
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

func writeError(c *gin.Context, status int, msg string) {
	if isSCIMPath(c.Request.URL.Path) {
		// Under /scim even the router's and the middleware's answers (404,
		// 405, 413, 500) are SCIM messages.
		writeSCIMPlain(c, status, "", msg)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.AbortWithStatusJSON(status, errorBody{Error: msg})
}
