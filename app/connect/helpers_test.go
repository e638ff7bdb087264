package connect

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"idbridge/models"
)

// wantReason fails unless err is an unauthorized *models.Error with the
// reason and a one-line message.
func wantReason(tb testing.TB, err error, reason string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("err = nil, want reason %q", reason)
	}
	me, ok := models.AsError(err)
	if !ok {
		tb.Fatalf("err = %v (%T), want a *models.Error with reason %q", err, err, reason)
	}
	if me.Reason != reason {
		tb.Fatalf("reason = %q (%v), want %q", me.Reason, err, reason)
	}
	if me.Code != models.CodeUnauthorized {
		tb.Fatalf("code = %q (%v), want unauthorized", me.Code, err)
	}
	if me.Message == "" || strings.ContainsAny(me.Message, "\r\n") {
		tb.Fatalf("message %q is not one line", me.Message)
	}
}

// noTokenIn fails if the token leaks into the error text.
func noTokenIn(tb testing.TB, err error, token string) {
	tb.Helper()
	if err != nil && token != "" && strings.Contains(err.Error(), token) {
		tb.Fatalf("error text contains the token: %v", err)
	}
}

var testKeys struct {
	once sync.Once
	a, b *rsa.PrivateKey
}

// rsaKeys returns two 2048-bit keys, generated once per test binary.
func rsaKeys(tb testing.TB) (*rsa.PrivateKey, *rsa.PrivateKey) {
	tb.Helper()
	testKeys.once.Do(func() {
		var err error
		if testKeys.a, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if testKeys.b, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return testKeys.a, testKeys.b
}

func publicPEM(tb testing.TB, k *rsa.PublicKey) []byte {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// sign signs claims with method and key, with extra header fields.
func sign(tb testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims, header map[string]any) string {
	tb.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
			continue
		}
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

var testNow = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func jsonMarshal(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func bodyOf(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }

// UnverifiedIssuer is ParseUnverified's issuer, as the tests read it.
func UnverifiedIssuer(token string) (string, error) {
	u, err := ParseUnverified(token)
	if err != nil {
		return "", err
	}
	return u.Issuer, nil
}

// VerifySiteToken parses and verifies a site token in one call, with the
// arguments checked first: the checks of ParseUnverified's decoding and of
// Unverified.VerifySite, in their order, whatever the issuer looks like.
func VerifySiteToken(token string, clientKey string, secret []byte, kind RouteKind, r *http.Request, basePath string, now time.Time) (*Claims, error) {
	if err := checkVerifyArgs(clientKey, secret, kind, r); err != nil {
		return nil, err
	}
	u, _, aerr := parseToken(token)
	if aerr != nil {
		return nil, aerr
	}
	return u.verifySite(clientKey, secret, kind, r, basePath, now)
}
