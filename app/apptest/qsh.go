package apptest

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"

	"idbridge/app/fakeatlassian"
)

// This file is the test side of Atlassian's query string hash. The
// canonical request is fakeatlassian's (the fake site checks app JWTs
// with it; it holds Atlassian's own test vectors), written independently
// of app/connect on purpose: the tests check app/connect against it, so it
// must never call app/connect.

// CanonicalRequest is Atlassian's canonical request for a path relative
// to the base URL and a raw query (fakeatlassian.CanonicalRequest).
func CanonicalRequest(method, escapedPath, rawQuery string) string {
	return fakeatlassian.CanonicalRequest(method, escapedPath, rawQuery)
}

// QSH is the query string hash (hex SHA-256 of the canonical request) of a
// request relative to the app's or the product's base URL.
func QSH(method, escapedPath, rawQuery string) string {
	sum := sha256.Sum256([]byte(CanonicalRequest(method, escapedPath, rawQuery)))
	return hex.EncodeToString(sum[:])
}

// QSHOf is the QSH of a request target such as "/admin?x=1".
func QSHOf(method, target string) string {
	u, err := url.Parse(target)
	if err != nil {
		panic(err)
	}
	return QSH(method, u.EscapedPath(), u.RawQuery)
}
