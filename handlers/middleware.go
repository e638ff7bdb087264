package handlers

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"

	"github.com/gin-gonic/gin"

	"idbridge/models"
)

const requestIDKey = "idbridge.request_id"

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// requireRequestID honours a well-formed X-Request-ID from the caller (a
// load balancer's, say) and otherwise makes one, so log lines and error
// reports can be matched.
func (s *server) requireRequestID(c *gin.Context) {
	id := c.GetHeader("X-Request-ID")
	if !validRequestID.MatchString(id) {
		var b [12]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	c.Set(requestIDKey, id)
	c.Header("X-Request-ID", id)
	c.Next()
}

func requestID(c *gin.Context) string { return c.GetString(requestIDKey) }

// logAccess writes one line per request. It logs the path without the
// query string, which may carry a Connect JWT.
func (s *server) logAccess(c *gin.Context) {
	start := s.Now()
	c.Next()
	elapsed := s.Now().Sub(start)
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	status := c.Writer.Status()
	if s.metrics != nil {
		s.metrics.observe(c.Request.Method, route, status, elapsed)
	}
	s.Log.LogAttrs(c, levelFor(status), "request",
		slog.String("request_id", requestID(c)),
		slog.String("method", c.Request.Method),
		slog.String("route", route),
		slog.String("path", c.Request.URL.Path),
		slog.Int("status", status),
		slog.Int("bytes", c.Writer.Size()),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
	)
}

// recoverPanic turns a panic into a 500 without details and logs it once.
func (s *server) recoverPanic(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.Log.ErrorContext(c, "panic", "request_id", requestID(c), "route", c.FullPath(), "panic", fmt.Sprint(v))
			if !c.Writer.Written() {
				refuseWith(c, models.CodeInternal, "internal error")
			} else {
				c.Abort()
			}
		}
	}()
	c.Next()
}

// setSecurityHeaders sets the headers of SPEC section 9. Pages that
// Atlassian frames (the admin page) replace frame-ancestors with the origin
// of the site that opened them (siteFrameAncestors); everything else may
// not be framed at all.
func (s *server) setSecurityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	// URLs of framed pages carry a JWT in the query: send no referrer.
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	h.Set("X-Frame-Options", "DENY")
	if s.BaseURL != nil && s.BaseURL.Scheme == "https" {
		h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
	}
	c.Next()
}

// limitBody bounds request bodies: a declared Content-Length over the limit
// is refused at once with 413; a chunked body that runs past it makes the
// handler's read fail, which decodeJSON answers with 400 "too large".
func (s *server) limitBody(c *gin.Context) {
	if c.Request.ContentLength > s.MaxBodyBytes {
		refuseWith(c, models.CodeTooLarge, "request body is larger than "+strconv.FormatInt(s.MaxBodyBytes, 10)+" bytes")
		return
	}
	if c.Request.Body != nil {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.MaxBodyBytes)
	}
	c.Next()
}
