package handlers

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"idbridge/models"
)

// forgeStub refuses every token, or names site when set, and records which
// of its methods ran.
type forgeStub struct {
	site  *models.Site
	mu    sync.Mutex
	calls []string
}

func (f *forgeStub) record(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name)
}

func (f *forgeStub) ForgeLifecycle(_ context.Context, _ *http.Request, ev *models.ForgeEvent) error {
	f.record("ForgeLifecycle " + ev.EventType)
	if f.site == nil {
		return &models.Error{Code: models.CodeUnauthorized, Reason: "missing_token", Message: "no token"}
	}
	return nil
}

func (f *forgeStub) AuthenticateForge(*http.Request) (*models.Caller, error) {
	f.record("AuthenticateForge")
	if f.site == nil {
		return nil, &models.Error{Code: models.CodeUnauthorized, Reason: "missing_token", Message: "no token"}
	}
	return &models.Caller{Site: f.site}, nil
}

// TestForgeRoutesUseTheForgeAuthenticator: the Forge routes authenticate
// with the Forge token (never a Connect JWT), answer 401 as JSON when it is
// refused, and pass the caller on when it is accepted.
func TestForgeRoutesUseTheForgeAuthenticator(t *testing.T) {
	c := &recordingConnect{}
	f := &forgeStub{}
	h, _ := newTestServer(t, Deps{Connect: c, Forge: f})
	w := do(t, h, http.MethodGet, "/forge/site", "", nil)
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("GET /forge/site refused: %d", w.Code)
	}
	jsonError(t, w)
	w = do(t, h, http.MethodPost, "/forge/lifecycle", `{"eventType":"avi:forge:installed:app","id":"x","app":{"version":"1"}}`, http.Header{"Content-Type": {"application/json"}})
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("POST /forge/lifecycle refused: %d", w.Code)
	}
	if len(c.called()) != 0 {
		t.Errorf("the Forge routes asked Connect: %v", c.called())
	}
	if got := strings.Join(f.calls, ","); got != "AuthenticateForge,ForgeLifecycle avi:forge:installed:app" {
		t.Errorf("Forge calls %s", got)
	}

	f.site = &models.Site{ID: "s_forge", State: models.SiteInstalled}
	w = do(t, h, http.MethodGet, "/forge/site", "", nil)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"id":"s_forge"`) {
		t.Errorf("GET /forge/site accepted: %d %s", w.Code, w.Body)
	}
	if w := do(t, h, http.MethodPost, "/forge/lifecycle", `{"eventType":"avi:forge:upgraded:app"}`, http.Header{"Content-Type": {"application/json"}}); w.Code != http.StatusNoContent {
		t.Errorf("POST /forge/lifecycle accepted: %d %s", w.Code, w.Body)
	}
	if w := do(t, h, http.MethodPost, "/forge/lifecycle", `{"eventType":`, http.Header{"Content-Type": {"application/json"}}); w.Code != http.StatusBadRequest {
		t.Errorf("POST /forge/lifecycle with broken JSON: %d, want 400", w.Code)
	}
}
