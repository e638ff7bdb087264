package connect

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"idbridge/models"
)

// Leeway is the clock skew allowed on exp (and nbf).
const Leeway = 30 * time.Second

// AppTokenLifetime is how long a token the app signs stays valid.
const AppTokenLifetime = 3 * time.Minute

// MaxTokenSize bounds a token before anything decodes it. Atlassian's tokens
// are well under 2 KiB, context tokens included.
const MaxTokenSize = 8 << 10

// MaxTokenLifetime is the longest life Atlassian gives a token it signs
// for an app: context tokens from AP.context.getToken live 15 minutes
// (atlassian-connect-express's maxTokenAge default, 15 × 60 s), iframe and
// lifecycle tokens 3 minutes. A token whose exp is further than this from
// its iat, or whose iat lies beyond the leeway in the future, was not
// issued by Atlassian as documented and is refused (docs/SECURITY.md).
const MaxTokenLifetime = 15 * time.Minute

// maxIssuerLen bounds the unverified iss that a caller looks a site up by;
// maxAccountIDLen bounds a sub (Atlassian account IDs are at most 128
// characters).
const (
	maxIssuerLen    = 256
	maxAccountIDLen = 128
)

// ValidClientKey reports whether s has the shape of a Connect clientKey: 1
// to 256 printable ASCII characters, without spaces. Atlassian documents no
// format; cloud sites send UUIDs, older ones "jira:…"-like keys. Anything
// else (a NUL, invalid UTF-8, control or non-ASCII characters, which
// PostgreSQL or the logs would choke on) cannot be a clientKey, so it is
// refused before any lookup, cache or database round trip.
func ValidClientKey(s string) bool { return printableASCII(s, maxIssuerLen) }

// ValidAccountID reports whether s has the shape of an Atlassian account
// ID ("5b10ac8d82e05b22cc7d4ef5", "557058:…", "qm:…"): 1 to 128 printable
// ASCII characters, without spaces.
func ValidAccountID(s string) bool { return printableASCII(s, maxAccountIDLen) }

func printableASCII(s string, maxLen int) bool {
	if s == "" || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// RouteKind says what a route's tokens are bound to.
type RouteKind int

const (
	// URLBound routes (iframe pages, lifecycle, webhooks) require qsh to
	// be the hash of the request itself.
	URLBound RouteKind = iota
	// ContextBound routes (the admin UI's JSON API, called with tokens
	// from AP.context.getToken) require qsh "context-qsh" and a subject.
	ContextBound
)

func (k RouteKind) String() string {
	switch k {
	case URLBound:
		return "url-bound"
	case ContextBound:
		return "context-bound"
	}
	return fmt.Sprintf("RouteKind(%d)", int(k))
}

// Claims are the verified claims of a token.
type Claims struct {
	Issuer    string
	Subject   string
	Audience  []string
	IssuedAt  time.Time
	ExpiresAt time.Time
	QSH       string
	// Context is the token's "context" claim (for example the user and
	// licence of a context token); nil when absent.
	Context map[string]any
	// KeyID is the header's kid; set for signed installs.
	KeyID string
}

// tokenClaims is the JSON shape of the claims that the parser fills.
type tokenClaims struct {
	jwt.RegisteredClaims
	QSH     string         `json:"qsh,omitempty"`
	Context map[string]any `json:"context,omitempty"`
}

func (c *tokenClaims) claims(kid string) *Claims {
	out := &Claims{
		Issuer:   c.Issuer,
		Subject:  c.Subject,
		Audience: []string(c.Audience),
		QSH:      c.QSH,
		Context:  c.Context,
		KeyID:    kid,
	}
	if c.IssuedAt != nil {
		out.IssuedAt = c.IssuedAt.Time
	}
	if c.ExpiresAt != nil {
		out.ExpiresAt = c.ExpiresAt.Time
	}
	return out
}

// TokenFromRequest returns the token of a request, from "Authorization: JWT
// <token>" or from the "jwt" query parameter. Both at once, neither, more than
// one of either, or an Authorization header of another scheme, are errors.
func TokenFromRequest(r *http.Request) (string, error) {
	token, _, err := tokenFromRequest(r)
	return token, err
}

// tokenFromRequest also reports whether the token came from the header.
func tokenFromRequest(r *http.Request) (token string, fromHeader bool, err error) {
	if r == nil {
		return "", false, authErr(ReasonMissingToken, "no token on the request")
	}
	headers := r.Header.Values("Authorization")
	if len(headers) > 1 {
		return "", false, authErr(ReasonMalformed, "more than one Authorization header")
	}
	var headerToken string
	hasHeader := len(headers) == 1
	if hasHeader {
		scheme, rest, _ := strings.Cut(headers[0], " ")
		if !strings.EqualFold(scheme, "JWT") {
			return "", false, authErr(ReasonBadAuthScheme, `the Authorization header is not of the "JWT" scheme`)
		}
		headerToken = strings.TrimSpace(rest)
	}
	var queryTokens []string
	if r.URL != nil {
		// The same parser as the qsh, so that the "jwt" parameter found
		// here is exactly the one the canonical request leaves out.
		for _, p := range parseQuery(r.URL.RawQuery) {
			if p.key == "jwt" {
				queryTokens = append(queryTokens, p.value)
			}
		}
	}
	switch {
	case hasHeader && len(queryTokens) > 0:
		return "", false, authErr(ReasonTokenInQueryAndHeader, "a token was sent both in the Authorization header and in the jwt query parameter")
	case len(queryTokens) > 1:
		return "", false, authErr(ReasonMalformed, "more than one jwt query parameter")
	case hasHeader:
		if headerToken == "" {
			return "", false, authErr(ReasonMissingToken, "the Authorization header holds no token")
		}
		return headerToken, true, nil
	case len(queryTokens) == 1:
		if queryTokens[0] == "" {
			return "", false, authErr(ReasonMissingToken, "the jwt query parameter is empty")
		}
		return queryTokens[0], false, nil
	}
	return "", false, authErr(ReasonMissingToken, "no token: expected an Authorization: JWT header or a jwt query parameter")
}

// tokenHeader is the part of a JOSE header this package reads.
type tokenHeader struct {
	alg    string
	kid    string
	hasKid bool
}

// splitToken checks the size and shape of a compact JWS and decodes its
// header and payload, without verifying anything.
func splitToken(token string) (tokenHeader, []byte, *models.Error) {
	h, payload, _, aerr := splitTokenAt(token)
	return h, payload, aerr
}

// splitTokenAt is splitToken that also returns the index of the second dot,
// which ends the signing input.
func splitTokenAt(token string) (tokenHeader, []byte, int, *models.Error) {
	var h tokenHeader
	if len(token) > MaxTokenSize {
		return h, nil, 0, authErr(ReasonMalformed, "token too large")
	}
	i := strings.IndexByte(token, '.')
	j := -1
	if i >= 0 {
		if k := strings.IndexByte(token[i+1:], '.'); k >= 0 {
			j = i + 1 + k
		}
	}
	if i < 0 || j < 0 || strings.IndexByte(token[j+1:], '.') >= 0 {
		return h, nil, 0, authErr(ReasonMalformed, "token is not three dot-separated parts")
	}
	hb, err := decodeSegment(token[:i])
	if err != nil {
		return h, nil, 0, authErr(ReasonMalformed, "token header is not base64url")
	}
	if aerr := decodeHeader(hb, &h); aerr != nil {
		return h, nil, 0, aerr
	}
	payload, err := decodeSegment(token[i+1 : j])
	if err != nil {
		return h, nil, 0, authErr(ReasonMalformed, "token payload is not base64url")
	}
	return h, payload, j, nil
}

// rawHeader is the decoding shape of the header fields read here.
type rawHeader struct {
	Alg json.RawMessage `json:"alg"`
	Kid json.RawMessage `json:"kid"`
}

// decodeHeader reads alg and kid. Keys are matched exactly, as in a map
// (and as the JWT library does): encoding/json matches struct fields
// case-insensitively, so a header that could hold a key equal to "alg" or
// "kid" only under case folding ("ALG", "\u0041lg", the Kelvin sign) takes
// the map path; every other header takes the cheaper struct path, which then
// reads exactly what the map would.
func decodeHeader(hb []byte, h *tokenHeader) *models.Error {
	var alg, kid json.RawMessage
	if headerMayFold(hb) {
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(hb, &raw); err != nil || raw == nil {
			return authErr(ReasonMalformed, "token header is not a JSON object")
		}
		alg, kid = raw["alg"], raw["kid"]
	} else {
		var raw rawHeader
		if err := json.Unmarshal(hb, &raw); err != nil || !isJSONObject(hb) {
			return authErr(ReasonMalformed, "token header is not a JSON object")
		}
		alg, kid = raw.Alg, raw.Kid
	}
	if alg != nil {
		if string(alg) == `"HS256"` {
			h.alg = "HS256"
		} else if err := json.Unmarshal(alg, &h.alg); err != nil {
			return authErr(ReasonBadAlg, "token alg is not a string")
		}
	}
	if kid != nil {
		if err := json.Unmarshal(kid, &h.kid); err != nil {
			return authErr(ReasonBadKid, "token kid is not a string")
		}
		h.hasKid = true
	}
	return nil
}

// headerMayFold reports whether hb holds a byte through which a key could
// match "alg" or "kid" case-insensitively without being equal to it: an
// upper-case A, L, G, K, I or D, a backslash (escapes), or a non-ASCII byte.
func headerMayFold(hb []byte) bool {
	for _, c := range hb {
		switch {
		case c >= 0x80, c == '\\', c == 'A', c == 'L', c == 'G', c == 'K', c == 'I', c == 'D':
			return true
		}
	}
	return false
}

// isJSONObject reports whether valid JSON b is an object (not null).
func isJSONObject(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c == '{'
	}
	return false
}

// decodeSegment decodes unpadded base64url, strictly (the parser does too).
func decodeSegment(s string) ([]byte, error) {
	return base64.RawURLEncoding.Strict().DecodeString(s)
}

// Unverified is a token split and decoded once, before its site is known:
// its issuer, to look the site up by, and what [Unverified.VerifySite] needs
// so as not to decode anything again. Nothing in it is verified.
type Unverified struct {
	// Issuer is the unverified iss. Never trust it before VerifySite.
	Issuer string

	token   string
	sigAt   int // index of the dot before the signature
	header  tokenHeader
	claims  tokenClaims
	badJSON bool // the payload does not decode into the claims
}

// payloadClaims decodes the claims and keeps iss raw, so that the issuer is
// read as ParseUnverified always read it (a JSON string, null being no
// iss). Iss is shallower than the embedded Issuer, so it takes "iss".
type payloadClaims struct {
	tokenClaims
	Iss json.RawMessage `json:"iss"`
}

// parseToken splits and decodes token once. It fails only on what every
// verification refuses first (size, shape, base64, header); an issuer that
// ParseUnverified refuses is returned as issErr.
func parseToken(token string) (u *Unverified, issErr, aerr *models.Error) {
	h, payload, sigAt, aerr := splitTokenAt(token)
	if aerr != nil {
		return nil, nil, aerr
	}
	u = &Unverified{token: token, sigAt: sigAt, header: h}
	var pc payloadClaims
	rawIss := json.RawMessage(nil)
	if err := json.Unmarshal(payload, &pc); err == nil {
		u.claims = pc.tokenClaims
		rawIss = pc.Iss
		if rawIss != nil && json.Unmarshal(rawIss, &u.claims.Issuer) != nil {
			// The JWT library would not have decoded these claims.
			u.badJSON = true
		}
	} else {
		u.badJSON = true
		var c struct {
			Iss json.RawMessage `json:"iss"`
		}
		if err := json.Unmarshal(payload, &c); err != nil {
			return u, authErr(ReasonMalformed, "token payload is not a JSON object"), nil
		}
		rawIss = c.Iss
	}
	var iss string
	if rawIss == nil || json.Unmarshal(rawIss, &iss) != nil || iss == "" {
		return u, authErr(ReasonBadIss, "token has no iss"), nil
	}
	if len(iss) > maxIssuerLen {
		return u, authErr(ReasonBadIss, "token iss is too long"), nil
	}
	if !ValidClientKey(iss) {
		return u, authErr(ReasonBadIss, "token iss is not a client key"), nil
	}
	u.Issuer = iss
	return u, nil, nil
}

// ParseUnverified splits and decodes a token once, without verifying it,
// and reads its iss: oversized and malformed tokens, and an iss that is not
// shaped like a clientKey ([ValidClientKey]), are refused. The caller finds
// the site whose secret verifies it by the issuer, then verifies it with
// [Unverified.VerifySite]; never trust the issuer before that.
func ParseUnverified(token string) (*Unverified, error) {
	u, issErr, aerr := parseToken(token)
	if aerr != nil {
		return nil, aerr
	}
	if issErr != nil {
		return nil, issErr
	}
	return u, nil
}

// errWrongKeyAlg is returned by key functions when the parsed method is not
// the one pinned; the header check before parsing makes it unreachable, but
// the key is never handed to a method it was not meant for.
var errWrongKeyAlg = errors.New("signing method does not match the key")

// VerifySite verifies a token parsed by [ParseUnverified] and signed with a
// site's shared secret: alg exactly HS256, a valid signature, exp present and not past (with [Leeway]),
// nbf and iat not in the future, a lifetime of at most [MaxTokenLifetime],
// iss equal to clientKey, a sub (when present) shaped like an account ID,
// then by kind:
//   - URLBound: qsh equal to the hash of r relative to basePath (the path of
//     our base URL); "context-qsh" is refused;
//   - ContextBound: qsh exactly "context-qsh" and a non-empty sub; r and
//     basePath are not used.
//
// now is the verification time; the zero time means time.Now.
func (u *Unverified) VerifySite(clientKey string, secret []byte, kind RouteKind, r *http.Request, basePath string, now time.Time) (*Claims, error) {
	if u == nil {
		return nil, errors.New("verify site token: no token")
	}
	if err := checkVerifyArgs(clientKey, secret, kind, r); err != nil {
		return nil, err
	}
	return u.verifySite(clientKey, secret, kind, r, basePath, now)
}

func checkVerifyArgs(clientKey string, secret []byte, kind RouteKind, r *http.Request) error {
	if clientKey == "" {
		return errors.New("verify site token: empty client key")
	}
	if len(secret) == 0 {
		// HMAC with an empty key is computable by anyone.
		return errors.New("verify site token: empty shared secret")
	}
	if kind != URLBound && kind != ContextBound {
		return fmt.Errorf("verify site token: unknown route kind %v", kind)
	}
	if kind == URLBound && (r == nil || r.URL == nil) {
		return errors.New("verify site token: URL-bound route without a request")
	}
	return nil
}

// verifySite runs the checks of the JWT parser (in its order: claims JSON,
// signature encoding, signature, then exp/nbf/iat), with alg pinned to
// HS256 before the key is used, then iss and qsh.
func (u *Unverified) verifySite(clientKey string, secret []byte, kind RouteKind, r *http.Request, basePath string, now time.Time) (*Claims, error) {
	if now.IsZero() {
		now = time.Now()
	}
	if u.header.alg != jwt.SigningMethodHS256.Alg() {
		return nil, authErr(ReasonBadAlg, "token alg must be HS256")
	}
	if u.badJSON {
		return nil, authErr(ReasonMalformed, "token is malformed")
	}
	sig, err := decodeSegment(u.token[u.sigAt+1:])
	if err != nil {
		return nil, authErr(ReasonMalformed, "token is malformed")
	}
	if err := jwt.SigningMethodHS256.Verify(u.token[:u.sigAt], sig, secret); err != nil {
		return nil, authErr(ReasonBadSignature, "token signature is invalid")
	}
	tc := u.claims
	if err := newValidator(now).Validate(&tc); err != nil {
		return nil, classifyParseError(err)
	}
	if err := checkLifetime(&tc, now); err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(tc.Issuer), []byte(clientKey)) != 1 {
		return nil, authErr(ReasonBadIss, "token iss is not the site's client key")
	}
	if tc.Subject != "" && !ValidAccountID(tc.Subject) {
		return nil, authErr(ReasonBadSub, "token sub is not an account ID")
	}
	claims := tc.claims(u.header.kid)
	if kind == ContextBound {
		if err := checkContextQSH(claims); err != nil {
			return nil, err
		}
		return claims, nil
	}
	if err := checkURLQSH(claims, r, basePath); err != nil {
		return nil, err
	}
	return claims, nil
}

// checkLifetime refuses what Atlassian never issues: an iat beyond the
// leeway in the future, and a token that lives longer than
// [MaxTokenLifetime] (exp - iat; without iat, exp - now). exp is present:
// the validator requires it.
func checkLifetime(c *tokenClaims, now time.Time) *models.Error {
	if c.ExpiresAt == nil {
		return authErr(ReasonNoExp, "token has no exp")
	}
	exp := c.ExpiresAt.Time
	if c.IssuedAt == nil {
		if exp.Sub(now) > MaxTokenLifetime+Leeway {
			return authErr(ReasonTooLongLived, "token lives longer than Atlassian issues tokens (15 minutes)")
		}
		return nil
	}
	iat := c.IssuedAt.Time
	if iat.After(now.Add(Leeway)) {
		return authErr(ReasonIssuedInFuture, "token iat is in the future")
	}
	if exp.Sub(iat) > MaxTokenLifetime {
		return authErr(ReasonTooLongLived, "token lives longer than Atlassian issues tokens (15 minutes)")
	}
	return nil
}

// newValidator checks the time claims exactly as newParser's parser does.
func newValidator(now time.Time) *jwt.Validator {
	return jwt.NewValidator(
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
}

func newParser(alg string, now time.Time) *jwt.Parser {
	return jwt.NewParser(
		jwt.WithValidMethods([]string{alg}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithStrictDecoding(),
	)
}

// classifyParseError maps the parser's errors to reasons. Claims errors are
// joined; the first matching reason in this order wins.
func classifyParseError(err error) *models.Error {
	switch {
	case errors.Is(err, errWrongKeyAlg):
		return authErr(ReasonBadAlg, "token alg does not match the key")
	case errors.Is(err, jwt.ErrTokenMalformed):
		return authErr(ReasonMalformed, "token is malformed")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return authErr(ReasonBadSignature, "token signature is invalid")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return authErr(ReasonBadAlg, "token cannot be verified with its alg")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		// exp is the only claim the parser is told to require.
		return authErr(ReasonNoExp, "token has no exp")
	case errors.Is(err, jwt.ErrTokenExpired):
		return authErr(ReasonExpired, "token has expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return authErr(ReasonNotYetValid, "token is not valid yet")
	}
	return authErr(ReasonMalformed, "token claims are invalid")
}

func checkContextQSH(c *Claims) error {
	switch {
	case c.QSH == "":
		return authErr(ReasonBadQSH, "token has no qsh")
	case subtle.ConstantTimeCompare([]byte(c.QSH), []byte(ContextQSH)) != 1:
		return authErr(ReasonURLQSHOnContextRoute, "this route takes context tokens only")
	case c.Subject == "":
		return authErr(ReasonNoSub, "context token has no sub")
	}
	return nil
}

func checkURLQSH(c *Claims, r *http.Request, basePath string) error {
	switch {
	case c.QSH == "":
		return authErr(ReasonBadQSH, "token has no qsh")
	case subtle.ConstantTimeCompare([]byte(c.QSH), []byte(ContextQSH)) == 1:
		return authErr(ReasonContextQSHOnURLRoute, "a context token cannot be used on this route")
	}
	want := QSH(CanonicalRequest(r.Method, r.URL, basePath))
	if subtle.ConstantTimeCompare([]byte(c.QSH), []byte(want)) != 1 {
		return authErr(ReasonBadQSH, "token qsh does not match this request")
	}
	return nil
}

// SignAppToken signs the token with which the app calls a site (SPEC 2.4):
// HS256 with the site's shared secret, iss = appKey, iat = now, exp = now +
// 3 minutes, qsh over method and target relative to the path of siteBaseURL
// (so Confluence's "/wiki" is stripped). The token is meant only for the
// origin of siteBaseURL: a target on any other scheme, host or port is an
// error. (Atlassian's own API gateway is called the same way, with its base
// URL in place of the site's.)
func SignAppToken(appKey string, secret []byte, method string, target *url.URL, siteBaseURL string, now time.Time) (string, error) {
	if appKey == "" {
		return "", errors.New("sign app token: empty app key")
	}
	if len(secret) == 0 {
		return "", errors.New("sign app token: empty shared secret")
	}
	if method == "" {
		return "", errors.New("sign app token: empty method")
	}
	if target == nil {
		return "", errors.New("sign app token: no target URL")
	}
	base, err := url.Parse(siteBaseURL)
	if err != nil {
		return "", fmt.Errorf("sign app token: site base URL: %w", err)
	}
	baseOrigin, err := origin(base)
	if err != nil {
		return "", fmt.Errorf("sign app token: site base URL: %w", err)
	}
	targetOrigin, err := origin(target)
	if err != nil {
		return "", fmt.Errorf("sign app token: target: %w", err)
	}
	if targetOrigin != baseOrigin {
		return "", fmt.Errorf("sign app token: target origin %s is not the site's origin %s", targetOrigin, baseOrigin)
	}
	if now.IsZero() {
		now = time.Now()
	}
	claims := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    appKey,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(AppTokenLifetime)),
		},
		QSH: QSH(CanonicalRequest(method, target, base.EscapedPath())),
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("sign app token: %w", err)
	}
	return token, nil
}

// origin returns scheme://host:port of an absolute http(s) URL, lower-cased
// and with the default port made explicit, so that equal origins compare
// equal as strings.
func origin(u *url.URL) (string, error) {
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
		return "", fmt.Errorf("%q is not an absolute http(s) URL", redactURL(u))
	}
	if u.User != nil {
		return "", errors.New("URL carries credentials")
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return "", fmt.Errorf("%q has no host", redactURL(u))
	}
	port := u.Port()
	if port == "" {
		port = "443"
		if scheme == "http" {
			port = "80"
		}
	}
	return scheme + "://" + net.JoinHostPort(host, port), nil
}

// redactURL is a URL for an error message: no query, no credentials.
func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	c.RawQuery = ""
	c.Fragment = ""
	return c.String()
}
