package scim

import "strings"

// No attribute may hold the NUL character: PostgreSQL's text cannot store
// it, and no identity provider sends it. A body or filter with one is a
// 400 before anything reaches the database, on both dialects alike.

// hasNUL reports whether s holds a NUL, raw or as the JSON escape \u0000
// (an escape is one when an even number of backslashes precedes it).
func hasNUL(s string) bool {
	if strings.IndexByte(s, 0) >= 0 {
		return true
	}
	for from := 0; ; {
		i := strings.Index(s[from:], `\u0000`)
		if i < 0 {
			return false
		}
		i += from
		n := 0
		for j := i - 1; j >= 0 && s[j] == '\\'; j-- {
			n++
		}
		if n%2 == 0 {
			return true
		}
		from = i + 1
	}
}
