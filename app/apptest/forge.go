package apptest

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ForgeJWKS is Atlassian's Forge key set (IDBRIDGE_FORGE_JWKS_URL): a JSON
// Web Key Set of the RSA keys it was given, at /.well-known/jwks.json. It
// counts the fetches, and can be told to answer a status instead.
type ForgeJWKS struct {
	*httptest.Server
	fetches atomic.Int64

	mu     sync.Mutex
	keys   map[string]*rsa.PublicKey
	status int
}

// NewForgeJWKS starts a key set serving key under kid; it closes with the
// test.
func NewForgeJWKS(tb testing.TB, kid string, key *rsa.PublicKey) *ForgeJWKS {
	tb.Helper()
	j := &ForgeJWKS{keys: map[string]*rsa.PublicKey{kid: key}}
	j.Server = httptest.NewServer(http.HandlerFunc(j.serve))
	tb.Cleanup(j.Close)
	return j
}

// URL of the document.
func (j *ForgeJWKS) URL() string { return j.Server.URL + "/.well-known/jwks.json" }

// Fetches is how many times the document was asked for.
func (j *ForgeJWKS) Fetches() int { return int(j.fetches.Load()) }

// Publish adds (or replaces) a key: a rotation.
func (j *ForgeJWKS) Publish(kid string, key *rsa.PublicKey) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.keys[kid] = key
}

// FailWith makes the document answer status (0: serve again).
func (j *ForgeJWKS) FailWith(status int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.status = status
}

func (j *ForgeJWKS) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/.well-known/jwks.json" {
		http.NotFound(w, r)
		return
	}
	j.fetches.Add(1)
	j.mu.Lock()
	status := j.status
	type jwk struct {
		Kty string `json:"kty"`
		Kid string `json:"kid"`
		Use string `json:"use"`
		Alg string `json:"alg"`
		N   string `json:"n"`
		E   string `json:"e"`
	}
	doc := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	for kid, k := range j.keys {
		doc.Keys = append(doc.Keys, jwk{
			Kty: "RSA", Kid: kid, Use: "sig", Alg: "RS256",
			N: base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
			E: base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
		})
	}
	j.mu.Unlock()
	if status != 0 {
		http.Error(w, "unavailable", status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(doc)
}

// ForgeClaims are the claims of a Forge invocation token as Forge mints
// them for a remote (Atlassian's Forge remote documentation). Fields left
// empty are left out.
type ForgeClaims struct {
	AppID          string // aud
	InstallationID string // app.installationId
	CloudID        string // context.cloudId
	SiteURL        string // context.siteUrl
	APIBaseURL     string // app.apiBaseUrl
	ModuleKey      string // app.module.key
	Environment    string // app.environment.type; "DEVELOPMENT" when empty
	Principal      string
	Issuer         string // "forge/invocation-token" when empty
	IssuedAt       time.Time
	Lifetime       time.Duration // exp - iat; 1 minute when zero
	NoExp          bool
	NotBefore      time.Time
}

// MapClaims is c as the JWT claims Forge signs.
func (c ForgeClaims) MapClaims() jwt.MapClaims {
	iss := c.Issuer
	if iss == "" {
		iss = "forge/invocation-token"
	}
	life := c.Lifetime
	if life == 0 {
		life = time.Minute
	}
	env := c.Environment
	if env == "" {
		env = "DEVELOPMENT"
	}
	app := map[string]any{
		"installationId": c.InstallationID,
		"apiBaseUrl":     c.APIBaseURL,
		"id":             c.AppID,
		"environment":    map[string]any{"type": env, "id": "ari:cloud:ecosystem::environment/test"},
		"module":         map[string]any{"type": "core:endpoint", "key": c.ModuleKey},
	}
	ctx := map[string]any{}
	if c.CloudID != "" {
		ctx["cloudId"] = c.CloudID
	}
	if c.SiteURL != "" {
		ctx["siteUrl"] = c.SiteURL
	}
	m := jwt.MapClaims{
		"iss":     iss,
		"aud":     c.AppID,
		"iat":     c.IssuedAt.Unix(),
		"nbf":     c.IssuedAt.Unix(),
		"jti":     "fit-" + c.IssuedAt.Format("150405.000000000"),
		"app":     app,
		"context": ctx,
	}
	if !c.NotBefore.IsZero() {
		m["nbf"] = c.NotBefore.Unix()
	}
	if !c.NoExp {
		m["exp"] = c.IssuedAt.Add(life).Unix()
	}
	if c.Principal != "" {
		m["principal"] = c.Principal
	}
	return m
}

// SignForgeToken signs c RS256 with key under kid, as Forge does.
func SignForgeToken(tb testing.TB, key *rsa.PrivateKey, kid string, c ForgeClaims) string {
	tb.Helper()
	return SignJWT(tb, jwt.SigningMethodRS256, c.MapClaims(), kid, key)
}
