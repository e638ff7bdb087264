package scim

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	filter "github.com/scim2/filter-parser/v2"
)

// normalizer rewrites the filter dialects identity providers send into the
// RFC grammar filter-parser reads: single spaces, lower-case operators,
// quoted and re-escaped strings. Each value path `attr[inner]` is taken out
// and replaced by a stand-in `urn:idbridge:vp:N:x pr`, because
// filter-parser's value-filter grammar is narrower than the RFC's (no
// parentheses, at most one and/or): the inner filter is parsed on its own
// with the full grammar and spliced back in.
type normalizer struct {
	src       string
	pos       int
	depth     int
	inBracket bool
	vps       []valuePathText
}

type valuePathText struct{ path, inner string }

func (n *normalizer) errorf(format string, args ...any) error {
	return InvalidFilter("%s at offset %d", fmt.Sprintf(format, args...), n.pos)
}

func (n *normalizer) parseFilter() (string, error) {
	out, err := n.parseOr()
	if err != nil {
		return "", err
	}
	n.skipSpace()
	if n.pos < len(n.src) {
		return "", n.errorf("unexpected %q", n.src[n.pos:min(n.pos+10, len(n.src))])
	}
	return out, nil
}

func (n *normalizer) parseOr() (string, error) {
	left, err := n.parseAnd()
	if err != nil {
		return "", err
	}
	for {
		save := n.pos
		n.skipSpace()
		if !n.keyword("or") {
			n.pos = save
			return left, nil
		}
		right, err := n.parseAnd()
		if err != nil {
			return "", err
		}
		left += " or " + right
	}
}

func (n *normalizer) parseAnd() (string, error) {
	left, err := n.parseUnary()
	if err != nil {
		return "", err
	}
	for {
		save := n.pos
		n.skipSpace()
		if !n.keyword("and") {
			n.pos = save
			return left, nil
		}
		right, err := n.parseUnary()
		if err != nil {
			return "", err
		}
		left += " and " + right
	}
}

func (n *normalizer) parseUnary() (string, error) {
	n.skipSpace()
	if n.depth >= maxFilterDepth {
		return "", n.errorf("the filter nests deeper than %d", maxFilterDepth)
	}
	n.depth++
	defer func() { n.depth-- }()
	if n.peek() == '(' {
		return n.parenthesised("")
	}
	save := n.pos
	if n.word("not") {
		n.skipSpace()
		if n.peek() == '(' {
			return n.parenthesised("not ")
		}
		n.pos = save
	}
	return n.attrExp()
}

func (n *normalizer) parenthesised(prefix string) (string, error) {
	n.pos++ // (
	inner, err := n.parseOr()
	if err != nil {
		return "", err
	}
	n.skipSpace()
	if n.peek() != ')' {
		return "", n.errorf("missing )")
	}
	n.pos++
	return prefix + "(" + inner + ")", nil
}

func (n *normalizer) attrExp() (string, error) {
	path := n.readPath()
	if path == "" {
		return "", n.errorf("expected an attribute name")
	}
	if hasPrefixFold(path, placeholderURN) {
		return "", InvalidFilter("unknown attribute %q", path)
	}
	n.skipSpace()
	if n.peek() != '[' {
		op, value, err := n.opAndValue()
		if err != nil {
			return "", err
		}
		return path + " " + op + value, nil
	}
	if n.inBracket {
		return "", n.errorf("value paths do not nest")
	}
	if len(n.vps) >= MaxMultiValuedTerms {
		return "", InvalidFilter("the filter has more than %d terms over multi-valued attributes (value paths, emails, members, …), the most this server evaluates in one filter", MaxMultiValuedTerms)
	}
	n.pos++ // [
	n.inBracket = true
	inner, err := n.parseOr()
	n.inBracket = false
	if err != nil {
		return "", err
	}
	n.skipSpace()
	if n.peek() != ']' {
		return "", n.errorf("missing ]")
	}
	n.pos++
	if n.peek() == '.' {
		// Entra: emails[type eq "work"].value eq "x"
		n.pos++
		sub := n.readPath()
		if sub == "" || strings.ContainsAny(sub, ".:") {
			return "", n.errorf("expected a sub-attribute name after ].")
		}
		n.skipSpace()
		op, value, err := n.opAndValue()
		if err != nil {
			return "", err
		}
		inner = "(" + inner + ") and " + sub + " " + op + value
	}
	n.vps = append(n.vps, valuePathText{path: path, inner: inner})
	return fmt.Sprintf("%s%d:x pr", placeholderURN, len(n.vps)-1), nil
}

var compareOperators = map[string]bool{
	"eq": true, "ne": true, "co": true, "sw": true, "ew": true,
	"gt": true, "ge": true, "lt": true, "le": true, "pr": true,
}

// opAndValue reads a comparison operator and, unless it is pr, a value;
// value comes back with its leading space.
func (n *normalizer) opAndValue() (string, string, error) {
	start := n.pos
	for n.pos < len(n.src) && isLetter(n.src[n.pos]) {
		n.pos++
	}
	op := strings.ToLower(n.src[start:n.pos])
	if op == "" {
		return "", "", n.errorf("expected an operator")
	}
	if !compareOperators[op] {
		return "", "", InvalidFilter("unknown operator %q", n.src[start:n.pos])
	}
	if op == "pr" {
		return op, "", nil
	}
	n.skipSpace()
	value, err := n.readValue()
	if err != nil {
		return "", "", err
	}
	return op, " " + value, nil
}

func (n *normalizer) readValue() (string, error) {
	if n.peek() == '"' {
		n.pos++
		s, end, ok := decodeString(n.src, n.pos)
		if !ok {
			return "", n.errorf("unterminated string")
		}
		n.pos = end
		return quoteString(s), nil
	}
	start := n.pos
	for n.pos < len(n.src) {
		c := n.src[n.pos]
		if isSpace(c) || c == ')' || c == ']' {
			break
		}
		n.pos++
	}
	word := n.src[start:n.pos]
	if word == "" {
		return "", n.errorf("expected a value")
	}
	switch lw := strings.ToLower(word); lw {
	case "true", "false", "null":
		return lw, nil
	}
	if isJSONNumber(word) {
		return word, nil
	}
	// A bare word (Entra documents `externalId eq jyoung`) is a string.
	return quoteString(word), nil
}

func (n *normalizer) readPath() string {
	start := n.pos
	for n.pos < len(n.src) && isPathChar(n.src[n.pos]) {
		n.pos++
	}
	return n.src[start:n.pos]
}

// keyword consumes the case-insensitive word k when it stands alone
// (followed by a space or a parenthesis).
func (n *normalizer) keyword(k string) bool {
	end := n.pos + len(k)
	if end >= len(n.src) || !strings.EqualFold(n.src[n.pos:end], k) {
		return false
	}
	if c := n.src[end]; !isSpace(c) && c != '(' {
		return false
	}
	n.pos = end
	return true
}

// word consumes the case-insensitive word k when no path character follows.
func (n *normalizer) word(k string) bool {
	end := n.pos + len(k)
	if end > len(n.src) || !strings.EqualFold(n.src[n.pos:end], k) {
		return false
	}
	if end < len(n.src) && isPathChar(n.src[end]) {
		return false
	}
	n.pos = end
	return true
}

func (n *normalizer) peek() byte {
	if n.pos < len(n.src) {
		return n.src[n.pos]
	}
	return 0
}

func (n *normalizer) skipSpace() {
	for n.pos < len(n.src) && isSpace(n.src[n.pos]) {
		n.pos++
	}
}

// parse hands the normalised text to filter-parser and splices the value
// paths back in.
func (n *normalizer) parse(text string) (filter.Expression, error) {
	expr, err := filter.ParseFilterNumber([]byte(text))
	if err != nil {
		return nil, InvalidFilter("the filter is not valid SCIM filter syntax")
	}
	vps := make([]*filter.ValuePath, len(n.vps))
	for i, vp := range n.vps {
		ap, err := filter.ParseAttrPath([]byte(vp.path))
		if err != nil {
			return nil, InvalidFilter("%q is not a valid attribute path", vp.path)
		}
		inner, err := filter.ParseFilterNumber([]byte(vp.inner))
		if err != nil {
			return nil, InvalidFilter("the value filter of %q is not valid SCIM filter syntax", vp.path)
		}
		vps[i] = &filter.ValuePath{AttributePath: ap, ValueFilter: inner}
	}
	return splice(expr, vps)
}

func splice(e filter.Expression, vps []*filter.ValuePath) (filter.Expression, error) {
	switch e := e.(type) {
	case *filter.LogicalExpression:
		l, err := splice(e.Left, vps)
		if err != nil {
			return nil, err
		}
		r, err := splice(e.Right, vps)
		if err != nil {
			return nil, err
		}
		return &filter.LogicalExpression{Left: l, Right: r, Operator: e.Operator}, nil
	case *filter.NotExpression:
		in, err := splice(e.Expression, vps)
		if err != nil {
			return nil, err
		}
		return &filter.NotExpression{Expression: in}, nil
	case *filter.AttributeExpression:
		if uri, ok := cutPrefixFold(e.AttributePath.URI()+":", placeholderURN); ok {
			i, err := strconv.Atoi(strings.TrimSuffix(uri, ":"))
			if err != nil || i < 0 || i >= len(vps) {
				return nil, InvalidFilter("the filter could not be parsed")
			}
			return vps[i], nil
		}
		return e, nil
	}
	return e, nil
}

// --- lexical helpers ----------------------------------------------------------

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isPathChar(c byte) bool {
	return isLetter(c) || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '$' || c == '.' || c == ':'
}

func isJSONNumber(s string) bool {
	if s == "" {
		return false
	}
	var n json.Number
	if err := json.Unmarshal([]byte(s), &n); err != nil {
		return false
	}
	return true
}

// decodeString decodes a JSON-style string body starting at src[i] (after
// the opening quote) up to the closing quote. It is lenient where
// identity providers are sloppy: \u takes hex digits in either case, and an
// unknown escape stands for the character itself. It returns the decoded
// text, the index after the closing quote, and false when the string does
// not end.
func decodeString(src string, i int) (string, int, bool) {
	var b strings.Builder
	for i < len(src) {
		c := src[i]
		switch {
		case c == '"':
			return strings.ToValidUTF8(b.String(), "\uFFFD"), i + 1, true
		case c != '\\':
			b.WriteByte(c)
			i++
			continue
		}
		i++ // backslash
		if i >= len(src) {
			return "", i, false
		}
		e := src[i]
		i++
		switch e {
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, n := hex4(src, i)
			if n == 0 {
				b.WriteByte('u')
				continue
			}
			i += n
			if utf16.IsSurrogate(r) {
				if i+1 < len(src) && src[i] == '\\' && src[i+1] == 'u' {
					if r2, n2 := hex4(src, i+2); n2 > 0 {
						if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
							r = d
							i += 2 + n2
						}
					}
				}
				if utf16.IsSurrogate(r) {
					r = utf8.RuneError
				}
			}
			b.WriteRune(r)
		default:
			b.WriteByte(e)
		}
	}
	return "", i, false
}

func hex4(s string, i int) (rune, int) {
	if i+4 > len(s) {
		return 0, 0
	}
	v, err := strconv.ParseUint(s[i:i+4], 16, 32)
	if err != nil {
		return 0, 0
	}
	return rune(v), 4
}

// quoteString writes s as a string literal filter-parser reads: quotes,
// backslashes and control characters escaped, everything else as UTF-8.
func quoteString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
