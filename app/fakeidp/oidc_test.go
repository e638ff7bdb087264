package fakeidp

import (
	"net/http"
	"testing"
)

// An identity provider that is down answers 503 on every endpoint, and
// answers again once it is back; calls are recorded either way.
func TestOIDCDown(t *testing.T) {
	p := NewOIDC()
	t.Cleanup(p.Close)
	get := func(path string) int {
		t.Helper()
		res, err := http.Get(p.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if st := get("/.well-known/openid-configuration"); st != http.StatusOK {
		t.Fatalf("discovery: %d", st)
	}
	p.SetDown(true)
	for _, path := range []string{"/.well-known/openid-configuration", "/jwks"} {
		if st := get(path); st != http.StatusServiceUnavailable {
			t.Errorf("%s while down: %d, want 503", path, st)
		}
	}
	p.SetDown(false)
	if st := get("/jwks"); st != http.StatusOK {
		t.Errorf("jwks once back: %d", st)
	}
	if n := len(p.Calls()); n != 4 {
		t.Errorf("%d calls recorded, want 4", n)
	}
}
