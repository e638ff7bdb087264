package connect

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
)

func TestTokenFromRequest(t *testing.T) {
	tests := []struct {
		name   string
		target string
		auth   []string
		want   string
		reason string
	}{
		{name: "header", target: "/p", auth: []string{"JWT a.b.c"}, want: "a.b.c"},
		{name: "header scheme case-insensitive", target: "/p", auth: []string{"jwt a.b.c"}, want: "a.b.c"},
		{name: "header extra spaces", target: "/p", auth: []string{"JWT   a.b.c  "}, want: "a.b.c"},
		{name: "query", target: "/p?x=1&jwt=a.b.c", want: "a.b.c"},
		{name: "query percent-encoded", target: "/p?jwt=a%2Eb.c", want: "a.b.c"},
		{name: "none", target: "/p?x=1", reason: ReasonMissingToken},
		{name: "both", target: "/p?jwt=a.b.c", auth: []string{"JWT a.b.c"}, reason: ReasonTokenInQueryAndHeader},
		{name: "both, empty query value", target: "/p?jwt=", auth: []string{"JWT a.b.c"}, reason: ReasonTokenInQueryAndHeader},
		{name: "two query tokens", target: "/p?jwt=a.b.c&jwt=d.e.f", reason: ReasonMalformed},
		{name: "two headers", target: "/p", auth: []string{"JWT a.b.c", "JWT d.e.f"}, reason: ReasonMalformed},
		{name: "bearer scheme", target: "/p", auth: []string{"Bearer a.b.c"}, reason: ReasonBadAuthScheme},
		{name: "scheme only", target: "/p", auth: []string{"JWT"}, reason: ReasonMissingToken},
		{name: "empty header", target: "/p", auth: []string{""}, reason: ReasonBadAuthScheme},
		{name: "empty query token", target: "/p?jwt=", reason: ReasonMissingToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tt.target, nil)
			for _, a := range tt.auth {
				r.Header.Add("Authorization", a)
			}
			got, err := TokenFromRequest(r)
			if tt.reason != "" {
				wantReason(t, err, tt.reason)
				noTokenIn(t, err, "a.b.c")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("token = %q, want %q", got, tt.want)
			}
		})
	}
	_, err := TokenFromRequest(nil)
	wantReason(t, err, ReasonMissingToken)
}

func TestUnverifiedIssuer(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	hdr := enc([]byte(`{"alg":"HS256","typ":"JWT"}`))
	tests := []struct {
		name, token, want, reason string
	}{
		{name: "ok", token: hdr + "." + enc([]byte(`{"iss":"site-1"}`)) + ".sig", want: "site-1"},
		{name: "two parts", token: hdr + "." + enc([]byte(`{"iss":"x"}`)), reason: ReasonMalformed},
		{name: "four parts", token: hdr + "." + enc([]byte(`{"iss":"x"}`)) + ".a.b", reason: ReasonMalformed},
		{name: "too large", token: hdr + "." + enc([]byte(`{"iss":"x","p":"`+strings.Repeat("a", MaxTokenSize)+`"}`)) + ".s", reason: ReasonMalformed},
		{name: "payload not base64", token: hdr + ".!!!.s", reason: ReasonMalformed},
		{name: "padded payload", token: hdr + "." + base64.URLEncoding.EncodeToString([]byte(`{"iss":"x"}`)) + ".s", reason: ReasonMalformed},
		{name: "payload not JSON", token: hdr + "." + enc([]byte(`nope`)) + ".s", reason: ReasonMalformed},
		{name: "payload array", token: hdr + "." + enc([]byte(`[1]`)) + ".s", reason: ReasonMalformed},
		{name: "header not JSON", token: enc([]byte(`x`)) + "." + enc([]byte(`{"iss":"x"}`)) + ".s", reason: ReasonMalformed},
		{name: "no iss", token: hdr + "." + enc([]byte(`{"sub":"x"}`)) + ".s", reason: ReasonBadIss},
		{name: "empty iss", token: hdr + "." + enc([]byte(`{"iss":""}`)) + ".s", reason: ReasonBadIss},
		{name: "numeric iss", token: hdr + "." + enc([]byte(`{"iss":5}`)) + ".s", reason: ReasonBadIss},
		{name: "long iss", token: hdr + "." + enc([]byte(`{"iss":"`+strings.Repeat("a", 300)+`"}`)) + ".s", reason: ReasonBadIss},
		{name: "iss of 256 characters", token: hdr + "." + enc([]byte(`{"iss":"`+strings.Repeat("a", 256)+`"}`)) + ".s", want: strings.Repeat("a", 256)},
		{name: "uuid iss", token: hdr + "." + enc([]byte(`{"iss":"5a1e6a21-4d5e-3d8c-9f3d-2b3c4d5e6f70"}`)) + ".s", want: "5a1e6a21-4d5e-3d8c-9f3d-2b3c4d5e6f70"},
		{name: "jira: iss", token: hdr + "." + enc([]byte(`{"iss":"jira:123456"}`)) + ".s", want: "jira:123456"},
		{name: "NUL in iss", token: hdr + "." + enc([]byte(`{"iss":"site\u0000-1"}`)) + ".s", reason: ReasonBadIss},
		{name: "invalid UTF-8 in iss", token: hdr + "." + enc([]byte("{\"iss\":\"site\xff-1\"}")) + ".s", reason: ReasonBadIss},
		{name: "lone surrogate in iss", token: hdr + "." + enc([]byte(`{"iss":"site\ud800"}`)) + ".s", reason: ReasonBadIss},
		{name: "space in iss", token: hdr + "." + enc([]byte(`{"iss":"site 1"}`)) + ".s", reason: ReasonBadIss},
		{name: "newline in iss", token: hdr + "." + enc([]byte(`{"iss":"site\n1"}`)) + ".s", reason: ReasonBadIss},
		{name: "non-ASCII iss", token: hdr + "." + enc([]byte(`{"iss":"sité"}`)) + ".s", reason: ReasonBadIss},
		{name: "DEL in iss", token: hdr + "." + enc([]byte(`{"iss":"site\u007f"}`)) + ".s", reason: ReasonBadIss},
		{name: "empty", token: "", reason: ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := UnverifiedIssuer(tt.token)
			if tt.reason != "" {
				wantReason(t, err, tt.reason)
				noTokenIn(t, err, tt.token)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("iss = %q, want %q", got, tt.want)
			}
		})
	}
}

const (
	siteKey  = "5a1e6a21-4d5e-3d8c-9f3d-2b3c4d5e6f70"
	basePath = "/app"
)

var siteSecret = []byte("site-shared-secret-0123456789abcdef")

// siteRequest is a request to our app at basePath.
func siteRequest(method, target string, token string, inQuery bool) *http.Request {
	if inQuery {
		sep := "?"
		if strings.Contains(target, "?") {
			sep = "&"
		}
		target += sep + "jwt=" + url.QueryEscape(token)
	}
	r := httptest.NewRequest(method, "https://idbridge.example.com"+target, nil)
	if !inQuery {
		r.Header.Set("Authorization", "JWT "+token)
	}
	return r
}

func urlQSH(method, target string) string {
	u, err := url.Parse(target)
	if err != nil {
		panic(err)
	}
	return QSH(CanonicalRequest(method, u, basePath))
}

func siteClaims(qsh string) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": siteKey,
		"sub": "557058:account",
		"iat": testNow.Unix(),
		"exp": testNow.Add(3 * time.Minute).Unix(),
		"qsh": qsh,
	}
}

func with(c jwt.MapClaims, k string, v any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for kk, vv := range c {
		out[kk] = vv
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

// TestVerifySiteTokenAttacks is the attack table for shared-secret tokens.
func TestVerifySiteTokenAttacks(t *testing.T) {
	priv, _ := rsaKeys(t)
	const target = "/app/admin?b=2&a=1"
	good := siteClaims(urlQSH("GET", target))
	ctxClaims := with(siteClaims(ContextQSH), "context", map[string]any{"user": map[string]any{"accountId": "557058:account"}})

	tests := []struct {
		name    string
		token   string
		kind    RouteKind
		method  string
		target  string
		inQuery bool
		now     time.Time
		reason  string // empty: accepted
	}{
		{name: "valid URL token in header", token: sign(t, jwt.SigningMethodHS256, siteSecret, good, nil)},
		{name: "valid URL token in query", token: sign(t, jwt.SigningMethodHS256, siteSecret, good, nil), inQuery: true},
		{name: "query order does not matter", token: sign(t, jwt.SigningMethodHS256, siteSecret, good, nil), target: "/app/admin?a=1&b=2"},
		{name: "valid context token", kind: ContextBound, token: sign(t, jwt.SigningMethodHS256, siteSecret, ctxClaims, nil), target: "/app/api/admin/site"},
		{name: "accepted within leeway", token: sign(t, jwt.SigningMethodHS256, siteSecret, good, nil), now: testNow.Add(3*time.Minute + Leeway - time.Second)},

		{name: "alg none", token: sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good, nil), reason: ReasonBadAlg},
		{name: "alg NONE upper-case", token: sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good, map[string]any{"alg": "NONE"}), reason: ReasonBadAlg},
		{name: "HS512", token: sign(t, jwt.SigningMethodHS512, siteSecret, good, nil), reason: ReasonBadAlg},
		{name: "HS384", token: sign(t, jwt.SigningMethodHS384, siteSecret, good, nil), reason: ReasonBadAlg},
		{name: "RS256 on shared-secret path", token: sign(t, jwt.SigningMethodRS256, priv, good, nil), reason: ReasonBadAlg},
		{name: "alg missing", token: sign(t, jwt.SigningMethodHS256, siteSecret, good, map[string]any{"alg": nil}), reason: ReasonBadAlg},
		{name: "alg not a string", token: sign(t, jwt.SigningMethodHS256, siteSecret, good, map[string]any{"alg": 256}), reason: ReasonBadAlg},
		{name: "alg hs256 lower-case", token: sign(t, jwt.SigningMethodHS256, siteSecret, good, map[string]any{"alg": "hs256"}), reason: ReasonBadAlg},
		{name: "wrong secret", token: sign(t, jwt.SigningMethodHS256, []byte("another-secret"), good, nil), reason: ReasonBadSignature},
		{name: "signature stripped", token: strings.TrimRightFunc(sign(t, jwt.SigningMethodHS256, siteSecret, good, nil), func(r rune) bool { return r != '.' }), reason: ReasonBadSignature},
		{name: "tampered payload", token: tamper(t, sign(t, jwt.SigningMethodHS256, siteSecret, good, nil), "sub", "attacker"), reason: ReasonBadSignature},
		{name: "iss is not the client key", token: sign(t, jwt.SigningMethodHS256, siteSecret, with(good, "iss", "other-site"), nil), reason: ReasonBadIss},
		{name: "no iss", token: sign(t, jwt.SigningMethodHS256, siteSecret, with(good, "iss", nil), nil), reason: ReasonBadIss},
		{name: "expired beyond leeway", token: sign(t, jwt.SigningMethodHS256, siteSecret, good, nil), now: testNow.Add(3*time.Minute + Leeway + time.Second), reason: ReasonExpired},
		{name: "no exp", token: sign(t, jwt.SigningMethodHS256, siteSecret, with(good, "exp", nil), nil), reason: ReasonNoExp},
		{name: "exp a string", token: sign(t, jwt.SigningMethodHS256, siteSecret, with(good, "exp", "tomorrow"), nil), reason: ReasonMalformed},
		{name: "nbf in the future", token: sign(t, jwt.SigningMethodHS256, siteSecret, with(good, "nbf", testNow.Add(time.Hour).Unix()), nil), reason: ReasonNotYetValid},
		{name: "qsh of another method", token: sign(t, jwt.SigningMethodHS256, siteSecret, siteClaims(urlQSH("POST", target)), nil), reason: ReasonBadQSH},
		{name: "qsh of another path", token: sign(t, jwt.SigningMethodHS256, siteSecret, siteClaims(urlQSH("GET", "/app/other?b=2&a=1")), nil), reason: ReasonBadQSH},
		{name: "qsh of another query", token: sign(t, jwt.SigningMethodHS256, siteSecret, siteClaims(urlQSH("GET", "/app/admin?b=2&a=2")), nil), reason: ReasonBadQSH},
		{name: "extra query parameter", token: sign(t, jwt.SigningMethodHS256, siteSecret, good, nil), target: target + "&c=3", reason: ReasonBadQSH},
		{name: "__proto__ parameter is signed", token: sign(t, jwt.SigningMethodHS256, siteSecret, good, nil), target: target + "&__proto__=x", reason: ReasonBadQSH},
		{name: "path & smuggled into query", token: sign(t, jwt.SigningMethodHS256, siteSecret, siteClaims(urlQSH("GET", "/app/admin?x=y&a=b")), nil), target: "/app/admin&a=b?x=y", reason: ReasonBadQSH},
		{name: "qsh missing", token: sign(t, jwt.SigningMethodHS256, siteSecret, with(good, "qsh", nil), nil), reason: ReasonBadQSH},
		{name: "qsh upper-case hex", token: sign(t, jwt.SigningMethodHS256, siteSecret, siteClaims(strings.ToUpper(urlQSH("GET", target))), nil), reason: ReasonBadQSH},
		{name: "context-qsh on URL route", token: sign(t, jwt.SigningMethodHS256, siteSecret, ctxClaims, nil), reason: ReasonContextQSHOnURLRoute},
		{name: "URL token on context route", kind: ContextBound, token: sign(t, jwt.SigningMethodHS256, siteSecret, good, nil), reason: ReasonURLQSHOnContextRoute},
		{name: "no qsh on context route", kind: ContextBound, token: sign(t, jwt.SigningMethodHS256, siteSecret, with(ctxClaims, "qsh", nil), nil), reason: ReasonBadQSH},
		{name: "context token without sub", kind: ContextBound, token: sign(t, jwt.SigningMethodHS256, siteSecret, with(ctxClaims, "sub", nil), nil), reason: ReasonNoSub},
		{name: "context token empty sub", kind: ContextBound, token: sign(t, jwt.SigningMethodHS256, siteSecret, with(ctxClaims, "sub", ""), nil), reason: ReasonNoSub},
		{name: "context not an object", kind: ContextBound, token: sign(t, jwt.SigningMethodHS256, siteSecret, with(ctxClaims, "context", "x"), nil), reason: ReasonMalformed},
		{name: "context token sub with NUL", kind: ContextBound, token: sign(t, jwt.SigningMethodHS256, siteSecret, with(ctxClaims, "sub", "557058:a\x00b"), nil), reason: ReasonBadSub},
		{name: "context token sub not ASCII", kind: ContextBound, token: sign(t, jwt.SigningMethodHS256, siteSecret, with(ctxClaims, "sub", "557058:é"), nil), reason: ReasonBadSub},
		{name: "context token sub too long", kind: ContextBound, token: sign(t, jwt.SigningMethodHS256, siteSecret, with(ctxClaims, "sub", strings.Repeat("a", 129)), nil), reason: ReasonBadSub},
		{name: "URL token sub with a space", token: sign(t, jwt.SigningMethodHS256, siteSecret, with(good, "sub", "557058 x"), nil), reason: ReasonBadSub},

		// Lifetimes: Atlassian's tokens live at most 15 minutes (context
		// tokens), from an iat that is not in the future.
		{name: "context token of 15 minutes", kind: ContextBound, token: sign(t, jwt.SigningMethodHS256, siteSecret, with(ctxClaims, "exp", testNow.Add(MaxTokenLifetime).Unix()), nil)},
		{name: "context token of 15 minutes and 1 s", kind: ContextBound, token: sign(t, jwt.SigningMethodHS256, siteSecret, with(ctxClaims, "exp", testNow.Add(MaxTokenLifetime+time.Second).Unix()), nil), reason: ReasonTooLongLived},
		{name: "exp ten years ahead", kind: ContextBound, token: sign(t, jwt.SigningMethodHS256, siteSecret, with(ctxClaims, "exp", testNow.AddDate(10, 0, 0).Unix()), nil), reason: ReasonTooLongLived},
		{name: "URL token of an hour", token: sign(t, jwt.SigningMethodHS256, siteSecret, with(good, "exp", testNow.Add(time.Hour).Unix()), nil), reason: ReasonTooLongLived},
		{name: "iat a year ahead, exp after it", kind: ContextBound, token: sign(t, jwt.SigningMethodHS256, siteSecret, with(with(ctxClaims, "iat", testNow.AddDate(1, 0, 0).Unix()), "exp", testNow.AddDate(1, 0, 0).Add(time.Minute).Unix()), nil), reason: ReasonIssuedInFuture},
		{name: "iat within the leeway ahead", kind: ContextBound, token: sign(t, jwt.SigningMethodHS256, siteSecret, with(ctxClaims, "iat", testNow.Add(Leeway).Unix()), nil)},
		{name: "iat beyond the leeway ahead", kind: ContextBound, token: sign(t, jwt.SigningMethodHS256, siteSecret, with(ctxClaims, "iat", testNow.Add(Leeway+time.Second).Unix()), nil), reason: ReasonIssuedInFuture},
		{name: "old iat, long exp", kind: ContextBound, token: sign(t, jwt.SigningMethodHS256, siteSecret, with(with(ctxClaims, "iat", testNow.Add(-time.Hour).Unix()), "exp", testNow.Add(time.Minute).Unix()), nil), reason: ReasonTooLongLived},
		{name: "no iat, exp within 15 minutes", kind: ContextBound, token: sign(t, jwt.SigningMethodHS256, siteSecret, with(with(ctxClaims, "iat", nil), "exp", testNow.Add(MaxTokenLifetime).Unix()), nil)},
		{name: "no iat, exp beyond 15 minutes and the leeway", kind: ContextBound, token: sign(t, jwt.SigningMethodHS256, siteSecret, with(with(ctxClaims, "iat", nil), "exp", testNow.Add(MaxTokenLifetime+Leeway+time.Second).Unix()), nil), reason: ReasonTooLongLived},
		{name: "garbage", token: "not-a-token", reason: ReasonMalformed},
		{name: "oversized", token: sign(t, jwt.SigningMethodHS256, siteSecret, with(good, "pad", strings.Repeat("a", MaxTokenSize)), nil), reason: ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, tgt, now := tt.method, tt.target, tt.now
			if method == "" {
				method = "GET"
			}
			if tgt == "" {
				tgt = target
			}
			if now.IsZero() {
				now = testNow
			}
			r := siteRequest(method, tgt, tt.token, tt.inQuery)
			token, err := TokenFromRequest(r)
			if err != nil {
				t.Fatal(err)
			}
			claims, err := VerifySiteToken(token, siteKey, siteSecret, tt.kind, r, basePath, now)
			noTokenIn(t, err, tt.token)
			if tt.reason != "" {
				wantReason(t, err, tt.reason)
				if claims != nil {
					t.Error("claims returned with an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if d := cmp.Diff(map[string]string{"iss": siteKey, "sub": "557058:account"},
				map[string]string{"iss": claims.Issuer, "sub": claims.Subject}); d != "" {
				t.Errorf("claims (-want +got):\n%s", d)
			}
		})
	}
}

// tamper rewrites one claim of a signed token, keeping the signature.
func tamper(t *testing.T, token, claim, value string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	b, err := decodeSegment(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := jsonUnmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m[claim] = value
	parts[1] = base64.RawURLEncoding.EncodeToString(jsonMarshal(t, m))
	return strings.Join(parts, ".")
}

func TestVerifySiteTokenClaims(t *testing.T) {
	c := with(siteClaims(ContextQSH), "context", map[string]any{"license": map[string]any{"active": true}})
	c["aud"] = "x"
	token := sign(t, jwt.SigningMethodHS256, siteSecret, c, map[string]any{"kid": "k1"})
	got, err := VerifySiteToken(token, siteKey, siteSecret, ContextBound, nil, "", testNow)
	if err != nil {
		t.Fatal(err)
	}
	want := &Claims{
		Issuer:    siteKey,
		Subject:   "557058:account",
		Audience:  []string{"x"},
		IssuedAt:  testNow,
		ExpiresAt: testNow.Add(3 * time.Minute),
		QSH:       ContextQSH,
		Context:   map[string]any{"license": map[string]any{"active": true}},
		KeyID:     "k1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("claims (-want +got):\n%s", diff)
	}
}

func TestVerifySiteTokenMisuse(t *testing.T) {
	token := sign(t, jwt.SigningMethodHS256, siteSecret, siteClaims(urlQSH("GET", "/app/x")), nil)
	r := siteRequest("GET", "/app/x", token, false)
	for name, call := range map[string]func() error{
		"empty secret": func() error {
			_, err := VerifySiteToken(token, siteKey, nil, URLBound, r, basePath, testNow)
			return err
		},
		"empty client key": func() error {
			_, err := VerifySiteToken(token, "", siteSecret, URLBound, r, basePath, testNow)
			return err
		},
		"no request on URL route": func() error {
			_, err := VerifySiteToken(token, siteKey, siteSecret, URLBound, nil, basePath, testNow)
			return err
		},
		"unknown kind": func() error {
			_, err := VerifySiteToken(token, siteKey, siteSecret, RouteKind(7), r, basePath, testNow)
			return err
		},
	} {
		if err := call(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// A token signed with an empty key must not verify against it either.
	empty := sign(t, jwt.SigningMethodHS256, []byte{}, siteClaims(urlQSH("GET", "/app/x")), nil)
	if _, err := VerifySiteToken(empty, siteKey, []byte{}, URLBound, r, basePath, testNow); err == nil {
		t.Error("empty-key token accepted")
	}
}

func TestSignAppToken(t *testing.T) {
	tests := []struct {
		name, method, target, base, canonical string
	}{
		{"jira", "get", "https://acme.atlassian.net/rest/api/3/myself?expand=groups", "https://acme.atlassian.net", "GET&/rest/api/3/myself&expand=groups"},
		{"confluence strips /wiki", "GET", "https://acme.atlassian.net/wiki/rest/api/user?accountId=1&expand=operations", "https://acme.atlassian.net/wiki", "GET&/rest/api/user&accountId=1&expand=operations"},
		{"explicit default port", "POST", "https://ACME.atlassian.net:443/rest/x", "https://acme.atlassian.net", "POST&/rest/x&"},
		{"reporting API", "POST", "https://api.atlassian.com/app/report-accounts/", "https://api.atlassian.com", "POST&/app/report-accounts&"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, err := url.Parse(tt.target)
			if err != nil {
				t.Fatal(err)
			}
			token, err := SignAppToken("idbridge", siteSecret, tt.method, target, tt.base, testNow)
			if err != nil {
				t.Fatal(err)
			}
			var c tokenClaims
			tok, err := newParser("HS256", testNow).ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return siteSecret, nil })
			if err != nil {
				t.Fatal(err)
			}
			if tok.Header["alg"] != "HS256" {
				t.Errorf("alg = %v", tok.Header["alg"])
			}
			got := c.claims("")
			want := &Claims{Issuer: "idbridge", IssuedAt: testNow, ExpiresAt: testNow.Add(3 * time.Minute), QSH: QSH(tt.canonical)}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("claims (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSignAppTokenRefusesOtherOrigins(t *testing.T) {
	tests := []struct{ name, target, base string }{
		{"other host", "https://evil.example.com/rest/x", "https://acme.atlassian.net"},
		{"suffix host", "https://acme.atlassian.net.evil.com/rest/x", "https://acme.atlassian.net"},
		{"other scheme", "http://acme.atlassian.net/rest/x", "https://acme.atlassian.net"},
		{"other port", "https://acme.atlassian.net:8443/rest/x", "https://acme.atlassian.net"},
		{"relative target", "/rest/x", "https://acme.atlassian.net"},
		{"credentials in target", "https://u:p@acme.atlassian.net/rest/x", "https://acme.atlassian.net"},
		{"base not absolute", "https://acme.atlassian.net/rest/x", "acme.atlassian.net"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, err := url.Parse(tt.target)
			if err != nil {
				t.Fatal(err)
			}
			if tok, err := SignAppToken("idbridge", siteSecret, "GET", target, tt.base, testNow); err == nil {
				t.Fatalf("signed %q for %s", tok, tt.target)
			}
		})
	}
	u, _ := url.Parse("https://acme.atlassian.net/x")
	for name, call := range map[string]func() error{
		"empty key": func() error {
			_, err := SignAppToken("", siteSecret, "GET", u, "https://acme.atlassian.net", testNow)
			return err
		},
		"empty secret": func() error {
			_, err := SignAppToken("k", nil, "GET", u, "https://acme.atlassian.net", testNow)
			return err
		},
		"empty method": func() error {
			_, err := SignAppToken("k", siteSecret, "", u, "https://acme.atlassian.net", testNow)
			return err
		},
		"nil target": func() error {
			_, err := SignAppToken("k", siteSecret, "GET", nil, "https://acme.atlassian.net", testNow)
			return err
		},
	} {
		if call() == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestSignedTokenRoundTrip checks that what SignAppToken signs, for a
// request to our own app, VerifySiteToken accepts.
func TestSignedTokenRoundTrip(t *testing.T) {
	target, _ := url.Parse("https://idbridge.example.com/app/lifecycle/enabled?x=%2B&y=a+b")
	token, err := SignAppToken(siteKey, siteSecret, "POST", target, "https://idbridge.example.com/app", testNow)
	if err != nil {
		t.Fatal(err)
	}
	r := siteRequest("POST", "/app/lifecycle/enabled?x=%2B&y=a+b", token, false)
	if _, err := VerifySiteToken(token, siteKey, siteSecret, URLBound, r, basePath, testNow); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkVerifySiteToken(b *testing.B) {
	const target = "/app/admin?xdm_e=https%3A%2F%2Facme.atlassian.net&xdm_c=channel-1&cp=&xdm_deprecated_addon_key_do_not_use=idbridge&lic=active&cv=1001.0.0&tz=Europe%2FBerlin&loc=en-US"
	token := sign(b, jwt.SigningMethodHS256, siteSecret, siteClaims(urlQSH("GET", target)), nil)
	r := siteRequest("GET", target, token, true)
	b.ReportAllocs()
	for b.Loop() {
		tok, err := TokenFromRequest(r)
		if err != nil {
			b.Fatal(err)
		}
		iss, err := UnverifiedIssuer(tok)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := VerifySiteToken(tok, iss, siteSecret, URLBound, r, basePath, testNow); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzUnverifiedIssuer(f *testing.F) {
	f.Add(sign(f, jwt.SigningMethodHS256, siteSecret, siteClaims("x"), nil))
	f.Add("a.b.c")
	f.Add("..")
	f.Add("eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOjF9.x")
	f.Fuzz(func(t *testing.T, token string) {
		iss, err := UnverifiedIssuer(token)
		if err != nil {
			if ReasonOf(err) == "" {
				t.Fatalf("error %v is not a failed verification with a reason", err)
			}
			return
		}
		if !ValidClientKey(iss) || len(token) > MaxTokenSize {
			t.Fatalf("accepted iss %q from %q", iss, token)
		}
		// Whatever is accepted unverified never verifies with a wrong
		// secret.
		if _, err := VerifySiteToken(token, iss, []byte("fuzz-secret"), ContextBound, nil, "", testNow); err == nil {
			t.Fatalf("token %q verified with an arbitrary secret", token)
		}
	})
}
