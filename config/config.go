// Package config owns idbridge's runtime configuration: the environment
// variables of SPEC section 1, read once at start into a typed Config.
//
// Load reports every problem at once, one line per variable, so an operator
// fixes a deployment in one round trip rather than one restart per mistake.
// Secrets (the database URL, encryption keys, Marketplace credentials) can
// come from NAME_FILE instead of NAME, as container secret mounts expect, and
// are never echoed in problem messages or in Redacted.
//
// The package keeps no global state and never reads the process environment
// itself: callers pass getenv and readFile, which lets tests use a map.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// Database drivers, matching the names app/store accepts.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Defaults of SPEC section 1. They are constants rather than a default Config
// value so that nothing shared can be mutated.
const (
	defaultAddr                = ":8080"
	defaultBaseURL             = "http://localhost:8080"
	defaultAppKey              = "idbridge"
	defaultDataDir             = "./data"
	defaultAtlassianAPIURL     = "https://api.atlassian.com"
	defaultForgeJWKSURL        = "https://forge.cdn.prod.atlassian-dev.net/.well-known/jwks.json"
	defaultAtlassianAuthURL    = "https://auth.atlassian.com"
	defaultTrustedProductHosts = "*.atlassian.net,*.jira.com,*.jira-dev.com,*.atlassian-fex.net,*.atlassian-us-gov-mod.net,*.atlassian-stg-fedm.net"
	defaultMarketplaceURL      = "https://marketplace.atlassian.com"
	defaultUninstallRetention  = "30d"
	defaultAuditRetention      = "60d"
	defaultLogLevel            = "info"
	defaultLogFormat           = "json"
	sqliteFileName             = "idbridge.db"
)

// DefaultShutdownTimeout is ShutdownTimeout unless configured; a Config
// without one (built by hand) shuts down within it too.
const DefaultShutdownTimeout = 20 * time.Second

// Config is idbridge's whole configuration. Build it with Load; a Config
// assembled by hand (in tests) should pass Validate before use.
type Config struct {
	// Addr is the listen address (IDBRIDGE_ADDR).
	Addr string
	// BaseURL is the public base URL (IDBRIDGE_BASE_URL), without a trailing
	// slash so that joining a route never yields "//" and the descriptor's
	// baseUrl equals the aud of signed installs exactly.
	BaseURL *url.URL
	// AppKey is the Connect app key (IDBRIDGE_APP_KEY).
	AppKey string
	// DatabaseURL is the raw IDBRIDGE_DATABASE_URL, else DATABASE_URL. It may
	// hold a password: never log it (Redacted shows it without one).
	DatabaseURL string
	// Database is derived from DatabaseURL and DataDir.
	Database Database
	// DataDir holds the embedded SQLite database and the generated dev key
	// (IDBRIDGE_DATA_DIR).
	DataDir string
	// EncryptionKeys is the raw key-ring spec "kid:base64[,...]"
	// (IDBRIDGE_ENCRYPTION_KEYS); app/secret parses it. A secret.
	EncryptionKeys string
	// InstallKeysURL overrides the install-key server chosen from the site's
	// host (IDBRIDGE_INSTALL_KEYS_URL); empty means use the built-in table.
	// A trailing slash is trimmed so callers can append "/" + kid.
	InstallKeysURL string
	// AtlassianAPIURL is IDBRIDGE_ATLASSIAN_API_URL, without trailing slash.
	AtlassianAPIURL *url.URL
	// AtlassianAuthURL is IDBRIDGE_ATLASSIAN_AUTH_URL, without trailing slash.
	AtlassianAuthURL *url.URL
	// TrustedProductHosts are the normalized, lower-case entries of
	// IDBRIDGE_TRUSTED_PRODUCT_HOSTS: "*.domain" or an exact host, each
	// optionally with ":port". Use IsTrustedHost rather than matching by hand.
	TrustedProductHosts []string
	// MarketplaceURL is IDBRIDGE_MARKETPLACE_URL, without trailing slash.
	MarketplaceURL *url.URL
	// MarketplaceVendorID is IDBRIDGE_MARKETPLACE_VENDOR_ID.
	MarketplaceVendorID string
	// MarketplaceUser is IDBRIDGE_MARKETPLACE_USER, the vendor account's
	// email; treated as a secret because it is personal data.
	MarketplaceUser string
	// MarketplaceToken is IDBRIDGE_MARKETPLACE_TOKEN, an API token. A secret.
	MarketplaceToken string
	// MarketplaceDeveloperID is IDBRIDGE_MARKETPLACE_DEVELOPER_ID, the
	// developer-space ID of the newer Marketplace reporting API; when set,
	// that API is used and the vendor ID is not needed.
	MarketplaceDeveloperID string
	// UninstallRetention is how long an uninstalled site's data is kept
	// (IDBRIDGE_UNINSTALL_RETENTION).
	UninstallRetention time.Duration
	// AuditRetention is how long audit events are kept
	// (IDBRIDGE_AUDIT_RETENTION).
	AuditRetention time.Duration
	// LogLevel is debug, info, warn or error (IDBRIDGE_LOG_LEVEL).
	LogLevel string
	// LogFormat is json or text (IDBRIDGE_LOG_FORMAT).
	LogFormat string
	// ForgeAppID is the Forge app ARI written into manifest.yml
	// (IDBRIDGE_FORGE_APP_ID); empty until the app is registered with Forge.
	ForgeAppID string
	// ForgeJWKSURL is where the keys of Forge invocation tokens are
	// published (IDBRIDGE_FORGE_JWKS_URL).
	ForgeJWKSURL *url.URL
	// ForgeEnvironment is the Forge environment whose invocations this
	// deployment accepts (IDBRIDGE_FORGE_ENVIRONMENT: DEVELOPMENT,
	// STAGING or PRODUCTION, upper case); empty accepts every environment.
	ForgeEnvironment string
	// PrivacyContact is an email address or https URL shown on /privacy
	// (IDBRIDGE_PRIVACY_CONTACT).
	PrivacyContact string
	// ShutdownTimeout bounds graceful shutdown (IDBRIDGE_SHUTDOWN_TIMEOUT,
	// default 20s, a Go duration). SPEC does not name it; it exists because
	// orchestrators kill a pod some time after SIGTERM (Kubernetes: 30s), and
	// draining must finish before that.
	ShutdownTimeout time.Duration
}

// Database says which store to open; it is derived so that app/store never
// has to interpret the user-facing URL forms itself.
type Database struct {
	// Driver is DriverSQLite or DriverPostgres.
	Driver string
	// DSN is the PostgreSQL URL (a secret: it may hold a password) or the
	// SQLite file path.
	DSN string
}

// problem is one line of a Problems report. key names the variable the
// problem is about, so that Load can drop a Validate problem about a
// variable it has already reported (a URL that did not parse is nil, and
// "is required" on top of "is not a valid URL" would only confuse).
type problem struct {
	key  string
	text string
}

// loader reads variables and collects problems instead of stopping at the
// first one.
type loader struct {
	getenv   func(string) string
	readFile func(string) ([]byte, error)
	problems []problem
}

// failAs records a problem about variable key, shown under the name the
// value actually came from (for example DATABASE_URL_FILE).
func (l *loader) failAs(key, shown, format string, args ...any) {
	l.problems = append(l.problems, problem{key: key, text: shown + ": " + fmt.Sprintf(format, args...)})
}

func (l *loader) fail(name, format string, args ...any) {
	l.failAs(name, name, format, args...)
}

// get trims surrounding whitespace because a stray newline from a heredoc or
// a secret manager would otherwise surface as a baffling parse error.
func (l *loader) get(name string) string {
	return strings.TrimSpace(l.getenv(name))
}

func (l *loader) str(name, def string) string {
	if v := l.get(name); v != "" {
		return v
	}
	return def
}

// secret reads name or name_FILE. present reports whether either was set,
// even when the value is unusable, so that a broken IDBRIDGE_DATABASE_URL
// never silently falls back to DATABASE_URL. source is the variable the
// value came from, for messages. key is the variable problems are filed
// under.
func (l *loader) secret(key, name string) (value, source string, present bool) {
	fileVar := name + "_FILE"
	direct, path := l.get(name), l.get(fileVar)
	switch {
	case direct != "" && path != "":
		l.failAs(key, name, "both %s and %s are set; set only one", name, fileVar)
		return "", name, true
	case direct != "":
		return direct, name, true
	case path == "":
		return "", name, false
	}
	b, err := l.readFile(path)
	if err != nil {
		// Only the path and the OS reason: the error of a read never holds
		// the content, and the content is the secret.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		l.failAs(key, fileVar, "cannot read %q: %v", path, err)
		return "", fileVar, true
	}
	v := strings.TrimRight(string(b), " \t\r\n")
	if v == "" {
		// An empty mounted secret is a deployment mistake; treating it as
		// unset would, for the database, quietly start on SQLite.
		l.failAs(key, fileVar, "file %q is empty", path)
		return "", fileVar, true
	}
	return v, fileVar, true
}

// url parses a URL variable and trims trailing slashes from its path; the
// rules on scheme, host and query are Validate's.
func (l *loader) url(name, def string) *url.URL {
	u, err := parseURL(l.str(name, def))
	if err != nil {
		l.fail(name, "%v", err)
		return nil
	}
	return u
}

func parseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("is not a valid URL: %v", err)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = strings.TrimRight(u.RawPath, "/")
	return u, nil
}

// Load reads the configuration through getenv (os.Getenv in production) and
// readFile (os.ReadFile), which is used for the NAME_FILE form of secrets.
// It always returns the Config it could build; err is a *Problems listing
// every problem found, including those of Validate, or nil.
func Load(getenv func(string) string, readFile func(string) ([]byte, error)) (Config, error) {
	l := &loader{getenv: getenv, readFile: readFile}
	var c Config

	c.Addr = l.str("IDBRIDGE_ADDR", defaultAddr)
	c.BaseURL = l.url("IDBRIDGE_BASE_URL", defaultBaseURL)
	c.AppKey = l.str("IDBRIDGE_APP_KEY", defaultAppKey)
	c.DataDir = l.str("IDBRIDGE_DATA_DIR", defaultDataDir)
	c.DatabaseURL, c.Database = l.database(c.DataDir)
	c.EncryptionKeys, _, _ = l.secret("IDBRIDGE_ENCRYPTION_KEYS", "IDBRIDGE_ENCRYPTION_KEYS")

	if v := l.get("IDBRIDGE_INSTALL_KEYS_URL"); v != "" {
		if u, err := parseURL(v); err != nil {
			l.fail("IDBRIDGE_INSTALL_KEYS_URL", "%v", err)
		} else {
			c.InstallKeysURL = u.String()
		}
	}
	c.AtlassianAPIURL = l.url("IDBRIDGE_ATLASSIAN_API_URL", defaultAtlassianAPIURL)
	c.AtlassianAuthURL = l.url("IDBRIDGE_ATLASSIAN_AUTH_URL", defaultAtlassianAuthURL)
	c.TrustedProductHosts = l.hostList("IDBRIDGE_TRUSTED_PRODUCT_HOSTS", defaultTrustedProductHosts)

	c.MarketplaceURL = l.url("IDBRIDGE_MARKETPLACE_URL", defaultMarketplaceURL)
	c.MarketplaceVendorID = l.get("IDBRIDGE_MARKETPLACE_VENDOR_ID")
	c.MarketplaceUser, _, _ = l.secret("IDBRIDGE_MARKETPLACE_USER", "IDBRIDGE_MARKETPLACE_USER")
	c.MarketplaceToken, _, _ = l.secret("IDBRIDGE_MARKETPLACE_TOKEN", "IDBRIDGE_MARKETPLACE_TOKEN")
	c.MarketplaceDeveloperID = l.get("IDBRIDGE_MARKETPLACE_DEVELOPER_ID")

	c.UninstallRetention = l.retention("IDBRIDGE_UNINSTALL_RETENTION", defaultUninstallRetention)
	c.AuditRetention = l.retention("IDBRIDGE_AUDIT_RETENTION", defaultAuditRetention)
	c.LogLevel = strings.ToLower(l.str("IDBRIDGE_LOG_LEVEL", defaultLogLevel))
	c.LogFormat = strings.ToLower(l.str("IDBRIDGE_LOG_FORMAT", defaultLogFormat))
	c.ForgeAppID = l.get("IDBRIDGE_FORGE_APP_ID")
	c.ForgeJWKSURL = l.url("IDBRIDGE_FORGE_JWKS_URL", defaultForgeJWKSURL)
	c.ForgeEnvironment = strings.ToUpper(l.get("IDBRIDGE_FORGE_ENVIRONMENT"))
	c.PrivacyContact = l.get("IDBRIDGE_PRIVACY_CONTACT")

	shutdown := l.str("IDBRIDGE_SHUTDOWN_TIMEOUT", DefaultShutdownTimeout.String())
	if d, err := time.ParseDuration(shutdown); err != nil {
		l.fail("IDBRIDGE_SHUTDOWN_TIMEOUT", "%q is not a duration such as \"20s\" or \"1m\"", shutdown)
	} else {
		c.ShutdownTimeout = d
	}

	reported := make(map[string]bool, len(l.problems))
	for _, p := range l.problems {
		reported[p.key] = true
	}
	all := l.problems
	for _, p := range c.problems() {
		if !reported[p.key] {
			all = append(all, p)
		}
	}
	return c, newProblems(all)
}

// database picks IDBRIDGE_DATABASE_URL over DATABASE_URL, because hosting
// platforms set DATABASE_URL on their own and an explicit idbridge setting
// must win; then derives the driver. Problems are filed under
// IDBRIDGE_DATABASE_URL whichever variable was used.
func (l *loader) database(dataDir string) (string, Database) {
	const key = "IDBRIDGE_DATABASE_URL"
	raw, source, present := l.secret(key, "IDBRIDGE_DATABASE_URL")
	if !present {
		raw, source, present = l.secret(key, "DATABASE_URL")
	}
	if !present {
		return "", Database{Driver: DriverSQLite, DSN: filepath.Join(dataDir, sqliteFileName)}
	}
	if raw == "" { // already reported by secret
		return "", Database{}
	}
	db, err := parseDatabaseURL(raw)
	if err != nil {
		l.failAs(key, source, "%v", err)
		return raw, Database{}
	}
	return raw, db
}

// parseDatabaseURL derives the driver from the URL forms of SPEC section 1.
// Its errors never quote raw beyond a scheme, since raw may hold a password.
func parseDatabaseURL(raw string) (Database, error) {
	scheme, rest, _ := strings.Cut(raw, ":")
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		if !strings.HasPrefix(rest, "//") {
			break
		}
		// pgx recognises only lower-case schemes as URLs.
		dsn := strings.ToLower(scheme) + ":" + rest
		if _, err := url.Parse(dsn); err != nil {
			return Database{}, errors.New("is not a valid postgres:// URL; percent-encode special characters in the user name and password (value not shown: it may hold a password)")
		}
		return Database{Driver: DriverPostgres, DSN: dsn}, nil
	case "sqlite":
		switch {
		case rest == "":
			return Database{}, errors.New(`"sqlite:" needs a file path, as in sqlite:/var/lib/idbridge/idbridge.db`)
		case strings.HasPrefix(rest, "//"):
			// sqlite://x is ambiguous (host or relative path?); refusing it
			// beats creating the database somewhere unexpected.
			return Database{}, errors.New(`write sqlite:PATH (for example sqlite:/var/lib/idbridge/idbridge.db or sqlite:data/idbridge.db), not sqlite://`)
		}
		return Database{Driver: DriverSQLite, DSN: rest}, nil
	}
	if strings.HasPrefix(rest, "//") {
		if knownScheme(strings.ToLower(scheme)) {
			return Database{}, fmt.Errorf("scheme %q is not supported; use postgres:// or sqlite:PATH", strings.ToLower(scheme))
		}
		return Database{}, errors.New("has an unsupported scheme; use postgres:// or sqlite:PATH (value not shown: it may hold a password)")
	}
	return Database{}, errors.New("is neither a postgres:// URL nor sqlite:PATH (value not shown: it may hold a password)")
}

// knownScheme lists schemes people plausibly put in a database URL. Only
// these are quoted back: whatever precedes "://" in a mangled value could
// be part of a password.
func knownScheme(s string) bool {
	switch s {
	case "mysql", "mariadb", "sqlserver", "mssql", "oracle", "mongodb", "mongodb+srv", "redis", "rediss",
		"cockroachdb", "sqlite3", "libsql", "file", "http", "https", "jdbc":
		return true
	}
	return false
}

func (l *loader) retention(name, def string) time.Duration {
	d, err := ParseRetention(l.str(name, def))
	if err != nil {
		l.fail(name, "%v", err)
		return 0
	}
	return d
}

func (l *loader) hostList(name, def string) []string {
	var hosts []string
	for entry := range strings.SplitSeq(l.str(name, def), ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" { // tolerate "a,b," and "a, ,b"
			continue
		}
		p, err := parseHostPattern(entry)
		if err != nil {
			l.fail(name, "%q %v", entry, err)
			continue
		}
		hosts = append(hosts, p.String())
	}
	return hosts
}
