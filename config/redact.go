package config

import (
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"strings"
)

const (
	shownSet   = "(set)"
	shownUnset = "(unset)"
)

// Redacted returns every variable with a value safe to log at start: secrets
// show only "(set)" or "(unset)", and the database URL loses its password.
// Empty optional values show "(unset)". The database URL appears under
// IDBRIDGE_DATABASE_URL even when it came from DATABASE_URL.
func (c Config) Redacted() map[string]string {
	return map[string]string{
		"IDBRIDGE_ADDR":                     orUnset(c.Addr),
		"IDBRIDGE_BASE_URL":                 urlString(c.BaseURL),
		"IDBRIDGE_APP_KEY":                  orUnset(c.AppKey),
		"IDBRIDGE_DATABASE_URL":             redactDatabaseURL(c.DatabaseURL),
		"IDBRIDGE_DATA_DIR":                 orUnset(c.DataDir),
		"IDBRIDGE_ENCRYPTION_KEYS":          setOrUnset(c.EncryptionKeys),
		"IDBRIDGE_INSTALL_KEYS_URL":         orUnset(c.InstallKeysURL),
		"IDBRIDGE_ATLASSIAN_API_URL":        urlString(c.AtlassianAPIURL),
		"IDBRIDGE_ATLASSIAN_AUTH_URL":       urlString(c.AtlassianAuthURL),
		"IDBRIDGE_TRUSTED_PRODUCT_HOSTS":    orUnset(strings.Join(c.TrustedProductHosts, ",")),
		"IDBRIDGE_MARKETPLACE_URL":          urlString(c.MarketplaceURL),
		"IDBRIDGE_MARKETPLACE_VENDOR_ID":    orUnset(c.MarketplaceVendorID),
		"IDBRIDGE_MARKETPLACE_USER":         setOrUnset(c.MarketplaceUser),
		"IDBRIDGE_MARKETPLACE_TOKEN":        setOrUnset(c.MarketplaceToken),
		"IDBRIDGE_MARKETPLACE_DEVELOPER_ID": orUnset(c.MarketplaceDeveloperID),
		"IDBRIDGE_UNINSTALL_RETENTION":      formatRetention(c.UninstallRetention),
		"IDBRIDGE_AUDIT_RETENTION":          formatRetention(c.AuditRetention),
		"IDBRIDGE_LOG_LEVEL":                orUnset(c.LogLevel),
		"IDBRIDGE_LOG_FORMAT":               orUnset(c.LogFormat),
		"IDBRIDGE_FORGE_APP_ID":             orUnset(c.ForgeAppID),
		"IDBRIDGE_FORGE_JWKS_URL":           urlString(c.ForgeJWKSURL),
		"IDBRIDGE_FORGE_ENVIRONMENT":        orUnset(c.ForgeEnvironment),
		"IDBRIDGE_PRIVACY_CONTACT":          orUnset(c.PrivacyContact),
		"IDBRIDGE_SHUTDOWN_TIMEOUT":         c.ShutdownTimeout.String(),
	}
}

// String prints the Redacted form, so that an accidental fmt.Print or %v of
// a Config cannot leak a secret.
func (c Config) String() string {
	return c.redactedLine()
}

// GoString covers %#v, which bypasses String.
func (c Config) GoString() string {
	return "config.Config{" + c.redactedLine() + "}"
}

// LogValue makes slog log the Redacted form, for the same reason as String.
func (c Config) LogValue() slog.Value {
	r := c.Redacted()
	attrs := make([]slog.Attr, 0, len(r))
	for _, k := range slices.Sorted(maps.Keys(r)) {
		attrs = append(attrs, slog.String(k, r[k]))
	}
	return slog.GroupValue(attrs...)
}

func (c Config) redactedLine() string {
	r := c.Redacted()
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(r)) {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k + "=" + r[k])
	}
	return b.String()
}

func orUnset(s string) string {
	if s == "" {
		return shownUnset
	}
	return s
}

func setOrUnset(s string) string {
	if s == "" {
		return shownUnset
	}
	return shownSet
}

func urlString(u *url.URL) string {
	if u == nil {
		return shownUnset
	}
	return u.Redacted()
}

// redactDatabaseURL drops the password from a PostgreSQL URL, both from the
// user info and from the password query parameters libpq and pgx accept.
// Anything it cannot parse shows only as "(set)".
func redactDatabaseURL(raw string) string {
	if raw == "" {
		return shownUnset
	}
	db, err := parseDatabaseURL(raw)
	if err != nil {
		return shownSet
	}
	if db.Driver == DriverSQLite {
		return raw
	}
	u, err := url.Parse(db.DSN)
	if err != nil {
		return shownSet
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	q := u.Query()
	for _, k := range []string{"password", "sslpassword"} {
		if q.Has(k) {
			q.Del(k)
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}
