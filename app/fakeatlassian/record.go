package fakeatlassian

import (
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"
)

// Change is one change a request asked a site for, in the order they came.
// Applied is false when the site was already in the asked state (the
// request changed nothing: a repeat, or a stale request).
type Change struct {
	At      time.Time
	Route   string
	Kind    string // "user", "member", "group", "suspension", "profile"
	Key     string // what it is about: an email, a group name, "group/email"
	Op      string // "+" (create, add, suspend, set) or "-" (remove, delete, restore)
	Applied bool
}

// EarlyRetry is a request repeated before the Retry-After of an earlier
// answer to the same request ran out.
type EarlyRetry struct {
	At       time.Time
	Until    time.Time
	Identity string
}

// RouteCount is how many requests to a route got one answer.
type RouteCount struct {
	Route  string
	Status int // StatusDropped and StatusGone for no answer
	N      int
}

// recorder is what a site remembers about the requests it got. Its fields
// are guarded by the site's mutex (passed in, so the recorder can be used
// with or without it held by the caller).
type recorder struct {
	rnd        *rand.Rand
	counts     map[RouteCount]int // key: Route and Status, N unused
	total      int
	changes    []Change
	retryUntil map[string]time.Time
	early      []EarlyRetry
	baseline   State
	lastAt     time.Time
}

func (r *recorder) init(seed uint64) {
	r.rnd = rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))
	r.counts = map[RouteCount]int{}
	r.retryUntil = map[string]time.Time{}
	r.baseline = State{Users: map[string]UserState{}, Groups: map[string][]string{}}
}

func (r *recorder) noteRequest(mu *sync.Mutex, id, route string, now time.Time) {
	mu.Lock()
	defer mu.Unlock()
	r.total++
	r.lastAt = now
	if until, ok := r.retryUntil[id]; ok {
		if now.Before(until) {
			r.early = append(r.early, EarlyRetry{At: now, Until: until, Identity: id})
		} else {
			delete(r.retryUntil, id)
		}
	}
}

func (r *recorder) retryAfter(mu *sync.Mutex, id string, until time.Time) {
	mu.Lock()
	defer mu.Unlock()
	if until.After(r.retryUntil[id]) {
		r.retryUntil[id] = until
	}
}

func (r *recorder) count(mu *sync.Mutex, route string, status int) {
	mu.Lock()
	defer mu.Unlock()
	r.counts[RouteCount{Route: route, Status: status}]++
}

// change records a change; s.mu is held by the route.
func (s *Site) change(route, kind, key, op string, applied bool) {
	s.rec.changes = append(s.rec.changes, Change{At: s.f.now(), Route: route, Kind: kind, Key: key, Op: op, Applied: applied})
}

// Requests lists the request counters, by route then status.
func (s *Site) Requests() []RouteCount {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]RouteCount, 0, len(s.rec.counts))
	for k, n := range s.rec.counts {
		out = append(out, RouteCount{Route: k.Route, Status: k.Status, N: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Route != out[j].Route {
			return out[i].Route < out[j].Route
		}
		return out[i].Status < out[j].Status
	})
	return out
}

// RequestCount is how many requests to route got status; route "" counts
// every route, status -2 every answer.
func (s *Site) RequestCount(route string, status int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, c := range s.rec.counts {
		if (route == "" || k.Route == route) && (status == -2 || k.Status == status) {
			n += c
		}
	}
	return n
}

// TotalRequests is every request the site got, answered or not.
func (s *Site) TotalRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec.total
}

// Changes is the change log, oldest first.
func (s *Site) Changes() []Change {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Change(nil), s.rec.changes...)
}

// AppliedTwice lists the changes requested again right after they were
// applied, with no opposite change between: what a client that repeats
// blindly (instead of looking the object up) does after losing an answer.
func (s *Site) AppliedTwice() []Change {
	s.mu.Lock()
	defer s.mu.Unlock()
	last := map[string]Change{}
	var out []Change
	for _, c := range s.rec.changes {
		k := c.Kind + " " + c.Key
		prev, seen := last[k]
		if !c.Applied && seen && prev.Applied && prev.Op == c.Op {
			out = append(out, c)
		}
		if c.Applied || !seen {
			last[k] = c
		}
	}
	return out
}

// EarlyRetries lists the requests repeated before their Retry-After ran out.
func (s *Site) EarlyRetries() []EarlyRetry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]EarlyRetry(nil), s.rec.early...)
}

// MarkBaseline takes the site's current state as the start from which
// MinRequests counts, and resets the counters, the change log and the
// early-retry list.
func (s *Site) MarkBaseline() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rec.baseline = s.snapshotLocked()
	s.rec.counts = map[RouteCount]int{}
	s.rec.total = 0
	s.rec.changes = nil
	s.rec.early = nil
}

// MinRequests is the fewest requests that lead from the baseline (an empty
// site, or MarkBaseline) to the site's current state with the calls SPEC
// 6.1 names: an account created costs a lookup and a create (a customer
// one create; an account named otherwise than Atlassian names a new one,
// a profile change more), a group a lookup and a create, a removal, deletion,
// suspension, restoration, profile change or membership change one each.
// Work that left no trace (a user created and removed again) costs nothing.
func (s *Site) MinRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return minRequests(s.rec.baseline, s.snapshotLocked())
}

func minRequests(from, to State) int {
	n := 0
	for email, u := range to.Users {
		b, had := from.Users[email]
		wasIn := had && b.InSite
		switch {
		case u.InSite && !wasIn:
			if u.Type == AccountCustomer {
				n++ // a customer is made with its name
				break
			}
			n += 2
			// An account is made with a name of Atlassian's (the email's
			// local part, or the one it had): another name costs a profile
			// change.
			before, _, _ := strings.Cut(email, "@")
			if had {
				before = b.DisplayName
			}
			if !strings.EqualFold(u.DisplayName, before) {
				n++
			}
		case !u.InSite && wasIn:
			n++
		}
		if u.InSite && u.Suspended != (wasIn && b.Suspended) {
			n++
		}
		if u.InSite && wasIn && u.DisplayName != b.DisplayName {
			n++
		}
	}
	for email, b := range from.Users {
		if _, still := to.Users[email]; !still && b.InSite {
			n++
		}
	}
	for name, members := range to.Groups {
		before, had := from.Groups[name]
		if !had {
			n += 2
		}
		n += setDiff(members, before) + setDiff(before, members)
	}
	for name := range from.Groups {
		if _, still := to.Groups[name]; !still {
			n++
		}
	}
	return n
}

// setDiff counts the elements of a that are not in b.
func setDiff(a, b []string) int {
	in := make(map[string]bool, len(b))
	for _, x := range b {
		in[strings.ToLower(x)] = true
	}
	n := 0
	for _, x := range a {
		if !in[strings.ToLower(x)] {
			n++
		}
	}
	return n
}
