package apptest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// This file is the test side of Atlassian's query string hash, written from
// the spec and independently of app/connect on purpose: the tests check
// app/connect against it, so it must never call app/connect.

// CanonicalRequest is Atlassian's canonical request for the simple paths
// and queries the tests use: METHOD&path&query, where path has no trailing
// "/" (unless it is "/") and "&" escaped, and query is the parameters
// without jwt, sorted by name, RFC 3986-encoded, repeated values sorted and
// joined with ",".
func CanonicalRequest(method, escapedPath, rawQuery string) string {
	path := escapedPath
	if path == "" {
		path = "/"
	}
	if len(path) > 1 {
		path = strings.TrimSuffix(path, "/")
	}
	path = strings.ReplaceAll(path, "&", "%26")
	values := map[string][]string{}
	for pair := range strings.SplitSeq(rawQuery, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, _ = url.QueryUnescape(k)
		v, _ = url.QueryUnescape(v)
		if k != "jwt" {
			values[k] = append(values[k], v)
		}
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		vs := values[k]
		enc := make([]string, len(vs))
		for i, v := range vs {
			enc[i] = rfc3986(v)
		}
		slices.Sort(enc)
		parts = append(parts, rfc3986(k)+"="+strings.Join(enc, ","))
	}
	return strings.ToUpper(method) + "&" + path + "&" + strings.Join(parts, "&")
}

// rfc3986 percent-encodes every byte but the unreserved characters, with
// upper-case hex digits.
func rfc3986(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
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
