package main

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"go.yaml.in/yaml/v3"
)

const testForgeAppID = "ari:cloud:ecosystem::app/406d303d-0393-4ec4-ad7c-1435be94583a"

func readManifest(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s is not YAML: %v\n%s", path, err, b)
	}
	return m
}

// embeddedModuleTypes are the module types of the descriptor main embeds.
func embeddedModuleTypes(t *testing.T) []string {
	t.Helper()
	var d struct {
		Modules map[string]json.RawMessage `json:"modules"`
	}
	if err := json.Unmarshal(descriptorTemplate, &d); err != nil {
		t.Fatal(err)
	}
	return slices.Sorted(maps.Keys(d.Modules))
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestManifestCommandFollowsConfiguration(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{
		"IDBRIDGE_APP_KEY":      "com.example.idbridge",
		"IDBRIDGE_BASE_URL":     "https://idbridge.example.com/",
		"IDBRIDGE_FORGE_APP_ID": testForgeAppID,
	}
	code, out, errOut := runCLI(t, env, "manifest", "--out", dir)
	path := filepath.Join(dir, "manifest.yml")
	if d := cmp.Diff(map[string]any{"exit": 0, "stdout": path + "\n", "stderr": ""}, map[string]any{"exit": code, "stdout": out, "stderr": errOut}); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	m := readManifest(t, path)
	app := m["app"].(map[string]any)
	conn := app["connect"].(map[string]any)
	remotes := m["remotes"].([]any)
	remote := remotes[0].(map[string]any)
	if d := cmp.Diff(map[string]any{"app.id": testForgeAppID, "app.connect.key": "com.example.idbridge", "app.connect.authentication": "jwt",
		"remotes": 1, "remote.key": conn["remote"], "remote.baseUrl": "https://idbridge.example.com"},
		map[string]any{"app.id": app["id"], "app.connect.key": conn["key"], "app.connect.authentication": conn["authentication"],
			"remotes": len(remotes), "remote.key": remote["key"], "remote.baseUrl": remote["baseUrl"]}); d != "" {
		t.Fatalf("manifest (-want +got):\n%s", d)
	}
	// Both products, every module type of the embedded descriptor, and the
	// lifecycle: the manifest comes from the descriptor main serves.
	var want []string
	for _, p := range []string{"confluence", "jira"} {
		want = append(want, p+":lifecycle")
		for _, typ := range embeddedModuleTypes(t) {
			want = append(want, p+":"+typ)
		}
	}
	slices.Sort(want)
	if got := slices.Sorted(maps.Keys(m["connectModules"].(map[string]any))); !slices.Equal(got, want) {
		t.Errorf("connectModules %v, want %v", got, want)
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"manifest.yml"}) {
		t.Errorf("directory holds %v; a temporary file was left behind", names)
	}

	// Another key and base URL rewrite the file in place.
	env["IDBRIDGE_APP_KEY"] = "com.example.idbridge-staging"
	env["IDBRIDGE_BASE_URL"] = "https://staging.example.com/idbridge"
	if code, _, errOut := runCLI(t, env, "manifest", "--out", dir, "--product", "jira"); code != 0 {
		t.Fatalf("second run: exit %d, stderr %q", code, errOut)
	}
	m = readManifest(t, path)
	conn = m["app"].(map[string]any)["connect"].(map[string]any)
	remote = m["remotes"].([]any)[0].(map[string]any)
	if d := cmp.Diff(map[string]any{"app.connect.key": "com.example.idbridge-staging", "remote.baseUrl": "https://staging.example.com/idbridge"},
		map[string]any{"app.connect.key": conn["key"], "remote.baseUrl": remote["baseUrl"]}); d != "" {
		t.Errorf("after reconfiguration (-want +got):\n%s", d)
	}
	for name := range m["connectModules"].(map[string]any) {
		if !strings.HasPrefix(name, "jira:") {
			t.Errorf("--product jira wrote %s", name)
		}
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"manifest.yml"}) {
		t.Errorf("directory holds %v after a rewrite", names)
	}
}

func TestManifestCommandWithoutForgeAppID(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := runCLI(t, nil, "manifest", "--out", dir)
	if d := cmp.Diff(map[string]any{"exit": 0, "stdout": filepath.Join(dir, "manifest.yml") + "\n"}, map[string]any{"exit": code, "stdout": out}); d != "" {
		t.Fatalf("stderr %q (-want +got):\n%s", errOut, d)
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "IDBRIDGE_FORGE_APP_ID is unset") ||
		!strings.Contains(lines[0], "ari:cloud:ecosystem::app/invalid-run-forge-register") || !strings.Contains(lines[1], "not https") {
		t.Errorf("want one warning line about the app ID and one about http, got %q", errOut)
	}
	b, err := os.ReadFile(filepath.Join(dir, "manifest.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "id: ari:cloud:ecosystem::app/invalid-run-forge-register # placeholder") {
		t.Errorf("placeholder app.id not marked:\n%s", b)
	}
	m := readManifest(t, filepath.Join(dir, "manifest.yml"))
	if conn := m["app"].(map[string]any)["connect"].(map[string]any); conn["key"] != "idbridge" {
		t.Errorf("default key: %v", conn)
	}
	if r := m["remotes"].([]any)[0].(map[string]any); r["baseUrl"] != "http://localhost:8080" {
		t.Errorf("default base URL: %v", r)
	}
}

func TestManifestCommandRefusals(t *testing.T) {
	file := filepath.Join(t.TempDir(), "plain-file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
	}{
		{"bad app key", map[string]string{"IDBRIDGE_APP_KEY": "has spaces"}, nil, 2},
		{"bad base URL", map[string]string{"IDBRIDGE_BASE_URL": "not a url"}, nil, 2},
		{"bad Forge app ID", map[string]string{"IDBRIDGE_FORGE_APP_ID": "app-123"}, nil, 2},
		{"bad product", nil, []string{"--product", "bitbucket"}, 2},
		{"unknown flag", nil, []string{"--force"}, 2},
		{"extra argument", nil, []string{"manifest.yml"}, 2},
		{"missing directory", nil, []string{"--out", filepath.Join(t.TempDir(), "nope")}, 1},
		{"out is a file", nil, []string{"--out", file}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append([]string{"manifest"}, tc.args...)
			if !slices.Contains(tc.args, "--out") {
				args = append(args, "--out", dir)
			}
			code, out, errOut := runCLI(t, tc.env, args...)
			if d := cmp.Diff(map[string]any{"exit": tc.code, "stdout": "", "stderr starts idbridge manifest": true},
				map[string]any{"exit": code, "stdout": out, "stderr starts idbridge manifest": strings.HasPrefix(errOut, "idbridge manifest")}); d != "" {
				t.Fatalf("stderr %q (-want +got):\n%s", errOut, d)
			}
			if tc.code == 1 && strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("want one line on stderr, got %q", errOut)
			}
			if tc.name == "missing directory" && !strings.Contains(errOut, "create the directory first") {
				t.Errorf("a missing --out directory: %q, want a line that says what to do", errOut)
			}
			if names := dirNames(t, dir); len(names) != 0 {
				t.Errorf("wrote %v despite the refusal", names)
			}
		})
	}
}

func TestManifestCommandHelp(t *testing.T) {
	code, out, errOut := runCLI(t, nil, "manifest", "--help")
	if code != 0 || !strings.Contains(out, "Usage: idbridge manifest") || !strings.Contains(out, "-out") ||
		!strings.Contains(out, "-product") || errOut != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, out, _ := runCLI(t, nil, "--help"); !strings.Contains(out, "manifest") {
		t.Errorf("top-level usage does not list manifest:\n%s", out)
	}
}
