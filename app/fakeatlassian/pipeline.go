package fakeatlassian

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// maxBody bounds a request body the fake reads, as Atlassian's do.
const maxBody = 1 << 20

// caller is who a request authenticated as.
type caller struct {
	sa  *ServiceAccount // nil for the app's JWT and the org key
	how string          // "basic", "scoped", "oauth", "jwt", "orgkey"
}

type callerKey struct{}

func callerOf(r *http.Request) caller {
	c, _ := r.Context().Value(callerKey{}).(caller)
	return c
}

// authFunc authenticates a request for a route; ok false means 401.
type authFunc func(r *http.Request) (caller, bool)

// serve answers a request that reached the site through its origin or the
// gateway.
func (s *Site) serve(w http.ResponseWriter, r *http.Request, how via) {
	h, pattern := s.mux.Handler(r)
	if pattern == "" {
		s.pipeline(w, r, "unknown", func(*http.Request) (caller, bool) { return caller{}, true }, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusNotFound, jiraError("The requested resource could not be found."))
		}), how)
		return
	}
	s.pipeline(w, r, pattern, func(r *http.Request) (caller, bool) { return s.authenticate(r, how, pattern) }, h, how)
}

// authenticate checks the request's credentials exactly as the site (or
// the gateway in front of it) does: classic tokens only at the site's
// origin, scoped tokens and OAuth bearers only through the gateway, and the
// app's own JWT at the origin.
func (s *Site) authenticate(r *http.Request, how via, route string) (caller, bool) {
	if how == viaSite {
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "JWT "); ok {
			if err := s.checkAppJWT(r, tok); err != nil {
				s.mu.Lock()
				s.refused = append(s.refused, r.Method+" "+r.URL.EscapedPath()+": "+err.Error())
				s.mu.Unlock()
				return caller{}, false
			}
			return caller{how: "jwt"}, true
		}
	}
	sa, kind := s.serviceAccountFor(r, how, route)
	if sa == nil {
		return caller{}, false
	}
	return caller{sa: sa, how: kind}, true
}

// checkAppJWT checks a Connect app JWT as a site does: HS256 with the
// current shared secret of one of the site's installations, iss the app
// key, exp required, and a qsh of exactly this request relative to the
// site's base URL (computed by the package's own QSH, never by the code
// under test). A token in the query as well as in the header is refused:
// a URL carrying a token ends up in logs.
func (s *Site) checkAppJWT(r *http.Request, tok string) error {
	appKey, secrets := s.appSecrets()
	if len(secrets) == 0 {
		return errors.New("no Connect app is installed on the site")
	}
	if r.URL.Query().Has("jwt") {
		return errors.New("a token in the query string")
	}
	want, err := QSH(r.Method, s.Origin()+r.URL.RequestURI(), s.BaseURL())
	if err != nil {
		return err
	}
	var lastErr error
	for _, secret := range secrets {
		claims := jwt.MapClaims{}
		_, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return []byte(secret), nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithIssuer(appKey),
			jwt.WithTimeFunc(s.f.now), jwt.WithLeeway(30*time.Second))
		if err != nil {
			lastErr = err
			continue
		}
		if got, _ := claims["qsh"].(string); got != want {
			return fmt.Errorf("qsh %q, want %s", got, want)
		}
		return nil
	}
	return fmt.Errorf("the token verifies with no current shared secret: %w", lastErr)
}

// pipeline runs one request through faults, the rate limit and
// authentication to the route, and records what happened.
func (s *Site) pipeline(w http.ResponseWriter, r *http.Request, route string, auth authFunc, h http.Handler, how via) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		s.rec.count(&s.mu, route, http.StatusRequestEntityTooLarge)
		writeJSON(w, http.StatusRequestEntityTooLarge, jiraError("The request body is too large."))
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	now := s.f.now()
	id := identity(r, body)
	s.rec.noteRequest(&s.mu, id, route, now)

	fault := s.matchFault(route)
	if fault != nil && fault.Hang {
		select {
		case <-r.Context().Done():
		case <-s.f.closing:
		}
		s.rec.count(&s.mu, route, StatusGone)
		return
	}
	if fault != nil && fault.Hold != nil {
		select {
		case <-fault.Hold:
		case <-r.Context().Done():
			s.rec.count(&s.mu, route, StatusGone)
			return
		case <-s.f.closing:
			s.rec.count(&s.mu, route, StatusGone)
			return
		}
	}
	if fault != nil && fault.Delay > 0 {
		t := time.NewTimer(fault.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			s.rec.count(&s.mu, route, StatusGone)
			return
		}
	}
	if fault != nil && fault.DropBefore {
		s.rec.count(&s.mu, route, StatusDropped)
		drop(w)
		return
	}
	if fault != nil && fault.Status != 0 {
		s.answerFault(w, r, route, id, fault, how)
		return
	}
	if wait, limited := s.takeRate(s.f.now()); limited {
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		s.rec.retryAfter(&s.mu, id, s.f.now().Add(time.Duration(secs)*time.Second))
		s.rec.count(&s.mu, route, http.StatusTooManyRequests)
		writeJSON(w, http.StatusTooManyRequests, jiraError("Rate limit exceeded."))
		return
	}
	c, ok := auth(r)
	if !ok {
		s.rec.count(&s.mu, route, http.StatusUnauthorized)
		unauthorized(w, how)
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), callerKey{}, c))
	buf := &bufferedResponse{header: http.Header{}}
	h.ServeHTTP(buf, r)
	if fault != nil && fault.DropAfterApply {
		s.rec.count(&s.mu, route, StatusDropped)
		drop(w)
		return
	}
	if fault != nil && fault.HangAfterApply {
		select {
		case <-r.Context().Done():
		case <-s.f.closing:
		}
		s.rec.count(&s.mu, route, StatusGone)
		return
	}
	status := buf.status
	if status == 0 {
		status = http.StatusOK
	}
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		if until, ok := parseRetryAfter(buf.header.Get("Retry-After"), s.f.now()); ok {
			s.rec.retryAfter(&s.mu, id, until)
		}
	}
	s.rec.count(&s.mu, route, status)
	hdr := w.Header()
	for k, v := range buf.header {
		hdr[k] = v
	}
	w.WriteHeader(status)
	_, _ = w.Write(buf.body.Bytes())
}

// answerFault answers with an injected status, changing nothing.
func (s *Site) answerFault(w http.ResponseWriter, r *http.Request, route, id string, fault *Fault, how via) {
	now := s.f.now()
	if v := fault.retryAfterValue(now); v != "" {
		w.Header().Set("Retry-After", v)
		if until, ok := parseRetryAfter(v, now); ok {
			s.rec.retryAfter(&s.mu, id, until)
		}
	}
	s.rec.count(&s.mu, route, fault.Status)
	if fault.Body != "" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(fault.Status)
		_, _ = io.WriteString(w, fault.Body)
		return
	}
	switch fault.Status {
	case http.StatusUnauthorized:
		unauthorized(w, how)
	case http.StatusTooManyRequests:
		writeJSON(w, fault.Status, jiraError("Rate limit exceeded."))
	case http.StatusForbidden:
		writeJSON(w, fault.Status, jiraError("You do not have permission to perform this operation."))
	default:
		writeJSON(w, fault.Status, jiraError(http.StatusText(fault.Status)))
	}
}

func unauthorized(w http.ResponseWriter, how via) {
	if how == viaGateway {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"code": 401, "message": "Unauthorized; scope does not match"})
		return
	}
	writeJSON(w, http.StatusUnauthorized, jiraError("Client must be authenticated to access this resource."))
}

// identity names a request for the early-retry check: method, path, query
// (sorted) and body. A retry of the same change has the same identity.
func identity(r *http.Request, body []byte) string {
	q := r.URL.Query()
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(r.Method + " " + r.URL.Path + "?")
	for _, k := range keys {
		vs := slices.Clone(q[k])
		slices.Sort(vs)
		b.WriteString(url.QueryEscape(k) + "=" + url.QueryEscape(strings.Join(vs, ",")) + "&")
	}
	sum := sha256.Sum256(body)
	b.WriteString(" " + hex.EncodeToString(sum[:8]))
	return b.String()
}

// parseRetryAfter reads a Retry-After value (delta seconds or HTTP date).
func parseRetryAfter(v string, now time.Time) (time.Time, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, false
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return now.Add(time.Duration(n) * time.Second), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return t, true
	}
	return time.Time{}, false
}

// drop closes the connection without an answer.
func drop(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

// bufferedResponse holds a route's answer until the pipeline decides to
// send it or to drop the connection instead.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }
func (b *bufferedResponse) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}
func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	if v != nil {
		_ = json.NewEncoder(w).Encode(v)
	}
}

// jiraError is Jira's error body.
func jiraError(msgs ...string) map[string]any {
	return map[string]any{"errorMessages": msgs, "errors": map[string]string{}}
}

// decodeBody decodes a JSON request body; false (and a 400 written) when
// it is not JSON.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, jiraError("Unexpected character in the request body: it is not valid JSON."))
		return false
	}
	return true
}
