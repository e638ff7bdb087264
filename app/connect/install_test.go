package connect

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
)

func TestKeyServerFor(t *testing.T) {
	tests := []struct {
		base, override, want string
	}{
		{"https://acme.atlassian.net", "", KeyServerProduction},
		{"https://acme.atlassian.net/wiki", "", KeyServerProduction},
		{"https://ACME.Atlassian.NET:443/", "", KeyServerProduction},
		{"https://acme.jira.com", "", KeyServerProduction},
		{"https://acme.jira-dev.com", "", KeyServerStaging},
		{"https://agency.atlassian-us-gov-mod.net", "", KeyServerFedRAMP},
		{"https://agency.atlassian-stg-fedm.net", "", KeyServerFedRAMPStaging},
		{"https://agency.atlassian-fex.net", "", KeyServerFex},
		{"https://acme.atlassian.net", "https://keys.example.test/", "https://keys.example.test"},
		{"http://127.0.0.1:9999", "http://127.0.0.1:8888", "http://127.0.0.1:8888"},
		// Refused: no table entry, wrong scheme, look-alike hosts.
		{"https://evil.example.com", "", ""},
		{"https://atlassian.net", "", ""},
		{"https://acme.atlassian.net.evil.com", "", ""},
		{"https://acmeatlassian.net", "", ""},
		{"https://acme.atlassian.net.", "", ""},
		{"http://acme.atlassian.net", "", ""},
		{"https://user@acme.atlassian.net", "", ""},
		{"acme.atlassian.net", "", ""},
		{"", "", ""},
		{"https://acme.atlassian.net", "not a url", ""},
		{"https://acme.atlassian.net", "ftp://keys.example.test", ""},
		{"https://acme.atlassian.net", "https://keys.example.test/?x=1", ""},
	}
	for _, tt := range tests {
		got, err := KeyServerFor(tt.base, tt.override)
		if tt.want == "" {
			if err == nil {
				t.Errorf("KeyServerFor(%q, %q) = %q, want error", tt.base, tt.override, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("KeyServerFor(%q, %q) = %q, %v; want %q", tt.base, tt.override, got, err, tt.want)
		}
	}
}

const (
	appBaseURL    = "https://idbridge.example.com/app"
	installKey    = "5a1e6a21-4d5e-3d8c-9f3d-2b3c4d5e6f70"
	installKid    = "0d5a5c4e-3c2b-4a1f-9e8d-7c6b5a4f3e2d"
	siteBaseURL   = "https://acme.atlassian.net"
	installedPath = "/app/lifecycle/installed"
)

func installClaims(path string) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": installKey,
		"sub": "557058:installer",
		"aud": appBaseURL,
		"iat": testNow.Unix(),
		"exp": testNow.Add(3 * time.Minute).Unix(),
		"qsh": urlQSH("POST", path),
	}
}

// TestInstallVerifierAttacks is the attack table for signed installs.
func TestInstallVerifierAttacks(t *testing.T) {
	priv, other := rsaKeys(t)
	ks := newKeyServer(t)
	ks.set(installKid, publicPEM(t, &priv.PublicKey))
	ks.status["boom"] = http.StatusInternalServerError
	ks.timeout["slow"] = true
	client := ks.Client()
	client.Timeout = 200 * time.Millisecond
	clock := &fakeClock{t: testNow}
	v := &InstallVerifier{
		Keys:              NewKeyFetcher(client, time.Hour, 16, clock.Now),
		AppBaseURL:        appBaseURL,
		KeyServerOverride: ks.URL,
		Now:               clock.Now,
	}
	kid := map[string]any{"kid": installKid}
	good := installClaims(installedPath)
	pemText := publicPEM(t, &priv.PublicKey)

	tests := []struct {
		name      string
		token     string // empty: no Authorization header
		inQuery   bool
		path      string
		clientKey string
		now       time.Time
		reason    string // empty: accepted
	}{
		{name: "valid", token: sign(t, jwt.SigningMethodRS256, priv, good, kid)},
		{name: "valid, aud array", token: sign(t, jwt.SigningMethodRS256, priv, with(good, "aud", []string{"https://other.example", appBaseURL}), kid)},
		{name: "valid, aud with trailing slash", token: sign(t, jwt.SigningMethodRS256, priv, with(good, "aud", appBaseURL+"/"), kid)},
		{name: "valid, uninstalled", token: sign(t, jwt.SigningMethodRS256, priv, installClaims("/app/lifecycle/uninstalled"), kid), path: "/app/lifecycle/uninstalled"},
		{name: "accepted within leeway", token: sign(t, jwt.SigningMethodRS256, priv, good, kid), now: testNow.Add(3*time.Minute + Leeway - time.Second)},

		{name: "unsigned install", reason: ReasonMissingToken},
		{name: "token in query instead of header", token: sign(t, jwt.SigningMethodRS256, priv, good, kid), inQuery: true, reason: ReasonMissingToken},
		{name: "alg none", token: sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good, kid), reason: ReasonBadAlg},
		{name: "HS256 signed with the PEM public key", token: sign(t, jwt.SigningMethodHS256, pemText, good, kid), reason: ReasonBadAlg},
		{name: "HS256 signed with the PEM, no kid", token: sign(t, jwt.SigningMethodHS256, pemText, good, nil), reason: ReasonBadAlg},
		{name: "HS256 with the shared secret", token: sign(t, jwt.SigningMethodHS256, siteSecret, good, kid), reason: ReasonBadAlg},
		{name: "RS512", token: sign(t, jwt.SigningMethodRS512, priv, good, kid), reason: ReasonBadAlg},
		{name: "PS256 with the same key", token: sign(t, jwt.SigningMethodPS256, priv, good, kid), reason: ReasonBadAlg},
		{name: "signed by another key", token: sign(t, jwt.SigningMethodRS256, other, good, kid), reason: ReasonBadSignature},
		{name: "no kid", token: sign(t, jwt.SigningMethodRS256, priv, good, nil), reason: ReasonBadKid},
		{name: "empty kid", token: sign(t, jwt.SigningMethodRS256, priv, good, map[string]any{"kid": ""}), reason: ReasonBadKid},
		{name: "kid not a string", token: sign(t, jwt.SigningMethodRS256, priv, good, map[string]any{"kid": 7}), reason: ReasonBadKid},
		{name: "kid with slash", token: sign(t, jwt.SigningMethodRS256, priv, good, map[string]any{"kid": "a/" + installKid}), reason: ReasonBadKid},
		{name: "kid with dot-dot", token: sign(t, jwt.SigningMethodRS256, priv, good, map[string]any{"kid": "../" + installKid}), reason: ReasonBadKid},
		{name: "kid dot-dot alone", token: sign(t, jwt.SigningMethodRS256, priv, good, map[string]any{"kid": ".."}), reason: ReasonBadKid},
		{name: "kid with percent", token: sign(t, jwt.SigningMethodRS256, priv, good, map[string]any{"kid": "%2e%2e%2f" + installKid}), reason: ReasonBadKid},
		{name: "kid as a URL", token: sign(t, jwt.SigningMethodRS256, priv, good, map[string]any{"kid": "https://evil.example/key"}), reason: ReasonBadKid},
		{name: "unknown kid (404)", token: sign(t, jwt.SigningMethodRS256, priv, good, map[string]any{"kid": "not-there"}), reason: ReasonUnknownKid},
		{name: "key server 500", token: sign(t, jwt.SigningMethodRS256, priv, good, map[string]any{"kid": "boom"}), reason: ReasonKeyServerUnavailable},
		{name: "key server timeout", token: sign(t, jwt.SigningMethodRS256, priv, good, map[string]any{"kid": "slow"}), reason: ReasonKeyServerUnavailable},
		{name: "aud mismatch, string", token: sign(t, jwt.SigningMethodRS256, priv, with(good, "aud", "https://evil.example.com/app"), kid), reason: ReasonBadAud},
		{name: "aud mismatch, array", token: sign(t, jwt.SigningMethodRS256, priv, with(good, "aud", []string{"https://evil.example.com", "https://idbridge.example.com"}), kid), reason: ReasonBadAud},
		{name: "aud prefix only", token: sign(t, jwt.SigningMethodRS256, priv, with(good, "aud", appBaseURL+"x"), kid), reason: ReasonBadAud},
		{name: "aud missing", token: sign(t, jwt.SigningMethodRS256, priv, with(good, "aud", nil), kid), reason: ReasonBadAud},
		{name: "aud a number", token: sign(t, jwt.SigningMethodRS256, priv, with(good, "aud", 1), kid), reason: ReasonMalformed},
		{name: "iss is not the body's clientKey", token: sign(t, jwt.SigningMethodRS256, priv, with(good, "iss", "other-site"), kid), reason: ReasonBadIss},
		{name: "body has no clientKey", token: sign(t, jwt.SigningMethodRS256, priv, good, kid), clientKey: "-", reason: ReasonBadIss},
		{name: "qsh of another path", token: sign(t, jwt.SigningMethodRS256, priv, installClaims("/app/lifecycle/uninstalled"), kid), reason: ReasonBadQSH},
		{name: "qsh of another method", token: sign(t, jwt.SigningMethodRS256, priv, with(good, "qsh", urlQSH("GET", installedPath)), kid), reason: ReasonBadQSH},
		{name: "qsh missing", token: sign(t, jwt.SigningMethodRS256, priv, with(good, "qsh", nil), kid), reason: ReasonBadQSH},
		{name: "context-qsh", token: sign(t, jwt.SigningMethodRS256, priv, with(good, "qsh", ContextQSH), kid), reason: ReasonContextQSHOnURLRoute},
		{name: "expired beyond leeway", token: sign(t, jwt.SigningMethodRS256, priv, good, kid), now: testNow.Add(3*time.Minute + Leeway + time.Second), reason: ReasonExpired},
		{name: "no exp", token: sign(t, jwt.SigningMethodRS256, priv, with(good, "exp", nil), kid), reason: ReasonNoExp},
		{name: "malformed", token: "a.b", reason: ReasonMalformed},
		{name: "lifetime of 15 minutes", token: sign(t, jwt.SigningMethodRS256, priv, with(good, "exp", testNow.Add(MaxTokenLifetime).Unix()), kid)},
		{name: "lifetime over 15 minutes", token: sign(t, jwt.SigningMethodRS256, priv, with(good, "exp", testNow.Add(MaxTokenLifetime+time.Second).Unix()), kid), reason: ReasonTooLongLived},
		{name: "iat in the future", token: sign(t, jwt.SigningMethodRS256, priv, with(with(good, "iat", testNow.Add(time.Hour).Unix()), "exp", testNow.Add(time.Hour+time.Minute).Unix()), kid), reason: ReasonIssuedInFuture},
		{name: "body clientKey with NUL", token: sign(t, jwt.SigningMethodRS256, priv, with(good, "iss", "a\x00b"), kid), clientKey: "a\x00b", reason: ReasonBadIss},
		{name: "body clientKey with a space", token: sign(t, jwt.SigningMethodRS256, priv, with(good, "iss", "a b"), kid), clientKey: "a b", reason: ReasonBadIss},

		// Junk that needs no key to refuse never reaches the key server
		// (checked below): each names a kid of its own.
		{name: "unasked: expired", token: sign(t, jwt.SigningMethodRS256, other, good, map[string]any{"kid": "unasked-expired"}), now: testNow.Add(time.Hour), reason: ReasonExpired},
		{name: "unasked: aud not ours", token: sign(t, jwt.SigningMethodRS256, other, with(good, "aud", "https://evil.example"), map[string]any{"kid": "unasked-aud"}), reason: ReasonBadAud},
		{name: "unasked: iss not the body's", token: sign(t, jwt.SigningMethodRS256, other, with(good, "iss", "someone-else"), map[string]any{"kid": "unasked-iss"}), reason: ReasonBadIss},
		{name: "unasked: qsh of another request", token: sign(t, jwt.SigningMethodRS256, other, with(good, "qsh", urlQSH("GET", "/app/x")), map[string]any{"kid": "unasked-qsh"}), reason: ReasonBadQSH},
		{name: "unasked: too long-lived", token: sign(t, jwt.SigningMethodRS256, other, with(good, "exp", testNow.AddDate(1, 0, 0).Unix()), map[string]any{"kid": "unasked-life"}), reason: ReasonTooLongLived},
		{name: "unasked: payload not claims", token: sign(t, jwt.SigningMethodRS256, other, with(good, "exp", "soon"), map[string]any{"kid": "unasked-json"}), reason: ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock.mu.Lock()
			clock.t = testNow
			if !tt.now.IsZero() {
				clock.t = tt.now
			}
			clock.mu.Unlock()
			path := tt.path
			if path == "" {
				path = installedPath
			}
			target := "https://idbridge.example.com" + path
			if tt.inQuery {
				target += "?jwt=" + tt.token
			}
			r := httptest.NewRequest("POST", target, strings.NewReader(`{}`))
			if tt.token != "" && !tt.inQuery {
				r.Header.Set("Authorization", "JWT "+tt.token)
			}
			clientKey := tt.clientKey
			switch clientKey {
			case "":
				clientKey = installKey
			case "-":
				clientKey = ""
			}
			claims, err := v.Verify(context.Background(), r, clientKey, siteBaseURL)
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
			if d := cmp.Diff(map[string]string{"iss": installKey, "kid": installKid},
				map[string]string{"iss": claims.Issuer, "kid": claims.KeyID}); d != "" {
				t.Errorf("claims (-want +got):\n%s", d)
			}
		})
	}
	if n := ks.hitCount(installKid); n != 1 {
		t.Errorf("key fetched %d times, want 1 (cached by kid)", n)
	}
	for _, kid := range []string{"a", "..", "%2e%2e%2f", "unasked-expired", "unasked-aud", "unasked-iss", "unasked-qsh", "unasked-life", "unasked-json"} {
		if n := ks.hitCount(kid); n != 0 {
			t.Errorf("key server asked for %q", kid)
		}
	}
}

// TestInstallVerifierKeyServerTable checks that without an override the key
// server comes from the site's host and never from the token, and that an
// unknown host is refused before any fetch.
func TestInstallVerifierKeyServerTable(t *testing.T) {
	priv, _ := rsaKeys(t)
	var asked []string
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		asked = append(asked, r.URL.String())
		return &http.Response{StatusCode: http.StatusOK, Body: bodyOf(publicPEM(t, &priv.PublicKey)), Header: http.Header{}, Request: r}, nil
	})
	v := &InstallVerifier{
		Keys:       NewKeyFetcher(&http.Client{Transport: rt}, 0, 0, nil),
		AppBaseURL: appBaseURL,
		Now:        func() time.Time { return testNow },
	}
	// jku and x5u in the header must be ignored.
	header := map[string]any{"kid": installKid, "jku": "https://evil.example/keys", "x5u": "https://evil.example/cert"}
	token := sign(t, jwt.SigningMethodRS256, priv, installClaims(installedPath), header)
	r := httptest.NewRequest("POST", "https://idbridge.example.com"+installedPath, nil)
	r.Header.Set("Authorization", "JWT "+token)

	if _, err := v.Verify(context.Background(), r, installKey, "https://acme.jira-dev.com"); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{KeyServerStaging + "/" + installKid}, asked); d != "" {
		t.Fatalf("key URLs asked (-want +got):\n%s", d)
	}
	_, err := v.Verify(context.Background(), r, installKey, "https://evil.example.com")
	wantReason(t, err, ReasonUntrustedSite)
	if len(asked) != 1 {
		t.Fatalf("fetched for an untrusted site: %v", asked)
	}
}

func TestInstallVerifierMisconfigured(t *testing.T) {
	r := httptest.NewRequest("POST", "https://idbridge.example.com/x", nil)
	for name, v := range map[string]*InstallVerifier{
		"nil":             nil,
		"no keys":         {AppBaseURL: appBaseURL},
		"relative base":   {Keys: NewKeyFetcher(nil, 0, 0, nil), AppBaseURL: "/app"},
		"unparsable base": {Keys: NewKeyFetcher(nil, 0, 0, nil), AppBaseURL: "http://[::1"},
	} {
		if _, err := v.Verify(context.Background(), r, installKey, siteBaseURL); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
