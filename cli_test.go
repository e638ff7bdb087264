package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"idbridge/app"
	"idbridge/app/store"
	"idbridge/config"
	"idbridge/models"

	"github.com/google/go-cmp/cmp"
)

// runCLI runs the CLI with exactly the environment given (nothing leaks in
// from the developer's shell) and returns exit code, stdout and stderr.
func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e := &cliEnv{
		stdout:   &stdout,
		stderr:   &stderr,
		getenv:   func(k string) string { return env[k] },
		readFile: os.ReadFile,
		ctx:      context.Background(),
	}
	code := e.dispatch(args)
	return code, stdout.String(), stderr.String()
}

func keySpec(id string, b byte) string {
	return id + ":" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32))
}

func TestVersionAndHelp(t *testing.T) {
	code, out, _ := runCLI(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "idbridge ") {
		t.Fatalf("version: code %d, out %q", code, out)
	}
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"migrate", "--help"}, {"keys", "rotate", "--help"}, {"version", "--help"}} {
		code, out, errOut := runCLI(t, nil, args...)
		if d := cmp.Diff(map[string]any{"exit": 0, "usage on stdout": true, "stderr": ""},
			map[string]any{"exit": code, "usage on stdout": strings.Contains(out, "Usage: idbridge"), "stderr": errOut}); d != "" {
			t.Errorf("%v: stdout %q (-want +got):\n%s", args, out, d)
		}
	}
}

func TestUsageErrorsAreOneLineExit2(t *testing.T) {
	for _, args := range [][]string{{"frobnicate"}, {"migrate", "--nope"}, {"keys"}, {"keys", "spin"}, {"version", "extra"}, {"keys", "rotate", "--batch", "0"}} {
		code, out, errOut := runCLI(t, nil, args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
		if d := cmp.Diff(map[string]any{"stdout": "", "stderr lines": 1}, map[string]any{"stdout": out, "stderr lines": stderrLines(errOut)}); d != "" {
			t.Errorf("%v: want one line on stderr, stderr %q (-want +got):\n%s", args, errOut, d)
		}
	}
}

func TestInvalidConfigurationListsEveryProblem(t *testing.T) {
	env := map[string]string{
		"IDBRIDGE_APP_KEY":      "has spaces",
		"IDBRIDGE_BASE_URL":     "not a url",
		"IDBRIDGE_DATABASE_URL": "postgres://u:hunter2@db/x",
	}
	code, _, errOut := runCLI(t, env, "migrate")
	if code != 2 {
		t.Fatalf("exit %d, want 2; stderr %s", code, errOut)
	}
	for _, want := range []string{"IDBRIDGE_APP_KEY", "IDBRIDGE_BASE_URL", "IDBRIDGE_ENCRYPTION_KEYS"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks a line about %s:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, "hunter2") {
		t.Errorf("stderr leaks the database password:\n%s", errOut)
	}
}

func TestUnreachableDatabaseExits1(t *testing.T) {
	env := map[string]string{
		"IDBRIDGE_DATABASE_URL":    "postgres://idbridge:hunter2@127.0.0.1:1/idbridge?sslmode=disable&connect_timeout=2",
		"IDBRIDGE_ENCRYPTION_KEYS": keySpec("k1", 1),
	}
	code, _, errOut := runCLI(t, env, "migrate")
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr %s", code, errOut)
	}
	if strings.Contains(errOut, "hunter2") || !strings.Contains(errOut, "idbridge migrate:") {
		t.Fatalf("stderr %q: want a clear line without the password", errOut)
	}
}

func TestMigrateOnTheEmbeddedDefault(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	env := map[string]string{"IDBRIDGE_DATA_DIR": dir}
	code, out, errOut := runCLI(t, env, "migrate")
	if code != 0 {
		t.Fatalf("exit %d; stderr %s", code, errOut)
	}
	if !strings.Contains(out, "applied 1 ") || !strings.Contains(out, "schema is at version") {
		t.Fatalf("stdout %q", out)
	}
	if !strings.Contains(errOut, "generated a development encryption key") {
		t.Errorf("no warning about the generated key: %s", errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "encryption.key")); err != nil {
		t.Fatalf("dev key not kept: %v", err)
	}
	code, out, _ = runCLI(t, env, "migrate")
	if code != 0 || strings.Contains(out, "applied") {
		t.Fatalf("second migrate: exit %d, stdout %q (want nothing applied)", code, out)
	}
}

func TestCorruptDevKeyIsRefusedAndKept(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "encryption.key")
	if err := os.WriteFile(path, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, map[string]string{"IDBRIDGE_DATA_DIR": dir}, "migrate")
	if code != 1 || !strings.Contains(errOut, path) {
		t.Fatalf("exit %d, stderr %q: want 1 and the file named", code, errOut)
	}
	if b, _ := os.ReadFile(path); string(b) != "garbage\n" {
		t.Fatalf("key file was changed to %q", b)
	}
}

// saveSites installs n sites directly through the store, so rotation has
// sealed values to work on.
func saveSites(t *testing.T, env map[string]string, n int) {
	t.Helper()
	cfg, err := config.Load(func(k string) string { return env[k] }, os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := app.OpenStore(context.Background(), cfg, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := range n {
		err := st.InTx(context.Background(), func(tx *store.Tx) error {
			_, err := tx.SaveInstall(&models.Site{
				SiteFacts: models.SiteFacts{
					ClientKey: fmt.Sprintf("client-%d", i),
					BaseURL:   fmt.Sprintf("https://site%d.atlassian.net", i),
				},
				SharedSecret: []byte(strings.Repeat("s", 40)),
			})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestKeyRotationFromTheCommandLine(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"IDBRIDGE_DATA_DIR": dir, "IDBRIDGE_ENCRYPTION_KEYS": keySpec("k1", 1)}
	if code, _, errOut := runCLI(t, env, "migrate"); code != 0 {
		t.Fatalf("migrate: %s", errOut)
	}
	saveSites(t, env, 7)

	env["IDBRIDGE_ENCRYPTION_KEYS"] = keySpec("k2", 2) + "," + keySpec("k1", 1)
	code, out, errOut := runCLI(t, env, "keys", "rotate", "--batch", "3")
	if code != 0 {
		t.Fatalf("rotate: exit %d, stderr %s", code, errOut)
	}
	if !strings.Contains(out, "7 re-encrypted under key \"k2\"") || !strings.Contains(out, `"k1"`) {
		t.Fatalf("rotate output %q", out)
	}
	// Resumable and idempotent: a second run has nothing left to do.
	if _, out, _ := runCLI(t, env, "keys", "rotate"); !strings.Contains(out, "0 re-encrypted") {
		t.Fatalf("second rotate output %q", out)
	}
	// k1 may now leave the ring.
	env["IDBRIDGE_ENCRYPTION_KEYS"] = keySpec("k2", 2)
	if code, _, errOut := runCLI(t, env, "migrate"); code != 0 {
		t.Fatalf("migrate with k2 alone: exit %d, %s", code, errOut)
	}
	// A foreign ring is refused, naming the key it lacks.
	env["IDBRIDGE_ENCRYPTION_KEYS"] = keySpec("k3", 3)
	code, _, errOut = runCLI(t, env, "migrate")
	if code != 1 || !strings.Contains(errOut, `"k2"`) {
		t.Fatalf("foreign ring: exit %d, stderr %q", code, errOut)
	}
	// The same ID with other key bytes is refused too.
	env["IDBRIDGE_ENCRYPTION_KEYS"] = keySpec("k2", 9)
	code, _, errOut = runCLI(t, env, "migrate")
	if code != 1 || !strings.Contains(errOut, `"k2"`) {
		t.Fatalf("corrupted key: exit %d, stderr %q", code, errOut)
	}
}

// stderrLines is how many lines errOut holds (0 when it is empty).
func stderrLines(errOut string) int {
	if strings.TrimSpace(errOut) == "" {
		return 0
	}
	return strings.Count(strings.TrimSpace(errOut), "\n") + 1
}
