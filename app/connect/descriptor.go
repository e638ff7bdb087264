package connect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Placeholders of the descriptor template; they stand inside JSON strings.
const (
	placeholderKey     = "{{key}}"
	placeholderBaseURL = "{{baseUrl}}"
	maxAppKeyLen       = 64
)

// RenderDescriptor fills the descriptor template with the app key and base
// URL. The values are JSON-escaped, so the placeholders must stand inside
// JSON strings. The app key must match ^[a-zA-Z0-9-._]+$ (at most 64
// characters) and the base URL be an absolute http(s) URL (a trailing slash
// is dropped, since descriptor URLs start with one). The result must be valid
// JSON with no placeholder left, and its top-level "key" and "baseUrl" must
// be the values given.
func RenderDescriptor(template []byte, appKey, baseURL string) ([]byte, error) {
	if !validAppKey(appKey) {
		return nil, fmt.Errorf("render descriptor: app key %q must match ^[a-zA-Z0-9-._]+$ and have at most %d characters", appKey, maxAppKeyLen)
	}
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("render descriptor: base URL %q is not an absolute http(s) URL", baseURL)
	}
	baseURL = strings.TrimSuffix(baseURL, "/")

	out := bytes.ReplaceAll(template, []byte(placeholderKey), jsonStringBody(appKey))
	out = bytes.ReplaceAll(out, []byte(placeholderBaseURL), jsonStringBody(baseURL))
	if i := bytes.Index(out, []byte("{{")); i >= 0 {
		if j := bytes.Index(out[i:], []byte("}}")); j >= 0 && j < 64 {
			return nil, fmt.Errorf("render descriptor: unknown placeholder %s", out[i:i+j+2])
		}
	}
	var top struct {
		Key     *string `json:"key"`
		BaseURL *string `json:"baseUrl"`
	}
	if err := json.Unmarshal(out, &top); err != nil {
		return nil, fmt.Errorf("render descriptor: not valid JSON: %w", err)
	}
	if top.Key == nil || *top.Key != appKey {
		return nil, errors.New(`render descriptor: the template's "key" must be "{{key}}"`)
	}
	if top.BaseURL == nil || *top.BaseURL != baseURL {
		return nil, errors.New(`render descriptor: the template's "baseUrl" must be "{{baseUrl}}"`)
	}
	return out, nil
}

// jsonStringBody is s encoded as a JSON string, without the quotes.
func jsonStringBody(s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return b[1 : len(b)-1]
}

func validAppKey(k string) bool {
	if k == "" || len(k) > maxAppKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// DescriptorURLs returns, sorted and without duplicates, every relative URL
// that Atlassian will call or frame on the app: the lifecycle callbacks and
// every "url" field anywhere in the descriptor (modules, webhooks, icons)
// that starts with a single "/". The URLs are as written, so they may carry a
// query with context parameters such as "{project.key}".
func DescriptorURLs(descriptor []byte) ([]string, error) {
	var doc any
	if err := json.Unmarshal(descriptor, &doc); err != nil {
		return nil, fmt.Errorf("descriptor URLs: %w", err)
	}
	top, ok := doc.(map[string]any)
	if !ok {
		return nil, errors.New("descriptor URLs: descriptor is not a JSON object")
	}
	var urls []string
	if lc, ok := top["lifecycle"].(map[string]any); ok {
		for name, v := range lc {
			s, ok := v.(string)
			if !ok || !isRelativeURL(s) {
				return nil, fmt.Errorf("descriptor URLs: lifecycle %q is not a relative URL", name)
			}
			urls = append(urls, s)
		}
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, child := range v {
				if s, ok := child.(string); ok && k == "url" && isRelativeURL(s) {
					urls = append(urls, s)
					continue
				}
				walk(child)
			}
		case []any:
			for _, child := range v {
				walk(child)
			}
		}
	}
	for k, v := range top {
		if k != "lifecycle" {
			walk(v)
		}
	}
	slices.Sort(urls)
	return slices.Compact(urls), nil
}

func isRelativeURL(s string) bool {
	return strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "//")
}
