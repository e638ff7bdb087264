package scim

import (
	"errors"
	"strconv"
	"unicode/utf8"
)

// The limits of one SCIM request: what a request may make the server do is
// bounded by its (already size-limited) body, whatever it sends. Each is
// generous for the identity providers as they really call (Entra batches up
// to 1,000 member changes in a PATCH, Okta pages 100 at a time; users carry
// a handful of emails and a few dozen attributes), documented with its
// reason in docs/SECURITY.md, and advertised in /ServiceProviderConfig.
const (
	// MaxPatchOperations bounds the Operations of one PATCH: twice what
	// Entra sends at most (1,000 member changes, one operation each).
	MaxPatchOperations = 2000
	// MaxAttributes bounds the attributes of a stored resource: object
	// members at every depth (name.givenName counts two), group members
	// aside. A rich Okta profile has well under a hundred.
	MaxAttributes = 2000
	// MaxValues bounds the values of one multi-valued attribute (emails,
	// phoneNumbers, addresses, unknown lists): people have a handful.
	MaxValues = 100
	// MaxMembers bounds the members a group request lists, and the values
	// of any array in a request body: a PATCH that adds 10,000 members is
	// ten of Entra's batches.
	MaxMembers = 10000
	// MaxDepth bounds how deeply a request body and a stored document
	// nest: SCIM resources nest four levels (an extension's manager's
	// value); SQLite's JSON functions stop at 1,000.
	MaxDepth = 32
	// MaxStringBytes bounds every string value, as decoded (UTF-8 bytes).
	MaxStringBytes = 8192
	// MaxKeyBytes bounds an attribute name.
	MaxKeyBytes = 256
	// MaxIndexedBytes bounds the strings the database indexes (userName,
	// externalId, displayName): PostgreSQL's btree takes about 2,700 bytes
	// per row, and lower-casing may grow a string by half.
	MaxIndexedBytes = 1024
	// MaxNumberLength bounds the text of a number; numbers must also be
	// finite as a float64, which both JSON parsers and PostgreSQL's jsonb
	// hold (1e1000000 is refused: jsonb cannot parse it).
	MaxNumberLength = 64
	// MaxFilterTerms bounds the comparisons of one filter, and
	// MaxMultiValuedTerms those over multi-valued attributes (value paths,
	// emails.value, members): each of those reads every value of every
	// user the filter visits. Identity providers send one or two terms.
	MaxFilterTerms      = 32
	MaxMultiValuedTerms = 8
	// MaxProjectionAttributes bounds the names in attributes and in
	// excludedAttributes: each is applied to every resource answered.
	// Entra sends one (excludedAttributes=members).
	MaxProjectionAttributes = 100
)

// CheckProjection refuses attributes or excludedAttributes lists longer
// than MaxProjectionAttributes.
func CheckProjection(p Projection) error {
	if len(p.Attrs) > MaxProjectionAttributes || len(p.Excluded) > MaxProjectionAttributes {
		return InvalidValue("attributes and excludedAttributes may name at most %d attributes each", MaxProjectionAttributes)
	}
	return nil
}

// checkBody scans a request body before it is decoded: nesting depth,
// string and key lengths, values per array and members per object, and
// numbers JSON and PostgreSQL can both hold. It bounds what decoding may
// allocate, without building anything; syntax errors are left to the
// decoder. Errors are 400 invalidValue naming the limit.
func checkBody(body []byte) error {
	type frame struct {
		array bool
		n     int
	}
	var stack []frame
	expectKey := false
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch c {
		case '{', '[':
			if len(stack) > 0 {
				top := &stack[len(stack)-1]
				top.n++
				if err := checkCount(top.array, top.n); err != nil {
					return err
				}
			}
			if len(stack) >= MaxDepth {
				return InvalidValue("the body nests deeper than %d levels", MaxDepth)
			}
			stack = append(stack, frame{array: c == '['})
			expectKey = c == '{'
		case '}', ']':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			expectKey = false
		case ',':
			expectKey = len(stack) > 0 && !stack[len(stack)-1].array
		case ':':
			expectKey = false
		case '"':
			end, n, ok := scanString(body, i+1)
			if !ok {
				return nil // unterminated: the decoder says so
			}
			if expectKey {
				if n > MaxKeyBytes {
					return InvalidValue("an attribute name is longer than %d bytes", MaxKeyBytes)
				}
				if len(stack) > 0 {
					top := &stack[len(stack)-1]
					top.n++
					if err := checkCount(false, top.n); err != nil {
						return err
					}
				}
			} else {
				if n > MaxStringBytes {
					return InvalidValue("a string value is longer than %d bytes", MaxStringBytes)
				}
				if len(stack) > 0 && stack[len(stack)-1].array {
					top := &stack[len(stack)-1]
					top.n++
					if err := checkCount(true, top.n); err != nil {
						return err
					}
				}
			}
			i = end
		case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			j := i
			for j < len(body) && isNumberByte(body[j]) {
				j++
			}
			if err := checkNumber(body[i:j]); err != nil {
				return err
			}
			if len(stack) > 0 && stack[len(stack)-1].array {
				top := &stack[len(stack)-1]
				top.n++
				if err := checkCount(true, top.n); err != nil {
					return err
				}
			}
			i = j - 1
		case 't', 'f', 'n':
			if len(stack) > 0 && stack[len(stack)-1].array {
				top := &stack[len(stack)-1]
				top.n++
				if err := checkCount(true, top.n); err != nil {
					return err
				}
			}
			for i+1 < len(body) && body[i+1] >= 'a' && body[i+1] <= 'z' {
				i++
			}
		}
	}
	return nil
}

// checkCount bounds the values of an array and the members of an object.
func checkCount(array bool, n int) error {
	if array && n > MaxMembers {
		return InvalidValue("a list holds more than %d values", MaxMembers)
	}
	if !array && n > MaxAttributes {
		return InvalidValue("an object holds more than %d attributes", MaxAttributes)
	}
	return nil
}

func isNumberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

// checkNumber refuses numbers that either database cannot hold.
func checkNumber(b []byte) error {
	if len(b) > MaxNumberLength {
		return InvalidValue("a number is longer than %d characters", MaxNumberLength)
	}
	if _, err := strconv.ParseFloat(string(b), 64); errors.Is(err, strconv.ErrRange) {
		return InvalidValue("the number %s is out of range", b)
	}
	return nil // a syntax error is the decoder's to report
}

// scanString finds the end of a JSON string starting after its opening
// quote and measures it as decoded (UTF-8 bytes). ok is false when it does
// not end.
func scanString(b []byte, i int) (end, n int, ok bool) {
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			return i, n, true
		case c == '\\' && i+1 < len(b):
			if b[i+1] == 'u' && i+5 < len(b) {
				r, err := strconv.ParseUint(string(b[i+2:i+6]), 16, 32)
				if err == nil {
					switch l := utf8.RuneLen(rune(r)); {
					case l > 0:
						n += l
					default:
						n += 2 // half of a surrogate pair (4 bytes decoded)
					}
					i += 6
					continue
				}
			}
			n++
			i += 2
		default:
			n++
			i++
		}
	}
	return i, n, false
}

// checkResource checks a decoded, normalised resource against the limits
// of what is stored: attributes at every depth, values per multi-valued
// attribute, nesting, string lengths (the indexed ones shorter). A group's
// members are stored apart and not counted here.
func checkResource(rt ResourceType, doc map[string]any) error {
	attrs := 0
	for k, v := range doc {
		if rt.Name == Groups.Name && k == "members" {
			// Stored apart; a body lists at most MaxMembers (checkBody),
			// and a group PATCHed with its members loaded may have more.
			continue
		}
		attrs++
		if err := checkValue(k, v, 1, &attrs); err != nil {
			return err
		}
	}
	for _, name := range []string{"userName", "externalId", "displayName"} {
		if s, ok := doc[name].(string); ok && len(s) > MaxIndexedBytes {
			return InvalidValue("%s is longer than %d bytes", name, MaxIndexedBytes)
		}
	}
	return nil
}

func checkValue(name string, v any, depth int, attrs *int) error {
	if depth > MaxDepth {
		return InvalidValue("the resource nests deeper than %d levels", MaxDepth)
	}
	switch v := v.(type) {
	case string:
		if len(v) > MaxStringBytes {
			return InvalidValue("the value of %q is longer than %d bytes", name, MaxStringBytes)
		}
	case map[string]any:
		*attrs += len(v)
		if *attrs > MaxAttributes {
			return InvalidValue("the resource has more than %d attributes", MaxAttributes)
		}
		for k, e := range v {
			if err := checkValue(k, e, depth+1, attrs); err != nil {
				return err
			}
		}
	case []any:
		if len(v) > MaxValues {
			return InvalidValue("%q has more than %d values", name, MaxValues)
		}
		for _, e := range v {
			if err := checkValue(name, e, depth+1, attrs); err != nil {
				return err
			}
		}
	}
	if *attrs > MaxAttributes {
		return InvalidValue("the resource has more than %d attributes", MaxAttributes)
	}
	return nil
}
