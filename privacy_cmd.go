package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"idbridge/app"
)

// The privacy subcommands (SPEC 1 and 8): export, erase,
// report-personal-data and purge, for the operator. They open the database
// without starting a server; what they do is recorded in the audit log as
// if an administrator had done it, with an empty actor (the operator).

// openPrivacy opens the privacy tool for a subcommand, printing the
// problem and answering the exit code when it cannot.
func (env *cliEnv) openPrivacy(cmd string) (*app.PrivacyTool, int) {
	cfg, ok := env.loadConfig(cmd)
	if !ok {
		return nil, exitUsage
	}
	log := app.NewLogger(env.stderr, cfg)
	tool, err := app.OpenPrivacyTool(env.ctx, cfg, log, nil)
	if err != nil {
		return nil, env.fail(cmd, err)
	}
	return tool, exitOK
}

const exportSummary = "Writes everything idbridge holds about one person (--account) or, without it,\n" +
	"for the whole site, as JSON (SPEC 8): purposes, categories, recipients,\n" +
	"retention and source of every field, and the rows. Streamed at constant\n" +
	"memory; secrets are never exported. Recorded in the site's audit log."

func runExport(env *cliEnv, args []string) int {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	siteKey := fs.String("site", "", "the site's client key (required)")
	account := fs.String("account", "", "the person's Atlassian account ID (default: the whole site)")
	out := fs.String("out", "", "write to this file (created with mode 0600) instead of stdout")
	if code, ok := env.parseFlags(fs, args, exportSummary); !ok {
		return code
	}
	if *siteKey == "" {
		fmt.Fprintln(env.stderr, "idbridge export: --site is required")
		return exitUsage
	}
	if *account != "" && !app.ValidAccountID(*account) {
		fmt.Fprintln(env.stderr, "idbridge export: --account is not an Atlassian account ID (letters, digits, colons, dashes and underscores, at most 128)")
		return exitUsage
	}
	tool, code := env.openPrivacy("export")
	if tool == nil {
		return code
	}
	defer tool.Close()
	var w io.Writer = env.stdout
	var f *os.File
	var err error
	if *out != "" {
		f, err = os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return env.fail("export", err)
		}
		w = f
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	sum, err := tool.Export(env.ctx, *siteKey, *account, bw)
	if err == nil {
		err = bw.Flush()
	}
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(*out)
		}
	}
	if err != nil {
		return env.fail("export", err)
	}
	if f != nil {
		abs, _ := filepath.Abs(*out)
		fmt.Fprintf(env.stderr, "exported %d rows from %d tables to %s\n", sum.Rows, len(sum.Tables), abs)
	}
	return exitOK
}

const eraseSummary = "Erases one person from a site in one transaction (SPEC 8): their rows are\n" +
	"deleted, and in the audit rows by or about them their account ID is replaced\n" +
	"by an irreversible token, with IP and user agent cleared. Idempotent.\n" +
	"Recorded in the site's audit log as data_erased, naming only the token."

func runErase(env *cliEnv, args []string) int {
	fs := flag.NewFlagSet("erase", flag.ContinueOnError)
	siteKey := fs.String("site", "", "the site's client key (required)")
	account := fs.String("account", "", "the person's Atlassian account ID (required)")
	if code, ok := env.parseFlags(fs, args, eraseSummary); !ok {
		return code
	}
	if *siteKey == "" || *account == "" {
		fmt.Fprintln(env.stderr, "idbridge erase: --site and --account are required")
		return exitUsage
	}
	if !app.ValidAccountID(*account) {
		fmt.Fprintln(env.stderr, "idbridge erase: --account is not an Atlassian account ID (letters, digits, colons, dashes and underscores, at most 128)")
		return exitUsage
	}
	tool, code := env.openPrivacy("erase")
	if tool == nil {
		return code
	}
	defer tool.Close()
	e, err := tool.Erase(env.ctx, *siteKey, *account)
	if err != nil {
		return env.fail("erase", err)
	}
	if e.Nothing() {
		fmt.Fprintln(env.stdout, "nothing held about this account: nothing erased (recorded in the audit log)")
		return exitOK
	}
	tables := make([]string, 0, len(e.Rows))
	for t := range e.Rows {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	parts := make([]string, len(tables))
	for i, t := range tables {
		parts[i] = fmt.Sprintf("%s %d", t, e.Rows[t])
	}
	fmt.Fprintf(env.stdout, "erased: %s\n", strings.Join(parts, ", "))
	fmt.Fprintf(env.stdout, "the audit log now names this person %s\n", e.Pseudonym)
	if e.DirectoryUsers > 0 {
		fmt.Fprintln(env.stdout, "note: this person was provisioned by the site's identity provider, which may provision them again unless they are unassigned there")
	}
	return exitOK
}

const reportSummary = "Runs one cycle of Atlassian's Personal Data Reporting API now, for every\n" +
	"installed site: reports every account ID idbridge holds personal data for\n" +
	"(at most 90 per request, each account at most once per cycle period), erases\n" +
	"the accounts Atlassian says are closed, drops cached profile data of updated\n" +
	"ones, and prints a summary. Resumes a cycle a crash interrupted. On\n" +
	"PostgreSQL only one process runs it at a time."

func runReportPersonalData(env *cliEnv, args []string) int {
	fs := flag.NewFlagSet("report-personal-data", flag.ContinueOnError)
	if code, ok := env.parseFlags(fs, args, reportSummary); !ok {
		return code
	}
	tool, code := env.openPrivacy("report-personal-data")
	if tool == nil {
		return code
	}
	defer tool.Close()
	sums, ran, err := tool.ReportPersonalData(env.ctx)
	if err != nil {
		return env.fail("report-personal-data", err)
	}
	if !ran {
		fmt.Fprintln(env.stdout, "another process is running the reporting cycle; nothing done")
		return exitOK
	}
	var requests, reported, closed, erased, updated, ignored int
	for _, s := range sums {
		requests += s.Requests
		reported += s.Reported
		closed += s.Closed
		erased += s.Erased
		updated += s.Updated
		ignored += s.Ignored
		state := "not due"
		switch {
		case s.Completed:
			state = "done"
		case s.Ran:
			state = "stopped, resumes next run"
		}
		line := fmt.Sprintf("site %s: %s; %d accounts reported in %d requests, %d closed (%d erased), %d updated, %d answers ignored",
			s.SiteID, state, s.Reported, s.Requests, s.Closed, s.Erased, s.Updated, s.Ignored)
		if s.Message != "" && !s.Completed {
			line += " (" + s.Message + ")"
		}
		if s.NextCycle != nil {
			line += "; next cycle " + s.NextCycle.UTC().Format("2006-01-02T15:04Z")
		}
		fmt.Fprintln(env.stdout, line)
	}
	fmt.Fprintf(env.stdout, "total: %d sites, %d accounts reported in %d requests, %d closed (%d erased), %d updated, %d answers ignored\n",
		len(sums), reported, requests, closed, erased, updated, ignored)
	return exitOK
}

const purgeSummary = "Runs the retention purge now: audit events older than\n" +
	"IDBRIDGE_AUDIT_RETENTION, the data of sites uninstalled longer than\n" +
	"IDBRIDGE_UNINSTALL_RETENTION (every table), expired login state and\n" +
	"sessions, and sync results older than 30 days; prints what it removed.\n" +
	"The server also runs it once a day per deployment."

func runPurge(env *cliEnv, args []string) int {
	fs := flag.NewFlagSet("purge", flag.ContinueOnError)
	if code, ok := env.parseFlags(fs, args, purgeSummary); !ok {
		return code
	}
	tool, code := env.openPrivacy("purge")
	if tool == nil {
		return code
	}
	defer tool.Close()
	res, err := tool.Purge(env.ctx)
	if err != nil {
		return env.fail("purge", err)
	}
	fmt.Fprintf(env.stdout, "purged %s\n", res)
	return exitOK
}
