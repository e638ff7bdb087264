package connect

import (
	"encoding/json"
	"net/url"
	"os"
	"testing"
)

func TestZZDiffJS(t *testing.T) {
	b, err := os.ReadFile("/tmp/qshdiff/cases.json")
	if err != nil {
		t.Skip(err)
	}
	var cases []struct{ URL, Canonical string }
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	bad := 0
	for _, c := range cases {
		u, err := url.Parse(c.URL)
		if err != nil {
			t.Logf("parse %q: %v", c.URL, err)
			continue
		}
		got := CanonicalRequest("GET", u, "")
		if got != c.Canonical {
			bad++
			if bad < 15 {
				t.Errorf("%q:\n go %q\n js %q", c.URL, got, c.Canonical)
			}
		}
	}
	t.Logf("%d/%d mismatches", bad, len(cases))
}
