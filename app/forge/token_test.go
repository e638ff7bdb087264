package forge

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"idbridge/app/apptest"
	"idbridge/models"
)

const (
	testAppID   = "ari:cloud:ecosystem::app/406d303d-0393-4ec4-ad7c-1435be94583a"
	testInstall = "ari:cloud:ecosystem::installation/8f9e1b4e-1111-2222-3333-444455556666"
	testKid     = "forge-key-1"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newVerifier(t *testing.T) (*Verifier, *apptest.ForgeJWKS, *rsa.PrivateKey, *rsa.PrivateKey, *clock) {
	t.Helper()
	key, other := apptest.RSAKeys(t)
	srv := apptest.NewForgeJWKS(t, testKid, &key.PublicKey)
	clk := &clock{t: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)}
	jwks := NewJWKS(srv.URL(), nil, clk.now)
	return &Verifier{AppID: testAppID, Keys: jwks, Now: clk.now}, srv, key, other, clk
}

func goodClaims(now time.Time) apptest.ForgeClaims {
	return apptest.ForgeClaims{
		AppID: testAppID, InstallationID: testInstall, CloudID: "c821c30c-a2ad-47d7-b742-9fed48cfd6b9",
		SiteURL: "https://acme.atlassian.net", APIBaseURL: "https://api.atlassian.com/ex/jira/c821c30c-a2ad-47d7-b742-9fed48cfd6b9",
		IssuedAt: now,
	}
}

func reasonOf(err error) string {
	if e, ok := models.AsError(err); ok && e.Code == models.CodeUnauthorized {
		return e.Reason
	}
	return fmt.Sprintf("not a 401: %v", err)
}

func TestVerifyAcceptsForgeToken(t *testing.T) {
	v, _, key, _, clk := newVerifier(t)
	tok := apptest.SignForgeToken(t, key, testKid, goodClaims(clk.now()))
	inv, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]any{"installationId": inv.InstallationID, "has cloudId": inv.CloudID != "", "siteUrl": inv.SiteURL,
		"apiBaseUrl on api.atlassian.com": strings.HasPrefix(inv.APIBaseURL, "https://api.atlassian.com/")}
	want := map[string]any{"installationId": testInstall, "has cloudId": true, "siteUrl": "https://acme.atlassian.net",
		"apiBaseUrl on api.atlassian.com": true}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("invocation %+v (-want +got):\n%s", inv, d)
	}
	// Within the leeway on either side.
	clk.add(time.Minute + 25*time.Second)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Errorf("25 s past exp: %v", err)
	}
	early := goodClaims(clk.now().Add(25 * time.Second))
	if _, err := v.Verify(context.Background(), apptest.SignForgeToken(t, key, testKid, early)); err != nil {
		t.Errorf("nbf 25 s ahead: %v", err)
	}
}

// TestVerifyAttackTable: every forged, misdirected or stale token is a 401
// with its own reason.
func TestVerifyAttackTable(t *testing.T) {
	v, _, key, other, clk := newVerifier(t)
	now := clk.now()
	sign := func(c apptest.ForgeClaims) string { return apptest.SignForgeToken(t, key, testKid, c) }
	with := func(f func(*apptest.ForgeClaims)) string {
		c := goodClaims(now)
		f(&c)
		return sign(c)
	}
	hs := apptest.SignJWT(t, jwt.SigningMethodHS256, goodClaims(now).MapClaims(), testKid, []byte("a shared secret of thirty-two bytes!"))
	none := apptest.SignJWT(t, jwt.SigningMethodNone, goodClaims(now).MapClaims(), testKid, jwt.UnsafeAllowNoneSignatureType)
	ps := apptest.SignJWT(t, jwt.SigningMethodPS256, goodClaims(now).MapClaims(), testKid, key)
	noKid := apptest.SignJWT(t, jwt.SigningMethodRS256, goodClaims(now).MapClaims(), "", key)
	good := sign(goodClaims(now))
	parts := strings.Split(good, ".")
	// signRaw signs any payload, JSON or not, as Forge's key would.
	signRaw := func(payload string) string {
		in := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
		sig, err := jwt.SigningMethodRS256.Sign(in, key)
		if err != nil {
			t.Fatal(err)
		}
		return in + "." + base64.RawURLEncoding.EncodeToString(sig)
	}
	for name, tc := range map[string]struct{ token, reason string }{
		"HS256 (alg confusion)":   {hs, ReasonBadAlg},
		"alg none":                {none, ReasonBadAlg},
		"PS256":                   {ps, ReasonBadAlg},
		"wrong key":               {apptest.SignForgeToken(t, other, testKid, goodClaims(now)), ReasonBadSignature},
		"signature stripped":      {parts[0] + "." + parts[1] + ".", ReasonBadSignature},
		"payload swapped":         {parts[0] + "." + strings.Split(with(func(c *apptest.ForgeClaims) { c.InstallationID += "x" }), ".")[1] + "." + parts[2], ReasonBadSignature},
		"expired":                 {with(func(c *apptest.ForgeClaims) { c.IssuedAt = now.Add(-2 * time.Minute) }), ReasonExpired},
		"no exp":                  {with(func(c *apptest.ForgeClaims) { c.NoExp = true }), ReasonNoExp},
		"not yet valid":           {with(func(c *apptest.ForgeClaims) { c.NotBefore = now.Add(time.Minute) }), ReasonNotYetValid},
		"long-lived":              {with(func(c *apptest.ForgeClaims) { c.Lifetime = 24 * time.Hour }), ReasonTooLongLived},
		"other app":               {with(func(c *apptest.ForgeClaims) { c.AppID = "ari:cloud:ecosystem::app/other" }), ReasonBadAud},
		"other issuer":            {with(func(c *apptest.ForgeClaims) { c.Issuer = "connect" }), ReasonBadIss},
		"no installation":         {with(func(c *apptest.ForgeClaims) { c.InstallationID = "" }), ReasonBadInstallation},
		"installation not ARI":    {with(func(c *apptest.ForgeClaims) { c.InstallationID = "8f9e1b4e" }), ReasonBadInstallation},
		"unknown kid":             {apptest.SignForgeToken(t, key, "not-published", goodClaims(now)), ReasonUnknownKid},
		"no kid":                  {noKid, ReasonBadKid},
		"kid with a path":         {apptest.SignForgeToken(t, key, "../../etc/passwd", goodClaims(now)), ReasonBadKid},
		"not a JWT":               {"abc", ReasonMalformed},
		"header not base64":       {"!!!." + parts[1] + "." + parts[2], ReasonMalformed},
		"too large":               {good + strings.Repeat("A", MaxTokenSize), ReasonMalformed},
		"four parts":              {good + ".e30", ReasonMalformed},
		"signature not base64":    {parts[0] + "." + parts[1] + ".!!!", ReasonMalformed},
		"signed, claims not JSON": {signRaw("{not json"), ReasonMalformed},
		"signed, claims an array": {signRaw(`[1,2]`), ReasonMalformed},
		"signed, claims null":     {signRaw(`null`), ReasonNoExp},
		// Claims are parsed only once the signature verified.
		"unsigned, claims not JSON": {parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte("{not json")) + "." + parts[2], ReasonBadSignature},
	} {
		_, err := v.Verify(context.Background(), tc.token)
		if got := reasonOf(err); got != tc.reason {
			t.Errorf("%s: reason %q, want %q", name, got, tc.reason)
		}
		if err != nil && strings.Contains(err.Error(), tc.token) && len(tc.token) > 10 {
			t.Errorf("%s: the error quotes the token", name)
		}
	}
	// No app configured: nothing is accepted.
	if got := reasonOf(func() error {
		_, err := (&Verifier{Keys: v.Keys, Now: clk.now}).Verify(context.Background(), good)
		return err
	}()); got != ReasonNotConfigured {
		t.Errorf("unconfigured app: %q", got)
	}
}

func TestTokenFromRequest(t *testing.T) {
	for name, tc := range map[string]struct {
		target, header string
		reason         string
	}{
		"bearer":               {"/forge/lifecycle", "Bearer abc", ""},
		"lower-case scheme":    {"/forge/lifecycle", "bearer abc", ""},
		"none":                 {"/forge/lifecycle", "", ReasonMissingToken},
		"JWT scheme":           {"/forge/lifecycle", "JWT abc", ReasonBadAuthScheme},
		"empty bearer":         {"/forge/lifecycle", "Bearer ", ReasonMissingToken},
		"query jwt":            {"/forge/lifecycle?jwt=abc", "", ReasonTokenInQuery},
		"query with header":    {"/forge/lifecycle?access_token=abc", "Bearer abc", ReasonTokenInQuery},
		"query token":          {"/forge/lifecycle?token=abc", "", ReasonTokenInQuery},
		"harmless query":       {"/forge/lifecycle?x=1", "Bearer abc", ""},
		"basic auth":           {"/forge/lifecycle", "Basic YTpi", ReasonBadAuthScheme},
		"two headers (joined)": {"/forge/lifecycle", "", ""},
	} {
		r := httptest.NewRequest(http.MethodPost, tc.target, nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		if name == "two headers (joined)" {
			r.Header.Add("Authorization", "Bearer a")
			r.Header.Add("Authorization", "Bearer b")
			tc.reason = ReasonMalformed
		}
		tok, err := TokenFromRequest(r)
		if tc.reason == "" {
			if err != nil || tok != "abc" {
				t.Errorf("%s: %q, %v", name, tok, err)
			}
			continue
		}
		if got := reasonOf(err); got != tc.reason {
			t.Errorf("%s: reason %q, want %q", name, got, tc.reason)
		}
	}
}

// TestUnknownKidFloodIsBounded: a flood of tokens with random kids costs at
// most one fetch of the key set per refresh interval, and the known key
// keeps working throughout.
func TestUnknownKidFloodIsBounded(t *testing.T) {
	v, srv, key, _, clk := newVerifier(t)
	good := apptest.SignForgeToken(t, key, testKid, goodClaims(clk.now()))
	if _, err := v.Verify(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	if srv.Fetches() != 1 {
		t.Fatalf("%d fetches for the first token, want 1", srv.Fetches())
	}
	var wg sync.WaitGroup
	var refused atomic.Int64
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := apptest.SignJWT(t, jwt.SigningMethodRS256, goodClaims(clk.now()).MapClaims(), fmt.Sprintf("junk-%d", i), key)
			if _, err := v.Verify(context.Background(), tok); reasonOf(err) == ReasonUnknownKid {
				refused.Add(1)
			}
			if _, err := v.Verify(context.Background(), good); err != nil {
				t.Errorf("good token refused during the flood: %v", err)
			}
		}()
	}
	wg.Wait()
	if refused.Load() != 200 {
		t.Errorf("%d of 200 junk kids refused as unknown", refused.Load())
	}
	// The clock has not moved: the first fetch is too recent for another.
	if srv.Fetches() != 1 {
		t.Errorf("%d fetches after a flood of unknown kids, want 1", srv.Fetches())
	}
	clk.add(DefaultJWKSMinRefresh)
	for i := range 50 {
		tok := apptest.SignJWT(t, jwt.SigningMethodRS256, goodClaims(clk.now()).MapClaims(), fmt.Sprintf("later-%d", i), key)
		_, _ = v.Verify(context.Background(), tok)
	}
	if srv.Fetches() != 2 {
		t.Errorf("%d fetches after one more interval, want 2", srv.Fetches())
	}
}

// TestRotationIsPickedUp: a new kid is fetched once it is used (after the
// refresh interval), and the old key keeps working.
func TestRotationIsPickedUp(t *testing.T) {
	v, srv, key, other, clk := newVerifier(t)
	if _, err := v.Verify(context.Background(), apptest.SignForgeToken(t, key, testKid, goodClaims(clk.now()))); err != nil {
		t.Fatal(err)
	}
	srv.Publish("forge-key-2", &other.PublicKey)
	clk.add(DefaultJWKSMinRefresh)
	if _, err := v.Verify(context.Background(), apptest.SignForgeToken(t, other, "forge-key-2", goodClaims(clk.now()))); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	if _, err := v.Verify(context.Background(), apptest.SignForgeToken(t, key, testKid, goodClaims(clk.now()))); err != nil {
		t.Errorf("old key after rotation: %v", err)
	}
}

// TestKeySetOutage: while the document cannot be fetched, known keys keep
// working until they are too stale; nothing known is a 401 with its reason.
func TestKeySetOutage(t *testing.T) {
	v, srv, key, _, clk := newVerifier(t)
	srv.FailWith(http.StatusServiceUnavailable)
	tok := func() string { return apptest.SignForgeToken(t, key, testKid, goodClaims(clk.now())) }
	if _, err := v.Verify(context.Background(), tok()); reasonOf(err) != ReasonKeysUnavailable {
		t.Fatalf("no keys yet, server down: %v", err)
	}
	srv.FailWith(0)
	clk.add(DefaultJWKSMinRefresh)
	if _, err := v.Verify(context.Background(), tok()); err != nil {
		t.Fatal(err)
	}
	srv.FailWith(http.StatusBadGateway)
	clk.add(DefaultJWKSTTL + time.Minute)
	if _, err := v.Verify(context.Background(), tok()); err != nil {
		t.Errorf("stale keys during an outage: %v", err)
	}
	clk.add(DefaultJWKSMaxStale)
	if _, err := v.Verify(context.Background(), tok()); reasonOf(err) != ReasonKeysUnavailable {
		t.Errorf("keys past their stale limit: %v", err)
	}
}

// TestKeySetFetchIsSingleFlight: concurrent misses share one fetch.
func TestKeySetFetchIsSingleFlight(t *testing.T) {
	key, _ := apptest.RSAKeys(t)
	release := make(chan struct{})
	var fetches atomic.Int64
	body := jwksBody(t, map[string]*rsa.PublicKey{testKid: &key.PublicKey})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		<-release
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	j := NewJWKS(srv.URL, nil, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := j.Key(context.Background(), testKid)
			errs <- err
		}()
	}
	// Let every goroutine reach the fetch or the wait, then answer.
	for fetches.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("%d fetches for 20 concurrent misses, want 1", n)
	}
}

func jwksBody(t *testing.T, keys map[string]*rsa.PublicKey) []byte {
	t.Helper()
	var parts []string
	for kid, k := range keys {
		parts = append(parts, fmt.Sprintf(`{"kty":"RSA","kid":%q,"use":"sig","alg":"RS256","n":%q,"e":%q}`, kid,
			base64.RawURLEncoding.EncodeToString(k.N.Bytes()), base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes())))
	}
	return []byte(`{"keys":[` + strings.Join(parts, ",") + `]}`)
}

// TestParseJWKSIsBounded: junk keys are skipped, at most MaxJWKSKeys kept.
func TestParseJWKSIsBounded(t *testing.T) {
	key, _ := apptest.RSAKeys(t)
	keys := map[string]*rsa.PublicKey{}
	for i := range MaxJWKSKeys + 10 {
		keys[fmt.Sprintf("k%d", i)] = &key.PublicKey
	}
	got, err := ParseJWKS(jwksBody(t, keys))
	if err != nil || len(got) != MaxJWKSKeys {
		t.Errorf("%d keys, %v; want %d", len(got), err, MaxJWKSKeys)
	}
	small := &rsa.PublicKey{N: big.NewInt(0).Lsh(big.NewInt(1), 1023), E: 65537}
	for name, doc := range map[string]string{
		"not JSON":   `{`,
		"no keys":    `{"keys":[]}`,
		"EC only":    `{"keys":[{"kty":"EC","kid":"a","crv":"P-256"}]}`,
		"bad kid":    string(jwksBody(t, map[string]*rsa.PublicKey{"a/b": &key.PublicKey})),
		"small key":  string(jwksBody(t, map[string]*rsa.PublicKey{"a": small})),
		"enc key":    strings.Replace(string(jwksBody(t, map[string]*rsa.PublicKey{"a": &key.PublicKey})), `"use":"sig"`, `"use":"enc"`, 1),
		"HS256 only": strings.Replace(string(jwksBody(t, map[string]*rsa.PublicKey{"a": &key.PublicKey})), `"alg":"RS256"`, `"alg":"HS256"`, 1),
	} {
		if _, err := ParseJWKS([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestStaleKeyAnsweredWhileRefreshing: once the document is older than its
// TTL, a known key is answered at once while one refresh runs in the
// background; the request does not wait for the CDN.
func TestStaleKeyAnsweredWhileRefreshing(t *testing.T) {
	key, _ := apptest.RSAKeys(t)
	body := jwksBody(t, map[string]*rsa.PublicKey{testKid: &key.PublicKey})
	var fetches atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fetches.Add(1) > 1 {
			<-release // the refresh hangs until the test is done
		}
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	defer close(release)
	clk := &clock{t: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)}
	j := NewJWKS(srv.URL, nil, clk.now)
	if _, err := j.Key(context.Background(), testKid); err != nil {
		t.Fatal(err)
	}
	clk.add(DefaultJWKSTTL + time.Second)
	for range 5 {
		if _, err := j.Key(context.Background(), testKid); err != nil {
			t.Fatalf("stale key: %v", err)
		}
	}
	for fetches.Load() < 2 {
		time.Sleep(time.Millisecond) // the background refresh reaches the server
	}
	if n := fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2 (the first, one refresh)", n)
	}
}

// TestVerifyEnvironment: with an environment configured, a token of
// another environment is refused (other_environment); without one, any is
// accepted.
func TestVerifyEnvironment(t *testing.T) {
	v, _, key, _, clk := newVerifier(t)
	dev := apptest.SignForgeToken(t, key, testKid, goodClaims(clk.now()))
	prodClaims := goodClaims(clk.now())
	prodClaims.Environment = "PRODUCTION"
	prod := apptest.SignForgeToken(t, key, testKid, prodClaims)
	for _, tok := range []string{dev, prod} {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Errorf("no environment configured: %v", err)
		}
	}
	pv := &Verifier{AppID: testAppID, Environment: "PRODUCTION", Keys: v.Keys, Now: clk.now}
	if _, err := pv.Verify(context.Background(), dev); reasonOf(err) != ReasonOtherEnv {
		t.Errorf("development token on a production server: %v", err)
	}
	if _, err := pv.Verify(context.Background(), prod); err != nil {
		t.Errorf("production token: %v", err)
	}
}
