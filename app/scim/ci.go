package scim

import (
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"
	"unsafe"
)

// ciLinear is the size up to which an object is searched key by key: a
// handful of comparisons cost less than an index.
const ciLinear = 8

// ciIndex finds the keys of a document's objects case-insensitively (as
// SCIM attribute names are matched) in constant time per access: each
// object larger than ciLinear gets an index from folded key to its
// spellings the first time it is searched, kept up to date by set and del.
// Without it every PATCH operation scanned the whole object (a 25,000
// operation PATCH on 30,000 attributes held SQLite's write lock 27 s).
// One ciIndex serves one document; every change to an indexed object must
// go through set and del.
type ciIndex struct {
	folded map[unsafe.Pointer]map[string][]string
}

func (x *ciIndex) release() { x.folded = nil }

// index returns the index of m, building it on first use, or nil for a
// small object.
func (x *ciIndex) index(m map[string]any) map[string][]string {
	if len(m) <= ciLinear {
		return x.existing(m)
	}
	ptr := reflect.ValueOf(m).UnsafePointer()
	if f, ok := x.folded[ptr]; ok {
		return f
	}
	f := make(map[string][]string, len(m))
	for k := range m {
		fk := foldKey(k)
		f[fk] = append(f[fk], k)
	}
	if x.folded == nil {
		x.folded = map[unsafe.Pointer]map[string][]string{}
	}
	x.folded[ptr] = f
	return f
}

func (x *ciIndex) existing(m map[string]any) map[string][]string {
	if x.folded == nil || m == nil {
		return nil
	}
	return x.folded[reflect.ValueOf(m).UnsafePointer()]
}

// get is LookupCI.
func (x *ciIndex) get(m map[string]any, key string) any {
	if m == nil {
		return nil
	}
	if v, ok := m[key]; ok {
		return v
	}
	f := x.index(m)
	if f == nil {
		return LookupCI(m, key)
	}
	for _, k := range f[foldKey(key)] {
		if v, ok := m[k]; ok {
			return v
		}
	}
	return nil
}

// del is deleteCI.
func (x *ciIndex) del(m map[string]any, key string) {
	f := x.index(m)
	if f == nil {
		deleteCI(m, key)
		return
	}
	fk := foldKey(key)
	for _, k := range f[fk] {
		delete(m, k)
	}
	delete(m, key)
	delete(f, fk)
}

// set is setCI.
func (x *ciIndex) set(m map[string]any, key string, v any) {
	x.del(m, key)
	m[key] = v
	if f := x.existing(m); f != nil {
		f[foldKey(key)] = []string{key}
	}
}

// foldKey maps every spelling strings.EqualFold deems equal to one key:
// each rune becomes the smallest rune of its case-folding orbit.
func foldKey(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		low := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			low = min(low, f)
		}
		if low < utf8.RuneSelf && low >= 'A' && low <= 'Z' {
			low += 'a' - 'A'
		}
		b.WriteRune(low)
	}
	return b.String()
}
