package sites

import (
	"testing"

	"idbridge/models"
)

// TestNextEveryStateAndEvent pins the state machine: every (state, event)
// pair, the state never seen ("") included.
func TestNextEveryStateAndEvent(t *testing.T) {
	const (
		none        = stateNone
		installed   = models.SiteInstalled
		disabled    = models.SiteDisabled
		uninstalled = models.SiteUninstalled
	)
	type want struct {
		next    models.SiteState
		write   bool
		refused bool // 401: no site to verify the token with
	}
	tests := map[models.SiteState]map[Event]want{
		none: {
			EventInstalled:   {next: installed, write: true},
			EventUninstalled: {next: none},
			EventEnabled:     {refused: true},
			EventDisabled:    {refused: true},
		},
		installed: {
			EventInstalled:   {next: installed, write: true}, // new secret
			EventUninstalled: {next: uninstalled, write: true},
			EventEnabled:     {next: installed},
			EventDisabled:    {next: disabled, write: true},
		},
		disabled: {
			EventInstalled:   {next: installed, write: true},
			EventUninstalled: {next: uninstalled, write: true},
			EventEnabled:     {next: installed, write: true},
			EventDisabled:    {next: disabled},
		},
		uninstalled: {
			EventInstalled:   {next: installed, write: true}, // revival before purge
			EventUninstalled: {next: uninstalled},            // idempotent
			EventEnabled:     {refused: true},                // never revives
			EventDisabled:    {refused: true},
		},
	}
	events := []Event{EventInstalled, EventUninstalled, EventEnabled, EventDisabled}
	for _, state := range []models.SiteState{none, installed, disabled, uninstalled} {
		for _, ev := range events {
			w, ok := tests[state][ev]
			if !ok {
				t.Fatalf("no expectation for (%q, %s)", state, ev)
			}
			got, err := Next(state, ev)
			if w.refused {
				if models.ErrorCode(err) != models.CodeUnauthorized {
					t.Errorf("Next(%q, %s) = %+v, %v; want an unauthorized error", state, ev, got, err)
				}
				continue
			}
			if err != nil || got.Next != w.next || got.Write != w.write {
				t.Errorf("Next(%q, %s) = %+v, %v; want {Next:%q Write:%v}", state, ev, got, err, w.next, w.write)
			}
		}
	}
	if _, err := Next(installed, Event("deleted")); err == nil || models.ErrorCode(err) == models.CodeUnauthorized {
		t.Errorf("an unknown event: %v, want an internal error", err)
	}
}
