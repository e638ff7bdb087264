package scim

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// jsonStringCases are strings whose JSON spelling differs between careless
// encoders: quotes, backslashes, control characters with and without short
// escapes, HTML characters (not escaped), U+2028 and U+2029 (escaped),
// invalid UTF-8 (replaced), and ordinary multi-byte text.
var jsonStringCases = []string{
	"", "plain", `quote " and backslash \`, "\b\f\n\r\t\x00\x01\x1f\x7f",
	"R&D <team>", "line\u2028para\u2029end", "bad \xff\xfe utf-8 \xe2\x82", "Zoë 北京 🙂",
}

// TestAppendJSONStringIsMarshal: the heads and member lists of rendered
// resources (appendJSONString) spell strings exactly as the rest of an
// answer (Marshal) does, so there is one JSON encoding.
func TestAppendJSONStringIsMarshal(t *testing.T) {
	for _, s := range jsonStringCases {
		want, err := Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(want), string(appendJSONString(nil, s))); diff != "" {
			t.Errorf("appendJSONString(%q) differs from Marshal (-Marshal +appendJSONString):\n%s", s, diff)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range jsonStringCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Errorf("appendJSONString(%q) = %s, Marshal = %s", s, got, want)
		}
	})
}

// TestAppendJSONStringEscapingHTML: with escapeHTML (the privacy export)
// the encoder writes what encoding/json's default does.
func TestAppendJSONStringEscapingHTML(t *testing.T) {
	for _, s := range jsonStringCases {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(want), string(AppendJSONString(nil, s, true))); diff != "" {
			t.Errorf("AppendJSONString(%q, escapeHTML) differs from json.Marshal (-Marshal +Append):\n%s", s, diff)
		}
	}
}
