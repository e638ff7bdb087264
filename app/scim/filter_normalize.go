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

// normalizer reads the filter dialects identity providers send (see
// ParseFilter) and builds the filter tree directly, in filter-parser's
// types: operators and keywords in any case, bare words, JSON escapes, and
// any and/or/not/parentheses inside a value path, where filter-parser's
// own value-filter grammar is narrower than the RFC's. Attribute paths
// follow filter-parser's grammar (pathSyntax); a path outside it is
// reported once the whole filter has been read, in the order filter-parser
// would have found it: the outer filter first, then each value path (its
// path, then its inner filter).
type normalizer struct {
	src       string
	pos       int
	depth     int
	inBracket bool
	vps       int // value paths read
	// outerErr is the first path error of the outer filter; vpErrs the
	// first error of each value path, in order.
	outerErr error
	vpErrs   []error
	// vpErr collects the first path error inside the value path being
	// read, whose path is vpPath.
	vpErr  *error
	vpPath string
}

func (n *normalizer) errorf(format string, args ...any) error {
	return InvalidFilter("%s at offset %d", fmt.Sprintf(format, args...), n.pos)
}

// parseFilter reads the whole filter.
func (n *normalizer) parseFilter() (filter.Expression, error) {
	out, err := n.parseOr()
	if err != nil {
		return nil, err
	}
	n.skipSpace()
	if n.pos < len(n.src) {
		return nil, n.errorf("unexpected %q", n.src[n.pos:min(n.pos+10, len(n.src))])
	}
	if n.outerErr != nil {
		return nil, n.outerErr
	}
	for _, err := range n.vpErrs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (n *normalizer) parseOr() (filter.Expression, error) {
	left, err := n.parseAnd()
	if err != nil {
		return nil, err
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
			return nil, err
		}
		left = &filter.LogicalExpression{Left: left, Right: right, Operator: filter.OR}
	}
}

func (n *normalizer) parseAnd() (filter.Expression, error) {
	left, err := n.parseUnary()
	if err != nil {
		return nil, err
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
			return nil, err
		}
		left = &filter.LogicalExpression{Left: left, Right: right, Operator: filter.AND}
	}
}

func (n *normalizer) parseUnary() (filter.Expression, error) {
	n.skipSpace()
	if n.depth >= maxFilterDepth {
		return nil, n.errorf("the filter nests deeper than %d", maxFilterDepth)
	}
	n.depth++
	defer func() { n.depth-- }()
	if n.peek() == '(' {
		return n.parenthesised()
	}
	save := n.pos
	if n.word("not") {
		n.skipSpace()
		if n.peek() == '(' {
			inner, err := n.parenthesised()
			if err != nil {
				return nil, err
			}
			return &filter.NotExpression{Expression: inner}, nil
		}
		n.pos = save
	}
	return n.attrExp()
}

func (n *normalizer) parenthesised() (filter.Expression, error) {
	n.pos++ // (
	inner, err := n.parseOr()
	if err != nil {
		return nil, err
	}
	n.skipSpace()
	if n.peek() != ')' {
		return nil, n.errorf("missing )")
	}
	n.pos++
	return inner, nil
}

// pathError notes a path outside filter-parser's grammar where it would
// have been found: in the value path being read, else in the outer filter.
func (n *normalizer) pathError() {
	if n.vpErr != nil {
		if *n.vpErr == nil {
			*n.vpErr = InvalidFilter("the value filter of %q is not valid SCIM filter syntax", n.vpPath)
		}
		return
	}
	if n.outerErr == nil {
		n.outerErr = InvalidFilter("the filter is not valid SCIM filter syntax")
	}
}

func (n *normalizer) attrExp() (filter.Expression, error) {
	path := n.readPath()
	if path == "" {
		return nil, n.errorf("expected an attribute name")
	}
	ap, ok := pathSyntax(path)
	n.skipSpace()
	if n.peek() != '[' {
		if !ok {
			n.pathError()
		}
		return n.comparison(ap)
	}
	if n.inBracket {
		return nil, n.errorf("value paths do not nest")
	}
	if n.vps >= MaxMultiValuedTerms {
		return nil, InvalidFilter("the filter has more than %d terms over multi-valued attributes (value paths, emails, members, …), the most this server evaluates in one filter", MaxMultiValuedTerms)
	}
	n.vps++
	n.vpErrs = append(n.vpErrs, nil)
	vpErr := &n.vpErrs[len(n.vpErrs)-1]
	if !ok {
		*vpErr = InvalidFilter("%q is not a valid attribute path", path)
	}
	n.pos++ // [
	n.inBracket, n.vpErr, n.vpPath = true, vpErr, path
	inner, err := n.parseOr()
	n.inBracket, n.vpErr = false, nil
	if err != nil {
		return nil, err
	}
	n.skipSpace()
	if n.peek() != ']' {
		return nil, n.errorf("missing ]")
	}
	n.pos++
	if n.peek() == '.' {
		// Entra: emails[type eq "work"].value eq "x"
		n.pos++
		sub := n.readPath()
		if sub == "" || strings.ContainsAny(sub, ".:") {
			return nil, n.errorf("expected a sub-attribute name after ].")
		}
		subPath, subOK := pathSyntax(sub)
		n.skipSpace()
		n.vpErr = vpErr
		if !subOK {
			n.pathError()
		}
		cmp, err := n.comparison(subPath)
		n.vpErr = nil
		if err != nil {
			return nil, err
		}
		inner = &filter.LogicalExpression{Left: inner, Right: cmp, Operator: filter.AND}
	}
	return &filter.ValuePath{AttributePath: ap, ValueFilter: inner}, nil
}

// comparison reads an operator and, unless it is pr, a value, for path.
func (n *normalizer) comparison(path filter.AttributePath) (filter.Expression, error) {
	op, value, err := n.opAndValue()
	if err != nil {
		return nil, err
	}
	return &filter.AttributeExpression{AttributePath: path, Operator: filter.CompareOperator(op), CompareValue: value}, nil
}

var compareOperators = map[string]bool{
	"eq": true, "ne": true, "co": true, "sw": true, "ew": true,
	"gt": true, "ge": true, "lt": true, "le": true, "pr": true,
}

// opAndValue reads a comparison operator (lower-cased) and, unless it is
// pr, a value as filter-parser types it: a decoded string, a bool, nil for
// null, or a json.Number.
func (n *normalizer) opAndValue() (string, any, error) {
	start := n.pos
	for n.pos < len(n.src) && isLetter(n.src[n.pos]) {
		n.pos++
	}
	op := strings.ToLower(n.src[start:n.pos])
	if op == "" {
		return "", nil, n.errorf("expected an operator")
	}
	if !compareOperators[op] {
		return "", nil, InvalidFilter("unknown operator %q", n.src[start:n.pos])
	}
	if op == "pr" {
		return op, nil, nil
	}
	n.skipSpace()
	value, err := n.readValue()
	if err != nil {
		return "", nil, err
	}
	return op, value, nil
}

func (n *normalizer) readValue() (any, error) {
	if n.peek() == '"' {
		n.pos++
		s, end, ok := decodeString(n.src, n.pos)
		if !ok {
			return nil, n.errorf("unterminated string")
		}
		n.pos = end
		return s, nil
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
		return nil, n.errorf("expected a value")
	}
	switch strings.ToLower(word) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	case "null":
		return nil, nil
	}
	if isJSONNumber(word) {
		// As filter-parser spells a number it read.
		return json.Number(strings.Replace(word, "E", "e", 1)), nil
	}
	// A bare word (Entra documents `externalId eq jyoung`) is a string;
	// each byte of it that is not UTF-8 stands for U+FFFD.
	if !utf8.ValidString(word) {
		word = string([]rune(word))
	}
	return word, nil
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

// pathSyntax reads an attribute path as filter-parser's grammar does:
// an optional URN (segments of letters, digits, "-" and ".", each followed
// by ":"), an attribute name ("$"? letter (letter | digit | "-" | "_")*)
// and an optional sub-attribute (". name"). ok is false for anything else.
func pathSyntax(path string) (p filter.AttributePath, ok bool) {
	rest := path
	if i := strings.LastIndexByte(path, ':'); i >= 0 {
		uri := path[:i]
		for seg := range strings.SplitSeq(uri, ":") {
			if seg == "" || strings.IndexFunc(seg, func(r rune) bool {
				return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.')
			}) >= 0 {
				return p, false
			}
		}
		p.URIPrefix = &uri
		rest = path[i+1:]
	}
	name, sub, hasSub := strings.Cut(rest, ".")
	if !attrNameSyntax(name) || hasSub && !attrNameSyntax(sub) {
		return p, false
	}
	p.AttributeName = name
	if hasSub {
		p.SubAttribute = &sub
	}
	return p, true
}

func attrNameSyntax(s string) bool {
	s = strings.TrimPrefix(s, "$")
	if s == "" || !isLetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isLetter(c) && !(c >= '0' && c <= '9') && c != '-' && c != '_' {
			return false
		}
	}
	return true
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
