package config

import (
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
)

// Problems lists everything wrong with a configuration, one line per
// problem, each starting with the variable's name, so that `idbridge serve`
// can print all of them at once and exit.
type Problems struct {
	List []string
}

// Error joins the problems with newlines.
func (p *Problems) Error() string {
	return strings.Join(p.List, "\n")
}

// newProblems returns nil, not a nil *Problems, when there is nothing to
// report, so that err != nil means what it says.
func newProblems(ps []problem) error {
	if len(ps) == 0 {
		return nil
	}
	list := make([]string, len(ps))
	for i, p := range ps {
		list[i] = p.text
	}
	return &Problems{List: list}
}

// Validate checks c as a whole and returns a *Problems listing every
// problem, or nil. Load calls it; call it yourself on a Config built by
// hand. No message quotes a secret.
func (c Config) Validate() error {
	return newProblems(c.problems())
}

// checker collects problems in a fixed order for a stable report.
type checker []problem

func (ch *checker) add(name, msg string) {
	*ch = append(*ch, problem{key: name, text: name + ": " + msg})
}

func (c Config) problems() []problem {
	var ch checker

	if _, port, err := net.SplitHostPort(c.Addr); err != nil || !validPort(port, true) {
		ch.add("IDBRIDGE_ADDR", strconv.Quote(c.Addr)+` is not a listen address such as ":8080" or "127.0.0.1:8080"`)
	}
	if msg := checkURL(c.BaseURL, func(string) bool { return true }); msg != "" {
		ch.add("IDBRIDGE_BASE_URL", msg)
	}
	checkAppKey(&ch, c.AppKey)

	switch {
	case c.Database.Driver != DriverSQLite && c.Database.Driver != DriverPostgres:
		ch.add("IDBRIDGE_DATABASE_URL", "no database driver; use postgres://… or sqlite:PATH, or leave it unset for SQLite in the data directory")
	case c.Database.DSN == "":
		ch.add("IDBRIDGE_DATABASE_URL", "no database location")
	}
	if c.DataDir == "" {
		ch.add("IDBRIDGE_DATA_DIR", "is required")
	}
	if c.Database.Driver == DriverPostgres && c.EncryptionKeys == "" {
		ch.add("IDBRIDGE_ENCRYPTION_KEYS", "is required with PostgreSQL: a key generated on one replica's disk would leave secrets unreadable on the others")
	}

	if c.InstallKeysURL != "" {
		u, err := url.Parse(c.InstallKeysURL)
		if err != nil {
			ch.add("IDBRIDGE_INSTALL_KEYS_URL", "is not a valid URL")
		} else if msg := checkURL(u, isLoopbackHost); msg != "" {
			ch.add("IDBRIDGE_INSTALL_KEYS_URL", msg)
		}
	}
	if msg := checkURL(c.AtlassianAPIURL, isLoopbackHost); msg != "" {
		ch.add("IDBRIDGE_ATLASSIAN_API_URL", msg)
	}
	if msg := checkURL(c.AtlassianAuthURL, isLoopbackHost); msg != "" {
		ch.add("IDBRIDGE_ATLASSIAN_AUTH_URL", msg)
	}
	if c.ForgeJWKSURL != nil { // nil: Atlassian's (a Config built by hand)
		if msg := checkURL(c.ForgeJWKSURL, isLoopbackHost); msg != "" {
			ch.add("IDBRIDGE_FORGE_JWKS_URL", msg)
		}
	}

	if len(c.TrustedProductHosts) == 0 {
		ch.add("IDBRIDGE_TRUSTED_PRODUCT_HOSTS", "is empty, so no site could install")
	}
	for _, h := range c.TrustedProductHosts {
		if _, err := parseHostPattern(h); err != nil {
			ch.add("IDBRIDGE_TRUSTED_PRODUCT_HOSTS", strconv.Quote(h)+" "+err.Error())
		}
	}

	c.checkMarketplace(&ch)

	if c.UninstallRetention <= 0 {
		ch.add("IDBRIDGE_UNINSTALL_RETENTION", "must be greater than zero")
	}
	if c.AuditRetention <= 0 {
		ch.add("IDBRIDGE_AUDIT_RETENTION", "must be greater than zero")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		ch.add("IDBRIDGE_LOG_LEVEL", strconv.Quote(c.LogLevel)+" is not one of debug, info, warn, error")
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		ch.add("IDBRIDGE_LOG_FORMAT", strconv.Quote(c.LogFormat)+" is not one of json, text")
	}
	if c.ForgeAppID != "" {
		const prefix = "ari:cloud:ecosystem::app/"
		if id, ok := strings.CutPrefix(c.ForgeAppID, prefix); !ok || !isIDChars(id) {
			// The ID is written into manifest.yml, hence the strict charset.
			ch.add("IDBRIDGE_FORGE_APP_ID", strconv.Quote(c.ForgeAppID)+` is not a Forge app ARI such as "ari:cloud:ecosystem::app/<uuid>"`)
		}
	}
	switch c.ForgeEnvironment {
	case "", "DEVELOPMENT", "STAGING", "PRODUCTION":
	default:
		ch.add("IDBRIDGE_FORGE_ENVIRONMENT", strconv.Quote(c.ForgeEnvironment)+" is not one of DEVELOPMENT, STAGING, PRODUCTION")
	}
	if c.PrivacyContact != "" && !isEmail(c.PrivacyContact) && !isHTTPSURL(c.PrivacyContact) {
		ch.add("IDBRIDGE_PRIVACY_CONTACT", strconv.Quote(c.PrivacyContact)+" is neither an email address nor an https URL")
	}
	if c.ShutdownTimeout <= 0 {
		ch.add("IDBRIDGE_SHUTDOWN_TIMEOUT", "must be greater than zero")
	}
	return ch
}

func checkAppKey(ch *checker, key string) {
	const name = "IDBRIDGE_APP_KEY"
	if key == "" {
		ch.add(name, "is required")
		return
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			ch.add(name, strconv.Quote(key)+" has characters outside [a-zA-Z0-9-._]")
			break
		}
	}
	if len(key) > 64 {
		ch.add(name, strconv.Quote(key)+" is "+strconv.Itoa(len(key))+" characters long; the limit is 64")
	}
}

// checkMarketplace enforces that licence sync is either fully configured or
// off: half a credential would fail at the first sync, long after start.
// Either ID is enough, since the developer-space API replaces the vendor one.
func (c Config) checkMarketplace(ch *checker) {
	if msg := checkURL(c.MarketplaceURL, isLoopbackHost); msg != "" {
		ch.add("IDBRIDGE_MARKETPLACE_URL", msg)
	}
	user, token := c.MarketplaceUser != "", c.MarketplaceToken != ""
	switch {
	case user && !token:
		ch.add("IDBRIDGE_MARKETPLACE_TOKEN", "is required when IDBRIDGE_MARKETPLACE_USER is set")
	case token && !user:
		ch.add("IDBRIDGE_MARKETPLACE_USER", "is required when IDBRIDGE_MARKETPLACE_TOKEN is set")
	}
	if (user || token) && c.MarketplaceVendorID == "" && c.MarketplaceDeveloperID == "" {
		ch.add("IDBRIDGE_MARKETPLACE_VENDOR_ID", "is required when IDBRIDGE_MARKETPLACE_USER and IDBRIDGE_MARKETPLACE_TOKEN are set (or set IDBRIDGE_MARKETPLACE_DEVELOPER_ID for the developer-space API)")
	}
	// Both IDs go into URL paths.
	if c.MarketplaceVendorID != "" && !isIDChars(c.MarketplaceVendorID) {
		ch.add("IDBRIDGE_MARKETPLACE_VENDOR_ID", strconv.Quote(c.MarketplaceVendorID)+" has characters outside [a-zA-Z0-9-_]")
	}
	if c.MarketplaceDeveloperID != "" && !isIDChars(c.MarketplaceDeveloperID) {
		ch.add("IDBRIDGE_MARKETPLACE_DEVELOPER_ID", strconv.Quote(c.MarketplaceDeveloperID)+" has characters outside [a-zA-Z0-9-_]")
	}
}

// checkURL returns what is wrong with u as a base URL idbridge publishes or
// calls, or "". plainHTTP says for which hosts http is acceptable. Messages
// quote u.Redacted(), which hides any password.
func checkURL(u *url.URL, plainHTTP func(host string) bool) string {
	switch {
	case u == nil:
		return "is required"
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Opaque != "":
		return strconv.Quote(u.Redacted()) + " is not an absolute http or https URL"
	case u.User != nil:
		return strconv.Quote(u.Redacted()) + " must not contain a user name or password"
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return strconv.Quote(u.Redacted()) + " must not have a query or fragment"
	case u.Scheme == "http" && !plainHTTP(u.Host):
		return strconv.Quote(u.Redacted()) + " must use https (plain http is accepted only for loopback hosts)"
	}
	return ""
}

// validPort accepts a decimal port; zero only where the OS may choose.
func validPort(s string, allowZero bool) bool {
	n, err := strconv.Atoi(s)
	if err != nil || s == "" || s[0] == '+' || s[0] == '-' || n > 65535 {
		return false
	}
	return n > 0 || allowZero
}

func isIDChars(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// isEmail accepts a bare address only: "Name <a@b>" would render oddly on
// /privacy.
func isEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Name == "" && a.Address == s
}

func isHTTPSURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "https" && u.Host != "" && u.User == nil
}
