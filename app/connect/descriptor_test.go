package connect

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

func readTemplate(tb testing.TB) []byte {
	tb.Helper()
	b, err := os.ReadFile("testdata/descriptor.json")
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestRenderDescriptor(t *testing.T) {
	out, err := RenderDescriptor(readTemplate(t), "idbridge", "https://idbridge.example.com/")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Key            string `json:"key"`
		BaseURL        string `json:"baseUrl"`
		Authentication struct{ Type string }
		Links          map[string]string `json:"links"`
		APIMigrations  map[string]bool   `json:"apiMigrations"`
		Lifecycle      map[string]string `json:"lifecycle"`
		Scopes         []string          `json:"scopes"`
		Modules        map[string]json.RawMessage
	}
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"key": "idbridge", "baseUrl": "https://idbridge.example.com"},
		map[string]string{"key": d.Key, "baseUrl": d.BaseURL}); diff != "" {
		t.Errorf("descriptor (-want +got):\n%s", diff)
	}
	if d.Links["self"] != "https://idbridge.example.com/atlassian-connect.json" {
		t.Errorf("links.self = %q", d.Links["self"])
	}
	if d.Authentication.Type != "jwt" {
		t.Errorf("authentication.type = %q", d.Authentication.Type)
	}
	if diff := cmp.Diff(map[string]bool{"gdpr": true, "signed-install": true, "context-qsh": true}, d.APIMigrations); diff != "" {
		t.Errorf("apiMigrations (-want +got):\n%s", diff)
	}
	wantLifecycle := map[string]string{
		"installed":   "/lifecycle/installed",
		"uninstalled": "/lifecycle/uninstalled",
		"enabled":     "/lifecycle/enabled",
		"disabled":    "/lifecycle/disabled",
	}
	if diff := cmp.Diff(wantLifecycle, d.Lifecycle); diff != "" {
		t.Errorf("lifecycle (-want +got):\n%s", diff)
	}
	// Least privilege: the app's own JWT only reads (the admin check);
	// everything that writes goes through the service account.
	if diff := cmp.Diff([]string{"READ"}, d.Scopes); diff != "" {
		t.Errorf("scopes (-want +got):\n%s", diff)
	}

	// Page modules that exist in both Jira and Confluence, on /admin, for
	// admins only; module keys match ^[a-zA-Z0-9-]+$.
	type condition struct {
		Condition string `json:"condition"`
		Invert    bool   `json:"invert"`
	}
	type page struct {
		Key        string      `json:"key"`
		URL        string      `json:"url"`
		Conditions []condition `json:"conditions"`
	}
	var admin []page
	var configure page
	if err := json.Unmarshal(d.Modules["adminPages"], &admin); err != nil || len(admin) != 1 {
		t.Fatalf("adminPages: %v (%d)", err, len(admin))
	}
	if err := json.Unmarshal(d.Modules["configurePage"], &configure); err != nil {
		t.Fatalf("configurePage: %v", err)
	}
	keyPattern := regexp.MustCompile(`^[a-zA-Z0-9-]+$`)
	seen := map[string]bool{}
	for _, p := range []page{admin[0], configure} {
		if !keyPattern.MatchString(p.Key) || seen[p.Key] {
			t.Errorf("module key %q invalid or repeated", p.Key)
		}
		seen[p.Key] = true
		if p.URL != "/admin" {
			t.Errorf("module %s url = %q", p.Key, p.URL)
		}
		if diff := cmp.Diff([]condition{{Condition: "user_is_admin"}}, p.Conditions); diff != "" {
			t.Errorf("module %s conditions (-want +got):\n%s", p.Key, diff)
		}
	}
	for name := range d.Modules {
		if name != "adminPages" && name != "configurePage" {
			t.Errorf("unexpected module type %q", name)
		}
	}
}

func TestRenderDescriptorEscapes(t *testing.T) {
	tmpl := []byte(`{"key": "{{key}}", "baseUrl": "{{baseUrl}}", "links": {"self": "{{baseUrl}}/atlassian-connect.json"}}`)
	base := `https://idbridge.example.com/a"b\c</script>`
	out, err := RenderDescriptor(tmpl, "my.app_key-1", base)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Key, BaseURL string
		Links        map[string]string
	}
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, out)
	}
	if diff := cmp.Diff(map[string]string{"key": "my.app_key-1", "baseUrl": base, "links.self": base + "/atlassian-connect.json"},
		map[string]string{"key": d.Key, "baseUrl": d.BaseURL, "links.self": d.Links["self"]}); diff != "" {
		t.Errorf("descriptor (-want +got):\n%s", diff)
	}
	if bytes.Contains(out, []byte("</script>")) {
		t.Error("HTML-significant characters are not escaped")
	}
}

func TestRenderDescriptorErrors(t *testing.T) {
	good := []byte(`{"key": "{{key}}", "baseUrl": "{{baseUrl}}"}`)
	tests := []struct {
		name     string
		template []byte
		key      string
		base     string
	}{
		{"key with space", good, "my app", "https://x.example"},
		{"key with quote", good, `a"b`, "https://x.example"},
		{"key too long", good, strings.Repeat("k", 65), "https://x.example"},
		{"empty key", good, "", "https://x.example"},
		{"relative base", good, "k", "/app"},
		{"base with query", good, "k", "https://x.example/?a=1"},
		{"base not http", good, "k", "ftp://x.example"},
		{"unknown placeholder", []byte(`{"key": "{{key}}", "baseUrl": "{{baseUrl}}", "x": "{{secret}}"}`), "k", "https://x.example"},
		{"placeholder outside a string", []byte(`{"key": "{{key}}", "baseUrl": "{{baseUrl}}", "n": {{key}}}`), "k", "https://x.example"},
		{"invalid template", []byte(`{"key": "{{key}}", `), "k", "https://x.example"},
		{"hard-coded key", []byte(`{"key": "other", "baseUrl": "{{baseUrl}}"}`), "k", "https://x.example"},
		{"missing baseUrl", []byte(`{"key": "{{key}}"}`), "k", "https://x.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if out, err := RenderDescriptor(tt.template, tt.key, tt.base); err == nil {
				t.Fatalf("rendered %s", out)
			}
		})
	}
}

// TestDescriptorSchema validates the rendered descriptor against Atlassian's
// 2019 descriptor schema, with two adjustments made to the in-memory copy
// and explained where they are made.
func TestDescriptorSchema(t *testing.T) {
	out, err := RenderDescriptor(readTemplate(t), "idbridge", "https://idbridge.example.com")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("testdata/connect-schema/jira-global-schema.2019.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	schemaDoc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	// 1. The 2019 schema predates the "signed-install" (2021) and
	// "context-qsh" (2020) API migrations and closes apiMigrations with
	// additionalProperties: false. Declaring them as booleans, rather
	// than deleting them from the descriptor, still checks their type.
	migrations := schemaDoc.(map[string]any)["properties"].(map[string]any)["apiMigrations"].(map[string]any)["properties"].(map[string]any)
	for _, name := range []string{"signed-install", "context-qsh"} {
		if _, ok := migrations[name]; ok {
			t.Fatalf("schema already declares %q: drop this patch", name)
		}
		migrations[name] = map[string]any{"type": "boolean"}
	}

	c := jsonschema.NewCompiler()
	// 2. The schema marks lifecycle URLs "format": "uri" although it says
	// they are relative to the base URL; Connect's Java validator reads
	// "uri" as java.net.URI, which accepts relative references. Draft-04
	// asserts formats, so "uri" is checked as a URI reference here.
	c.RegisterFormat(&jsonschema.Format{Name: "uri", Validate: func(v any) error {
		s, ok := v.(string)
		if !ok {
			return nil
		}
		if strings.ContainsAny(s, " \\") {
			return errors.New("not a URI reference")
		}
		_, err := url.Parse(s)
		return err
	}})
	if err := c.AddResource("connect-schema.json", schemaDoc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("connect-schema.json")
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Fatalf("descriptor does not match the schema:\n%v", err)
	}

	// The schema catches what it should: a bad module key and an unknown
	// scope are refused.
	for name, mutate := range map[string]func(map[string]any){
		"bad module key": func(d map[string]any) {
			d["modules"].(map[string]any)["configurePage"].(map[string]any)["key"] = "bad key!"
		},
		"unknown scope": func(d map[string]any) { d["scopes"] = []any{"SUPERUSER"} },
		"unknown migration": func(d map[string]any) {
			d["apiMigrations"].(map[string]any)["no-such-migration"] = true
		},
	} {
		bad, err := jsonschema.UnmarshalJSON(bytes.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		mutate(bad.(map[string]any))
		if sch.Validate(bad) == nil {
			t.Errorf("%s: schema accepted it", name)
		}
	}
}

func TestDescriptorURLs(t *testing.T) {
	out, err := RenderDescriptor(readTemplate(t), "idbridge", "https://idbridge.example.com")
	if err != nil {
		t.Fatal(err)
	}
	got, err := DescriptorURLs(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/admin", "/lifecycle/disabled", "/lifecycle/enabled", "/lifecycle/installed", "/lifecycle/uninstalled"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("URLs (-want +got):\n%s", diff)
	}

	nested := []byte(`{
		"key": "k", "baseUrl": "https://x.example", "vendor": {"url": "https://vendor.example"},
		"lifecycle": {"installed": "/i"},
		"modules": {
			"webhooks": [{"event": "jira:issue_created", "url": "/hooks/issue?key={issue.key}"}],
			"generalPages": [{"key": "p", "url": "/page", "icon": {"url": "/static/icon.png"}}],
			"webItems": [{"key": "w", "url": "https://elsewhere.example/x"}, {"key": "v", "url": "//cdn.example/x"}]
		}
	}`)
	got, err = DescriptorURLs(nested)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"/hooks/issue?key={issue.key}", "/i", "/page", "/static/icon.png"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("nested URLs (-want +got):\n%s", diff)
	}

	for _, bad := range []string{`[]`, `nope`, `{"lifecycle": {"installed": "https://x/i"}}`, `{"lifecycle": {"installed": 1}}`} {
		if _, err := DescriptorURLs([]byte(bad)); err == nil {
			t.Errorf("DescriptorURLs(%s): no error", bad)
		}
	}
}
