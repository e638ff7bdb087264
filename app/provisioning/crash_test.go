//go:build linux

package provisioning_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"idbridge/app/apptest"
	"idbridge/app/provisioning"
	"idbridge/app/secret"
	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/handlers"
)

// scimCrashChildEnv carries a scimCrashChild to the test binary run as a
// child process: then TestSCIMCrashChild serves SCIM until it is killed.
const scimCrashChildEnv = "IDBRIDGE_SCIM_CRASH_CHILD"

// scimCrashChild is what the child needs: the SQLite file and the key ring.
type scimCrashChild struct {
	DSN, Keys string
}

// TestSCIMCrashChild is the server process of
// TestSCIMCreatesSurviveSIGKILL: it opens the store as idbridge does at
// start (and migrates), serves the SCIM API on 127.0.0.1 and prints
// "LISTEN host:port". Run directly it does nothing.
func TestSCIMCrashChild(t *testing.T) {
	raw := os.Getenv(scimCrashChildEnv)
	if raw == "" {
		t.Skip("runs only as the child process of TestSCIMCreatesSurviveSIGKILL")
	}
	var c scimCrashChild
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
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Driver: store.SQLite, DSN: c.DSN, Ring: ring})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(testBaseURL)
	svc := provisioning.NewService(provisioning.ServiceConfig{BaseURL: u}, st, nil, nil)
	h := handlers.New(handlers.Deps{BaseURL: u, SCIM: svc, Provisioning: svc, MaxBodyBytes: 4 << 20})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("LISTEN " + ln.Addr().String())
	t.Fatal((&http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}).Serve(ln))
}

// Nothing acknowledged is lost: the SCIM server runs on SQLite in a child
// process, identity providers stream creates at it from several
// connections, and it is killed with SIGKILL in the middle of the stream.
// After a restart every user that was answered 201 is there, each with its
// outbox item.
func TestSCIMCreatesSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	t.Parallel()
	key := storetest.NewKey(t, "crash1")
	ring := storetest.NewRing(t, key)
	path := filepath.Join(t.TempDir(), "idbridge.db")
	st := storetest.Backends(t)[0].Open(t, storetest.WithRing(ring), storetest.WithStoreOptions(func(o *store.Options) { o.DSN = path }))
	if st.Dialect() != store.SQLite {
		t.Fatalf("dialect %s, want sqlite", st.Dialect())
	}
	site := newSCIMEnvOn(t, st).newSite()
	spec, _ := json.Marshal(scimCrashChild{DSN: path, Keys: secret.FormatKeys([]secret.Key{key})})

	// start runs the server and returns it with its address.
	start := func(n int) (*exec.Cmd, string) {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^TestSCIMCrashChild$", "-test.count=1", "-test.timeout=5m")
		cmd.Env = append(os.Environ(), scimCrashChildEnv+"="+string(spec))
		logs := &apptest.LockedBuffer{}
		cmd.Stderr = logs
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("server %d said:\n%s", n, logs.String())
			}
		})
		addr := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if a, ok := strings.CutPrefix(sc.Text(), "LISTEN "); ok {
					addr <- a
				}
			}
			close(addr)
		}()
		select {
		case a, ok := <-addr:
			if !ok {
				t.Fatalf("server %d exited before it listened", n)
			}
			return cmd, "http://" + a + site.base
		case <-time.After(time.Minute):
			t.Fatalf("server %d did not listen within a minute", n)
		}
		return nil, ""
	}
	client := &http.Client{Timeout: 30 * time.Second}
	post := func(base, userName string) (int, error) {
		body := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"` + userName + `","active":true}`
		r, _ := http.NewRequest("POST", base+"/Users", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/scim+json")
		r.Header.Set("Authorization", "Bearer "+site.token)
		res, err := client.Do(r)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		return res.StatusCode, nil
	}

	cmd, base := start(1)
	const streams, killAfter = 8, 300
	var mu sync.Mutex
	var acked []string
	killed := make(chan struct{})
	var wg sync.WaitGroup
	for g := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				name := fmt.Sprintf("crash-%d-%d@example.com", g, i)
				code, err := post(base, name)
				if err != nil {
					return // the server is gone
				}
				if code == http.StatusCreated {
					mu.Lock()
					acked = append(acked, name)
					mu.Unlock()
				}
				select {
				case <-killed:
					if code != http.StatusCreated {
						return
					}
				default:
				}
			}
		}()
	}
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= killAfter {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	close(killed)
	_ = cmd.Wait()
	wg.Wait()
	t.Logf("%d creates answered 201 before and while the server was killed", len(acked))

	_, base = start(2)
	for _, name := range acked {
		r, _ := http.NewRequest("GET", base+"/Users?filter="+url.QueryEscape(`userName eq "`+name+`"`), nil)
		r.Header.Set("Authorization", "Bearer "+site.token)
		res, err := client.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		var list struct{ TotalResults int }
		err = json.NewDecoder(res.Body).Decode(&list)
		_ = res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK || list.TotalResults != 1 {
			t.Errorf("acknowledged user %s after the restart: status %d, %d found, %v", name, res.StatusCode, list.TotalResults, err)
		}
	}
	// Each user came with its outbox item, in the same commit.
	tx := st.View(context.Background())
	_, users, err := tx.ListDirectoryUsers(site.site.ID, store.DirectoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	items, err := tx.CountOutboxItems(site.site.ID)
	if err != nil {
		t.Fatal(err)
	}
	if users < len(acked) || items != users {
		t.Errorf("%d users and %d outbox items after the restart, %d acknowledged: want at least the acknowledged, one item each", users, items, len(acked))
	}
}
