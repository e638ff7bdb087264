package connect

import (
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"testing"
)

func TestZZDiffPaths(t *testing.T) {
	b, err := os.ReadFile("/tmp/qshdiff/paths.json")
	if err != nil {
		t.Skip(err)
	}
	var cases []struct{ URL, Base, Canonical string }
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	bad, prefixOnly := 0, 0
	kinds := map[string]int{}
	for _, c := range cases {
		if strings.Contains(c.URL, "@") || strings.HasPrefix(c.URL, "//") {
			continue
		}
		u, err := url.ParseRequestURI(c.URL)
		if err != nil {
			continue
		}
		base := c.Base
		if strings.HasPrefix(base, "http") {
			bu, _ := url.Parse(base)
			base = bu.EscapedPath()
		}
		got := CanonicalRequest("GET", u, base)
		if got != c.Canonical {
			bb := strings.TrimSuffix(base, "/")
			if bb != "" && strings.HasPrefix(u.EscapedPath(), bb) && !(u.EscapedPath() == bb || strings.HasPrefix(u.EscapedPath(), bb+"/")) {
				prefixOnly++
				continue
			}
			bad++
			k := "other"
			if strings.Contains(c.URL, "@") { k = "@" } else if strings.Contains(c.URL, "'") { k = "'" }
			kinds[k]++
			if bad < 400 && !(strings.HasSuffix(c.Base, "/") && u.EscapedPath()+"/" == strings.TrimPrefix(strings.TrimPrefix(c.Base, "https://x.atlassian.net"), "")) {
				t.Errorf("%q base %q:\n go %q\n js %q", c.URL, c.Base, got, c.Canonical)
			}
		}
	}
	t.Logf("%d/%d mismatches (%v), %d non-segment prefix (deliberate)", bad, len(cases), kinds, prefixOnly)
}
