package apptest

import (
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// SignJWT signs claims with key under method: an *rsa.PrivateKey for
// RS256, a []byte secret for HS256, jwt.UnsafeAllowNoneSignatureType for
// "none". kid, when not empty, goes into the header. It fails the test if
// the token cannot be signed.
func SignJWT(tb testing.TB, method jwt.SigningMethod, claims jwt.Claims, kid string, key any) string {
	tb.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		tb.Fatalf("sign %s JWT: %v", method.Alg(), err)
	}
	return s
}
