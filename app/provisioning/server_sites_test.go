package provisioning_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"
)

// TestServerCrossSite: site A's token never sees site B's directory, by
// any route or query, and the same userName (and group name) in two sites
// is fine.
func TestServerCrossSite(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		env := newSCIMEnv(t, b)
		a, other := env.newSite(), env.newSite()
		ua := a.createUser("same@example.com", map[string]any{"externalId": "ext-1"})
		ub := other.createUser("same@example.com", map[string]any{"externalId": "ext-1"})
		ga := a.createGroup("Same Group", ua)
		gb := other.createGroup("Same Group", ub)
		if ua == ub || ga == gb {
			t.Fatal("two sites share an id")
		}

		// A's token on B's base URL, and B's on A's: 401, whatever the route.
		for _, p := range []string{"/Users", "/Users/" + ub, "/Groups/" + gb, "/ServiceProviderConfig", "/Nope"} {
			env.request("GET", other.base+p, nil, "Authorization: Bearer "+a.token).wantError(401, "")
			env.request("GET", a.base+p, nil, "Authorization: Bearer "+other.token).wantError(401, "")
		}
		// A's token on A's base URL never reaches B's resources.
		a.do("GET", "/Users/"+ub, nil).wantError(404, "")
		a.do("GET", "/Groups/"+gb, nil).wantError(404, "")
		a.do("PUT", "/Users/"+ub, `{"userName":"x"}`).wantError(404, "")
		a.do("PATCH", "/Users/"+ub, patchOps(`{"op":"replace","path":"active","value":false}`)).wantError(404, "")
		a.do("PATCH", "/Groups/"+gb, patchOps(`{"op":"remove","path":"members"}`)).wantError(404, "")
		a.do("DELETE", "/Users/"+ub, nil).wantError(404, "")
		a.do("DELETE", "/Groups/"+gb, nil).wantError(404, "")
		// Nor through a filter, a search, a membership, or paging.
		for _, f := range []string{`userName eq "same@example.com"`, `externalId eq "ext-1"`, `id eq "` + ub + `"`, `userName pr`, `groups.value eq "` + gb + `"`} {
			if got := a.do("GET", "/Users?filter="+q(f), nil).want(200).ids(); slices.Contains(got, ub) {
				t.Errorf("filter %s reaches the other site", f)
			}
		}
		if got := a.do("GET", "/Groups?filter="+q(`members eq "`+ub+`"`), nil).want(200).ids(); len(got) != 0 {
			t.Errorf("members filter reaches the other site: %v", got)
		}
		if got := a.do("POST", "/.search", `{"count":1000}`).want(200); got.num("totalResults") != 2 {
			t.Errorf("root search: %s", got.Raw)
		}
		a.do("PATCH", "/Groups/"+ga, patchOps(`{"op":"add","path":"members","value":[{"value":"`+ub+`"}]}`)).wantError(400, "invalidValue")
		// B is untouched.
		if r := other.do("GET", "/Users/"+ub, nil).want(200); r.get("active") != true || r.str("meta.version") != `W/"1"` {
			t.Errorf("B changed: %s", r.Raw)
		}
		if got := memberIDs(other, gb); !slices.Equal(got, []string{ub}) {
			t.Errorf("B's group changed: %v", got)
		}
		if n := len(other.outbox()); n != 3 {
			t.Errorf("B's outbox has %d items, want 3", n)
		}
	})
}

// TestServerTokenLifecycle: rotating revokes the old token at once; turning
// provisioning off revokes it (401) and keeps the directory; uninstalling
// the site revokes it.
func TestServerTokenLifecycle(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		env := newSCIMEnv(t, b)
		s := env.newSite()
		u := s.createUser("kept")
		old := s.token
		s.rotate()
		env.request("GET", s.base+"/Users", nil, "Authorization: Bearer "+old).wantError(401, "")
		s.do("GET", "/Users/"+u, nil).want(200)

		ctx := context.Background()
		caller := &models.Caller{Site: s.site, AccountID: "admin-1"}
		off := false
		p, err := env.svc.UpdateProvisioning(ctx, caller, models.ProvisioningUpdate{Enabled: &off})
		if err != nil || p.Enabled {
			t.Fatalf("turn off: %+v, %v", p, err)
		}
		s.do("GET", "/Users", nil).wantError(401, "")
		on := true
		if _, err := env.svc.UpdateProvisioning(ctx, caller, models.ProvisioningUpdate{Enabled: &on}); models.ErrorCode(err) != models.CodeInvalid {
			t.Fatalf("turn on without a token: %v", err)
		}
		s.rotate()
		s.do("GET", "/Users/"+u, nil).want(200) // the directory stayed

		events, err := env.st.View(ctx).FindAuditEvents(s.site.ID, store.AuditQuery{})
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, ev := range events {
			kinds = append(kinds, string(ev.Event)+":"+ev.Section)
		}
		slices.Sort(kinds)
		if want := []string{"config_changed:provisioning", "token_rotated:provisioning", "token_rotated:provisioning", "token_rotated:provisioning"}; !slices.Equal(kinds, want) {
			t.Errorf("audit events %v, want %v", kinds, want)
		}

		if err := env.st.InTx(ctx, func(tx *store.Tx) error { return tx.MarkSiteUninstalled(s.site.ID, time.Now().Add(time.Hour)) }); err != nil {
			t.Fatal(err)
		}
		s.do("GET", "/Users", nil).wantError(401, "")
	})
}
