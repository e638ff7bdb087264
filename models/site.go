package models

import "time"

// SiteState is where a site stands in its install lifecycle.
type SiteState string

// Site states. A site is installed and enabled after a verified install;
// disabled by the disabled hook (see Site.EffectiveState for when that
// counts); uninstalled after a verified uninstall, when its secrets are
// gone and its data waits for the purge.
const (
	SiteInstalled   SiteState = "installed"
	SiteDisabled    SiteState = "disabled"
	SiteUninstalled SiteState = "uninstalled"
)

// SiteFacts are what Atlassian tells about an installation in its lifecycle
// callbacks, under the same names: the event carries them (InstallEvent),
// the site keeps them (Site), and the store persists them as columns of the
// same names. ClientKey is Connect's identity of the installation.
type SiteFacts struct {
	ClientKey                       string
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
}

// Site is one installation of the app in a Jira or Confluence site.
// ID is our own opaque identifier, used in URLs (SCIM, portal) where the
// clientKey must not appear.
type Site struct {
	ID string
	SiteFacts
	SharedSecret  []byte // never persisted in clear; sealed by the store
	State         SiteState
	InstalledAt   time.Time
	UpdatedAt     time.Time
	UninstalledAt *time.Time
	PurgeAfter    *time.Time
}

// Active reports whether the site may authenticate requests.
func (s *Site) Active() bool { return s.State == SiteInstalled || s.State == SiteDisabled }

// EffectiveState is the state idbridge acts on. A disabled site that has
// an installationId counts as installed: Atlassian sends that ID only once
// the app is registered with Forge, and from then on it sends neither
// enabled nor disabled, so the state can only be left over from before the
// move and nothing would ever lift it. A site that Connect still serves
// (no installationId) stays disabled until its enabled or installed.
func (s *Site) EffectiveState() SiteState {
	if s.State == SiteDisabled && s.InstallationID != "" {
		return SiteInstalled
	}
	return s.State
}

// Disabled reports whether the app is switched off in the site (its
// effective state is disabled): SCIM refuses its changes and the sync
// waits.
func (s *Site) Disabled() bool { return s.EffectiveState() == SiteDisabled }
