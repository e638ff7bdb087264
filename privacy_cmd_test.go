package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"idbridge/app"
	"idbridge/app/fakeatlassian"
	"idbridge/app/store"
	"idbridge/config"
	"idbridge/models"

	"github.com/google/go-cmp/cmp"
)

// recordSignIn writes one sign-in of accountID to client-0's audit log.
func recordSignIn(t *testing.T, env map[string]string, accountID string) {
	t.Helper()
	cfg, err := config.Load(func(k string) string { return env[k] }, os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := app.OpenStore(context.Background(), cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	site, err := st.View(context.Background()).FindSiteByClientKey("client-0")
	if err != nil {
		t.Fatal(err)
	}
	err = st.InTx(context.Background(), func(tx *store.Tx) error {
		_, err := tx.CreateAuditEvent(site.ID, models.AuditEvent{ActorAccountID: accountID, Event: models.AuditLoginSuccess, IP: "192.0.2.1"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestExportAndEraseFromTheCommandLine(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"IDBRIDGE_DATA_DIR": dir, "IDBRIDGE_ENCRYPTION_KEYS": keySpec("k1", 1), "IDBRIDGE_LOG_LEVEL": "error"}
	if code, _, errOut := runCLI(t, env, "migrate"); code != 0 {
		t.Fatalf("migrate: %s", errOut)
	}
	saveSites(t, env, 1)
	const ann = "557058:ann"
	recordSignIn(t, env, ann)

	// To stdout: the person's JSON.
	code, out, errOut := runCLI(t, env, "export", "--site", "client-0", "--account", ann)
	var doc struct {
		Records map[string][]map[string]any `json:"records"`
	}
	jsonErr := json.Unmarshal([]byte(out), &doc)
	if d := cmp.Diff(map[string]any{"exit": 0, "stdout is JSON": true, "audit_events": 1},
		map[string]any{"exit": code, "stdout is JSON": jsonErr == nil, "audit_events": len(doc.Records["audit_events"])}); d != "" {
		t.Fatalf("export: stdout %.300s, stderr %s (-want +got):\n%s", out, errOut, d)
	}
	// To a file, mode 0600, the whole site; the secret is not in it.
	file := filepath.Join(dir, "site.json")
	code, out, errOut = runCLI(t, env, "export", "--site", "client-0", "--out", file)
	if d := cmp.Diff(map[string]any{"exit": 0, "stdout": "", "stderr says exported": true},
		map[string]any{"exit": code, "stdout": out, "stderr says exported": strings.Contains(errOut, "exported")}); d != "" {
		t.Fatalf("export --out: stderr %q (-want +got):\n%s", errOut, d)
	}
	b, err := os.ReadFile(file)
	if err != nil || !json.Valid(b) || strings.Contains(string(b), strings.Repeat("s", 40)) {
		t.Fatalf("export file: %v valid=%v", err, json.Valid(b))
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Errorf("export file mode %v, want 0600", fi.Mode().Perm())
	}

	code, out, errOut = runCLI(t, env, "erase", "--site", "client-0", "--account", ann)
	if code != 0 || !strings.Contains(out, "audit_events 2") || !strings.Contains(out, models.ErasedTokenPrefix) {
		t.Fatalf("erase: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, _ = runCLI(t, env, "erase", "--site", "client-0", "--account", ann)
	if code != 0 || !strings.Contains(out, "nothing erased") {
		t.Fatalf("second erase: exit %d, stdout %q", code, out)
	}

	// Usage errors: one line, exit 2; an unknown site: exit 1.
	for _, args := range [][]string{{"export"}, {"erase", "--site", "client-0"}, {"export", "--site", "client-0", "--account", "a b"}, {"erase", "--site", "x", "--account", "é"}} {
		code, out, errOut := runCLI(t, env, args...)
		if d := cmp.Diff(map[string]any{"exit": 2, "stdout": "", "stderr lines": 1},
			map[string]any{"exit": code, "stdout": out, "stderr lines": stderrLines(errOut)}); d != "" {
			t.Errorf("%v: stderr %q (-want +got):\n%s", args, errOut, d)
		}
	}
	if code, _, errOut := runCLI(t, env, "export", "--site", "nope"); code != 1 || !strings.Contains(errOut, "no site has the client key") {
		t.Errorf("unknown site: exit %d, stderr %q", code, errOut)
	}
	for _, args := range [][]string{{"export", "--help"}, {"erase", "--help"}} {
		if code, out, _ := runCLI(t, env, args...); code != 0 || !strings.Contains(out, "Usage: idbridge") {
			t.Errorf("%v: exit %d, stdout %q", args, code, out)
		}
	}
}

func TestReportAndPurgeFromTheCommandLine(t *testing.T) {
	fake := fakeatlassian.New(fakeatlassian.Options{})
	defer fake.Close()
	dir := t.TempDir()
	env := map[string]string{"IDBRIDGE_DATA_DIR": dir, "IDBRIDGE_ENCRYPTION_KEYS": keySpec("k1", 1), "IDBRIDGE_LOG_LEVEL": "error",
		"IDBRIDGE_ATLASSIAN_API_URL": fake.APIURL(), "IDBRIDGE_APP_KEY": "idbridge-cli-test"}
	if code, _, errOut := runCLI(t, env, "migrate"); code != 0 {
		t.Fatalf("migrate: %s", errOut)
	}
	saveSites(t, env, 1)
	fs := fake.NewSite(fakeatlassian.SiteOptions{})
	fs.InstallApp("idbridge-cli-test", strings.Repeat("s", 40))
	for i := range 100 {
		recordSignIn(t, env, fmt.Sprintf("557058:c%03d", i))
	}
	fake.CloseAccounts("557058:c007")
	code, out, errOut := runCLI(t, env, "report-personal-data")
	if code != 0 || !strings.Contains(out, "100 accounts reported in 2 requests, 1 closed (1 erased)") {
		t.Fatalf("report-personal-data: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	c := fake.ReportCounts()
	if d := cmp.Diff(map[string]int{"requests": 2, "rejected": 0}, map[string]int{"requests": c.Requests, "rejected": c.Rejected}); d != "" {
		t.Errorf("counts (-want +got):\n%s", d)
	}
	// Again at once: nothing is due.
	if code, out, _ := runCLI(t, env, "report-personal-data"); code != 0 || !strings.Contains(out, "0 accounts reported in 0 requests") {
		t.Errorf("second run: exit %d, stdout %q", code, out)
	}
	code, out, errOut = runCLI(t, env, "purge")
	if code != 0 || !strings.HasPrefix(out, "purged 0 audit events past retention; 0 uninstalled sites") {
		t.Errorf("purge: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for _, args := range [][]string{{"purge", "--help"}, {"report-personal-data", "--help"}} {
		if code, out, _ := runCLI(t, env, args...); code != 0 || !strings.Contains(out, "Usage: idbridge") {
			t.Errorf("%v: exit %d", args, code)
		}
	}
	if code, _, _ := runCLI(t, env, "purge", "extra"); code != 2 {
		t.Errorf("purge extra: exit %d", code)
	}
}
