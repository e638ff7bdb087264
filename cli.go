package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"idbridge/app"
	"idbridge/config"
)

// Exit codes: 0 success, 1 a failure while working, 2 a usage or
// configuration error.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

type command struct {
	name    string
	summary string
	run     func(env *cliEnv, args []string) int
}

// cliEnv is what a subcommand needs from the process: its output streams,
// its environment and a context cancelled by SIGINT/SIGTERM.
type cliEnv struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	readFile       func(string) ([]byte, error)
	ctx            context.Context
}

func commands() []command {
	return []command{
		{"serve", "run the HTTP server (the default)", runServe},
		{"migrate", "apply pending database migrations and exit", runMigrate},
		{"keys rotate", "re-encrypt every sealed secret under the newest key", runKeysRotate},
		{"export", "export a person's or a site's personal data as JSON", runExport},
		{"erase", "erase a person's personal data from a site", runErase},
		{"report-personal-data", "run one Personal Data Reporting cycle now", runReportPersonalData},
		{"purge", "run the retention purge now", runPurge},
		{"manifest", "write the Forge manifest.yml for Connect-on-Forge", runManifest},
		{"demo", "try idbridge in a browser: a simulated Atlassian site on loopback", runDemo},
		{"version", "print the version", runVersion},
	}
}

// run is the whole CLI: it parses args, runs one subcommand and returns the
// process exit code. It never calls os.Exit, so tests drive it directly.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := &cliEnv{stdout: stdout, stderr: stderr, getenv: os.Getenv, readFile: os.ReadFile, ctx: ctx}
	return env.dispatch(args)
}

func (env *cliEnv) dispatch(args []string) int {
	if len(args) == 0 {
		return runServe(env, nil)
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		env.usage(env.stdout)
		return exitOK
	}
	if strings.HasPrefix(args[0], "-") {
		// Flags without a subcommand belong to serve.
		return runServe(env, args)
	}
	for _, c := range commands() {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == c.name {
			return c.run(env, args[len(words):])
		}
	}
	if args[0] == "keys" {
		fmt.Fprintf(env.stderr, "idbridge: keys needs a subcommand: rotate\n")
		return exitUsage
	}
	fmt.Fprintf(env.stderr, "idbridge: unknown command %q (run 'idbridge --help')\n", args[0])
	return exitUsage
}

func (env *cliEnv) usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: idbridge [command] [flags]")
	fmt.Fprintln(w, "")
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-21s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "")
	fmt.Fprintln(w, "Configuration comes from IDBRIDGE_* environment variables; see README.md.")
	fmt.Fprintln(w, "Run 'idbridge COMMAND --help' for a command's flags.")
}

// parseFlags parses a subcommand's flags. It answers (code, false) when the
// command must stop: 0 after --help, 2 after a bad flag or argument.
func (env *cliEnv) parseFlags(fs *flag.FlagSet, args []string, summary string) (int, bool) {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(env.stdout, "Usage: idbridge %s [flags]\n\n%s\n", fs.Name(), summary)
		fs.SetOutput(env.stdout)
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintln(env.stdout, "\nFlags:")
			fs.PrintDefaults()
		}
		return exitOK, false
	}
	if err != nil {
		fmt.Fprintf(env.stderr, "idbridge %s: %v\n", fs.Name(), err)
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.stderr, "idbridge %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return exitUsage, false
	}
	return 0, true
}

// loadConfig loads and validates configuration, printing every problem.
func (env *cliEnv) loadConfig(cmd string) (config.Config, bool) {
	cfg, err := config.Load(env.getenv, env.readFile)
	if err != nil {
		fmt.Fprintf(env.stderr, "idbridge %s: invalid configuration:\n", cmd)
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(env.stderr, "  %s\n", line)
		}
		return cfg, false
	}
	return cfg, true
}

func (env *cliEnv) fail(cmd string, err error) int {
	msg := strings.ReplaceAll(err.Error(), "\n", "; ")
	fmt.Fprintf(env.stderr, "idbridge %s: %s\n", cmd, msg)
	return exitFailed
}

const serveSummary = "Runs the HTTP server: validates configuration, opens and migrates the\ndatabase, and serves until SIGINT or SIGTERM, then drains in-flight requests."

func runServe(env *cliEnv, args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	if code, ok := env.parseFlags(fs, args, serveSummary); !ok {
		return code
	}
	cfg, ok := env.loadConfig("serve")
	if !ok {
		return exitUsage
	}
	log := app.NewLogger(env.stderr, cfg)
	app.TuneGC(env.getenv)
	start := time.Now()
	a, err := app.Open(env.ctx, cfg, serveOptions(log))
	if err != nil {
		return env.fail("serve", err)
	}
	defer a.Close()
	log.Debug("ready", "startup_ms", time.Since(start).Milliseconds())
	if err := a.Run(env.ctx); err != nil {
		return env.fail("serve", err)
	}
	return exitOK
}

// serveOptions are the App options of serve: the logger and the embedded
// descriptor, nothing else. In particular no listener and no all.js of
// its own, which only the demo chooses (TestServeHasNoDemoRoutes).
func serveOptions(log *slog.Logger) app.Options {
	return app.Options{Log: log, DescriptorTemplate: descriptorTemplate}
}

func runMigrate(env *cliEnv, args []string) int {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	if code, ok := env.parseFlags(fs, args, "Applies pending database migrations, each in its own transaction, and exits.\nSafe to run while other replicas start: PostgreSQL replicas take turns."); !ok {
		return code
	}
	cfg, ok := env.loadConfig("migrate")
	if !ok {
		return exitUsage
	}
	log := app.NewLogger(env.stderr, cfg)
	st, _, err := app.OpenStore(env.ctx, cfg, log, time.Now)
	if err != nil {
		return env.fail("migrate", err)
	}
	defer st.Close()
	res, err := st.Migrate(env.ctx)
	if err != nil {
		return env.fail("migrate", err)
	}
	if err := st.CheckKeyRing(env.ctx); err != nil {
		return env.fail("migrate", err)
	}
	for _, m := range res.Applied {
		fmt.Fprintf(env.stdout, "applied %s\n", m)
	}
	fmt.Fprintf(env.stdout, "schema is at version %d\n", res.Current)
	return exitOK
}

func runKeysRotate(env *cliEnv, args []string) int {
	fs := flag.NewFlagSet("keys rotate", flag.ContinueOnError)
	batch := fs.Int("batch", 500, "rows re-encrypted per transaction")
	if code, ok := env.parseFlags(fs, args, "Re-encrypts every sealed secret under the first key of IDBRIDGE_ENCRYPTION_KEYS,\nin batches. Resumable: run it again after an interruption. Older keys can be\nremoved from the ring once it reports them retired."); !ok {
		return code
	}
	if *batch <= 0 {
		fmt.Fprintf(env.stderr, "idbridge keys rotate: --batch must be positive\n")
		return exitUsage
	}
	cfg, ok := env.loadConfig("keys rotate")
	if !ok {
		return exitUsage
	}
	log := app.NewLogger(env.stderr, cfg)
	st, _, err := app.OpenStore(env.ctx, cfg, log, time.Now)
	if err != nil {
		return env.fail("keys rotate", err)
	}
	defer st.Close()
	if _, err := st.Migrate(env.ctx); err != nil {
		return env.fail("keys rotate", err)
	}
	if err := st.CheckKeyRing(env.ctx); err != nil {
		return env.fail("keys rotate", err)
	}
	res, err := st.RotateKeys(env.ctx, *batch, func(table string, n int) {
		fmt.Fprintf(env.stdout, "re-encrypted %d values in %s\n", n, table)
	})
	if err != nil {
		return env.fail("keys rotate", err)
	}
	fmt.Fprintf(env.stdout, "done: %d sealed values checked, %d re-encrypted under key %q\n", res.Scanned, res.Rotated, res.PrimaryID)
	if len(res.Retired) > 0 {
		fmt.Fprintf(env.stdout, "no value is sealed with %s any more; it may be removed from IDBRIDGE_ENCRYPTION_KEYS\n", strings.Join(quoteAll(res.Retired), ", "))
	}
	return exitOK
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = fmt.Sprintf("%q", v)
	}
	return out
}

func runVersion(env *cliEnv, args []string) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if code, ok := env.parseFlags(fs, args, "Prints the version and build facts."); !ok {
		return code
	}
	version, revision := app.Version, app.Revision
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && revision == "unknown" {
				revision = s.Value
			}
		}
	}
	fmt.Fprintf(env.stdout, "idbridge %s (%s)\n", version, revision)
	return exitOK
}
