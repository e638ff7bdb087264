// Package sites owns the Connect install lifecycle (installed, uninstalled,
// enabled, disabled), the authentication of requests that carry a Connect
// JWT, and the server-side check that a user is a site admin.
package sites

import (
	"fmt"

	"idbridge/models"
)

// Event is a lifecycle callback.
type Event string

// The lifecycle events Atlassian sends.
const (
	EventInstalled   Event = "installed"
	EventUninstalled Event = "uninstalled"
	EventEnabled     Event = "enabled"
	EventDisabled    Event = "disabled"
)

// stateNone is the state of a clientKey we have never seen.
const stateNone models.SiteState = ""

// Transition is what an event does to a site in a given state: the state it
// leads to, and whether the store must change. Refused transitions return
// an error (the handler answers 401: for enabled/disabled, an unknown or
// uninstalled site has no secret to verify the token with anyway).
type Transition struct {
	Next  models.SiteState
	Write bool
}

// Next is the site state machine. Its rules, in words:
//   - a verified install always leads to installed, creating the site or
//     replacing its secret (also reviving an uninstalled site before purge);
//   - uninstall leads to uninstalled and is idempotent (a second one, or one
//     for a site we never knew, changes nothing and succeeds);
//   - enabled and disabled toggle an installed site, and are refused for an
//     unknown or uninstalled one: a late enabled never revives a site.
func Next(current models.SiteState, ev Event) (Transition, error) {
	switch ev {
	case EventInstalled:
		return Transition{Next: models.SiteInstalled, Write: true}, nil
	case EventUninstalled:
		if current == stateNone || current == models.SiteUninstalled {
			return Transition{Next: current}, nil
		}
		return Transition{Next: models.SiteUninstalled, Write: true}, nil
	case EventEnabled, EventDisabled:
		if current == stateNone || current == models.SiteUninstalled {
			return Transition{}, &models.Error{Code: models.CodeUnauthorized, Message: "the app is not installed on this site"}
		}
		next := models.SiteInstalled
		if ev == EventDisabled {
			next = models.SiteDisabled
		}
		return Transition{Next: next, Write: next != current}, nil
	}
	return Transition{}, fmt.Errorf("unknown lifecycle event %q", ev)
}
