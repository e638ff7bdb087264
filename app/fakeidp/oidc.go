// Package fakeidp holds identity providers that keep real state and speak
// the real protocols, for idbridge's tests, browser tests, benchmarks and
// the demo: an OpenID provider (discovery, JWKS, authorization code flow
// with PKCE, signed ID tokens, userinfo) and a SAML 2.0 identity provider
// (crewjam/saml's IdP side, with metadata and HTTP-Redirect SSO). Both can
// be told to misbehave the ways attackers and broken providers do, so the
// relying party's refusals can be tested. It is plain Go so the demo can
// run it; only tests, bench/ and the demo may import it (deps_test.go).
package fakeidp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// User is who signs in at a fake identity provider.
type User struct {
	Email         string
	Name          string
	Subject       string // OIDC sub; defaults to a hash of the email
	EmailVerified bool
}

// OIDC is an OpenID provider on a loopback httptest server.
type OIDC struct {
	URL          string // the issuer
	ClientID     string
	ClientSecret string
	// Now is the provider's clock (token iat/exp); time.Now when nil.
	Now func() time.Time

	server *httptest.Server
	key    *rsa.PrivateKey
	ecKey  *ecdsa.PrivateKey // set by NewOIDCES256: ID tokens are ES256
	kid    string

	mu           sync.Mutex
	user         *User
	redirectURIs map[string]bool
	codes        map[string]*grant
	tokens       map[string]*grant // access tokens
	calls        []string
	// Tamper, when set, changes an ID token before it is signed: its claims
	// and header (set header["alg"] to "none" for an unsigned token).
	tamper func(claims jwt.MapClaims, header map[string]any)
	// idTokenWithoutEmail leaves email claims out of the ID token, so the
	// relying party must read them from userinfo.
	idTokenWithoutEmail bool
	down                bool
}

type grant struct {
	user        User
	clientID    string
	redirectURI string
	challenge   string
	nonce       string
	used        bool
	expires     time.Time
}

// NewOIDC starts an OpenID provider with a client (ID and secret) and an
// RSA signing key. Close it when done.
func NewOIDC() *OIDC {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return newOIDC(key, nil)
}

// NewOIDCES256 starts an OpenID provider that signs its ID tokens with an
// ECDSA P-256 key (ES256, which discovery and the JWKS announce), as some
// providers do. Benchmarks use it so that the provider's own signing, an
// RSA private-key operation of about a millisecond per ID token, does not
// count as the relying party's cost.
func NewOIDCES256() *OIDC {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return newOIDC(nil, key)
}

func newOIDC(key *rsa.PrivateKey, ecKey *ecdsa.PrivateKey) *OIDC {
	p := &OIDC{
		ClientID: "idbridge-" + randomHex(4), ClientSecret: "secret-" + randomHex(16),
		key: key, ecKey: ecKey, kid: "k" + randomHex(4),
		redirectURIs: map[string]bool{}, codes: map[string]*grant{}, tokens: map[string]*grant{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.serveDiscovery)
	mux.HandleFunc("GET /jwks", p.serveJWKS)
	mux.HandleFunc("GET /authorize", p.serveAuthorize)
	mux.HandleFunc("POST /authorize", p.serveAuthorize)
	mux.HandleFunc("POST /token", p.serveToken)
	mux.HandleFunc("GET /userinfo", p.serveUserInfo)
	p.server = httptest.NewServer(mux)
	p.URL = p.server.URL
	return p
}

// Close stops the server.
func (p *OIDC) Close() { p.server.Close() }

func (p *OIDC) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// AllowRedirectURI registers a redirect URI for the client.
func (p *OIDC) AllowRedirectURI(u string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.redirectURIs[u] = true
}

// SignIn makes u the person signed in at the provider: /authorize answers
// at once with a code for u. nil: /authorize shows a sign-in form.
func (p *OIDC) SignIn(u *User) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if u != nil {
		c := *u
		u = &c
	}
	p.user = u
}

// Tamper sets a function that changes every ID token before it is signed
// (nil: none).
func (p *OIDC) Tamper(fn func(claims jwt.MapClaims, header map[string]any)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tamper = fn
}

// IDTokenWithoutEmail leaves the email claims out of ID tokens.
func (p *OIDC) IDTokenWithoutEmail(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.idTokenWithoutEmail = on
}

// SetDown makes every endpoint answer 503.
func (p *OIDC) SetDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
}

// Calls returns "METHOD path" of every request so far.
func (p *OIDC) Calls() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.calls...)
}

func (p *OIDC) record(r *http.Request) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, r.Method+" "+r.URL.Path)
	return !p.down
}

func (p *OIDC) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	if !p.record(r) {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                p.URL,
		"authorization_endpoint":                p.URL + "/authorize",
		"token_endpoint":                        p.URL + "/token",
		"userinfo_endpoint":                     p.URL + "/userinfo",
		"jwks_uri":                              p.URL + "/jwks",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{p.alg()},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"scopes_supported":                      []string{"openid", "email", "profile"},
	})
}

func (p *OIDC) serveJWKS(w http.ResponseWriter, r *http.Request) {
	if !p.record(r) {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if p.ecKey != nil {
		pub, err := p.ecKey.PublicKey.Bytes() // 0x04 || X || Y, 32 bytes each
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]any{{
			"kty": "EC", "use": "sig", "alg": "ES256", "kid": p.kid, "crv": "P-256",
			"x": base64.RawURLEncoding.EncodeToString(pub[1:33]),
			"y": base64.RawURLEncoding.EncodeToString(pub[33:]),
		}}})
		return
	}
	pub := p.key.PublicKey
	writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]any{{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": p.kid,
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}

// alg is the algorithm of the provider's ID tokens.
func (p *OIDC) alg() string {
	if p.ecKey != nil {
		return "ES256"
	}
	return "RS256"
}

var signInForm = template.Must(template.New("f").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Fake OpenID provider: sign in</title></head>
<body><main><h1>Fake OpenID provider</h1>
<form method="post" action="/authorize?{{.Query}}">
<label for="email">Email</label> <input id="email" name="email" type="email" required>
<label for="name">Name</label> <input id="name" name="name">
<button type="submit">Sign in</button>
</form></main></body></html>`))

// serveAuthorize is the authorization endpoint: it checks the client, the
// redirect URI and the PKCE challenge, then answers with a code for the
// signed-in user (or a sign-in form).
func (p *OIDC) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	if !p.record(r) {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	q := r.URL.Query()
	p.mu.Lock()
	okRedirect := p.redirectURIs[q.Get("redirect_uri")] || len(p.redirectURIs) == 0
	user := p.user
	p.mu.Unlock()
	if q.Get("client_id") != p.ClientID || !okRedirect {
		http.Error(w, "unknown client or redirect_uri", http.StatusBadRequest)
		return
	}
	if q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" ||
		!strings.Contains(" "+q.Get("scope")+" ", " openid ") {
		redirectError(w, r, q.Get("redirect_uri"), q.Get("state"), "invalid_request")
		return
	}
	if r.Method == http.MethodPost {
		_ = r.ParseForm()
		email := strings.TrimSpace(r.PostForm.Get("email"))
		if email == "" {
			http.Error(w, "email required", http.StatusBadRequest)
			return
		}
		user = &User{Email: email, Name: r.PostForm.Get("name"), EmailVerified: true}
	}
	if user == nil {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = signInForm.Execute(w, map[string]any{"Query": template.URL(r.URL.RawQuery)})
		return
	}
	code := randomHex(16)
	p.mu.Lock()
	p.codes[code] = &grant{user: *user, clientID: p.ClientID, redirectURI: q.Get("redirect_uri"),
		challenge: q.Get("code_challenge"), nonce: q.Get("nonce"), expires: p.now().Add(time.Minute)}
	p.mu.Unlock()
	u, _ := url.Parse(q.Get("redirect_uri"))
	v := u.Query()
	v.Set("code", code)
	v.Set("state", q.Get("state"))
	u.RawQuery = v.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func redirectError(w http.ResponseWriter, r *http.Request, redirectURI, state, code string) {
	u, err := url.Parse(redirectURI)
	if err != nil || redirectURI == "" {
		http.Error(w, code, http.StatusBadRequest)
		return
	}
	v := u.Query()
	v.Set("error", code)
	v.Set("state", state)
	u.RawQuery = v.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// serveToken is the token endpoint: client authentication, one-time codes,
// the same redirect URI, and the PKCE verifier of the challenge.
func (p *OIDC) serveToken(w http.ResponseWriter, r *http.Request) {
	if !p.record(r) {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != p.ClientID || subtle.ConstantTimeCompare([]byte(secret), []byte(p.ClientSecret)) != 1 {
		tokenError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	if r.PostForm.Get("grant_type") != "authorization_code" {
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	p.mu.Lock()
	g := p.codes[r.PostForm.Get("code")]
	var reason string
	switch {
	case g == nil:
		reason = "invalid_grant"
	case g.used:
		reason = "invalid_grant" // a code works once
	case p.now().After(g.expires):
		reason = "invalid_grant"
	case g.redirectURI != r.PostForm.Get("redirect_uri"):
		reason = "invalid_grant"
	case s256(r.PostForm.Get("code_verifier")) != g.challenge:
		reason = "invalid_grant"
	}
	if g != nil {
		g.used = true
	}
	tamper, noEmail := p.tamper, p.idTokenWithoutEmail
	p.mu.Unlock()
	if reason != "" {
		tokenError(w, http.StatusBadRequest, reason)
		return
	}
	idToken, err := p.idToken(g, tamper, noEmail)
	if err != nil {
		tokenError(w, http.StatusInternalServerError, "server_error")
		return
	}
	access := randomHex(16)
	p.mu.Lock()
	p.tokens[access] = g
	p.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": access, "token_type": "Bearer", "expires_in": 300, "id_token": idToken,
	})
}

func (u User) subject() string {
	if u.Subject != "" {
		return u.Subject
	}
	return "sub-" + s256(strings.ToLower(u.Email))[:16]
}

func (p *OIDC) idToken(g *grant, tamper func(jwt.MapClaims, map[string]any), noEmail bool) (string, error) {
	now := p.now()
	claims := jwt.MapClaims{
		"iss": p.URL, "sub": g.user.subject(), "aud": g.clientID,
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "nonce": g.nonce,
		"name": g.user.Name,
	}
	if !noEmail {
		claims["email"] = g.user.Email
		claims["email_verified"] = g.user.EmailVerified
	}
	header := map[string]any{"alg": p.alg(), "kid": p.kid, "typ": "JWT"}
	if tamper != nil {
		tamper(claims, header)
	}
	return p.Sign(claims, header)
}

// Sign signs claims with the provider's key as RS256 (ES256 for a provider
// from NewOIDCES256; or, when header says "none", not at all), for tests
// that forge tokens.
func (p *OIDC) Sign(claims jwt.MapClaims, header map[string]any) (string, error) {
	alg, _ := header["alg"].(string)
	if alg == "none" {
		t := jwt.NewWithClaims(jwt.SigningMethodNone, claims)
		for k, v := range header {
			t.Header[k] = v
		}
		return t.SignedString(jwt.UnsafeAllowNoneSignatureType)
	}
	method, key := jwt.SigningMethod(jwt.SigningMethodRS256), any(p.key)
	if p.ecKey != nil {
		method, key = jwt.SigningMethodES256, p.ecKey
	}
	t := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		if k != "alg" {
			t.Header[k] = v
		}
	}
	return t.SignedString(key)
}

func (p *OIDC) serveUserInfo(w http.ResponseWriter, r *http.Request) {
	if !p.record(r) {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	p.mu.Lock()
	g := p.tokens[tok]
	p.mu.Unlock()
	if !strings.EqualFold(scheme, "Bearer") || g == nil {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, "invalid token", http.StatusUnauthorized)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"sub": g.user.subject(), "email": g.user.Email, "email_verified": g.user.EmailVerified, "name": g.user.Name,
	})
}

func tokenError(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, map[string]string{"error": code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func s256(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}
