package app_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"idbridge/app"
	"idbridge/app/store"
	"idbridge/app/store/storetest"
)

// TestConnectCrossReplicaInvalidation: two Apps on one PostgreSQL database
// both have a site cached; a reinstall through the first makes the second
// refuse the old secret (and take the new one) within a bounded wait,
// through LISTEN/NOTIFY, with no request to the second in between that
// could have refreshed its cache by other means.
func TestConnectCrossReplicaInvalidation(t *testing.T) {
	storetest.PostgresURL(t) // skips without PostgreSQL, fails under CI=true
	var pg storetest.Backend
	for _, b := range storetest.Backends(t) {
		if b.Name == store.Postgres {
			pg = b
		}
	}
	h := newConnectHarness(t, pg)
	replica := h.openApp()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- replica.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("replica Run: %v", err)
		}
	})
	select {
	case <-replica.WorkersReady():
	case err := <-done:
		t.Fatalf("replica Run returned before listening: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("replica not listening within 10 s")
	}

	s := h.newSite(h.jira)
	h.jira.AddAdmin("admin-1")
	h.mustInstall(s)
	// Both replicas cache the site (and the admin answer).
	for _, a := range []*app.App{h.app, replica} {
		connectWantStatus(t, h.adminSite(a, s, "admin-1", s.secret), http.StatusOK, "before reinstall")
	}
	calls := h.jira.TotalRequests()

	old := h.reinstall(h.app, s)
	connectWaitFor(t, 20*time.Second, "replica refuses the old secret", func() bool {
		w := h.adminSite(replica, s, "admin-1", old)
		if w.Code != http.StatusOK && w.Code != http.StatusUnauthorized {
			t.Fatalf("old secret on the replica: %d %s", w.Code, w.Body)
		}
		return w.Code == http.StatusUnauthorized
	})
	connectWantStatus(t, h.adminSite(replica, s, "admin-1", s.secret), http.StatusOK, "new secret on the replica")
	// The replica's cached admin answer went with the site: it asked again.
	if n := h.jira.TotalRequests(); n != calls+1 {
		t.Errorf("the replica asked the site %d times after the reinstall, want 1", n-calls)
	}

	// An uninstall through the first replica also reaches the second.
	connectWantStatus(t, h.uninstall(s), http.StatusNoContent, "uninstall")
	connectWaitFor(t, 20*time.Second, "replica refuses an uninstalled site", func() bool {
		return h.adminSite(replica, s, "admin-1", s.secret).Code == http.StatusUnauthorized
	})

	// Run stops cleanly when its context ends.
	cancel()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("Run: %v", err)
		}
		done <- nil
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not stop")
	}
}
