// Package connect owns the Atlassian Connect protocol, without any HTTP
// framework: the canonical request and its hash (qsh), verification of the
// HS256 tokens a site signs with its shared secret, verification of the RS256
// tokens that sign the installed and uninstalled lifecycle callbacks (with
// Atlassian's install-key servers and a bounded key cache), the tokens the app
// signs when it calls a site, and rendering of the app descriptor.
//
// # Strictness
//
// Every check here fails closed and exactly:
//   - alg is pinned per path (HS256 for shared-secret tokens, RS256 for signed
//     installs) both before parsing and in the parser, so "none", HS512, an
//     RS256 token on the shared-secret path and an HS256 token "signed" with
//     the text of the RSA public key (algorithm confusion) are all refused;
//   - exp is required, with [Leeway] for clock skew;
//   - qsh is required on every URL-bound route, compared in constant time,
//     and the fixed "context-qsh" value is accepted only on routes declared
//     [ContextBound], which also require a subject;
//   - a signed install's key is fetched only from a fixed table of Atlassian
//     hosts chosen by the site's baseUrl (or the operator's override), never
//     from a host named in the token, and only for a key ID that cannot
//     change the URL's path.
//
// Every verification failure is a *models.Error with code unauthorized (the
// HTTP layer answers 401, see [Unauthorized]) whose Reason is a short,
// stable, snake_case word for metrics and whose Message is one client-safe
// line that never contains the token.
//
// # Canonical request
//
// [CanonicalRequest] reproduces Atlassian's algorithm as its own JS library
// (atlassian-jwt) computes it, checked against vectors produced with that
// library and against Atlassian's Java interoperability vectors (see
// testdata/README.md). The request path is taken raw ([url.URL.EscapedPath]),
// made relative to a base path, stripped of one trailing slash, and "&" in it
// is encoded as "%26". Where the JS library's url.parse reinterprets a path
// (a leading "//" or an "@" read as a host, "'" then escaped) or strips a
// base path from the middle of a segment, the raw path is kept instead, as
// the Java vectors do for raw sub-delimiters. The query is parsed the way
// Node's querystring module does (a "+" is a space, invalid percent
// sequences stay literal), "jwt" is dropped, keys are sorted and then each
// key and value is percent-encoded with RFC 3986's unreserved set; the values
// of a repeated key are sorted and joined with ",". Sorting compares the
// decoded strings in UTF-16 code unit order, as JavaScript's default sort
// does.
package connect
