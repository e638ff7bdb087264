package models

import "time"

// SiteState is where a site stands in its install lifecycle.
type SiteState string

// Site states. A site is installed and enabled after a verified install;
// disabled by the disabled hook; uninstalled after a verified uninstall,
// when its secrets are gone and its data waits for the purge.
const (
	SiteInstalled   SiteState = "installed"
	SiteDisabled    SiteState = "disabled"
	SiteUninstalled SiteState = "uninstalled"
)

// Site is one installation of the app in a Jira or Confluence site.
// ClientKey is Connect's identity of the installation; ID is our own opaque
// identifier, used in URLs (SCIM, portal) where the clientKey must not appear.
type Site struct {
	ID                              string
	ClientKey                       string
	SharedSecret                    []byte // never persisted in clear; sealed by the store
	BaseURL                         string
	DisplayURL                      string
	DisplayURLServicedeskHelpCenter string
	ProductType                     string
	Description                     string
	ServiceEntitlementNumber        string
	EntitlementID                   string
	EntitlementNumber               string
	InstallationID                  string
	CloudID                         string
	State                           SiteState
	InstalledAt                     time.Time
	UpdatedAt                       time.Time
	UninstalledAt                   *time.Time
	PurgeAfter                      *time.Time
}

// Active reports whether the site may authenticate requests.
func (s *Site) Active() bool { return s.State == SiteInstalled || s.State == SiteDisabled }
