package forge

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"idbridge/app/connect"

	"github.com/google/go-cmp/cmp"
)

// realDescriptor renders the repository's descriptor template, the one main
// embeds and GET /atlassian-connect.json serves.
func realDescriptor(tb testing.TB, key, baseURL string) []byte {
	tb.Helper()
	tmpl, err := os.ReadFile("../../atlassian-connect.json")
	if err != nil {
		tb.Fatal(err)
	}
	d, err := connect.RenderDescriptor(tmpl, key, baseURL)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// generic decodes JSON or YAML into plain values with JSON's number type, so
// that a descriptor and a manifest compare field by field.
func generic(tb testing.TB, v any) any {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		tb.Fatal(err)
	}
	return out
}

func parseYAML(tb testing.TB, y []byte) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := yaml.Unmarshal(y, &m); err != nil {
		tb.Fatalf("manifest is not YAML: %v\n%s", err, y)
	}
	return generic(tb, m).(map[string]any)
}

func parseJSON(tb testing.TB, b []byte) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

// mirrorProblems checks, without using Build, that manifest carries exactly
// the descriptor's modules, lifecycle callbacks and scopes for each product,
// plus the Connect key and the base URL, and nothing else.
func mirrorProblems(desc, manifest map[string]any, products []Product) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	if got := slices.Sorted(maps.Keys(manifest)); !slices.Equal(got, []string{"app", "connectModules", "modules", "permissions", "remotes"}) {
		add("top-level fields %v, want app, connectModules, modules, permissions, remotes", got)
	}
	app, _ := manifest["app"].(map[string]any)
	conn, _ := app["connect"].(map[string]any)
	if conn["key"] != desc["key"] {
		add("app.connect.key %v, want %v", conn["key"], desc["key"])
	}
	if conn["authentication"] != "jwt" {
		add("app.connect.authentication %v, want jwt", conn["authentication"])
	}
	remotes, _ := manifest["remotes"].([]any)
	if len(remotes) != 1 {
		add("%d remotes, want 1", len(remotes))
	} else if r, _ := remotes[0].(map[string]any); r["key"] != conn["remote"] || r["baseUrl"] != desc["baseUrl"] {
		d := cmp.Diff(map[string]any{"key": conn["remote"], "baseUrl": desc["baseUrl"]}, map[string]any{"key": r["key"], "baseUrl": r["baseUrl"]})
		add("the remote does not hold the descriptor's baseUrl under app.connect.remote (-want +got):\n%s", d)
	}

	want := map[string][]any{}
	// Forge's side: the lifecycle trigger and its endpoint on the remote,
	// with the app system token, whatever the descriptor says.
	wantScopes := []string{"read:app-system-token"}
	wantModules := map[string]any{
		"trigger": []any{map[string]any{"key": "forge-lifecycle", "endpoint": "forge-lifecycle-remote",
			"events": []any{"avi:forge:installed:app", "avi:forge:upgraded:app"}}},
		"endpoint": []any{map[string]any{"key": "forge-lifecycle-remote", "remote": conn["remote"],
			"route": map[string]any{"path": "/forge/lifecycle"}, "auth": map[string]any{"appSystemToken": map[string]any{"enabled": true}}}},
	}
	if !reflect.DeepEqual(manifest["modules"], wantModules) {
		add("modules = %v, want %v", manifest["modules"], wantModules)
	}
	modules, _ := desc["modules"].(map[string]any)
	// Keys are the descriptor's in a one-product manifest, and prefixed
	// with the product when several share the manifest (keys are unique
	// manifest-wide).
	for _, p := range products {
		prefix := ""
		if len(products) > 1 {
			prefix = string(p) + "-"
		}
		if lc, ok := desc["lifecycle"].(map[string]any); ok {
			entry := maps.Clone(lc)
			entry["key"] = prefix + LifecycleKey
			want[string(p)+":lifecycle"] = []any{entry}
		}
		for typ, v := range modules {
			list, ok := v.([]any)
			if !ok {
				list = []any{v}
			}
			keyed := make([]any, len(list))
			for i, e := range list {
				w := maps.Clone(e.(map[string]any))
				if w["key"] == nil && typ == "webhooks" {
					w["key"] = fmt.Sprintf("webhook-%d", i+1)
				}
				if k, ok := w["key"].(string); ok {
					w["key"] = prefix + k
				}
				keyed[i] = w
			}
			want[string(p)+":"+typ] = keyed
		}
		switch p {
		case Jira:
			wantScopes = append(wantScopes, "read:jira-user")
		case Confluence:
			wantScopes = append(wantScopes, "read:confluence-groups", "read:confluence-user")
		}
		scopes, _ := desc["scopes"].([]any)
		for _, s := range scopes {
			wantScopes = append(wantScopes, strings.ReplaceAll(strings.ToLower(s.(string)), "_", "-")+":connect-"+string(p))
		}
	}

	got, _ := manifest["connectModules"].(map[string]any)
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if !reflect.DeepEqual(got[name], want[name]) {
			add("connectModules.%s = %v, want %v", name, got[name], want[name])
		}
	}
	for _, name := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[name]; !ok {
			add("connectModules.%s has no counterpart in the descriptor", name)
		}
	}

	perms, _ := manifest["permissions"].(map[string]any)
	var gotScopes []string
	for _, s := range perms["scopes"].([]any) {
		gotScopes = append(gotScopes, s.(string))
	}
	slices.Sort(gotScopes)
	slices.Sort(wantScopes)
	if !slices.Equal(gotScopes, slices.Compact(wantScopes)) {
		add("permissions.scopes %v, want %v", gotScopes, wantScopes)
	}
	return problems
}

// manifestURLs collects the URLs a manifest makes Atlassian call or frame:
// lifecycle callbacks and every "url" field of a module.
func manifestURLs(manifest map[string]any, p Product) []string {
	var urls []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if s, ok := e.(string); ok && k == "url" {
					urls = append(urls, s)
					continue
				}
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	for name, entries := range manifest["connectModules"].(map[string]any) {
		switch {
		case name == string(p)+":lifecycle":
			for k, v := range entries.([]any)[0].(map[string]any) {
				if k != "key" {
					urls = append(urls, v.(string))
				}
			}
		case strings.HasPrefix(name, string(p)+":"):
			walk(entries)
		}
	}
	slices.Sort(urls)
	return slices.Compact(urls)
}

func TestManifestMirrorsDescriptor(t *testing.T) {
	for _, products := range [][]Product{nil, {Jira}, {Confluence}, {Jira, Confluence}} {
		t.Run(fmt.Sprint(products), func(t *testing.T) {
			d := realDescriptor(t, "idbridge", "http://localhost:8080")
			y, err := Generate(d, Options{Products: products})
			if err != nil {
				t.Fatal(err)
			}
			want := products
			if want == nil {
				want = AllProducts
			}
			m := parseYAML(t, y)
			for _, p := range mirrorProblems(parseJSON(t, d), m, want) {
				t.Error(p)
			}
			// The same URL set as the route test checks, per product.
			descURLs, err := connect.DescriptorURLs(d)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range AllProducts {
				got := manifestURLs(m, p)
				if slices.Contains(want, p) && !slices.Equal(got, descURLs) {
					t.Errorf("%s URLs %v, want the descriptor's %v", p, got, descURLs)
				}
				if !slices.Contains(want, p) && len(got) != 0 {
					t.Errorf("%s was not asked for, yet the manifest has its URLs %v", p, got)
				}
			}
		})
	}
}

// TestMirrorCheckCanFail proves the check above notices a missing, extra or
// altered module, lifecycle callback, scope or top-level field.
func TestMirrorCheckCanFail(t *testing.T) {
	d := realDescriptor(t, "idbridge", "https://idbridge.example.com")
	y, err := Generate(d, Options{})
	if err != nil {
		t.Fatal(err)
	}
	desc := parseJSON(t, d)
	tampers := map[string]func(m map[string]any){
		"module type dropped": func(m map[string]any) {
			delete(m["connectModules"].(map[string]any), "confluence:configurePage")
		},
		"module type added": func(m map[string]any) {
			m["connectModules"].(map[string]any)["jira:webPanels"] = []any{map[string]any{"key": "x", "url": "/x"}}
		},
		"module entry added": func(m map[string]any) {
			mods := m["connectModules"].(map[string]any)
			mods["jira:adminPages"] = append(mods["jira:adminPages"].([]any), map[string]any{"key": "extra", "url": "/extra"})
		},
		"module url changed": func(m map[string]any) {
			m["connectModules"].(map[string]any)["jira:adminPages"].([]any)[0].(map[string]any)["url"] = "/elsewhere"
		},
		"condition dropped": func(m map[string]any) {
			delete(m["connectModules"].(map[string]any)["jira:configurePage"].([]any)[0].(map[string]any), "conditions")
		},
		"lifecycle callback dropped": func(m map[string]any) {
			delete(m["connectModules"].(map[string]any)["jira:lifecycle"].([]any)[0].(map[string]any), "uninstalled")
		},
		"lifecycle callback added": func(m map[string]any) {
			m["connectModules"].(map[string]any)["confluence:lifecycle"].([]any)[0].(map[string]any)["dare-migration"] = "/x"
		},
		"scope added": func(m map[string]any) {
			p := m["permissions"].(map[string]any)
			p["scopes"] = append(p["scopes"].([]any), "write:connect-jira")
		},
		"scope dropped": func(m map[string]any) {
			p := m["permissions"].(map[string]any)
			p["scopes"] = p["scopes"].([]any)[1:]
		},
		"top-level field added": func(m map[string]any) { m["resources"] = []any{} },
		"lifecycle trigger dropped": func(m map[string]any) {
			delete(m["modules"].(map[string]any), "trigger")
		},
		"system token off": func(m map[string]any) {
			m["modules"].(map[string]any)["endpoint"].([]any)[0].(map[string]any)["auth"] = map[string]any{}
		},
		"key changed": func(m map[string]any) {
			m["app"].(map[string]any)["connect"].(map[string]any)["key"] = "other"
		},
		"base URL changed": func(m map[string]any) {
			m["remotes"].([]any)[0].(map[string]any)["baseUrl"] = "https://other.example.com"
		},
	}
	if p := mirrorProblems(desc, parseYAML(t, y), AllProducts); len(p) != 0 {
		t.Fatalf("untampered manifest reported: %v", p)
	}
	for name, tamper := range tampers {
		m := parseYAML(t, y)
		tamper(m)
		if len(mirrorProblems(desc, m, AllProducts)) == 0 {
			t.Errorf("%s: not noticed", name)
		}
	}
}

func TestManifestFollowsConfiguration(t *testing.T) {
	const appID = "ari:cloud:ecosystem::app/406d303d-0393-4ec4-ad7c-1435be94583a"
	for _, tc := range []struct{ key, baseURL, appID, wantBase, wantID string }{
		{"idbridge", "http://localhost:8080", "", "http://localhost:8080", PlaceholderAppID},
		{"com.example.idbridge-prod", "https://idbridge.example.com/", appID, "https://idbridge.example.com", appID},
		{"acme_idb", "https://example.com/apps/idbridge", appID, "https://example.com/apps/idbridge", appID},
	} {
		y, err := Generate(realDescriptor(t, tc.key, tc.baseURL), Options{AppID: tc.appID})
		if err != nil {
			t.Fatal(err)
		}
		m := parseYAML(t, y)
		app := m["app"].(map[string]any)
		conn := app["connect"].(map[string]any)
		remote := m["remotes"].([]any)[0].(map[string]any)
		got := map[string]any{"app.id": app["id"], "app.connect.key": conn["key"], "app.connect.remote": conn["remote"], "remote.baseUrl": remote["baseUrl"]}
		want := map[string]any{"app.id": tc.wantID, "app.connect.key": tc.key, "app.connect.remote": remote["key"], "remote.baseUrl": tc.wantBase}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s %s %q (-want +got):\n%s", tc.key, tc.baseURL, tc.appID, d)
		}
		if rt := app["runtime"].(map[string]any); rt["name"] != Runtime {
			t.Errorf("app.runtime = %v", rt)
		}
		marked := strings.Contains(string(y), "placeholder: run `forge register`")
		if marked != (tc.appID == "") {
			t.Errorf("app ID %q: placeholder comment present = %v\n%s", tc.appID, marked, y)
		}
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	d := realDescriptor(t, "idbridge", "https://idbridge.example.com")
	a, err := Generate(d, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		b, _ := Generate(d, Options{})
		if string(a) != string(b) {
			t.Fatalf("two runs differ:\n%s\n---\n%s", a, b)
		}
	}
	// Module entries lead with their key.
	if !strings.Contains(string(a), "jira:adminPages:\n    - key: jira-idbridge-admin\n") {
		t.Errorf("module entries do not start with their key:\n%s", a)
	}
}

func TestGenerateMapsConnectForms(t *testing.T) {
	d := []byte(`{
		"key": "k", "baseUrl": "https://a.example.com", "authentication": {"type": "JWT"},
		"enableLicensing": true,
		"scopes": ["READ", "PROJECT_ADMIN", "act_as_user"],
		"modules": {
			"webhooks": [{"event": "jira:issue_created", "url": "/h1"}, {"event": "jira:issue_updated", "url": "/h2", "key": "mine"}],
			"generalPages": {"key": "p", "url": "/p?x={project.key}", "weight": 100, "ratio": 1.5}
		}
	}`)
	y, err := Generate(d, Options{Products: []Product{Jira}})
	if err != nil {
		t.Fatal(err)
	}
	m := parseYAML(t, y)
	for _, p := range mirrorProblems(parseJSON(t, d), m, []Product{Jira}) {
		t.Error(p)
	}
	if l := m["app"].(map[string]any)["licensing"]; !reflect.DeepEqual(l, map[string]any{"enabled": true}) {
		t.Errorf("app.licensing = %v", l)
	}
	scopes := m["permissions"].(map[string]any)["scopes"]
	if want := []any{"act-as-user:connect-jira", "project-admin:connect-jira", "read:app-system-token", "read:connect-jira", "read:jira-user"}; !reflect.DeepEqual(scopes, want) {
		t.Errorf("scopes %v, want %v", scopes, want)
	}
	hooks := m["connectModules"].(map[string]any)["jira:webhooks"].([]any)
	var keys []any
	for _, h := range hooks {
		keys = append(keys, h.(map[string]any)["key"])
	}
	if d := cmp.Diff([]any{"webhook-1", "mine"}, keys); d != "" {
		t.Errorf("webhook keys (-want +got):\n%s", d)
	}
	// Numbers stay numbers, and integers integers.
	if !strings.Contains(string(y), "weight: 100\n") || !strings.Contains(string(y), "ratio: 1.5\n") {
		t.Errorf("numbers not written as numbers:\n%s", y)
	}
}

func TestGenerateRefusesWhatItCannotCarry(t *testing.T) {
	base := `"key": "k", "baseUrl": "https://a.example.com", "authentication": {"type": "jwt"}`
	for name, tc := range map[string]struct {
		descriptor string
		opts       Options
		want       string
	}{
		"unknown field":       {`{` + base + `, "regionBaseUrls": {"EU": "https://eu.example.com"}}`, Options{}, `"regionBaseUrls"`},
		"translations":        {`{` + base + `, "translations": {"paths": {}}}`, Options{}, `"translations"`},
		"native-only jira":    {`{` + base + `, "modules": {"jiraGlobalPermissions": [{"key": "g"}]}}`, Options{Products: []Product{Jira}}, "jiraGlobalPermissions"},
		"native-only macro":   {`{` + base + `, "modules": {"dynamicContentMacro": [{"key": "m", "url": "/m"}]}}`, Options{}, "dynamicContentMacro"},
		"dare-migration":      {`{` + base + `, "lifecycle": {"dare-migration": "/m"}}`, Options{}, "dare-migration"},
		"not jwt":             {`{"key": "k", "baseUrl": "https://a.example.com", "authentication": {"type": "none"}}`, Options{}, "jwt"},
		"no authentication":   {`{"key": "k", "baseUrl": "https://a.example.com"}`, Options{}, "jwt"},
		"module without key":  {`{` + base + `, "modules": {"adminPages": [{"url": "/a"}]}}`, Options{}, "no key"},
		"module not object":   {`{` + base + `, "modules": {"adminPages": ["x"]}}`, Options{}, "not an object"},
		"bad app ID":          {`{` + base + `}`, Options{AppID: "app/123"}, "not a Forge app ARI"},
		"app ID with comment": {`{` + base + `}`, Options{AppID: PlaceholderAppID + " # x"}, "not a Forge app ARI"},
		"not JSON":            {`{` + base, Options{}, "descriptor"},
		"no key":              {`{"baseUrl": "https://a.example.com", "authentication": {"type": "jwt"}}`, Options{}, `"key"`},
	} {
		_, err := Generate([]byte(tc.descriptor), tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one about %s", name, err, tc.want)
		}
	}
}

func TestParseProducts(t *testing.T) {
	for in, want := range map[string][]Product{
		"both":              {Jira, Confluence},
		"jira":              {Jira},
		"confluence":        {Confluence},
		"confluence, jira":  {Jira, Confluence},
		"jira,jira":         {Jira},
		"jira,confluence,x": nil,
		"":                  nil,
		"Jira":              nil,
		"bitbucket":         nil,
	} {
		got, err := ParseProducts(in)
		if (err != nil) != (want == nil) || !slices.Equal(got, want) {
			t.Errorf("ParseProducts(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}
