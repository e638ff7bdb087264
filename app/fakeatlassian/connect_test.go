package fakeatlassian

import (
	"testing"

	"idbridge/app/apptest"
)

// TestQSHAgreesWithTheTestSide: the site's query string hash (install
// tokens, iframe URLs) is the one the tests compute from the spec, for the
// URLs a site builds, with and without a base path.
func TestQSHAgreesWithTheTestSide(t *testing.T) {
	for _, c := range []struct{ method, target, base, rel string }{
		{"POST", "http://127.0.0.1:1/lifecycle/installed", "http://127.0.0.1:1", "/lifecycle/installed"},
		{"GET", "http://127.0.0.1:1/admin?xdm_e=http%3A%2F%2F127.0.0.1%3A2&cp=&lic=none&tz=Etc%2FUTC&b=2&b=1", "http://127.0.0.1:1", "/admin?xdm_e=http%3A%2F%2F127.0.0.1%3A2&cp=&lic=none&tz=Etc%2FUTC&b=2&b=1"},
		{"GET", "https://x.example/app/admin/?a=%20b&jwt=zzz", "https://x.example/app", "/admin/?a=%20b"},
		{"GET", "https://x.example/app", "https://x.example/app/", "/"},
	} {
		got, err := QSH(c.method, c.target, c.base)
		if err != nil {
			t.Fatal(err)
		}
		if want := apptest.QSHOf(c.method, c.rel); got != want {
			t.Errorf("QSH(%s %s, base %s) = %s, want %s (%s)", c.method, c.target, c.base, got, want, apptest.CanonicalRequest(c.method, c.rel, ""))
		}
	}
}
