package app_test

import (
	"strconv"
	"strings"

	"github.com/google/go-cmp/cmp"
)

// fields are parts of a JSON answer by path: "http status" for the HTTP
// status, else a dotted path into the body ("sources.company", "items.0.id"); nil
// for an absent one.
type fields map[string]any

// answerDiff compares the parts of an answer that want names with want, as
// a go-cmp diff (-want +got) that names each part that differs; "" when
// they are equal. Numbers in want may be ints (JSON numbers decode as
// float64).
func answerDiff(want fields, code int, body map[string]any) string {
	got, norm := fields{}, fields{}
	for path, w := range want {
		if path == "http status" {
			got[path] = float64(code)
		} else {
			got[path] = lookupPath(body, path)
		}
		if n, ok := w.(int); ok {
			w = float64(n)
		}
		norm[path] = w
	}
	return cmp.Diff(norm, got)
}

// lookupPath is the value at a dotted path in decoded JSON, nil when
// there is none.
func lookupPath(v any, path string) any {
	for part := range strings.SplitSeq(path, ".") {
		switch node := v.(type) {
		case map[string]any:
			v = node[part]
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(node) {
				return nil
			}
			v = node[i]
		default:
			return nil
		}
	}
	return v
}
