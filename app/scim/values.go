package scim

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Value helpers shared by the filter, PATCH and resource code.

// container returns the object an attribute lives in: the resource for
// core and common attributes, the extension object for extension ones.
func container(resource map[string]any, ref *AttrRef) map[string]any {
	if !ref.Extension() {
		return resource
	}
	m, _ := LookupCI(resource, ref.Schema).(map[string]any)
	return m
}

// LookupCI returns m[key], or the value of the first key equal to key
// case-insensitively.
func LookupCI(m map[string]any, key string) any {
	if m == nil {
		return nil
	}
	if v, ok := m[key]; ok {
		return v
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

func AsList(v any) []any {
	switch v := v.(type) {
	case nil:
		return nil
	case []any:
		return v
	case []map[string]any:
		out := make([]any, len(v))
		for i := range v {
			out[i] = v[i]
		}
		return out
	}
	return []any{v}
}

func present(v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case string:
		return v != ""
	case []any:
		for _, e := range v {
			if present(e) {
				return true
			}
		}
		return false
	case map[string]any:
		for _, e := range v {
			if present(e) {
				return true
			}
		}
		return false
	}
	return true
}

func asBool(v any) (bool, bool) {
	switch v := v.(type) {
	case bool:
		return v, true
	case string:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true":
			return true, true
		case "false":
			return false, true
		}
	}
	return false, false
}

func asString(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	case int:
		return strconv.Itoa(v), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	}
	return "", false
}

func asFloat(v any) (float64, bool) {
	switch v := v.(type) {
	case json.Number:
		f, err := v.Float64()
		return f, err == nil
	case float64:
		return v, true
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	case string:
		f, err := strconv.ParseFloat(v, 64)
		return f, err == nil
	}
	return 0, false
}

func asTime(v any) (time.Time, bool) {
	switch v := v.(type) {
	case time.Time:
		return v.UTC(), true
	case string:
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return time.Time{}, false
		}
		return t.UTC(), true
	}
	return time.Time{}, false
}

// setCI sets key in m, replacing any key equal to it case-insensitively.
func setCI(m map[string]any, key string, v any) {
	deleteCI(m, key)
	m[key] = v
}

// deleteCI deletes every key of m equal to key case-insensitively.
func deleteCI(m map[string]any, key string) {
	delete(m, key)
	for k := range m {
		if strings.EqualFold(k, key) {
			delete(m, k)
		}
	}
}

func cloneMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// deepCopyMap copies the JSON-shaped document m (maps, slices, scalars).
func deepCopyMap(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return deepCopy(m).(map[string]any)
}

func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = deepCopy(e)
		}
		return out
	case []map[string]any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = deepCopy(e)
		}
		return out
	case []string:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = e
		}
		return out
	}
	return v
}

// memberIDs returns the member values of a group document in order.
func memberIDs(doc map[string]any) []string {
	var ids []string
	for _, el := range AsList(LookupCI(doc, "members")) {
		if em, ok := el.(map[string]any); ok {
			if s, ok := asString(LookupCI(em, "value")); ok && s != "" {
				ids = append(ids, s)
			}
		}
	}
	return ids
}

// diffIDs returns the IDs in after and not before, and in before and not
// after, each in its list's order.
func diffIDs(before, after []string) (added, removed []string) {
	inBefore := make(map[string]bool, len(before))
	for _, id := range before {
		inBefore[id] = true
	}
	inAfter := make(map[string]bool, len(after))
	for _, id := range after {
		inAfter[id] = true
		if !inBefore[id] {
			added = append(added, id)
		}
	}
	for _, id := range before {
		if !inAfter[id] {
			removed = append(removed, id)
		}
	}
	return added, removed
}
