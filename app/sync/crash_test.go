//go:build linux

package sync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"idbridge/app/apptest"
	"idbridge/app/atlassian"
	"idbridge/app/fakeatlassian"
	"idbridge/app/secret"
	"idbridge/app/store"
	"idbridge/app/store/storetest"
	syncw "idbridge/app/sync"
	"idbridge/models"
)

// crashChildEnv carries a crashChild to the test binary run as a child
// process: then TestCrashChild runs a sync worker until it is killed.
const crashChildEnv = "IDBRIDGE_SYNC_CRASH_CHILD"

// crashChild is what the child process needs: the database, the key
// ring, and where Atlassian is; and a lease and request timeout other
// than crashConfig's, when set.
type crashChild struct {
	Driver, DSN, Keys, APIURL, Owner string
	Lease, RequestTimeout            time.Duration
}

// crashConfig tunes a worker for the crash test: short leases, so that a
// killed worker's claims are taken over within seconds.
func crashConfig(owner string) syncw.Config {
	return syncw.Config{
		Owner: owner, Lease: 3 * time.Second, IdlePoll: 200 * time.Millisecond, BlockedRecheck: time.Second,
		RequestTimeout: 2 * time.Second, BaseBackoff: 100 * time.Millisecond, MaxBackoff: time.Second,
	}
}

// TestCrashChild is the worker process of the crash tests; run directly
// it does nothing.
func TestCrashChild(t *testing.T) {
	raw := os.Getenv(crashChildEnv)
	if raw == "" {
		t.Skip("runs only as the child process of the crash tests")
	}
	var c crashChild
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		t.Fatal(err)
	}
	keys, err := secret.ParseKeys(c.Keys)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := secret.NewRing(keys)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	st, err := store.Open(ctx, store.Options{Driver: c.Driver, DSN: c.DSN, Ring: ring, MaxOpenConns: 4, MaxIdleConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	api, _ := url.Parse(c.APIURL)
	sa := atlassian.NewServiceAccounts(atlassian.New(atlassian.Options{Limiter: atlassian.LimiterOptions{Rate: 1e6, Burst: 1e6}}), api, api)
	cfg := crashConfig(c.Owner)
	if c.Lease > 0 {
		cfg.Lease = c.Lease
	}
	if c.RequestTimeout > 0 {
		cfg.RequestTimeout = c.RequestTimeout
	}
	w := syncw.New(cfg, st, sa, nil, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	st.OnOutbox(w.Wake)
	fmt.Fprintln(os.Stderr, "crash child: running as", c.Owner)
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestCrashMidBatchLosesNothing runs the sync worker in a child process,
// kills it (SIGKILL) in the middle of its work, twice, with new changes
// between, and lets a fresh worker finish: the site ends with the
// directory's state, no change was applied twice, none was lost, none was
// retried before its Retry-After. On SQLite and PostgreSQL.
func TestCrashMidBatchLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		cfg := crashConfig("parent-" + b.Name)
		ce := newCrashEnv(t, b, withRealTime(), withConfig(func(c *syncw.Config) { *c = crashConfig(c.Owner) }))
		e := ce.env
		// Slow answers, so that a kill often lands while a call is out;
		// answers lost after the change was applied; rate limiting.
		for _, f := range []fakeatlassian.Fault{
			{Delay: 40 * time.Millisecond, Probability: 0.3},
			{DropAfterApply: true, Probability: 0.04},
			{Status: 429, RetryAfterIn: time.Second, Probability: 0.04},
			{Status: 503, Probability: 0.03},
		} {
			e.fs.Inject(f)
		}

		child := func(n int) *exec.Cmd { return ce.child(n, 0, 0) }
		// killAfter lets the child make n more requests, then kills it,
		// and counts the claims it held (their heads still leased).
		midBatch := 0
		killAfter := func(cmd *exec.Cmd, n int) {
			t.Helper()
			start := e.fs.TotalRequests()
			e.waitFor(fmt.Sprintf("%d requests from the child", n), func() bool { return e.fs.TotalRequests() >= start+n })
			kill(t, cmd)
			for _, it := range e.items() {
				if it.Status == models.OutboxStatusPending && it.LeaseOwner != "" && it.LeaseUntil != nil && it.LeaseUntil.After(time.Now()) {
					midBatch++
				}
			}
		}

		// The identity provider's first wave: users, groups, memberships.
		var users []string
		for i := range 40 {
			users = append(users, e.createUser(fmt.Sprintf("crash%02d@example.com", i), true))
		}
		groups := []string{
			e.createGroup("red", users[:15]...),
			e.createGroup("green", users[10:30]...),
			e.createGroup("blue", users[25:40]...),
		}
		killAfter(child(1), 100)

		// A second wave while no worker runs.
		for _, u := range users[:5] {
			e.setActive(u, false)
		}
		e.rename(groups[0], "crimson")
		e.addMembers(groups[2], users[:3]...)
		e.removeMember(groups[1], users[12])
		e.delete("Users", users[39])
		killAfter(child(2), 15)
		if midBatch == 0 {
			t.Error("neither kill found a claim in progress")
		}

		// A fresh worker in this process, as another replica: it takes
		// the dead workers' claims over once their leases run out.
		e.cfg, e.w = cfg, e.newWorker(e.st, cfg)
		e.st.OnOutbox(e.w.Wake)
		e.start()
		e.drain()
		e.checkState(models.DeactivateRemoveGroups)
		e.checkClean()
		for _, it := range e.items() {
			if it.Status != models.OutboxStatusApplied {
				t.Errorf("item %d %s %s: %s %q", it.ID, it.ResourceType, it.Op, it.Status, it.LastError)
			}
		}
		t.Logf("%d claims held by the killed workers; %d requests, %d changes; %v", midBatch, e.fs.TotalRequests(), len(e.fs.Changes()), e.fs.Requests())
	})
}

// crashEnv is an env whose database a worker in a child process opens
// too (crashChild).
type crashEnv struct {
	*env
	key         secret.Key
	driver, dsn string
}

// newCrashEnv makes an env on a database of its own, which child worker
// processes can open.
func newCrashEnv(t *testing.T, b storetest.Backend, opts ...envOption) *crashEnv {
	t.Helper()
	ce := &crashEnv{key: storetest.NewKey(t, "crash1")}
	ring := storetest.NewRing(t, ce.key)
	ce.driver, ce.dsn = b.Database(t)
	opts = append(opts, withStore(func(now func() time.Time) *store.Store {
		st, err := store.Open(context.Background(), store.Options{Driver: ce.driver, DSN: ce.dsn, Ring: ring, Now: now, MaxOpenConns: 4, MaxIdleConns: 2})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		if _, err := st.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		return st
	}))
	ce.env = newEnv(t, b, opts...)
	return ce
}

// child starts a sync worker in a child process (TestCrashChild), owner
// "child-n-backend", with crashConfig's lease and request timeout unless
// given; it is killed when the test ends at the latest.
func (ce *crashEnv) child(n int, lease, requestTimeout time.Duration) *exec.Cmd {
	t := ce.t
	t.Helper()
	spec, _ := json.Marshal(crashChild{Driver: ce.driver, DSN: ce.dsn, Keys: secret.FormatKeys([]secret.Key{ce.key}), APIURL: ce.fake.APIURL(),
		Owner: fmt.Sprintf("child-%d-%s", n, ce.b.Name), Lease: lease, RequestTimeout: requestTimeout})
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+string(spec))
	logs := &apptest.LockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("child %d said:\n%s", n, logs.String())
		}
	})
	return cmd
}

// kill kills a child worker (SIGKILL: nothing of it runs any more) and
// waits for it.
func kill(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
}

// TestCrashBetweenAnAddAndItsRecord closes the gap between a membership
// added in the site and its record: the worker adding a user to a group
// dies (SIGKILL) once the site applied the add, before idbridge recorded
// it; before the dead claim's lease runs out, the identity provider
// deletes the user (or deactivates it, with the deactivation mode
// "remove from the provisioned groups") and that is applied. Once the
// lease ran out and the group's next claim recovered, the site has the
// directory's state: the user is in no group. (The deletion forgets the
// user's account: unless the membership was known before the add, no
// claim after the crash could tell the site's member was that user.)
// On SQLite and PostgreSQL.
func TestCrashBetweenAnAddAndItsRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(e *env, user string)
	}{
		{"deleted", func(e *env, user string) { e.delete("Users", user) }},
		{"deactivated", func(e *env, user string) { e.setActive(user, false) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
				// The test's clock starts at the real time and stands
				// still: the child (on the real clock) finds the changes
				// due, and its lease runs out when the test says so.
				ce := newCrashEnv(t, b, withClockAt(time.Now()))
				e := ce.env
				e.setProvisioning(func(p *models.Provisioning) { p.Deactivation = models.DeactivateRemoveGroups })
				e.start()
				ada := e.createUser("ada@example.com", true)
				e.createUser("bob@example.com", true)
				g := e.createGroup("delta")
				e.drain()
				e.stop()

				// The child adds ada to the group; the site applies it and
				// never answers, and the child is killed meanwhile. Its
				// timeouts are long, so that only the kill ends its claim.
				e.fs.Inject(fakeatlassian.Fault{Route: "POST /rest/api/3/group/user", HangAfterApply: true, Times: 1})
				e.addMembers(g, ada)
				cmd := ce.child(1, time.Minute, time.Minute)
				e.waitFor("ada added to the group in the site", func() bool {
					return slices.Contains(e.fs.Snapshot().Groups["delta"], "ada@example.com")
				})
				kill(t, cmd)
				dead := e.head(g)
				if dead == nil || !strings.HasPrefix(dead.LeaseOwner, "child-1-") || dead.LeaseUntil == nil || !dead.LeaseUntil.After(e.now()) {
					t.Fatalf("the group's claim is not the killed child's, in progress: %+v", dead)
				}

				// The identity provider's change, applied by a fresh worker
				// (as after a restart) while the dead claim holds the group.
				tc.change(e, ada)
				e.w = e.newWorker(e.st, e.cfg)
				e.st.OnOutbox(e.w.Wake)
				e.start()
				e.waitFor("ada's change applied", func() bool { return !e.open(ada) && e.idle() })
				if h := e.head(g); h == nil || h.ID != dead.ID || h.LeaseOwner != dead.LeaseOwner {
					t.Fatalf("the group's claim did not wait for the dead claim's lease: %+v", h)
				}

				// The dead claim's lease runs out; the group's next claim
				// takes over and recovers.
				e.clock.Advance(dead.LeaseUntil.Sub(e.now()) + time.Second)
				e.w.Wake(nil)
				e.drain()
				if got := e.fs.Snapshot().Groups["delta"]; len(got) != 0 {
					t.Errorf("the site's group has %v, want no member", got)
				}
				e.checkState(models.DeactivateRemoveGroups)
				e.checkClean()
				for _, it := range e.items() {
					if it.Status != models.OutboxStatusApplied {
						t.Errorf("item %d %s %s: %s %q", it.ID, it.ResourceType, it.Op, it.Status, it.LastError)
					}
				}
			})
		})
	}
}

// head is the subject's oldest open item; nil when it has none.
func (e *env) head(subject string) *store.SyncItem {
	for _, it := range e.items() {
		if it.ResourceID == subject && (it.Status == models.OutboxStatusPending || it.Status == models.OutboxStatusHeld) {
			return &it
		}
	}
	return nil
}
