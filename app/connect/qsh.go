package connect

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"
)

// ContextQSH is the fixed qsh of context tokens (AP.context.getToken), which
// are not bound to a request.
const ContextQSH = "context-qsh"

// CanonicalRequest returns Atlassian's canonical form of a request:
// METHOD&path&query (see the package documentation for the rules).
//
// basePath is the path prefix, in escaped form, that the path is made
// relative to: the path of our own base URL for incoming requests, or the
// path of the site's baseUrl (Confluence's "/wiki") for outgoing ones; empty
// means "/". A basePath without a trailing slash is stripped only on a
// segment boundary ("/app" strips "/app" and "/app/x" but not "/apple").
func CanonicalRequest(method string, u *url.URL, basePath string) string {
	var path, rawQuery string
	if u != nil {
		path = u.EscapedPath()
		rawQuery = u.RawQuery
	}
	var b strings.Builder
	b.WriteString(strings.ToUpper(method))
	b.WriteByte('&')
	b.WriteString(canonicalPath(path, basePath))
	b.WriteByte('&')
	b.WriteString(canonicalQuery(rawQuery))
	return b.String()
}

// QSH is the query string hash of a canonical request: hex SHA-256.
func QSH(canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return hex.EncodeToString(sum[:])
}

func canonicalPath(path, basePath string) string {
	if basePath == "" {
		basePath = "/"
	}
	// Atlassian's JS library strips basePath as a plain string prefix. A
	// basePath ending in "/" is stripped the same way; one without is
	// stripped only when a whole segment matches, which agrees with the JS
	// library on every real request (the base path plus a descriptor URL)
	// and keeps "/apple" from hashing like "/app/le".
	if strings.HasSuffix(basePath, "/") {
		path = strings.TrimPrefix(path, basePath)
	} else if path == basePath || strings.HasPrefix(path, basePath+"/") {
		path = path[len(basePath):]
	}
	if path == "" {
		return "/"
	}
	if path[0] != '/' {
		path = "/" + path
	}
	if len(path) > 1 && path[len(path)-1] == '/' {
		path = path[:len(path)-1]
	}
	// An unencoded "&" would let the path spill into the query part:
	// "/p&a=b?x=y" and "/p?a=b&x=y" must not hash alike.
	return strings.ReplaceAll(path, "&", "%26")
}

func canonicalQuery(rawQuery string) string {
	if rawQuery == "" {
		return ""
	}
	values := map[string][]string{}
	var keys []string
	for _, p := range parseQuery(rawQuery) {
		if p.key == "jwt" {
			continue
		}
		if _, seen := values[p.key]; !seen {
			keys = append(keys, p.key)
		}
		values[p.key] = append(values[p.key], p.value)
	}
	slices.SortFunc(keys, compareUTF16)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		writeRFC3986(&b, k)
		b.WriteByte('=')
		vs := values[k]
		slices.SortFunc(vs, compareUTF16)
		for j, v := range vs {
			if j > 0 {
				b.WriteByte(',')
			}
			writeRFC3986(&b, v)
		}
	}
	return b.String()
}

type queryParam struct {
	key, value string
}

// parseQuery parses a raw query the way Node's querystring.parse does (it is
// what atlassian-jwt gets from url.parse(target, true)), pair by pair and in
// order, including its quirks: empty pairs are skipped, a pair without "=" has
// an empty value, "+" is a space, and a key or value is percent-decoded only
// when it holds a valid %XX escape, with Node's fallback for input that is
// not valid UTF-8 once decoded.
//
// Two behaviours of the JS library are deliberately not copied, because the
// Java implementation that signs and checks real traffic has neither: Node
// stops after 1000 pairs, and atlassian-jwt drops a "__proto__" key (a
// workaround for JavaScript objects). Both would let extra parameters ride
// along unsigned.
//
// Raw bytes that are not valid UTF-8 are first decoded as WHATWG's decoder
// would (U+FFFD for each maximal invalid subsequence), since the JS library
// only ever sees a string.
func parseQuery(qs string) []queryParam {
	if !utf8.ValidString(qs) {
		qs = decodeUTF8Lossy([]byte(qs))
	}
	var (
		out                    []queryParam
		key, value             strings.Builder
		keyEncoded, valEncoded bool
		eqSeen                 bool
		encodeCheck            int
		lastPos                int
	)
	add := func() {
		k, v := key.String(), value.String()
		if k != "" && keyEncoded {
			k = decodeQueryComponent(k)
		}
		if v != "" && valEncoded {
			v = decodeQueryComponent(v)
		}
		out = append(out, queryParam{k, v})
	}
	// The loop mirrors Node's state machine byte by byte. Every byte it
	// looks for is ASCII, and in valid UTF-8 no byte of a multi-byte
	// character is ASCII, so bytes stand in for JS code units.
	for i := 0; i < len(qs); i++ {
		c := qs[i]
		if c == '&' {
			if !eqSeen {
				if lastPos < i {
					key.WriteString(qs[lastPos:i])
				} else if key.Len() == 0 {
					lastPos = i + 1
					continue
				}
			} else if lastPos < i {
				value.WriteString(qs[lastPos:i])
			}
			add()
			key.Reset()
			value.Reset()
			keyEncoded, valEncoded, eqSeen = false, false, false
			encodeCheck = 0
			lastPos = i + 1
			continue
		}
		if !eqSeen {
			if c == '=' {
				if lastPos < i {
					key.WriteString(qs[lastPos:i])
				}
				encodeCheck = 0
				lastPos = i + 1
				eqSeen = true
				continue
			}
			if !keyEncoded {
				if c == '%' {
					encodeCheck = 1
					continue
				}
				if encodeCheck > 0 {
					if isHex(c) {
						encodeCheck++
						if encodeCheck == 3 {
							keyEncoded = true
						}
						continue
					}
					encodeCheck = 0
				}
			}
			if c == '+' {
				if lastPos < i {
					key.WriteString(qs[lastPos:i])
				}
				key.WriteByte(' ')
				lastPos = i + 1
				continue
			}
		}
		// Node runs this part for key bytes too once the key is known to
		// be encoded; it can only set valEncoded early, which is harmless
		// but copied for exactness.
		if c == '+' {
			if lastPos < i {
				value.WriteString(qs[lastPos:i])
			}
			value.WriteByte(' ')
			lastPos = i + 1
		} else if !valEncoded {
			if c == '%' {
				encodeCheck = 1
			} else if encodeCheck > 0 {
				if isHex(c) {
					encodeCheck++
					if encodeCheck == 3 {
						valEncoded = true
					}
				} else {
					encodeCheck = 0
				}
			}
		}
	}
	if lastPos < len(qs) {
		if !eqSeen {
			key.WriteString(qs[lastPos:])
		} else {
			value.WriteString(qs[lastPos:])
		}
	} else if !eqSeen && key.Len() == 0 {
		return out
	}
	add()
	return out
}

// decodeQueryComponent is Node's querystring unescape: decodeURIComponent
// when it succeeds, otherwise a byte-wise unescape (valid %XX become bytes,
// other characters are truncated to their low byte as Buffer writes do)
// decoded as UTF-8 with replacement characters.
func decodeQueryComponent(s string) string {
	if b, ok := decodeURIComponent(s); ok {
		return b
	}
	buf := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			buf = append(buf, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 3
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r < 0x10000 {
			buf = append(buf, byte(r))
			continue
		}
		// A JS string holds this rune as a surrogate pair; each code unit
		// is truncated on its own.
		r -= 0x10000
		hi, lo := 0xD800+(r>>10), 0xDC00+(r&0x3FF)
		buf = append(buf, byte(hi), byte(lo))
	}
	return decodeUTF8Lossy(buf)
}

// decodeURIComponent follows ECMAScript's decodeURIComponent: every "%" must
// start a %XX escape and the escaped bytes must form valid UTF-8 (no
// overlong forms, no surrogates).
func decodeURIComponent(s string) (string, bool) {
	if strings.IndexByte(s, '%') < 0 {
		return s, true
	}
	buf := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			buf = append(buf, s[i])
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return "", false
		}
		buf = append(buf, unhex(s[i+1])<<4|unhex(s[i+2]))
		i += 2
	}
	// s itself is valid UTF-8, and an escaped byte can never complete or
	// continue a literal character's sequence validly, so validity of the
	// whole buffer is exactly decodeURIComponent's condition.
	if !utf8.Valid(buf) {
		return "", false
	}
	return string(buf), true
}

// decodeUTF8Lossy decodes b as the WHATWG UTF-8 decoder does: each maximal
// subpart of an ill-formed sequence becomes one U+FFFD. (Go's own range loop
// yields one U+FFFD per byte, which differs for truncated sequences.)
func decodeUTF8Lossy(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b))
	for i := 0; i < len(b); {
		c := b[i]
		if c < 0x80 {
			sb.WriteByte(c)
			i++
			continue
		}
		var need int
		lower, upper := byte(0x80), byte(0xBF)
		switch {
		case c >= 0xC2 && c <= 0xDF:
			need = 1
		case c >= 0xE0 && c <= 0xEF:
			need = 2
			if c == 0xE0 {
				lower = 0xA0
			} else if c == 0xED {
				upper = 0x9F
			}
		case c >= 0xF0 && c <= 0xF4:
			need = 3
			if c == 0xF0 {
				lower = 0x90
			} else if c == 0xF4 {
				upper = 0x8F
			}
		default:
			sb.WriteRune(utf8.RuneError)
			i++
			continue
		}
		j := i + 1
		ok := true
		for k := 0; k < need; k++ {
			if j >= len(b) || b[j] < lower || b[j] > upper {
				ok = false
				break
			}
			lower, upper = 0x80, 0xBF
			j++
		}
		if !ok {
			// The offending byte is not consumed: it starts the next
			// sequence.
			sb.WriteRune(utf8.RuneError)
			i = j
			continue
		}
		sb.Write(b[i:j])
		i = j
	}
	return sb.String()
}

// compareUTF16 orders valid UTF-8 strings by their UTF-16 code units, which
// is JavaScript's default sort order. It differs from byte order only between
// characters above U+FFFF and those in U+E000..U+FFFF.
func compareUTF16(a, b string) int {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			if ua, ub := firstUTF16Unit(ra), firstUTF16Unit(rb); ua != ub {
				return cmp.Compare(ua, ub)
			}
			// Same high surrogate: code point order is code unit order.
			return cmp.Compare(ra, rb)
		}
		a, b = a[na:], b[nb:]
	}
	return cmp.Compare(len(a), len(b))
}

func firstUTF16Unit(r rune) rune {
	if r >= 0x10000 {
		return 0xD800 + ((r - 0x10000) >> 10)
	}
	return r
}

// writeRFC3986 percent-encodes every byte except RFC 3986's unreserved
// characters (ALPHA, DIGIT, "-", ".", "_", "~"), with upper-case hex.
func writeRFC3986(b *strings.Builder, s string) {
	const hexDigits = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUnreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0x0F])
	}
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
