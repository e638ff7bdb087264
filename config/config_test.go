package config

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const day = 24 * time.Hour

func envFrom(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// noFiles is the readFile of tests that set no NAME_FILE variable: a read
// would mean Load looked where it should not.
func noFiles(tb testing.TB) func(string) ([]byte, error) {
	return func(path string) ([]byte, error) {
		tb.Helper()
		tb.Errorf("unexpected read of %q", path)
		return nil, fs.ErrNotExist
	}
}

func mustURL(tb testing.TB, s string) *url.URL {
	tb.Helper()
	u, err := url.Parse(s)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// urlComparer compares URLs by their text: url.URL holds a *Userinfo with
// unexported fields that go-cmp refuses to look into.
func urlComparer() cmp.Option {
	return cmp.Comparer(func(a, b *url.URL) bool {
		if a == nil || b == nil {
			return a == b
		}
		return a.String() == b.String()
	})
}

func defaultConfig(tb testing.TB) Config {
	return Config{
		Addr:             ":8080",
		BaseURL:          mustURL(tb, "http://localhost:8080"),
		AppKey:           "idbridge",
		Database:         Database{Driver: DriverSQLite, DSN: filepath.Join("data", "idbridge.db")},
		DataDir:          "./data",
		AtlassianAPIURL:  mustURL(tb, "https://api.atlassian.com"),
		AtlassianAuthURL: mustURL(tb, "https://auth.atlassian.com"),
		TrustedProductHosts: []string{
			"*.atlassian.net", "*.jira.com", "*.jira-dev.com", "*.atlassian-fex.net",
			"*.atlassian-us-gov-mod.net", "*.atlassian-stg-fedm.net",
		},
		MarketplaceURL:     mustURL(tb, "https://marketplace.atlassian.com"),
		ForgeJWKSURL:       mustURL(tb, "https://forge.cdn.prod.atlassian-dev.net/.well-known/jwks.json"),
		UninstallRetention: 30 * day,
		AuditRetention:     60 * day,
		LogLevel:           "info",
		LogFormat:          "json",
		ShutdownTimeout:    20 * time.Second,
	}
}

// problemList returns the lines of a *Problems, nil for nil, and fails the
// test for any other error type.
func problemList(tb testing.TB, err error) []string {
	tb.Helper()
	if err == nil {
		return nil
	}
	var p *Problems
	if !errors.As(err, &p) {
		tb.Fatalf("error is %T, want *Problems: %v", err, err)
	}
	if got := err.Error(); got != strings.Join(p.List, "\n") {
		tb.Errorf("Error() = %q, want the list joined by newlines", got)
	}
	return p.List
}

func TestLoadDefaults(t *testing.T) {
	got, err := Load(envFrom(nil), noFiles(t))
	if err != nil {
		t.Fatalf("Load with empty environment: %v", err)
	}
	if diff := cmp.Diff(defaultConfig(t), got, urlComparer()); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate of defaults: %v", err)
	}
}

func TestLoadVariables(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		// want edits the default Config into the expected one; only checked
		// when no problems are expected.
		want     func(c *Config)
		problems []string
	}{
		// IDBRIDGE_ADDR
		{name: "addr port only", env: map[string]string{"IDBRIDGE_ADDR": ":9090"}, want: func(c *Config) { c.Addr = ":9090" }},
		{name: "addr host and port 0", env: map[string]string{"IDBRIDGE_ADDR": "127.0.0.1:0"}, want: func(c *Config) { c.Addr = "127.0.0.1:0" }},
		{name: "addr ipv6", env: map[string]string{"IDBRIDGE_ADDR": "[::1]:8080"}, want: func(c *Config) { c.Addr = "[::1]:8080" }},
		{name: "addr whitespace trimmed", env: map[string]string{"IDBRIDGE_ADDR": " :9090\n"}, want: func(c *Config) { c.Addr = ":9090" }},
		{name: "addr without colon", env: map[string]string{"IDBRIDGE_ADDR": "9090"},
			problems: []string{`IDBRIDGE_ADDR: "9090" is not a listen address such as ":8080" or "127.0.0.1:8080"`}},
		{name: "addr port out of range", env: map[string]string{"IDBRIDGE_ADDR": ":99999"},
			problems: []string{`IDBRIDGE_ADDR: ":99999" is not a listen address such as ":8080" or "127.0.0.1:8080"`}},
		{name: "addr named port", env: map[string]string{"IDBRIDGE_ADDR": ":http"},
			problems: []string{`IDBRIDGE_ADDR: ":http" is not a listen address such as ":8080" or "127.0.0.1:8080"`}},

		// IDBRIDGE_BASE_URL
		{name: "base url https with path and trailing slash", env: map[string]string{"IDBRIDGE_BASE_URL": "https://idbridge.example.com/app/"},
			want: func(c *Config) { c.BaseURL = mustURL(t, "https://idbridge.example.com/app") }},
		{name: "base url trailing slashes only", env: map[string]string{"IDBRIDGE_BASE_URL": "https://idbridge.example.com///"},
			want: func(c *Config) { c.BaseURL = mustURL(t, "https://idbridge.example.com") }},
		{name: "base url plain http on any host", env: map[string]string{"IDBRIDGE_BASE_URL": "http://dev.example.com:8080"},
			want: func(c *Config) { c.BaseURL = mustURL(t, "http://dev.example.com:8080") }},
		{name: "base url ftp", env: map[string]string{"IDBRIDGE_BASE_URL": "ftp://example.com"},
			problems: []string{`IDBRIDGE_BASE_URL: "ftp://example.com" is not an absolute http or https URL`}},
		{name: "base url without scheme", env: map[string]string{"IDBRIDGE_BASE_URL": "idbridge.example.com"},
			problems: []string{`IDBRIDGE_BASE_URL: "idbridge.example.com" is not an absolute http or https URL`}},
		{name: "base url host:port without scheme", env: map[string]string{"IDBRIDGE_BASE_URL": "localhost:8080"},
			problems: []string{`IDBRIDGE_BASE_URL: "localhost:8080" is not an absolute http or https URL`}},
		{name: "base url query", env: map[string]string{"IDBRIDGE_BASE_URL": "https://example.com/?a=1"},
			problems: []string{`IDBRIDGE_BASE_URL: "https://example.com?a=1" must not have a query or fragment`}},
		{name: "base url fragment", env: map[string]string{"IDBRIDGE_BASE_URL": "https://example.com/#x"},
			problems: []string{`IDBRIDGE_BASE_URL: "https://example.com#x" must not have a query or fragment`}},
		{name: "base url user info", env: map[string]string{"IDBRIDGE_BASE_URL": "https://me:pw@example.com"},
			problems: []string{`IDBRIDGE_BASE_URL: "https://me:xxxxx@example.com" must not contain a user name or password`}},
		{name: "base url unparseable", env: map[string]string{"IDBRIDGE_BASE_URL": "http://[::1"},
			problems: []string{`IDBRIDGE_BASE_URL: is not a valid URL: missing ']' in host`}},

		// IDBRIDGE_APP_KEY
		{name: "app key all allowed characters", env: map[string]string{"IDBRIDGE_APP_KEY": "com.Example-app_1"},
			want: func(c *Config) { c.AppKey = "com.Example-app_1" }},
		{name: "app key 64 characters", env: map[string]string{"IDBRIDGE_APP_KEY": strings.Repeat("k", 64)},
			want: func(c *Config) { c.AppKey = strings.Repeat("k", 64) }},
		{name: "app key space", env: map[string]string{"IDBRIDGE_APP_KEY": "a b"},
			problems: []string{`IDBRIDGE_APP_KEY: "a b" has characters outside [a-zA-Z0-9-._]`}},
		{name: "app key non-ASCII", env: map[string]string{"IDBRIDGE_APP_KEY": "clé"},
			problems: []string{`IDBRIDGE_APP_KEY: "clé" has characters outside [a-zA-Z0-9-._]`}},
		{name: "app key 65 characters", env: map[string]string{"IDBRIDGE_APP_KEY": strings.Repeat("k", 65)},
			problems: []string{`IDBRIDGE_APP_KEY: "` + strings.Repeat("k", 65) + `" is 65 characters long; the limit is 64`}},

		// IDBRIDGE_DATA_DIR
		{name: "data dir moves the default database", env: map[string]string{"IDBRIDGE_DATA_DIR": "/var/lib/idbridge"},
			want: func(c *Config) {
				c.DataDir = "/var/lib/idbridge"
				c.Database.DSN = "/var/lib/idbridge/idbridge.db"
			}},

		// IDBRIDGE_ENCRYPTION_KEYS (format checked by app/secret)
		{name: "encryption keys kept raw", env: map[string]string{"IDBRIDGE_ENCRYPTION_KEYS": "k2:AAAA,k1:BBBB"},
			want: func(c *Config) { c.EncryptionKeys = "k2:AAAA,k1:BBBB" }},

		// IDBRIDGE_INSTALL_KEYS_URL
		{name: "install keys url https, slash trimmed", env: map[string]string{"IDBRIDGE_INSTALL_KEYS_URL": "https://keys.example.com/keys/"},
			want: func(c *Config) { c.InstallKeysURL = "https://keys.example.com/keys" }},
		{name: "install keys url http on loopback", env: map[string]string{"IDBRIDGE_INSTALL_KEYS_URL": "http://127.0.0.1:8081"},
			want: func(c *Config) { c.InstallKeysURL = "http://127.0.0.1:8081" }},
		{name: "install keys url http elsewhere", env: map[string]string{"IDBRIDGE_INSTALL_KEYS_URL": "http://keys.example.com"},
			problems: []string{`IDBRIDGE_INSTALL_KEYS_URL: "http://keys.example.com" must use https (plain http is accepted only for loopback hosts)`}},
		{name: "install keys url relative", env: map[string]string{"IDBRIDGE_INSTALL_KEYS_URL": "/keys"},
			problems: []string{`IDBRIDGE_INSTALL_KEYS_URL: "/keys" is not an absolute http or https URL`}},
		{name: "install keys url query", env: map[string]string{"IDBRIDGE_INSTALL_KEYS_URL": "https://keys.example.com/?kid="},
			problems: []string{`IDBRIDGE_INSTALL_KEYS_URL: "https://keys.example.com?kid=" must not have a query or fragment`}},
		{name: "install keys url unparseable", env: map[string]string{"IDBRIDGE_INSTALL_KEYS_URL": "https://keys.example.com:port"},
			problems: []string{`IDBRIDGE_INSTALL_KEYS_URL: is not a valid URL: invalid port ":port" after host`}},

		// IDBRIDGE_ATLASSIAN_API_URL, IDBRIDGE_ATLASSIAN_AUTH_URL
		{name: "atlassian urls on loopback for tests", env: map[string]string{
			"IDBRIDGE_ATLASSIAN_API_URL":  "http://localhost:9999/",
			"IDBRIDGE_ATLASSIAN_AUTH_URL": "http://[::1]:9998",
		}, want: func(c *Config) {
			c.AtlassianAPIURL = mustURL(t, "http://localhost:9999")
			c.AtlassianAuthURL = mustURL(t, "http://[::1]:9998")
		}},
		{name: "atlassian urls plain http elsewhere", env: map[string]string{
			"IDBRIDGE_ATLASSIAN_API_URL":  "http://api.example.com",
			"IDBRIDGE_ATLASSIAN_AUTH_URL": "auth.example.com",
		}, problems: []string{
			`IDBRIDGE_ATLASSIAN_API_URL: "http://api.example.com" must use https (plain http is accepted only for loopback hosts)`,
			`IDBRIDGE_ATLASSIAN_AUTH_URL: "auth.example.com" is not an absolute http or https URL`,
		}},

		// IDBRIDGE_TRUSTED_PRODUCT_HOSTS
		{name: "trusted hosts normalized", env: map[string]string{
			"IDBRIDGE_TRUSTED_PRODUCT_HOSTS": " *.Example.COM , localhost:8080,[::1]:3000, ::1 ,127.0.0.1,site.example.org.,",
		}, want: func(c *Config) {
			c.TrustedProductHosts = []string{"*.example.com", "localhost:8080", "[::1]:3000", "[::1]", "127.0.0.1", "site.example.org"}
		}},
		{name: "trusted hosts bad entries", env: map[string]string{
			"IDBRIDGE_TRUSTED_PRODUCT_HOSTS": "*.atlassian.net,foo bar,*,*.127.0.0.1,example.com:0,example.com:,https://x.example.com,a.*.example.com,*.example.com:x",
		}, problems: []string{
			`IDBRIDGE_TRUSTED_PRODUCT_HOSTS: "foo bar" is not a host or "*.domain", optionally with ":port"`,
			`IDBRIDGE_TRUSTED_PRODUCT_HOSTS: "*" is not a host or "*.domain", optionally with ":port"`,
			`IDBRIDGE_TRUSTED_PRODUCT_HOSTS: "*.127.0.0.1" is not a host or "*.domain", optionally with ":port"`,
			`IDBRIDGE_TRUSTED_PRODUCT_HOSTS: "example.com:0" is not a host or "*.domain", optionally with ":port"`,
			`IDBRIDGE_TRUSTED_PRODUCT_HOSTS: "example.com:" is not a host or "*.domain", optionally with ":port"`,
			`IDBRIDGE_TRUSTED_PRODUCT_HOSTS: "https://x.example.com" is not a host or "*.domain", optionally with ":port"`,
			`IDBRIDGE_TRUSTED_PRODUCT_HOSTS: "a.*.example.com" is not a host or "*.domain", optionally with ":port"`,
			`IDBRIDGE_TRUSTED_PRODUCT_HOSTS: "*.example.com:x" is not a host or "*.domain", optionally with ":port"`,
		}},
		{name: "trusted hosts only separators", env: map[string]string{"IDBRIDGE_TRUSTED_PRODUCT_HOSTS": " , ,"},
			problems: []string{`IDBRIDGE_TRUSTED_PRODUCT_HOSTS: is empty, so no site could install`}},

		// Marketplace
		{name: "marketplace vendor api", env: map[string]string{
			"IDBRIDGE_MARKETPLACE_URL":       "https://marketplace.example.com/",
			"IDBRIDGE_MARKETPLACE_VENDOR_ID": "1210714",
			"IDBRIDGE_MARKETPLACE_USER":      "vendor@example.com",
			"IDBRIDGE_MARKETPLACE_TOKEN":     "tok",
		}, want: func(c *Config) {
			c.MarketplaceURL = mustURL(t, "https://marketplace.example.com")
			c.MarketplaceVendorID = "1210714"
			c.MarketplaceUser = "vendor@example.com"
			c.MarketplaceToken = "tok"
		}},
		{name: "marketplace developer space api", env: map[string]string{
			"IDBRIDGE_MARKETPLACE_DEVELOPER_ID": "5f2c8a4e-0b1d-4c7e-9a3b-2d6f8e1c4b7a",
			"IDBRIDGE_MARKETPLACE_USER":         "vendor@example.com",
			"IDBRIDGE_MARKETPLACE_TOKEN":        "tok",
		}, want: func(c *Config) {
			c.MarketplaceDeveloperID = "5f2c8a4e-0b1d-4c7e-9a3b-2d6f8e1c4b7a"
			c.MarketplaceUser = "vendor@example.com"
			c.MarketplaceToken = "tok"
		}},
		{name: "marketplace vendor id alone leaves sync off", env: map[string]string{"IDBRIDGE_MARKETPLACE_VENDOR_ID": "42"},
			want: func(c *Config) { c.MarketplaceVendorID = "42" }},
		{name: "marketplace user without token", env: map[string]string{
			"IDBRIDGE_MARKETPLACE_VENDOR_ID": "42", "IDBRIDGE_MARKETPLACE_USER": "vendor@example.com",
		}, problems: []string{`IDBRIDGE_MARKETPLACE_TOKEN: is required when IDBRIDGE_MARKETPLACE_USER is set`}},
		{name: "marketplace token without user", env: map[string]string{
			"IDBRIDGE_MARKETPLACE_VENDOR_ID": "42", "IDBRIDGE_MARKETPLACE_TOKEN": "tok",
		}, problems: []string{`IDBRIDGE_MARKETPLACE_USER: is required when IDBRIDGE_MARKETPLACE_TOKEN is set`}},
		{name: "marketplace credentials without an id", env: map[string]string{
			"IDBRIDGE_MARKETPLACE_USER": "vendor@example.com", "IDBRIDGE_MARKETPLACE_TOKEN": "tok",
		}, problems: []string{`IDBRIDGE_MARKETPLACE_VENDOR_ID: is required when IDBRIDGE_MARKETPLACE_USER and IDBRIDGE_MARKETPLACE_TOKEN are set (or set IDBRIDGE_MARKETPLACE_DEVELOPER_ID for the developer-space API)`}},
		{name: "marketplace ids with path characters", env: map[string]string{
			"IDBRIDGE_MARKETPLACE_VENDOR_ID": "42/../x", "IDBRIDGE_MARKETPLACE_DEVELOPER_ID": "a?b",
		}, problems: []string{
			`IDBRIDGE_MARKETPLACE_VENDOR_ID: "42/../x" has characters outside [a-zA-Z0-9-_]`,
			`IDBRIDGE_MARKETPLACE_DEVELOPER_ID: "a?b" has characters outside [a-zA-Z0-9-_]`,
		}},
		{name: "marketplace url plain http", env: map[string]string{"IDBRIDGE_MARKETPLACE_URL": "http://marketplace.example.com"},
			problems: []string{`IDBRIDGE_MARKETPLACE_URL: "http://marketplace.example.com" must use https (plain http is accepted only for loopback hosts)`}},

		// Retention
		{name: "retention days and hours", env: map[string]string{
			"IDBRIDGE_UNINSTALL_RETENTION": "7d", "IDBRIDGE_AUDIT_RETENTION": "72h",
		}, want: func(c *Config) {
			c.UninstallRetention = 7 * day
			c.AuditRetention = 72 * time.Hour
		}},
		{name: "retention go durations", env: map[string]string{
			"IDBRIDGE_UNINSTALL_RETENTION": "90m", "IDBRIDGE_AUDIT_RETENTION": "1h30m",
		}, want: func(c *Config) {
			c.UninstallRetention = 90 * time.Minute
			c.AuditRetention = 90 * time.Minute
		}},
		{name: "retention invalid", env: map[string]string{
			"IDBRIDGE_UNINSTALL_RETENTION": "0d", "IDBRIDGE_AUDIT_RETENTION": "forever",
		}, problems: []string{
			`IDBRIDGE_UNINSTALL_RETENTION: "0d" must be greater than zero`,
			`IDBRIDGE_AUDIT_RETENTION: "forever" is not a duration; use whole days ("30d"), hours ("72h") or minutes ("90m")`,
		}},

		// Logging
		{name: "log settings case-insensitive", env: map[string]string{"IDBRIDGE_LOG_LEVEL": "DEBUG", "IDBRIDGE_LOG_FORMAT": "Text"},
			want: func(c *Config) {
				c.LogLevel = "debug"
				c.LogFormat = "text"
			}},
		{name: "log settings invalid", env: map[string]string{"IDBRIDGE_LOG_LEVEL": "verbose", "IDBRIDGE_LOG_FORMAT": "xml"},
			problems: []string{
				`IDBRIDGE_LOG_LEVEL: "verbose" is not one of debug, info, warn, error`,
				`IDBRIDGE_LOG_FORMAT: "xml" is not one of json, text`,
			}},

		// IDBRIDGE_FORGE_APP_ID
		{name: "forge app id", env: map[string]string{"IDBRIDGE_FORGE_APP_ID": "ari:cloud:ecosystem::app/8db8d2d0-3f4c-4a38-9f5e-2b8c1a7e6d90"},
			want: func(c *Config) { c.ForgeAppID = "ari:cloud:ecosystem::app/8db8d2d0-3f4c-4a38-9f5e-2b8c1a7e6d90" }},
		{name: "forge jwks url", env: map[string]string{"IDBRIDGE_FORGE_JWKS_URL": "http://127.0.0.1:9/.well-known/jwks.json"},
			want: func(c *Config) { c.ForgeJWKSURL = mustURL(t, "http://127.0.0.1:9/.well-known/jwks.json") }},
		{name: "forge jwks url plain http", env: map[string]string{"IDBRIDGE_FORGE_JWKS_URL": "http://keys.example.com/jwks.json"},
			problems: []string{`IDBRIDGE_FORGE_JWKS_URL: "http://keys.example.com/jwks.json" must use https (plain http is accepted only for loopback hosts)`}},
		{name: "forge environment", env: map[string]string{"IDBRIDGE_FORGE_ENVIRONMENT": "production"},
			want: func(c *Config) { c.ForgeEnvironment = "PRODUCTION" }},
		{name: "forge environment unknown", env: map[string]string{"IDBRIDGE_FORGE_ENVIRONMENT": "prod"},
			problems: []string{`IDBRIDGE_FORGE_ENVIRONMENT: "PROD" is not one of DEVELOPMENT, STAGING, PRODUCTION`}},
		{name: "forge app id wrong prefix", env: map[string]string{"IDBRIDGE_FORGE_APP_ID": "8db8d2d0-3f4c-4a38-9f5e-2b8c1a7e6d90"},
			problems: []string{`IDBRIDGE_FORGE_APP_ID: "8db8d2d0-3f4c-4a38-9f5e-2b8c1a7e6d90" is not a Forge app ARI such as "ari:cloud:ecosystem::app/<uuid>"`}},
		{name: "forge app id prefix only", env: map[string]string{"IDBRIDGE_FORGE_APP_ID": "ari:cloud:ecosystem::app/"},
			problems: []string{`IDBRIDGE_FORGE_APP_ID: "ari:cloud:ecosystem::app/" is not a Forge app ARI such as "ari:cloud:ecosystem::app/<uuid>"`}},
		{name: "forge app id yaml injection", env: map[string]string{"IDBRIDGE_FORGE_APP_ID": "ari:cloud:ecosystem::app/x\nmodules: {}"},
			problems: []string{`IDBRIDGE_FORGE_APP_ID: "ari:cloud:ecosystem::app/x\nmodules: {}" is not a Forge app ARI such as "ari:cloud:ecosystem::app/<uuid>"`}},

		// IDBRIDGE_PRIVACY_CONTACT
		{name: "privacy contact email", env: map[string]string{"IDBRIDGE_PRIVACY_CONTACT": "privacy@example.com"},
			want: func(c *Config) { c.PrivacyContact = "privacy@example.com" }},
		{name: "privacy contact https url", env: map[string]string{"IDBRIDGE_PRIVACY_CONTACT": "https://example.com/privacy"},
			want: func(c *Config) { c.PrivacyContact = "https://example.com/privacy" }},
		{name: "privacy contact plain http", env: map[string]string{"IDBRIDGE_PRIVACY_CONTACT": "http://example.com/privacy"},
			problems: []string{`IDBRIDGE_PRIVACY_CONTACT: "http://example.com/privacy" is neither an email address nor an https URL`}},
		{name: "privacy contact display name", env: map[string]string{"IDBRIDGE_PRIVACY_CONTACT": "Privacy <privacy@example.com>"},
			problems: []string{`IDBRIDGE_PRIVACY_CONTACT: "Privacy <privacy@example.com>" is neither an email address nor an https URL`}},
		{name: "privacy contact word", env: map[string]string{"IDBRIDGE_PRIVACY_CONTACT": "legal"},
			problems: []string{`IDBRIDGE_PRIVACY_CONTACT: "legal" is neither an email address nor an https URL`}},

		// IDBRIDGE_SHUTDOWN_TIMEOUT
		{name: "shutdown timeout", env: map[string]string{"IDBRIDGE_SHUTDOWN_TIMEOUT": "45s"},
			want: func(c *Config) { c.ShutdownTimeout = 45 * time.Second }},
		{name: "shutdown timeout not a duration", env: map[string]string{"IDBRIDGE_SHUTDOWN_TIMEOUT": "soon"},
			problems: []string{`IDBRIDGE_SHUTDOWN_TIMEOUT: "soon" is not a duration such as "20s" or "1m"`}},
		{name: "shutdown timeout zero", env: map[string]string{"IDBRIDGE_SHUTDOWN_TIMEOUT": "0s"},
			problems: []string{`IDBRIDGE_SHUTDOWN_TIMEOUT: must be greater than zero`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(envFrom(tt.env), noFiles(t))
			if diff := cmp.Diff(tt.problems, problemList(t, err)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			if tt.problems != nil {
				return
			}
			want := defaultConfig(t)
			tt.want(&want)
			if diff := cmp.Diff(want, got, urlComparer()); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadDatabase(t *testing.T) {
	const keys = "k1:AAAA"
	tests := []struct {
		name     string
		env      map[string]string
		wantURL  string
		wantDB   Database
		problems []string
	}{
		{
			name:   "unset: sqlite in the data dir",
			env:    map[string]string{"IDBRIDGE_DATA_DIR": "/srv/idb"},
			wantDB: Database{Driver: DriverSQLite, DSN: "/srv/idb/idbridge.db"},
		},
		{
			name:    "postgres",
			env:     map[string]string{"IDBRIDGE_DATABASE_URL": "postgres://app:hunter2@db:5432/idb?sslmode=require", "IDBRIDGE_ENCRYPTION_KEYS": keys},
			wantURL: "postgres://app:hunter2@db:5432/idb?sslmode=require",
			wantDB:  Database{Driver: DriverPostgres, DSN: "postgres://app:hunter2@db:5432/idb?sslmode=require"},
		},
		{
			name:    "postgresql scheme",
			env:     map[string]string{"IDBRIDGE_DATABASE_URL": "postgresql://db/idb", "IDBRIDGE_ENCRYPTION_KEYS": keys},
			wantURL: "postgresql://db/idb",
			wantDB:  Database{Driver: DriverPostgres, DSN: "postgresql://db/idb"},
		},
		{
			name:    "upper-case scheme is lowered for pgx",
			env:     map[string]string{"IDBRIDGE_DATABASE_URL": "POSTGRES://db/idb", "IDBRIDGE_ENCRYPTION_KEYS": keys},
			wantURL: "POSTGRES://db/idb",
			wantDB:  Database{Driver: DriverPostgres, DSN: "postgres://db/idb"},
		},
		{
			name:    "DATABASE_URL fallback",
			env:     map[string]string{"DATABASE_URL": "postgres://fallback/idb", "IDBRIDGE_ENCRYPTION_KEYS": keys},
			wantURL: "postgres://fallback/idb",
			wantDB:  Database{Driver: DriverPostgres, DSN: "postgres://fallback/idb"},
		},
		{
			name: "IDBRIDGE_DATABASE_URL wins over DATABASE_URL",
			env: map[string]string{
				"IDBRIDGE_DATABASE_URL": "sqlite:/srv/own.db",
				"DATABASE_URL":          "mysql://platform/db",
			},
			wantURL: "sqlite:/srv/own.db",
			wantDB:  Database{Driver: DriverSQLite, DSN: "/srv/own.db"},
		},
		{
			name:    "sqlite relative path",
			env:     map[string]string{"IDBRIDGE_DATABASE_URL": "sqlite:var/idb.db"},
			wantURL: "sqlite:var/idb.db",
			wantDB:  Database{Driver: DriverSQLite, DSN: "var/idb.db"},
		},
		{
			name:     "sqlite without path",
			env:      map[string]string{"IDBRIDGE_DATABASE_URL": "sqlite:"},
			wantURL:  "sqlite:",
			problems: []string{`IDBRIDGE_DATABASE_URL: "sqlite:" needs a file path, as in sqlite:/var/lib/idbridge/idbridge.db`},
		},
		{
			name:     "sqlite double slash is ambiguous",
			env:      map[string]string{"IDBRIDGE_DATABASE_URL": "sqlite://data/idb.db"},
			wantURL:  "sqlite://data/idb.db",
			problems: []string{`IDBRIDGE_DATABASE_URL: write sqlite:PATH (for example sqlite:/var/lib/idbridge/idbridge.db or sqlite:data/idbridge.db), not sqlite://`},
		},
		{
			name:     "unsupported scheme",
			env:      map[string]string{"IDBRIDGE_DATABASE_URL": "mysql://app:hunter2@db/idb"},
			wantURL:  "mysql://app:hunter2@db/idb",
			problems: []string{`IDBRIDGE_DATABASE_URL: scheme "mysql" is not supported; use postgres:// or sqlite:PATH`},
		},
		{
			name:     "unsupported scheme from DATABASE_URL names that variable",
			env:      map[string]string{"DATABASE_URL": "mysql://app:hunter2@db/idb"},
			wantURL:  "mysql://app:hunter2@db/idb",
			problems: []string{`DATABASE_URL: scheme "mysql" is not supported; use postgres:// or sqlite:PATH`},
		},
		{
			name:     "unknown scheme is not quoted",
			env:      map[string]string{"IDBRIDGE_DATABASE_URL": "hunter2://db"},
			wantURL:  "hunter2://db",
			problems: []string{`IDBRIDGE_DATABASE_URL: has an unsupported scheme; use postgres:// or sqlite:PATH (value not shown: it may hold a password)`},
		},
		{
			name:     "key=value DSN",
			env:      map[string]string{"IDBRIDGE_DATABASE_URL": "host=db password=hunter2"},
			wantURL:  "host=db password=hunter2",
			problems: []string{`IDBRIDGE_DATABASE_URL: is neither a postgres:// URL nor sqlite:PATH (value not shown: it may hold a password)`},
		},
		{
			name:     "password with an unencoded slash",
			env:      map[string]string{"IDBRIDGE_DATABASE_URL": "postgres://app:hun/ter2@db/idb", "IDBRIDGE_ENCRYPTION_KEYS": keys},
			wantURL:  "postgres://app:hun/ter2@db/idb",
			problems: []string{`IDBRIDGE_DATABASE_URL: is not a valid postgres:// URL; percent-encode special characters in the user name and password (value not shown: it may hold a password)`},
		},
		{
			name:     "postgres without encryption keys",
			env:      map[string]string{"IDBRIDGE_DATABASE_URL": "postgres://db/idb"},
			wantURL:  "postgres://db/idb",
			wantDB:   Database{Driver: DriverPostgres, DSN: "postgres://db/idb"},
			problems: []string{`IDBRIDGE_ENCRYPTION_KEYS: is required with PostgreSQL: a key generated on one replica's disk would leave secrets unreadable on the others`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(envFrom(tt.env), noFiles(t))
			if diff := cmp.Diff(tt.problems, problemList(t, err)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			if got.DatabaseURL != tt.wantURL {
				t.Errorf("DatabaseURL = %q, want %q", got.DatabaseURL, tt.wantURL)
			}
			if diff := cmp.Diff(tt.wantDB, got.Database); diff != "" {
				t.Errorf("Database (-want +got):\n%s", diff)
			}
		})
	}
}

func writeFile(tb testing.TB, dir, name, content string) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

func TestLoadSecretFiles(t *testing.T) {
	dir := t.TempDir()
	db := writeFile(t, dir, "db", "postgres://app:hunter2@db/idb\n")
	keys := writeFile(t, dir, "keys", "k1:AAAA \r\n\n")
	user := writeFile(t, dir, "user", "vendor@example.com\n")
	token := writeFile(t, dir, "token", "tok-s3cret\t\n")
	fallback := writeFile(t, dir, "fallback", "postgres://fallback/idb\n")
	empty := writeFile(t, dir, "empty", "\n")
	missing := filepath.Join(dir, "missing")

	tests := []struct {
		name     string
		env      map[string]string
		readFile func(string) ([]byte, error)
		want     func(c *Config)
		problems []string
	}{
		{
			name: "every secret from a file, trailing whitespace trimmed",
			env: map[string]string{
				"IDBRIDGE_DATABASE_URL_FILE":      db,
				"IDBRIDGE_ENCRYPTION_KEYS_FILE":   keys,
				"IDBRIDGE_MARKETPLACE_USER_FILE":  user,
				"IDBRIDGE_MARKETPLACE_TOKEN_FILE": token,
				"IDBRIDGE_MARKETPLACE_VENDOR_ID":  "42",
			},
			want: func(c *Config) {
				c.DatabaseURL = "postgres://app:hunter2@db/idb"
				c.Database = Database{Driver: DriverPostgres, DSN: "postgres://app:hunter2@db/idb"}
				c.EncryptionKeys = "k1:AAAA"
				c.MarketplaceUser = "vendor@example.com"
				c.MarketplaceToken = "tok-s3cret"
				c.MarketplaceVendorID = "42"
			},
		},
		{
			name: "DATABASE_URL_FILE fallback",
			env:  map[string]string{"DATABASE_URL_FILE": fallback, "IDBRIDGE_ENCRYPTION_KEYS": "k1:AAAA"},
			want: func(c *Config) {
				c.DatabaseURL = "postgres://fallback/idb"
				c.Database = Database{Driver: DriverPostgres, DSN: "postgres://fallback/idb"}
				c.EncryptionKeys = "k1:AAAA"
			},
		},
		{
			name: "IDBRIDGE_DATABASE_URL_FILE wins over DATABASE_URL",
			env: map[string]string{
				"IDBRIDGE_DATABASE_URL_FILE": db, "DATABASE_URL": "postgres://fallback/idb",
				"IDBRIDGE_ENCRYPTION_KEYS": "k1:AAAA",
			},
			want: func(c *Config) {
				c.DatabaseURL = "postgres://app:hunter2@db/idb"
				c.Database = Database{Driver: DriverPostgres, DSN: "postgres://app:hunter2@db/idb"}
				c.EncryptionKeys = "k1:AAAA"
			},
		},
		{
			name: "NAME and NAME_FILE both set",
			env: map[string]string{
				"IDBRIDGE_DATABASE_URL": "postgres://db/idb", "IDBRIDGE_DATABASE_URL_FILE": db,
				"DATABASE_URL": "postgres://app:hunter2@x/y", "DATABASE_URL_FILE": fallback,
				"IDBRIDGE_ENCRYPTION_KEYS": "k1:AAAA", "IDBRIDGE_ENCRYPTION_KEYS_FILE": keys,
				"IDBRIDGE_MARKETPLACE_USER": "vendor@example.com", "IDBRIDGE_MARKETPLACE_USER_FILE": user,
				"IDBRIDGE_MARKETPLACE_TOKEN": "tok-s3cret", "IDBRIDGE_MARKETPLACE_TOKEN_FILE": token,
				"IDBRIDGE_MARKETPLACE_VENDOR_ID": "42",
			},
			problems: []string{
				"IDBRIDGE_DATABASE_URL: both IDBRIDGE_DATABASE_URL and IDBRIDGE_DATABASE_URL_FILE are set; set only one",
				"IDBRIDGE_ENCRYPTION_KEYS: both IDBRIDGE_ENCRYPTION_KEYS and IDBRIDGE_ENCRYPTION_KEYS_FILE are set; set only one",
				"IDBRIDGE_MARKETPLACE_USER: both IDBRIDGE_MARKETPLACE_USER and IDBRIDGE_MARKETPLACE_USER_FILE are set; set only one",
				"IDBRIDGE_MARKETPLACE_TOKEN: both IDBRIDGE_MARKETPLACE_TOKEN and IDBRIDGE_MARKETPLACE_TOKEN_FILE are set; set only one",
			},
		},
		{
			name: "DATABASE_URL and DATABASE_URL_FILE both set",
			env:  map[string]string{"DATABASE_URL": "postgres://db/idb", "DATABASE_URL_FILE": fallback},
			problems: []string{
				"DATABASE_URL: both DATABASE_URL and DATABASE_URL_FILE are set; set only one",
			},
		},
		{
			name: "missing file",
			env:  map[string]string{"IDBRIDGE_MARKETPLACE_TOKEN_FILE": missing, "IDBRIDGE_MARKETPLACE_USER": "vendor@example.com", "IDBRIDGE_MARKETPLACE_VENDOR_ID": "42"},
			problems: []string{
				fmt.Sprintf("IDBRIDGE_MARKETPLACE_TOKEN_FILE: cannot read %q: no such file or directory", missing),
			},
		},
		{
			name: "empty file",
			env:  map[string]string{"IDBRIDGE_ENCRYPTION_KEYS_FILE": empty},
			problems: []string{
				fmt.Sprintf("IDBRIDGE_ENCRYPTION_KEYS_FILE: file %q is empty", empty),
			},
		},
		{
			name: "unreadable files, no fallback to DATABASE_URL",
			env: map[string]string{
				"IDBRIDGE_DATABASE_URL_FILE":     "/run/secrets/db",
				"DATABASE_URL":                   "postgres://fallback/idb",
				"IDBRIDGE_MARKETPLACE_USER_FILE": "/run/secrets/user",
			},
			readFile: func(p string) ([]byte, error) {
				if p == "/run/secrets/db" {
					return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrPermission}
				}
				return nil, errors.New("vault sealed")
			},
			problems: []string{
				`IDBRIDGE_DATABASE_URL_FILE: cannot read "/run/secrets/db": permission denied`,
				`IDBRIDGE_MARKETPLACE_USER_FILE: cannot read "/run/secrets/user": vault sealed`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			readFile := tt.readFile
			if readFile == nil {
				readFile = os.ReadFile
			}
			got, err := Load(envFrom(tt.env), readFile)
			if diff := cmp.Diff(tt.problems, problemList(t, err)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			if tt.problems != nil {
				return
			}
			want := defaultConfig(t)
			tt.want(&want)
			if diff := cmp.Diff(want, got, urlComparer()); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	env := map[string]string{
		"IDBRIDGE_ADDR":                "nope",
		"IDBRIDGE_BASE_URL":            "ftp://example.com",
		"IDBRIDGE_APP_KEY":             "a b",
		"IDBRIDGE_DATABASE_URL":        "postgres://app:hunter2@db/idb",
		"IDBRIDGE_MARKETPLACE_TOKEN":   "tok-s3cret",
		"IDBRIDGE_AUDIT_RETENTION":     "-1d",
		"IDBRIDGE_LOG_LEVEL":           "loud",
		"IDBRIDGE_SHUTDOWN_TIMEOUT":    "soon",
		"IDBRIDGE_ATLASSIAN_API_URL":   "http://[::1",
		"IDBRIDGE_MARKETPLACE_USER":    "",
		"IDBRIDGE_UNINSTALL_RETENTION": "30d",
	}
	_, err := Load(envFrom(env), noFiles(t))
	want := strings.Join([]string{
		// Problems found while reading come first ...
		`IDBRIDGE_ATLASSIAN_API_URL: is not a valid URL: missing ']' in host`,
		`IDBRIDGE_AUDIT_RETENTION: "-1d" must be greater than zero`,
		`IDBRIDGE_SHUTDOWN_TIMEOUT: "soon" is not a duration such as "20s" or "1m"`,
		// ... then those of Validate, in the order of the Config fields.
		`IDBRIDGE_ADDR: "nope" is not a listen address such as ":8080" or "127.0.0.1:8080"`,
		`IDBRIDGE_BASE_URL: "ftp://example.com" is not an absolute http or https URL`,
		`IDBRIDGE_APP_KEY: "a b" has characters outside [a-zA-Z0-9-._]`,
		`IDBRIDGE_ENCRYPTION_KEYS: is required with PostgreSQL: a key generated on one replica's disk would leave secrets unreadable on the others`,
		`IDBRIDGE_MARKETPLACE_USER: is required when IDBRIDGE_MARKETPLACE_TOKEN is set`,
		`IDBRIDGE_MARKETPLACE_VENDOR_ID: is required when IDBRIDGE_MARKETPLACE_USER and IDBRIDGE_MARKETPLACE_TOKEN are set (or set IDBRIDGE_MARKETPLACE_DEVELOPER_ID for the developer-space API)`,
		`IDBRIDGE_LOG_LEVEL: "loud" is not one of debug, info, warn, error`,
	}, "\n")
	if err == nil {
		t.Fatal("Load succeeded, want problems")
	}
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("Error() (-want +got):\n%s", diff)
	}
}

// TestNoSecretInOutput feeds secrets through every path that reports or
// displays configuration and checks that none of them comes back out.
func TestNoSecretInOutput(t *testing.T) {
	secrets := []string{"hunter2", "hun/ter2", "tok-s3cret", "S2V5TWF0ZXJpYWw", "vendor@example.com"}
	dir := t.TempDir()
	tokenFile := writeFile(t, dir, "token", "tok-s3cret\n")
	envs := map[string]map[string]string{
		"valid postgres and marketplace": {
			"IDBRIDGE_DATABASE_URL":          "postgres://app:hunter2@db/idb?sslmode=require&password=hunter2",
			"IDBRIDGE_ENCRYPTION_KEYS":       "k1:S2V5TWF0ZXJpYWw",
			"IDBRIDGE_MARKETPLACE_USER":      "vendor@example.com",
			"IDBRIDGE_MARKETPLACE_TOKEN":     "tok-s3cret",
			"IDBRIDGE_MARKETPLACE_VENDOR_ID": "42",
		},
		"unsupported scheme": {"IDBRIDGE_DATABASE_URL": "mysql://app:hunter2@db/idb"},
		"unparseable url":    {"DATABASE_URL": "postgres://app:hun/ter2@db/idb"},
		"key=value dsn":      {"IDBRIDGE_DATABASE_URL": "host=db password=hunter2"},
		"bad sqlite":         {"IDBRIDGE_DATABASE_URL": "sqlite://hunter2"},
		"scheme-like password": {
			"IDBRIDGE_DATABASE_URL": "hunter2://x",
		},
		"half marketplace credentials": {
			"IDBRIDGE_MARKETPLACE_TOKEN": "tok-s3cret",
			"IDBRIDGE_ENCRYPTION_KEYS":   "k1:S2V5TWF0ZXJpYWw",
		},
		"user without token": {"IDBRIDGE_MARKETPLACE_USER": "vendor@example.com"},
		"both forms set": {
			"IDBRIDGE_MARKETPLACE_TOKEN":      "tok-s3cret",
			"IDBRIDGE_MARKETPLACE_TOKEN_FILE": tokenFile,
			"IDBRIDGE_DATABASE_URL":           "postgres://app:hunter2@db/idb",
			"IDBRIDGE_DATABASE_URL_FILE":      tokenFile,
		},
		"postgres without keys": {"IDBRIDGE_DATABASE_URL": "postgres://app:hunter2@db/idb"},
	}
	for name, env := range envs {
		t.Run(name, func(t *testing.T) {
			cfg, err := Load(envFrom(env), os.ReadFile)
			var out strings.Builder
			if err != nil {
				out.WriteString(err.Error() + "\n")
			}
			for k, v := range cfg.Redacted() {
				out.WriteString(k + "=" + v + "\n")
			}
			fmt.Fprintf(&out, "%v\n%+v\n%#v\n%s\n", cfg, cfg, cfg, cfg)
			slog.New(slog.NewTextHandler(&out, nil)).Info("config", "config", cfg)
			for _, s := range secrets {
				if strings.Contains(out.String(), s) {
					t.Errorf("output contains secret %q:\n%s", s, out.String())
				}
			}
		})
	}
}

func TestRedacted(t *testing.T) {
	cfg, err := Load(envFrom(map[string]string{
		"IDBRIDGE_DATABASE_URL":          "postgres://app:hunter2@db:5432/idb?sslmode=require&password=hunter2",
		"IDBRIDGE_ENCRYPTION_KEYS":       "k1:AAAA",
		"IDBRIDGE_MARKETPLACE_USER":      "vendor@example.com",
		"IDBRIDGE_MARKETPLACE_TOKEN":     "tok",
		"IDBRIDGE_MARKETPLACE_VENDOR_ID": "42",
		"IDBRIDGE_AUDIT_RETENTION":       "36h",
		"IDBRIDGE_PRIVACY_CONTACT":       "privacy@example.com",
	}), noFiles(t))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"IDBRIDGE_ADDR":                     ":8080",
		"IDBRIDGE_BASE_URL":                 "http://localhost:8080",
		"IDBRIDGE_APP_KEY":                  "idbridge",
		"IDBRIDGE_DATABASE_URL":             "postgres://app@db:5432/idb?sslmode=require",
		"IDBRIDGE_DATA_DIR":                 "./data",
		"IDBRIDGE_ENCRYPTION_KEYS":          "(set)",
		"IDBRIDGE_INSTALL_KEYS_URL":         "(unset)",
		"IDBRIDGE_ATLASSIAN_API_URL":        "https://api.atlassian.com",
		"IDBRIDGE_ATLASSIAN_AUTH_URL":       "https://auth.atlassian.com",
		"IDBRIDGE_TRUSTED_PRODUCT_HOSTS":    "*.atlassian.net,*.jira.com,*.jira-dev.com,*.atlassian-fex.net,*.atlassian-us-gov-mod.net,*.atlassian-stg-fedm.net",
		"IDBRIDGE_MARKETPLACE_URL":          "https://marketplace.atlassian.com",
		"IDBRIDGE_MARKETPLACE_VENDOR_ID":    "42",
		"IDBRIDGE_MARKETPLACE_USER":         "(set)",
		"IDBRIDGE_MARKETPLACE_TOKEN":        "(set)",
		"IDBRIDGE_MARKETPLACE_DEVELOPER_ID": "(unset)",
		"IDBRIDGE_UNINSTALL_RETENTION":      "30d",
		"IDBRIDGE_AUDIT_RETENTION":          "36h0m0s",
		"IDBRIDGE_LOG_LEVEL":                "info",
		"IDBRIDGE_LOG_FORMAT":               "json",
		"IDBRIDGE_FORGE_APP_ID":             "(unset)",
		"IDBRIDGE_FORGE_JWKS_URL":           "https://forge.cdn.prod.atlassian-dev.net/.well-known/jwks.json",
		"IDBRIDGE_FORGE_ENVIRONMENT":        "(unset)",
		"IDBRIDGE_PRIVACY_CONTACT":          "privacy@example.com",
		"IDBRIDGE_SHUTDOWN_TIMEOUT":         "20s",
	}
	if diff := cmp.Diff(want, cfg.Redacted()); diff != "" {
		t.Errorf("Redacted (-want +got):\n%s", diff)
	}

	defaults := defaultConfig(t).Redacted()
	for k, v := range map[string]string{
		"IDBRIDGE_DATABASE_URL":      "(unset)",
		"IDBRIDGE_ENCRYPTION_KEYS":   "(unset)",
		"IDBRIDGE_MARKETPLACE_USER":  "(unset)",
		"IDBRIDGE_MARKETPLACE_TOKEN": "(unset)",
	} {
		if defaults[k] != v {
			t.Errorf("defaults: Redacted()[%q] = %q, want %q", k, defaults[k], v)
		}
	}
	sqlite := defaultConfig(t)
	sqlite.DatabaseURL = "sqlite:/srv/idb.db"
	if got := sqlite.Redacted()["IDBRIDGE_DATABASE_URL"]; got != "sqlite:/srv/idb.db" {
		t.Errorf("sqlite: Redacted()[IDBRIDGE_DATABASE_URL] = %q, want the path", got)
	}
	bad := defaultConfig(t)
	bad.DatabaseURL = "host=db password=hunter2"
	if got := bad.Redacted()["IDBRIDGE_DATABASE_URL"]; got != "(set)" {
		t.Errorf("unparseable: Redacted()[IDBRIDGE_DATABASE_URL] = %q, want (set)", got)
	}
}

func TestValidate(t *testing.T) {
	if err := defaultConfig(t).Validate(); err != nil {
		t.Errorf("Validate(defaults) = %v, want nil", err)
	}

	var zero Config
	want := []string{
		`IDBRIDGE_ADDR: "" is not a listen address such as ":8080" or "127.0.0.1:8080"`,
		`IDBRIDGE_BASE_URL: is required`,
		`IDBRIDGE_APP_KEY: is required`,
		`IDBRIDGE_DATABASE_URL: no database driver; use postgres://… or sqlite:PATH, or leave it unset for SQLite in the data directory`,
		`IDBRIDGE_DATA_DIR: is required`,
		`IDBRIDGE_ATLASSIAN_API_URL: is required`,
		`IDBRIDGE_ATLASSIAN_AUTH_URL: is required`,
		`IDBRIDGE_TRUSTED_PRODUCT_HOSTS: is empty, so no site could install`,
		`IDBRIDGE_MARKETPLACE_URL: is required`,
		`IDBRIDGE_UNINSTALL_RETENTION: must be greater than zero`,
		`IDBRIDGE_AUDIT_RETENTION: must be greater than zero`,
		`IDBRIDGE_LOG_LEVEL: "" is not one of debug, info, warn, error`,
		`IDBRIDGE_LOG_FORMAT: "" is not one of json, text`,
		`IDBRIDGE_SHUTDOWN_TIMEOUT: must be greater than zero`,
	}
	if diff := cmp.Diff(want, problemList(t, zero.Validate())); diff != "" {
		t.Errorf("Validate(zero) (-want +got):\n%s", diff)
	}

	hand := defaultConfig(t)
	hand.Database = Database{Driver: DriverPostgres}
	hand.TrustedProductHosts = []string{"*.atlassian.net", "not a host"}
	want = []string{
		`IDBRIDGE_DATABASE_URL: no database location`,
		`IDBRIDGE_ENCRYPTION_KEYS: is required with PostgreSQL: a key generated on one replica's disk would leave secrets unreadable on the others`,
		`IDBRIDGE_TRUSTED_PRODUCT_HOSTS: "not a host" is not a host or "*.domain", optionally with ":port"`,
	}
	if diff := cmp.Diff(want, problemList(t, hand.Validate())); diff != "" {
		t.Errorf("Validate(hand-built) (-want +got):\n%s", diff)
	}
}

func TestProblemsError(t *testing.T) {
	p := &Problems{List: []string{"A: one", "B: two"}}
	if got, want := p.Error(), "A: one\nB: two"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
