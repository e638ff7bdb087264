package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"idbridge/app"
	"idbridge/app/connect"
	"idbridge/app/forge"
	"idbridge/bench/benchenv"
	"idbridge/config"
)

// Databases the harness can run idbridge on.
const (
	dbSQLite   = "sqlite"
	dbPostgres = "postgres"
)

// defaultPGURL is the local test server of the workplace (trust auth).
const defaultPGURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// harnessOptions say how to start idbridge and its fakes.
type harnessOptions struct {
	// DB is dbSQLite or dbPostgres.
	DB string
	// PGURL is an administrative PostgreSQL URL: the harness creates a fresh
	// database next to the one it names and drops it on Close.
	PGURL string
	// Addr is the listen address; port 0 picks a free port.
	Addr string
	// Descriptor is the atlassian-connect.json template.
	Descriptor []byte
	// Log receives idbridge's own log (level error); nil discards it.
	Log io.Writer
	// TokenTTL is the lifetime of the context token; 1 h when zero.
	TokenTTL time.Duration
}

// harness is idbridge running on a real socket, installed on one fake Jira
// site whose install was signed by a fake Atlassian key server.
type harness struct {
	App       *app.App
	BaseURL   string // http://127.0.0.1:<port>
	JiraURL   string // the fake site's baseUrl
	ClientKey string
	AccountID string
	Token     string // context JWT (HS256, qsh "context-qsh", sub AccountID)
	DB        string
	// InstallationID and CloudID are the site's Forge identity; ForgeToken
	// is a Forge invocation token for it (RS256, from the fake Forge JWKS),
	// valid for forgeTokenTTL.
	InstallationID string
	CloudID        string
	ForgeToken     string

	// JiraCalls counts admin checks that reached the fake Jira.
	JiraCalls atomic.Int64

	sharedSecret []byte
	forgeKey     *rsa.PrivateKey
	forgeJWKS    *httptest.Server
	keyServer    *httptest.Server
	jira         *httptest.Server
	cancelRun    context.CancelFunc
	done         chan struct{} // closed when Run returns
	runErr       error         // Run's result, once done is closed
	cleanups     []func() error
}

// startHarness starts the fakes and idbridge, installs the site through
// HTTP with a signed install, and primes the admin cache with one verified
// request. On error everything started is stopped again.
func startHarness(ctx context.Context, o harnessOptions) (h *harness, err error) {
	if o.TokenTTL <= 0 {
		o.TokenTTL = connect.MaxTokenLifetime
	}
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.PGURL == "" {
		o.PGURL = defaultPGURL
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	h = &harness{DB: o.DB, ClientKey: "bench-" + benchenv.RandomHex(8), AccountID: "5b10ac8d82e05b22cc7d4ef5"}
	defer func() {
		if err != nil {
			_ = h.Close()
			h = nil
		}
	}()

	// The fake Atlassian install-key server: <server>/<kid> is the PEM key.
	installKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return h, err
	}
	const kid = "bench-install-key-1"
	der, err := x509.MarshalPKIXPublicKey(&installKey.PublicKey)
	if err != nil {
		return h, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	h.keyServer = newLoopbackServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/"+kid {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(keyPEM)
	}))
	h.cleanups = append(h.cleanups, func() error { h.keyServer.Close(); return nil })

	// The fake Jira: every account it is asked about is a site admin.
	h.jira = newLoopbackServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/rest/api/3/permissions/check" {
			http.NotFound(w, r)
			return
		}
		if !strings.HasPrefix(r.Header.Get("Authorization"), "JWT ") {
			http.Error(w, `{"errorMessages":["unauthenticated"]}`, http.StatusUnauthorized)
			return
		}
		h.JiraCalls.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"globalPermissions":["ADMINISTER"]}`)
	}))
	h.cleanups = append(h.cleanups, func() error { h.jira.Close(); return nil })
	h.JiraURL = h.jira.URL
	jiraHost := strings.TrimPrefix(h.jira.URL, "http://")

	// The fake Forge key set: one RS256 key at /.well-known/jwks.json.
	if h.forgeKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return h, err
	}
	jwks, err := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": forgeKid, "use": "sig", "alg": "RS256",
		"n": base64.RawURLEncoding.EncodeToString(h.forgeKey.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(h.forgeKey.E)).Bytes()),
	}}})
	if err != nil {
		return h, err
	}
	h.forgeJWKS = newLoopbackServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	}))
	h.cleanups = append(h.cleanups, func() error { h.forgeJWKS.Close(); return nil })
	h.InstallationID = "ari:cloud:ecosystem::installation/" + benchenv.RandomHex(16)
	h.CloudID = "00000000-0000-4000-8000-" + benchenv.RandomHex(6)

	addr, err := benchenv.FreeAddr(o.Addr)
	if err != nil {
		return h, err
	}
	h.BaseURL = "http://" + addr

	env := map[string]string{
		"IDBRIDGE_ADDR":                  addr,
		"IDBRIDGE_BASE_URL":              h.BaseURL,
		"IDBRIDGE_APP_KEY":               "idbridge-bench",
		"IDBRIDGE_INSTALL_KEYS_URL":      h.keyServer.URL,
		"IDBRIDGE_TRUSTED_PRODUCT_HOSTS": jiraHost,
		"IDBRIDGE_LOG_LEVEL":             "error",
		"IDBRIDGE_LOG_FORMAT":            "text",
		"IDBRIDGE_SHUTDOWN_TIMEOUT":      "5s",
		"IDBRIDGE_FORGE_APP_ID":          forgeAppID,
		"IDBRIDGE_FORGE_JWKS_URL":        h.forgeJWKS.URL + "/.well-known/jwks.json",
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	env["IDBRIDGE_ENCRYPTION_KEYS"] = "bench1:" + base64.StdEncoding.EncodeToString(key)

	switch o.DB {
	case dbSQLite:
		dir, err := os.MkdirTemp("", "idbridge-bench-")
		if err != nil {
			return h, err
		}
		h.cleanups = append(h.cleanups, func() error { return os.RemoveAll(dir) })
		env["IDBRIDGE_DATA_DIR"] = dir
		env["IDBRIDGE_DATABASE_URL"] = "sqlite:" + filepath.Join(dir, "idbridge.db")
	case dbPostgres:
		dsn, drop, err := benchenv.CreateDatabase(ctx, o.PGURL, "idbridge_bench")
		if err != nil {
			return h, err
		}
		h.cleanups = append(h.cleanups, drop)
		env["IDBRIDGE_DATABASE_URL"] = dsn
		env["IDBRIDGE_DATA_DIR"] = os.TempDir() // unused with PostgreSQL
	default:
		return h, fmt.Errorf("unknown database %q: want sqlite or postgres", o.DB)
	}

	cfg, err := config.Load(func(k string) string { return env[k] }, os.ReadFile)
	if err != nil {
		return h, fmt.Errorf("configuration: %w", err)
	}
	app.TuneGC(os.Getenv) // as `idbridge serve` does
	a, err := app.Open(ctx, cfg, app.Options{Log: app.NewLogger(o.Log, cfg), DescriptorTemplate: o.Descriptor})
	if err != nil {
		return h, fmt.Errorf("open idbridge: %w", err)
	}
	h.App = a
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h.cancelRun = cancel
	h.done = make(chan struct{})
	go func() {
		h.runErr = a.Run(runCtx)
		close(h.done)
	}()

	if err := h.waitReady(ctx, 10*time.Second); err != nil {
		return h, err
	}
	h.sharedSecret = []byte(benchenv.RandomHex(32)) // 64 characters, as Atlassian's are long
	if err := h.install(ctx, installKey, kid); err != nil {
		return h, err
	}
	if h.Token, err = h.ContextToken(time.Now(), o.TokenTTL); err != nil {
		return h, err
	}
	// One verified request: proves the whole path and fills the admin cache.
	status, body, err := h.get(ctx, "/api/admin/site", "JWT "+h.Token)
	if err != nil {
		return h, err
	}
	if status != http.StatusOK {
		return h, fmt.Errorf("GET /api/admin/site after install: %d %s", status, body)
	}
	if h.ForgeToken, err = h.forgeToken(time.Now()); err != nil {
		return h, err
	}
	// One Forge-authenticated request: fetches the key set, fills the caches.
	status, body, err = h.get(ctx, "/forge/site", "Bearer "+h.ForgeToken)
	if err != nil {
		return h, err
	}
	if status != http.StatusOK {
		return h, fmt.Errorf("GET /forge/site after install: %d %s", status, body)
	}
	return h, nil
}

const (
	forgeAppID = "ari:cloud:ecosystem::app/00000000-0000-4000-8000-00000000bench"
	forgeKid   = "bench-forge-key-1"
	// forgeTokenTTL is as long as idbridge accepts (forge.MaxTokenLifetime
	// less a margin); Forge's own live about a minute.
	forgeTokenTTL = 9 * time.Minute
)

// forgeToken signs a Forge invocation token for the site, as Forge does.
func (h *harness) forgeToken(now time.Time) (string, error) {
	claims := jwt.MapClaims{
		"iss": "forge/invocation-token",
		"aud": forgeAppID,
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(forgeTokenTTL).Unix(),
		"jti": benchenv.RandomHex(8),
		"app": map[string]any{
			"installationId": h.InstallationID,
			"apiBaseUrl":     "https://api.atlassian.com/ex/jira/" + h.CloudID,
			"id":             forgeAppID,
			"environment":    map[string]any{"type": "PRODUCTION", "id": "ari:cloud:ecosystem::environment/bench"},
			"module":         map[string]any{"type": "core:endpoint", "key": "bench"},
		},
		"context": map[string]any{"cloudId": h.CloudID, "siteUrl": h.JiraURL},
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = forgeKid
	return tok.SignedString(h.forgeKey)
}

// freshPoolSize is a quarter more tokens than the verified-token cache
// holds: cycled in order (first in, first out), none is still cached when
// its turn comes again, even when two load threads each cycle their half.
const freshPoolSize = forge.VerifiedCacheSize + forge.VerifiedCacheSize/4

// forgeTokenPool signs n distinct Forge invocation tokens for the site
// (each its own jti), on every core.
func (h *harness) forgeTokenPool(n int) ([]string, error) {
	pool := make([]string, n)
	errs := make([]error, n)
	now := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				pool[i], errs[i] = h.forgeToken(now)
			}
		})
	}
	wg.Wait()
	return pool, errors.Join(errs...)
}

// newLoopbackServer is httptest.NewServer bound to 127.0.0.1 explicitly.
func newLoopbackServer(handler http.Handler) *httptest.Server {
	s := httptest.NewUnstartedServer(handler)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err == nil {
		_ = s.Listener.Close()
		s.Listener = ln
	}
	s.Start()
	return s
}

// waitReady polls /readyz until it answers 200.
func (h *harness) waitReady(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		status, _, err := h.get(ctx, "/readyz", "")
		if err == nil && status == http.StatusOK {
			return nil
		}
		select {
		case <-h.done:
			return fmt.Errorf("idbridge stopped before it was ready: %v", h.runErr)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("idbridge not ready within %s (last: %d %v)", within, status, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// install performs the signed install of the fake Jira site, exactly as
// Atlassian does: RS256 with a kid, aud our base URL, iss the clientKey,
// qsh of POST /lifecycle/installed.
func (h *harness) install(ctx context.Context, key *rsa.PrivateKey, kid string) error {
	body, err := json.Marshal(map[string]string{
		"key":            "idbridge-bench",
		"clientKey":      h.ClientKey,
		"sharedSecret":   string(h.sharedSecret),
		"baseUrl":        h.JiraURL,
		"displayUrl":     h.JiraURL,
		"productType":    "jira",
		"description":    "idbridge benchmark site",
		"eventType":      "installed",
		"cloudId":        h.CloudID,
		"installationId": h.InstallationID,
	})
	if err != nil {
		return err
	}
	target, err := url.Parse(h.BaseURL + "/lifecycle/installed")
	if err != nil {
		return err
	}
	now := time.Now()
	claims := jwt.MapClaims{
		"iss": h.ClientKey,
		"aud": h.BaseURL,
		"iat": now.Unix(),
		"exp": now.Add(3 * time.Minute).Unix(),
		"qsh": connect.QSH(connect.CanonicalRequest(http.MethodPost, target, "")),
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = kid
	signed, err := tok.SignedString(key)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "JWT "+signed)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("POST /lifecycle/installed: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("POST /lifecycle/installed: %d %s", resp.StatusCode, msg)
	}
	return nil
}

// ContextToken signs a context JWT as AP.context.getToken() returns it:
// HS256 with the site's shared secret, iss the clientKey, sub the account,
// qsh "context-qsh".
func (h *harness) ContextToken(now time.Time, ttl time.Duration) (string, error) {
	claims := jwt.MapClaims{
		"iss": h.ClientKey,
		"sub": h.AccountID,
		"iat": now.Unix(),
		"exp": now.Add(ttl).Unix(),
		"qsh": connect.ContextQSH,
		"context": map[string]any{
			"license": map[string]any{"active": true},
			"jira":    map[string]any{},
		},
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(h.sharedSecret)
}

// get makes one request over the socket.
func (h *harness) get(ctx context.Context, path, authorization string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.BaseURL+path, nil)
	if err != nil {
		return 0, "", err
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b), nil
}

// Done is closed when idbridge stops serving on its own (a serve error);
// Close stops it otherwise.
func (h *harness) Done() <-chan struct{} { return h.done }

// Close stops idbridge gracefully, then the fakes, and removes the
// database. It is safe on a partly started harness.
func (h *harness) Close() error {
	var errs []error
	if h.cancelRun != nil {
		h.cancelRun()
		select {
		case <-h.done:
			if h.runErr != nil {
				errs = append(errs, h.runErr)
			}
		case <-time.After(15 * time.Second):
			errs = append(errs, errors.New("idbridge did not stop within 15 s"))
		}
		h.cancelRun = nil
	}
	if h.App != nil {
		if err := h.App.Close(); err != nil {
			errs = append(errs, err)
		}
		h.App = nil
	}
	for i := len(h.cleanups) - 1; i >= 0; i-- {
		if err := h.cleanups[i](); err != nil {
			errs = append(errs, err)
		}
	}
	h.cleanups = nil
	return errors.Join(errs...)
}
