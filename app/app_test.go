package app_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"idbridge/app"
	"idbridge/app/store/storetest"
	"idbridge/config"
)

func loadConfig(t *testing.T, env map[string]string) config.Config {
	t.Helper()
	cfg, err := config.Load(func(k string) string { return env[k] }, os.ReadFile)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// runApp opens the App and runs it until the test ends (or stop is
// called); it returns the base URL of the listener.
func runApp(t *testing.T, cfg config.Config) (a *app.App, base string, stop func() error) {
	t.Helper()
	return runAppWith(t, cfg, app.Options{})
}

func runAppWith(t *testing.T, cfg config.Config, opts app.Options) (a *app.App, base string, stop func() error) {
	t.Helper()
	a, err := app.Open(context.Background(), cfg, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
			_ = a.Close()
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return a, "http://" + a.Addr().String(), stop
}

func sqliteEnv(t *testing.T) map[string]string {
	return map[string]string{"IDBRIDGE_DATA_DIR": t.TempDir(), "IDBRIDGE_ADDR": "127.0.0.1:0"}
}

func TestServesOnAnyPortAndShutsDownCleanly(t *testing.T) {
	_, base, stop := runApp(t, loadConfig(t, sqliteEnv(t)))
	res, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("readyz: %d", res.StatusCode)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run returned %v after shutdown, want nil", err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("still serving after shutdown")
	}
}

// TestShutdownLetsInFlightRequestsFinish sends a request whose body arrives
// slowly, starts the shutdown while the handler is still reading it, then
// completes the body: the client must get its answer, not a reset.
func TestShutdownLetsInFlightRequestsFinish(t *testing.T) {
	// The server must have read the request's headers (the connection is
	// active) before the shutdown starts: a connection still new would be
	// closed as idle once it is 5 s old, which a loaded machine can reach.
	active := make(chan string, 16)
	_, base, stop := runAppWith(t, loadConfig(t, sqliteEnv(t)), app.Options{ConnState: func(c net.Conn, s http.ConnState) {
		if s == http.StateActive {
			select {
			case active <- c.RemoteAddr().String():
			default:
			}
		}
	}})
	u, _ := url.Parse(base)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"clientKey":"x","baseUrl":"https://x.atlassian.net","sharedSecret":"` + strings.Repeat("s", 40) + `"}`
	fmt.Fprintf(conn, "POST /lifecycle/installed HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", u.Host, len(body), body[:10])
	for waiting := time.After(30 * time.Second); ; {
		select {
		case addr := <-active:
			if addr != conn.LocalAddr().String() {
				continue
			}
		case <-waiting:
			t.Fatal("the server never read the half-sent request's headers")
		}
		break
	}

	// Start the shutdown and wait until the listener refuses new
	// connections; the half-sent request is active, so Shutdown must wait
	// for it (Go closes only idle connections, and new ones after 5 s).
	if res, err := http.Get(base + "/healthz"); err == nil {
		res.Body.Close()
	}
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", u.Host, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still accepts 10s after shutdown began")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case err := <-stopped:
		t.Fatalf("shutdown finished (%v) before the in-flight request did", err)
	default:
	}
	if _, err := io.WriteString(conn, body[10:]); err != nil {
		t.Fatalf("finish body: %v", err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("in-flight request got no answer: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("in-flight request: status %d, want 401 (unsigned install)", res.StatusCode)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// tcpProxy forwards to target and can cut every connection, to play a
// database that goes away and comes back.
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.setDown(true) })
	go p.serve()
	return p
}

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); up.Close() }()
		go func() { _, _ = io.Copy(c, up); c.Close() }()
	}
}

func (p *tcpProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// freshPostgresDSN creates a schema for this test and returns a DSN whose
// connections use it, with the host replaced by hostPort when given.
func freshPostgresDSN(t *testing.T, hostPort string) string {
	t.Helper()
	base := storetest.PostgresURL(t)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_app_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err == nil {
			_, _ = db.Exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE")
			db.Close()
		}
	})
	u, _ := url.Parse(base)
	if hostPort != "" {
		u.Host = hostPort
	}
	q := u.Query()
	q.Set("search_path", schema)
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	return u.String()
}

func TestReadyzFollowsTheDatabaseWithoutRestart(t *testing.T) {
	pgURL, _ := url.Parse(storetest.PostgresURL(t))
	proxy := newTCPProxy(t, pgURL.Host)
	env := map[string]string{
		"IDBRIDGE_ADDR":            "127.0.0.1:0",
		"IDBRIDGE_DATABASE_URL":    freshPostgresDSN(t, proxy.ln.Addr().String()),
		"IDBRIDGE_ENCRYPTION_KEYS": "k1:" + strings.Repeat("A", 43) + "=",
	}
	_, base, _ := runApp(t, loadConfig(t, env))
	status := func() int {
		res, err := http.Get(base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	waitFor := func(want int) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			got := status()
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("readyz stays %d, want %d", got, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor(200)
	proxy.setDown(true)
	waitFor(503)
	proxy.setDown(false)
	waitFor(200)
}

func TestPostgresWithoutKeysRefusesToStart(t *testing.T) {
	_, err := config.Load(func(k string) string {
		return map[string]string{"IDBRIDGE_DATABASE_URL": "postgres://u@127.0.0.1/x"}[k]
	}, os.ReadFile)
	if err == nil || !strings.Contains(err.Error(), "IDBRIDGE_ENCRYPTION_KEYS") {
		t.Fatalf("config.Load = %v; want a problem naming IDBRIDGE_ENCRYPTION_KEYS", err)
	}
	var p *config.Problems
	if !errors.As(err, &p) {
		t.Fatalf("error %T is not *config.Problems", err)
	}
}
