package app_test

import (
	"net/http"
	"strings"
	"testing"

	"idbridge/app/sites"
	"idbridge/app/store/storetest"
	"idbridge/models"
)

var connectLifecycleEvents = []sites.Event{sites.EventInstalled, sites.EventUninstalled, sites.EventEnabled, sites.EventDisabled}

// permutations returns every ordering of events.
func connectPermutations(events []sites.Event) [][]sites.Event {
	if len(events) <= 1 {
		return [][]sites.Event{append([]sites.Event(nil), events...)}
	}
	var out [][]sites.Event
	for i, first := range events {
		rest := append(append([]sites.Event(nil), events[:i]...), events[i+1:]...)
		for _, p := range connectPermutations(rest) {
			out = append(out, append([]sites.Event{first}, p...))
		}
	}
	return out
}

// sequences returns every sequence of n events, repeats included.
func connectSequences(n int) [][]sites.Event {
	if n == 0 {
		return [][]sites.Event{nil}
	}
	var out [][]sites.Event
	for _, prefix := range connectSequences(n - 1) {
		for _, ev := range connectLifecycleEvents {
			out = append(out, append(append([]sites.Event(nil), prefix...), ev))
		}
	}
	return out
}

// TestConnectLifecycleOrderings sends every ordering of the four lifecycle
// events, and every sequence of up to three with repeats, through the HTTP
// layer, each for a fresh clientKey, and checks every answer and the final
// stored state against sites.Next.
func TestConnectLifecycleOrderings(t *testing.T) {
	var all [][]sites.Event
	all = append(all, connectPermutations(connectLifecycleEvents)...)
	for n := 1; n <= 3; n++ {
		all = append(all, connectSequences(n)...)
	}
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newConnectHarness(t, b)
		for _, seq := range all {
			names := make([]string, len(seq))
			for i, ev := range seq {
				names[i] = string(ev)
			}
			t.Run(strings.Join(names, ","), func(t *testing.T) {
				s := h.newSite(h.jira)
				state := models.SiteState("") // never seen
				for i, ev := range seq {
					if ev == sites.EventInstalled && i > 0 {
						h.newSecret(s) // every install brings a new secret
					}
					var w interface{ Result() *http.Response }
					switch ev {
					case sites.EventInstalled:
						w = h.install(nil, s)
					case sites.EventUninstalled:
						w = h.uninstall(s)
					default:
						// Signed with the last secret the site was given.
						w = h.toggle(s, string(ev), s.secret)
					}
					status := w.Result().StatusCode
					from := state
					next, err := sites.Next(state, ev)
					wantCode := http.StatusNoContent
					if err != nil {
						if models.ErrorCode(err) != models.CodeUnauthorized {
							t.Fatalf("Next(%q, %s): %v", state, ev, err)
						}
						wantCode = http.StatusUnauthorized
					} else {
						state = next.Next
					}
					if status != wantCode {
						t.Fatalf("step %d (%s) from %q: status %d, want %d", i, ev, from, status, wantCode)
					}
				}
				got, err := h.storedSite(s)
				switch {
				case state == "":
					if !models.IsNotFound(err) {
						t.Fatalf("final: want no site, got %+v, %v", got, err)
					}
				case err != nil:
					t.Fatalf("final: %v", err)
				case got.State != state:
					t.Fatalf("final state %q, want %q", got.State, state)
				case (len(got.SharedSecret) == 0) != (state == models.SiteUninstalled):
					t.Fatalf("final state %q with secret present %v", got.State, len(got.SharedSecret) > 0)
				}
			})
		}
	})
}
