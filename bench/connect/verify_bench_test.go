package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"idbridge/app/connect"
)

// The benchmarks drive App.Handler() in-process (no socket, no load
// generator) with the same requests run.sh sends over HTTP:
//
//	go test ./bench/connect -run '^$' -bench . -benchtime 3s
//	IDBRIDGE_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable go test ./bench/connect -run '^$' -bench .
//
// Plain go test runs only TestHarness, a quick sanity check.

const envTestDatabaseURL = "IDBRIDGE_TEST_DATABASE_URL"

// backends lists SQLite, and PostgreSQL when IDBRIDGE_TEST_DATABASE_URL is
// set (its server gets a fresh database, dropped afterwards).
func backends() []harnessOptions {
	out := []harnessOptions{{DB: dbSQLite}}
	if u := strings.TrimSpace(os.Getenv(envTestDatabaseURL)); u != "" {
		out = append(out, harnessOptions{DB: dbPostgres, PGURL: u})
	}
	return out
}

func newHarness(tb testing.TB, o harnessOptions) *harness {
	tb.Helper()
	tmpl, err := os.ReadFile("../../atlassian-connect.json")
	if err != nil {
		tb.Fatal(err)
	}
	o.Descriptor = tmpl
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := startHarness(ctx, o)
	if err != nil {
		tb.Fatalf("start %s harness: %v", o.DB, err)
	}
	tb.Cleanup(func() {
		if err := h.Close(); err != nil {
			tb.Errorf("stop harness: %v", err)
		}
	})
	return h
}

// statusWriter is the cheapest ResponseWriter: it keeps the status and
// drops the body, so that the benchmark measures idbridge, not a recorder.
type statusWriter struct {
	header http.Header
	status int
}

func (w *statusWriter) Header() http.Header         { return w.header }
func (w *statusWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

// newRequest is what net/http hands the handler for a GET over the wire.
func newRequest(h *harness, path, authorization string) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, h.BaseURL+path, nil)
	r.RemoteAddr = "127.0.0.1:50000"
	r.RequestURI = path
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	return r
}

// serve sends one request to the handler and returns the status.
func serve(h http.Handler, r *http.Request) int {
	w := &statusWriter{header: make(http.Header, 8)}
	h.ServeHTTP(w, r)
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// benchRoute drives path serially and in parallel; auth returns, for a
// harness, the function that gives each request's Authorization header.
func benchRoute(b *testing.B, path string, auth func(testing.TB, *harness) func() string) {
	for _, o := range backends() {
		b.Run(o.DB, func(b *testing.B) {
			h := newHarness(b, o)
			handler := h.App.Handler()
			next := auth(b, h)
			if s := serve(handler, newRequest(h, path, next())); s != http.StatusOK {
				b.Fatalf("GET %s: %d", path, s)
			}
			b.Run("serial", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if s := serve(handler, newRequest(h, path, next())); s != http.StatusOK {
						b.Fatalf("GET %s: %d", path, s)
					}
				}
			})
			b.Run("parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if s := serve(handler, newRequest(h, path, next())); s != http.StatusOK {
							b.Errorf("GET %s: %d", path, s)
							return
						}
					}
				})
			})
		})
	}
}

// same returns the one header a, for every request.
func same(a string) func() string { return func() string { return a } }

// BenchmarkContextRoute is GET /api/admin/site with a context JWT: token
// parsed and verified (HS256, exp, iss, qsh "context-qsh", sub), site from
// the in-process cache, admin answer from the 60 s cache, JSON answer.
func BenchmarkContextRoute(b *testing.B) {
	benchRoute(b, "/api/admin/site", func(_ testing.TB, h *harness) func() string { return same("JWT " + h.Token) })
}

// BenchmarkForgeRoute is GET /forge/site with a Forge invocation token,
// site found by installationId in the in-process cache, the same JSON
// answer as the context route. Compare with BenchmarkContextRoute (issue
// 15's goal: within 10 %; docs/PERFORMANCE.md), in two cases:
//
//   - reused: the same token on every request, as Forge reuses a token
//     for about a minute: after the first request, verified from the
//     verified-token cache (SHA-256 of the token, key still published);
//   - fresh: a different token on every request, cycling through more
//     distinct tokens than the cache holds (oldest first out), so every
//     request misses and pays the RS256 verification.
func BenchmarkForgeRoute(b *testing.B) {
	b.Run("reused", func(b *testing.B) {
		benchRoute(b, "/forge/site", func(_ testing.TB, h *harness) func() string { return same("Bearer " + h.ForgeToken) })
	})
	b.Run("fresh", func(b *testing.B) {
		benchRoute(b, "/forge/site", func(tb testing.TB, h *harness) func() string {
			pool, err := h.forgeTokenPool(freshPoolSize)
			if err != nil {
				tb.Fatal(err)
			}
			var i atomic.Uint64
			return func() string { return "Bearer " + pool[int(i.Add(1)%uint64(len(pool)))] }
		})
	})
}

// BenchmarkHealthz is the unauthenticated baseline through the same
// middleware (request ID, access log, metrics, security headers).
func BenchmarkHealthz(b *testing.B) {
	benchRoute(b, "/healthz", func(testing.TB, *harness) func() string { return same("") })
}

// TestHarness checks, quickly, that the harness installs a site through a
// signed install and that the verified route answers as the load test
// expects: 200 with a good token (admin check made once, then cached), 401
// with a forged one.
func TestHarness(t *testing.T) {
	if testing.Short() {
		t.Skip("starts idbridge")
	}
	for _, o := range backends() {
		t.Run(o.DB, func(t *testing.T) {
			h := newHarness(t, o)
			handler := h.App.Handler()
			for range 3 {
				if s := serve(handler, newRequest(h, "/api/admin/site", "JWT "+h.Token)); s != http.StatusOK {
					t.Fatalf("GET /api/admin/site with the context token: %d, want 200", s)
				}
			}
			if n := h.JiraCalls.Load(); n != 1 {
				t.Errorf("admin checks that reached Jira = %d, want 1 (cached)", n)
			}
			forged := h.Token[:len(h.Token)-4] + "AAAA"
			if s := serve(handler, newRequest(h, "/api/admin/site", "JWT "+forged)); s != http.StatusUnauthorized {
				t.Errorf("GET /api/admin/site with a forged token: %d, want 401", s)
			}
			if s := serve(handler, newRequest(h, "/healthz", "")); s != http.StatusOK {
				t.Errorf("GET /healthz: %d, want 200", s)
			}
			if s := serve(handler, newRequest(h, "/forge/site", "Bearer "+h.ForgeToken)); s != http.StatusOK {
				t.Errorf("GET /forge/site with the Forge token: %d, want 200", s)
			}
			if s := serve(handler, newRequest(h, "/forge/site", "Bearer "+h.ForgeToken[:len(h.ForgeToken)-4]+"AAAA")); s != http.StatusUnauthorized {
				t.Errorf("GET /forge/site with a forged Forge token: %d, want 401", s)
			}
		})
	}
}

// BenchmarkTokenVerification splits the JWT part of the context route, to
// show where its cost goes. "today" is what sites.Service.Authenticate does
// per request (ParseUnverified, then VerifySite); "decode-once" is a
// sketch for comparison only, not used by idbridge: split and base64-decode
// once, HMAC-SHA256 over the signing input, one json.Unmarshal into a small
// struct whose "context" stays raw.
func BenchmarkTokenVerification(b *testing.B) {
	h := newHarness(b, harnessOptions{DB: dbSQLite})
	token, secret, clientKey := h.Token, h.sharedSecret, h.ClientKey
	r := newRequest(h, "/api/admin/site", "JWT "+token)
	now := time.Now()
	b.Run("ParseUnverified", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := connect.ParseUnverified(token); err != nil {
				b.Fatal(err)
			}
		}
	})
	parsed, err := connect.ParseUnverified(token)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("VerifySite", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := parsed.VerifySite(clientKey, secret, connect.ContextBound, r, "", now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("today", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			u, err := connect.ParseUnverified(token)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := u.VerifySite(u.Issuer, secret, connect.ContextBound, r, "", now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode-once", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := decodeOnce(token, clientKey, secret, now); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// decodeOnce is the sketch measured above: alg pinned by comparing the
// header, HMAC checked before the payload is parsed, exp with 30 s leeway,
// qsh "context-qsh" and a sub. The real verifier must keep every check of
// connect.Unverified.VerifySite (strict base64, nbf, iss, error reasons).
func decodeOnce(token, clientKey string, secret []byte, now time.Time) error {
	h, rest, ok := strings.Cut(token, ".")
	p, sig, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 {
		return errors.New("malformed")
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	hb, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil || json.Unmarshal(hb, &hdr) != nil || hdr.Alg != "HS256" {
		return errors.New("bad header")
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(token[:len(h)+1+len(p)]))
	var want, got [sha256.Size]byte
	if n, err := base64.RawURLEncoding.Decode(got[:], []byte(sig)); err != nil || n != sha256.Size {
		return errors.New("bad signature")
	}
	if !hmac.Equal(mac.Sum(want[:0]), got[:]) {
		return errors.New("bad signature")
	}
	pb, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return errors.New("bad payload")
	}
	var c struct {
		Iss     string          `json:"iss"`
		Sub     string          `json:"sub"`
		Exp     int64           `json:"exp"`
		QSH     string          `json:"qsh"`
		Context json.RawMessage `json:"context"`
	}
	if err := json.Unmarshal(pb, &c); err != nil {
		return errors.New("bad payload")
	}
	switch {
	case c.Iss != clientKey:
		return errors.New("bad iss")
	case c.Exp == 0 || now.After(time.Unix(c.Exp, 0).Add(connect.Leeway)):
		return errors.New("expired")
	case c.QSH != connect.ContextQSH || c.Sub == "":
		return errors.New("not a context token")
	}
	return nil
}

// BenchmarkForgeVsContext measures the ratio issue 15 asks about on a
// busy machine: every iteration sends one request to the context route and
// one to the Forge route, back to back, and times each, so that both see
// the same load. It reports the time of each per request and
// forge/context-throughput (context time ÷ Forge time: 1 is equal, 0.9 is
// the goal's bound), for the reused and the fresh-token case.
func BenchmarkForgeVsContext(b *testing.B) {
	for _, o := range backends() {
		b.Run(o.DB, func(b *testing.B) {
			h := newHarness(b, o)
			handler := h.App.Handler()
			pool, err := h.forgeTokenPool(freshPoolSize)
			if err != nil {
				b.Fatal(err)
			}
			i := 0
			for name, forgeAuth := range map[string]func() string{
				"reused": same("Bearer " + h.ForgeToken),
				"fresh":  func() string { i++; return "Bearer " + pool[i%len(pool)] },
			} {
				b.Run(name, func(b *testing.B) {
					var ctxTime, forgeTime time.Duration
					for b.Loop() {
						t0 := time.Now()
						if s := serve(handler, newRequest(h, "/api/admin/site", "JWT "+h.Token)); s != http.StatusOK {
							b.Fatalf("context route: %d", s)
						}
						t1 := time.Now()
						if s := serve(handler, newRequest(h, "/forge/site", forgeAuth())); s != http.StatusOK {
							b.Fatalf("Forge route: %d", s)
						}
						ctxTime += t1.Sub(t0)
						forgeTime += time.Since(t1)
					}
					b.ReportMetric(float64(ctxTime.Nanoseconds())/float64(b.N), "context-ns/req")
					b.ReportMetric(float64(forgeTime.Nanoseconds())/float64(b.N), "forge-ns/req")
					b.ReportMetric(float64(ctxTime)/float64(forgeTime), "forge/context-throughput")
				})
			}
		})
	}
}
