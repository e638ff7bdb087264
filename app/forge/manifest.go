// Package forge turns idbridge's rendered Connect descriptor into the Forge
// manifest (manifest.yml) of a Connect-on-Forge app: the same modules, under
// connectModules, with app.connect naming the Connect key and a remote that
// holds the base URL.
//
// The descriptor is the single source of the module list: Generate reads
// what GET /atlassian-connect.json serves and never adds a module of its own.
// It refuses descriptor features it cannot carry over faithfully (data
// residency, translations, modules that Forge wants as native modules), so a
// future descriptor change fails loudly here instead of vanishing from the
// manifest. docs/FORGE.md cites the sources of the shape.
package forge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Product is an Atlassian product whose Connect modules the manifest carries;
// it prefixes module types (jira:adminPages) and Connect scopes
// (read:connect-jira).
type Product string

// The products idbridge's descriptor serves.
const (
	Jira       Product = "jira"
	Confluence Product = "confluence"
)

// AllProducts is every product, in the order the manifest lists them.
var AllProducts = []Product{Jira, Confluence}

// ParseProducts reads "jira", "confluence" or "both" (also "jira,confluence").
func ParseProducts(s string) ([]Product, error) {
	if s == "both" {
		return slices.Clone(AllProducts), nil
	}
	var out []Product
	for part := range strings.SplitSeq(s, ",") {
		p := Product(strings.TrimSpace(part))
		if !slices.Contains(AllProducts, p) {
			return nil, fmt.Errorf("product %q is not one of jira, confluence, both", part)
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b Product) int { return slices.Index(AllProducts, a) - slices.Index(AllProducts, b) })
	return out, nil
}

const (
	// PlaceholderAppID stands in for app.id until the app is registered. It
	// is the value Atlassian's own converter (@atlassian/connect-to-forge)
	// writes, because `forge register` needs an app.id to replace.
	PlaceholderAppID = "ari:cloud:ecosystem::app/invalid-run-forge-register"
	// RemoteKey names the remotes entry that holds idbridge's base URL.
	RemoteKey = "connect"
	// LifecycleKey is the module key of the <product>:lifecycle entry.
	LifecycleKey = "lifecycle-events"
	// Runtime is app.runtime.name. idbridge runs no Forge functions, but the
	// manifest reference lists app.runtime as required.
	Runtime = "nodejs22.x"

	appIDPrefix = "ari:cloud:ecosystem::app/"

	// LifecycleTriggerKey and LifecycleEndpointKey name the Forge lifecycle
	// trigger and its endpoint (an endpoint key has at most 23
	// characters); LifecyclePath is the route they reach.
	LifecycleTriggerKey  = "forge-lifecycle"
	LifecycleEndpointKey = "forge-lifecycle-remote"
	LifecyclePath        = "/forge/lifecycle"
	// SystemTokenScope lets Forge hand the remote an app system token.
	SystemTokenScope = "read:app-system-token"
)

// LifecycleEvents are the Forge lifecycle events sent to the remote. Forge
// offers no uninstall event: a Forge app learns of an uninstall through
// Connect's uninstalled callback, which stays.
var LifecycleEvents = []string{"avi:forge:installed:app", "avi:forge:upgraded:app"}

// systemTokenScopes are the OAuth scopes the app system token needs for
// the calls idbridge makes with it (docs/FORGE.md, "App system token"):
// on Jira, reading users and groups (the audit log's account names, the
// sync's lookups); on Confluence, reading groups and their members (the
// sync's lookups) and users (the audit log's account names, through
// GET /wiki/rest/api/user). Writes stay with the service account, so no
// write scope is asked for.
var systemTokenScopes = map[Product][]string{
	Jira:       {"read:jira-user"},
	Confluence: {"read:confluence-groups", "read:confluence-user"},
}

// Options choose what the manifest identifies.
type Options struct {
	// AppID is the Forge app ARI (IDBRIDGE_FORGE_APP_ID); empty writes
	// PlaceholderAppID, marked with a comment.
	AppID string
	// Products are the products whose modules are written; empty means all.
	Products []Product
}

// Manifest is the part of a Forge manifest that a Connect-on-Forge app with
// no Forge-native modules needs. Field order is the order written.
type Manifest struct {
	App            App                         `yaml:"app"`
	Remotes        []Remote                    `yaml:"remotes"`
	Permissions    Permissions                 `yaml:"permissions"`
	Modules        Modules                     `yaml:"modules"`
	ConnectModules map[string][]map[string]any `yaml:"connectModules"`
}

// Modules are the Forge-native modules: the lifecycle trigger that sends
// Forge's own installed and upgraded events to the remote, and its
// endpoint (SPEC 2: POST /forge/lifecycle).
type Modules struct {
	Trigger  []Trigger  `yaml:"trigger"`
	Endpoint []Endpoint `yaml:"endpoint"`
}

// Trigger is a trigger module delivered to a remote endpoint.
type Trigger struct {
	Key      string   `yaml:"key"`
	Endpoint string   `yaml:"endpoint"`
	Events   []string `yaml:"events"`
}

// Endpoint is an endpoint module: a route of a remote, and which token
// Forge hands it.
type Endpoint struct {
	Key    string       `yaml:"key"`
	Remote string       `yaml:"remote"`
	Route  Route        `yaml:"route"`
	Auth   EndpointAuth `yaml:"auth"`
}

// Route is endpoint.route.
type Route struct {
	Path string `yaml:"path"`
}

// EndpointAuth is endpoint.auth.
type EndpointAuth struct {
	AppSystemToken Enabled `yaml:"appSystemToken"`
}

// Enabled is {enabled: bool}.
type Enabled struct {
	Enabled bool `yaml:"enabled"`
}

// App is the manifest's app section.
type App struct {
	ID        string     `yaml:"id"`
	Connect   Connect    `yaml:"connect"`
	Runtime   AppRuntime `yaml:"runtime"`
	Licensing *Licensing `yaml:"licensing,omitempty"`
}

// Connect is app.connect: the Connect key, which remote is the Connect base
// URL, and that Connect modules authenticate with Connect JWTs.
type Connect struct {
	Key            string `yaml:"key"`
	Remote         string `yaml:"remote"`
	Authentication string `yaml:"authentication"`
}

// AppRuntime is app.runtime.
type AppRuntime struct {
	Name string `yaml:"name"`
}

// Licensing is app.licensing, from the descriptor's enableLicensing.
type Licensing struct {
	Enabled bool `yaml:"enabled"`
}

// Remote is one remotes entry.
type Remote struct {
	Key     string `yaml:"key"`
	BaseURL string `yaml:"baseUrl"`
}

// Permissions is the manifest's permissions section.
type Permissions struct {
	Scopes []string `yaml:"scopes"`
}

// descriptorFields are the top-level descriptor fields Build understands.
// Those not named in Build are descriptive (name, vendor, links, …) or have
// no manifest counterpart (apiVersion, apiMigrations).
var descriptorFields = []string{
	"key", "name", "description", "vendor", "baseUrl", "links", "authentication",
	"apiVersion", "apiMigrations", "lifecycle", "scopes", "modules", "enableLicensing",
}

// nativeOnlyModules are descriptor modules that Atlassian's converter moves to
// Forge-native modules rather than connectModules (global and project
// permissions for Jira; Confluence modules that allow unlicensed access).
// idbridge does not write native modules yet, so Build refuses them.
var nativeOnlyModules = map[Product][]string{
	Jira: {"jiraGlobalPermissions", "jiraProjectPermissions"},
	Confluence: {
		"staticContentMacro", "dynamicContentMacro", "spacePage", "customContent",
		"contextMenu", "contentAction", "contentBylineItem", "pageBanner",
	},
}

// Build maps a rendered descriptor (valid JSON, as connect.RenderDescriptor
// returns) to a manifest.
func Build(descriptor []byte, opts Options) (*Manifest, error) {
	var d map[string]any
	if err := decodeJSON(descriptor, &d); err != nil {
		return nil, fmt.Errorf("forge manifest: descriptor: %w", err)
	}
	for _, k := range slices.Sorted(maps.Keys(d)) {
		if !slices.Contains(descriptorFields, k) {
			return nil, fmt.Errorf("forge manifest: descriptor field %q has no mapping to the manifest yet (docs/FORGE.md)", k)
		}
	}
	products := opts.Products
	if len(products) == 0 {
		products = AllProducts
	}
	appID := opts.AppID
	if appID == "" {
		appID = PlaceholderAppID
	} else if !strings.HasPrefix(appID, appIDPrefix) || strings.ContainsAny(appID, " \t\r\n#\"'") {
		return nil, fmt.Errorf("forge manifest: app ID %q is not a Forge app ARI (%s<uuid>)", appID, appIDPrefix)
	}

	key, _ := d["key"].(string)
	baseURL, _ := d["baseUrl"].(string)
	if key == "" || baseURL == "" {
		return nil, errors.New(`forge manifest: descriptor lacks "key" or "baseUrl"`)
	}
	auth, _ := d["authentication"].(map[string]any)
	if typ, _ := auth["type"].(string); !strings.EqualFold(typ, "jwt") {
		return nil, errors.New(`forge manifest: descriptor authentication must be {"type": "jwt"}, the only Connect authentication a Connect-on-Forge app keeps`)
	}

	m := &Manifest{
		App: App{
			ID:      appID,
			Connect: Connect{Key: key, Remote: RemoteKey, Authentication: "jwt"},
			Runtime: AppRuntime{Name: Runtime},
		},
		Remotes:     []Remote{{Key: RemoteKey, BaseURL: baseURL}},
		Permissions: Permissions{Scopes: []string{SystemTokenScope}},
		Modules: Modules{
			Trigger: []Trigger{{Key: LifecycleTriggerKey, Endpoint: LifecycleEndpointKey, Events: slices.Clone(LifecycleEvents)}},
			Endpoint: []Endpoint{{
				Key: LifecycleEndpointKey, Remote: RemoteKey, Route: Route{Path: LifecyclePath},
				Auth: EndpointAuth{AppSystemToken: Enabled{Enabled: true}},
			}},
		},
		ConnectModules: map[string][]map[string]any{},
	}
	if v, ok := d["enableLicensing"]; ok {
		b, ok := v.(bool)
		if !ok {
			return nil, errors.New(`forge manifest: descriptor "enableLicensing" is not a boolean`)
		}
		m.App.Licensing = &Licensing{Enabled: b}
	}

	scopes, err := stringList(d["scopes"], "scopes")
	if err != nil {
		return nil, err
	}
	lifecycle, err := lifecycleEntry(d["lifecycle"])
	if err != nil {
		return nil, err
	}
	modules, _ := d["modules"].(map[string]any)
	if d["modules"] != nil && modules == nil {
		return nil, errors.New(`forge manifest: descriptor "modules" is not an object`)
	}

	for _, p := range products {
		// Module keys must be unique across the whole manifest (Atlassian's
		// validator: "found duplicate module key"), so a manifest with more
		// than one product prefixes every key with its product. A manifest
		// of one product keeps the descriptor's keys, which is what the
		// Forge successor of an existing Connect app needs (docs/FORGE.md).
		prefix := ""
		if len(products) > 1 {
			prefix = string(p) + "-"
		}
		for _, s := range scopes {
			m.Permissions.Scopes = append(m.Permissions.Scopes, ConnectScope(s, p))
		}
		m.Permissions.Scopes = append(m.Permissions.Scopes, systemTokenScopes[p]...)
		if lifecycle != nil {
			entry := deepCopy(lifecycle)
			entry["key"] = prefix + LifecycleKey
			m.ConnectModules[string(p)+":lifecycle"] = []map[string]any{entry}
		}
		for _, typ := range slices.Sorted(maps.Keys(modules)) {
			if slices.Contains(nativeOnlyModules[p], typ) {
				return nil, fmt.Errorf("forge manifest: %s module %q must become a Forge-native module, which idbridge does not write yet (docs/FORGE.md)", p, typ)
			}
			entries, err := moduleEntries(typ, modules[typ], prefix)
			if err != nil {
				return nil, err
			}
			if len(entries) == 0 {
				continue
			}
			name := string(p) + ":" + typ
			if _, dup := m.ConnectModules[name]; dup {
				return nil, fmt.Errorf("forge manifest: module type %q clashes with a generated one", name)
			}
			m.ConnectModules[name] = entries
		}
	}
	slices.Sort(m.Permissions.Scopes)
	m.Permissions.Scopes = slices.Compact(m.Permissions.Scopes)
	return m, nil
}

// ConnectScope is the manifest form of a descriptor scope: lower case,
// underscores as dashes, suffixed with the product (PROJECT_ADMIN →
// project-admin:connect-jira), as Atlassian's converter writes it.
func ConnectScope(scope string, p Product) string {
	return strings.ReplaceAll(strings.ToLower(scope), "_", "-") + ":connect-" + string(p)
}

// lifecycleEntry is the <product>:lifecycle module: the descriptor's
// lifecycle URLs, all of them, under one module key.
func lifecycleEntry(v any) (map[string]any, error) {
	if v == nil {
		return nil, nil
	}
	lc, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New(`forge manifest: descriptor "lifecycle" is not an object`)
	}
	entry := map[string]any{"key": LifecycleKey}
	for name, url := range lc {
		s, ok := url.(string)
		switch {
		case !ok:
			return nil, fmt.Errorf("forge manifest: lifecycle %q is not a string", name)
		case name == "key":
			return nil, errors.New(`forge manifest: a lifecycle callback may not be named "key"`)
		case name == "dare-migration":
			// Data-residency migration becomes a native migration module
			// with its own (non-JWT) endpoint in Forge.
			return nil, errors.New("forge manifest: the dare-migration lifecycle needs a Forge-native module, which idbridge does not write yet")
		}
		entry[name] = s
	}
	return entry, nil
}

// moduleEntries is one descriptor module type as a list of entries: Forge has
// no singleton modules, so a single object becomes a list of one. Webhooks
// carry no key in Connect but need one in a manifest. Every key gets prefix.
func moduleEntries(typ string, v any, prefix string) ([]map[string]any, error) {
	var raw []any
	switch v := v.(type) {
	case nil:
		return nil, nil
	case []any:
		raw = v
	case map[string]any:
		raw = []any{v}
	default:
		return nil, fmt.Errorf("forge manifest: module %q is neither an object nor a list", typ)
	}
	out := make([]map[string]any, 0, len(raw))
	for i, e := range raw {
		obj, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("forge manifest: module %q entry %d is not an object", typ, i)
		}
		obj = deepCopy(obj)
		if _, has := obj["key"]; !has {
			if typ != "webhooks" {
				return nil, fmt.Errorf("forge manifest: module %q entry %d has no key", typ, i)
			}
			obj["key"] = fmt.Sprintf("webhook-%d", i+1)
		}
		if prefix != "" {
			k, ok := obj["key"].(string)
			if !ok {
				return nil, fmt.Errorf("forge manifest: module %q entry %d has a key that is not a string", typ, i)
			}
			obj["key"] = prefix + k
		}
		out = append(out, obj)
	}
	return out, nil
}

func stringList(v any, field string) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("forge manifest: descriptor %q is not a list", field)
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		s, ok := e.(string)
		if !ok || s == "" {
			return nil, fmt.Errorf("forge manifest: descriptor %q holds a non-string or empty entry", field)
		}
		out = append(out, s)
	}
	return out, nil
}

// Generate is Build followed by Encode.
func Generate(descriptor []byte, opts Options) ([]byte, error) {
	m, err := Build(descriptor, opts)
	if err != nil {
		return nil, err
	}
	return m.Encode()
}

// Encode writes the manifest as YAML, with a header saying where it comes
// from and, while app.id is the placeholder, a comment on it.
func (m *Manifest) Encode() ([]byte, error) {
	var doc yaml.Node
	if err := doc.Encode(m); err != nil {
		return nil, fmt.Errorf("forge manifest: encode: %w", err)
	}
	doc.HeadComment = "Forge manifest of idbridge as a Connect-on-Forge app, generated by\n" +
		"`idbridge manifest` from the descriptor served at /atlassian-connect.json.\n" +
		"Do not edit: change atlassian-connect.json or the configuration, and regenerate."
	if mods := lookup(&doc, "connectModules"); mods != nil {
		for i := 1; i < len(mods.Content); i += 2 {
			for _, entry := range mods.Content[i].Content {
				keyFirst(entry)
			}
		}
	}
	if m.App.ID == PlaceholderAppID {
		if id := lookup(&doc, "app", "id"); id != nil {
			id.LineComment = "placeholder: run `forge register`, then set IDBRIDGE_FORGE_APP_ID and regenerate"
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("forge manifest: encode: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("forge manifest: encode: %w", err)
	}
	return buf.Bytes(), nil
}

// keyFirst moves the "key" pair of a mapping to the front, where a reader
// of a module entry looks for it (the rest stays sorted).
func keyFirst(n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "key" {
			pair := []*yaml.Node{n.Content[i], n.Content[i+1]}
			n.Content = append(pair, slices.Delete(n.Content, i, i+2)...)
			return
		}
	}
}

// lookup follows mapping keys from n and returns the value node, or nil.
func lookup(n *yaml.Node, path ...string) *yaml.Node {
	for _, key := range path {
		if n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
				break
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}

// decodeJSON decodes with numbers kept exact: integers stay integers in the
// YAML rather than passing through float64.
func decodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// deepCopy copies a decoded JSON value, turning json.Number into int64 or
// float64 so that YAML writes numbers, not quoted strings.
func deepCopy[T any](v T) T {
	return any(copyValue(v)).(T)
}

func copyValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = copyValue(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = copyValue(e)
		}
		return out
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	default:
		return v
	}
}
