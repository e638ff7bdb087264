package fakeatlassian

import (
	"encoding/json"
	"net/url"
	"os"
	"testing"
)

// TestCanonicalRequestMatchesAtlassiansLibrary: the fake's canonical
// request and query string hash against the 45 vectors computed with
// Atlassian's own JWT library (app/connect/testdata/qsh-vectors.json, its
// source noted there).
func TestCanonicalRequestMatchesAtlassiansLibrary(t *testing.T) {
	raw, err := os.ReadFile("../connect/testdata/qsh-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Vectors []struct {
			Method, URL, Canonical, QSH string
			BaseURL                     *string
		}
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) < 40 {
		t.Fatalf("%d vectors, want the file's 45", len(f.Vectors))
	}
	for _, v := range f.Vectors {
		base := "https://site.example"
		if v.BaseURL != nil {
			base = *v.BaseURL
		}
		b, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		target := b.Scheme + "://" + b.Host + v.URL
		got, err := QSH(v.Method, target, base)
		if err != nil {
			t.Errorf("%s %s: %v", v.Method, v.URL, err)
			continue
		}
		if got != v.QSH {
			t.Errorf("%s %s (base %v): qsh %s, want %s (canonical %q)", v.Method, v.URL, base, got, v.QSH, v.Canonical)
		}
	}
}
