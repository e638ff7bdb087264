package scim

import (
	"strconv"
	"strings"
	"sync"

	filter "github.com/scim2/filter-parser/v2"
)

// Parsing a filter with filter-parser costs a few hundred microseconds and
// thousands of allocations, more than the whole rest of a lookup. Identity
// providers send the same few filter shapes with different values
// (`userName eq "…"` on every provisioning step), so parsed filters are
// cached by shape: the string literals are taken out and replaced by
// placeholders, the shape is parsed and validated once by ParseFilter, and
// each request substitutes its own values into a copy of the cached tree.
// A shape that does not parse with placeholders (a literal compared with a
// boolean or a dateTime, say) is not cached: ParseFilter parses the filter
// as sent, every time.

const (
	filterCacheMax = 4096
	// placeholder marks literal i in a cached shape; it is never matched
	// against client text, only found in trees parsed from shapes.
	placeholderPrefix = "\uE000idbridge-literal-"
)

// FilterCache parses filters once per shape (the filter with its literals
// taken out) and keeps the canonical trees; its zero value is ready.
type FilterCache struct {
	mu      sync.RWMutex
	entries map[string]filter.Expression
}

// Parse returns the canonical filter of s for rt, through the shape cache.
func (c *FilterCache) Parse(rt ResourceType, s string) (filter.Expression, error) {
	if hasNUL(s) {
		return ParseFilter(rt, s) // which refuses it
	}
	shape, literals, ok := filterShape(s)
	if !ok || len(literals) == 0 || len(s) > maxFilterLength {
		return ParseFilter(rt, s)
	}
	key := rt.Name + "\x00" + shape
	c.mu.RLock()
	tmpl, hit := c.entries[key]
	c.mu.RUnlock()
	if !hit {
		var err error
		tmpl, err = ParseFilter(rt, shape)
		if err != nil {
			return ParseFilter(rt, s)
		}
		c.mu.Lock()
		if c.entries == nil || len(c.entries) >= filterCacheMax {
			c.entries = make(map[string]filter.Expression)
		}
		c.entries[key] = tmpl
		c.mu.Unlock()
	}
	out, ok := substitute(tmpl, literals)
	if !ok {
		return ParseFilter(rt, s)
	}
	return out, nil
}

// filterShape replaces every double-quoted string literal of s by a
// placeholder literal and returns the shape and the decoded literals. ok is
// false when s has an unterminated string (ParseFilter reports it).
func filterShape(s string) (shape string, literals []string, ok bool) {
	if !strings.Contains(s, `"`) {
		return s, nil, true
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		c := s[i]
		if c != '"' {
			b.WriteByte(c)
			i++
			continue
		}
		v, end, ok := decodeString(s, i+1)
		if !ok {
			return "", nil, false
		}
		b.WriteString(`"` + placeholderPrefix + strconv.Itoa(len(literals)) + `"`)
		literals = append(literals, v)
		i = end
	}
	return b.String(), literals, true
}

// substitute copies a cached tree with its placeholders replaced by the
// literals. ok is false if a placeholder was transformed on the way (a
// value that does not stand for itself), so the caller parses afresh.
func substitute(e filter.Expression, literals []string) (filter.Expression, bool) {
	switch e := e.(type) {
	case *filter.LogicalExpression:
		l, ok := substitute(e.Left, literals)
		if !ok {
			return nil, false
		}
		r, ok := substitute(e.Right, literals)
		if !ok {
			return nil, false
		}
		return &filter.LogicalExpression{Left: l, Right: r, Operator: e.Operator}, true
	case *filter.NotExpression:
		in, ok := substitute(e.Expression, literals)
		if !ok {
			return nil, false
		}
		return &filter.NotExpression{Expression: in}, true
	case *filter.ValuePath:
		in, ok := substitute(e.ValueFilter, literals)
		if !ok {
			return nil, false
		}
		return &filter.ValuePath{AttributePath: e.AttributePath, ValueFilter: in}, true
	case *filter.AttributeExpression:
		out := *e
		s, isString := e.CompareValue.(string)
		if !isString {
			return &out, true
		}
		rest, found := strings.CutPrefix(s, placeholderPrefix)
		if !found {
			if strings.Contains(s, placeholderPrefix) {
				return nil, false
			}
			return &out, true
		}
		i, err := strconv.Atoi(rest)
		if err != nil || i < 0 || i >= len(literals) {
			return nil, false
		}
		out.CompareValue = literals[i]
		return &out, true
	}
	return e, true
}
