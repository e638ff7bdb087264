package store_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"idbridge/app/secret"
	"idbridge/app/store"
	"idbridge/models"

	"github.com/google/go-cmp/cmp"
)

// A database written by the SQLite engine idbridge linked before issue 16
// (github.com/glebarez/go-sqlite v1.21.2, modernc.org/sqlite v1.23.1,
// SQLite 3.41), at schema version 8. See testdata/README.md for how it was
// made (TestWriteOldEngineFixture).
const oldEngineFixture = "testdata/old-engine-v8.db"

// oldEngineKeys is the (test-only) key ring the fixture was sealed with.
var oldEngineKeys = "old1:" + base64.StdEncoding.EncodeToString([]byte("idbridge-old-engine-fixture-key!"))

func oldEngineStore(t *testing.T, path string) *store.Store {
	t.Helper()
	keys, err := secret.ParseKeys(oldEngineKeys)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := secret.NewRing(keys)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), store.Options{Driver: store.SQLite, DSN: path, Ring: ring})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// TestWriteOldEngineFixture writes testdata/old-engine-v8.db when
// IDBRIDGE_WRITE_OLD_ENGINE_FIXTURE names where; otherwise it is skipped.
func TestWriteOldEngineFixture(t *testing.T) {
	out := os.Getenv("IDBRIDGE_WRITE_OLD_ENGINE_FIXTURE")
	if out == "" {
		t.Skip("writes the fixture only when IDBRIDGE_WRITE_OLD_ENGINE_FIXTURE is set")
	}
	store.MigrationsBeforeForTest(t, "forge installations")
	path := filepath.Join(t.TempDir(), "idbridge.db")
	st := oldEngineStore(t, path)
	ctx := context.Background()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.CheckKeyRing(ctx); err != nil {
		t.Fatal(err)
	}
	var site *models.Site
	err := st.InTx(ctx, func(tx *store.Tx) error {
		var err error
		site, err = tx.SaveInstall(&models.Site{
			SiteFacts:    models.SiteFacts{ClientKey: "old-engine-client", BaseURL: "https://old-engine.atlassian.net"},
			SharedSecret: []byte("0123456789abcdef0123456789abcdef"),
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		u := &models.DirectoryUser{SiteID: site.ID, UserName: fmt.Sprintf("Old.User%02d@example.com", i), Active: i%5 != 0,
			Email: fmt.Sprintf("old.user%02d@example.com", i), Doc: []byte(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"]}`)}
		if err := st.CreateDirectoryUserWithOutbox(ctx, u, &models.OutboxItem{ResourceType: "User", Op: models.OutboxUserCreated}); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.ExecRaw(ctx, st, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	if err := store.ExecRaw(ctx, st, `VACUUM INTO ?`, out); err != nil {
		t.Fatal(err)
	}
}

// A database file written by the old engine opens with today's, migrates
// in place to the latest schema, and keeps every row: the upgrade of an
// existing ./data directory.
func TestOldEngineDatabaseMigratesInPlace(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(oldEngineFixture)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "idbridge.db")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	st := oldEngineStore(t, path)
	ctx := context.Background()
	res, err := st.Migrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string]any{"current": store.LatestVersion(), "applied some": true}, map[string]any{"current": res.Current, "applied some": len(res.Applied) > 0}); d != "" {
		t.Fatalf("migrate, want the migrations after version 8 applied (-want +got):\n%s", d)
	}
	if err := st.CheckKeyRing(ctx); err != nil {
		t.Fatal(err)
	}
	var check string
	if err := store.QueryRowRaw(ctx, st, `PRAGMA integrity_check`, nil, &check); err != nil || check != "ok" {
		t.Fatalf("integrity_check: %q, %v", check, err)
	}
	tx := st.View(ctx)
	site, err := tx.FindSiteByClientKey("old-engine-client")
	if err != nil {
		t.Fatal(err)
	}
	if string(site.SharedSecret) != "0123456789abcdef0123456789abcdef" {
		t.Errorf("shared secret %q: not unsealed as written", site.SharedSecret)
	}
	users, total, err := tx.ListDirectoryUsers(site.ID, store.DirectoryQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string]int{"total": 50, "users": 50}, map[string]int{"total": total, "users": len(users)}); d != "" {
		t.Fatalf("users (-want +got):\n%s", d)
	}
	for _, u := range users {
		if !strings.HasPrefix(u.UserName, "Old.User") || u.CreatedAt.IsZero() || u.CreatedAt.After(time.Now()) {
			t.Errorf("user %+v not read back as written", u)
		}
	}
	// Times written by the old engine compare with times written now.
	if n, err := tx.CountOutboxItems(site.ID); err != nil || n != 50 {
		t.Errorf("outbox: %d items, %v; want 50", n, err)
	}
	// The taken userName is still unique, case-insensitively; a new one
	// is written beside the old rows.
	err = st.CreateDirectoryUserWithOutbox(ctx, &models.DirectoryUser{SiteID: site.ID, UserName: "old.user07@EXAMPLE.com"},
		&models.OutboxItem{ResourceType: "User", Op: models.OutboxUserCreated})
	var me *models.Error
	if !errors.As(err, &me) || me.Code != models.CodeConflict {
		t.Errorf("create of a taken userName: %v, want conflict", err)
	}
	if err := st.CreateDirectoryUserWithOutbox(ctx, &models.DirectoryUser{SiteID: site.ID, UserName: "new@example.com", Active: true},
		&models.OutboxItem{ResourceType: "User", Op: models.OutboxUserCreated}); err != nil {
		t.Fatal(err)
	}
	newer, _, err := tx.ListDirectoryUsers(site.ID, store.DirectoryQuery{Where: "created_at > ?", Args: []any{users[len(users)-1].CreatedAt}, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"new@example.com"}, userNames(newer)); d != "" {
		t.Errorf("users created after the old ones, want only the new one (-want +got):\n%s", d)
	}
}
