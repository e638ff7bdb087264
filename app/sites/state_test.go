package sites

import (
	"testing"

	"idbridge/models"

	"github.com/google/go-cmp/cmp"
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
			if err != nil {
				t.Errorf("Next(%q, %s): %v", state, ev, err)
			} else if d := cmp.Diff(Transition{Next: w.next, Write: w.write}, got); d != "" {
				t.Errorf("Next(%q, %s) (-want +got):\n%s", state, ev, d)
			}
		}
	}
	if _, err := Next(installed, Event("deleted")); err == nil || models.ErrorCode(err) == models.CodeUnauthorized {
		t.Errorf("an unknown event: %v, want an internal error", err)
	}
}
