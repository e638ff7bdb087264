package models

import "time"

// ForgeEvent is the body of a Forge lifecycle event delivered to the remote
// (avi:forge:installed:app, avi:forge:upgraded:app). The Forge invocation
// token that comes with it, not the body, says which installation and site
// it is about.
type ForgeEvent struct {
	EventType  string
	ID         string // the installation, as the event payload names it
	AppVersion string
	Context    string // the ARI of the site the app was installed on
}

// Forge lifecycle event types a remote can subscribe to. Forge has no
// uninstall event for apps.
const (
	ForgeEventInstalled = "avi:forge:installed:app"
	ForgeEventUpgraded  = "avi:forge:upgraded:app"
)

// SystemTokenStatus says whether idbridge holds an app system token for a
// site, and until when: what the admin page shows. It never carries the
// token.
type SystemTokenStatus struct {
	State     string    // SystemTokenHeld, SystemTokenExpired or SystemTokenNone
	ExpiresAt time.Time // zero with SystemTokenNone
}

// States of a site's app system token: held (unexpired), expired (the last
// one Forge handed over has run out: no call uses it), none (Forge never
// handed one over, or uninstall deleted it).
const (
	SystemTokenHeld    = "held"
	SystemTokenExpired = "expired"
	SystemTokenNone    = "none"
)
