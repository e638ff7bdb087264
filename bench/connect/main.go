// Command connect is idbridge's load-test target: in one process it starts a
// fake Atlassian install-key server, a fake Jira that says every account is
// a site admin, and idbridge itself (through app.Open, on 127.0.0.1) on
// SQLite or on a fresh PostgreSQL database. It installs the fake site with a
// real signed install over HTTP, prints the URLs to load and a one-hour
// context JWT for GET /api/admin/site, and serves until SIGINT, SIGTERM or
// -duration. bench/connect/run.sh drives it with wrk; see docs/PERFORMANCE.md.
//
// Output on stdout is KEY=value lines, then READY:
//
//	BASE_URL=http://127.0.0.1:41234
//	HEALTHZ_URL=http://127.0.0.1:41234/healthz
//	SITE_URL=http://127.0.0.1:41234/api/admin/site
//	TOKEN=eyJ...
//	FORGE_URL=http://127.0.0.1:41234/forge/site
//	FORGE_TOKEN=eyJ...
//	READY
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"idbridge/app/connect"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("connect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", dbSQLite, "database: sqlite or postgres")
	pg := fs.String("pg", defaultPGURL, "PostgreSQL server URL; a fresh database is created next to the one named and dropped on exit")
	addr := fs.String("addr", "127.0.0.1:0", "listen address (loopback only; port 0 picks a free one)")
	descriptor := fs.String("descriptor", "", "path of atlassian-connect.json (default: found in the working directory or its parents)")
	duration := fs.Duration("duration", 0, "stop after this long (0: until SIGINT/SIGTERM)")
	tokenTTL := fs.Duration("token-ttl", connect.MaxTokenLifetime, "lifetime of the printed context JWT (at most 15m: idbridge refuses longer-lived tokens, as Atlassian issues none)")
	tokenFile := fs.String("token-file", "", "keep a fresh context JWT in this file, rewritten every third of -token-ttl, for load runs longer than one token's life")
	forgeFile := fs.String("forge-token-file", "", "keep a fresh Forge invocation token for GET /forge/site in this file, rewritten every 3 minutes (they live 9)")
	forgePool := fs.String("forge-pool-file", "", "keep this many distinct Forge invocation tokens, one a line, in this file (-forge-pool tokens), rewritten every 3 minutes: more than the verified-token cache holds, so a load generator that cycles through them misses it on every request")
	forgePoolSize := fs.Int("forge-pool", freshPoolSize, "tokens in -forge-pool-file")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole process, from READY to exit, to this file")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: connect [-db sqlite|postgres] [-pg URL] [-addr 127.0.0.1:PORT] [-duration D]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "connect: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *tokenTTL <= 0 || *tokenTTL > connect.MaxTokenLifetime {
		fmt.Fprintf(stderr, "connect: -token-ttl %s: want more than 0 and at most %s\n", *tokenTTL, connect.MaxTokenLifetime)
		return 2
	}
	if *db != dbSQLite && *db != dbPostgres {
		fmt.Fprintf(stderr, "connect: -db %q: want sqlite or postgres\n", *db)
		return 2
	}
	tmpl, err := readDescriptor(*descriptor)
	if err != nil {
		fmt.Fprintln(stderr, "connect:", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}

	start := time.Now()
	h, err := startHarness(ctx, harnessOptions{
		DB: *db, PGURL: *pg, Addr: *addr, Descriptor: tmpl, Log: stderr, TokenTTL: *tokenTTL,
	})
	if err != nil {
		fmt.Fprintln(stderr, "connect:", err)
		return 1
	}
	fmt.Fprintf(stdout, "# idbridge on %s, %s, GOMAXPROCS=%d, installed and primed in %s\n",
		*db, runtime.Version(), runtime.GOMAXPROCS(0), time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(stdout, "DB=%s\n", *db)
	fmt.Fprintf(stdout, "BASE_URL=%s\n", h.BaseURL)
	fmt.Fprintf(stdout, "HEALTHZ_URL=%s/healthz\n", h.BaseURL)
	fmt.Fprintf(stdout, "READYZ_URL=%s/readyz\n", h.BaseURL)
	fmt.Fprintf(stdout, "SITE_URL=%s/api/admin/site\n", h.BaseURL)
	fmt.Fprintf(stdout, "JIRA_URL=%s\n", h.JiraURL)
	fmt.Fprintf(stdout, "CLIENT_KEY=%s\n", h.ClientKey)
	fmt.Fprintf(stdout, "ACCOUNT_ID=%s\n", h.AccountID)
	fmt.Fprintf(stdout, "TOKEN=%s\n", h.Token)
	if *tokenFile != "" {
		if err := writeTokenFile(*tokenFile, h.Token); err != nil {
			fmt.Fprintln(stderr, "connect: -token-file:", err)
			_ = h.Close()
			return 1
		}
		go refreshTokenFile(ctx, h, *tokenFile, *tokenTTL, stderr)
		fmt.Fprintf(stdout, "TOKEN_FILE=%s\n", *tokenFile)
	}
	fmt.Fprintf(stdout, "FORGE_URL=%s/forge/site\n", h.BaseURL)
	fmt.Fprintf(stdout, "FORGE_TOKEN=%s\n", h.ForgeToken)
	if *forgeFile != "" || *forgePool != "" {
		if err := writeForgeFiles(h, *forgeFile, *forgePool, *forgePoolSize); err != nil {
			fmt.Fprintln(stderr, "connect: -forge-token-file/-forge-pool-file:", err)
			_ = h.Close()
			return 1
		}
		go refreshForgeFiles(ctx, h, *forgeFile, *forgePool, *forgePoolSize, stderr)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(stderr, "connect: -cpuprofile:", err)
			_ = h.Close()
			return 1
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	fmt.Fprintln(stdout, "READY")
	if f, ok := stdout.(*os.File); ok {
		_ = f.Sync()
	}

	code := 0
	select {
	case <-ctx.Done():
	case <-h.Done():
		code = 1
	}
	calls := h.JiraCalls.Load()
	if err := h.Close(); err != nil {
		fmt.Fprintln(stderr, "connect: stop:", err)
		code = 1
	}
	fmt.Fprintf(stdout, "# stopped; admin checks that reached the fake Jira: %d\n", calls)
	return code
}

// refreshTokenFile rewrites path with a new token every third of ttl until
// ctx is done, so a reader always finds one with at least two thirds of
// its life left.
func refreshTokenFile(ctx context.Context, h *harness, path string, ttl time.Duration, stderr io.Writer) {
	tick := time.NewTicker(ttl / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		token, err := h.ContextToken(time.Now(), ttl)
		if err == nil {
			err = writeTokenFile(path, token)
		}
		if err != nil {
			fmt.Fprintln(stderr, "connect: refresh token file:", err)
		}
	}
}

// forgeRefresh is how often the Forge token files are rewritten: their
// tokens live forgeTokenTTL (9 minutes), so a reader always finds one with
// at least 6 minutes left.
const forgeRefresh = 3 * time.Minute

// writeForgeFiles writes a fresh Forge token to file and n fresh distinct
// ones to pool (either may be "").
func writeForgeFiles(h *harness, file, pool string, n int) error {
	if file != "" {
		token, err := h.forgeToken(time.Now())
		if err == nil {
			err = writeTokenFile(file, token)
		}
		if err != nil {
			return err
		}
	}
	if pool != "" {
		tokens, err := h.forgeTokenPool(n)
		if err != nil {
			return err
		}
		return writeTokenFile(pool, strings.Join(tokens, "\n"))
	}
	return nil
}

// refreshForgeFiles rewrites the Forge token files every forgeRefresh
// until ctx is done. Signing the pool costs the process a few CPU-seconds
// each time (about 1 % of a core over the interval).
func refreshForgeFiles(ctx context.Context, h *harness, file, pool string, n int, stderr io.Writer) {
	tick := time.NewTicker(forgeRefresh)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := writeForgeFiles(h, file, pool, n); err != nil {
			fmt.Fprintln(stderr, "connect: refresh Forge token files:", err)
		}
	}
}

// writeTokenFile replaces path's content with token, atomically.
func writeTokenFile(path, token string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(token+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// readDescriptor reads the template from path, or when path is empty from
// atlassian-connect.json in the working directory or the nearest parent
// holding go.mod (the repository root).
func readDescriptor(path string) ([]byte, error) {
	if path != "" {
		return os.ReadFile(path)
	}
	dir, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	for {
		p := filepath.Join(dir, "atlassian-connect.json")
		if b, err := os.ReadFile(p); err == nil {
			return b, nil
		}
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return nil, errors.New("atlassian-connect.json not found; pass -descriptor PATH")
}
