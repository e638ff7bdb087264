package forge

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// validatorDir holds Atlassian's manifest validator, @forge/manifest, pinned
// by its package-lock.json, and check.js, which runs the validation that
// `forge lint` and `forge deploy` run (docs/FORGE.md, "Checked with
// Atlassian's validator").
const validatorDir = "../../tools/forge-manifest"

// forgeValidator makes sure the pinned validator is installed and returns
// the path of check.js. Under CI (CI=true, as .ci/run and the landing
// command set it) a missing Node.js or a failed `npm ci` fails the test;
// elsewhere the test is skipped unless node and the installed packages are
// there already, so a plain `go test` never reaches for the network.
func forgeValidator(t *testing.T) string {
	t.Helper()
	ci := os.Getenv("CI") != ""
	give := func(format string, args ...any) {
		t.Helper()
		if ci {
			t.Fatalf(format, args...)
		}
		t.Skipf(format+" (CI=true makes this a failure and installs the validator)", args...)
	}
	if _, err := exec.LookPath("node"); err != nil {
		give("node is not installed: %v", err)
	}
	if !validatorInstalled(t) {
		if !ci {
			give("the validator is not installed (cd tools/forge-manifest && npm ci)")
		}
		if _, err := exec.LookPath("npm"); err != nil {
			give("npm is not installed: %v", err)
		}
		cmd := exec.Command("npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund")
		cmd.Dir = validatorDir
		if out, err := cmd.CombinedOutput(); err != nil {
			give("npm ci in %s: %v\n%s", validatorDir, err, out)
		}
		if !validatorInstalled(t) {
			give("npm ci did not install the pinned @forge/manifest")
		}
	}
	return filepath.Join(validatorDir, "check.js")
}

// validatorInstalled says whether node_modules holds the @forge/manifest
// version package-lock.json pins.
func validatorInstalled(t *testing.T) bool {
	t.Helper()
	var lock struct {
		Packages map[string]struct{ Version string } `json:"packages"`
	}
	b, err := os.ReadFile(filepath.Join(validatorDir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		t.Fatal(err)
	}
	want := lock.Packages["node_modules/@forge/manifest"].Version
	if want == "" {
		t.Fatal("package-lock.json pins no @forge/manifest")
	}
	var got struct{ Version string }
	b, err = os.ReadFile(filepath.Join(validatorDir, "node_modules/@forge/manifest/package.json"))
	if err != nil {
		return false
	}
	return json.Unmarshal(b, &got) == nil && got.Version == want
}

// TestManifestPassesAtlassianValidator runs Atlassian's own manifest
// validation over every manifest idbridge writes: each product alone and
// both together, with the placeholder app ID (what a first `forge register`
// sees) and with a registered app ID and an https base URL (what `forge
// deploy` sees).
func TestManifestPassesAtlassianValidator(t *testing.T) {
	check := forgeValidator(t)
	const appID = "ari:cloud:ecosystem::app/406d303d-0393-4ec4-ad7c-1435be94583a"
	dir := t.TempDir()
	var files []string
	for _, products := range []string{"jira", "confluence", "both"} {
		for _, tc := range []struct{ name, baseURL, appID string }{
			{"placeholder", "http://localhost:8080", ""},
			{"registered", "https://idbridge.example.com", appID},
		} {
			ps, err := ParseProducts(products)
			if err != nil {
				t.Fatal(err)
			}
			y, err := Generate(realDescriptor(t, "idbridge", tc.baseURL), Options{AppID: tc.appID, Products: ps})
			if err != nil {
				t.Fatal(err)
			}
			sub := filepath.Join(dir, products+"-"+tc.name)
			if err := os.Mkdir(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			f := filepath.Join(sub, "manifest.yml")
			if err := os.WriteFile(f, y, 0o644); err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
	}
	out, err := exec.Command("node", append([]string{check}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("Atlassian's validator rejects a generated manifest (%v):\n%s", err, out)
	}
	for _, f := range files {
		if !strings.Contains(string(out), f+": valid") {
			t.Errorf("no verdict for %s:\n%s", f, out)
		}
	}
	t.Logf("%s", out)
}

// TestValidatorCatchesDuplicateKeys proves the check can fail: the manifest
// of both products with the descriptor's keys unprefixed (what idbridge
// wrote before) is rejected.
func TestValidatorCatchesDuplicateKeys(t *testing.T) {
	check := forgeValidator(t)
	m, err := Build(realDescriptor(t, "idbridge", "https://idbridge.example.com"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, entries := range m.ConnectModules {
		for _, e := range entries {
			e["key"] = strings.TrimPrefix(strings.TrimPrefix(e["key"].(string), "jira-"), "confluence-")
		}
		m.ConnectModules[name] = entries
	}
	y, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "manifest.yml")
	if err := os.WriteFile(f, y, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("node", check, f).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "duplicate module key") {
		t.Fatalf("the validator accepted duplicate keys (%v):\n%s", err, out)
	}
}
